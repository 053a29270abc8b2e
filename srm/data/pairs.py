"""Preference pairs from records of any of the three shapes (TRL, HH-RLHF transcripts, chat
messages; see :mod:`srm.data`), and :func:`load_pairs`, which reads and validates them.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from srm.data.checks import (
    check_characters,
    check_id,
    check_margin,
    check_optional_string,
    convert_rows,
    require_str,
    require_text,
)
from srm.data.fields import Found, Row, type_name
from srm.data.readers import open_rows
from srm.data.schema import DataError, PreferencePair, Problem, content_id

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)


ASSISTANT_TAG = "\n\nAssistant:"
_ASSISTANT_TAG_SHOWN = "'\\n\\nAssistant:'"
#: How chat roles are named when a conversation is rendered as an HH-style prompt.
CHAT_ROLE_NAMES = {"system": "System", "user": "Human", "assistant": "Assistant"}


def transcript(history: Sequence[tuple[str, str]]) -> str:
    """Chat turns ``(role, content)`` as the HH-style prompt chat pairs are trained on, open
    for the assistant's answer: ``"\\n\\nHuman: Hi\\n\\nAssistant:"``."""
    text = "".join(f"\n\n{CHAT_ROLE_NAMES[role]}: {content}" for role, content in history)
    return text + ASSISTANT_TAG


_ADAPTERS_TRIED = (
    "TRL (prompt, chosen, rejected as strings), HH-RLHF transcripts (chosen, rejected as "
    "'\\n\\nHuman: ...\\n\\nAssistant: ...' strings) and chat messages (chosen, rejected and "
    "optionally prompt as lists of {role, content})"
)
#: The fields of a record whose strings end up in a pair (see check_characters).
_PAIR_TEXT_FIELDS = ("prompt", "chosen", "rejected", "id", "source", "subset")


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
    rows, label, fallback = open_rows(source, format, default_source)
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


def _validate(
    rows: Iterable[Row], label: str, fallback_source: str
) -> tuple[list[PreferencePair], list[Problem], Counter[str]]:
    """Turn rows into pairs, collecting every problem (including duplicate ids), and count the
    shapes of the records converted (for the log line)."""
    shapes: Counter[str] = Counter()

    def convert(record: Any, found: Found) -> tuple[PreferencePair | None, bool]:
        pair, shape, derived = _to_pair(record, fallback_source, found)
        if pair is not None:
            shapes[shape] += 1
        return pair, derived

    pairs, problems = convert_rows(rows, label, convert)
    return pairs, problems, shapes


def _to_pair(
    record: Any, fallback_source: str, found: Found
) -> tuple[PreferencePair | None, str, bool]:
    """Convert one record, appending its problems to ``found``.

    Returns the pair (``None`` if anything is wrong), the shape name, and whether the id was
    derived from the content.
    """
    if not isinstance(record, Mapping):
        found.append((None, f"expected a JSON object (a record), got {type_name(record)}"))
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

    explicit_id = check_id(record, found)
    margin = check_margin(record, found)
    source = check_optional_string(record, "source", found)
    subset = check_optional_string(record, "subset", found)
    check_characters(record, _PAIR_TEXT_FIELDS, found)

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


def _detect_shape(record: Mapping[str, Any]) -> str | None:
    keys = ("prompt", "chosen", "rejected")
    if not any(key in record for key in keys):
        return None
    if any(isinstance(record.get(key), list) for key in keys):
        return "chat"
    if "prompt" in record:
        return "trl"
    return "hh"


def _adapt_trl(record: Mapping[str, Any], found: Found) -> tuple[str, str, str] | None:
    prompt = require_str(record, "prompt", found, "")
    chosen = require_str(record, "chosen", found, "")
    rejected = require_str(record, "rejected", found, "")
    if prompt is not None and not prompt.strip():
        found.append(
            (
                "prompt",
                "is empty; every pair needs the prompt its responses answer (if chosen and "
                "rejected are whole HH-RLHF transcripts, drop the 'prompt' field and they are "
                "split automatically)",
            )
        )
    require_text(chosen, "chosen", found)
    require_text(rejected, "rejected", found)
    if prompt is None or chosen is None or rejected is None:
        return None
    return prompt, chosen, rejected


def _adapt_hh(record: Mapping[str, Any], found: Found) -> tuple[str, str, str] | None:
    hint = (
        " (records without 'prompt' are read as HH-RLHF transcripts, which need both "
        "'chosen' and 'rejected')"
    )
    chosen = require_str(record, "chosen", found, hint)
    rejected = require_str(record, "rejected", found, hint)
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


def _adapt_chat(record: Mapping[str, Any], found: Found) -> tuple[str, str, str] | None:
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
    prompt = transcript(history)
    chosen = chosen_turns[-1][1].strip()
    rejected = rejected_turns[-1][1].strip()
    require_text(chosen, "chosen", found)
    require_text(rejected, "rejected", found)
    if len(found) > before:
        return None
    return prompt, chosen, rejected


def _messages(record: Mapping[str, Any], name: str, found: Found) -> list[tuple[str, str]] | None:
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
                f"record, got {type_name(value)}",
            )
        )
        return None
    turns: list[tuple[str, str]] = []
    ok = True
    for index, message in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(message, Mapping):
            found.append((where, f"expected a {{role, content}} object, got {type_name(message)}"))
            ok = False
            continue
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in CHAT_ROLE_NAMES:
            shown = f"'{role}'" if isinstance(role, str) else type_name(role)
            found.append(
                (
                    f"{where}.role",
                    f"expected one of {', '.join(repr(r) for r in CHAT_ROLE_NAMES)}, got {shown}",
                )
            )
            ok = False
        if not isinstance(content, str):
            found.append((f"{where}.content", f"expected a string, got {type_name(content)}"))
            ok = False
        if ok:
            turns.append((role, content))
    return turns if ok else None
