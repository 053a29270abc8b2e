"""Waiting for a server a test started in a process of its own."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest


def wait_until_answering(url: str, process: subprocess.Popen, log: Path, what: str) -> None:
    """Return once ``url`` answers 200; fail the test, with the process's log, if the process
    exits or the URL never answers (up to a minute or so on a loaded machine; no timing is
    asserted)."""
    for _ in range(600):
        if process.poll() is not None:
            pytest.fail(f"{what} exited: {log.read_text()}")
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"{what} never answered: {log.read_text()}")
