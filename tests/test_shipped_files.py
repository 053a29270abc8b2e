"""No file the project ships names a directory of the machine it was made on: a path such as
/work/runs/x or /root/.cache in a bundled model's config or a doc is noise at best, and at
worst a path the code then tries to open on someone else's machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("data", "recipes", "docs", "webapp", "srm", "README.md")
#: /work/..., /root/..., /tmp/... as a path of its own, not inside a URL or a longer path
#: ("librarything.com/work/15331703" in a sample pair is text, not a path).
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|root|tmp)/[\w.-]")


def shipped_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the shipped files are the tracked ones")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *SHIPPED],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [ROOT / name for name in listed.split("\0") if name]


def machine_paths(path: Path) -> list[str]:
    """``file:line: text`` for each machine path in a text file (binary files hold none)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return []
    text = data.decode("utf-8", errors="replace")
    return [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for number, line in enumerate(text.splitlines(), start=1)
        if MACHINE_PATH.search(line)
    ]


def test_no_shipped_file_names_a_machine_path() -> None:
    files = shipped_files()
    assert any(f.name == "config.json" and "default" in f.parts for f in files)
    found = [hit for f in files for hit in machine_paths(f)]
    assert not found, "machine paths in shipped files:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line,hit",
    [
        ('"output_dir": "/work/runs/minilm-full",', True),
        ("cache in /root/.cache/huggingface", True),
        ("--json /tmp/credit-run/credit.json", True),
        ("librarything.com/work/15331703", False),
        ('"output_dir": "runs/minilm-full",', False),
        ("/usr/lib/postgresql/15/bin/pg_ctl -D /var/pg", False),
    ],
)
def test_the_pattern_finds_machine_paths_only(line: str, hit: bool) -> None:
    assert bool(MACHINE_PATH.search(line)) is hit
