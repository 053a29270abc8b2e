"""Best-of-N: candidates read and checked, ranked by the model's score, the top choice
explained against the runner-up; ``srm rank``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from srm.bestofn import explain, rank
from srm.cli import main
from srm.data import DataError, load_candidates
from srm.records import sig3
from srm.score import score_responses

RECORDS = [
    {
        "id": "rain",
        "prompt": "Explain rain briefly.",
        "responses": [
            "Rain is wet.",
            "Water evaporates. It cools into clouds.\n\nThen it falls as rain.",
            "I don't know. Maybe ask someone else. Or look it up.",
        ],
    },
    {"prompt": "Say hi.", "responses": ["Hi.", "Hello there! How can I help you today?"]},
]


def write(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def candidates_file(tmp_path: Path) -> Path:
    return write(tmp_path / "candidates.jsonl", RECORDS)


def test_load_candidates(candidates_file: Path) -> None:
    items = load_candidates(candidates_file)
    assert [i.id for i in items][0] == "rain"
    assert items[1].id.startswith("sha256:")
    assert items[0].responses == tuple(RECORDS[0]["responses"])


def test_bad_candidates_name_the_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "a", "responses": ["only one"]},
            {"prompt": "b", "responses": ["x", 3]},
            {"prompt": "c", "responses": "x"},
            {"responses": ["x", "y"]},
        ],
    )
    with pytest.raises(DataError) as caught:
        load_candidates(path)
    message = str(caught.value)
    assert f"{path}:line 1: field 'responses': has 1; give at least two" in message
    assert f"{path}:line 2: field 'responses[1]': expected a string, got int" in message
    assert f"{path}:line 3: field 'responses': expected a list of strings, got str" in message
    assert f"{path}:line 4: field 'prompt': missing required field" in message


def test_rank_orders_by_the_models_score(make_model, candidates_file: Path) -> None:
    model = make_model()
    items = load_candidates(candidates_file)
    rankings = rank(model, items, batch_size=2)
    for item, ranking in zip(items, rankings, strict=True):
        n = len(item.responses)
        scores = [r.score for r in score_responses(model, [item.prompt] * n, item.responses)]
        got = [r.score for r in ranking.responses]
        assert got == pytest.approx(scores, abs=1e-5)
        assert [r.text for r in ranking.responses] == list(item.responses)
        assert sorted(got, reverse=True) == [got[i] for i in ranking.order]
        assert ranking.best == ranking.order[0] and ranking.runner_up == ranking.order[1]


def test_explanation_adds_up_sentence_by_sentence(make_model, candidates_file: Path) -> None:
    ranking = rank(make_model(), load_candidates(candidates_file))[0]
    why = explain(ranking)
    top, other = ranking.responses[why.best], ranking.responses[why.runner_up]
    assert why.lead == pytest.approx(top.score - other.score)
    assert why.lead >= 0
    assert why.split.prompt + why.split.sentences == pytest.approx(why.lead, abs=1e-5)
    assert len(why.rows) == max(len(top.sentences), len(other.sentences))
    assert sum(row.difference for row in why.rows) == pytest.approx(why.split.sentences, abs=1e-6)
    assert [row.top_text for row in why.rows if row.top_text] == [s.text for s in top.sentences]
    text = why.text()
    assert f"Candidate {why.best + 1} ranks first" in text
    assert f"ahead of candidate {why.runner_up + 1}" in text
    # The pair names: the lead is a prompt shift plus a sentence shift (srm.compare.Verdict).
    assert (
        f"prompt shift {sig3(why.split.prompt)} + sentence shift {sig3(why.split.sentences)}"
        in text
    )


def test_cli_rank(tmp_path: Path, tiny_model: Path, candidates_file: Path) -> None:
    out = tmp_path / "ranked.jsonl"
    result = CliRunner().invoke(
        main, ["rank", str(candidates_file), "--model", str(tiny_model), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "rain: #" in result.output
    assert "ranks first with" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines][0] == "rain"
    assert sorted(lines[0]["order"]) == [0, 1, 2]
    assert [r["text"] for r in lines[0]["responses"]] == RECORDS[0]["responses"]
    scores = [r["score"] for r in lines[0]["responses"]]
    assert scores[lines[0]["order"][0]] == max(scores)


def test_cli_rank_refuses_a_bad_file(tmp_path: Path, tiny_model: Path) -> None:
    path = write(tmp_path / "bad.jsonl", [{"prompt": "a", "responses": []}])
    result = CliRunner().invoke(main, ["rank", str(path), "--model", str(tiny_model)])
    assert result.exit_code == 1
    assert "bad.jsonl:line 1: field 'responses': has 0" in result.output
