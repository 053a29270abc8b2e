"""Writing pairs and records: JSON Lines and ``datasets`` directories, atomically."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from srm.data.schema import PreferencePair
from srm.files import FileError, file_kind, write_atomically, write_failed

logger = logging.getLogger(__name__)


def write_jsonl(pairs: Iterable[PreferencePair], path: str | os.PathLike[str]) -> None:
    """Write pairs as TRL-style JSON Lines that :func:`load_pairs` reads back unchanged.

    Atomic, like :func:`write_json_lines`. The parent directory must exist.
    """
    count = write_json_lines((pair.to_dict() for pair in pairs), path)
    logger.info("wrote %d preference pairs to %s", count, path)


def write_json_lines(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write one JSON object per line, atomically; return the number of lines.

    The rule of every output (:func:`srm.files.write_atomically`): ``path`` must be new or a
    regular file (a link is written through), the lines go to a temporary sibling moved into
    place with ``os.replace``, so readers see either the old file or the complete new one, and
    a failed write (a full disk) is a :class:`~srm.files.FileError` that leaves nothing
    half-written.
    """
    # allow_nan=False: NaN is not JSON, and load_pairs would reject it anyway.
    lines = (json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records)
    return write_atomically(path, lines)


def write_dataset_dir(pairs: Sequence[PreferencePair], out: str | os.PathLike[str]) -> None:
    """Write pairs as a ``datasets.Dataset.save_to_disk`` directory at ``out`` (which must not
    exist), that :func:`srm.data.load_pairs` reads back unchanged.

    Saved into a temporary sibling and renamed into place, so ``out`` is either absent or
    complete; a failed save (a full disk) is a :class:`~srm.files.FileError` and leaves
    nothing. The ``subset`` column is written only when a pair has one.
    """
    from datasets import Dataset

    out = Path(out)
    if os.path.lexists(out):
        what = file_kind(os.lstat(out).st_mode) if not out.is_symlink() else "a link"
        raise FileError(os.fspath(out), f"already exists (it is {what}); give a new directory")
    columns = ["id", "prompt", "chosen", "rejected", "source", "margin"]
    if any(p.subset is not None for p in pairs):
        columns.append("subset")
    data = {c: [getattr(p, c) for p in pairs] for c in columns}
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        Dataset.from_dict(data).save_to_disk(str(tmp / "data"))
        (tmp / "data").rename(out)
    except OSError as err:  # pyarrow's errors are OSErrors too
        raise write_failed(os.fspath(out), err, written=None, existed=False) from err
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %d preference pairs to %s", len(pairs), out)
