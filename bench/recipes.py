"""The recipe table: trained models side by side on held-out HH-RLHF and PandaLM, beside the
length-only baseline, with what each recipe was and how long it trained.

Training is long on a CPU, so runs are trained on their own (in the background, resumable:
``srm train --config RECIPE --out runs/NAME --save-every 50``) and this script evaluates
whatever they produced, all in one process so that every row sees the same data:

    .venv/bin/python bench/recipes.py runs/smollm2 runs/minilm-default data/models/default

A run cut short is evaluated at its newest checkpoint (``RUN/checkpoints/step-N``) and marked
so in the table. ``--limit N`` evaluates the first N pairs of each set (a quicker, noisier
look while runs are still training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from srm.checkpoint import load, model_dir, read_info
from srm.data import load_pairs
from srm.evaluate import evaluate_model

REPO = Path(__file__).resolve().parents[1]
EVALS = {
    "held-out HH": REPO / "data" / "heldout_hh_rlhf.jsonl",
    "PandaLM": REPO / "data" / "eval_pandalm.jsonl",
}


def newest_model(run: Path) -> tuple[Path, str]:
    """The run's final model, else its newest resumable checkpoint (``cut at step N``)."""
    if (model_dir(run) / "config.json").is_file():
        return run, ""
    steps = sorted((run / "checkpoints").glob("step-*"))
    if not steps:
        raise SystemExit(f"{run}: neither a model nor a run with checkpoints")
    return steps[-1], f"cut at step {int(steps[-1].name.split('-')[1])}"


def recipe_cells(path: Path) -> dict[str, str]:
    """What the recipe was, from the checkpoint's own record of its training config."""
    info = read_info(path)
    cfg = (info.training or {}).get("config") or {}
    model = info.model
    steps = (info.training or {}).get("step")
    finetune = cfg.get("finetune", "?")
    if finetune == "lora":
        finetune = f"lora r{cfg.get('lora_r')}"
    if cfg.get("train_layers"):
        finetune += f", top {cfg['train_layers']} layers"
    seconds = (info.training or {}).get("seconds")
    return {
        "backbone": model.backbone,
        "head": model.head + ("" if model.prompt_term else ", no prompt term"),
        "finetune": finetune,
        "lr": f"{cfg.get('lr', '?')}/{cfg.get('head_lr', '?')}",
        "steps x batch": f"{steps} x {cfg.get('batch_size', '?')}",
        "train len": str(model.max_length),
        "policy": str(cfg.get("policy_weight") or "off"),
        "train time": f"{seconds / 60:.0f} min" if seconds else "-",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or checkpoints")
    parser.add_argument("--limit", type=int, default=None, help="first N pairs of each set")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    evals = {name: load_pairs(path)[: args.limit] for name, path in EVALS.items()}
    rows, baseline = [], {}
    for run in args.runs:
        path, note = newest_model(run)
        row = {"run": run.name + (f" ({note})" if note else ""), **recipe_cells(path)}
        model = load(path)
        for name, pairs in evals.items():
            start = time.perf_counter()
            overall = evaluate_model(model, pairs, batch_size=args.batch_size)["overall"]
            row[name] = overall["accuracy"]
            row[f"{name} eval s"] = round(time.perf_counter() - start, 1)
            baseline[name] = overall["length_baseline"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    names = list(EVALS)
    columns = [c for c in rows[0] if c not in names and not c.endswith(" eval s")]
    table = [columns + names, ["---"] * (len(columns) + len(names))]
    table += [[row[c] for c in columns] + [f"{row[n]:.1%}" for n in names] for row in rows]
    table.append(
        ["length-only baseline"] + [""] * (len(columns) - 1) + [f"{baseline[n]:.1%}" for n in names]
    )
    print()
    for cells in table:
        print("| " + " | ".join(cells) + " |")
    size = ", ".join(f"{n} {len(p)} pairs" for n, p in evals.items())
    print(f"\n({size})")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "length_baseline": baseline}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
