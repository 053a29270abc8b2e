"""Score records as typed values: the JSON they write is the JSON srm score has always written,
and what was written (by older versions too) reads back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from srm.data import PreferencePair, load_pairs
from srm.records import (
    PairScores,
    ResponseScores,
    ScoreRecordError,
    SentenceScore,
    probability_text,
)
from srm.score import score_pairs
from srm.store import (
    Score,
    get_score,
    import_pairs,
    list_pairs,
    make_sessionmaker,
    open_store,
    register_model,
    save_scores,
)

PAIR_KEYS = ["id", "source", "margin", "head", "prefix_rewards", "max_length", "chosen", "rejected"]
SIDE_KEYS = [
    "score",
    "prompt_reward",
    "prompt_weight",
    "truncated",
    "prompt_truncated",
    "n_sentences",
    "n_scored",
    "last_cut_short",
    "sentences",
]
SENTENCE_KEYS = ["text", "start", "end", "reward", "weight"]


@pytest.fixture
def pairs(sample_path: Path) -> list[PreferencePair]:
    return load_pairs(sample_path)[:6]


@pytest.mark.parametrize("head", ["sentence", "token"])
def test_to_json_is_the_record_srm_score_writes(make_model, pairs, head) -> None:
    records = score_pairs(make_model(head), pairs, max_length=64)  # some sentences cut
    for record in records:
        data = record.to_json()
        assert list(data) == PAIR_KEYS
        for side in ("chosen", "rejected"):
            tokens = ["tokens"] if head == "token" else []
            assert list(data[side]) == SIDE_KEYS + tokens
            assert all(list(s) == SENTENCE_KEYS for s in data[side]["sentences"])
            assert all(list(t) == ["start", "end", "reward"] for t in data[side].get("tokens", []))
        # Through JSON text and back: the same record, and the same JSON again.
        again = PairScores.from_json(json.loads(json.dumps(data, allow_nan=False)))
        assert again == record and again.to_json() == data
    assert any(s.reward is None for r in records for s in r.chosen.sentences)


def test_a_subset_is_written_only_when_the_pair_has_one(make_model) -> None:
    pair = PreferencePair("p", "Q?", "Yes. Sure.", "No.", "hh", 1.5, "mt-bench-hard")
    data = score_pairs(make_model(), [pair])[0].to_json()
    assert list(data)[:4] == ["id", "source", "margin", "subset"]
    assert (data["source"], data["margin"], data["subset"]) == ("hh", 1.5, "mt-bench-hard")
    plain = PreferencePair("p", "Q?", "Yes. Sure.", "No.", "hh", 1.5)
    assert "subset" not in score_pairs(make_model(), [plain])[0].to_json()


def older_side(score: float) -> dict:
    """One side as srm score wrote it before records said how much was scored."""
    return {
        "score": score,
        "prompt_reward": 0.5,
        "prompt_weight": 0.2,
        "truncated": True,
        "sentences": [
            {"text": "One. ", "start": 0, "end": 5, "reward": 1.0, "weight": 0.8},
            {"text": "Two.", "start": 5, "end": 9, "reward": None, "weight": None},
        ],
    }


def test_older_records_read_back_with_their_counts() -> None:
    record = PairScores.from_json(
        {
            "id": "p1",
            "source": "hh",
            "margin": None,
            "head": "sentence",
            "prefix_rewards": True,
            "chosen": older_side(0.9),
            "rejected": older_side(0.1),
        }
    )
    assert record.max_length is None and record.subset is None
    chosen = record.chosen
    assert (chosen.n_sentences, chosen.n_scored, chosen.last_cut_short) == (2, 1, False)
    assert not chosen.prompt_truncated and not chosen.coverage.complete
    assert chosen.text == "One. Two." and chosen.sentences[1] == SentenceScore(
        text="Two.", start=5, end=9, reward=None, weight=None
    )


def test_scores_stored_by_an_older_version_read_back(db_url: str) -> None:
    """The store's scores table keeps each side's JSON as it was written, older shapes too."""
    factory = make_sessionmaker(open_store(db_url))
    with factory.begin() as s:
        import_pairs(s, "d", [PreferencePair("p1", "Q?", "One. Two.", "Three.")])
        model_id = register_model(s, "m", "/runs/m").id
        pair_id = list_pairs(s, "d")[0].id
        s.add(
            Score(
                pair_id=pair_id,
                model_id=model_id,
                chosen_score=0.9,
                rejected_score=0.1,
                chosen_detail=older_side(0.9),
                rejected_detail=older_side(0.1),
            )
        )
    with factory() as s:
        row = get_score(s, pair_id, model_id)
        assert row.response("chosen").coverage.describe() == "scored 1 of 2 sentences"
        assert row.response("rejected").score == 0.1
        with pytest.raises(ValueError, match="side: got 'both'"):
            row.response("both")


def test_the_store_keeps_each_side_as_its_json(db_url: str, make_model, pairs) -> None:
    record = score_pairs(make_model(), pairs[:1])[0]
    factory = make_sessionmaker(open_store(db_url))
    with factory.begin() as s:
        import_pairs(s, "d", pairs[:1])
        model_id = register_model(s, "m", "/runs/m").id
        save_scores(s, model_id, "d", [record])
    with factory() as s:
        row = get_score(s, list_pairs(s, "d")[0].id, model_id)
        assert row.chosen_detail == record.chosen.to_json()
        assert row.rejected_detail == record.rejected.to_json()
        assert (row.chosen_score, row.rejected_score) == (
            record.chosen.score,
            record.rejected.score,
        )
        assert row.response("chosen") == record.chosen


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([1, 2], "not a JSON object"),
        ({"id": "p", "chosen": "yes", "rejected": {}}, "'chosen' is not an object"),
        ({"id": "p", "chosen": older_side(1.0), "rejected": {}}, "no 'sentences'"),
        (
            {"id": "p", "chosen": older_side(1.0), "rejected": {**older_side(0.0), "score": "1"}},
            "'score' is not a number",
        ),
        (
            {"id": "p", "chosen": older_side(1.0), "rejected": {**older_side(0.0), "score": True}},
            "'score' is not a number",
        ),
        ({"chosen": older_side(1.0), "rejected": older_side(0.0)}, "no 'id'"),
        (
            {"id": "p", "chosen": older_side(1.0), "rejected": older_side(0.0), "head": 3},
            "'head' is not a string",
        ),
        (
            {
                "id": "p",
                "chosen": {**older_side(1.0), "sentences": [{"text": "x"}]},
                "rejected": {},
            },
            "no 'start'",
        ),
    ],
)
def test_from_json_says_what_is_wrong(data: object, problem: str) -> None:
    with pytest.raises(ScoreRecordError, match=problem):
        PairScores.from_json(data)


def test_side_names_one_response() -> None:
    side = ResponseScores.from_json(older_side(1.0))
    record = PairScores(id="p", chosen=side, rejected=side)
    assert record.side("chosen") is record.chosen and record.side("rejected") is record.rejected
    with pytest.raises(ValueError, match="use chosen or rejected"):
        record.side("prompt")


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        (0.731, "73.1%"),
        (0.499, "49.9%"),
        (0.49951, "<50.0%"),
        (0.5, "50.0%"),
        (0.50049, ">50.0%"),
        (0.99996, ">99.9%"),
        (1.0, "100.0%"),
        (0.00004, "<0.1%"),
        (0.0, "0.0%"),
    ],
)
def test_probability_text_never_rounds_across_50_or_onto_certainty(p: float, shown: str) -> None:
    assert probability_text(p) == shown


def test_a_verdict_for_rejected_never_shows_50_percent() -> None:
    """A margin a hair below 0 prefers rejected; its probability must read below 50%."""
    from srm.compare import verdict

    for margin in (-1e-9, -0.0001, -0.0019, -0.004):
        side = ResponseScores.from_json(
            {"score": margin, "prompt_reward": 0.0, "prompt_weight": 0.0, "truncated": False,
             "sentences": []}
        )  # fmt: skip
        zero = replace(side, score=0.0)
        shown = verdict(PairScores(id="p", chosen=side, rejected=zero), None)
        assert shown.model_prefers == "rejected"
        number = shown.probability_text.split(" ")[0]
        assert number.startswith("<") or float(number.rstrip("%")) < 50, number
