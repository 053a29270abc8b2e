"""Evaluation from hand-made scores with known answers."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from srm.cli import main
from srm.evaluate import (
    auroc,
    calibration,
    credit_method_names,
    credit_report,
    format_credit_report,
    format_report,
    pointing_credit,
    summarize,
)
from srm.records import PairScores, ResponseScores


def record_json(
    pid: str,
    source: str,
    chosen: tuple[str, float],
    rejected: tuple[str, float],
    subset: str | None = None,
) -> dict:
    """A pair's scores as JSON: one sentence per response, its reward the score."""

    def side(text: str, score: float) -> dict:
        return {
            "score": score,
            "prompt_reward": 0.0,
            "prompt_weight": 0.0,
            "truncated": False,
            "sentences": [
                {"text": text, "start": 0, "end": len(text), "reward": score, "weight": 1.0}
            ],
        }

    out = {
        "id": pid,
        "source": source,
        "margin": None,
        "chosen": side(*chosen),
        "rejected": side(*rejected),
    }
    if subset:
        out["subset"] = subset
    return out


def record(*args: Any, **kwargs: Any) -> PairScores:
    return PairScores.from_json(record_json(*args, **kwargs))


# Source a: 3 of 4 right (one tie counts as wrong... see a4); source b: 1 of 2 right.
RECORDS = [
    record("a1", "a", ("long answer", 2.0), ("short", 1.0), "alpacaeval-easy"),  # right, longer
    record("a2", "a", ("tiny", 0.5), ("much longer one", 0.0), "alpacaeval-easy"),  # right, shorter
    record("a3", "a", ("equal", 1.0), ("other", 3.0), "mt-bench-hard"),  # wrong, same length
    record("a4", "a", ("a tie here", 1.0), ("tie", 1.0), "mt-bench-hard"),  # tie: wrong, longer
    record("b1", "b", ("yes indeed", 0.2), ("no", 0.1), "my-subset"),  # right, longer
    record("b2", "b", ("ok", -1.0), ("not ok at all", 1.0), "my-subset"),  # wrong, shorter
]


def test_overall_and_per_source_accuracy_with_ties_wrong() -> None:
    report = summarize(RECORDS)
    assert report["overall"]["n"] == 6
    assert report["overall"]["accuracy"] == pytest.approx(3 / 6)
    assert report["by_source"]["a"]["accuracy"] == pytest.approx(2 / 4)
    assert report["by_source"]["b"]["accuracy"] == pytest.approx(1 / 2)
    margins = [1.0, 0.5, -2.0, 0.0, 0.1, -2.0]
    assert report["overall"]["mean_margin"] == pytest.approx(sum(margins) / 6)


def test_length_baseline_counts_the_longer_chosen_and_ties_wrong() -> None:
    report = summarize(RECORDS)
    # chosen longer in a1, a4, b1; a3 has equal lengths (a tie: wrong).
    assert report["overall"]["length_baseline"] == pytest.approx(3 / 6)
    assert report["by_source"]["a"]["length_baseline"] == pytest.approx(2 / 4)
    assert report["by_source"]["b"]["length_baseline"] == pytest.approx(1 / 2)


def test_sections_are_count_weighted_means_of_subsets() -> None:
    sections = summarize(RECORDS)["sections"]
    assert sections["chat"] == {
        "n": 2,
        "accuracy": 1.0,
        "subsets": {"alpacaeval-easy": {"n": 2, "accuracy": 1.0}},
    }
    assert sections["chat-hard"]["accuracy"] == 0.0
    assert sections["my-subset"]["accuracy"] == 0.5  # an unknown subset is its own section


def test_no_sections_without_subsets() -> None:
    plain = [replace(r, subset=None) for r in RECORDS]
    assert "sections" not in summarize(plain)


def test_calibration_buckets_by_absolute_margin() -> None:
    rows = [{"margin": m, "correct": m > 0} for m in (0.1, -0.2, 0.3, 2.0, -3.0, 4.0)]
    buckets = calibration(rows, buckets=3)
    # |margin| order: 0.1 (right), 0.2 (wrong) | 0.3, 2.0 (right) | 3.0 (wrong), 4.0 (right)
    assert [(b["n"], b["accuracy"]) for b in buckets] == [(2, 0.5), (2, 1.0), (2, 0.5)]
    assert [b["lo"] for b in buckets] == [0.1, 0.3, 3.0]
    assert buckets[0]["mean_confidence"] < buckets[-1]["mean_confidence"]


