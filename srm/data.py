"""Load, validate and write preference pairs.

Every trainer, scorer and inspector in SRM Studio works on one record type,
:class:`PreferencePair`: a prompt, the response a rater preferred (``chosen``) and the one
they did not (``rejected``). This module turns the formats preference data is published in
into that type and refuses data it cannot trust.

Inputs (``format=`` overrides detection by extension):

* JSON Lines (``.jsonl``, ``.ndjson``): one record per line; blank lines are skipped.
* JSON (``.json``): a top-level list of records. A ``.json`` file whose first character is
  ``{`` is read as JSON Lines, because that is what ``datasets.Dataset.to_json`` writes.
* CSV (``.csv``): every cell is read as text (so ids like ``007`` and responses like ``42``
  survive); an empty ``id``, ``source`` or ``margin`` cell means "absent" and ``margin`` is
  parsed as a number.
* Parquet (``.parquet``).
* A directory written by ``datasets.Dataset.save_to_disk``. A ``DatasetDict`` directory with
  a single split loads that split; with several splits it is an error that names them,
  because silently picking one (say ``train``) would load the wrong data without anyone
  noticing. Pass the split's sub-folder (``path/train``) instead.
* An in-memory ``datasets.Dataset`` (or single-split ``DatasetDict``).

Record shapes, detected per record (so one bad record gets its own message rather than
derailing the whole file):

1. **TRL**: ``prompt``, ``chosen``, ``rejected`` strings. Used as given, verbatim.
2. **HH-RLHF transcripts**: ``chosen`` and ``rejected`` only, each a whole conversation
   ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. The prompt is the longest shared prefix that ends
   with ``"\\n\\nAssistant:"`` (kept verbatim, like the bundled data); the responses are what
   follows it, stripped of surrounding whitespace.
3. **Chat messages**: ``chosen``/``rejected`` are lists of ``{"role", "content"}``, optionally
   with a ``prompt`` list (TRL's conversational format; it is prepended to both). The final
   turn must be the assistant's and everything before it must match between chosen and
   rejected. The earlier turns become the prompt in HH transcript form, each turn rendered
   as ``"\\n\\n<Name>: <content>"`` with user -> ``Human``, assistant -> ``Assistant``,
   system -> ``System``, followed by ``"\\n\\nAssistant:"``; contents are kept verbatim. The
   final contents, stripped, are the responses. A conversation given as HH transcript and
   as chat messages therefore yields the same pair (and the same derived id).

Detection rule: a record with a list in ``prompt``, ``chosen`` or ``rejected`` is chat;
otherwise a record with a ``prompt`` key is TRL; otherwise it is an HH transcript.

Optional fields for every shape: ``id`` (string or integer; integers become strings),
``source`` (string, kept even when empty so written files read back unchanged) and
``margin`` (finite number, stored as float) and ``subset`` (string, a benchmark subset such as
RewardBench's). ``null`` means absent.
A record without an id gets a content hash, ``"sha256:" + sha256(prompt + "\\x1f" + chosen +
"\\x1f" + rejected).hexdigest()[:16]`` over UTF-8 bytes: the same pair gets the same id on
every run and machine, whichever shape it arrived in. ``source`` falls back to
``default_source``, then the file's stem (``sample_50``), then ``"dataset"`` for in-memory
data.

Step-labelled responses (:class:`StepRecord`, read by :func:`load_steps`) are TRL's
stepwise-supervision format: ``prompt``, ``completions`` (the response's sentences, in order)
and ``labels`` (one bool per sentence, True = good), with optional ``id`` and ``source``. They
come from the same inputs except CSV, whose cells cannot hold the two lists.

Validation is all-or-nothing: every problem in the input is collected and raised together
as one :class:`DataError`, and nothing is returned from an invalid input, so a half-loaded
file can never reach training. An empty or whitespace-only prompt is an error: every
bundled dataset has a prompt on every pair, and an empty one almost always means a column
mapping mistake (for instance HH transcripts next to an empty ``prompt`` column).

Also refused, each with its own message (docs/reliability.md lists them): text no store can
hold (a NUL character, a lone surrogate; :func:`text_problem`), a field named twice (a CSV
column or a key of a JSON object: the readers would drop one value), integers too long for
Python and nesting too deep for its JSON parser, margins beyond float32, and paths that are
not regular files or are over ``$SRM_MAX_INPUT_MB`` (:func:`check_input_file`).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import secrets
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srm.segment import Span

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

__all__ = [
    "DataError",
    "PreferencePair",
    "Problem",
    "StepRecord",
    "content_id",
    "check_input_file",
    "load_pairs",
    "load_steps",
    "text_problem",
    "write_jsonl",
]

#: Value of :attr:`Problem.file` for problems in an in-memory dataset.
IN_MEMORY_FILE = "<dataset>"
#: Value of :attr:`PreferencePair.source` for in-memory data without a source.
IN_MEMORY_SOURCE = "dataset"

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

ASSISTANT_TAG = "\n\nAssistant:"
_ASSISTANT_TAG_SHOWN = "'\\n\\nAssistant:'"
#: How chat roles are named when a conversation is rendered as an HH-style prompt.
CHAT_ROLE_NAMES = {"system": "System", "user": "Human", "assistant": "Assistant"}

_ADAPTERS_TRIED = (
    "TRL (prompt, chosen, rejected as strings), HH-RLHF transcripts (chosen, rejected as "
    "'\\n\\nHuman: ...\\n\\nAssistant: ...' strings) and chat messages (chosen, rejected and "
    "optionally prompt as lists of {role, content})"
)
#: What joins a response's steps into its text by default (TRL's ``step_separator``).
DEFAULT_STEP_SEPARATOR = "\n"
_STEP_FIELDS = (
    "step records need 'prompt', 'completions' and 'labels' (TRL's stepwise-supervision format)"
)
_MAX_LISTED = 20
#: The environment variable that sets the input size limit, in megabytes (see max_input_bytes).
MAX_INPUT_MB_VARIABLE = "SRM_MAX_INPUT_MB"
DEFAULT_MAX_INPUT_MB = 2048
#: The largest margin accepted: float32's largest finite value, since training computes in it.
MAX_MARGIN = 3.4028234663852886e38
#: The fields of a record whose strings end up in a pair (see _check_characters).
_PAIR_TEXT_FIELDS = ("prompt", "chosen", "rejected", "id", "source", "subset")
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class PreferencePair:
    """One preference judgement: for ``prompt``, ``chosen`` was preferred over ``rejected``.

    ``margin`` is an optional strength of that preference (TRL's reward-margin column);
    ``None`` means the data did not say. ``subset`` is a benchmark subset name (RewardBench's
    ``subset`` column, e.g. ``"mt-bench-hard"``), used to report section scores.
    """

    id: str
    prompt: str
    chosen: str
    rejected: str
    source: str = ""
    margin: float | None = None
    subset: str | None = None

    def swapped(self) -> PreferencePair:
        """Return the pair with chosen and rejected exchanged, for flipping a wrong label.

        The id, source and margin are kept: the pair is the same comparison with its verdict
        reversed, and the margin is a strength of preference, not a signed score.
        """
        return replace(self, chosen=self.rejected, rejected=self.chosen)

    def to_dict(self) -> dict[str, Any]:
        """Return a TRL-style record (what :func:`write_jsonl` writes; ``margin`` only if set)."""
        record: dict[str, Any] = {
            "id": self.id,
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "source": self.source,
        }
        if self.margin is not None:
            record["margin"] = self.margin
        if self.subset is not None:
            record["subset"] = self.subset
        return record


@dataclass(frozen=True)
class StepRecord:
    """One response given as its sentences (``completions``), each judged by a person:
    ``labels[j]`` is True when sentence j is good, False when it is bad.

    This is TRL's stepwise-supervision format (what ``PRMTrainer`` trains on, and what
    ``srm export --format prm`` writes); SRM Studio uses it to check whether a model's
    sentence rewards point at the sentences people marked bad.
    """

    id: str
    prompt: str
    completions: tuple[str, ...]
    labels: tuple[bool, ...]
    source: str = ""

    def response(self, separator: str = DEFAULT_STEP_SEPARATOR) -> tuple[str, list[Span]]:
        """The response text the model scores, and each sentence's span in it.

        Steps are joined by ``separator``; a step that already ends with whitespace gets
        none, and nothing follows the last step. A span covers its step and the separator
        after it, so the spans tile the text and keep the record's sentence boundaries:

        >>> record = StepRecord("a", "Q?", ("One.", "Two.\\n", "End."), (True, False, True))
        >>> text, spans = record.response()
        >>> text, [(span.start, span.end) for span in spans]
        ('One.\\nTwo.\\nEnd.', [(0, 5), (5, 10), (10, 14)])
        """
        spans: list[Span] = []
        start = 0
        last = len(self.completions) - 1
        for j, step in enumerate(self.completions):
            text = step if j == last or step[-1:].isspace() else step + separator
            spans.append(Span(start, start + len(text), text))
            start += len(text)
        return "".join(span.text for span in spans), spans

    def to_dict(self) -> dict[str, Any]:
        """Return the TRL-style record :func:`load_steps` reads back unchanged."""
        return {
            "id": self.id,
            "prompt": self.prompt,
            "completions": list(self.completions),
            "labels": list(self.labels),
            "source": self.source,
        }


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located precisely enough to go and fix it.

    ``file`` is the path as the caller gave it (``"<dataset>"`` for in-memory data);
    ``location`` is ``"line N"`` for JSON Lines and JSON syntax errors, ``"row N"`` (1-based,
    header not counted) for JSON lists, CSV, Parquet and datasets, and ``""`` for problems
    with the file as a whole; ``field`` is the offending field, or ``None`` when the problem
    is the whole record.
    """

    file: str
    location: str
    field: str | None
    message: str

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.location}" if self.location else self.file]
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)


