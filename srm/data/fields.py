"""The shapes every reader and record check shares: a row as read from the input (:data:`Row`),
the problems found in one record (:data:`Found`), and how a message names a value's JSON type
(:func:`type_name`). The readers (:mod:`srm.data.readers`) produce rows, the checks
(:mod:`srm.data.checks`) and the record converters (:mod:`srm.data.pairs`,
:mod:`srm.data.steps`, :mod:`srm.data.candidates`) consume them; this module imports neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A row as read from the input, before validation: where it is (``"file.jsonl:3"``), the
#: parsed value, and the reason it could not be parsed (if so, else ``None``).
Row = tuple[str, Any, str | None]
#: ``(field, message)`` pairs found in one record; the caller adds file and location. A
#: ``None`` field is a problem with the record as a whole.
Found = list[tuple[str | None, str]]


def type_name(value: Any) -> str:
    """Name a value's type in JSON-ish terms for messages ("got int", "got null").

    >>> type_name(None), type_name({}), type_name([1]), type_name(True)
    ('null', 'object', 'list', 'bool')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