def test_cli_eval_of_a_scores_file(tmp_path: Path) -> None:
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps(r.to_json()) + "\n" for r in RECORDS))
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["eval", "--scores", str(scores), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "overall" in result.output and "50.0%" in result.output
    report = json.loads(out.read_text())
    assert set(report) >= {"overall", "by_source", "calibration"}
    assert set(report["overall"]) == {"n", "accuracy", "length_baseline", "mean_margin"}
    assert report["overall"]["accuracy"] == 0.5


def test_cli_eval_runs_a_model(tmp_path: Path, sample_path: Path) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(main, ["init", "--out", str(tmp_path / "m"), "--backbone", "tiny"]).exit_code
        == 0
    )
    result = runner.invoke(
        main, ["eval", "--model", str(tmp_path / "m"), "--data", str(sample_path)]
    )
    assert result.exit_code == 0, result.output
    overall = next(line for line in result.output.splitlines() if line.startswith("overall"))
    assert overall.split()[:2] == ["overall", "50"]


def test_format_report_lists_sources_and_sections() -> None:
    text = format_report(summarize(RECORDS))
    assert "  a " in text and "  b " in text
    assert "section chat-hard" in text
    assert "length-only baseline" in text


# ------------------------------------------------------------------ sentence-level credit


def response(sentences: list[tuple[str, float | None, float | None]]) -> ResponseScores:
    """A scored response record from (text, reward, weight) per sentence; None = truncated."""
    out, start = [], 0
    for text, reward, weight in sentences:
        out.append(
            {
                "text": text,
                "start": start,
                "end": start + len(text),
                "reward": reward,
                "weight": weight,
            }
        )
        start += len(text)
    scored = sum(r is not None for _, r, _ in sentences)
    return ResponseScores.from_json(
        {
            "score": 0.0,
            "prompt_reward": 0.0,
            "prompt_weight": 0.0,
            "truncated": scored < len(sentences),
            "n_sentences": len(sentences),
            "n_scored": scored,
            "sentences": out,
        }
    )


# Four responses A-D; label None = unlabelled, reward None = left out by truncation. Both are
# left out of every metric. Per sentence, what each method ranks by:
#
#       text            label       reward weight | a*r     first: j  last: K-1-j  length
#   A0  "Yes. "         good         0.5    0.2   |  0.1    0         3            4
#   A1  "It is blue. "  bad         -1.0    0.1   | -0.1    1         2           11
#   A2  "Hmm. "         unlabelled   0.3    0.3   |
#   A3  "Fine."         good        -1.0    0.4   | -0.4    3         0            5
#   B0  "No. "          bad          0.2    0.5   |  0.1    0         2            3
#   B1  "Maybe so. "    good         0.1    0.5   |  0.05   1         1            9
#   B2  "Cut off."      good        truncated     |
#   C0  "One. "         good         0.0    0.5   |  0.0    0         2            4
#   C1  "Two! "         good         0.5    0.25  |  0.125  1         1            4
#   C2  "Three?"        good         0.5    0.25  |  0.125  2         0            6
#   D0  "Bad bad. "     bad         -0.5    0.5   | -0.25   0         1            8
#   D1  "Good."         good         0.5    0.5   |  0.25   1         0            5
STEP_ITEMS = [
    {
        "source": "x",
        "labels": [True, False, None, True],
        "record": response(
            [
                ("Yes. ", 0.5, 0.2),
                ("It is blue. ", -1.0, 0.1),
                ("Hmm. ", 0.3, 0.3),
                ("Fine.", -1.0, 0.4),
            ]
        ),
    },
    {
        "source": "x",
        "labels": [False, True, True],
        "record": response(
            [("No. ", 0.2, 0.5), ("Maybe so. ", 0.1, 0.5), ("Cut off.", None, None)]
        ),
    },
    {
        "source": "y",
        "labels": [True, True, True],  # no bad sentence: not eligible for pointing
        "record": response([("One. ", 0.0, 0.5), ("Two! ", 0.5, 0.25), ("Three?", 0.5, 0.25)]),
    },
    {
        "source": "y",
        "labels": [False, True],
        "record": response([("Bad bad. ", -0.5, 0.5), ("Good.", 0.5, 0.5)]),
    },
]
# Overall: 7 good and 3 bad scored sentences, so 21 (good, bad) pairs; eligible: A, B, D.
#
# reward. Good: 0.5 -1 | 0.1 | 0 .5 .5 | .5   Bad: -1 (A), 0.2 (B), -0.5 (D)
#   above -1: 6 goods, 1 tie (A3) -> 6.5; above 0.2: 4 -> 4; above -0.5: 6 -> 6.
#   AUROC = 16.5 / 21. Pointing: A ties -1 (bad A1, good A3) -> 1/2; B lowest 0.1 good -> 0;
#   D lowest -0.5 bad -> 1. (1/2 + 0 + 1) / 3 = 1/2.
# weighted (a*r). Good: .1 -.4 | .05 | 0 .125 .125 | .25   Bad: -.1, .1, -.25
#   above -.1: 6; above .1: 3 plus a tie (A0) -> 3.5; above -.25: 6. AUROC = 15.5 / 21.
#   Pointing: A lowest -.4 good -> 0; B lowest .05 good -> 0; D -> 1. 1/3.
# first (j). Good: 0 3 | 1 | 0 1 2 | 1   Bad: 1, 0, 0
#   above 1: 2 plus 3 ties -> 3.5; above 0: 5 plus 2 ties -> 6, twice. AUROC = 15.5 / 21.
#   Pointing: A blames A0 good -> 0; B blames B0 bad -> 1; D blames D0 bad -> 1. 2/3.
# last (K-1-j). Good: 3 0 | 1 | 2 1 0 | 0   Bad: 2, 2, 1
#   above 2: 1 plus 1 tie -> 1.5, twice; above 1: 2 plus 2 ties -> 3. AUROC = 6 / 21.
#   Pointing: A blames A3 good, B blames B1 good (B2 was not scored), D blames D1 good. 0.
# length. Good: 4 5 | 9 | 4 4 6 | 5   Bad: 11, 3, 8
#   above 11: 0; above 3: 7; above 8: 1. AUROC = 8 / 21.
#   Pointing: A blames A0 (4) good -> 0; B blames B0 (3) bad -> 1; D blames D1 (5) good -> 0. 1/3.
# random. AUROC 0.5; pointing = mean share of bad: (1/3 + 1/2 + 1/2) / 3 = 4/9.
EXPECTED_OVERALL = {
    "reward": (16.5 / 21, 1 / 2),
    "weighted": (15.5 / 21, 1 / 3),
    "random": (0.5, 4 / 9),
    "first": (15.5 / 21, 2 / 3),
    "last": (6 / 21, 0.0),
    "length": (8 / 21, 1 / 3),
}


