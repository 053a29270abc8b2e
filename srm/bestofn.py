"""Best-of-N: rank a prompt's N candidate responses by the model's score, and explain the top
choice against the runner-up sentence by sentence. ``srm rank`` and the app's Best-of-N page
show the same :class:`Ranking` and :class:`Explanation`.

    >>> rankings = rank(model, load_candidates("candidates.jsonl"))
    >>> print(explain(rankings[0]).text())

Candidates of one prompt share the prompt, so the prompt's reward r_0 is the same for all;
the lead of the top candidate splits as for a pair (:func:`srm.records.margin_split`): the
prompt term's shift through its weights, and what the sentences add (a_j r_j).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from srm.data import Candidates
from srm.records import MarginSplit, PairScores, ResponseScores, margin_split, sig3

if TYPE_CHECKING:
    from srm.model import SentenceRewardModel
    from srm.score import Progress


@dataclass(frozen=True, kw_only=True)
class Ranking:
    """One prompt's candidates with their scores, in the file's order."""

    id: str
    prompt: str
    responses: tuple[ResponseScores, ...]
    """One record per candidate (``record.text`` is the candidate)."""

    @property
    def order(self) -> list[int]:
        """Candidate indices (0-based), best first; equal scores keep the file's order."""
        return sorted(range(len(self.responses)), key=lambda i: (-self.responses[i].score, i))

    @property
    def best(self) -> int:
        return self.order[0]

    @property
    def runner_up(self) -> int:
        return self.order[1]

    def to_json(self) -> dict[str, Any]:
        """``{"id", "prompt", "order", "responses": [srm score record + "text"]}``, as
        ``srm rank --out`` writes it (``order`` 0-based, best first)."""
        return {
            "id": self.id,
            "prompt": self.prompt,
            "order": self.order,
            "responses": [{"text": r.text, **r.to_json()} for r in self.responses],
        }


def rank(
    model: SentenceRewardModel,
    items: Sequence[Candidates],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    progress: Progress | None = None,
    show_progress: bool = False,
) -> list[Ranking]:
    """Score every candidate of every prompt (:func:`srm.score.score_responses`, so the
    numbers are those of ``srm score``) and return one :class:`Ranking` per prompt."""
    from srm.score import score_responses

    prompts = [item.prompt for item in items for _ in item.responses]
    responses = [text for item in items for text in item.responses]
    records = score_responses(
        model,
        prompts,
        responses,
        batch_size=batch_size,
        max_length=max_length,
        progress=progress,
        show_progress=show_progress,
    )
    rankings, start = [], 0
    for item in items:
        n = len(item.responses)
        rankings.append(
            Ranking(id=item.id, prompt=item.prompt, responses=tuple(records[start : start + n]))
        )
        start += n
    return rankings


@dataclass(frozen=True)
class SentenceRow:
    """Sentence ``position`` (1-based) of the top candidate beside the runner-up's: text and
    term a_j r_j (``None`` where a side has no such sentence, or it was not scored)."""

    position: int
    top_text: str
    top_term: float | None
    runner_up_text: str
    runner_up_term: float | None

    @property
    def difference(self) -> float:
        """What this position adds to the lead: top term minus runner-up term."""
        return (self.top_term or 0.0) - (self.runner_up_term or 0.0)


@dataclass(frozen=True)
class Explanation:
    """Why the top candidate beat the runner-up: the lead, how it splits, and the sentences."""

    best: int
    runner_up: int
    best_score: float
    runner_up_score: float
    split: MarginSplit
    prompt_term: bool
    """The model has a prompt term (else the sentences make the whole score)."""
    rows: list[SentenceRow]

    @property
    def lead(self) -> float:
        return self.best_score - self.runner_up_score

    def text(self) -> str:
        """A few sentences of plain text (1-based candidate numbers, as the page shows)."""
        b, r = self.best + 1, self.runner_up + 1
        lines = [
            f"Candidate {b} ranks first with {sig3(self.best_score)}, ahead of candidate {r} "
            f"({sig3(self.runner_up_score)}) by {sig3(self.lead)}: "
            + (
                f"prompt shift {sig3(self.split.prompt)} + sentence shift "
                f"{sig3(self.split.sentences)}."
                if self.prompt_term
                else "the sentences make all of it (the model has no prompt term)."
            )
        ]
        if self.prompt_term and self.split.prompt_dominates:
            lines.append(
                f"The prompt shift carries {self.split.prompt_share:.0%} of the lead: it comes "
                "from how much weight each candidate gives the prompt, not from its sentences."
            )
        for number, side in ((b, "top"), (r, "runner_up")):
            terms = [
                (term, row.position, getattr(row, f"{side}_text"))
                for row in self.rows
                if (term := getattr(row, f"{side}_term")) is not None
            ]
            if terms:
                term, position, text = max(terms, key=lambda t: t[0])
                lines.append(
                    f"Candidate {number}'s strongest sentence is {position} "
                    f"({sig3(term)}): {_quote(text)}"
                )
        return "\n".join(lines)


def explain(ranking: Ranking) -> Explanation:
    """The top candidate against the runner-up, sentence by sentence (by position)."""
    if len(ranking.responses) < 2:
        raise ValueError(f"{ranking.id}: one candidate; nothing to explain against")
    best, runner_up = ranking.best, ranking.runner_up
    top, other = ranking.responses[best], ranking.responses[runner_up]
    pair = PairScores(id=ranking.id, chosen=top, rejected=other)
    rows = [
        SentenceRow(
            position=j,
            top_text=a.text if a else "",
            top_term=_term(a),
            runner_up_text=b.text if b else "",
            runner_up_term=_term(b),
        )
        for j, (a, b) in enumerate(zip_longest(top.sentences, other.sentences), start=1)
    ]
    return Explanation(
        best=best,
        runner_up=runner_up,
        best_score=top.score,
        runner_up_score=other.score,
        split=margin_split(pair),
        prompt_term=pair.has_prompt_term,
        rows=rows,
    )


def _term(sentence: Any) -> float | None:
    if sentence is None or not sentence.scored:
        return None
    return sentence.weight * sentence.reward


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return f'"{text if len(text) <= limit else text[: limit - 1] + "…"}"'
