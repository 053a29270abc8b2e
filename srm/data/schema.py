"""The types data loads into: :class:`PreferencePair` (one preference judgement) and
:class:`StepRecord` (one response judged sentence by sentence), and the error every reader
raises, :class:`DataError`, which lists every :class:`Problem` found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from srm.segment import Span

#: Value of :attr:`Problem.file` for problems in an in-memory dataset.
IN_MEMORY_FILE = "<dataset>"
#: Value of :attr:`PreferencePair.source` for in-memory data without a source.
IN_MEMORY_SOURCE = "dataset"
#: What joins a response's steps into its text by default (TRL's ``step_separator``).
DEFAULT_STEP_SEPARATOR = "\n"
#: The largest margin accepted: float32's largest finite value, since training computes in it.
MAX_MARGIN = 3.4028234663852886e38
_MAX_LISTED = 20


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
class SentenceLabels:
    """One response to train on sentence by sentence: its sentences (``spans``, tiling
    ``response``) and a label for each: True good, False bad, None unlabelled (a sentence
    nobody tagged takes no part in the loss). From a step file
    (:meth:`from_step`) or from annotators' sentence tags
    (:func:`srm.store.export.tagged_sentences`)."""

    id: str
    prompt: str
    response: str
    spans: tuple[Span, ...]
    labels: tuple[bool | None, ...]

    def __post_init__(self) -> None:
        if len(self.spans) != len(self.labels):
            raise ValueError(f"{self.id}: {len(self.labels)} labels for {len(self.spans)} spans")

    @classmethod
    def from_step(
        cls, record: StepRecord, separator: str = DEFAULT_STEP_SEPARATOR
    ) -> SentenceLabels:
        text, spans = record.response(separator)
        return cls(record.id, record.prompt, text, tuple(spans), tuple(record.labels))

    @property
    def labelled(self) -> int:
        return sum(label is not None for label in self.labels)


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


def content_id(prompt: str, chosen: str, rejected: str) -> str:
    """Return the id given to pairs that have none: a hash of their content.

    ``"sha256:"`` plus the first 16 hex digits of SHA-256 over the UTF-8 bytes of
    ``prompt + "\\x1f" + chosen + "\\x1f" + rejected`` (0x1F, the ASCII unit separator, cannot
    be confused with text). Stable across runs, machines and Python versions.
    """
    digest = hashlib.sha256("\x1f".join((prompt, chosen, rejected)).encode("utf-8"))
    return "sha256:" + digest.hexdigest()[:16]


def step_content_id(prompt: str, completions: Sequence[str], labels: Sequence[bool]) -> str:
    """The id of a step record that has none: like :func:`content_id`, over the prompt, the
    sentences (0x1E between them) and the labels as ``1``/``0``."""
    text = "\x1f".join(
        (prompt, "\x1e".join(completions), "".join("1" if label else "0" for label in labels))
    )
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
