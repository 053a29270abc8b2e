"""Which torch device work runs on: ``auto`` (CUDA when available) or a device name, checked
before any work so that a typo or a missing GPU is a clear error, not a traceback an hour in.

    >>> resolve_device("auto")      # "cuda" on a machine with a GPU
    'cpu'
"""

from __future__ import annotations

#: Device types a name may have: ``cpu``, ``cuda`` or ``cuda:N``, ``mps``, ``xpu``.
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


class DeviceError(ValueError):
    """A device name that is not one, or a device this machine does not have."""


def resolve_device(name: str) -> str:
    """``name`` as a device this machine has: ``auto`` becomes ``cuda`` when a GPU is visible,
    else ``cpu``; any other name is checked by allocating on it. Raises :class:`DeviceError`
    saying what to use instead."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise DeviceError(f"{name!r} is not a device; use auto, cpu, cuda or cuda:N")
    try:
        torch.empty(0, device=device)  # fails when the backend or the device index is missing
    except (RuntimeError, AssertionError) as err:
        reason = str(err).strip().split("\n", 1)[0]
        raise DeviceError(f"{name!r} is not available here ({reason}); use auto or cpu") from err
    return name
