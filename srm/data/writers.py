"""Writing pairs and records: JSON Lines and ``datasets`` directories, atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from srm.data.schema import PreferencePair

logger = logging.getLogger(__name__)


def write_jsonl(pairs: Iterable[PreferencePair], path: str | os.PathLike[str]) -> None:
    """Write pairs as TRL-style JSON Lines that :func:`load_pairs` reads back unchanged.

    Atomic, like :func:`write_json_lines`. The parent directory must exist.
    """
    count = write_json_lines((pair.to_dict() for pair in pairs), path)
    logger.info("wrote %d preference pairs to %s", count, path)


def write_json_lines(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write one JSON object per line, atomically; return the number of lines.

    The file is written to a temporary sibling and moved into place with ``os.replace``, so
    readers see either the old file or the complete new one, never a partial write.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide permissions, like a plain open() would;
    # tempfile.mkstemp would leave the final file readable by its owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for record in records:
                # allow_nan=False: NaN is not JSON, and load_pairs would reject it anyway.
                fh.write(json.dumps(record, ensure_ascii=False, allow_nan=False))
                fh.write("\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return count


def write_dataset_dir(pairs: Sequence[PreferencePair], out: str | os.PathLike[str]) -> None:
    """Write pairs as a ``datasets.Dataset.save_to_disk`` directory at ``out`` (which must not
    exist), that :func:`srm.data.load_pairs` reads back unchanged.

    Saved into a temporary sibling and renamed into place, so ``out`` is either absent or
    complete. The ``subset`` column is written only when a pair has one.
    """
    from datasets import Dataset

    out = Path(out)
    columns = ["id", "prompt", "chosen", "rejected", "source", "margin"]
    if any(p.subset is not None for p in pairs):
        columns.append("subset")
    data = {c: [getattr(p, c) for p in pairs] for c in columns}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        Dataset.from_dict(data).save_to_disk(str(tmp / "data"))
        (tmp / "data").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %d preference pairs to %s", len(pairs), out)