def test_credit_report_overall_figures_by_hand() -> None:
    report = credit_report(STEP_ITEMS, head="sentence")
    overall = report["overall"]
    assert overall["responses"] == 4
    assert overall["eligible"] == 3
    assert overall["sentences"] == {"good": 7, "bad": 3, "unlabelled": 1, "truncated": 1}
    assert list(overall["metrics"]) == list(report["methods"]) == list(EXPECTED_OVERALL)
    for method, (auroc_, pointing) in EXPECTED_OVERALL.items():
        got = overall["metrics"][method]
        assert got == pytest.approx({"auroc": auroc_, "pointing": pointing}), method


def test_credit_report_per_source_by_hand() -> None:
    by_source = credit_report(STEP_ITEMS, head="sentence")["by_source"]
    assert list(by_source) == ["x", "y"]
    x, y = by_source["x"], by_source["y"]
    # x, reward. Good: 0.5 -1 0.1, bad: -1 (A1), 0.2 (B0). Above -1: 2 + a tie -> 2.5;
    # above 0.2: 1. AUROC 3.5 / 6. Pointing (A 1/2, B 0) -> 1/4.
    assert x["metrics"]["reward"] == pytest.approx({"auroc": 3.5 / 6, "pointing": 0.25})
    assert x["sentences"] == {"good": 3, "bad": 2, "unlabelled": 1, "truncated": 1}
    # y: the bad D0 (-0.5) is below all four goods; only D is eligible, and it points right.
    assert y["metrics"]["reward"] == {"auroc": 1.0, "pointing": 1.0}
    assert (y["responses"], y["eligible"]) == (2, 1)


def test_credit_report_without_bad_sentences_has_no_figures() -> None:
    only_good = credit_report([STEP_ITEMS[2]], head="sentence")["overall"]
    assert only_good["eligible"] == 0
    for metrics in only_good["metrics"].values():
        assert metrics == {"auroc": None, "pointing": None}


def test_credit_report_needs_one_label_per_sentence() -> None:
    item = {**STEP_ITEMS[0], "labels": [True, False]}
    with pytest.raises(ValueError, match="item 0: 2 labels but the record has 4 sentences"):
        credit_report([item], head="sentence")


