"""``srm train``: its flags are the config models' fields (:func:`config_options`), merged
over a --config recipe by :func:`srm.config.merge_train_config`, as a job's config is."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from srm.cli.jobs import run_job_command
from srm.cli.options import (
    check_output,
    clean_errors,
    config_options,
    db_option,
    job_option,
    one_pairs_source,
    open_store,
    path_option,
)
from srm.config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from srm.data import PreferencePair, SentenceLabels

#: The ModelConfig fields ``srm train`` takes as flags; a --config recipe sets any of them.
MODEL_FLAGS = (
    "backbone",
    "head",
    "d",
    "max_length",
    "score_max_length",
    "prompt_term",
    "likelihood_feature",
    "chat_template",
)
#: TrainConfig fields without a flag of their own name: the model (the flags above), the run
#: directory (--out), and the two that a flag turns off (--no-margin, --keep-dropout).
NOT_FLAGS = ("model", "output_dir", "use_margin", "disable_dropout")
TRAIN_FLAGS = tuple(name for name in TrainConfig.model_fields if name not in NOT_FLAGS)


@click.command("train")
@path_option("--data", "data_path", "Training pairs (any format srm import reads).")
@click.option(
    "--dataset",
    help="Train on a dataset in the store instead, with its corrections applied "
    "(as srm export writes it).",
)
@db_option(when="With --dataset or --job")
@job_option("training")
@path_option(
    "--steps",
    "steps_path",
    "Step-labelled responses (TRL stepwise: prompt, completions, labels) to learn sentence "
    "labels from, with weight --step-weight, beside the pairs or alone.",
)
@path_option(
    "--eval-steps",
    "eval_steps_path",
    "Held-out step-labelled responses (prompts not in --steps): sentence credit (AUROC, "
    "pointing) at the end.",
)
@click.option(
    "--sentence-tags",
    "sentence_tags",
    is_flag=True,
    help="With --dataset: also learn from the dataset's sentence tags (good/bad) as step "
    "labels, with weight --step-weight.",
)
@path_option(
    "--eval", "eval_path", "Held-out pairs, evaluated every --eval-every steps and at the end."
)
@path_option("--out", "output_dir", "Run directory: the final model, metrics.jsonl, checkpoints/.")
@path_option(
    "--config",
    "config_file",
    "TOML file of TrainConfig fields ([model] table for model fields); flags given on the "
    "command line override it.",
    exists=True,
)
@path_option(
    "--resume-from",
    "resume_from",
    "A checkpoint of this run (RUN/checkpoints/step-N) to continue from.",
    exists=True,
)
@config_options(ModelConfig, MODEL_FLAGS)
@config_options(TrainConfig, TRAIN_FLAGS)
@click.option(
    "--no-margin", "no_margin", is_flag=True, help="Ignore the data's per-pair margin in the loss."
)
@click.option(
    "--keep-dropout",
    "keep_dropout",
    is_flag=True,
    help="Train with the backbone's dropout (off by default, as in TRL).",
)
@click.option(
    "--print-config",
    "print_config",
    is_flag=True,
    help="Print the config this command would train with (the --config recipe with the flags "
    "on top, checked) as a TOML recipe, and exit: nothing is read or trained.",
)
@click.pass_context
def train_cmd(
    ctx: click.Context,
    data_path: Path | None,
    dataset: str | None,
    db_url: str | None,
    job_id: int | None,
    eval_path: Path | None,
    steps_path: Path | None,
    eval_steps_path: Path | None,
    sentence_tags: bool,
    no_margin: bool,
    keep_dropout: bool,
    print_config: bool,
    output_dir: Path | None,
    config_file: Path | None,
    resume_from: Path | None,
    **flags: object,
) -> None:
    """Train a reward model on preference pairs and/or sentence labels (CPU, one GPU, or
    several processes under `torchrun` or `accelerate launch`: see docs/multi-gpu.md).

    Ctrl-C or SIGTERM writes a resumable checkpoint (exit code 130, or 143 for SIGTERM);
    continue with --resume-from. --job N runs a job queued in the store instead (exit code 0
    succeeded, 1 failed, 130 cancelled, 143 stopped by SIGTERM).
    """
    from accelerate import PartialState

    from srm.backbones import BackboneError
    from srm.checkpoint import CheckpointError
    from srm.config import ConfigError, merge_train_config
    from srm.data import DataError, SentenceLabels, load_pairs, load_steps
    from srm.sigterm import EXIT_CODE as SIGTERM_EXIT_CODE
    from srm.sigterm import stop_on_sigterm
    from srm.train import TrainingError, train

    if job_id is not None:
        run_job_command(ctx, "train", job_id, db_url)
        return
    overrides = flags | {
        "output_dir": None if output_dir is None else str(output_dir),
        "use_margin": False if no_margin else None,
        "disable_dropout": False if keep_dropout else None,
    }
    with clean_errors(ConfigError):
        recipe = TrainConfig.from_toml(config_file).to_dict() if config_file else {}
        cfg = merge_train_config(recipe, overrides)
    if print_config:
        click.echo(cfg.to_toml(), nl=False)
        return
    if steps_path is None or data_path is not None or dataset is not None:
        one_pairs_source(data_path, dataset, "the training data", " (or only --steps FILE)")
    if sentence_tags and dataset is None:
        raise click.UsageError("--sentence-tags applies to --dataset NAME (the store's tags).")
    if db_url is not None and dataset is None:
        raise click.UsageError("--db applies to --dataset NAME; a --data file needs no store.")
    if output_dir is None and config_file is None:
        raise click.UsageError("Give the run directory with --out DIR.")
    check_output(Path(cfg.output_dir), "--out", directory=True)
    # Under accelerate launch or torchrun, one process of several: it reports, the others
    # train in silence.
    processes = PartialState(cpu=cfg.device == "cpu")
    echo = click.echo if processes.is_main_process else _silent
    train_steps: list[SentenceLabels] = []
    with clean_errors(DataError):
        if dataset is not None:
            train_pairs, train_steps = _store_training_data(db_url, dataset, sentence_tags, echo)
        elif data_path is not None:
            train_pairs = load_pairs(data_path)
        else:
            train_pairs = []
        if steps_path is not None:
            train_steps += [SentenceLabels.from_step(r) for r in load_steps(steps_path)]
        eval_pairs = load_pairs(eval_path) if eval_path else None
        eval_steps = (
            [SentenceLabels.from_step(r) for r in load_steps(eval_steps_path)]
            if eval_steps_path
            else []
        )

    labelled = sum(s.labelled for s in train_steps)
    what = [f"{len(train_pairs)} pairs"] if train_pairs or not train_steps else []
    if train_steps:
        what.append(f"{labelled} labelled sentences in {len(train_steps)} responses")
    echo(
        f"Training a {cfg.model.head}-head model on {cfg.model.backbone!r} ({cfg.finetune}) "
        f"with {' and '.join(what)} -> {cfg.output_dir}"
    )
    with clean_errors(ConfigError, TrainingError, BackboneError, CheckpointError):
        # Several processes must stop together, so Ctrl-C (which reaches them all, each in
        # the middle of something) is a stop request too, as SIGTERM is.
        with stop_on_sigterm(sigint=processes.num_processes > 1) as sigterm:
            result = train(
                cfg,
                train_pairs,
                eval_pairs,
                resume_from=resume_from,
                stop=sigterm,
                train_steps=train_steps,
                eval_steps=eval_steps,
            )
    if result.interrupted:
        how = "Stopped by SIGTERM" if sigterm.by_sigterm else "Interrupted"
        echo(
            f"{how} at step {result.steps}/{result.total_steps}. Resume with:\n"
            f"  srm train ... --resume-from {result.checkpoint}"
        )
        ctx.exit(SIGTERM_EXIT_CODE if sigterm.by_sigterm else 130)
    metrics = result.train_metrics
    rate = f" ({result.pairs_per_second:.1f} pairs/s)" if result.pairs_seen else ""
    last = [f"last loss {metrics['loss']:.4f}"] if "loss" in metrics else []
    if "accuracy" in metrics:
        last.append(f"accuracy {metrics['accuracy']:.1%}")
    if "step_accuracy" in metrics:
        last.append(f"sentence-label accuracy {metrics['step_accuracy']:.1%}")
    echo(f"Done: {result.steps} steps in {result.seconds:.0f} s{rate}; {', '.join(last)}.")
    e = result.eval_metrics or {}
    if "accuracy" in e:
        echo(
            f"Eval: accuracy {e['accuracy']:.1%} (length baseline {e['length_baseline']:.1%}) "
            f"on {e['n']} pairs."
        )
    if "credit" in e:
        echo(_credit_line(e["credit"]))
    echo(f"Model: {result.output_dir}")


def _credit_line(credit: dict[str, Any]) -> str:
    """``Held-out sentence credit: AUROC 0.71 (last sentence 0.59), pointing 80.0% (random
    60.0%) on 40 responses.``"""

    def cell(row: str, key: str, fmt: str) -> str:
        value = credit["metrics"].get(row, {}).get(key)
        return "-" if value is None else format(value, fmt)

    return (
        f"Held-out sentence credit: AUROC {cell('reward', 'auroc', '.3f')} (last sentence "
        f"{cell('last', 'auroc', '.3f')}), pointing {cell('reward', 'pointing', '.1%')} "
        f"(random {cell('random', 'pointing', '.1%')}) on {credit['eligible']} of "
        f"{credit['responses']} responses."
    )


def _silent(*args: object, **kwargs: object) -> None:
    """What a process other than the main one prints."""


def _store_training_data(
    db_url: str | None, dataset: str, sentence_tags: bool, echo: Callable[[str], None]
) -> tuple[list[PreferencePair], list[SentenceLabels]]:
    """The store dataset's pairs as training sees them (:func:`srm.store.effective_pairs`),
    and with ``sentence_tags`` its tagged responses (:func:`srm.store.tagged_sentences`);
    prints what was left out. Of several processes, the main one reads the store and sends
    the others what it read, so that all train on the same data even while labels change."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from srm.store import StoreError, effective_pairs, tagged_sentences

    shared: list[Any] = [None]
    if PartialState().is_main_process:
        url, sessions = open_store(db_url, read_only=True)
        with clean_errors(StoreError), sessions() as session:
            result = effective_pairs(session, dataset)
            steps = tagged_sentences(session, dataset) if sentence_tags else []
        echo(f"Dataset {dataset!r} at {url}: {result.counts.summary()}.")
        if sentence_tags:
            echo(f"Sentence tags: {len(steps)} tagged responses.")
        shared = [(result.pairs, steps)]
    if PartialState().num_processes > 1:
        broadcast_object_list(shared)
    return shared[0]
