"""Field checks shared by preference pairs and step records. Each appends ``(field, message)``
to the record's list of problems (``found``) instead of raising, so that every problem of a
file is reported at once; :func:`text_problem` is the one rule for text a store can hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from srm.data.fields import Found, Row, type_name
from srm.data.schema import MAX_MARGIN, PreferencePair, Problem, StepRecord

_Record = TypeVar("_Record", PreferencePair, StepRecord)


def convert_rows(
    rows: Iterable[Row],
    label: str,
    convert: Callable[[Any, Found], tuple[_Record | None, bool]],
) -> tuple[list[_Record], list[Problem]]:
    """Convert every row with ``convert(record, found)``, which returns the converted record
    (None if anything is wrong) and whether its id was derived from the content, and appends
    the record's problems to ``found``. Returns the records and every problem of every row,
    rows that could not be parsed and ids used twice included."""
    records: list[_Record] = []
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for location, raw, error in rows:
        if error is not None:
            problems.append(Problem(label, location, None, error))
            continue
        found: Found = []
        record, derived = convert(raw, found)
        record_id = record.id if record is not None else _explicit_id(raw)
        _check_unique_id(record_id, derived, location, first_seen, found)
        problems.extend(Problem(label, location, f, m) for f, m in found)
        if record is not None and not found:
            records.append(record)
    return records, problems


def require_str(record: Mapping[str, Any], name: str, found: Found, hint: str) -> str | None:
    """The string field ``name``, or ``None`` with a problem (missing: with ``hint``)."""
    if name not in record:
        found.append((name, f"missing required field{hint}"))
        return None
    value = record[name]
    if not isinstance(value, str):
        found.append((name, f"expected a string, got {type_name(value)}"))
        return None
    return value


def require_text(value: str | None, name: str, found: Found) -> None:
    """A problem when ``value`` is given but blank (a response must say something)."""
    if value is not None and not value.strip():
        found.append(
            (name, "is empty or whitespace-only; a preference pair needs two non-empty responses")
        )


def check_id(record: Mapping[str, Any], found: Found) -> str | None:
    """The record's ``id`` as a string (numbers accepted), ``None`` when absent or bad."""
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
    found.append(("id", f"expected a string or an integer, got {type_name(value)}"))
    return None


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


def _check_unique_id(
    record_id: str | None,
    derived: bool,
    location: str,
    first_seen: dict[str, str],
    found: Found,
) -> None:
    """Refuse an id used by an earlier record (``first_seen`` maps ids to where they first
    stood), saying whether the two records are exact duplicates (a ``derived`` id is a hash
    of the content); else remember where this one stands."""
    if record_id is None:
        return
    if record_id not in first_seen:
        first_seen[record_id] = location
        return
    why = (
        "; that id was derived from the content, so the two records are exact duplicates: "
        "remove one"
        if derived
        else "; ids must be unique: rename or remove one of them"
    )
    found.append(("id", f"id '{record_id}' already used on {first_seen[record_id]}{why}"))


def check_margin(record: Mapping[str, Any], found: Found) -> float | None:
    """The optional ``margin``: a finite number within ±:data:`MAX_MARGIN`."""
    value = record.get("margin")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = f"str {value!r}" if isinstance(value, str) else type_name(value)
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


def check_characters(record: Mapping[str, Any], keys: Sequence[str], found: Found) -> None:
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


def check_optional_string(record: Mapping[str, Any], key: str, found: Found) -> str | None:
    """The optional string field ``key``, ``None`` when absent (a problem when not a string)."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        found.append((key, f"expected a string, got {type_name(value)}"))
        return None
    return value


def plural(n: int, noun: str) -> str:
    """``plural(1, "label")`` is ``"1 label"``, ``plural(3, "label")`` ``"3 labels"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
