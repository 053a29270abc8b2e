"""webapp/scoring.py's pure helpers: the words the Inspect page puts beside a verdict, under a
cut response, and on each place a sentence can be split."""

from __future__ import annotations

from dataclasses import replace

import pytest

from srm.compare import verdict
from srm.records import PairScores, ResponseScores
from webapp import scoring


def side(rewards: list[float | None], *, last_cut_short: bool = False) -> ResponseScores:
    """A response of one-word sentences "s1 s2 ...", ``None`` for a sentence truncation cut."""
    sentences, pos = [], 0
    for i, reward in enumerate(rewards, start=1):
        text = f"s{i} "
        weight = None if reward is None else 1.0
        sentences.append(
            {"text": text, "start": pos, "end": pos + len(text), "reward": reward, "weight": weight}
        )
        pos += len(text)
    n_scored = sum(r is not None for r in rewards)
    return ResponseScores.from_json(
        {
            "score": sum(r for r in rewards if r is not None),
            "prompt_reward": 0.0,
            "prompt_weight": 0.0,
            "truncated": n_scored < len(rewards) or last_cut_short,
            "n_scored": n_scored,
            "last_cut_short": last_cut_short,
            "sentences": sentences,
        }
    )


def test_no_cut_note_for_a_response_scored_whole() -> None:
    assert scoring.cut_note(side([0.1, 0.2, 0.3])) is None


def test_the_cut_note_counts_the_greyed_sentences() -> None:
    assert scoring.cut_note(side([0.1, None, None])) == (
        "2 of 3 sentences greyed: they did not fit the model's context and took no part in "
        "the score."
    )
    assert scoring.cut_note(side([0.1, None])).startswith("1 of 2 sentences greyed: it did not")


def test_a_sentence_cut_part_way_is_named_not_called_greyed() -> None:
    """Nothing greyed, but the last scored sentence lost its end: say that, not 'greyed'."""
    note = scoring.cut_note(side([0.1, 0.2], last_cut_short=True))
    assert note == "Sentence 2 was cut part-way: only its start was scored."


def pair(margin: float) -> PairScores:
    chosen = side([margin])
    return PairScores(id="p", chosen=chosen, rejected=replace(side([0.0]), score=0.0))


@pytest.mark.parametrize(
    ("label", "margin", "expected"),
    [
        (None, 1.0, "Nobody has labelled this pair yet; the model agrees with the imported "
         "verdict (chosen is better)."),
        (None, -1.0, "Nobody has labelled this pair yet; the model disagrees with the imported "
         "verdict (chosen is better): a candidate for review on the Annotate page."),
        ("keep", 1.0, "The model agrees with the current label (keep: chosen is better)."),
        ("swap", 1.0, "The model disagrees with the current label (swap: rejected is better): "
         "a candidate for review on the Annotate page."),
        ("tie", 1.0, None),
        ("discard", -1.0, None),
        # Inside the no-clear-preference band (|margin| < 0.2) the model takes no side.
        ("swap", 0.1, "The model has no clear preference (P(chosen better) = 52.5%): it "
         "neither backs nor questions the current label (swap: rejected is better)."),
        (None, -0.1, "Nobody has labelled this pair yet; the model has no clear preference "
         "(P(chosen better) = 47.5%): it neither backs nor questions the imported verdict "
         "(chosen is better)."),
    ],
)  # fmt: skip
def test_agreement_names_what_the_model_is_judged_against(label, margin, expected) -> None:
    assert scoring.agreement_text(verdict(pair(margin), label)) == expected


def test_split_choices_show_the_words_either_side() -> None:
    text = "Intro. One two three four five six.\n"
    cut = (7, len(text))  # the second sentence
    choices = scoring.split_choices(text, cut, words=2)
    assert list(choices) == [4, 8, 14, 19, 24]  # word starts, as offsets into the sentence
    assert choices[4] == "One | two three …"
    assert choices[14] == "… two three | four five …"
    assert choices[24] == "… four five | six."
    sentence = text[cut[0] : cut[1]]
    for at in choices:  # every choice is a split the edit accepts
        left, right = scoring.split_sentence(text, [(0, 7), cut], 1, at)[1:]
        assert text[left[0] : left[1]] + text[right[0] : right[1]] == sentence


def test_a_one_word_sentence_has_nowhere_to_split() -> None:
    assert scoring.split_choices("Hi. Yes.", (4, 8)) == {}
