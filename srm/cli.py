"""The ``srm`` command line: thin wrappers over library functions.

Heavy imports (torch, datasets) happen inside the commands that need them, so ``srm --help``
and ``srm segment`` start fast.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import click

from srm import __version__
from srm.config import SEED_MAX, TrainConfig

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from srm.data import PreferencePair
    from srm.records import PairScores

log = logging.getLogger("srm")
T = TypeVar("T")
HEADS = ("sentence", "response", "token")

DB_OPTION_HELP = (
    "Store URL (SQLAlchemy). Default: $SRM_DB_URL, else ~/.local/share/srm-studio/srm.db."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="srm")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and debug messages to stderr.")
def main(verbose: bool) -> None:
    """SRM Studio: sentence-level reward models for preference data.

    Import preference pairs, split responses into sentences, train, score and evaluate
    sentence-level reward models, run the app's jobs, and serve the app.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # transformers draws a progress bar for every weight file it loads; ours say enough.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # peft calls a transformers method that transformers 5 renamed: harmless until v6, and
        # nothing a user of this command can act on.
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )


def score_length_option(func: Callable) -> Callable:
    """``--max-length N`` for the commands that score: tokens per sequence (default: the
    model's scoring length, enough for whole responses where the backbone allows)."""
    return click.option(
        "--max-length",
        "max_length",
        type=click.IntRange(min=8),
        default=None,
        help="Tokens per sequence when scoring. Default: the model's scoring length (its "
        "score_max_length, else the backbone's positions up to 1024), not its training length.",
    )(func)


@main.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--db", "db_url", default=None, help=DB_OPTION_HELP)
@click.option(
    "--dataset",
    default=None,
    help="Dataset name in the store. Default: the file's name without extension.",
)
@click.option(
    "--if-empty",
    is_flag=True,
    help="Import only when the store holds no pairs yet (used by `make app`).",
)
def import_cmd(path: Path, db_url: str | None, dataset: str | None, if_empty: bool) -> None:
    """Validate preference pairs from PATH and add them to the store.

    PATH may be JSONL, JSON, CSV, Parquet or a saved Hugging Face dataset directory, in TRL
    (prompt/chosen/rejected), HH-RLHF transcript or chat-message form. An invalid file imports
    nothing; every problem is listed with its file, line and field. Re-importing the same file
    adds nothing.
    """
    from srm.data import DataError, load_pairs
    from srm.store import StoreError, count_pairs, import_pairs, make_sessionmaker

    url = db_url or _store_url()
    session_factory = make_sessionmaker(_open_store(url))
    if if_empty:
        with session_factory() as session:
            existing = count_pairs(session)
        if existing:
            click.echo(f"Store {url} already holds {existing} pairs; nothing imported.")
            return

    try:
        pairs = load_pairs(path)
    except DataError as err:
        raise click.ClickException(str(err)) from err
    name = dataset or _dataset_name(path)
    try:
        with session_factory.begin() as session:
            result = import_pairs(session, name, pairs, source_file=str(path.resolve()))
    except StoreError as err:
        raise click.ClickException(str(err)) from err

    sources = _count_by(p.source for p in pairs)
    click.echo(
        f"Imported {result.added} new pairs into dataset {name!r} "
        f"({result.unchanged} already present) at {url}."
    )
    if result.added == 0:
        click.echo("Nothing new: the store already holds every pair in this file.")
    click.echo("By source: " + ", ".join(f"{s} {n}" for s, n in sources.items()))


@main.command("datasets")
@click.option("--db", "db_url", default=None, help=DB_OPTION_HELP)
def datasets_cmd(db_url: str | None) -> None:
    """List the datasets in the store with their pair counts."""
    from srm.store import list_datasets, make_sessionmaker

    url = db_url or _store_url()
    with make_sessionmaker(_open_store(url))() as session:
        summaries = list_datasets(session)
    if not summaries:
        click.echo(f"No datasets in {url}. Add one with: srm import PATH")
        return
    width = max(len(s.name) for s in summaries)
    for s in summaries:
        click.echo(f"{s.name:<{width}}  {s.n_pairs:>7} pairs  {s.source_file or ''}")


EXPORT_FORMATS = ("jsonl", "hf", "prm")


@main.command("export")
@click.option("--db", "db_url", default=None, help=DB_OPTION_HELP)
@click.option("--dataset", required=True, help="The dataset in the store to export.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="File to write (jsonl, prm), or a new directory (hf).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: TRL-style JSON Lines; hf: a datasets.save_to_disk directory; prm: sentence "
    "tags as TRL stepwise-supervision records (prompt, completions, labels).",
)
def export_cmd(db_url: str | None, dataset: str, out: Path, fmt: str) -> None:
    """Write a dataset with its annotators' corrections applied.

    Swapped pairs come out swapped; tied and discarded pairs are left out; pairs nobody
    labelled keep their imported verdict. The counts are printed. --format prm exports sentence
    tags instead: one record per response whose every sentence is tagged good or bad.
    """
    from srm.data import write_json_lines, write_jsonl
    from srm.store import StoreError, effective_pairs, make_sessionmaker, prm_records

    url = db_url or _store_url()
    if fmt == "hf" and out.exists():
        raise click.ClickException(f"{out} already exists; give a new directory with --out")
    _check_output(out, "--out", directory=fmt == "hf")
    try:
        with make_sessionmaker(_open_store(url), read_only=True)() as session:
            if fmt == "prm":
                prm = prm_records(session, dataset)
            else:
                result = effective_pairs(session, dataset)
    except StoreError as err:
        raise click.ClickException(str(err)) from err

    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "prm":
        write_json_lines(prm.records, out)
        click.echo(
            f"Exported {len(prm.records)} of {prm.tagged_responses} tagged responses from "
            f"dataset {dataset!r} as PRM records to {out}; left out {prm.incomplete} with "
            "sentences not tagged good or bad."
        )
        return
    if fmt == "jsonl":
        write_jsonl(result.pairs, out)
    else:
        _save_dataset_dir(result.pairs, out)
    click.echo(f"Exported {result.counts.summary()} from dataset {dataset!r} to {out}.")


