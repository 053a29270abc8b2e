"""SRM Studio: sentence-level reward models (see README.md).

Nothing reaches the network at run time. Importing ``srm`` puts the Hugging Face libraries of
this process (and of the job processes it starts, which inherit the environment) in offline
mode: without it, loading a backbone given by its Hub name looks huggingface.co up several
times even with ``local_files_only``. ``SRM_ALLOW_DOWNLOADS=1`` is the explicit opt-in that
leaves those switches as the environment sets them and lets a Hub backbone be downloaded.
"""

import os
import sys

__version__ = "0.1.0"

#: Set to 1 to let Hugging Face libraries reach the Hub (and download a backbone by name).
ALLOW_DOWNLOADS_VARIABLE = "SRM_ALLOW_DOWNLOADS"
#: The switches that keep huggingface_hub, transformers and datasets off the network.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def downloads_allowed() -> bool:
    """Whether the user opted in to network access with ``SRM_ALLOW_DOWNLOADS=1``."""
    return os.environ.get(ALLOW_DOWNLOADS_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _stay_offline() -> None:
    if downloads_allowed():
        return
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    # huggingface_hub reads the variable once, at its import; a caller that imported it
    # before srm gets the switch set where is_offline_mode() reads it.
    for module in ("huggingface_hub.constants", "datasets.config"):
        if module in sys.modules:
            sys.modules[module].HF_HUB_OFFLINE = True


_stay_offline()
