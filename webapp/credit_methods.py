"""What a model's sentence numbers mean, head by head, and how the pages colour them.

Each head (:data:`srm.config.HEADS` and :data:`srm.config.READ_ONLY_HEADS`) is one entry of
:data:`METHODS`: what its sentence reward r_j and weight a_j are, in words, and whether its
rewards are log-probabilities. From that table, and from the record itself (its sentences
carry a ``likelihood`` when the backbone has a language-model head), come the colour modes a
page offers (:func:`colour_modes`), the sentence that names what a colour shows
(:func:`colour_caption`) and the colour scale (:func:`colour_scale`). Plain functions over
:mod:`srm.records`; no Streamlit.

    >>> colour_caption("sentence", "reward")
    "Colour: each sentence's reward r_j from the sentence head"
"""

from __future__ import annotations

from dataclasses import dataclass

from srm.records import SIDES, PairScores, SentenceScore, sig3
from webapp.palette import Scale, centred_scale, max_abs

#: What a sentence can be coloured by: its reward r_j, its weight a_j, or its likelihood.
VALUES = ("reward", "weight", "likelihood")

LIKELIHOOD = (
    "the language model's likelihood: mean log-probability of the sentence's tokens given "
    "everything before it (higher = more expected)"
)
_TOKEN_SHARE = "each sentence's weight a_j: its share of the response's tokens"
_ONE_EACH = (
    "each sentence's weight a_j: 1 for every sentence (the prefix rewards add up to the score)"
)


@dataclass(frozen=True)
class CreditMethod:
    """How one head hands out credit, in the words the pages use."""

    reward: str
    """What r_j is, finishing "Colour: …"."""
    weight: str
    """What a_j is, finishing "Colour: …"."""
    rewards_are_likelihood: bool = False
    """r_j is the sentence's mean token log-probability (all negative): coloured about the
    pair's mean, and never shown a second time as a likelihood."""


#: One registration per head (a new credit method is one more row).
METHODS: dict[str, CreditMethod] = {
    "sentence": CreditMethod(
        reward="each sentence's reward r_j from the sentence head",
        weight="each sentence's attention weight a_j from the sentence head (its share of the "
        "score)",
    ),
    "response": CreditMethod(
        reward="prefix rewards of the response head (its value after this sentence, minus before)",
        weight=_ONE_EACH,
    ),
    "token": CreditMethod(
        reward="each sentence's mean token reward from the token head",
        weight=_TOKEN_SHARE,
    ),
    "likelihood": CreditMethod(reward=LIKELIHOOD, weight=_TOKEN_SHARE, rewards_are_likelihood=True),
    "classifier": CreditMethod(
        reward="prefix rewards of an imported reward model (what the response earns when cut "
        "after this sentence, minus before)",
        weight=_ONE_EACH,
    ),
}
#: A record that does not say its head (an old one, or an unknown head).
UNKNOWN = CreditMethod(
    reward="each sentence's reward r_j", weight="each sentence's weight a_j in the score"
)

#: The colour modes' help, one line each, for the control that picks one.
MODE_HELP = {
    "reward": "Reward: each sentence's reward r_j, what it earns before weighting; its "
    "contribution to the score is weight × reward, a_j × r_j (diverging, 0 is neutral; a "
    "likelihood-head model's rewards are log-probabilities, centred at the pair's mean).",
    "weight": "Weight: how much its reward counts in the score (the sentence head's attention).",
    "likelihood": "Likelihood: the language model's mean log-probability of the sentence's "
    "tokens (centred at the pair's mean).",
}


def credit_method(head: str | None) -> CreditMethod:
    """The registered method of ``head``, or :data:`UNKNOWN`."""
    return METHODS.get(head or "", UNKNOWN)


def colour_caption(head: str | None, by: str) -> str:
    """The sentence that names what the colours show, for a model with this head coloured
    ``by`` (reward, weight or likelihood): "Colour: prefix rewards of an imported reward
    model (…)". Fixed words: safe as markdown and as HTML."""
    _check(by)
    method = credit_method(head)
    if by == "likelihood":
        return f"Colour: {LIKELIHOOD}"
    return f"Colour: {method.reward if by == 'reward' else method.weight}"


def has_likelihood(record: PairScores) -> bool:
    """The record's sentences carry a likelihood that is not already their reward."""
    if credit_method(record.head).rewards_are_likelihood:
        return False
    return any(s.likelihood is not None for side in SIDES for s in record.side(side).sentences)


def colour_modes(record: PairScores) -> list[str]:
    """What the record's sentences can be coloured by: reward and weight, and likelihood
    when its sentences carry one (a likelihood-head model's reward *is* the likelihood, so it
    is not offered twice)."""
    return ["reward", "weight", *(["likelihood"] if has_likelihood(record) else [])]


def log_probabilities(head: str | None, by: str) -> bool:
    """Whether the values coloured ``by`` are log-probabilities (all negative)."""
    _check(by)
    return by == "likelihood" or (by == "reward" and credit_method(head).rewards_are_likelihood)


def sentence_value(sentence: SentenceScore, by: str) -> float | None:
    """``sentence.reward``, ``.weight`` or ``.likelihood``."""
    _check(by)
    return getattr(sentence, by)


def colour_scale(record: PairScores, by: str) -> Scale:
    """The scale both responses of a pair share, set by their scored sentences (the prompt
    term does not set it). Rewards: about 0, reaching the largest |r_j|; weights: 0 to the
    largest a_j; log-probabilities (a likelihood, or a likelihood-head model's rewards):
    about the mean over the pair's sentences, reaching the one farthest from it (a scale
    about 0 would tint them all orange). Never a span of 0."""
    values = [sentence_value(s, by) for side in SIDES for s in record.side(side).sentences]
    if log_probabilities(record.head, by):
        return centred_scale(values)
    return Scale(max_abs(values))


def scale_note(scale: Scale) -> str:
    """What the untinted middle of a scale is, for a legend: "0: no tint", or for a scale
    about a mean "log-probabilities are all negative: centred at the mean over the pair's
    sentences, -2.31, no tint"."""
    if scale.mean is None:
        return "0: no tint"
    return (
        "log-probabilities are all negative: centred at the mean over the pair's sentences, "
        f"{sig3(scale.mean)}, no tint"
    )


def _check(by: str) -> None:
    if by not in VALUES:
        raise ValueError(f"by must be one of {VALUES}, got {by!r}")
