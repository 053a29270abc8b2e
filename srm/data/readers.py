"""Reading inputs into rows, one reader per format (JSON Lines, JSON, CSV, Parquet, a saved
dataset), with the checks that come before any reading: a path that is a regular file, under
the size limit (:func:`max_input_bytes`), of a format we can tell.

A row is ``(location, value, error)``: where it is (``"line 3"``, ``"row 3"``), the parsed
record, and why it could not be parsed (then the value is None). What a record must hold is
decided later (:mod:`srm.data.pairs`, :mod:`srm.data.steps`), so one bad line gets its own
message instead of ending the read.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srm import files
from srm.data.fields import Row, type_name
from srm.data.schema import IN_MEMORY_FILE, IN_MEMORY_SOURCE, DataError, Problem

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "json", "csv", "parquet", "dataset")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}
_SUPPORTED = (
    ".jsonl/.ndjson (JSON Lines), .json (a list of records), .csv, .parquet, or a directory "
    "written by datasets' save_to_disk"
)
#: What to give instead of a path that is not an input file.
_EXPECTED = "a data file or a saved dataset directory"
_UTF8_BOM = b"\xef\xbb\xbf"


def open_rows(
    source: str | os.PathLike[str] | datasets.Dataset | datasets.DatasetDict,
    format: str | None,
    default_source: str | None,
    *,
    csv_refused: str | None = None,
) -> tuple[Iterator[Row], str, str]:
    """The rows of ``source``, its label for messages, and the source name for records
    without one. ``csv_refused``, when given, is the reason CSV input is refused."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)} or None")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = os.fspath(source)
        format = _path_format(path, label, format)
        if format == "csv" and csv_refused is not None:
            raise DataError([Problem(label, "", None, csv_refused)])
        fallback = default_source or path.stem or path.resolve().name or IN_MEMORY_SOURCE
        return _read_path(path, label, format), label, fallback
    if format is not None:
        raise ValueError("format= only applies to paths; a Dataset needs no format")
    rows = _dataset_rows(_single_split(source, IN_MEMORY_FILE), IN_MEMORY_FILE)
    return rows, IN_MEMORY_FILE, default_source or IN_MEMORY_SOURCE


def max_input_bytes() -> int:
    """The largest input file read (:func:`srm.files.max_input_bytes`: ``$SRM_MAX_INPUT_MB``
    megabytes, else 2048); a bad setting is a :class:`DataError`."""
    with _as_data_error():
        return files.max_input_bytes()


def check_input_file(path: Path, label: str | None = None) -> None:
    """Refuse, with a :class:`DataError`, what cannot be an input file: a missing path, a
    FIFO, a device or a socket (reading one blocks forever or never ends), or a file over
    :func:`max_input_bytes` (the one rule, :func:`srm.files.check_input_file`). Directories
    pass: a saved dataset is a directory."""
    with _as_data_error():
        files.check_input_file(path, label, expected=_EXPECTED, directories=True)


@contextlib.contextmanager
def _as_data_error() -> Iterator[None]:
    """:class:`srm.files.FileError` as a :class:`DataError` about the file as a whole."""
    try:
        yield
    except files.FileError as err:
        raise DataError([Problem(err.label, "", None, err.reason)]) from None


def _path_format(path: Path, label: str, format: str | None) -> str:
    """The format of ``path`` (``format`` if given); DataError if it is missing, not a file
    to read (:func:`check_input_file`) or of an unrecognised type."""

    def fail(message: str) -> DataError:
        return DataError([Problem(label, "", None, message)])

    check_input_file(path, label)
    if format is None:
        if path.is_dir():
            format = "dataset"
        else:
            format = _EXTENSIONS.get(path.suffix.lower())
            if format is None:
                shown = f"extension '{path.suffix}'" if path.suffix else "no extension"
                raise fail(
                    f"cannot tell the format from {shown}; supported: {_SUPPORTED}. "
                    f"Rename the file or pass format= (one of {', '.join(FORMATS)})"
                )
    return format