def _save_dataset_dir(pairs: Sequence[PreferencePair], out: Path) -> None:
    """``datasets.Dataset.save_to_disk`` into a temporary sibling, then move it into place."""
    import shutil
    import tempfile

    from datasets import Dataset

    columns = ["id", "prompt", "chosen", "rejected", "source", "margin"]
    if any(p.subset is not None for p in pairs):
        columns.append("subset")
    data = {c: [getattr(p, c) for p in pairs] for c in columns}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        Dataset.from_dict(data).save_to_disk(str(tmp / "data"))
        (tmp / "data").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@main.command("segment")
@click.argument("text", required=False)
@click.option(
    "--file",
    "file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Read the text from a file ('-' for stdin) instead of the argument.",
)
@click.option("--json", "as_json", is_flag=True, help="Print spans as JSON (start, end, text).")
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=None,
    help="Split segments longer than this at whitespace (default: the library default).",
)
def segment_cmd(
    text: str | None, file: TextIO | None, as_json: bool, max_chars: int | None
) -> None:
    """Split TEXT (a response) into the sentences the reward model scores."""
    from srm.segment import DEFAULT_MAX_CHARS, segment

    if (text is None) == (file is None):
        raise click.UsageError("Give the text as an argument or with --file, not both.")
    if file is not None:
        try:
            text = file.read()
        except UnicodeDecodeError as err:
            raise click.BadParameter(
                f"{file.name} is not UTF-8 text; save it as UTF-8", param_hint="--file"
            ) from err
    spans = segment(text, max_chars=max_chars or DEFAULT_MAX_CHARS)
    if as_json:
        click.echo(
            json.dumps(
                [{"start": s.start, "end": s.end, "text": s.text} for s in spans],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    width = len(str(len(spans)))
    for i, span in enumerate(spans, start=1):
        click.echo(f"{i:>{width}}  {span.text.strip()}")


@main.command("init")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Checkpoint directory to write.",
)
@click.option(
    "--backbone",
    default="minilm",
    show_default=True,
    help="minilm, tiny, a Hugging Face model name in the local cache, or a path.",
)
@click.option(
    "--head",
    type=click.Choice(HEADS),
    default="sentence",
    show_default=True,
    help="sentence (the SRM), or the response/token baselines.",
)
@click.option(
    "--d",
    "d",
    type=click.IntRange(min=2),
    default=128,
    show_default=True,
    help="Width of the sentence head's attention query/key.",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=8),
    default=256,
    show_default=True,
    help="Tokens per sequence, markers included.",
)
@click.option(
    "--score-max-length",
    type=click.IntRange(min=8),
    default=None,
    help="Tokens per sequence when scoring. Default: the backbone's positions, up to 1024.",
)
@click.option(
    "--bidirectional",
    is_flag=True,
    help="Accept a backbone that cannot be made causal (rewards not prefix rewards).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, SEED_MAX),
    default=0,
    show_default=True,
    help="Seed for the new heads.",
)
def init_cmd(
    out: Path,
    backbone: str,
    head: str,
    d: int,
    max_length: int,
    score_max_length: int | None,
    bidirectional: bool,
    seed: int,
) -> None:
    """Write an untrained model (new heads on a backbone) as a checkpoint.

    Useful to see what an untrained model does, and as the start of custom training.
    """
    from srm.checkpoint import save
    from srm.config import ModelConfig
    from srm.model import SentenceRewardModel

    _check_output(out, "--out", directory=True)
    config = _or_usage_error(
        lambda: ModelConfig(
            backbone=backbone,
            head=head,
            d=d,
            max_length=max_length,
            score_max_length=score_max_length,
            bidirectional=bidirectional,
        )
    )
    model = _or_usage_error(lambda: SentenceRewardModel.create(config, seed=seed))
    model.backbone.requires_grad_(False)  # untouched backbone: minilm stores only the heads
    save(model, out)
    click.echo(f"Wrote an untrained {head}-head model on {backbone!r} to {out}.")


@main.command("backbones")
def backbones_cmd() -> None:
    """List the named backbones: size, licence, how each is causal, and whether it is here.

    Any Hugging Face name in the local cache, or a local directory, works as well."""
    from srm.backbones import NAMED, backbone_present, cache_dir

    rows = [
        (b.name, b.parameters, b.licence, b.kind, "yes" if backbone_present(b.name) else "no")
        for b in NAMED.values()
    ]
    header = ("name", "params", "licence", "causal", "present")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo("")
    for b in NAMED.values():
        missing = "" if backbone_present(b.name) else f" Missing: {b.install}."
        click.echo(f"{b.name}: {b.description}.{missing}")
    click.echo(f"Converted backbones are cached in {cache_dir()} ($SRM_CACHE_DIR).")


