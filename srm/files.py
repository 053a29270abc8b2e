"""Files srm reads whole and files it writes: one rule for each, used by every command.

**Reading.** An input file is a regular file (a FIFO blocks forever and ``/dev/zero`` never
ends; a link is followed first) of at most ``$SRM_MAX_INPUT_MB`` megabytes, 2048 by default.
It is refused before it is opened when it is anything else, and the read itself stops at the
limit (a file may grow while it is read, or, like those in ``/proc``, report a size of 0):
:func:`check_input_file`, :func:`read_input_bytes`, :func:`read_input_text`. Data files,
``--config`` recipes, ``srm guidelines --set``, ``srm segment --file`` and score files read
back all go through them (:mod:`srm.data` wraps the errors in its own).

**Writing.** An output is a new path or a regular file; a link is followed, so the file it
points to is what gets written and the link stays a link. Anything else (a directory where a
file is expected, a FIFO, a socket, a device, a link to one of those or to nothing) is refused
before anything is opened: :func:`output_target`. A file is written to a temporary sibling
and renamed over its target (:func:`write_atomically`), so a reader sees the old file or the
new one, never part; a write that fails (a full disk) removes the partial file, leaves the old
one as it was, and says so, with what to free.

    >>> write_atomically("scores.jsonl", ['{"id": "p1"}\\n'])  # doctest: +SKIP
    12
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

#: The environment variable that sets the input size limit, in megabytes (see max_input_bytes).
MAX_INPUT_MB_VARIABLE = "SRM_MAX_INPUT_MB"
DEFAULT_MAX_INPUT_MB = 2048
#: What a path holding a NUL character gets: no file name can hold one, and os calls raise
#: ValueError("embedded null byte") instead of an OSError.
NUL_IN_PATH = "the path contains a NUL character (\\u0000), which no file name can hold; check it"
#: The errors that mean "the disk (or the user's quota) is full".
_FULL = (errno.ENOSPC, errno.EDQUOT)


class FileError(ValueError):
    """A path srm will not read or write as asked, or a write that failed; the message names
    the path, says what it is, and what to do. ``label`` is the path as the caller named it
    (or the setting at fault), ``reason`` the rest of the message."""

    def __init__(self, label: str, reason: str) -> None:
        self.label, self.reason = label, reason
        super().__init__(f"{label}: {reason}")

    def __reduce__(self) -> tuple[type[FileError], tuple[str, str]]:
        return (FileError, (self.label, self.reason))


# ------------------------------------------------------------------------------- reading
def max_input_bytes() -> int:
    """The largest input file read: ``$SRM_MAX_INPUT_MB`` megabytes, else 2048 (2 GiB).

    Files are read whole into memory; the limit turns a wrong path (a disk image, a log that
    keeps growing) into a clear error instead of a process that eats the machine's memory.
    """
    value = os.environ.get(MAX_INPUT_MB_VARIABLE, "").strip()
    if not value:
        return DEFAULT_MAX_INPUT_MB * 1024 * 1024
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise FileError(
            MAX_INPUT_MB_VARIABLE,
            f"got {value!r}; give a positive number of megabytes, or unset it for the default "
            f"({DEFAULT_MAX_INPUT_MB})",
        )
    return int(megabytes * 1024 * 1024)


def check_input_file(
    path: str | os.PathLike[str],
    label: str | None = None,
    *,
    expected: str = "a regular file",
    directories: bool = False,
) -> os.stat_result:
    """Refuse, with a :class:`FileError`, what cannot be read whole: a missing path, a path
    holding a NUL character, a FIFO, a device or a socket (reading one blocks forever or never
    ends), a directory (unless ``directories``), or a file over :func:`max_input_bytes`.
    ``expected`` says what to give instead ("a TOML file"). Nothing is opened."""
    label = os.fspath(path) if label is None else label
    try:
        info = os.stat(path)  # follows links: /dev/zero behind a link is a device
    except FileNotFoundError:
        raise FileError(
            label,
            "no such file or directory; check the path (relative paths are resolved from "
            f"{Path.cwd()})",
        ) from None
    except ValueError:  # "embedded null byte"
        raise FileError(label, NUL_IN_PATH) from None
    except OSError as exc:
        raise FileError(label, f"cannot read it: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode) and directories:
        return info
    if not stat.S_ISREG(info.st_mode):
        raise FileError(
            label, f"not a regular file (it is {file_kind(info.st_mode)}); give {expected}"
        )
    limit = max_input_bytes()
    if info.st_size > limit:
        raise FileError(label, too_big(info.st_size, limit))
    return info


def read_limited(stream: BinaryIO, label: str) -> bytes:
    """All of ``stream`` (an open file, or stdin), reading no more than the limit."""
    limit = max_input_bytes()
    try:
        data = stream.read(limit + 1)
    except OSError as exc:
        raise FileError(label, f"cannot read it: {exc.strerror}") from exc
    if len(data) > limit:
        raise FileError(label, too_big(None, limit))
    return data


def read_input_bytes(
    path: str | os.PathLike[str], label: str | None = None, *, expected: str = "a regular file"
) -> bytes:
    """The bytes of an input file, checked first (:func:`check_input_file`) and read up to the
    limit."""
    label = os.fspath(path) if label is None else label
    check_input_file(path, label, expected=expected)
    try:
        with open(path, "rb") as fh:
            return read_limited(fh, label)
    except OSError as exc:
        raise FileError(label, f"cannot read it: {exc.strerror}") from exc


def read_input_text(
    path: str | os.PathLike[str], label: str | None = None, *, expected: str = "a text file"
) -> str:
    """An input file as UTF-8 text (:func:`read_input_bytes`; a BOM is dropped), or a
    :class:`FileError` naming the first byte that is not UTF-8."""
    label = os.fspath(path) if label is None else label
    return decode_utf8(read_input_bytes(path, label, expected=expected), label)


def decode_utf8(data: bytes, label: str) -> str:
    """``data`` as UTF-8 text (a BOM dropped), or a :class:`FileError` saying where it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError(
            label,
            f"not UTF-8 text (byte {exc.start + 1} is 0x{data[exc.start]:02x}); save it as UTF-8",
        ) from None


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, for messages: ``"a FIFO"``, ``"a character device"``, ..."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def too_big(size: int | None, limit: int) -> str:
    shown = f"is {size_text(size)}, over" if size is not None else "is over"
    return (
        f"{shown} the {size_text(limit)} limit for input files; split it, or raise the limit "
        f"with {MAX_INPUT_MB_VARIABLE}=MEGABYTES"
    )


