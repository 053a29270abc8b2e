"""SIGTERM as a request to stop, the way Ctrl-C is one.

Schedulers (Slurm, Kubernetes, systemd) and ``kill`` send SIGTERM, then SIGKILL after a grace
period. Python's default is to die on the spot and lose everything since the last checkpoint.
Inside :func:`stop_on_sigterm`, SIGTERM only records the request; long loops ask for it between
two units of work (a training micro-batch, a scoring chunk) and stop the way a cancel does:
training writes a resumable checkpoint, scoring keeps the chunks it saved. The command then
exits with :data:`EXIT_CODE`, 143 (128 + SIGTERM, what a shell reports for a process SIGTERM
ended).

    >>> with stop_on_sigterm() as stop:
    ...     result = train(cfg, pairs, stop=stop)   # stop() is True once SIGTERM has arrived
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: Exit code of a command that SIGTERM stopped (after saving its work).
EXIT_CODE = 128 + signal.SIGTERM


class StopRequest:
    """Whether SIGTERM has arrived: call it (``stop()``), as loops do between units of work.
    ``by_sigterm`` says whether it was SIGTERM (not SIGINT, see :func:`stop_on_sigterm`)."""

    def __init__(self) -> None:
        self.received = False
        self.by_sigterm = False

    def __call__(self) -> bool:
        return self.received


@contextmanager
def stop_on_sigterm(*, sigint: bool = False) -> Iterator[StopRequest]:
    """Within the block SIGTERM sets the yielded request instead of ending the process; the
    previous handler is restored afterwards. Main thread only (Python's rule for handlers).

    With ``sigint``, Ctrl-C (SIGINT) only sets the request too: what the processes of one
    training run need, since Ctrl-C reaches them all and a KeyboardInterrupt would leave each
    in a different place, where they could not meet to write a checkpoint."""
    request = StopRequest()

    def handler(signum: int, frame: object) -> None:
        if not request.received:
            name = signal.Signals(signum).name
            log.warning("%s: stopping after the current step, keeping the work done so far", name)
        request.received = True
        request.by_sigterm = request.by_sigterm or signum == signal.SIGTERM

    caught = [signal.SIGTERM, signal.SIGINT] if sigint else [signal.SIGTERM]
    previous = {signum: signal.signal(signum, handler) for signum in caught}
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
