"""Score records, what :func:`srm.score.score_pairs` returns for a pair (and
:func:`srm.score.score_responses` for one response), and how to read them: how much of each
response was scored, how a margin splits between the prompt term and the sentences, and the
model's preference as a probability. Plain Python, no torch: the store, pages, charts and
reports import it.

A record crosses boundaries (a JSON Lines file from ``srm score``, the store's ``scores``
table), so it is typed here and written by :meth:`PairScores.to_json` as::

    {"id", "source", "margin", "subset" (when set), "head", "prefix_rewards", "max_length",
     "chosen":   {"score", "prompt_reward", "prompt_weight", "truncated", "prompt_truncated",
                  "n_sentences", "n_scored", "last_cut_short",
                  "sentences": [{"text", "start", "end", "reward", "weight"}, ...],
                  "tokens": [{"start", "end", "reward"}, ...]      # token head only
                 },
     "rejected": {...}}

:meth:`PairScores.from_json` reads that back, and records written before a field existed
(``max_length``; per side ``prompt_truncated``, ``n_sentences``, ``n_scored``,
``last_cut_short``), which the store may still hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NO_CLEAR_PREFERENCE = 0.05
"""P(chosen better) within 0.5 ± this (|margin| < 0.2) is shown as "no clear preference"
rather than as a verdict for one side."""
SIDES = ("chosen", "rejected")


class ScoreRecordError(ValueError):
    """A JSON value that is not a score record; the message says what is wrong with it."""


# ------------------------------------------------------------------------------- the records
@dataclass(frozen=True, kw_only=True)
class SentenceScore:
    """One sentence of a scored response: ``text == response[start:end]``."""

    text: str
    start: int
    end: int
    reward: float | None
    """r_j; ``None`` when truncation left the sentence out (it took no part in the score)."""
    weight: float | None
    """a_j, its weight in the score; ``None`` with ``reward``."""

    @property
    def scored(self) -> bool:
        return self.reward is not None and self.weight is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "reward": self.reward,
            "weight": self.weight,
        }

    @classmethod
    def from_json(cls, data: Any) -> SentenceScore:
        data = _object(data, "a sentence")
        return cls(
            text=_field(data, "text", str),
            start=_field(data, "start", int),
            end=_field(data, "end", int),
            reward=_field(data, "reward", float, optional=True),
            weight=_field(data, "weight", float, optional=True),
        )


@dataclass(frozen=True, kw_only=True)
class TokenScore:
    """The token head's reward for one response token (``response[start:end]``)."""

    start: int
    end: int
    reward: float

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "reward": self.reward}

    @classmethod
    def from_json(cls, data: Any) -> TokenScore:
        data = _object(data, "a token")
        return cls(
            start=_field(data, "start", int),
            end=_field(data, "end", int),
            reward=_field(data, "reward", float),
        )


@dataclass(frozen=True, kw_only=True)
class ResponseScores:
    """One scored response: ``prompt_weight * prompt_reward + sum(weight * reward) == score``
    over its scored sentences (up to float32 rounding)."""

    score: float
    prompt_reward: float
    """r_0, the prompt marker's reward (the same on both sides of a pair)."""
    prompt_weight: float
    """a_0, the prompt term's weight in this response's score."""
    truncated: bool
    """The response did not fit the scoring length whole."""
    prompt_truncated: bool
    n_sentences: int
    n_scored: int
    """Sentences that took part in the score, the last possibly in part."""
    last_cut_short: bool
    """The last scored sentence was cut part-way by the context length."""
    sentences: tuple[SentenceScore, ...]
    tokens: tuple[TokenScore, ...] | None = None
    """Token head only: one reward per response token."""

    @property
    def text(self) -> str:
        """The response the record describes (its sentences tile it exactly)."""
        return "".join(s.text for s in self.sentences)

    @property
    def prompt_term(self) -> float:
        """a_0 * r_0: what the prompt's own term adds to the score."""
        return self.prompt_weight * self.prompt_reward

    @property
    def sentence_term(self) -> float:
        """sum_j a_j r_j over the scored sentences: what the sentences add to the score."""
        return math.fsum(s.weight * s.reward for s in self.sentences if s.scored)  # type: ignore

    @property
    def coverage(self) -> Coverage:
        return Coverage(self.n_scored, self.n_sentences, self.last_cut_short)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "score": self.score,
            "prompt_reward": self.prompt_reward,
            "prompt_weight": self.prompt_weight,
            "truncated": self.truncated,
            "prompt_truncated": self.prompt_truncated,
            "n_sentences": self.n_sentences,
            "n_scored": self.n_scored,
            "last_cut_short": self.last_cut_short,
            "sentences": [s.to_json() for s in self.sentences],
        }
        if self.tokens is not None:
            data["tokens"] = [t.to_json() for t in self.tokens]
        return data

    @classmethod
    def from_json(cls, data: Any, name: str = "the response") -> ResponseScores:
        """Read one side; a record from before the coverage counts were kept gets them from
        its sentences (a sentence with a ``null`` reward was not scored)."""
        data = _object(data, name)
        sentences = _field(data, "sentences", list)
        read = tuple(SentenceScore.from_json(s) for s in sentences)
        tokens = _field(data, "tokens", list, optional=True)
        return cls(
            score=_field(data, "score", float),
            prompt_reward=_field(data, "prompt_reward", float),
            prompt_weight=_field(data, "prompt_weight", float),
            truncated=_field(data, "truncated", bool),
            prompt_truncated=_field(data, "prompt_truncated", bool, default=False),
            n_sentences=_field(data, "n_sentences", int, default=len(read)),
            n_scored=_field(data, "n_scored", int, default=sum(s.reward is not None for s in read)),
            last_cut_short=_field(data, "last_cut_short", bool, default=False),
            sentences=read,
            tokens=None if tokens is None else tuple(TokenScore.from_json(t) for t in tokens),
        )