def _read_path(path: Path, label: str, format: str | None) -> Iterator[Row]:
    """Pick a reader for ``path``; raise DataError for problems with the file as a whole."""
    format = _path_format(path, label, format)
    if format == "jsonl":
        return _read_jsonl(path, label)
    if format == "json":
        return _read_json(path, label)
    if format == "csv":
        return _read_csv(path, label)
    if format == "parquet":
        return _read_parquet(path, label)
    return _read_dataset_dir(path, label)


def _read_bytes(path: Path, label: str) -> bytes:
    """The file's bytes, reading no more than the limit (a file may grow while it is read,
    or, like those in /proc, report a size of 0)."""
    with _as_data_error():
        return files.read_input_bytes(path, label, expected=_EXPECTED)


def _read_jsonl(path: Path, label: str, data: bytes | None = None) -> Iterator[Row]:
    # JSON Lines is parsed here, line by line with the json module, rather than through
    # datasets.Dataset.from_json: that reader reports the first bad line only (if at all),
    # drops line numbers, and infers one schema for the whole file, turning a string in one
    # record and a number in another into a cast error or a silent conversion. Doing it
    # ourselves gives every problem its exact line, and it is fast (about 0.1 s for 11 MB).
    if data is None:
        data = _read_bytes(path, label)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    # Split on "\n" only: JSON strings cannot hold a raw newline, while str.splitlines would
    # also split on characters such as U+2028 that may legally appear inside a string.
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        location = f"line {lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield location, None, f"not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8"
            continue
        if not line.strip():
            continue
        try:
            yield location, _parse_json(line), None
        except json.JSONDecodeError as exc:
            yield location, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
        except ValueError as exc:
            yield location, None, str(exc)


def _read_json(path: Path, label: str) -> Iterator[Row]:
    data = _read_bytes(path, label)
    body = data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data
    if body.lstrip()[:1] == b"{":
        # An object first means JSON Lines (datasets' to_json default), not a list.
        logger.debug("%s starts with an object; reading it as JSON Lines", path)
        yield from _read_jsonl(path, label, data)
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            [Problem(label, "", None, f"not UTF-8 text (byte {exc.start + 1}); save it as UTF-8")]
        ) from exc
    if not text.strip():
        return
    try:
        document = _parse_json(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} (column {exc.colno})"
        raise DataError([Problem(label, f"line {exc.lineno}", None, message)]) from exc
    except ValueError as exc:
        raise DataError([Problem(label, "", None, str(exc))]) from exc
    if not isinstance(document, list):
        raise DataError(
            [
                Problem(
                    label,
                    "",
                    None,
                    f"expected a top-level JSON list of records, got {type_name(document)}; "
                    "write [{...}, {...}] or use JSON Lines (.jsonl)",
                )
            ]
        )
    for index, record in enumerate(document, start=1):
        yield f"row {index}", record, None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json keeps the last one silently,
    dropping the other value)."""
    record = dict(items)
    if len(record) != len(items):
        seen: set[str] = set()
        twice = next(key for key, _ in items if key in seen or seen.add(key))
        raise _DuplicateKey(f"field '{twice}' appears twice in one object; keep one of them")
    return record


def _parse_json(text: str) -> Any:
    """``json.loads`` whose every failure is a ValueError with a message for the user:
    invalid JSON, a duplicated key, an integer longer than Python reads, or nesting deeper
    than the parser's recursion allows."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, _DuplicateKey):
        raise
    except ValueError as exc:  # int(...) past sys.get_int_max_str_digits(), 4300 by default
        raise ValueError(
            "holds an integer too long for Python to read (over 4300 digits); write such an "
            "id as a string"
        ) from exc
    except RecursionError as exc:
        raise ValueError(
            "arrays or objects nested too deeply to read (a preference record needs a few "
            "levels at most); check what wrote this file"
        ) from exc