@main.command("score")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="Checkpoint directory (from srm init or srm train). "
    "Default: $SRM_MODEL, else the bundled data/models/default.",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    help="Preference pairs (any format srm import reads); the scores go to --out.",
)
@click.option(
    "--dataset",
    default=None,
    help="Score a dataset in the store instead (its pairs as imported): the model is "
    "registered in the store and the scores are saved there.",
)
@click.option(
    "--job",
    "job_id",
    type=int,
    default=None,
    help="Run score job N from the store (as the app creates them), and nothing else.",
)
@click.option("--db", "db_url", default=None, help="With --dataset or --job: " + DB_OPTION_HELP)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    help="With --data: the JSONL file to write, one line per pair.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Pairs per forward pass.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA when available), cpu, cuda, cuda:1, ...",
)
@score_length_option
@click.pass_context
def score_cmd(
    ctx: click.Context,
    model_dir: Path | None,
    data_path: Path | None,
    dataset: str | None,
    job_id: int | None,
    db_url: str | None,
    out: Path | None,
    batch_size: int,
    device: str,
    max_length: int | None,
) -> None:
    """Score every pair: per-sentence rewards and attention weights.

    --data PATH --out FILE writes JSONL; --dataset NAME saves the scores in the store; --job N
    runs a score job from the store.
    """
    if job_id is not None:
        _only_with_job(ctx)
        _run_job_cmd(ctx, "score", job_id, db_url)
        return
    if (data_path is None) == (dataset is None):
        raise click.UsageError(
            "Give the pairs with --data PATH or --dataset NAME (from the store), not both "
            "(or run a score job with --job N)."
        )
    if dataset is not None:
        if max_length is not None:
            raise click.UsageError(
                "The store keeps each model's scores at the model's own scoring length, so "
                "every page shows the same numbers; --max-length is for --data PATH (set a "
                "model's length with srm init/train --score-max-length)."
            )
        if out is not None:
            raise click.UsageError(
                "With --dataset the scores go to the store; --out is for --data PATH "
                "(srm export --dataset NAME writes the pairs to score that way)."
            )
        _score_store_dataset(db_url, dataset, model_dir, batch_size, device)
        return
    if out is None:
        raise click.UsageError("Give the JSONL file to write with --out FILE.")
    if db_url is not None:
        raise click.UsageError("--db applies to --dataset NAME or --job N; --data needs no store.")
    _check_output(out, "--out")  # now, not after an hour of scoring
    device = _device(device)

    import time

    from srm.checkpoint import CheckpointError, load
    from srm.data import DataError, load_pairs, write_json_lines
    from srm.records import coverage_counts, coverage_summary
    from srm.score import score_pairs

    try:
        pairs = load_pairs(data_path)
    except DataError as err:
        raise click.ClickException(str(err)) from err
    try:
        model = load(model_dir or _default_model(), device=device)
    except CheckpointError as err:
        raise click.ClickException(str(err)) from err
    start = time.perf_counter()
    try:
        records = score_pairs(
            model, pairs, batch_size=batch_size, max_length=max_length, show_progress=True
        )
    except ValueError as err:  # a --max-length the backbone cannot take
        raise click.ClickException(str(err)) from err
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_lines((record.to_json() for record in records), out)
    length = records[0].max_length if records else model.score_length
    click.echo(
        f"Scored {len(pairs)} pairs ({2 * len(pairs)} sequences) at {length} tokens in "
        f"{seconds:.1f} s: {2 * len(pairs) / max(seconds, 1e-9):.1f} sequences/s. Wrote {out}."
    )
    cut = coverage_summary(coverage_counts(records))
    if cut:
        click.echo(f"{cut}; their records say which (n_scored < n_sentences).")


def _score_store_dataset(
    db_url: str | None, dataset: str, model_dir: Path | None, batch_size: int, device: str
) -> None:
    """Register the model and save its scores of every pair of ``dataset`` in the store."""
    import time

    from tqdm.auto import tqdm

    from srm.checkpoint import CheckpointError, load, read_info
    from srm.jobs import score_dataset
    from srm.store import StoreError, list_datasets, make_sessionmaker, register_model

    device = _device(device)
    url = db_url or _store_url()
    sessions = make_sessionmaker(_open_store(url))
    with sessions() as session:
        known = [d.name for d in list_datasets(session)]
    if dataset not in known:
        raise click.ClickException(
            f"no dataset {dataset!r} in the store (datasets: {', '.join(known) or 'none'}); "
            "see srm datasets"
        )
    path = Path(model_dir or _default_model()).resolve()
    try:
        info = read_info(path)
        model = load(path, device=device)
    except CheckpointError as err:
        raise click.ClickException(str(err)) from err
    with sessions.begin() as session:
        registered = register_model(
            session,
            path.name,
            str(path),
            config=(info.training or {}).get("config") or {"model": info.model.to_dict()},
        )
        model_id = registered.id
    start = time.perf_counter()
    with tqdm(unit="pair", desc="scoring") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            done, _ = score_dataset(
                sessions, dataset, model_id, model, batch_size=batch_size, progress=progress
            )
        except StoreError as err:
            raise click.ClickException(str(err)) from err
    click.echo(
        f"Scored {done} pairs of dataset {dataset!r} with model {model_id} ({path}) in "
        f"{time.perf_counter() - start:.1f} s; saved in the store at {url}."
    )


