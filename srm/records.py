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

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, TypeVar, get_args, get_type_hints

NO_CLEAR_PREFERENCE = 0.05
"""P(chosen better) within 0.5 ± this (|margin| < 0.2) is shown as "no clear preference"
rather than as a verdict for one side."""
SIDES = ("chosen", "rejected")


class ScoreRecordError(ValueError):
    """A JSON value that is not a score record; the message says what is wrong with it."""


# ------------------------------------------------------------------------------- the records
R = TypeVar("R", bound="_FieldRecord")


class _FieldRecord:
    """A record whose JSON object is its dataclass fields, in order, each read back by its
    type hint (:func:`_read_fields`)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        return cls(**_read_fields(cls, _object(data, f"a {cls.__name__}")))


@dataclass(frozen=True, kw_only=True)
class SentenceScore(_FieldRecord):
    """One sentence of a scored response: ``text == response[start:end]``."""

    text: str
    start: int
    end: int
    reward: float | None
    """r_j; ``None`` when truncation left the sentence out (it took no part in the score)."""
    weight: float | None
    """a_j, its weight in the score; ``None`` with ``reward``."""
    likelihood: float | None = None
    """The sentence's likelihood credit: its tokens' mean log-probability given the prompt
    and the sentences before it, under the model's backbone LM (marker-free context). Only
    for a backbone with a language-model head (``None`` otherwise, and for a sentence that
    truncation left out); left out of the JSON when ``None``."""

    @property
    def scored(self) -> bool:
        return self.reward is not None and self.weight is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.likelihood is None:
            del data["likelihood"]
        return data


@dataclass(frozen=True, kw_only=True)
class TokenScore(_FieldRecord):
    """The token head's reward for one response token (``response[start:end]``)."""

    start: int
    end: int
    reward: float


@dataclass(frozen=True, kw_only=True)
class DenseReward(_FieldRecord):
    """A sentence's dense reward for RL: ``a_j * r_j``, its term in the score, placed on
    ``response[start:end]`` (see :mod:`srm.dense`)."""

    start: int
    end: int
    dense_reward: float


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
    prompt_truncated: bool = False
    n_sentences: int
    n_scored: int
    """Sentences that took part in the score, the last possibly in part."""
    last_cut_short: bool = False
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
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["sentences"] = [s.to_json() for s in self.sentences]
        if self.tokens is None:
            del data["tokens"]
        else:
            data["tokens"] = [t.to_json() for t in self.tokens]
        return data

    @classmethod
    def from_json(cls, data: Any, name: str = "the response") -> ResponseScores:
        """Read one side; a record from before the coverage counts were kept gets them from
        its sentences (a sentence with a ``null`` reward was not scored)."""
        data = _object(data, name)
        sentences = tuple(SentenceScore.from_json(s) for s in _field(data, "sentences", list))
        tokens = _field(data, "tokens", list | None)
        counts = {
            "n_sentences": _field(data, "n_sentences", int, default=len(sentences)),
            "n_scored": _field(
                data, "n_scored", int, default=sum(s.reward is not None for s in sentences)
            ),
        }
        return cls(
            **_read_fields(cls, data, skip=("sentences", "tokens", *counts)),
            **counts,
            sentences=sentences,
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

    @property
    def has_prompt_term(self) -> bool:
        """The prompt's own term (marker 0) has weight on either side. A model trained with
        ``prompt_term = false`` (and the response and token heads) give it none: the
        sentences make the whole score, and views leave the prompt term out."""
        return self.chosen.prompt_weight != 0 or self.rejected.prompt_weight != 0

    def side(self, name: str) -> ResponseScores:
        """``record.side("chosen") is record.chosen``"""
        if name not in SIDES:
            raise ValueError(f"side: got {name!r}; use chosen or rejected")
        return self.chosen if name == "chosen" else self.rejected

    def to_json(self) -> dict[str, Any]:
        """The record as ``srm score`` writes it: a JSON-ready dict (see the module's doc)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in _UNSAID_WHEN_NONE:
            if data[key] is None:
                del data[key]
        data["chosen"], data["rejected"] = self.chosen.to_json(), self.rejected.to_json()
        return data

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
            **_read_fields(cls, data, skip=SIDES),
            chosen=ResponseScores.from_json(data["chosen"], "'chosen'"),
            rejected=ResponseScores.from_json(data["rejected"], "'rejected'"),
        )


#: Fields of a pair record that ``to_json`` leaves out when they are not known, as
#: :func:`srm.score.score_pairs` always did for ``subset``.
_UNSAID_WHEN_NONE = ("subset", "head", "prefix_rewards", "max_length")
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


def _field(data: Mapping[str, Any], key: str, kind: Any, *, default: Any = _MISSING) -> Any:
    """``data[key]``, checked to be of ``kind`` (an int is a number, a bool is not); a key
    that is missing is ``default`` when one is given, ``None`` when ``kind`` allows it
    (``float | None``), else an error."""
    allowed = get_args(kind) or (kind,)
    optional = type(None) in allowed
    (base,) = (t for t in allowed if t is not type(None))
    if key not in data:
        if default is not _MISSING or optional:
            return None if default is _MISSING else default
        raise ScoreRecordError(f"no {key!r}")
    value = data[key]
    if value is None and optional:
        return None
    numbers = (int, float) if base is float else (base,)
    if not isinstance(value, numbers) or (base is not bool and isinstance(value, bool)):
        raise ScoreRecordError(f"{key!r} is not {_TYPE_NAMES[base]}")
    return value


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)  # resolved once per class: records are read by the thousand


def _read_fields(cls: type, data: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    """The fields of dataclass ``cls`` read from ``data`` by :func:`_field`, each by its type
    hint; a field with a default may be missing (it keeps the default)."""
    hints = _type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in skip or (f.name not in data and f.default is not MISSING):
            continue
        values[f.name] = _field(data, f.name, hints[f.name])
    return values


# ------------------------------------------------------------------------------- reading them
def p_chosen(margin: float) -> float:
    """sigma(margin): the Bradley-Terry probability that the chosen response is better."""
    if margin >= 0:  # split by sign so exp never overflows
        return 1.0 / (1.0 + math.exp(-margin))
    e = math.exp(margin)
    return e / (1.0 + e)


def probability_text(p: float) -> str:
    """A probability as a percentage to one decimal, never rounded across 50% or onto 0% or
    100%: a figure shown beside a verdict must not contradict it, so 0.4996 is ``"<50.0%"``
    (not "50.0%" beside "prefers rejected") and 0.99996 is ``">99.9%"`` (not a certainty the
    model does not have). Exactly 0.5 is ``"50.0%"``.

    >>> probability_text(0.731), probability_text(0.4996), probability_text(0.50004)
    ('73.1%', '<50.0%', '>50.0%')
    >>> probability_text(0.99996), probability_text(0.00001), probability_text(0.5)
    ('>99.9%', '<0.1%', '50.0%')
    """
    text = f"{p:.1%}"
    if p < 0.5 and text == "50.0%":
        return "<50.0%"
    if p > 0.5 and text == "50.0%":
        return ">50.0%"
    if p < 1 and text == "100.0%":
        return ">99.9%"
    if p > 0 and text == "0.0%":
        return "<0.1%"
    return text


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