def _read_csv(path: Path, label: str) -> Iterator[Row]:
    from datasets import Dataset, Features, Value

    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            # datasets fails on a header-only file ("corresponds to no data"): say "no records".
            has_rows = any(row for row in reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError([Problem(label, "", None, f"cannot read it as CSV: {exc}")]) from exc
    if not header or not has_rows:
        return
    twice = sorted(name for name, n in Counter(header).items() if n > 1)
    if twice:
        # datasets would keep one of the columns and silently drop the other.
        columns = ", ".join(f"'{name}'" for name in twice)
        raise DataError(
            [
                Problem(
                    label,
                    "line 1",
                    None,
                    f"the header names {columns} more than once; rename or remove the extra "
                    "column so no values are dropped",
                )
            ]
        )
    # Declaring every column as a string stops pandas from guessing types per column
    # ("007" -> 7, a response "42" -> int), and na_filter=False keeps empty cells as "".
    features = Features({name: Value("string") for name in header})
    try:
        with _quiet_datasets(), tempfile.TemporaryDirectory() as cache_dir:
            # A throwaway cache_dir keeps datasets from writing into the user's HF cache.
            dataset = Dataset.from_csv(
                os.fspath(path),
                cache_dir=cache_dir,
                keep_in_memory=True,
                features=features,
                na_filter=False,
                encoding="utf-8-sig",
            )
    except Exception as exc:  # pandas and datasets raise many unrelated types here
        raise DataError([Problem(label, "", None, f"cannot read it as CSV: {exc}")]) from exc
    for location, record, error in _dataset_rows(dataset, label):
        yield location, _csv_cells_to_values(record), error


def _csv_cells_to_values(record: dict[str, Any]) -> dict[str, Any]:
    """Give CSV text cells the meaning JSON values would have (empty = absent, margin = number)."""
    for key in ("id", "source", "margin", "subset"):
        if record.get(key) == "":
            record[key] = None
    margin = record.get("margin")
    if isinstance(margin, str):
        with contextlib.suppress(ValueError):
            record["margin"] = float(margin)
    return record


def _read_parquet(path: Path, label: str) -> Iterator[Row]:
    from datasets import Dataset

    try:
        with _quiet_datasets(), tempfile.TemporaryDirectory() as cache_dir:
            dataset = Dataset.from_parquet(
                os.fspath(path), cache_dir=cache_dir, keep_in_memory=True
            )
    except Exception as exc:  # pyarrow and datasets raise many unrelated types here
        raise DataError([Problem(label, "", None, f"cannot read it as Parquet: {exc}")]) from exc
    return _dataset_rows(dataset, label)


def _read_dataset_dir(path: Path, label: str) -> Iterator[Row]:
    from datasets import load_from_disk

    try:
        with _quiet_datasets():
            loaded = load_from_disk(os.fspath(path))
    except Exception as exc:  # FileNotFoundError for plain folders, others for damaged ones
        raise DataError(
            [
                Problem(
                    label,
                    "",
                    None,
                    "not a dataset saved with datasets' save_to_disk "
                    f"({type(exc).__name__}: {exc}); pass such a directory or a "
                    ".jsonl/.json/.csv/.parquet file",
                )
            ]
        ) from exc
    return _dataset_rows(_single_split(loaded, label), label)


def _single_split(data: Any, label: str) -> datasets.Dataset:
    """Return ``data`` as one Dataset: itself, or the only split of a DatasetDict."""
    import datasets

    if isinstance(data, datasets.DatasetDict):
        if len(data) == 1:
            return next(iter(data.values()))
        splits = ", ".join(f"'{name}'" for name in data)
        if not splits:
            raise DataError([Problem(label, "", None, "no records; the DatasetDict has no splits")])
        first = next(iter(data))
        how = (
            f"pass dataset_dict['{first}']"
            if label == IN_MEMORY_FILE
            else f"pass one split's folder, e.g. {os.path.join(label, first)}"
        )
        raise DataError(
            [
                Problem(
                    label,
                    "",
                    None,
                    f"a DatasetDict with splits {splits}; load one split at a time: {how}",
                )
            ]
        )
    if isinstance(data, datasets.Dataset):
        return data
    raise TypeError(
        f"load_pairs() takes a path, a datasets.Dataset or a DatasetDict, "
        f"not {type(data).__name__}; for other iterables build a Dataset with "
        "datasets.Dataset.from_list(...)"
    )


def _dataset_rows(dataset: datasets.Dataset, label: str) -> Iterator[Row]:
    # to_list() ignores any set_format (torch, numpy) and honours select()/shuffle() indices.
    for index, record in enumerate(dataset.to_list(), start=1):
        yield f"row {index}", record, None


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Hide datasets' "Generating train split" bars, which mean nothing to our users."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
