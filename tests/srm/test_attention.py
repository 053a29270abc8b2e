"""Sentence x sentence attention (srm.attention): blocks that add up, causality respected, one
layer or head picked, and the JSON srm score --attention writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from srm.attention import AttentionMap, pair_attention
from srm.cli import main
from srm.data import PreferencePair

PAIR = PreferencePair(
    "p",
    "Why do plants need light?",
    "Plants use light to make food. They take in water. That is why we need plants.",
    "Plants are green. Light is nice.",
    "test",
    None,
)


def test_each_sentence_splits_its_attention_over_the_blocks(make_model) -> None:
    model = make_model()
    maps = pair_attention(model, PAIR)
    chosen, rejected = maps["chosen"], maps["rejected"]
    assert chosen.blocks == ["prompt", "1", "2", "3", "markers"]
    assert rejected.blocks == ["prompt", "1", "2", "markers"]
    assert (chosen.layers, chosen.sentences) == (model.backbone.config.num_hidden_layers, 3)
    for layer in range(chosen.layers):
        for row in chosen.matrix(layer=layer, head=0):
            assert sum(row) == pytest.approx(1.0, abs=1e-4)  # softmax rows, blocks partition
    # The tiny backbone is causal: sentence i never reads a later sentence.
    weights = chosen.weights
    for i in range(3):
        later = [1 + j for j in range(i + 1, 3)]  # columns of sentences after sentence i + 1
        assert torch.all(weights[:, :, i, later] < 1e-6)
        assert torch.all(weights[:, :, i, 0] > 0)  # every sentence reads the prompt


def test_a_layer_and_a_head_are_picked_or_averaged() -> None:
    weights = torch.arange(2 * 2 * 1 * 3, dtype=torch.float).reshape(2, 2, 1, 3)
    amap = AttentionMap(["prompt", "1", "markers"], weights)
    assert amap.matrix(layer=1, head=0) == [[6.0, 7.0, 8.0]]
    assert amap.matrix(layer=-1, head=None) == [[7.5, 8.5, 9.5]]
    assert amap.matrix() == [[4.5, 5.5, 6.5]]
    with pytest.raises(ValueError, match="layer: got 2; the backbone has 2 \\(0 to 1\\)"):
        amap.matrix(layer=2)
    data = amap.to_json()
    assert data["by_layer"] == [[[1.5, 2.5, 3.5]], [[7.5, 8.5, 9.5]]]
    assert (data["layers"], data["heads"], data["mean"]) == (2, 2, [[4.5, 5.5, 6.5]])


def test_the_backbone_keeps_its_attention_implementation(make_model) -> None:
    model = make_model()
    before = getattr(model.backbone.config, "_attn_implementation", None)
    pair_attention(model, PAIR)
    assert getattr(model.backbone.config, "_attn_implementation", None) == before


def test_cli_score_writes_the_attention_of_every_response(
    tmp_path: Path, sample_path: Path, tiny_model: Path
) -> None:
    data = tmp_path / "three.jsonl"
    data.write_text("".join(sample_path.read_text().splitlines(keepends=True)[:3]))
    out = tmp_path / "scores.jsonl"
    args = ["score", "--model", str(tiny_model), "--data", str(data), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--attention"])
    assert result.exit_code == 0, result.output
    for line in out.read_text().splitlines():
        record = json.loads(line)
        for side in ("chosen", "rejected"):
            attention = record[side]["attention"]
            n = record[side]["n_scored"]
            assert attention["blocks"] == ["prompt", *map(str, range(1, n + 1)), "markers"]
            assert len(attention["mean"]) == n and len(attention["by_layer"]) == attention["layers"]
            assert all(sum(row) == pytest.approx(1.0, abs=1e-3) for row in attention["mean"])
    refused = CliRunner().invoke(
        main, ["score", "--model", str(tiny_model), "--dataset", "d", "--attention"]
    )
    assert refused.exit_code == 2 and "--attention applies to --data PATH" in refused.output