@dataclass(frozen=True, kw_only=True)
class PairScores:
    """A model's scores of one preference pair, ``chosen`` and ``rejected`` as imported."""

    id: str
    source: str = ""
    margin: float | None = None
    """The pair's own preference strength, as imported (not the model's margin: see
    :func:`margin_split`)."""
    subset: str | None = None
    head: str | None = None
    """The model's head (sentence, response or token); ``None`` when the record does not say."""
    prefix_rewards: bool | None = None
    """Whether the model is causal, so that sentence j's reward saw only what came before."""
    max_length: int | None = None
    """Tokens per sequence the pair was scored at (records read from the store do not say)."""
    chosen: ResponseScores
    rejected: ResponseScores

    def side(self, name: str) -> ResponseScores:
        """``record.side("chosen") is record.chosen``"""
        if name not in SIDES:
            raise ValueError(f"side: got {name!r}; use chosen or rejected")
        return self.chosen if name == "chosen" else self.rejected

    def to_json(self) -> dict[str, Any]:
        """The record as ``srm score`` writes it: a JSON-ready dict (see the module's doc)."""
        data: dict[str, Any] = {"id": self.id, "source": self.source, "margin": self.margin}
        optional = {
            "subset": self.subset,
            "head": self.head,
            "prefix_rewards": self.prefix_rewards,
            "max_length": self.max_length,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        return data | {"chosen": self.chosen.to_json(), "rejected": self.rejected.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> PairScores:
        """Read a record :meth:`to_json` wrote (or an older one); raises
        :class:`ScoreRecordError` saying what is missing or of the wrong type."""
        if not isinstance(data, Mapping):
            raise ScoreRecordError("not a JSON object")
        for side in SIDES:
            if not isinstance(data.get(side), Mapping):
                raise ScoreRecordError(f"'{side}' is not an object")
        return cls(
            id=_field(data, "id", str),
            source=_field(data, "source", str, optional=True) or "",
            margin=_field(data, "margin", float, optional=True),
            subset=_field(data, "subset", str, optional=True),
            head=_field(data, "head", str, optional=True),
            prefix_rewards=_field(data, "prefix_rewards", bool, optional=True),
            max_length=_field(data, "max_length", int, optional=True),
            chosen=ResponseScores.from_json(data["chosen"], "'chosen'"),
            rejected=ResponseScores.from_json(data["rejected"], "'rejected'"),
        )


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
}
_MISSING = object()


def _object(data: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ScoreRecordError(f"{name} is not a JSON object")
    return data


def _field(
    data: Mapping[str, Any],
    key: str,
    kind: type,
    *,
    optional: bool = False,
    default: Any = _MISSING,
) -> Any:
    """``data[key]`` checked to be of ``kind`` (an int is a number, a bool is not). A key that
    is missing is ``default`` if one is given, ``None`` if ``optional``, else an error."""
    if key not in data:
        if default is not _MISSING:
            return default
        if optional:
            return None
        raise ScoreRecordError(f"no {key!r}")
    value = data[key]
    if value is None and optional:
        return None
    allowed = (int, float) if kind is float else (kind,)
    if not isinstance(value, allowed) or (kind is not bool and isinstance(value, bool)):
        raise ScoreRecordError(f"{key!r} is not {_TYPE_NAMES[kind]}")
    return value


# ------------------------------------------------------------------------------- reading them
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


def coverage_counts(records: Iterable[PairScores]) -> dict[str, int]:
    """Over pair records: responses, responses cut, sentences and sentences not scored."""
    counts = {"responses": 0, "cut": 0, "sentences": 0, "unscored": 0}
    for record in records:
        for side in (record.chosen, record.rejected):
            c = side.coverage
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


def margin_split(record: PairScores) -> MarginSplit:
    """Split a pair record's margin into the prompt term's shift and the sentences' part.

    Both parts are read off the record's own numbers (weights times rewards), so they add up
    to the margin up to float32 rounding of the stored score (about 1e-7 of its size).
    """
    chosen, rejected = record.chosen, record.rejected
    return MarginSplit(
        margin=chosen.score - rejected.score,
        prompt=chosen.prompt_term - rejected.prompt_term,
        sentences=chosen.sentence_term - rejected.sentence_term,
    )