def _opt(flag: str, field: str, type_: object, help_: str) -> Callable:
    """A `srm train` option for TrainConfig.<field>, applied only when given (so a --config
    file's value stands otherwise); the help shows the dataclass default."""
    default = getattr(TrainConfig, field, None)
    suffix = f" [default: {default}]" if default is not None else ""
    return click.option(flag, field, type=type_, default=None, help=help_ + suffix)


_TRAIN_FIELDS = {
    "lr",
    "head_lr",
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accum",
    "warmup_ratio",
    "scheduler",
    "weight_decay",
    "max_grad_norm",
    "center_rewards_coefficient",
    "policy_weight",
    "policy_beta",
    "finetune",
    "train_layers",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "seed",
    "eval_every",
    "save_every",
    "log_every",
    "device",
    "mixed_precision",
}
_MODEL_FIELDS = {"backbone", "head", "d", "max_length", "score_max_length"}


@main.command("train")
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    help="Training pairs (any format srm import reads).",
)
@click.option(
    "--dataset",
    "dataset",
    default=None,
    help="Train on a dataset in the store instead, with its corrections applied "
    "(as srm export writes it).",
)
@click.option("--db", "db_url", default=None, help="With --dataset or --job: " + DB_OPTION_HELP)
@click.option(
    "--job",
    "job_id",
    type=int,
    default=None,
    help="Run training job N from the store (as the app creates them), and nothing else.",
)
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(path_type=Path),
    help="Held-out pairs, evaluated every --eval-every steps and at the end.",
)
@click.option(
    "--out",
    "output_dir",
    type=click.Path(path_type=Path),
    help="Run directory: the final model, metrics.jsonl, checkpoints/.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, path_type=Path),
    help="TOML file of TrainConfig fields ([model] table for model fields); "
    "flags given on the command line override it.",
)
@click.option(
    "--resume-from",
    type=click.Path(exists=True, path_type=Path),
    help="A checkpoint of this run (RUN/checkpoints/step-N) to continue from.",
)
@click.option("--backbone", default=None, help="minilm, tiny, a cached HF name or a path.")
@click.option(
    "--head",
    type=click.Choice(HEADS),
    default=None,
    help="sentence (the SRM), response or token. [default: sentence]",
)
@click.option(
    "--d",
    "d",
    type=click.IntRange(min=2),
    default=None,
    help="Sentence head attention width. [default: 128]",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=8),
    default=None,
    help="Tokens per training sequence. [default: 256]",
)
@click.option(
    "--score-max-length",
    type=click.IntRange(min=8),
    default=None,
    help="Tokens per sequence when the model scores (srm score/eval, the app). "
    "[default: the backbone's positions, up to 1024]",
)
@_opt("--lr", "lr", float, "Peak learning rate of the backbone's trainable weights.")
@_opt("--head-lr", "head_lr", float, "Peak learning rate of the heads and marker embedding.")
@_opt("--epochs", "epochs", float, "Passes over the data (ignored with --max-steps).")
@_opt("--max-steps", "max_steps", int, "Optimizer steps to run.")
@_opt("--batch-size", "batch_size", int, "Pairs per micro-batch per device.")
@_opt("--grad-accum", "grad_accum", int, "Micro-batches per optimizer step.")
@_opt("--warmup-ratio", "warmup_ratio", float, "Share of steps for linear warm-up.")
@_opt(
    "--scheduler",
    "scheduler",
    click.Choice(["cosine", "linear", "constant"]),
    "Learning-rate decay after warm-up.",
)
@_opt("--weight-decay", "weight_decay", float, "AdamW weight decay.")
@_opt("--max-grad-norm", "max_grad_norm", float, "Gradient clipping norm (0: off).")
@click.option(
    "--no-margin", "no_margin", is_flag=True, help="Ignore the data's per-pair margin in the loss."
)
@click.option(
    "--keep-dropout",
    "keep_dropout",
    is_flag=True,
    help="Train with the backbone's dropout (off by default, as in TRL).",
)
@_opt(
    "--center-rewards-coefficient",
    "center_rewards_coefficient",
    float,
    "Weight of the reward-centring term.",
)
@_opt(
    "--policy-weight",
    "policy_weight",
    float,
    "Weight of the HaF-RM policy term (DPO on the backbone's LM head; 0.2 in the paper).",
)
@_opt("--policy-beta", "policy_beta", float, "DPO beta of the policy term.")
@_opt(
    "--finetune",
    "finetune",
    click.Choice(["lora", "full", "heads"]),
    "Backbone training: LoRA adapters, all weights, or frozen.",
)
@_opt(
    "--train-layers",
    "train_layers",
    int,
    "Train only the top N layers (no backward pass below; the marker embedding stays fixed).",
)
@_opt("--lora-r", "lora_r", int, "LoRA rank.")
@_opt("--lora-alpha", "lora_alpha", int, "LoRA alpha.")
@_opt("--lora-dropout", "lora_dropout", float, "LoRA dropout.")
@_opt(
    "--lora-targets",
    "lora_targets",
    str,
    "Comma-separated module names to adapt (default: PEFT's choice for the architecture).",
)
@_opt("--seed", "seed", int, "Seed for init, data order and dropout.")
@_opt("--eval-every", "eval_every", int, "Evaluate every N steps (0: at the end only).")
@_opt("--save-every", "save_every", int, "Resumable checkpoint every N steps (0: at the end).")
@_opt("--log-every", "log_every", int, "Metrics line every N steps.")
@_opt("--device", "device", click.Choice(["auto", "cpu", "cuda"]), "Where to train.")
@_opt(
    "--mixed-precision",
    "mixed_precision",
    click.Choice(["no", "fp16", "bf16"]),
    "Mixed precision (GPU).",
)
@click.pass_context
def train_cmd(
    ctx: click.Context,
    data_path: Path | None,
    dataset: str | None,
    db_url: str | None,
    job_id: int | None,
    eval_path: Path | None,
    output_dir: Path | None,
    config_file: Path | None,
    resume_from: Path | None,
    no_margin: bool,
    keep_dropout: bool,
    **options: object,
) -> None:
    """Train a reward model on preference pairs (CPU, one GPU, or `accelerate launch`).

    Ctrl-C or SIGTERM writes a resumable checkpoint (exit code 130, or 143 for SIGTERM);
    continue with --resume-from. --job N runs a job queued in the store instead (exit code 0
    succeeded, 1 failed, 130 cancelled, 143 stopped by SIGTERM).
    """
    from srm.backbones import BackboneError
    from srm.checkpoint import CheckpointError
    from srm.config import ConfigError, ModelConfig
    from srm.data import DataError, load_pairs
    from srm.sigterm import EXIT_CODE as SIGTERM_EXIT_CODE
    from srm.sigterm import stop_on_sigterm
    from srm.train import TrainingError, train

    if job_id is not None:
        _only_with_job(ctx)
        _run_job_cmd(ctx, "train", job_id, db_url)
        return
    if (data_path is None) == (dataset is None):
        raise click.UsageError(
            "Give the training data with --data PATH or --dataset NAME (from the store), not both."
        )
    if db_url is not None and dataset is None:
        raise click.UsageError("--db applies to --dataset NAME; a --data file needs no store.")
    try:
        base = TrainConfig.from_toml(config_file).to_dict() if config_file else {}
        model_fields = dict(base.get("model", {}))
        for name in _MODEL_FIELDS:
            if options.get(name) is not None:
                model_fields[name] = options[name]
        fields = {k: v for k, v in base.items() if k != "model"}
        fields.update({k: v for k, v in options.items() if k in _TRAIN_FIELDS and v is not None})
        if options.get("lora_targets") is not None:
            fields["lora_targets"] = [
                t.strip() for t in str(options["lora_targets"]).split(",") if t.strip()
            ]
        if no_margin:
            fields["use_margin"] = False
        if keep_dropout:
            fields["disable_dropout"] = False
        if output_dir is not None:
            fields["output_dir"] = str(output_dir)
        elif "output_dir" not in fields:
            raise click.UsageError("Give the run directory with --out DIR.")
        cfg = TrainConfig(model=ModelConfig(**model_fields), **fields)
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    _check_output(Path(cfg.output_dir), "--out", directory=True)
    try:
        if dataset is not None:
            train_pairs = _store_training_pairs(db_url, dataset)
        else:
            train_pairs = load_pairs(data_path)
        eval_pairs = load_pairs(eval_path) if eval_path else None
    except DataError as err:
        raise click.ClickException(str(err)) from err

    click.echo(
        f"Training a {cfg.model.head}-head model on {cfg.model.backbone!r} ({cfg.finetune}) "
        f"with {len(train_pairs)} pairs -> {cfg.output_dir}"
    )
    try:
        with stop_on_sigterm() as sigterm:
            result = train(cfg, train_pairs, eval_pairs, resume_from=resume_from, stop=sigterm)
    except (ConfigError, TrainingError, BackboneError, CheckpointError) as err:
        raise click.ClickException(str(err)) from err
    if result.interrupted:
        how = "Stopped by SIGTERM" if sigterm() else "Interrupted"
        click.echo(
            f"{how} at step {result.steps}/{result.total_steps}. Resume with:\n"
            f"  srm train ... --resume-from {result.checkpoint}"
        )
        ctx.exit(SIGTERM_EXIT_CODE if sigterm() else 130)
    metrics = result.train_metrics
    click.echo(
        f"Done: {result.steps} steps in {result.seconds:.0f} s "
        f"({result.pairs_per_second:.1f} pairs/s); last loss {metrics['loss']:.4f}, "
        f"accuracy {metrics['accuracy']:.1%}."
    )
    if result.eval_metrics:
        e = result.eval_metrics
        click.echo(
            f"Eval: accuracy {e['accuracy']:.1%} (length baseline {e['length_baseline']:.1%}) "
            f"on {e['n']} pairs."
        )
    click.echo(f"Model: {result.output_dir}")


