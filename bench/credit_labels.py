"""Sentence credit against human sentence labels: every credit method side by side, by fold.

On ``data/qa_feedback/steps.jsonl`` (250 QA responses, each sentence labelled good or bad by
people, with the error kinds), split by question into folds (:func:`srm.audit.assign_folds`),
each method ranks the sentences of every held-out response; a method that trains sees only the
other folds' labels. Reported, overall and by error kind, with 95% bootstrap intervals
(responses resampled):

* **AUROC**: P(a good sentence ranks above a bad one), ties one half (by kind: good against
  bad sentences of that kind);
* **pointing**: over responses with a good and a bad sentence, the share whose lowest-ranked
  sentence is bad (by kind: over responses that have that kind, lowest is of that kind).

Methods (``--methods``, comma-separated; each is computed once and kept in ``--work``, so a
stopped run resumes and the table can be printed again with ``--methods none``):

* ``baselines``: random, first, last and shortest sentence blamed (rows of every report);
* ``default``: the bundled default model's r_j and a_j r_j (untrained on these labels);
* ``likelihood``: SmolLM2-135M-Instruct's own likelihood, no training: each sentence's mean
  and summed token log-probability given the prompt (chat template; its last ``--lm-length``
  tokens, which hold the question) and the sentences before it, on marker-free context;
* ``likelihood-variants``: on the first ``--variant-records`` responses, the same read with
  the markers in the context, and without the chat template, to measure what those do;
* ``response``: a response-level head (MiniLM, trained on HH-RLHF pairs), its prefix rewards;
* ``steps-minilm``: the default model continued (``init_from``) on the training folds'
  sentence labels mixed with HH-RLHF pairs;
* ``steps-minilm-probe``: the same, with the backbone and marker frozen: only the heads learn
  (no backward pass through the backbone);
* ``steps-smollm2``: a sentence head on SmolLM2 with the likelihood feature, only its top 2
  layers trained, on the training folds' labels (the hybrid: learned prefix values plus a
  learned weight on the likelihood; ``--only-folds`` keeps its cost in hand).

    .venv/bin/python bench/credit_labels.py --methods baselines,default,likelihood
    .venv/bin/python bench/credit_labels.py --methods steps-minilm      # ~5 min a fold
    .venv/bin/python bench/credit_labels.py --methods none --json runs/credit_labels.json

The steps are joined with a space (the responses' own separator), so sentences read as the
annotators read them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srm.audit import assign_folds  # noqa: E402
from srm.checkpoint import load  # noqa: E402
from srm.collate import collate, encode_many  # noqa: E402
from srm.config import ModelConfig, TrainConfig  # noqa: E402
from srm.data import SentenceLabels, StepRecord, load_pairs  # noqa: E402
from srm.evaluate import auroc, pointing_credit  # noqa: E402
from srm.model import SentenceRewardModel, _per_sentence_means, token_logprobs  # noqa: E402
from srm.records import ResponseScores  # noqa: E402
from srm.score import score_responses  # noqa: E402
from srm.train import train  # noqa: E402

log = logging.getLogger("bench.credit_labels")

STEPS = ROOT / "data" / "qa_feedback" / "steps.jsonl"
HH_TRAIN = ROOT / "data" / "train_hh_rlhf.jsonl"
DEFAULT_MODEL = ROOT / "data" / "models" / "default"
SEPARATOR = " "
KINDS = ("Irrelevant", "Redundant", "Unverifiable", "Wrong-Grounding", "Incoherent")
Scores = dict[str, list[float]]  # record id -> one score per sentence (higher = better)


# ----------------------------------------------------------------------------------- the data
def load_records(path: Path) -> list[dict[str, Any]]:
    """The step records with their error kinds (``load_steps`` keeps TRL's fields only)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def step_record(raw: dict[str, Any]) -> StepRecord:
    return StepRecord(
        raw["id"], raw["prompt"], tuple(raw["completions"]), tuple(raw["labels"]), raw["source"]
    )


def folds_of(records: Sequence[dict[str, Any]], folds: int, seed: int) -> list[int]:
    return assign_folds([r["prompt"] for r in records], folds, seed)


# ------------------------------------------------------------------------------- the methods
def by_record(
    records: Sequence[dict[str, Any]], scored: Sequence[ResponseScores], read: Callable
) -> dict[str, Scores]:
    """``{row: {record id: scores}}`` from scored responses; ``read(response)`` gives
    ``{row: [score per sentence]}`` (a sentence left out by truncation scores -inf: blamed
    first, as a reader who cannot see it would not; there are few at 1,024 tokens)."""
    out: dict[str, Scores] = {}
    for raw, response in zip(records, scored, strict=True):
        for row, values in read(response).items():
            out.setdefault(row, {})[raw["id"]] = [v if v is not None else -math.inf for v in values]
    return out


def srm_rows(prefix: str) -> Callable[[ResponseScores], dict[str, list[float | None]]]:
    def read(response: ResponseScores) -> dict[str, list[float | None]]:
        rows = {
            f"{prefix} r_j": [s.reward for s in response.sentences],
            f"{prefix} a_j*r_j": [
                None if not s.scored else s.weight * s.reward for s in response.sentences
            ],
        }
        if all(s.likelihood is not None for s in response.sentences if s.scored):
            rows[f"{prefix} likelihood"] = [s.likelihood for s in response.sentences]
        return rows

    return read


def likelihood_rows(prefix: str) -> Callable[[ResponseScores], dict[str, list[float | None]]]:
    """Mean and summed token log-probability of each sentence (the sum from the record's
    per-token log-probabilities inside the sentence's span)."""

    def read(response: ResponseScores) -> dict[str, list[float | None]]:
        sums = []
        for s in response.sentences:
            inside = [t.reward for t in response.tokens or () if s.start <= t.start < s.end]
            sums.append(math.fsum(inside) if s.scored and inside else None)
        return {
            f"{prefix} mean": [s.reward for s in response.sentences],
            f"{prefix} sum": sums,
        }

    return read


def score_records(model: Any, records: Sequence[dict[str, Any]], batch_size: int = 8):
    texts, spans = [], []
    for raw in records:
        text, own = step_record(raw).response(SEPARATOR)
        texts.append(text)
        spans.append(own)
    return score_responses(
        model,
        [r["prompt"] for r in records],
        texts,
        spans=spans,
        batch_size=batch_size,
        show_progress=True,
    )


def baselines(records: Sequence[dict[str, Any]]) -> dict[str, Scores]:
    rows: dict[str, Scores] = {"random": {}, "first": {}, "last": {}, "shortest": {}}
    for raw in records:
        k = len(raw["completions"])
        # All tied: AUROC 0.5 and pointing the share of bad sentences, exactly what
        # blaming a sentence at random earns on average.
        rows["random"][raw["id"]] = [0.0] * k
        rows["first"][raw["id"]] = list(range(k))  # lowest first: the first is blamed
        rows["last"][raw["id"]] = [k - 1 - j for j in range(k)]
        rows["shortest"][raw["id"]] = [len(c.strip()) for c in raw["completions"]]
    return rows


def default_model(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> dict:
    model = load(DEFAULT_MODEL)
    return by_record(records, score_records(model, records), srm_rows("default"))


@torch.inference_mode()
def with_markers(model: SentenceRewardModel, records: Sequence[dict[str, Any]]) -> Scores:
    """Mean token log-probability read with the SRM's markers in the context (the marker
    embedding at its start, the end-of-turn token's): what a likelihood taken from the same
    pass as the sentence rewards would be."""
    cfg, out = model.config, {}
    for raw in records:
        text, spans = step_record(raw).response(SEPARATOR)
        (item,) = encode_many(
            model.tokenizer,
            [model.prompt_text(raw["prompt"])],
            [text],
            max_length=model.score_length,
            prompt_fraction=cfg.prompt_fraction,
            spans=[spans],
        )
        batch = collate([item], model.tokenizer.pad_token_id or 0)
        h = model.hidden_states(batch)  # (1, T, H), markers in
        lp = token_logprobs(h, batch.input_ids, batch.token_sentence >= 1, model._lm_head[0], 2048)
        means, _ = _per_sentence_means(lp, batch)
        k = item.n_sentences
        values = means[0, 1 : k + 1].tolist() + [-math.inf] * (len(spans) - k)
        out[raw["id"]] = values
    return out


def likelihood_model(args: argparse.Namespace, chat_template: bool = True) -> SentenceRewardModel:
    return SentenceRewardModel.create(
        ModelConfig(
            backbone="smollm2",
            head="likelihood",
            chat_template=chat_template,
            max_length=args.lm_length,
        )
    )


def likelihood(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> dict:
    lm = likelihood_model(args)
    return by_record(records, score_records(lm, records, 8), likelihood_rows("likelihood"))


def likelihood_variants(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> dict:
    """What the markers and the chat template do to the likelihood, on the first
    ``--variant-records`` responses (its rows cover those only: compare them with each other
    and with ``likelihood mean`` on the same responses, printed beside them)."""
    subset = list(records[: args.variant_records])
    lm = likelihood_model(args)
    rows = by_record(subset, score_records(lm, subset, 8), likelihood_rows("subset: likelihood"))
    rows.pop("subset: likelihood sum")
    rows["subset: likelihood mean, markers in context"] = with_markers(lm, subset)
    plain = likelihood_model(args, chat_template=False)
    no_chat = by_record(subset, score_records(plain, subset, 8), likelihood_rows("x"))
    rows["subset: likelihood mean, no chat template"] = no_chat["x mean"]
    return rows


def response_head(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> dict:
    cfg = TrainConfig(
        model=ModelConfig(backbone="minilm", head="response", max_length=128),
        max_steps=args.response_steps,
        batch_size=8,
        lr=5e-5,
        head_lr=2e-3,
        finetune="full",
        device="cpu",
        log_every=25,
        output_dir=str(args.work / "response-head"),
    )
    model_dir = Path(cfg.output_dir)
    if not (model_dir / "model").exists():
        train(cfg, load_pairs(HH_TRAIN)[: args.response_steps * 8], show_progress=True)
    model = load(model_dir)
    return by_record(records, score_records(model, records), srm_rows("response head prefix"))


def per_fold(
    name: str,
    records: Sequence[dict[str, Any]],
    args: argparse.Namespace,
    make_cfg: Callable[[Path], TrainConfig],
    pairs_per_fold: int,
    rows: Callable,
) -> dict:
    """Train on every fold but one, score the held-out fold; each fold's scores are saved as
    soon as they exist, so a stopped run resumes at the next fold. Only the folds in
    ``args.only_folds`` are trained (all by default), and only when ``args.train_folds``;
    otherwise the folds already done are read."""
    folds = folds_of(records, args.folds, args.seed)
    hh: list = []
    merged: dict[str, Scores] = {}
    for fold in range(args.folds):
        cache = args.work / f"{name}.fold{fold}.json"
        if cache.exists():
            part = json.loads(cache.read_text())
        elif not args.train_folds or (args.only_folds and fold not in args.only_folds):
            continue
        else:
            started = time.perf_counter()
            train_steps = [
                SentenceLabels.from_step(step_record(r), SEPARATOR)
                for r, f in zip(records, folds, strict=True)
                if f != fold
            ]
            held_out = [r for r, f in zip(records, folds, strict=True) if f == fold]
            if pairs_per_fold and not hh:
                hh = load_pairs(HH_TRAIN)
            rng = random.Random(fold)
            pairs = rng.sample(hh, pairs_per_fold) if pairs_per_fold else []
            cfg = make_cfg(args.work / f"{name}-fold{fold}")
            result = train(cfg, pairs, train_steps=train_steps, show_progress=True)
            model = load(result.output_dir)
            part = by_record(held_out, score_records(model, held_out), rows)
            part["_seconds"] = {"train+score": [time.perf_counter() - started]}
            cache.write_text(json.dumps(part))
            log.info("%s fold %d done in %.0f s", name, fold, time.perf_counter() - started)
        for row, values in part.items():
            merged.setdefault(row, {}).update(values)
    merged.pop("_seconds", None)
    return merged


def minilm_steps_config(out: Path, args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The default model continued on sentence labels (with HH pairs mixed in): the recipe
    of the MiniLM rows, ``overrides`` changing what is trained."""
    fields = {
        "model": ModelConfig(backbone="minilm", head="sentence", max_length=args.max_length),
        "init_from": str(DEFAULT_MODEL),
        "max_steps": args.train_steps,
        "batch_size": 8,
        "lr": 5e-5,
        "head_lr": 2e-3,
        "finetune": "full",
        "step_weight": args.step_weight,
        "device": "cpu",
        "log_every": 10,
        "seed": 0,
        "output_dir": str(out),
    }
    return TrainConfig(**(fields | overrides))


def steps_minilm(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> dict:
    return per_fold(
        "steps-minilm",
        records,
        args,
        lambda out: minilm_steps_config(out, args),
        args.mix_pairs,
        srm_rows("SRM+steps minilm"),
    )


def steps_minilm_probe(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> dict:
    """The default model's backbone and marker frozen, only its heads trained on the labels
    (a probe of a few thousand weights: what 200 labelled responses can fit without
    memorising), with the same HH pairs mixed in."""
    # With finetune heads, train_layers freezes the marker too: no backward pass at all.
    return per_fold(
        "steps-minilm-probe",
        records,
        args,
        lambda out: minilm_steps_config(out, args, finetune="heads", train_layers=1),
        args.mix_pairs,
        srm_rows("SRM+steps probe"),
    )


def steps_smollm2(records: Sequence[dict[str, Any]], args: argparse.Namespace) -> dict:
    def make_cfg(out: Path) -> TrainConfig:
        return TrainConfig(
            model=ModelConfig(
                backbone="smollm2",
                head="sentence",
                max_length=args.max_length,
                score_max_length=args.lm_length,
                likelihood_feature=True,
                chat_template=True,
            ),
            max_steps=args.smollm2_steps,
            batch_size=8,
            lr=1e-4,
            head_lr=5e-3,
            finetune="full",
            train_layers=2,  # no backward pass below the top 2 of 30 layers
            step_weight=args.step_weight,
            device="cpu",
            log_every=10,
            seed=0,
            output_dir=str(out),
        )

    return per_fold("steps-smollm2", records, args, make_cfg, 0, srm_rows("hybrid smollm2"))


PER_FOLD = ("steps-minilm", "steps-minilm-probe", "steps-smollm2")
METHODS: dict[str, Callable[[Sequence[dict[str, Any]], argparse.Namespace], dict]] = {
    "baselines": lambda records, args: baselines(records),
    "default": default_model,
    "likelihood": likelihood,
    "likelihood-variants": likelihood_variants,
    "response": response_head,
    "steps-minilm": steps_minilm,
    "steps-minilm-probe": steps_minilm_probe,
    "steps-smollm2": steps_smollm2,
}


# -------------------------------------------------------------------------------- the metrics
def metrics(
    records: Sequence[dict[str, Any]], scores: Scores, kind: str | None = None
) -> dict[str, float | None]:
    """AUROC (pooled) and pointing over ``records``; with ``kind``, bad means "bad of that
    kind", and pointing is over responses that have that kind."""
    pooled, good = [], []
    points = []
    for raw in records:
        values = scores.get(raw["id"])
        if values is None:
            continue
        labels = raw["labels"]
        if kind is None:
            keep = list(range(len(labels)))
            bad = [not g for g in labels]
        else:
            keep = [j for j, g in enumerate(labels) if g or kind in raw["error_types"][j]]
            bad = [kind in raw["error_types"][j] for j in range(len(labels))]
        pooled += [values[j] for j in keep]
        good += [not bad[j] for j in keep]
        if any(bad[j] for j in keep) and not all(bad[j] for j in keep):
            points.append(pointing_credit([values[j] for j in keep], [not bad[j] for j in keep]))
    return {
        "auroc": auroc(pooled, good) if pooled else None,
        "pointing": sum(points) / len(points) if points else None,
        "responses": len(points),
    }


def interval(
    records: Sequence[dict[str, Any]], scores: Scores, key: str, draws: int, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of ``key`` over responses resampled."""
    rng = random.Random(seed)
    values = []
    for _ in range(draws):
        sample = [records[rng.randrange(len(records))] for _ in records]
        # Resampled responses need distinct ids for the pooled AUROC: index them.
        renamed = [dict(r, id=f"{i}:{r['id']}") for i, r in enumerate(sample)]
        mapped = {
            f"{i}:{r['id']}": scores[r["id"]] for i, r in enumerate(sample) if r["id"] in scores
        }
        value = metrics(renamed, mapped)[key]
        if value is not None:
            values.append(value)
    if not values:
        return None
    values.sort()
    return values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]


def table(records: Sequence[dict[str, Any]], rows: dict[str, Scores], draws: int) -> list[dict]:
    out = []
    for name, scores in rows.items():
        overall = metrics(records, scores)
        entry = {
            "method": name,
            "auroc": overall["auroc"],
            "pointing": overall["pointing"],
            "auroc_95": interval(records, scores, "auroc", draws),
            "pointing_95": interval(records, scores, "pointing", draws),
            "by_kind": {k: metrics(records, scores, k) for k in KINDS},
        }
        out.append(entry)
    return out


def print_table(entries: list[dict], records: Sequence[dict[str, Any]]) -> None:
    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    def span(pair: Sequence[float] | None, fmt: str) -> str:
        return "" if pair is None else f"[{format(pair[0], fmt)}, {format(pair[1], fmt)}]"

    eligible = sum(1 for r in records if any(r["labels"]) and not all(r["labels"]))
    print(
        f"{len(records)} responses ({eligible} with good and bad sentences), "
        f"{sum(len(r['labels']) for r in records)} sentences, "
        f"{sum(not g for r in records for g in r['labels'])} bad"
    )
    head = f"{'method':<44} {'AUROC':>6} {'95% interval':>15} {'pointing':>9} {'95% interval':>15}"
    head += "".join(f" {k[:10]:>10}" for k in KINDS)
    print(head)
    for e in entries:
        line = (
            f"{e['method'][:44]:<44} {cell(e['auroc'], '.3f'):>6} {span(e['auroc_95'], '.3f'):>15}"
            f" {cell(e['pointing'], '.1%'):>9} {span(e['pointing_95'], '.0%'):>15}"
        )
        line += "".join(f" {cell(e['by_kind'][k]['auroc'], '.3f'):>10}" for k in KINDS)
        print(line)
    print("by kind: AUROC of good sentences against bad sentences of that kind")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="baselines,default,likelihood")
    parser.add_argument("--steps-file", type=Path, default=STEPS)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "credit_labels")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only-folds",
        type=lambda text: [int(x) for x in text.split(",")],
        default=None,
        help="train these folds only (comma-separated), e.g. for a costly backbone",
    )
    parser.add_argument("--train-steps", type=int, default=120, help="optimizer steps a fold")
    parser.add_argument("--max-length", type=int, default=320, help="training tokens")
    parser.add_argument("--smollm2-steps", type=int, default=60, help="steps a smollm2 fold")
    parser.add_argument("--step-weight", type=float, default=1.0)
    parser.add_argument("--mix-pairs", type=int, default=200, help="HH pairs mixed into a fold")
    parser.add_argument("--response-steps", type=int, default=300)
    parser.add_argument(
        "--lm-length", type=int, default=512, help="tokens the likelihood reads (prompt's tail)"
    )
    parser.add_argument("--variant-records", type=int, default=60)
    parser.add_argument("--draws", type=int, default=500, help="bootstrap draws")
    parser.add_argument("--json", type=Path, default=None, help="write the table here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.manual_seed(0)
    args.work.mkdir(parents=True, exist_ok=True)
    records = load_records(args.steps_file)
    wanted = [m for m in args.methods.split(",") if m and m != "none"]
    for method in wanted:
        if method not in METHODS:
            parser.error(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    rows: dict[str, Scores] = {}
    for method, compute in METHODS.items():
        cache = args.work / f"{method}.json"
        if method in PER_FOLD:  # reads the folds done; trains the rest only when asked
            args.train_folds = method in wanted
            rows.update(compute(records, args))
        elif cache.exists():
            rows.update(json.loads(cache.read_text()))
        elif method in wanted:
            started = time.perf_counter()
            computed = compute(records, args)
            cache.write_text(json.dumps(computed))
            log.info("%s done in %.0f s", method, time.perf_counter() - started)
            rows.update(computed)
    covering = {name: len(scores) for name, scores in rows.items()}
    whole = {name: scores for name, scores in rows.items() if covering[name] == len(records)}
    entries = table(records, whole, args.draws)
    print_table(entries, records)
    partial = {n: s for n, s in rows.items() if covering[n] < len(records)}
    # Rows computed on part of the responses (some folds, or a subset) are compared with the
    # whole rows on the same responses only.
    for group in sorted({frozenset(s) for s in partial.values()}, key=len):
        subset = [r for r in records if r["id"] in group]
        block = {n: s for n, s in partial.items() if frozenset(s) == group}
        block |= {n: {i: s[i] for i in group} for n, s in whole.items()}
        print(f"\non the {len(subset)} responses the rows below cover:")
        part_entries = table(subset, block, args.draws)
        print_table(part_entries, subset)
        entries += [
            dict(e, on=f"{len(subset)} responses") for e in part_entries[: len(block) - len(whole)]
        ]
    if args.json:
        args.json.write_text(json.dumps({"folds": args.folds, "methods": entries}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