class DataError(ValueError):
    """Preference data that cannot be loaded; ``problems`` lists every reason found.

    The message lists the first 20 problems and counts the rest, so a file that is wrong on
    every line still produces a readable error.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("DataError needs at least one Problem")
        self.problems: list[Problem] = list(problems)
        super().__init__(_render_problems(self.problems))

    def __reduce__(self) -> tuple[type[DataError], tuple[list[Problem]]]:
        # Keep the exception picklable (multiprocessing, pytest-xdist): the default would
        # call DataError(message) with the rendered string.
        return (DataError, (self.problems,))


def _render_problems(problems: list[Problem]) -> str:
    if len(problems) == 1:
        return f"{problems[0]}\nNothing was loaded; fix this and load again."
    files = sorted({p.file for p in problems})
    lines = [f"{len(problems)} problems in {', '.join(files)}; nothing was loaded:"]
    lines += [f"  {p}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
    lines.append("Fix these and load again.")
    return "\n".join(lines)


# A row as read from the input, before validation: where it is, the parsed value, and the
# reason it could not be parsed (if so).
_Row = tuple[str, Any, str | None]


def load_pairs(
    source: str | os.PathLike[str] | datasets.Dataset | datasets.DatasetDict,
    *,
    format: str | None = None,
    default_source: str | None = None,
) -> list[PreferencePair]:
    """Read and validate preference pairs from a file, a saved dataset or a ``Dataset``.

    ``format`` is one of ``"jsonl"``, ``"json"``, ``"csv"``, ``"parquet"``, ``"dataset"``
    and overrides detection by extension (paths only). ``default_source`` is used for
    records without a ``source`` field. See the module docstring for accepted shapes.

    Raises :class:`DataError` listing every problem found (nothing is returned from an
    invalid input), including a missing path, an unsupported extension or an empty input.
    """
    rows, label, fallback = _open_rows(source, format, default_source)
    pairs, problems, shapes = _validate(rows, label, fallback)
    if problems:
        raise DataError(problems)
    if not pairs:
        raise DataError(
            [Problem(label, "", None, "no records; expected at least one preference pair")]
        )
    logger.info(
        "loaded %d preference pairs from %s (%s)",
        len(pairs),
        label,
        ", ".join(f"{n} {shape}" for shape, n in sorted(shapes.items())),
    )
    return pairs


def load_steps(
    source: str | os.PathLike[str] | datasets.Dataset | datasets.DatasetDict,
    *,
    format: str | None = None,
    default_source: str | None = None,
) -> list[StepRecord]:
    """Read and validate step-labelled responses (TRL's stepwise-supervision format).

    Each record needs ``prompt`` (a non-empty string), ``completions`` (at least two
    non-empty strings: the response's sentences, in order) and ``labels`` (one JSON bool per
    sentence, True = good); ``id`` (string or integer) and ``source`` are optional, as for
    :func:`load_pairs`. Inputs are those of :func:`load_pairs` except CSV, and ``format`` and
    ``default_source`` mean the same. A record without an id gets
    ``"sha256:" + sha256(prompt, completions and labels)[:16]``.

    A response of one sentence is refused: there is nothing to point at. Labels must be real
    bools, not 1/0 or "true", because a column of 1/0 often means a score or a rating scale
    rather than good/bad, and guessing would silently change what is measured.

    Raises :class:`DataError` listing every problem found; nothing is returned from an
    invalid input.
    """
    rows, label, fallback = _open_rows(
        source,
        format,
        default_source,
        csv_refused=(
            "CSV cannot hold step records: 'completions' and 'labels' are lists, which CSV "
            "cells can only hold as text; write JSON Lines (one record per line), a JSON "
            "list, Parquet or a saved dataset instead"
        ),
    )
    records: list[StepRecord] = []
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for location, raw, error in rows:
        if error is not None:
            problems.append(Problem(label, location, None, error))
            continue
        found: _Found = []
        record, derived = _to_step_record(raw, fallback, found)
        record_id = record.id if record is not None else _explicit_id(raw)
        if record_id is not None:
            if record_id in first_seen:
                why = (
                    "; that id was derived from the content, so the two records are exact "
                    "duplicates: remove one"
                    if derived
                    else "; ids must be unique: rename or remove one of them"
                )
                found.append(
                    ("id", f"id '{record_id}' already used on {first_seen[record_id]}{why}")
                )
            else:
                first_seen[record_id] = location
        problems.extend(Problem(label, location, f, m) for f, m in found)
        if record is not None and not found:
            records.append(record)
    if problems:
        raise DataError(problems)
    if not records:
        raise DataError(
            [Problem(label, "", None, "no records; expected at least one step-labelled response")]
        )
    logger.info("loaded %d step-labelled responses from %s", len(records), label)
    return records


def _open_rows(
    source: str | os.PathLike[str] | datasets.Dataset | datasets.DatasetDict,
    format: str | None,
    default_source: str | None,
    *,
    csv_refused: str | None = None,
) -> tuple[Iterator[_Row], str, str]:
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


# --------------------------------------------------------------------------------- reading


def max_input_bytes() -> int:
    """The largest input file read: ``$SRM_MAX_INPUT_MB`` megabytes, else 2048 (2 GiB).

    Files are read whole into memory; the limit turns a wrong path (a disk image, a log that
    keeps growing, ``/dev/zero``) into a clear error instead of a process that eats the
    machine's memory.
    """
    value = os.environ.get(MAX_INPUT_MB_VARIABLE, "").strip()
    if not value:
        return DEFAULT_MAX_INPUT_MB * 1024 * 1024
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise DataError(
            [
                Problem(
                    MAX_INPUT_MB_VARIABLE,
                    "",
                    None,
                    f"got {value!r}; give a positive number of megabytes, or unset it for "
                    f"the default ({DEFAULT_MAX_INPUT_MB})",
                )
            ]
        )
    return int(megabytes * 1024 * 1024)


def check_input_file(path: Path, label: str | None = None) -> None:
    """Refuse, with a :class:`DataError`, what cannot be an input file: a missing path, a
    FIFO, a device or a socket (reading one blocks forever or never ends), or a file over
    :func:`max_input_bytes`. Directories pass: a saved dataset is a directory."""
    label = os.fspath(path) if label is None else label

    def fail(message: str) -> DataError:
        return DataError([Problem(label, "", None, message)])

    try:
        info = path.stat()  # follows symlinks: /dev/zero behind a link is a device
    except FileNotFoundError:
        raise fail(
            f"no such file or directory; check the path (relative paths are resolved from "
            f"{Path.cwd()})"
        ) from None
    except OSError as exc:
        raise fail(f"cannot read it: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        return
    if not stat.S_ISREG(info.st_mode):
        raise fail(
            f"not a regular file (it is {_file_kind(info.st_mode)}); give a data file or a "
            "saved dataset directory"
        )
    limit = max_input_bytes()
    if info.st_size > limit:
        raise fail(_too_big(info.st_size, limit))


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def _too_big(size: int | None, limit: int) -> str:
    shown = f"is {_bytes(size)}, over" if size is not None else "is over"
    return (
        f"{shown} the {_bytes(limit)} limit for input files; split it, or raise the limit "
        f"with {MAX_INPUT_MB_VARIABLE}=MEGABYTES"
    )


def _bytes(n: int) -> str:
    """``"2,048 MB"``, ``"6 KB"``, ``"300 bytes"``."""
    if n >= 1024**2:
        return f"{n / 1024**2:,.0f} MB"
    return f"{n / 1024:,.0f} KB" if n >= 1024 else f"{n} bytes"


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


def _read_path(path: Path, label: str, format: str | None) -> Iterator[_Row]:
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
    limit = max_input_bytes()
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror}"
        raise DataError([Problem(label, "", None, message)]) from exc
    if len(data) > limit:
        raise DataError([Problem(label, "", None, _too_big(None, limit))])
    return data


def _read_jsonl(path: Path, label: str, data: bytes | None = None) -> Iterator[_Row]:
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


def _read_json(path: Path, label: str) -> Iterator[_Row]:
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
                    f"expected a top-level JSON list of records, got {_type_name(document)}; "
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


def _read_csv(path: Path, label: str) -> Iterator[_Row]:
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


def _read_parquet(path: Path, label: str) -> Iterator[_Row]:
    from datasets import Dataset

    try:
        with _quiet_datasets(), tempfile.TemporaryDirectory() as cache_dir:
            dataset = Dataset.from_parquet(
                os.fspath(path), cache_dir=cache_dir, keep_in_memory=True
            )
    except Exception as exc:  # pyarrow and datasets raise many unrelated types here
        raise DataError([Problem(label, "", None, f"cannot read it as Parquet: {exc}")]) from exc
    return _dataset_rows(dataset, label)


def _read_dataset_dir(path: Path, label: str) -> Iterator[_Row]:
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


def _dataset_rows(dataset: datasets.Dataset, label: str) -> Iterator[_Row]:
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


# ------------------------------------------------------------------------------ validation

# (field, message) pairs found in one record; the caller adds file and location.
_Found = list[tuple[str | None, str]]


def _validate(
    rows: Iterable[_Row], label: str, fallback_source: str
) -> tuple[list[PreferencePair], list[Problem], Counter[str]]:
    """Turn rows into pairs, collecting every problem (including duplicate ids)."""
    pairs: list[PreferencePair] = []
    problems: list[Problem] = []
    shapes: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    for location, record, error in rows:
        if error is not None:
            problems.append(Problem(label, location, None, error))
            continue
        found: _Found = []
        pair, shape, derived = _to_pair(record, fallback_source, found)
        pair_id = pair.id if pair is not None else _explicit_id(record)
        if pair_id is not None:
            if pair_id in first_seen:
                why = (
                    "; that id was derived from the content, so the two records are exact "
                    "duplicates: remove one"
                    if derived
                    else "; ids must be unique: rename or remove one of them"
                )
                found.append(("id", f"id '{pair_id}' already used on {first_seen[pair_id]}{why}"))
            else:
                first_seen[pair_id] = location
        problems.extend(Problem(label, location, f, m) for f, m in found)
        if pair is not None and not found:
            pairs.append(pair)
            shapes[shape] += 1
    return pairs, problems, shapes


def _explicit_id(record: Any) -> str | None:
    """The record's own id if it is valid (so duplicates are reported on broken records too)."""
    if not isinstance(record, Mapping):
        return None
    value = record.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _to_pair(
    record: Any, fallback_source: str, found: _Found
) -> tuple[PreferencePair | None, str, bool]:
    """Convert one record, appending its problems to ``found``.

    Returns the pair (``None`` if anything is wrong), the shape name, and whether the id was
    derived from the content.
    """
    if not isinstance(record, Mapping):
        found.append((None, f"expected a JSON object (a record), got {_type_name(record)}"))
        return None, "", False
    shape = _detect_shape(record)
    if shape is None:
        keys = ", ".join(repr(str(k)) for k in record) or "none"
        found.append(
            (None, f"unrecognised record shape: found keys {keys}; tried {_ADAPTERS_TRIED}")
        )
        return None, "", False
    adapter = {"trl": _adapt_trl, "hh": _adapt_hh, "chat": _adapt_chat}[shape]
    texts = adapter(record, found)

    explicit_id = _check_id(record, found)
    margin = _check_margin(record, found)
    source = _check_optional_string(record, "source", found)
    subset = _check_optional_string(record, "subset", found)
    _check_characters(record, _PAIR_TEXT_FIELDS, found)

    if texts is None or found:
        return None, shape, False
    prompt, chosen, rejected = texts
    if chosen == rejected:
        found.append(
            (
                "rejected",
                "chosen and rejected are identical; a preference pair needs two different "
                "responses",
            )
        )
        return None, shape, False
    pair = PreferencePair(
        id=explicit_id if explicit_id is not None else content_id(prompt, chosen, rejected),
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        source=source if source is not None else fallback_source,
        margin=margin,
        subset=subset,
    )
    return pair, shape, explicit_id is None


def content_id(prompt: str, chosen: str, rejected: str) -> str:
    """Return the id given to pairs that have none: a hash of their content.

    ``"sha256:"`` plus the first 16 hex digits of SHA-256 over the UTF-8 bytes of
    ``prompt + "\\x1f" + chosen + "\\x1f" + rejected`` (0x1F, the ASCII unit separator, cannot
    be confused with text). Stable across runs, machines and Python versions.
    """
    digest = hashlib.sha256("\x1f".join((prompt, chosen, rejected)).encode("utf-8"))
    return "sha256:" + digest.hexdigest()[:16]


def _detect_shape(record: Mapping[str, Any]) -> str | None:
    keys = ("prompt", "chosen", "rejected")
    if not any(key in record for key in keys):
        return None
    if any(isinstance(record.get(key), list) for key in keys):
        return "chat"
    if "prompt" in record:
        return "trl"
    return "hh"


def _adapt_trl(record: Mapping[str, Any], found: _Found) -> tuple[str, str, str] | None:
    prompt = _require_str(record, "prompt", found, "")
    chosen = _require_str(record, "chosen", found, "")
    rejected = _require_str(record, "rejected", found, "")
    if prompt is not None and not prompt.strip():
        found.append(
            (
                "prompt",
                "is empty; every pair needs the prompt its responses answer (if chosen and "
                "rejected are whole HH-RLHF transcripts, drop the 'prompt' field and they are "
                "split automatically)",
            )
        )
    _require_text(chosen, "chosen", found)
    _require_text(rejected, "rejected", found)
    if prompt is None or chosen is None or rejected is None:
        return None
    return prompt, chosen, rejected


def _adapt_hh(record: Mapping[str, Any], found: _Found) -> tuple[str, str, str] | None:
    hint = (
        " (records without 'prompt' are read as HH-RLHF transcripts, which need both "
        "'chosen' and 'rejected')"
    )
    chosen = _require_str(record, "chosen", found, hint)
    rejected = _require_str(record, "rejected", found, hint)
    if chosen is None or rejected is None:
        return None
    cut = os.path.commonprefix([chosen, rejected]).rfind(ASSISTANT_TAG)
    if cut < 0:
        found.append(
            (
                "chosen",
                "there is no 'prompt' field, and chosen and rejected are not HH-RLHF "
                f"transcripts sharing a conversation up to {_ASSISTANT_TAG_SHOWN}; add a "
                "'prompt' field, or give both as '\\n\\nHuman: ...\\n\\nAssistant: ...'",
            )
        )
        return None
    end = cut + len(ASSISTANT_TAG)
    prompt = chosen[:end]
    if not prompt[:cut].strip():
        found.append(
            (
                "chosen",
                f"nothing comes before the shared {_ASSISTANT_TAG_SHOWN}, so the prompt would "
                "be empty; the transcript must start with the human's turn",
            )
        )
    chosen_reply = chosen[end:].strip()
    rejected_reply = rejected[end:].strip()
    for name, reply in (("chosen", chosen_reply), ("rejected", rejected_reply)):
        if not reply:
            found.append(
                (
                    name,
                    f"the response after the final shared {_ASSISTANT_TAG_SHOWN} is empty; "
                    "a preference pair needs two non-empty responses",
                )
            )
    return prompt, chosen_reply, rejected_reply


def _adapt_chat(record: Mapping[str, Any], found: _Found) -> tuple[str, str, str] | None:
    before = len(found)
    prompt_turns: list[tuple[str, str]] = []
    if record.get("prompt") is not None:
        prompt_turns = _messages(record, "prompt", found) or []
    conversations = {}
    for name in ("chosen", "rejected"):
        turns = _messages(record, name, found)
        if turns is None:
            continue
        full = prompt_turns + turns
        if not full:
            found.append((name, "has no messages; it needs at least the assistant's response"))
        elif full[-1][0] != "assistant":
            found.append(
                (
                    name,
                    f"the last message has role '{full[-1][0]}'; the final turn must be the "
                    "assistant's response being judged",
                )
            )
        else:
            conversations[name] = full
    if len(found) > before or len(conversations) != 2:
        return None
    chosen_turns, rejected_turns = conversations["chosen"], conversations["rejected"]
    history = chosen_turns[:-1]
    if history != rejected_turns[:-1]:
        pairs = zip(history, rejected_turns[:-1], strict=False)
        first = next(
            (i for i, (a, b) in enumerate(pairs) if a != b),
            min(len(history), len(rejected_turns) - 1),
        )
        found.append(
            (
                "rejected",
                f"the conversation before the final assistant turn differs from chosen's "
                f"(first difference at message {first}); chat pairs must share every turn "
                "except the last",
            )
        )
        return None
    if not history:
        found.append(
            (
                "chosen",
                "there are no turns before the final assistant turn, so the prompt would be "
                "empty; include the user's message",
            )
        )
        return None
    prompt = "".join(f"\n\n{CHAT_ROLE_NAMES[role]}: {content}" for role, content in history)
    prompt += ASSISTANT_TAG
    chosen = chosen_turns[-1][1].strip()
    rejected = rejected_turns[-1][1].strip()
    _require_text(chosen, "chosen", found)
    _require_text(rejected, "rejected", found)
    if len(found) > before:
        return None
    return prompt, chosen, rejected


def _messages(record: Mapping[str, Any], name: str, found: _Found) -> list[tuple[str, str]] | None:
    """Validate a list of chat messages; return (role, content) tuples or None."""
    if name not in record:
        found.append((name, "missing required field; chat records need 'chosen' and 'rejected'"))
        return None
    value = record[name]
    if not isinstance(value, list):
        found.append(
            (
                name,
                f"expected a list of {{role, content}} messages like the other fields of this "
                f"record, got {_type_name(value)}",
            )
        )
        return None
    turns: list[tuple[str, str]] = []
    ok = True
    for index, message in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(message, Mapping):
            found.append((where, f"expected a {{role, content}} object, got {_type_name(message)}"))
            ok = False
            continue
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in CHAT_ROLE_NAMES:
            shown = f"'{role}'" if isinstance(role, str) else _type_name(role)
            found.append(
                (
                    f"{where}.role",
                    f"expected one of {', '.join(repr(r) for r in CHAT_ROLE_NAMES)}, got {shown}",
                )
            )
            ok = False
        if not isinstance(content, str):
            found.append((f"{where}.content", f"expected a string, got {_type_name(content)}"))
            ok = False
        if ok:
            turns.append((role, content))
    return turns if ok else None


def _to_step_record(
    record: Any, fallback_source: str, found: _Found
) -> tuple[StepRecord | None, bool]:
    """Convert one step record, appending its problems to ``found``; return the record
    (``None`` if anything is wrong) and whether its id was derived from the content."""
    if not isinstance(record, Mapping):
        found.append((None, f"expected a JSON object (a record), got {_type_name(record)}"))
        return None, False
    hint = f"; {_STEP_FIELDS}"
    prompt = _require_str(record, "prompt", found, hint)
    if prompt is not None and not prompt.strip():
        found.append(("prompt", "is empty; every record needs the prompt its response answers"))
    completions = _step_completions(record, found, hint)
    labels = _step_labels(record, found, hint)
    # Compared on the raw lists, so a mismatch is reported beside problems inside them.
    steps, marks = record.get("completions"), record.get("labels")
    if isinstance(steps, list) and isinstance(marks, list) and len(steps) != len(marks):
        found.append(
            (
                "labels",
                f"has {_count(len(marks), 'label')} but completions has "
                f"{_count(len(steps), 'sentence')}; give one label per sentence",
            )
        )
    explicit_id = _check_id(record, found)
    source = _check_optional_string(record, "source", found)
    _check_characters(record, ("prompt", "completions", "id", "source"), found)
    if found or prompt is None or completions is None or labels is None:
        return None, False
    step_record = StepRecord(
        id=explicit_id
        if explicit_id is not None
        else _step_content_id(prompt, completions, labels),
        prompt=prompt,
        completions=tuple(completions),
        labels=tuple(labels),
        source=source if source is not None else fallback_source,
    )
    return step_record, explicit_id is None


def _step_completions(record: Mapping[str, Any], found: _Found, hint: str) -> list[str] | None:
    """The sentences of a step record, or None (problems appended to ``found``)."""
    if "completions" not in record:
        found.append(("completions", f"missing required field{hint}"))
        return None
    value = record["completions"]
    if not isinstance(value, list):
        split = "; split the response into its sentences" if isinstance(value, str) else ""
        found.append(
            (
                "completions",
                f"expected a list of strings (the response's sentences, in order), "
                f"got {_type_name(value)}{split}",
            )
        )
        return None
    if not value:
        found.append(("completions", "is empty; give the response's sentences, in order"))
        return None
    ok = True
    for j, step in enumerate(value):
        if not isinstance(step, str):
            found.append((f"completions[{j}]", f"expected a string, got {_type_name(step)}"))
            ok = False
        elif not step.strip():
            found.append(
                (f"completions[{j}]", "is empty or whitespace-only; every sentence needs text")
            )
            ok = False
    if len(value) == 1:
        found.append(
            (
                "completions",
                "has only one sentence; pointing at the bad sentence needs at least two, so "
                "a one-sentence response says nothing about credit assignment: split it into "
                "its sentences or drop the record",
            )
        )
        ok = False
    return value if ok else None


def _step_labels(record: Mapping[str, Any], found: _Found, hint: str) -> list[bool] | None:
    """The labels of a step record, or None (problems appended to ``found``)."""
    if "labels" not in record:
        found.append(("labels", f"missing required field{hint}"))
        return None
    value = record["labels"]
    if not isinstance(value, list):
        found.append(
            (
                "labels",
                f"expected a list of bools (true = good sentence), got {_type_name(value)}",
            )
        )
        return None
    ok = True
    for j, label in enumerate(value):
        if not isinstance(label, bool):
            shown = (
                f"{_type_name(label)} {label!r}"
                if isinstance(label, (int, float, str))
                else _type_name(label)
            )
            found.append(
                (
                    f"labels[{j}]",
                    f"expected a bool (true = good, false = bad), got {shown}; 1/0 and "
                    '"true"/"false" are not read as labels',
                )
            )
            ok = False
    return value if ok else None


def _step_content_id(prompt: str, completions: Sequence[str], labels: Sequence[bool]) -> str:
    """The id of a step record that has none: like :func:`content_id`, over the prompt, the
    sentences (0x1E between them) and the labels as ``1``/``0``."""
    text = "\x1f".join(
        (prompt, "\x1e".join(completions), "".join("1" if label else "0" for label in labels))
    )
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _require_str(record: Mapping[str, Any], name: str, found: _Found, hint: str) -> str | None:
    if name not in record:
        found.append((name, f"missing required field{hint}"))
        return None
    value = record[name]
    if not isinstance(value, str):
        found.append((name, f"expected a string, got {_type_name(value)}"))
        return None
    return value


def _require_text(value: str | None, name: str, found: _Found) -> None:
    if value is not None and not value.strip():
        found.append(
            (name, "is empty or whitespace-only; a preference pair needs two non-empty responses")
        )


def _check_id(record: Mapping[str, Any], found: _Found) -> str | None:
    value = record.get("id")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        if value.strip():
            return value
        found.append(("id", "is empty; give a non-empty id or drop the field to derive one"))
        return None
    found.append(("id", f"expected a string or an integer, got {_type_name(value)}"))
    return None


def _check_margin(record: Mapping[str, Any], found: _Found) -> float | None:
    value = record.get("margin")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = f"str {value!r}" if isinstance(value, str) else _type_name(value)
        found.append(("margin", f"expected a finite number, got {shown}"))
        return None
    try:
        margin = float(value)
    except OverflowError:  # an integer of hundreds of digits
        margin = math.inf if value > 0 else -math.inf
    if not math.isfinite(margin):
        shown = f"an integer of {_digits(value)} digits" if isinstance(value, int) else margin
        found.append(("margin", f"expected a finite number, got {shown}"))
        return None
    if abs(margin) > MAX_MARGIN:
        found.append(
            (
                "margin",
                f"got {margin:g}, beyond ±{MAX_MARGIN:.1e}, the largest number training "
                "computes with (float32)",
            )
        )
        return None
    return margin


def _digits(value: int) -> str:
    try:
        return str(len(str(abs(value))))
    except ValueError:  # past Python's 4300-digit limit for int -> str
        return "over 4300"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or ``None`` when it can.

    A NUL character: PostgreSQL refuses it and SQLite would keep it, so it is refused
    everywhere and a file imports the same on every store (in text it almost always means
    binary data or a broken export). A lone surrogate (``"\\ud800"`` with no partner) is not
    Unicode at all: it has no UTF-8 form, so no store can hold it.
    """
    nul = text.find("\x00")
    if nul >= 0:
        return (
            f"contains a NUL character (\\u0000) at character {nul + 1}; remove it (it "
            "usually means binary data or a broken export, and PostgreSQL cannot store it)"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate (\\u{ord(text[exc.start]):04x}) at character "
            f"{exc.start + 1}, which is not valid Unicode; a character outside the basic "
            "plane is written as a pair of escapes (\\ud83d\\ude00), never one alone"
        )
    return None


def _check_characters(record: Mapping[str, Any], keys: Sequence[str], found: _Found) -> None:
    """Append a problem for every string under ``keys`` (in lists and objects too, such as a
    chat message's content) that :func:`text_problem` refuses, with the path to it."""
    stack = [(key, record[key]) for key in reversed(keys) if key in record]
    while stack:  # a loop, not recursion: nesting depth is the data's choice
        where, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                found.append((where, problem))
        elif isinstance(value, Mapping):
            stack.extend((f"{where}.{k}", v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))


def _check_optional_string(record: Mapping[str, Any], key: str, found: _Found) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        found.append((key, f"expected a string, got {_type_name(value)}"))
        return None
    return value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _type_name(value: Any) -> str:
    """Name a value's type in JSON-ish terms for messages ("got int", "got null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