def _only_with_job(ctx: click.Context) -> None:
    """Refuse options beside --job (other than --db): a job runs as it was created."""
    from click.core import ParameterSource

    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name not in ("job_id", "db_url")
        and ctx.get_parameter_source(param.name) not in (None, ParameterSource.DEFAULT)
    ]
    if given:
        raise click.UsageError(
            f"--job N runs a job as it was created in the store; leave out {', '.join(given)}."
        )


def _run_job_cmd(ctx: click.Context, kind: str, job_id: int, db_url: str | None) -> None:
    """Run job ``job_id`` here; exit 0 when it succeeds, 1 when it fails, 130 when cancelled,
    143 when SIGTERM stopped it (as a cancel does: a resumable checkpoint, whole chunks)."""
    from srm import jobs
    from srm.sigterm import EXIT_CODE as SIGTERM_EXIT_CODE
    from srm.sigterm import stop_on_sigterm
    from srm.store import TrainingJob, make_sessionmaker

    url = db_url or _store_url()
    sessions = make_sessionmaker(_open_store(url), read_only=True)
    with sessions() as session:
        job = session.get(TrainingJob, job_id)
        found = None if job is None else job.kind
    if found is None:
        raise click.ClickException(f"no job with id {job_id} in the store {url}; see srm jobs")
    if found != kind:
        raise click.ClickException(f"job {job_id} is a {found} job; run it with srm {found} --job")
    srm_log = logging.getLogger("srm")
    level = srm_log.level
    srm_log.setLevel(min(srm_log.getEffectiveLevel(), logging.INFO))  # progress in the job log
    try:
        with stop_on_sigterm() as sigterm:
            status = jobs.run_job(url, job_id, sigterm=sigterm)
    except jobs.JobStateError as err:
        raise click.ClickException(str(err)) from err
    except Exception as err:  # recorded in the job, traceback in its log
        message = str(err).split("\n", 1)[0] or type(err).__name__
        raise click.ClickException(f"job {job_id} failed: {message}") from err
    finally:
        srm_log.setLevel(level)
    with sessions() as session:
        message = session.get(TrainingJob, job_id).message
    click.echo(f"Job {job_id} {status}: {message}")
    if status == "cancelled":
        ctx.exit(SIGTERM_EXIT_CODE if sigterm() else 130)


