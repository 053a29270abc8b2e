"""Best-of-N candidates: a prompt with N responses to rank, and :func:`load_candidates`, which
reads and validates them.

A file holds one record per prompt (JSON Lines, a JSON list, Parquet or a saved dataset)::

    {"id": "q1", "prompt": "Explain rain.", "responses": ["Water ...", "Clouds ...", ...]}

``responses`` needs at least two strings (empty ones are allowed: a policy may produce
nothing); ``id`` (a string or an integer) is optional, as for :func:`~srm.data.load_pairs`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from srm.data.checks import (
    check_characters,
    check_id,
    convert_rows,
    require_str,
)
from srm.data.fields import Found, type_name
from srm.data.readers import open_rows
from srm.data.schema import DataError, Problem

logger = logging.getLogger(__name__)

_FIELDS = "Best-of-N records need 'prompt' and 'responses' (a list of at least two strings)"


@dataclass(frozen=True)
class Candidates:
    """One prompt and the N responses to rank for it."""

    id: str
    prompt: str
    responses: tuple[str, ...]


def load_candidates(
    source: str | os.PathLike[str], *, format: str | None = None
) -> list[Candidates]:
    """Read and validate Best-of-N records (the module's doc gives the format). A record
    without an id gets ``"sha256:"`` + the first 16 hex digits of a hash of its content.

    Raises :class:`~srm.data.DataError` listing every problem with its file, line and field;
    nothing is returned from an invalid input.
    """
    rows, label, _ = open_rows(
        source,
        format,
        None,
        csv_refused=(
            "CSV cannot hold Best-of-N records: 'responses' is a list; write JSON Lines "
            "(one record per line) instead"
        ),
    )
    records, problems = convert_rows(rows, label, _to_candidates)
    if problems:
        raise DataError(problems)
    if not records:
        raise DataError([Problem(label, "", None, "no records; expected at least one prompt")])
    logger.info("loaded %d Best-of-N prompts from %s", len(records), label)
    return records


def _to_candidates(record: Any, found: Found) -> tuple[Candidates | None, bool]:
    if not isinstance(record, Mapping):
        found.append((None, f"expected a JSON object (a record), got {type_name(record)}"))
        return None, False
    hint = f"; {_FIELDS}"
    prompt = require_str(record, "prompt", found, hint)
    responses = record.get("responses")
    if "responses" not in record:
        found.append(("responses", f"missing required field{hint}"))
    elif not isinstance(responses, list):
        found.append(("responses", f"expected a list of strings, got {type_name(responses)}"))
    else:
        for j, response in enumerate(responses):
            if not isinstance(response, str):
                found.append((f"responses[{j}]", f"expected a string, got {type_name(response)}"))
        if len(responses) < 2:
            found.append(
                ("responses", f"has {len(responses)}; give at least two responses to rank")
            )
    explicit_id = check_id(record, found)
    check_characters(record, ("prompt", "responses", "id"), found)
    if found or prompt is None:
        return None, False
    texts = tuple(responses)  # type: ignore[arg-type]
    if explicit_id is None:
        digest = hashlib.sha256("\x1f".join((prompt, *texts)).encode("utf-8"))
        record_id = "sha256:" + digest.hexdigest()[:16]
    else:
        record_id = explicit_id
    return Candidates(id=record_id, prompt=prompt, responses=texts), explicit_id is None