def size_text(n: int) -> str:
    """``"2,048 MB"``, ``"6 KB"``, ``"300 bytes"``."""
    if n >= 1024**2:
        return f"{n / 1024**2:,.0f} MB"
    return f"{n / 1024:,.0f} KB" if n >= 1024 else f"{n} bytes"


# ------------------------------------------------------------------------------- writing
def output_target(path: str | os.PathLike[str], *, directory: bool = False) -> Path:
    """The path to write for output ``path``: ``path`` itself when it is new (or, with
    ``directory``, a directory), the file a link points to when it is a link to a regular file.
    Anything else is refused with a :class:`FileError` saying what the path is; nothing is
    opened or created.

    >>> output_target("runs/link-to-fifo")  # doctest: +SKIP
    FileError: runs/link-to-fifo: not a regular file or a new path (it is a link to
    runs/fifo, a FIFO); ...
    """
    label = os.fspath(path)
    wanted, give = (
        ("a directory or a new path", "give a directory (created if missing)")
        if directory
        else (
            "a regular file or a new path",
            "give a new path, or a regular file to replace",
        )
    )
    try:
        own = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # new (a parent that is a file fails later)
        return Path(path)
    except ValueError:
        raise FileError(label, NUL_IN_PATH) from None
    except OSError as exc:
        raise FileError(label, f"cannot look at it: {exc.strerror}; {give}") from exc
    link = f"a link to {os.readlink(path)}, " if stat.S_ISLNK(own.st_mode) else ""
    try:
        info = os.stat(path)
    except FileNotFoundError:  # a link to nothing: writing through it would create its target
        raise FileError(label, f"not {wanted} (it is {link}which does not exist); {give}") from None
    except OSError as exc:  # a loop of links, a directory we may not enter
        raise FileError(label, f"cannot follow it: {exc.strerror}; {give}") from exc
    if stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode):
        return Path(os.path.realpath(path)) if link else Path(path)
    raise FileError(label, f"not {wanted} (it is {link}{file_kind(info.st_mode)}); {give}")


def write_atomically(path: str | os.PathLike[str], chunks: Iterable[str]) -> int:
    """Write the text ``chunks`` (UTF-8) to ``path`` as one file, atomically; return the number
    of chunks. ``path`` is checked first (:func:`output_target`) and its directory must exist.

    The text goes to a temporary sibling of the target, is flushed to disk, and is renamed over
    the target, so readers see the old file or the complete new one. A failed write (a full
    disk) raises a :class:`FileError` that says what was kept and what to free.
    """
    count = 0
    with temporary_sibling(path) as (fh, _):
        for chunk in chunks:
            fh.write(chunk.encode("utf-8"))
            count += 1
    return count


@contextlib.contextmanager
def temporary_sibling(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, Path]]:
    """An open temporary file (binary) beside ``path``'s target (:func:`output_target`), and
    its path: renamed over the target when the block ends without an error, removed when it
    raises (an ``OSError``, such as a full disk, becomes :func:`write_failed`'s error)."""
    label = os.fspath(path)
    target = output_target(path)
    existed = target.exists()
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    written = 0
    try:
        # os.open with 0o666 lets the umask decide permissions, as a plain open() would;
        # tempfile.mkstemp would leave the file readable by its owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            try:
                yield fh, tmp
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                with contextlib.suppress(OSError):
                    written = os.fstat(fh.fileno()).st_size
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise write_failed(label, err, written=written, existed=existed) from err
        raise


def write_failed(label: str, err: OSError, *, written: int | None, existed: bool) -> FileError:
    """The error of a write to ``label`` that failed with ``err`` after ``written`` bytes (its
    partial file removed): what was kept, and, for a full disk, what to free."""
    directory = Path(label).absolute().parent
    kept = "the file that was there is unchanged" if existed else "nothing was saved there"
    if err.errno in _FULL:
        after = f" after {size_text(written)}" if written else ""
        return FileError(
            label,
            f"no space left on the device{after}; the partial file was removed and {kept}. "
            f"Free space on the disk holding {directory} (df -h {directory}) and run again",
        )
    return FileError(
        label,
        f"could not write it ({err.strerror or err}); the partial file was removed and {kept}",
    )
