"""bench/noise.py: planted flips, the ranking metrics, and a whole run on the tiny backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import noise
from srm.data import load_pairs


def test_plant_flips_swaps_a_known_share_deterministically(sample_path: Path) -> None:
    pairs = load_pairs(sample_path)
    noisy, flipped = noise.plant_flips(pairs, 0.2, seed=3)
    assert sum(flipped) == 10
    assert noise.plant_flips(pairs, 0.2, seed=3)[1] == flipped
    for pair, new, was_flipped in zip(pairs, noisy, flipped, strict=True):
        assert new == (pair.swapped() if was_flipped else pair)


def test_ranking_metrics_reward_flips_on_top() -> None:
    flipped = [True, False, True, False, False]
    perfect = noise.ranking_metrics([5.0, 1.0, 4.0, 2.0, 0.0], flipped)
    assert perfect == {"k": 2, "recall_at_k": 1.0, "precision_at_k": 1.0, "auroc": 1.0}
    worst = noise.ranking_metrics([0.0, 5.0, 1.0, 4.0, 3.0], flipped)
    assert (worst["recall_at_k"], worst["auroc"]) == (0.0, 0.0)
    half = noise.ranking_metrics([5.0, 4.0, 0.0, 1.0, 2.0], flipped)
    assert half["recall_at_k"] == 0.5 and half["auroc"] == pytest.approx(3 / 6)


def test_a_tiny_run_reports_every_method(tmp_path: Path, capsys) -> None:
    out = tmp_path / "noise.json"
    args = ["--backbone", "tiny", "--pairs", "30", "--folds", "2", "--steps", "2"]
    args += ["--rates", "0.2", "--heads", "sentence", "--max-length", "64"]
    args += ["--score-max-length", "64", "--out", str(tmp_path / "runs"), "--json", str(out)]
    assert noise.main(args) == 0
    report = json.loads(out.read_text())
    methods = [r["method"] for r in report["results"]]
    assert methods == [
        "out-of-fold audit, sentence head",
        "in-sample model, sentence head",
        "length (shorter chosen = suspect)",
        "random",
    ]
    assert all(r["k"] == 6 and 0 <= r["auroc"] <= 1 for r in report["results"])
    assert report["recipe"]["max_steps"] == 2 and report["folds"] == 2
    assert "recall@k" in capsys.readouterr().out
