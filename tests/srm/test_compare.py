"""srm.compare: one pair's verdict beside its label, and two models on a dataset, worked out by
hand on constructed scores (no model, no Streamlit)."""

from __future__ import annotations

import pytest

from srm.compare import (
    PairShift,
    compare_models,
    compare_scores,
    format_comparison,
    sample_note,
    verdict,
)
from srm.data import PreferencePair
from srm.records import PairScores
from srm.store import (
    ScoredPair,
    StoreError,
    import_pairs,
    list_pairs,
    record_label,
    record_training_pairs,
    register_model,
    save_scores,
)
from tests.conftest import scores_of


def scored(pair_id: int, source: str, label: str | None, gap: float, chars=(10, 5)) -> ScoredPair:
    """A pair as a model saw it: chosen minus rejected score ``gap``; ``chars`` the lengths."""
    return ScoredPair(pair_id, f"p{pair_id}", source, label, *chars, gap, 0.0)


def test_margins_turn_toward_the_side_the_label_prefers() -> None:
    rows_a = [
        scored(1, "hh", None, 2.0),  # A right
        scored(2, "hh", "swap", 2.0),  # the label prefers rejected: A's +2 is -2 for it
        scored(3, "shp", "keep", -1.0, chars=(3, 9)),  # shorter chosen: the baseline is wrong
        scored(4, "shp", "tie", 5.0),  # no preference: left out
        scored(5, "shp", "discard", 5.0),
        scored(6, "shp", None, 1.0),  # B never scored it: left out
    ]
    rows_b = [
        scored(1, "hh", None, 0.5),
        scored(2, "hh", "swap", -3.0),  # B prefers rejected, as the label does: a flip
        scored(3, "shp", "keep", 0.0),  # a margin of 0 is wrong, as a tie is in evaluation
        scored(4, "shp", "tie", 5.0),
        scored(5, "shp", "discard", 5.0),
    ]
    shifts = compare_scores(rows_a, rows_b)
    assert shifts == [
        PairShift(id="p1", source="hh", label=None, a=2.0, b=0.5, longer_preferred=True),
        PairShift(id="p2", source="hh", label="swap", a=-2.0, b=3.0, longer_preferred=False),
        PairShift(id="p3", source="shp", label="keep", a=-1.0, b=0.0, longer_preferred=False),
    ]
    assert [s.flipped for s in shifts] == [False, True, False]


def store_with_two_models(session_factory) -> tuple[int, int]:
    """Four pairs scored by models A and B; pair q2 is swapped by an annotator and q3 tied.

    pair  source  label   A gap  B gap  | A for the label  B for the label  longer preferred
    q0    hh      -       +1.0   +2.0   | +1.0 right       +2.0 right       yes
    q1    hh      -       +0.5   -0.5   | +0.5 right       -0.5 wrong       yes   (flips)
    q2    shp     swap    +1.5   -1.0   | -1.5 wrong       +1.0 right       no    (flips)
    q3    shp     tie     +3.0   +3.0   | left out
    """
    pairs = [
        PreferencePair("q0", "Q?", "A long answer.", "Short.", "hh"),
        PreferencePair("q1", "Q?", "A long answer.", "Short.", "hh"),
        PreferencePair("q2", "Q?", "A long answer.", "Short.", "shp"),
        PreferencePair("q3", "Q?", "A long answer.", "Short.", "shp"),
    ]
    gaps = {"A": [1.0, 0.5, 1.5, 3.0], "B": [2.0, -0.5, -1.0, 3.0]}
    with session_factory.begin() as s:
        import_pairs(s, "d", pairs)
        ids = {p.external_id: p.id for p in list_pairs(s, "d")}
        record_label(s, ids["q2"], "ana", "swap", expected_event_id=None)
        record_label(s, ids["q3"], "ana", "tie", expected_event_id=None)
        models = []
        for name, model_gaps in gaps.items():
            model_id = register_model(s, f"model {name}", f"/runs/{name}").id
            records = [scores_of(p.id, gap, 0.0) for p, gap in zip(pairs, model_gaps, strict=True)]
            save_scores(s, model_id, "d", records)
            models.append(model_id)
    return models[0], models[1]


