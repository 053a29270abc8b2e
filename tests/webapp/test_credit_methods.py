"""webapp/credit_methods.py: each head's credit method in words, the colour modes a record
offers, and the colour scale (log-probabilities centred at the pair's mean)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from srm.config import HEADS, READ_ONLY_HEADS
from srm.records import PairScores, ResponseScores, SentenceScore
from webapp import credit_methods
from webapp.credit_methods import colour_caption, colour_modes, colour_scale


def side(values: list[tuple[float | None, float | None, float | None]]) -> ResponseScores:
    """One response: ``(reward, weight, likelihood)`` per sentence ("S. " each)."""
    sentences = tuple(
        SentenceScore(text="S. ", start=3 * j, end=3 * j + 3, reward=r, weight=w, likelihood=lik)
        for j, (r, w, lik) in enumerate(values)
    )
    score = sum(r * w for r, w, _ in values if r is not None and w is not None)
    return ResponseScores(
        score=score,
        prompt_reward=0.0,
        prompt_weight=0.0,
        truncated=any(r is None for r, _, _ in values),
        n_sentences=len(values),
        n_scored=sum(r is not None for r, _, _ in values),
        sentences=sentences,
    )


def record(head: str | None, chosen: list, rejected: list) -> PairScores:
    return PairScores(id="p", head=head, chosen=side(chosen), rejected=side(rejected))


def test_every_head_has_its_method_in_words() -> None:
    """A new head is one registration: the app then names it, or this fails."""
    for head in (*HEADS, *READ_ONLY_HEADS):
        method = credit_methods.METHODS[head]
        assert method.reward and method.weight, head
    assert credit_methods.credit_method("no-such-head") is credit_methods.UNKNOWN
    assert credit_methods.credit_method(None) is credit_methods.UNKNOWN


def test_the_caption_names_the_method_shown() -> None:
    assert colour_caption("sentence", "reward") == (
        "Colour: each sentence's reward r_j from the sentence head"
    )
    assert colour_caption("likelihood", "reward") == (
        "Colour: the language model's likelihood: mean log-probability of the sentence's "
        "tokens given everything before it (higher = more expected)"
    )
    assert colour_caption("classifier", "reward") == (
        "Colour: prefix rewards of an imported reward model (what the response earns when cut "
        "after this sentence, minus before)"
    )
    # A sentence head's likelihood is the backbone LM's: the same words as the likelihood head.
    assert colour_caption("sentence", "likelihood") == colour_caption("likelihood", "reward")
    assert "share of the response's tokens" in colour_caption("likelihood", "weight")
    assert "1 for every sentence" in colour_caption("classifier", "weight")
    assert colour_caption(None, "reward") == "Colour: each sentence's reward r_j"
    with pytest.raises(ValueError, match="by must be"):
        colour_caption("sentence", "score")


def test_likelihood_is_offered_when_the_sentences_carry_one_and_it_is_not_the_reward() -> None:
    plain = record("sentence", [(0.5, 1.0, None)], [(-0.5, 1.0, None)])
    assert colour_modes(plain) == ["reward", "weight"]
    feature = record("sentence", [(0.5, 1.0, -2.0)], [(-0.5, 1.0, -3.0)])
    assert colour_modes(feature) == ["reward", "weight", "likelihood"]
    lm = record("likelihood", [(-2.0, 1.0, -2.0)], [(-3.0, 1.0, -3.0)])
    assert colour_modes(lm) == ["reward", "weight"]  # its reward is the likelihood
    assert not credit_methods.has_likelihood(lm) and credit_methods.has_likelihood(feature)


def test_rewards_are_coloured_about_zero_and_log_probabilities_about_their_mean() -> None:
    pair = record(
        "sentence",
        [(0.5, 0.25, -1.0), (None, None, None)],  # a cut sentence sets nothing
        [(-1.5, 0.75, -4.0)],
    )
    assert colour_scale(pair, "reward") == credit_methods.Scale(1.5)
    assert colour_scale(pair, "weight") == credit_methods.Scale(0.75)
    assert colour_scale(pair, "likelihood") == credit_methods.Scale(1.5, mean=-2.5)
    lm = replace(pair, head="likelihood")
    assert colour_scale(lm, "reward") == credit_methods.Scale(1.0, mean=-0.5)
    assert credit_methods.log_probabilities("likelihood", "reward")
    assert not credit_methods.log_probabilities("sentence", "reward")
    # All equal: never a span of 0.
    flat = record("likelihood", [(-2.0, 1.0, -2.0)], [(-2.0, 1.0, -2.0)])
    assert colour_scale(flat, "reward") == credit_methods.Scale(1.0, mean=-2.0)


def test_the_scale_note_says_where_the_middle_is() -> None:
    assert credit_methods.scale_note(credit_methods.Scale(2.0)) == "0: no tint"
    note = credit_methods.scale_note(credit_methods.Scale(1.0, mean=-2.3456))
    assert note == (
        "log-probabilities are all negative: centred at the mean over the pair's sentences, "
        "-2.35, no tint"
    )
