"""srm.files: the one rule for outputs (new or regular, never replaced when anything else) and
the one for files read whole (regular, bounded, never a FIFO or a device)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from srm.data import write_json_lines
from srm.files import (
    FileError,
    check_input_file,
    output_target,
    read_input_text,
    write_atomically,
)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_a_new_path_and_a_regular_file_are_written_where_they_are(tmp_path: Path) -> None:
    assert output_target(tmp_path / "new.jsonl") == tmp_path / "new.jsonl"
    (tmp_path / "old.jsonl").write_text("x")
    assert output_target(tmp_path / "old.jsonl") == tmp_path / "old.jsonl"
    assert output_target(tmp_path, directory=True) == tmp_path


def test_a_link_to_a_regular_file_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real.name)
    assert output_target(link) == real
    assert write_json_lines([{"id": "p1"}], link) == 1
    assert link.is_symlink() and real.read_text() == '{"id": "p1"}\n'


@pytest.mark.parametrize(
    "make,kind",
    [
        (lambda tmp, fifo: fifo, r"a FIFO"),
        (lambda tmp, fifo: link(tmp / "l", fifo), r"a link to .*/fifo, a FIFO"),
        (lambda tmp, fifo: link(tmp / "l", Path("/dev/null")), r"a link to /dev/null, a char"),
        (lambda tmp, fifo: link(tmp / "l", tmp / "gone"), r"a link to .*/gone, which does not"),
        (lambda tmp, fifo: link(tmp / "l", tmp), r"a link to .*, a directory"),
        (lambda tmp, fifo: Path("/dev/null"), r"a character device"),
    ],
    ids=["FIFO", "link to a FIFO", "link to /dev/null", "broken link", "link to a dir", "device"],
)
def test_anything_else_is_refused_before_anything_is_opened(
    tmp_path: Path, fifo: Path, make, kind: str, monkeypatch
) -> None:
    """Checked with os.open and os.replace made to fail the test: a device (even /dev/null,
    harmless here as root) is never opened, let alone replaced by a regular file."""
    target = make(tmp_path, fifo)

    def never(*args, **kwargs):
        raise AssertionError(f"touched {args[:2]}")

    monkeypatch.setattr(os, "open", never)
    monkeypatch.setattr(os, "replace", never)
    with pytest.raises(FileError, match=rf"not a regular file or a new path \(it is {kind}"):
        write_json_lines([{"id": "p1"}], target)
    with pytest.raises(FileError, match="give a new path, or a regular file to replace"):
        write_atomically(target, ["x"])


def link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def test_a_full_disk_keeps_the_old_file_and_leaves_no_partial_one(
    tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        FileError,
        match=r"out.jsonl: no space left on the device after 26 bytes; the partial file was "
        r"removed and the file that was there is unchanged\. Free space on the disk holding",
    ):
        write_json_lines([{"id": "p1"}, {"id": "p2"}], out)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_an_error_in_the_records_leaves_nothing_either(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        write_json_lines([{"id": "p1"}, {"margin": float("nan")}], tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_inputs_are_regular_files_under_the_limit(tmp_path: Path, fifo: Path, monkeypatch) -> None:
    text = tmp_path / "t.md"
    text.write_text("\ufeffHello.\n", encoding="utf-8")
    assert read_input_text(text) == "Hello.\n"  # the BOM dropped
    with pytest.raises(FileError, match=r"fifo: not a regular file \(it is a FIFO\); give a"):
        read_input_text(fifo)  # refused, not opened: this would block forever
    with pytest.raises(FileError, match=r"not a regular file \(it is a directory\)"):
        read_input_text(tmp_path)
    assert check_input_file(tmp_path, directories=True).st_mode
    with pytest.raises(FileError, match=r"the path contains a NUL character"):
        read_input_text(tmp_path / "a\x00b")
    (tmp_path / "latin1.md").write_bytes("Caf\xe9".encode("latin-1"))
    with pytest.raises(FileError, match=r"not UTF-8 text \(byte 4 is 0xe9\); save it as UTF-8"):
        read_input_text(tmp_path / "latin1.md")
    monkeypatch.setenv("SRM_MAX_INPUT_MB", "0.000001")  # one byte
    with pytest.raises(FileError, match=r"is 10 bytes, over the 1 bytes limit for input files"):
        read_input_text(text)


def test_a_file_that_grows_past_the_limit_is_cut_off(tmp_path: Path, monkeypatch) -> None:
    """/proc files report a size of 0: the read itself stops at the limit."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    monkeypatch.setenv("SRM_MAX_INPUT_MB", "0.0001")  # 104 bytes
    with pytest.raises(FileError, match=r"status: is over the 104 bytes limit for input files"):
        read_input_text("/proc/self/status")
