"""Step-labelled responses (TRL's stepwise-supervision format) from records, and
:func:`load_steps`, which reads and validates them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from srm.data.checks import (
    check_characters,
    check_id,
    check_optional_string,
    convert_rows,
    plural,
    require_str,
)
from srm.data.fields import Found, type_name
from srm.data.readers import open_rows
from srm.data.schema import DataError, Problem, StepRecord, step_content_id

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)


_STEP_FIELDS = (
    "step records need 'prompt', 'completions' and 'labels' (TRL's stepwise-supervision format)"
)


def load_steps(
    source: str | os.PathLike[str] | datasets.Dataset | datasets.DatasetDict,
    *,
    format: str | None = None,
    default_source: str | None = None,
) -> list[StepRecord]:
    """Read and validate step-labelled responses (TRL's stepwise-supervision format).

    Each record needs ``prompt`` (a non-empty string), ``completions`` (at least one
    non-empty string: the response's sentences, in order) and ``labels`` (one JSON bool per
    sentence, True = good); ``id`` (string or integer) and ``source`` are optional, as for
    :func:`load_pairs`. Inputs are those of :func:`load_pairs` except CSV, and ``format`` and
    ``default_source`` mean the same. A record without an id gets
    ``"sha256:" + sha256(prompt, completions and labels)[:16]``.

    A response of one sentence is read (it trains a sentence-label loss and counts in the
    AUROC), though there is nothing in it to point at. Labels must be real
    bools, not 1/0 or "true", because a column of 1/0 often means a score or a rating scale
    rather than good/bad, and guessing would silently change what is measured.

    Raises :class:`DataError` listing every problem found; nothing is returned from an
    invalid input.
    """
    rows, label, fallback = open_rows(
        source,
        format,
        default_source,
        csv_refused=(
            "CSV cannot hold step records: 'completions' and 'labels' are lists, which CSV "
            "cells can only hold as text; write JSON Lines (one record per line), a JSON "
            "list, Parquet or a saved dataset instead"
        ),
    )
    records, problems = convert_rows(
        rows, label, lambda raw, found: _to_step_record(raw, fallback, found)
    )
    if problems:
        raise DataError(problems)
    if not records:
        raise DataError(
            [Problem(label, "", None, "no records; expected at least one step-labelled response")]
        )
    logger.info("loaded %d step-labelled responses from %s", len(records), label)
    return records


def _to_step_record(
    record: Any, fallback_source: str, found: Found
) -> tuple[StepRecord | None, bool]:
    """Convert one step record, appending its problems to ``found``; return the record
    (``None`` if anything is wrong) and whether its id was derived from the content."""
    if not isinstance(record, Mapping):
        found.append((None, f"expected a JSON object (a record), got {type_name(record)}"))
        return None, False
    hint = f"; {_STEP_FIELDS}"
    prompt = require_str(record, "prompt", found, hint)
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
                f"has {plural(len(marks), 'label')} but completions has "
                f"{plural(len(steps), 'sentence')}; give one label per sentence",
            )
        )
    explicit_id = check_id(record, found)
    source = check_optional_string(record, "source", found)
    check_characters(record, ("prompt", "completions", "id", "source"), found)
    if found or prompt is None or completions is None or labels is None:
        return None, False
    step_record = StepRecord(
        id=explicit_id if explicit_id is not None else step_content_id(prompt, completions, labels),
        prompt=prompt,
        completions=tuple(completions),
        labels=tuple(labels),
        source=source if source is not None else fallback_source,
    )
    return step_record, explicit_id is None


def _list_field(
    record: Mapping[str, Any], name: str, items: str, found: Found, hint: str, if_text: str = ""
) -> list[Any] | None:
    """``record[name]`` when it is a list, else None with the problem appended to ``found``
    (``if_text`` is added when a string was given instead)."""
    if name not in record:
        found.append((name, f"missing required field{hint}"))
        return None
    value = record[name]
    if not isinstance(value, list):
        extra = if_text if isinstance(value, str) else ""
        found.append((name, f"expected a list of {items}, got {type_name(value)}{extra}"))
        return None
    return value


def _step_completions(record: Mapping[str, Any], found: Found, hint: str) -> list[str] | None:
    """The sentences of a step record, or None (problems appended to ``found``)."""
    items = "strings (the response's sentences, in order)"
    split = "; split the response into its sentences"
    value = _list_field(record, "completions", items, found, hint, if_text=split)
    if value is None:
        return None
    if not value:
        found.append(("completions", "is empty; give the response's sentences, in order"))
        return None
    ok = True
    for j, step in enumerate(value):
        if not isinstance(step, str):
            found.append((f"completions[{j}]", f"expected a string, got {type_name(step)}"))
            ok = False
        elif not step.strip():
            found.append(
                (f"completions[{j}]", "is empty or whitespace-only; every sentence needs text")
            )
            ok = False
    return value if ok else None


def _step_labels(record: Mapping[str, Any], found: Found, hint: str) -> list[bool] | None:
    """The labels of a step record, or None (problems appended to ``found``)."""
    value = _list_field(record, "labels", "bools (true = good sentence)", found, hint)
    if value is None:
        return None
    ok = True
    for j, label in enumerate(value):
        if not isinstance(label, bool):
            shown = (
                f"{type_name(label)} {label!r}"
                if isinstance(label, (int, float, str))
                else type_name(label)
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