def test_compare_models_on_the_store(session_factory) -> None:
    a, b = store_with_two_models(session_factory)
    with session_factory() as s:
        comparison = compare_models(s, "d", a, b)
    assert (comparison.a_name, comparison.b_name) == ("model A", "model B")
    assert (comparison.n, comparison.n_a, comparison.n_b) == (3, 4, 4)
    overall = comparison.overall
    assert (overall.n, overall.a, overall.b, overall.length_baseline) == pytest.approx(
        (3, 2 / 3, 2 / 3, 2 / 3)
    )
    hh, shp = comparison.by_source
    assert (hh.source, hh.n, hh.a, hh.b, hh.length_baseline) == ("hh", 2, 1.0, 0.5, 1.0)
    assert (shp.source, shp.n, shp.a, shp.b, shp.length_baseline) == ("shp", 1, 0.0, 1.0, 0.0)
    # The largest move first: q2 moved by 2.5, q1 by 1.
    assert [(p.id, p.a, p.b) for p in comparison.flipped] == [("q2", -1.5, 1.0), ("q1", 0.5, -0.5)]
    rows = comparison.accuracy_rows(("A: x", "B: y"))
    assert rows[:3] == [
        {"model": "A: x", "source": "hh", "accuracy": 1.0, "n": 2, "few": True},
        {"model": "B: y", "source": "hh", "accuracy": 0.5, "n": 2, "few": True},
        {"model": "length baseline", "source": "hh", "accuracy": 1.0, "n": 2, "few": True},
    ]
    assert [r["source"] for r in rows] == ["hh"] * 3 + ["shp"] * 3 + ["all"] * 3


def test_format_comparison_prints_the_pages_numbers(session_factory) -> None:
    a, b = store_with_two_models(session_factory)
    with session_factory() as s:
        text = format_comparison(compare_models(s, "d", a, b))
    lines = text.splitlines()
    assert lines[0] == f"A: #{a} model A (scored 4 pairs of d)"
    assert lines[2].startswith("3 pairs compared")
    overall = next(line for line in lines if line.startswith("overall"))
    assert overall.split() == ["overall", "3", "66.7%", "66.7%", "66.7%"]
    hh = next(line for line in lines if line.startswith("  hh"))
    assert hh.split()[:5] == ["hh", "2", "100.0%", "50.0%", "100.0%"]
    assert hh.endswith("(too few pairs to read)")  # 2 < MIN_SOURCE_PAIRS
    assert "flipped verdicts: 2 (B now right on 1, wrong on 1)" in lines
    q2 = next(line for line in lines if line.strip().startswith("q2"))
    assert q2.split() == ["q2", "shp", "swap", "-1.500", "+1.000"]


def test_a_comparison_keeps_to_pairs_neither_model_trained_on(session_factory) -> None:
    a, b = store_with_two_models(session_factory)
    with session_factory.begin() as s:
        record_training_pairs(s, b, "d", ["q0"])
    with session_factory() as s:
        comparison = compare_models(s, "d", a, b)
    assert [p.id for p in comparison.pairs] == ["q1", "q2"]
    assert (comparison.seen_left_out, comparison.in_sample) == (1, False)
    assert comparison.unknown == ("A",) and not comparison.held_out
    assert "1 pair that a model trained on left out" in sample_note(comparison)
    assert "does not know which pairs model A trained on" in sample_note(comparison)


def test_a_comparison_on_training_pairs_is_flagged_in_sample(session_factory) -> None:
    a, b = store_with_two_models(session_factory)
    with session_factory.begin() as s:
        record_training_pairs(s, a, "d", ["q0", "q1"])
        record_training_pairs(s, b, "d", ["q0", "q1", "q2", "q3"])
    with session_factory() as s:
        comparison = compare_models(s, "d", a, b)
    assert comparison.in_sample and comparison.n == 3 and not comparison.held_out
    assert sample_note(comparison).startswith("IN-SAMPLE: model A or B trained on every one")
    assert "IN-SAMPLE" in format_comparison(comparison)
    with session_factory.begin() as s:
        import_pairs(s, "fresh", [PreferencePair("f0", "Q?", "A long answer.", "Short.", "hh")])
        save_scores(s, a, "fresh", [scores_of("f0", 1.0, 0.0)])
        save_scores(s, b, "fresh", [scores_of("f0", -1.0, 0.0)])
    with session_factory() as s:
        fresh = compare_models(s, "fresh", a, b)
    assert fresh.held_out and fresh.n == 1
    assert sample_note(fresh) == "Held out: neither model trained on these 1 pair."


