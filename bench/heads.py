"""The paper's comparison at our scale: sentence vs response vs token heads on one backbone.

Trains the three heads with the same recipe (backbone, data, steps, seed: only the head
differs), evaluates each on held-out HH-RLHF and on PandaLM, and prints them beside the
length-only baseline, in one run:

    .venv/bin/python bench/heads.py --config recipes/default.toml --out runs/bench-heads

The sentence-head run is the recipe of the bundled default model, so its run directory is the
model `srm train --config recipes/default.toml ...` reproduces (CPU training is deterministic).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from srm.checkpoint import load
from srm.config import TrainConfig
from srm.data import load_pairs
from srm.evaluate import evaluate_model
from srm.train import train

REPO = Path(__file__).resolve().parents[1]
EVALS = {
    "held-out HH": REPO / "data" / "heldout_hh_rlhf.jsonl",
    "PandaLM": REPO / "data" / "eval_pandalm.jsonl",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "recipes" / "default.toml")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "train_hh_rlhf.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-heads")
    parser.add_argument("--heads", default="sentence,response,token")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    recipe = TrainConfig.from_toml(args.config)
    if args.max_steps:
        recipe = recipe.replace(max_steps=args.max_steps)
    train_pairs = load_pairs(args.data)
    evals = {name: load_pairs(path) for name, path in EVALS.items()}
    print(
        f"recipe {args.config.name}: backbone {recipe.model.backbone}, {recipe.finetune} "
        f"(r={recipe.lora_r}), max_length {recipe.model.max_length}, "
        f"{recipe.max_steps} steps x {recipe.batch_size} pairs, lr {recipe.lr}/{recipe.head_lr}, "
        f"seed {recipe.seed}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}",
        flush=True,
    )

    results: dict[str, dict] = {}
    baseline: dict[str, float] = {}
    for head in args.heads.split(","):
        cfg = recipe.replace(
            model=recipe.model.replace(head=head),
            output_dir=str(args.out / head),
        )
        start = time.perf_counter()
        run = train(cfg, train_pairs)
        train_seconds = time.perf_counter() - start
        model = load(args.out / head)
        row = {"train_seconds": train_seconds, "pairs_per_second": run.pairs_per_second}
        for name, pairs in evals.items():
            start = time.perf_counter()
            overall = evaluate_model(model, pairs, batch_size=32)["overall"]
            row[name] = overall["accuracy"]
            row[f"{name} eval seconds"] = time.perf_counter() - start
            baseline[name] = overall["length_baseline"]
        results[head] = row
        print(f"{head}: " + json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)

    names = list(EVALS)
    print()
    print(f"| head | {' | '.join(names)} | train time | train pairs/s |")
    print(f"|---|{'---|' * len(names)}---|---|")
    for head, row in results.items():
        cells = " | ".join(f"{row[n]:.1%}" for n in names)
        print(
            f"| {head} | {cells} | {row['train_seconds'] / 60:.1f} min | "
            f"{row['pairs_per_second']:.2f} |"
        )
    print(f"| length-only baseline | {' | '.join(f'{baseline[n]:.1%}' for n in names)} | | |")
    if "sentence" in results and "response" in results:
        print()
        for n in names:
            delta = (results["sentence"][n] - results["response"][n]) * 100
            verdict = "met" if delta >= 2 else "missed"
            print(f"sentence - response on {n}: {delta:+.1f} points (goal >= +2: {verdict})")
    if "sentence" in results:
        hh = results["sentence"]["held-out HH"]
        print(
            f"sentence head on held-out HH: {hh:.1%} (goal >= 60%: "
            f"{'met' if hh >= 0.6 else 'missed'})"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"recipe": recipe.to_dict(), "results": results, "length_baseline": baseline},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
