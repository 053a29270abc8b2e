"""Batch scoring: the records are exact views of the model, in input order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from srm.cli import main
from srm.data import PreferencePair, load_pairs
from srm.records import (
    Coverage,
    PairScores,
    ResponseScores,
    clear_preference,
    margin_split,
    p_chosen,
)
from srm.score import score_pairs, score_responses
from srm.segment import Span, merge_spans, segment


@pytest.fixture
def pairs(sample_path: Path) -> list[PreferencePair]:
    return load_pairs(sample_path)[:10]


def check_response(record: ResponseScores, response: str, head: str) -> None:
    sentences = record.sentences
    # Sentences tile the response exactly, in order.
    assert record.text == response
    assert all(response[s.start : s.end] == s.text for s in sentences)
    kept = [s for s in sentences if s.reward is not None]
    assert kept, "at least one sentence is always scored"
    assert (len(kept) < len(sentences)) <= record.truncated
    # "scored k of n": the counts match the sentences, and only a cut response is incomplete.
    assert (record.n_scored, record.n_sentences) == (len(kept), len(sentences))
    assert sentences[: len(kept)] == tuple(kept)  # the scored ones are the response's head
    assert record.truncated == (record.prompt_truncated or not record.coverage.complete)
    assert record.last_cut_short <= record.truncated
    weighted = record.prompt_weight * record.prompt_reward + sum(s.weight * s.reward for s in kept)
    assert weighted == pytest.approx(record.score, abs=1e-4)
    if head != "response":
        total = record.prompt_weight + sum(s.weight for s in kept)
        assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("head", ["sentence", "response", "token"])
def test_records_are_exact_and_in_input_order(make_model, pairs, head) -> None:
    model = make_model(head)
    records = score_pairs(model, pairs, batch_size=3, max_length=96)  # some get truncated
    assert [r.id for r in records] == [p.id for p in pairs]
    assert any(r.chosen.truncated or r.rejected.truncated for r in records)
    for record, pair in zip(records, pairs, strict=True):
        assert record.head == head and record.prefix_rewards is True
        assert record.max_length == 96
        check_response(record.chosen, pair.chosen, head)
        check_response(record.rejected, pair.rejected, head)
        json.dumps(record.to_json(), allow_nan=False)  # well-formed JSON


@pytest.mark.parametrize("head", ["sentence", "response", "token"])
@pytest.mark.parametrize("max_length", [48, 96, None])
def test_both_sides_of_every_pair_get_the_same_prompt_term(
    make_model, sample_path, head, max_length
) -> None:
    """One prompt encoding per pair: r_0 (the prompt-only prefix value) is identical on the
    chosen and the rejected side of every sample pair, even when the prompt is cut."""
    pairs = load_pairs(sample_path)
    records = score_pairs(make_model(head), pairs, batch_size=8, max_length=max_length)
    if max_length == 48:
        assert any(r.chosen.prompt_truncated for r in records)
    for r in records:
        assert r.chosen.prompt_reward == r.rejected.prompt_reward, r.id
        assert r.chosen.prompt_truncated == r.rejected.prompt_truncated
        if head == "response":  # weights 1: the prompt moves neither score relative to the other
            assert margin_split(r).prompt == 0.0


def test_scoring_uses_the_scoring_length_not_the_training_length(make_model, pairs) -> None:
    model = make_model(max_length=64)
    assert model.score_length == 512  # the tiny backbone's positions
    whole = score_pairs(model, pairs)
    assert all(r.max_length == 512 for r in whole)
    assert all(r.side(side).coverage.complete for r in whole for side in ("chosen", "rejected"))
    short = score_pairs(model, pairs, max_length=64)
    assert any(not r.chosen.coverage.complete for r in short)
    assert make_model(max_length=64, score_max_length=200).score_length == 200
    with pytest.raises(ValueError, match="max_length: got 4096"):
        score_pairs(model, pairs, max_length=4096)


def test_coverage_describes_what_was_scored() -> None:
    # An older record, without the counts: read from its sentences.
    sentences = [
        {"text": t, "start": 3 * i, "end": 3 * i + 3, "reward": r, "weight": r}
        for i, (t, r) in enumerate([("Hi.", 0.1), ("Yo.", None), ("No.", None)])
    ]
    side = {"score": 0.0, "prompt_reward": 0.0, "prompt_weight": 1.0, "truncated": True}
    older = ResponseScores.from_json(side | {"sentences": sentences})
    assert older.coverage == Coverage(1, 3)
    assert older.coverage.describe() == "scored 1 of 3 sentences"
    cut = Coverage(6, 14, last_cut_short=True)
    assert cut.describe() == "scored 6 of 14 sentences (the last in part)"
    assert not cut.complete and Coverage(1, 1).complete


def test_preference_probability_and_its_band() -> None:
    assert p_chosen(0.0) == 0.5
    assert p_chosen(-1000.0) == 0.0 and p_chosen(1000.0) == 1.0  # no overflow
    assert p_chosen(-0.5) == pytest.approx(1 - p_chosen(0.5))
    assert not clear_preference(0.19) and not clear_preference(-0.19)
    assert clear_preference(0.21) and clear_preference(-0.21)


def test_the_margin_split_adds_up(make_model, sample_path) -> None:
    # Hand-made, with binary fractions, so the arithmetic is exact:
    # chosen 0.5*0.25 + 0.25*1 + 0.25*(-0.5) = 0.25, rejected 0.25*0.25 + 0.75*0.5 = 0.4375.
    def side(score: float, weight: float, sentences: list[tuple[float | None, ...]]) -> dict:
        return {
            "score": score,
            "prompt_reward": 0.25,
            "prompt_weight": weight,
            "truncated": False,
            "sentences": [
                {"text": "A. ", "start": 3 * i, "end": 3 * i + 3, "reward": r, "weight": w}
                for i, (r, w) in enumerate(sentences)
            ],
        }

    record = PairScores.from_json(
        {
            "id": "p",
            "chosen": side(0.25, 0.5, [(1.0, 0.25), (-0.5, 0.25)]),
            "rejected": side(0.4375, 0.25, [(0.5, 0.75), (None, None)]),
        }
    )
    split = margin_split(record)
    assert (split.margin, split.prompt, split.sentences) == (-0.1875, 0.0625, -0.25)
    assert split.prompt + split.sentences == split.margin
    assert not split.prompt_dominates and split.prompt_share == pytest.approx(0.2)
    # On real records the parts add up to the float32 scores' precision.
    for r in score_pairs(make_model(), load_pairs(sample_path)[:20]):
        split = margin_split(r)
        assert split.prompt + split.sentences == pytest.approx(split.margin, abs=1e-6)


def test_score_responses_matches_the_pair_view(make_model, pairs) -> None:
    model = make_model()
    paired = score_pairs(model, pairs[:4])
    alone = score_responses(
        model, [p.prompt for p in pairs[:4]], [p.chosen for p in pairs[:4]], batch_size=3
    )
    for pair_record, record in zip(paired, alone, strict=True):
        assert record.score == pytest.approx(pair_record.chosen.score, abs=1e-5)
        assert [s.text for s in record.sentences] == [s.text for s in pair_record.chosen.sentences]
    given = score_responses(model, ["Q?"], ["One. Two."], spans=[[Span(0, 9, "One. Two.")]])
    assert [s.text for s in given[0].sentences] == ["One. Two."]


def test_token_head_reports_token_rewards_with_offsets(make_model, pairs) -> None:
    record = score_pairs(make_model("token"), pairs[:1])[0].chosen
    tokens = record.tokens
    assert tokens and all(0 <= t.start < t.end for t in tokens)
    kept = [s for s in record.sentences if s.reward is not None]
    first = kept[0]
    inside = [t.reward for t in tokens if first.start <= t.start < first.end]
    assert first.reward == pytest.approx(sum(inside) / len(inside), abs=1e-5)


def test_batch_size_does_not_change_the_numbers(make_model, pairs) -> None:
    model = make_model("sentence")
    one = score_pairs(model, pairs, batch_size=1)
    many = score_pairs(model, pairs, batch_size=8)
    for a, b in zip(one, many, strict=True):
        assert a.chosen.score == pytest.approx(b.chosen.score, abs=1e-5)
        assert a.rejected.score == pytest.approx(b.rejected.score, abs=1e-5)


def test_progress_callback_reaches_the_total(make_model, pairs) -> None:
    seen: list[tuple[int, int]] = []
    score_pairs(make_model(), pairs, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(4, 10), (8, 10), (10, 10)]


def test_cli_init_then_score(tmp_path: Path, sample_path: Path) -> None:
    runner = CliRunner()
    init = runner.invoke(main, ["init", "--out", str(tmp_path / "m"), "--backbone", "tiny"])
    assert init.exit_code == 0, init.output
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(
        main,
        ["score", "--model", str(tmp_path / "m"), "--data", str(sample_path), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Scored 50 pairs (100 sequences)" in result.output
    assert "sequences/s" in result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 50
    assert {"id", "source", "margin", "chosen", "rejected"} <= set(json.loads(lines[0]))


def test_cli_score_refuses_a_missing_model(tmp_path: Path, sample_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "score",
            "--model",
            str(tmp_path / "nope"),
            "--data",
            str(sample_path),
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code == 1
    assert "not a checkpoint directory" in result.output
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.slow
def test_untrained_minilm_scores_the_sample(tmp_path: Path, sample_path: Path) -> None:
    """The issue's acceptance run: an untrained minilm sentence model on sample_50."""
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--out", str(tmp_path / "m")]).exit_code == 0
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(
        main,
        ["score", "--model", str(tmp_path / "m"), "--data", str(sample_path), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    records = [PairScores.from_json(json.loads(line)) for line in out.read_text().splitlines()]
    pairs = load_pairs(sample_path)
    assert [r.id for r in records] == [p.id for p in pairs]
    for record, pair in zip(records, pairs, strict=True):
        check_response(record.chosen, pair.chosen, "sentence")
        check_response(record.rejected, pair.rejected, "sentence")


def test_hand_edited_sentences_are_scored_as_given(make_model, pairs) -> None:
    model = make_model("sentence", max_length=256)
    pair = next(p for p in pairs if len(segment(p.chosen)) >= 2)
    auto = score_pairs(model, [pair])[0]
    merged = merge_spans(segment(pair.chosen), 0)
    edited = score_pairs(model, [pair], spans=[{"chosen": merged}])[0]
    check_response(edited.chosen, pair.chosen, "sentence")
    assert len(edited.chosen.sentences) == len(auto.chosen.sentences) - 1
    assert edited.chosen.sentences[0].text == merged[0].text
    # The rejected response keeps its automatic sentences and its numbers.
    assert edited.rejected.score == pytest.approx(auto.rejected.score, abs=1e-5)


def test_cli_score_max_length_and_the_cut_line(tmp_path: Path, sample_path: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "m"
    assert runner.invoke(main, ["init", "--out", str(model), "--backbone", "tiny"]).exit_code == 0
    whole, short = tmp_path / "whole.jsonl", tmp_path / "short.jsonl"
    base = ["score", "--model", str(model), "--data", str(sample_path)]
    result = runner.invoke(main, [*base, "--out", str(whole)])
    assert result.exit_code == 0, result.output
    assert "at 512 tokens" in result.output and "were cut" not in result.output
    result = runner.invoke(main, [*base, "--out", str(short), "--max-length", "48"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in short.read_text().splitlines()]
    cut = sum(
        r[s]["n_scored"] < r[s]["n_sentences"] or r[s]["last_cut_short"]
        for r in records
        for s in ("chosen", "rejected")
    )
    assert cut > 0 and f"{cut} of 100 responses were cut by the context length" in result.output
    too_long = runner.invoke(
        main, [*base, "--out", str(tmp_path / "x.jsonl"), "--max-length", "4096"]
    )
    assert too_long.exit_code == 1 and "max_length: got 4096" in too_long.output
    stored = runner.invoke(main, ["score", "--dataset", "d", "--max-length", "64"])
    assert stored.exit_code == 2 and "own scoring length" in stored.output


def test_cli_eval_reports_cut_responses(tmp_path: Path, sample_path: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "m"
    assert runner.invoke(main, ["init", "--out", str(model), "--backbone", "tiny"]).exit_code == 0
    out = tmp_path / "report.json"
    result = runner.invoke(
        main,
        [
            "eval",
            "--model",
            str(model),
            "--data",
            str(sample_path),
            "--max-length",
            "48",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["coverage"]["responses"] == 100 and report["coverage"]["cut"] > 0
    assert f"{report['coverage']['cut']} of 100 responses were cut" in result.output


def test_nothing_to_score_gives_nothing(make_model) -> None:
    model = make_model()
    assert score_pairs(model, []) == [] and score_responses(model, [], []) == []
    empty = score_responses(model, ["Q?"], [""])[0]
    assert (empty.n_sentences, empty.n_scored, empty.prompt_weight) == (0, 0, 1.0)