@main.group("jobs", invoke_without_command=True)
@click.option("--db", "db_url", default=None, help=DB_OPTION_HELP)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the newest jobs to list.",
)
@click.pass_context
def jobs_cmd(ctx: click.Context, db_url: str | None, limit: int) -> None:
    """List training and scoring jobs, newest first; `srm jobs cancel N` stops one.

    Dead jobs are marked failed first: running jobs with no heartbeat for two minutes (from
    any machine), and jobs of this machine whose process is gone.
    """
    ctx.ensure_object(dict)["db_url"] = db_url
    if ctx.invoked_subcommand is not None:
        return
    from srm.jobs import list_jobs, reap_dead_jobs
    from srm.store import make_sessionmaker

    url = db_url or _store_url()
    with make_sessionmaker(_open_store(url)).begin() as session:
        reap_dead_jobs(session)
        rows = [
            (
                str(job.id),
                job.kind,
                job.status,
                job.dataset.name if job.dataset is not None else "-",
                f"{job.progress:.0%}",
                _shorten(job.message or "", 60),
                f"{job.created_at:%Y-%m-%d %H:%M}",
            )
            for job in list_jobs(session, limit)
        ]
    if not rows:
        click.echo(f"No jobs in {url}. The app's Train page creates them.")
        return
    header = ("id", "kind", "status", "dataset", "progress", "message", "created (UTC)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@jobs_cmd.command("cancel")
@click.argument("job_id", type=int)
@click.option("--db", "db_url", default=None, help=DB_OPTION_HELP)
@click.pass_obj
def jobs_cancel_cmd(obj: dict, job_id: int, db_url: str | None) -> None:
    """Stop job JOB_ID: a queued job is cancelled at once, a running one at its next progress
    report (training leaves a resumable checkpoint)."""
    from srm.jobs import request_cancel
    from srm.store import StoreError, TrainingJob, make_sessionmaker

    url = db_url or obj.get("db_url") or _store_url()
    try:
        with make_sessionmaker(_open_store(url)).begin() as session:
            before = session.get(TrainingJob, job_id)
            was = before.status if before is not None else None
            job = request_cancel(session, job_id)
            status = job.status
    except StoreError as err:
        raise click.ClickException(str(err)) from err
    if was == "queued":
        click.echo(f"Job {job_id} cancelled before it started.")
    elif was == "running":
        click.echo(f"Asked job {job_id} to stop; it does at its next progress report (srm jobs).")
    else:
        click.echo(f"Job {job_id} already {status}; nothing to cancel.")


@main.command("app")
@click.option("--demo", is_flag=True, help="Start the app in demo mode (sets SRM_DEMO=1).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 exposes the app to the network.",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port."
)
@click.option("--db", "db_url", default=None, help=DB_OPTION_HELP)
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve beyond loopback without a password (SRM_APP_PASSWORD / SRM_ADMIN_PASSWORD): "
    "only on a network you trust.",
)
def app_cmd(demo: bool, host: str, port: int, db_url: str | None, insecure: bool) -> None:
    """Serve the Streamlit app (webapp/ of this source tree) at http://HOST:PORT.

    Bound beyond loopback, the app needs a password (see srm.access); it refuses to start
    without one unless --insecure.
    """
    import srm
    from srm import access

    root = Path(srm.__file__).resolve().parents[1]
    entry = root / "webapp" / "streamlit_app.py"
    if not entry.is_file():
        raise click.ClickException(
            f"{entry} not found: the app ships with the source tree, not the package; "
            "run srm app from a clone installed with pip install -e ."
        )
    # The secrets files Streamlit reads, named explicitly so that this check and the app agree
    # from any working directory: the user's, then the project's (which wins).
    secrets_files = [
        Path.home() / ".streamlit" / "secrets.toml",
        root / ".streamlit" / "secrets.toml",
    ]
    try:
        configured = access.passwords(os.environ, access.read_secrets(secrets_files))
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    refusal = access.exposure_error(host, configured, insecure)
    if refusal is not None:
        raise click.UsageError(refusal)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry),
        *_streamlit_flags(root / ".streamlit" / "config.toml"),
        *[flag for file in secrets_files for flag in ("--secrets.files", str(file))],
        "--server.address",
        host,
        "--server.port",
        str(port),
    ]
    env = dict(os.environ)
    if demo:
        env["SRM_DEMO"] = "1"
    if insecure:
        env[access.INSECURE] = "1"
    if db_url is not None:
        env["SRM_DB_URL"] = db_url
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, env)  # Streamlit's exit code is the command's


