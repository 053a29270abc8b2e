"""Reading score records (what :func:`srm.score.score_pairs` writes): how much of each response
was scored, how a margin splits between the prompt term and the sentences, and the model's
preference as a probability. Plain Python, no torch: pages, charts and reports import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NO_CLEAR_PREFERENCE = 0.05
"""P(chosen better) within 0.5 ± this (|margin| < 0.2) is shown as "no clear preference"
rather than as a verdict for one side."""


def p_chosen(margin: float) -> float:
    """sigma(margin): the Bradley-Terry probability that the chosen response is better."""
    if margin >= 0:  # split by sign so exp never overflows
        return 1.0 / (1.0 + math.exp(-margin))
    e = math.exp(margin)
    return e / (1.0 + e)


def sig3(x: float, *, signed: bool = True) -> str:
    """A number to 3 significant figures, the precision the pages show rewards, weights and
    margins at: ``sig3(-0.08681) == "-0.0868"``, ``sig3(0.5, signed=False) == "0.5"``."""
    if x == 0:
        return "0"
    text = f"{x:+.3g}" if signed else f"{x:.3g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


def clear_preference(margin: float) -> bool:
    """Whether sigma(margin) is outside the no-clear-preference band."""
    return abs(p_chosen(margin) - 0.5) >= NO_CLEAR_PREFERENCE


@dataclass(frozen=True)
class Coverage:
    """How much of one response its score saw."""

    scored: int
    """Sentences that took part in the score (the last possibly in part)."""
    total: int
    """Sentences of the response."""
    last_cut_short: bool = False
    """The last scored sentence was cut part-way by the context length."""

    @property
    def complete(self) -> bool:
        return self.scored == self.total and not self.last_cut_short

    def describe(self) -> str:
        """``"scored 6 of 14 sentences"`` (``", the 6th in part"`` when cut short)."""
        text = f"scored {self.scored} of {self.total} sentence{'s' if self.total != 1 else ''}"
        return text + (" (the last in part)" if self.last_cut_short else "")


def coverage(side: Mapping[str, Any]) -> Coverage:
    """The :class:`Coverage` of one side of a record (older records without the counts are
    read from their sentences: a sentence with a ``null`` reward was not scored)."""
    sentences = side["sentences"]
    scored = side.get("n_scored")
    if scored is None:
        scored = sum(s["reward"] is not None for s in sentences)
    total = side.get("n_sentences", len(sentences))
    return Coverage(int(scored), int(total), bool(side.get("last_cut_short", False)))


def coverage_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Over pair records: responses, responses cut, sentences and sentences not scored."""
    counts = {"responses": 0, "cut": 0, "sentences": 0, "unscored": 0}
    for record in records:
        for side in ("chosen", "rejected"):
            c = coverage(record[side])
            counts["responses"] += 1
            counts["cut"] += not c.complete
            counts["sentences"] += c.total
            counts["unscored"] += c.total - c.scored
    return counts


def coverage_summary(counts: Mapping[str, int]) -> str | None:
    """One line for a terminal or a page when :func:`coverage_counts` found cut responses:
    ``"3 of 100 responses were cut by the context length: 12 of 480 sentences not scored"``."""
    if not counts["cut"]:
        return None
    return (
        f"{counts['cut']} of {counts['responses']} responses were cut by the context length: "
        f"{counts['unscored']} of {counts['sentences']} sentences not scored"
    )


@dataclass(frozen=True)
class MarginSplit:
    """``margin = prompt + sentences``: how much of a pair's margin the prompt term carries.

    With one prompt encoding per pair the prompt reward r_0 is the same on both sides, so
    the prompt term moves the margin only through its weights: ``r_0 * (a0_c - a0_r)``.
    """

    margin: float
    """chosen score - rejected score."""
    prompt: float
    """a0_c * r0_c - a0_r * r0_r: the prompt term's shift of the margin."""
    sentences: float
    """sum_j a_j r_j (chosen) - sum_j a_j r_j (rejected): what the sentences decide."""

    @property
    def prompt_dominates(self) -> bool:
        """The prompt term carries the verdict: it outweighs everything the sentences add,
        so the sentence colours do not explain the margin."""
        return abs(self.prompt) > abs(self.sentences)

    @property
    def prompt_share(self) -> float:
        """|prompt| / (|prompt| + |sentences|), 0 when both are 0."""
        total = abs(self.prompt) + abs(self.sentences)
        return abs(self.prompt) / total if total > 0 else 0.0


def margin_split(record: Mapping[str, Any]) -> MarginSplit:
    """Split a pair record's margin into the prompt term's shift and the sentences' part.

    Both parts are read off the record's own numbers (weights times rewards), so they add up
    to the margin up to float32 rounding of the stored score (about 1e-7 of its size).
    """
    parts = {}
    for side in ("chosen", "rejected"):
        rec = record[side]
        prompt = rec["prompt_weight"] * rec["prompt_reward"]
        sentences = math.fsum(
            s["weight"] * s["reward"] for s in rec["sentences"] if s["reward"] is not None
        )
        parts[side] = (prompt, sentences)
    margin = record["chosen"]["score"] - record["rejected"]["score"]
    return MarginSplit(
        margin=margin,
        prompt=parts["chosen"][0] - parts["rejected"][0],
        sentences=parts["chosen"][1] - parts["rejected"][1],
    )
