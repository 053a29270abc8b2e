"""How long the Inspect page waits for one pair: ``score_pairs`` on a single pair, per backbone.

Inspect scores the pair on screen when the store has no scores for it yet: one pair, both
responses, at the model's scoring length (whole responses). This times exactly that call on
the first N held-out HH pairs, for each backbone side by side (untrained heads: the cost does
not depend on the weights), after one warm-up call:

    .venv/bin/python bench/pair_latency.py                      # minilm and smollm2, 20 pairs
    .venv/bin/python bench/pair_latency.py --backbones minilm --pairs 50
    .venv/bin/python bench/pair_latency.py --backbones none --models data/models/default,DIR

``--models`` times saved models (a checkpoint directory each) the same way: the default model
the app opens with, a likelihood model (``srm init --likelihood smollm2``), an imported reward
model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from srm.checkpoint import load
from srm.config import ModelConfig
from srm.data import load_pairs
from srm.model import SentenceRewardModel
from srm.score import score_pairs

DATA = Path(__file__).resolve().parents[1] / "data" / "heldout_hh_rlhf.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="minilm,smollm2")
    parser.add_argument("--models", default="", help="checkpoint directories, comma-separated")
    parser.add_argument("--pairs", type=int, default=20)
    args = parser.parse_args(argv)

    pairs = load_pairs(DATA)[: args.pairs]
    rows = {}
    makers = {
        name: (lambda name=name: SentenceRewardModel.create(ModelConfig(backbone=name)))
        for name in args.backbones.split(",")
        if name and name != "none"
    }
    makers |= {path: (lambda path=path: load(path)) for path in args.models.split(",") if path}
    for name, make in makers.items():
        model = make().eval()
        score_pairs(model, pairs[:1])  # warm-up: first-call allocations
        seconds = []
        for pair in pairs:
            start = time.perf_counter()
            score_pairs(model, [pair])
            seconds.append(time.perf_counter() - start)
        rows[name] = (statistics.median(seconds), max(seconds), model.score_length)
    base = next(iter(rows.values()))[0]
    print(f"{len(pairs)} held-out HH pairs, one at a time; torch {torch.get_num_threads()} threads")
    print("| backbone or model | scoring length | median s/pair | max s/pair | median vs first |")
    print("|---|---|---|---|---|")
    for name, (median, worst, length) in rows.items():
        print(f"| {name} | {length} | {median:.2f} | {worst:.2f} | {median / base:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