def _streamlit_flags(config_file: Path) -> list[str]:
    """The project's .streamlit/config.toml as command-line flags: Streamlit reads that file
    only from the working directory, and without it (fileWatcherType = "none") importing
    torch crashes the file watcher."""
    if not config_file.is_file():
        return []
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    flags = []
    for section, options in tomllib.loads(config_file.read_text(encoding="utf-8")).items():
        for key, value in options.items():
            if f"{section}.{key}" in ("server.address", "server.port"):
                continue  # --host and --port
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{key}", text]
    return flags


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@main.command("eval")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="Checkpoint directory to evaluate. "
    "Default: $SRM_MODEL, else the bundled data/models/default.",
)
@click.option(
    "--data", "data_path", type=click.Path(path_type=Path), help="Preference pairs to evaluate on."
)
@click.option(
    "--scores",
    "scores_path",
    type=click.Path(exists=True, path_type=Path),
    help="Evaluate a file written by srm score instead of running a model.",
)
@click.option(
    "--steps",
    "steps_path",
    type=click.Path(path_type=Path),
    help="Sentence-labelled responses (TRL's stepwise format: prompt, completions, labels): "
    "check the sentence rewards against the labels instead of pairwise accuracy.",
)
@click.option(
    "--step-separator",
    default=None,
    help="With --steps: what joins the steps into the response (default: a newline, like "
    "TRL's step_separator); \\n, \\t and \\\\ are read as escapes.",
)
@score_length_option
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Also write the report as JSON."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Pairs (with --steps: responses) per forward pass.",
)
@click.option("--device", "device", default="auto", show_default=True, help="auto, cpu, cuda, ...")
def eval_cmd(
    model_dir: Path | None,
    data_path: Path | None,
    scores_path: Path | None,
    steps_path: Path | None,
    step_separator: str | None,
    max_length: int | None,
    json_out: Path | None,
    batch_size: int,
    device: str,
) -> None:
    """Accuracy overall, per source and per section, beside the length-only baseline.

    With --steps FILE: how well the sentence rewards find the sentences people marked bad
    (AUROC and pointing accuracy), beside position, length and random baselines.
    """
    from srm.evaluate import format_report, summarize

    if json_out is not None:
        _check_output(json_out, "--json")
    if steps_path is not None:
        if data_path is not None or scores_path is not None:
            raise click.UsageError(
                "Give one of --steps FILE, --data PATH or --scores FILE: --steps evaluates "
                "sentence labels, the other two preference pairs."
            )
        separator = None if step_separator is None else _unescape(step_separator)
        report = _eval_steps(steps_path, model_dir, separator, max_length, batch_size, device)
        _write_json_report(report, json_out)
        return
    if step_separator is not None:
        raise click.UsageError("--step-separator applies to --steps FILE only.")
    if scores_path is not None:
        if model_dir or data_path or max_length is not None:
            raise click.UsageError(
                "Give either --scores FILE or --model and --data (and --max-length), not both."
            )
        records = _read_score_records(scores_path)
    else:
        if data_path is None:
            raise click.UsageError("Give --data PATH (and --model DIR), or --scores FILE.")
        from srm.checkpoint import load
        from srm.data import load_pairs
        from srm.score import score_pairs

        device = _device(device)
        try:
            pairs = load_pairs(data_path)
            model = load(model_dir or _default_model(), device=device)
            records = score_pairs(
                model, pairs, batch_size=batch_size, max_length=max_length, show_progress=True
            )
        except ValueError as err:  # DataError, CheckpointError, or a --max-length too long
            raise click.ClickException(str(err)) from err
    report = summarize(records)
    click.echo(format_report(report))
    _write_json_report(report, json_out)


def _eval_steps(
    steps_path: Path,
    model_dir: Path | None,
    separator: str | None,
    max_length: int | None,
    batch_size: int,
    device: str,
) -> dict:
    """Load and validate the whole steps file, then the model; score and print the table."""
    from srm.checkpoint import CheckpointError, load
    from srm.data import DEFAULT_STEP_SEPARATOR, DataError, load_steps
    from srm.evaluate import evaluate_steps, format_credit_report

    device = _device(device)
    try:
        records = load_steps(steps_path)
        model = load(model_dir or _default_model(), device=device)
    except (DataError, CheckpointError) as err:
        raise click.ClickException(str(err)) from err
    try:
        report = evaluate_steps(
            model,
            records,
            separator=DEFAULT_STEP_SEPARATOR if separator is None else separator,
            batch_size=batch_size,
            max_length=max_length,
            show_progress=True,
        )
    except ValueError as err:  # a --max-length the backbone cannot take
        raise click.ClickException(str(err)) from err
    click.echo(format_credit_report(report))
    return report