def test_format_comparison_without_common_pairs(session_factory) -> None:
    a, b = store_with_two_models(session_factory)
    with session_factory.begin() as s:
        import_pairs(s, "other", [PreferencePair("z", "Q?", "Yes.", "No.")])
    with session_factory() as s:
        comparison = compare_models(s, "other", a, b)
    assert comparison.overall is None and comparison.accuracy_rows() == []
    assert format_comparison(comparison).endswith("has a preference label.")


def test_compare_models_names_what_is_missing(session_factory) -> None:
    a, _ = store_with_two_models(session_factory)
    with session_factory() as s:
        with pytest.raises(StoreError, match="no dataset 'nope'"):
            compare_models(s, "nope", a, a)
        with pytest.raises(StoreError, match="no model with id 99"):
            compare_models(s, "d", a, 99)


def test_verdict_beside_each_label() -> None:
    record = scores_of("p", 1.0, 0.25)  # the model prefers chosen by 0.75
    agrees = {label: verdict(record, label).agrees for label in (None, "keep", "swap", "tie")}
    assert agrees == {None: True, "keep": True, "swap": False, "tie": None}
    v = verdict(record, None)
    assert (v.model_prefers, v.margin) == ("chosen", 0.75)
    assert v.probability_text == "67.9%" and v.clear
    assert v.split_text == "margin +0.75 = prompt shift 0 + sentence shift 0"
    unsure = verdict(scores_of("p", 0.1, 0.0), "discard")
    assert unsure.probability_text == "52.5% · no clear preference" and unsure.agrees is None
    assert verdict(scores_of("p", 0.0, 1.0), None).model_prefers == "rejected"


def test_verdict_of_a_model_without_a_prompt_term_names_only_the_sentences() -> None:
    def side(reward: float) -> dict:
        sentence = {"text": "A. ", "start": 0, "end": 3, "reward": reward, "weight": 1.0}
        return {"score": reward, "prompt_reward": 0.3, "prompt_weight": 0.0, "truncated": False,
                "sentences": [sentence]}  # fmt: skip

    record = PairScores.from_json({"id": "p", "chosen": side(0.5), "rejected": side(-0.25)})
    v = verdict(record, "keep")
    assert not v.prompt_term and v.prompt_note is None
    assert v.split_text == "margin +0.75 = sentence shift +0.75 (no prompt term)"


@pytest.mark.parametrize(
    "chosen, rejected, expected", [(1.0, 0.0, "keep"), (0.0, 1.0, "swap"), (0.0, 0.0, "keep")]
)
def test_the_suggestion_is_the_preferred_side_with_its_probability(
    chosen: float, rejected: float, expected: str
) -> None:
    """The suggestion behind the Annotate page's "model suggests swap: P(rejected better) =
    73.1%"."""
    v = verdict(scores_of("p", chosen, rejected), None)
    action, probability = v.suggestion
    assert action == expected
    assert probability == pytest.approx(max(v.p_chosen, 1 - v.p_chosen))
    assert probability >= 0.5


@pytest.mark.parametrize(
    "chosen, rejected, label, text",
    [
        (1.0, 0.0, "keep", "model suggests keep: P(chosen better) = 73.1%"),
        (0.0, 1.0, "swap", "model suggests swap: P(rejected better) = 73.1%"),
        (0.0, 0.9999, "swap", "model suggests swap: P(rejected better) = 73.1%"),
        # Inside the band: no suggestion, so nothing for a page to put forward.
        (0.1, 0.0, None, "no clear preference: P(chosen better) = 52.5%"),
        (0.0, 0.1, None, "no clear preference: P(chosen better) = 47.5%"),
        (0.0, 0.0, None, "no clear preference: P(chosen better) = 50.0%"),
        (0.0, 0.0005, None, "no clear preference: P(chosen better) = <50.0%"),
    ],
)
def test_the_suggestion_in_words_writes_p_as_every_page_does(
    chosen: float, rejected: float, label: str | None, text: str
) -> None:
    v = verdict(scores_of("p", chosen, rejected), None)
    assert (v.suggested_label, v.suggestion_text) == (label, text)
