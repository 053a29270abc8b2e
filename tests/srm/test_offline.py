"""Nothing reaches the network at run time: importing srm switches Hugging Face to offline
mode for the process (unless SRM_ALLOW_DOWNLOADS=1), so a backbone given by its Hub name loads
from the local cache without a single DNS look-up.

Each check runs in a child process with no network (``unshare -n`` where it is allowed) and an
audit hook that records, and refuses, every name look-up and connection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REVISION = "0123456789abcdef0123456789abcdef01234567"

CHILD = """
import json, sys

attempts = []
NETWORK_EVENTS = {"socket.getaddrinfo", "socket.connect", "socket.gethostbyname",
                  "socket.gethostbyname_ex", "socket.gethostbyaddr"}

def audit(event, args):
    if event in NETWORK_EVENTS:
        attempts.append(f"{event} {args[:2]}")
        raise OSError("the test allows no network")

sys.addaudithook(audit)
order, name = sys.argv[1], sys.argv[2]
if order == "hub-first":  # a caller that imported Hugging Face libraries before srm
    import huggingface_hub, transformers
from srm.backbones import BackboneError, load_backbone
try:
    backbone = load_backbone(name)
    outcome = type(backbone.model).__name__
except BackboneError as err:
    outcome = str(err)
print(json.dumps({"outcome": outcome, "attempts": attempts}))
"""


def cached_model(hf_home: Path, name: str, source: Path) -> Path:
    """Put the files of ``source`` into a Hugging Face cache as model ``name`` (the layout
    ``hf download`` leaves: a snapshot per revision, refs/main naming the current one)."""
    repo = hf_home / "hub" / f"models--{name.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def no_network_prefix() -> list[str]:
    """``unshare -n`` (a network namespace with nothing in it) where this user may use it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []  # the audit hook still refuses every look-up and connection


def run_child(hf_home: Path, name: str, order: str = "srm-first", **env: str) -> dict:
    child_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    }
    child_env |= {"HF_HOME": str(hf_home), "PYTHONPATH": str(REPO_ROOT), **env}
    result = subprocess.run(
        [*no_network_prefix(), sys.executable, "-c", CHILD, order, name],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("order", ["srm-first", "hub-first"])
def test_a_hub_backbone_loads_from_the_cache_without_network(
    tmp_path, tiny_gpt2_dir, order
) -> None:
    cached_model(tmp_path / "hf", "someorg/tiny-gpt2", tiny_gpt2_dir)
    report = run_child(tmp_path / "hf", "someorg/tiny-gpt2", order)
    assert report == {"outcome": "GPT2Model", "attempts": []}


def test_a_cached_hub_backbone_with_custom_code_is_refused_offline(tmp_path, tiny_gpt2_dir) -> None:
    snapshot = cached_model(tmp_path / "hf", "someorg/custom", tiny_gpt2_dir)
    config = json.loads((snapshot / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (snapshot / "config.json").write_text(json.dumps(config))
    report = run_child(tmp_path / "hf", "someorg/custom")
    assert "refusing a backbone that brings its own code (auto_map" in report["outcome"]
    assert report["attempts"] == []


def test_downloads_are_an_explicit_opt_in() -> None:
    show = "import os, srm; print(os.environ.get('HF_HUB_OFFLINE'))"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    offline = subprocess.run(
        [sys.executable, "-c", show], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )
    allowed = subprocess.run(
        [sys.executable, "-c", show],
        capture_output=True,
        text=True,
        env=env | {"SRM_ALLOW_DOWNLOADS": "1"},
        cwd=REPO_ROOT,
    )
    assert (offline.stdout.strip(), allowed.stdout.strip()) == ("1", "None")