def _read_score_records(path: Path) -> list[PairScores]:
    """The records of a file ``srm score --out`` wrote; a clear error, naming the line, for
    anything else (not JSON, not score records, empty)."""
    from srm.data import DataError, check_input_file
    from srm.records import PairScores, ScoreRecordError

    hint = "give a file written by srm score --data PATH --out FILE"
    try:
        check_input_file(path)
        lines = path.read_text(encoding="utf-8").split("\n")
    except DataError as err:
        raise click.ClickException(str(err)) from err
    except UnicodeDecodeError as err:
        raise click.ClickException(f"{path}: not UTF-8 text; {hint}") from err
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
            raise click.ClickException(f"{path}:line {lineno}: not JSON ({err}); {hint}") from err
        try:
            records.append(PairScores.from_json(record))
        except ScoreRecordError as err:
            raise click.ClickException(
                f"{path}:line {lineno}: not a score record ({err}); {hint}"
            ) from err
    if not records:
        raise click.ClickException(f"{path}: holds no score records; {hint}")
    return records


def _check_output(path: Path, option: str, *, directory: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work is done: learning it
    after an hour of scoring loses the hour. Writes (and removes) a temporary file in the
    nearest directory that exists; creates nothing else."""
    if directory and path.exists() and not path.is_dir():
        raise click.BadParameter(
            f"{path} is a file; give a directory (created if missing)", param_hint=option
        )
    if not directory and path.is_dir():
        raise click.BadParameter(
            f"{path} is a directory; give the path of a file to write",
            param_hint=option,
        )
    target = path.absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if existing != target and not existing.is_dir():
        raise click.BadParameter(
            f"{existing} is a file, so {path} cannot be created; choose another path",
            param_hint=option,
        )
    probe = existing if existing.is_dir() else existing.parent
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise click.BadParameter(
            f"cannot write to {probe} ({err.strerror or err}); choose a directory you can write to",
            param_hint=option,
        ) from err


def _write_json_report(report: dict, json_out: Path | None) -> None:
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"Wrote {json_out}.")


def _unescape(text: str) -> str:
    """Read ``\\n``, ``\\t`` and ``\\\\`` in a command-line string as the characters they name."""
    escapes = {"n": "\n", "t": "\t", "\\": "\\"}
    return re.sub(r"\\([nt\\])", lambda m: escapes[m.group(1)], text)


def _store_training_pairs(db_url: str | None, dataset: str) -> list[PreferencePair]:
    """The store dataset's pairs with corrections applied; prints what was left out."""
    from srm.store import StoreError, effective_pairs, make_sessionmaker

    url = db_url or _store_url()
    try:
        with make_sessionmaker(_open_store(url), read_only=True)() as session:
            result = effective_pairs(session, dataset)
    except StoreError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Dataset {dataset!r} at {url}: {result.counts.summary()}.")
    return result.pairs


def _store_url() -> str:
    from srm.store import default_url

    return default_url()


def _open_store(url: str) -> Engine:
    """The migrated store at ``url``, or a clean CLI error when it cannot be opened: a URL
    SQLAlchemy cannot parse, a driver that is not installed, a server that does not answer,
    a file that is not a database, a directory that cannot be created."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from srm.store import open_store

    try:
        return open_store(url)
    except (ArgumentError, DBAPIError, ImportError, OSError) as err:
        reason = err.orig if isinstance(err, DBAPIError) else err
        reason = " ".join(str(reason).split()) or type(err).__name__
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            shown = repr(url)
        raise click.ClickException(
            f"cannot open the store {shown} ({reason}); check --db or $SRM_DB_URL: a SQLAlchemy "
            "URL such as sqlite:///path/to/srm.db or postgresql+psycopg://USER@HOST/DB"
        ) from err


def _default_model() -> Path:
    from srm.checkpoint import default_model_dir

    path = default_model_dir()
    if path is None:
        raise click.UsageError("No --model given and no default model is installed.")
    return path


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def _device(name: str) -> str:
    """``--device`` as a device this machine has (``auto``: CUDA when available), checked
    before any work so that a typo or a missing GPU is a clear error, not a traceback."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise click.BadParameter(
            f"{name!r} is not a device; use auto, cpu, cuda or cuda:N", param_hint="--device"
        )
    try:
        torch.empty(0, device=device)  # fails when the backend or the device index is missing
    except (RuntimeError, AssertionError) as err:
        reason = str(err).strip().split("\n", 1)[0]
        raise click.BadParameter(
            f"{name!r} is not available here ({reason}); use auto or cpu", param_hint="--device"
        ) from err
    return name


def _or_usage_error(make: Callable[[], T]) -> T:
    """Turn a configuration or backbone error into a clean CLI error message."""
    from srm.backbones import BackboneError
    from srm.config import ConfigError

    try:
        return make()
    except (ConfigError, BackboneError) as err:
        raise click.ClickException(str(err)) from err


def _dataset_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def _count_by(values: Iterable[str]) -> dict[str, int]:
    return dict(Counter(values).most_common())


if __name__ == "__main__":
    main()