def test_auroc_matches_counting_every_pair() -> None:
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 30)
        scores = [rng.choice([-1.0, 0.0, 0.5, 1.0, rng.random()]) for _ in range(n)]  # ties
        good = [rng.random() < 0.5 for _ in range(n)]
        pairs = [
            (g, b)
            for g, lg in zip(scores, good, strict=True)
            if lg
            for b, lb in zip(scores, good, strict=True)
            if not lb
        ]
        expected = (
            sum(1.0 if g > b else 0.5 if g == b else 0.0 for g, b in pairs) / len(pairs)
            if pairs
            else None
        )
        assert auroc(scores, good) == pytest.approx(expected)


def test_pointing_credit_shares_ties() -> None:
    assert pointing_credit([0.3, -2.0, 1.0], [True, False, True]) == 1.0
    assert pointing_credit([0.3, -2.0, 1.0], [False, True, False]) == 0.0
    assert pointing_credit([-1.0, -1.0, -1.0, 0.0], [False, True, True, False]) == pytest.approx(
        1 / 3
    )


def test_credit_method_names_follow_the_head() -> None:
    assert credit_method_names("response")["reward"] == "prefix re-scoring (response head)"
    assert credit_method_names("token")["reward"] == "mean token reward (token head)"
    assert "not causal" in credit_method_names("response", prefix_rewards=False)["reward"]
    with pytest.raises(ValueError, match="unknown head"):
        credit_method_names("value")


def test_format_credit_report_rows_counts_and_sources() -> None:
    text = format_credit_report(credit_report(STEP_ITEMS, head="response"))
    lines = text.splitlines()
    assert lines[1] == (
        "overall: 4 responses, 3 with good and bad; sentences 7 good, 3 bad, 1 truncated, "
        "1 unlabelled"
    )
    reward_row = lines[2].split()
    assert " ".join(reward_row[:-2]) == "prefix re-scoring (response head)"
    assert reward_row[-2:] == [f"{16.5 / 21:.3f}", "50.0%"]
    assert "source x: 2 responses" in text and "source y: 2 responses" in text
    single = format_credit_report(credit_report(STEP_ITEMS[:2], head="sentence"))
    assert "source x" not in single


def test_format_credit_report_shows_missing_figures_as_dashes() -> None:
    text = format_credit_report(credit_report([STEP_ITEMS[2]], head="sentence"))
    assert text.splitlines()[2].split()[-2:] == ["-", "-"]


def test_the_report_says_how_much_the_prompt_term_carries() -> None:
    def with_prompt(rec: dict, chosen_weight: float, rejected_weight: float) -> PairScores:
        # r_0 = -1 on both sides (one prompt encoding); the sentence's weight is what remains.
        for side, weight in (("chosen", chosen_weight), ("rejected", rejected_weight)):
            part = rec[side]
            sentence = part["sentences"][0]
            sentence["weight"] = 1.0 - weight
            part.update(prompt_reward=-1.0, prompt_weight=weight)
            part["score"] = -weight + sentence["reward"] * sentence["weight"]
        return PairScores.from_json(rec)

    records = [
        # prompt term -1 * (0.25 - 0.5) = +0.25 for the longer chosen: it carries the pair
        # (sentences 0.75 * 0.1 - 0.5 * 0.1 = +0.025).
        with_prompt(record_json("p1", "s", ("longer one", 0.1), ("short", 0.1)), 0.25, 0.5),
        # prompt term -0.25 against the longer chosen; sentences 0.5 * 2 - 0.75 * 0 = +1.
        with_prompt(record_json("p2", "s", ("longer one", 2.0), ("short", 0.0)), 0.5, 0.25),
        # no prompt term (equal weights); sentences -0.5 decide, wrongly.
        with_prompt(record_json("p3", "s", ("a", 0.0), ("b", 1.0)), 0.5, 0.5),
    ]
    term = summarize(records)["prompt_term"]
    assert term["dominates"] == pytest.approx(1 / 3)
    assert term["prompt_accuracy"] == pytest.approx(1 / 3)  # p1 only; p3's 0 is not a win
    assert term["sentence_accuracy"] == pytest.approx(2 / 3)
    assert term["prompt_follows_length"] == pytest.approx(1 / 2)  # of p1, p2 (p3 moves none)
    assert "prompt term: carries most of the margin in 33.3% of pairs" in format_report(
        summarize(records)
    )
