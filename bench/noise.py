"""Does the label audit find wrong labels? Plant known flips and count how many it finds.

Takes ``--pairs`` pairs of the bundled HH-RLHF training data, swaps a known random share of
them (``--rates``, 10% and 20% by default), and ranks every pair by how strongly each method
disagrees with its (partly flipped) label:

- **out-of-fold audit** (one row per ``--heads``): :func:`srm.audit.audit_pairs`, a model per
  fold trained on the other folds with the recipe, margin of the held-out pairs;
- **in-sample**: one model trained on all the pairs with the same recipe, judging the labels
  it trained on (what the Annotate queue used before audits);
- **length**: the label prefers the shorter response (the longer-wins heuristic disagrees);
- **random**: a seeded shuffle.

With k = the number of planted flips, recall@k is the share of flips among the top k (and,
with k equal to the number of flips, precision@k is the same number); AUROC is the chance
that a flipped pair ranks above a clean one. Random's expectation: recall@k = the flip rate,
AUROC 0.5. Rerunnable and offline:

    nice -n 10 .venv/bin/python bench/noise.py --pairs 1000 --folds 3 --steps 100 \\
        --out runs/bench-noise --json runs/bench-noise/noise.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch

from srm.audit import audit_pairs, default_recipe
from srm.checkpoint import load
from srm.config import ModelConfig, TrainConfig
from srm.data import PreferencePair, load_pairs
from srm.evaluate import auroc
from srm.score import score_pairs
from srm.train import train

REPO = Path(__file__).resolve().parents[1]


def plant_flips(
    pairs: list[PreferencePair], rate: float, seed: int
) -> tuple[list[PreferencePair], list[bool]]:
    """The pairs with a random ``rate`` of them swapped, and which ones."""
    rng = random.Random(seed)
    flipped = set(rng.sample(range(len(pairs)), round(rate * len(pairs))))
    noisy = [p.swapped() if i in flipped else p for i, p in enumerate(pairs)]
    return noisy, [i in flipped for i in range(len(pairs))]


def ranking_metrics(disagreement: list[float], flipped: list[bool]) -> dict[str, float | int]:
    """recall@k, precision@k (k = number of flips) and AUROC of flipped vs clean, for a
    ranking by ``disagreement`` (higher: more likely wrong; ties broken by position)."""
    k = sum(flipped)
    order = sorted(range(len(disagreement)), key=lambda i: (-disagreement[i], i))
    found = sum(flipped[i] for i in order[:k])
    area = auroc(disagreement, flipped)  # None without a flip or without a clean pair
    return {
        "k": k,
        "recall_at_k": found / k if k else 0.0,
        "precision_at_k": found / k if k else 0.0,
        "auroc": 0.5 if area is None else area,
    }


def in_sample_margins(
    pairs: list[PreferencePair], recipe: TrainConfig, out: Path, batch_size: int
) -> dict[str, float]:
    """Margins of a model trained on all ``pairs``, judging those same pairs."""
    cfg = recipe.replace(output_dir=str(out))
    result = train(cfg, pairs, show_progress=False)
    model = load(result.output_dir)
    scores = score_pairs(model, pairs, batch_size=batch_size)
    return {r.id: r.chosen.score - r.rejected.score for r in scores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "train_hh_rlhf.jsonl")
    parser.add_argument(
        "--config", type=Path, default=None, help="recipe TOML (default: the project's)"
    )
    parser.add_argument("--pairs", type=int, default=2000, help="pairs drawn from --data")
    parser.add_argument("--rates", default="0.1,0.2", help="shares of pairs flipped")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="steps per model (recipe's)")
    parser.add_argument("--heads", default="sentence,response")
    parser.add_argument("--backbone", default=None, help="override the recipe's backbone")
    parser.add_argument("--max-length", type=int, default=None, help="training tokens")
    parser.add_argument("--score-max-length", type=int, default=None, help="scoring tokens")
    parser.add_argument("--no-in-sample", action="store_true", help="skip the in-sample models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-noise")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    recipe = TrainConfig.from_toml(args.config) if args.config else default_recipe()
    model_fields = {
        "backbone": args.backbone,
        "max_length": args.max_length,
        "score_max_length": args.score_max_length,
    }
    model = recipe.model.to_dict() | {k: v for k, v in model_fields.items() if v is not None}
    recipe = recipe.replace(
        model=ModelConfig.from_dict(model),
        max_steps=args.steps or recipe.max_steps,
        device="cpu",
        log_every=max(recipe.log_every, 1),
    )
    every = load_pairs(args.data)
    if args.pairs > len(every):
        print(f"--pairs {args.pairs}: {args.data} has {len(every)}", file=sys.stderr)
        return 2
    pairs = random.Random(args.seed).sample(every, args.pairs)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    rates = [float(r) for r in args.rates.split(",")]
    print(
        f"{args.pairs} pairs of {args.data.name}; {args.folds} folds by prompt; backbone "
        f"{recipe.model.backbone}, {recipe.finetune}, {recipe.max_steps} steps x "
        f"{recipe.batch_size} pairs at {recipe.model.max_length} tokens per model, scored at "
        f"{recipe.model.score_max_length or 'the backbone default'} tokens; seed {args.seed}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}",
        flush=True,
    )
    results = []
    started = time.perf_counter()
    for rate in rates:
        noisy, flipped = plant_flips(pairs, rate, args.seed)
        rows: dict[str, list[float]] = {}
        for head in heads:
            head_recipe = recipe.replace(model=recipe.model.replace(head=head))
            out = args.out / f"rate-{rate:g}" / head
            audit = audit_pairs(
                noisy, head_recipe, folds=args.folds, seed=args.seed, run_dir=out / "audit"
            )
            margins = audit.margins
            rows[f"out-of-fold audit, {head} head"] = [-margins[p.id] for p in noisy]
            if not args.no_in_sample:
                inside = in_sample_margins(noisy, head_recipe, out / "in-sample", 16)
                rows[f"in-sample model, {head} head"] = [-inside[p.id] for p in noisy]
            print(
                f"rate {rate:g}, {head} head done at {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        rows["length (shorter chosen = suspect)"] = [
            float(len(p.rejected) - len(p.chosen)) for p in noisy
        ]
        shuffle = random.Random(args.seed + 1)
        rows["random"] = [shuffle.random() for _ in noisy]
        for method, disagreement in rows.items():
            results.append(
                {"rate": rate, "method": method, **ranking_metrics(disagreement, flipped)}
            )
    seconds = time.perf_counter() - started

    print(f"\n{'flips':>6} {'method':<38} {'k':>5} {'recall@k':>9} {'prec@k':>8} {'AUROC':>7}")
    for r in results:
        print(
            f"{r['rate']:>6.0%} {r['method']:<38} {r['k']:>5} {r['recall_at_k']:>9.1%} "
            f"{r['precision_at_k']:>8.1%} {r['auroc']:>7.3f}"
        )
    print(f"\n{seconds:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "pairs": args.pairs,
            "folds": args.folds,
            "recipe": recipe.to_dict(),
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
