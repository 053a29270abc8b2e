"""Scoring and evaluating a model: ``srm score`` and ``srm eval``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from srm.cli.jobs import run_job_command
from srm.cli.options import (
    batch_size_option,
    check_output,
    checked_device,
    clean_errors,
    db_option,
    device_option,
    job_option,
    model_option,
    model_path,
    one_pairs_source,
    open_store,
    path_option,
    score_length_option,
)

if TYPE_CHECKING:
    from srm.records import PairScores


@click.command("score")
@model_option
@path_option(
    "--data", "data_path", "Preference pairs (any format srm import reads); the scores go to --out."
)
@click.option(
    "--dataset",
    help="Score a dataset in the store instead (its pairs as imported): the model is "
    "registered in the store and the scores are saved there.",
)
@job_option("score")
@db_option(when="With --dataset or --job")
@path_option("--out", "out", "With --data: the JSONL file to write, one line per pair.")
@batch_size_option
@device_option
@score_length_option
@click.option(
    "--dense",
    is_flag=True,
    help="With --data: add each sentence's dense reward for RL to each side, a_j*r_j by "
    'character span ("dense": [{start, end, dense_reward}]).',
)
@click.option(
    "--dense-tokenizer",
    metavar="NAME_OR_DIR",
    help="With --dense: also one reward per token of this tokenizer (a local directory or a "
    'cached Hugging Face name; the policy\'s), realigned by character offsets ("dense_tokens").',
)
@click.option(
    "--attention",
    is_flag=True,
    help="With --data: add each response's sentence x sentence attention (what each "
    'sentence\'s tokens attend to: the prompt, each sentence, the markers; "attention": '
    "{blocks, mean over layers and heads, by_layer}); one more pass per pair, eager attention.",
)
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
    dense: bool,
    dense_tokenizer: str | None,
    attention: bool,
) -> None:
    """Score every pair: per-sentence rewards and attention weights.

    --data PATH --out FILE writes JSONL; --dataset NAME saves the scores in the store; --job N
    runs a score job from the store. --dense adds the dense rewards an RL trainer takes.
    """
    if dense_tokenizer is not None and not dense:
        raise click.UsageError("--dense-tokenizer applies with --dense.")
    if dense and data_path is None:
        raise click.UsageError("--dense applies to --data PATH (the records go to --out FILE).")
    if attention and data_path is None:
        raise click.UsageError("--attention applies to --data PATH (the records go to --out FILE).")
    if job_id is not None:
        run_job_command(ctx, "score", job_id, db_url)
        return
    one_pairs_source(data_path, dataset, "the pairs", " (or run a score job with --job N)")
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
        score_store_dataset(db_url, dataset, model_dir, batch_size, device)
        return
    if out is None:
        raise click.UsageError("Give the JSONL file to write with --out FILE.")
    if db_url is not None:
        raise click.UsageError("--db applies to --dataset NAME or --job N; --data needs no store.")
    check_output(out, "--out")  # now, not after an hour of scoring
    device = checked_device(device)

    import time

    from srm.checkpoint import CheckpointError, load
    from srm.data import DataError, load_pairs, write_json_lines
    from srm.files import FileError
    from srm.records import coverage_counts, coverage_summary
    from srm.score import score_pairs

    with clean_errors(DataError):
        pairs = load_pairs(data_path)
    with clean_errors(CheckpointError):
        model = load(model_path(model_dir), device=device)
    tokenizer = None
    if dense_tokenizer is not None:
        from srm.backbones import BackboneError, load_tokenizer

        with clean_errors(BackboneError):
            tokenizer = load_tokenizer(dense_tokenizer)
    start = time.perf_counter()
    with clean_errors(ValueError):  # a --max-length the backbone cannot take
        records = score_pairs(
            model, pairs, batch_size=batch_size, max_length=max_length, show_progress=True
        )
    seconds = time.perf_counter() - start
    rows = [_record_json(record, dense, tokenizer) for record in records]
    if attention:
        _add_attention(model, pairs, rows, max_length)
    out.parent.mkdir(parents=True, exist_ok=True)
    with clean_errors(FileError):  # a full disk: nothing half-written, and what to free
        write_json_lines(rows, out)
    length = records[0].max_length if records else model.score_length
    click.echo(
        f"Scored {len(pairs)} pairs ({2 * len(pairs)} sequences) at {length} tokens in "
        f"{seconds:.1f} s: {2 * len(pairs) / max(seconds, 1e-9):.1f} sequences/s. Wrote {out}."
    )
    cut = coverage_summary(coverage_counts(records))
    if cut:
        click.echo(f"{cut}; their records say which (n_scored < n_sentences).")


def _record_json(record: PairScores, dense: bool, tokenizer: object | None) -> dict:
    """A record as ``srm score`` writes it; with ``--dense`` each side carries its dense
    rewards (:func:`srm.dense.with_dense`)."""
    data = record.to_json()
    if dense:
        from srm.dense import with_dense

        for side in ("chosen", "rejected"):
            data[side] = with_dense(record.side(side), data[side], tokenizer)  # type: ignore[arg-type]
    return data


def _add_attention(model: object, pairs: list, rows: list[dict], max_length: int | None) -> None:
    """Each record's sides gain ``attention`` (:meth:`srm.attention.AttentionMap.to_json`)."""
    from tqdm.auto import tqdm

    from srm.attention import pair_attention

    with clean_errors(ValueError):  # a model without an SRM backbone (an imported classifier)
        for pair, row in zip(tqdm(pairs, desc="attention", unit="pair"), rows, strict=True):
            maps = pair_attention(model, pair, max_length=max_length)
            for side in ("chosen", "rejected"):
                row[side]["attention"] = maps[side].to_json()


def score_store_dataset(
    db_url: str | None, dataset: str, model_dir: Path | None, batch_size: int, device: str
) -> None:
    """Register the model and save its scores of every pair of ``dataset`` in the store
    (:func:`srm.jobs.score_checkpoint`), with a progress bar."""
    import time

    from tqdm.auto import tqdm

    from srm.checkpoint import CheckpointError
    from srm.jobs import score_checkpoint
    from srm.store import StoreError

    device = checked_device(device)
    url, sessions = open_store(db_url)
    start = time.perf_counter()
    with tqdm(unit="pair", desc="scoring") as bar, clean_errors(StoreError, CheckpointError):

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        scored = score_checkpoint(
            sessions,
            dataset,
            model_path(model_dir),
            device=device,
            batch_size=batch_size,
            progress=progress,
        )
    click.echo(
        f"Scored {scored.done} pairs of dataset {dataset!r} with model {scored.model_id} "
        f"({scored.checkpoint_dir}) in {time.perf_counter() - start:.1f} s; saved in the store "
        f"at {url}."
    )


@click.command("eval")
@model_option
@path_option("--data", "data_path", "Preference pairs to evaluate on.")
@path_option(
    "--scores",
    "scores_path",
    "Evaluate a file written by srm score instead of running a model.",
    exists=True,
)
@path_option(
    "--steps",
    "steps_path",
    "Sentence-labelled responses (TRL's stepwise format: prompt, completions, labels): "
    "check the sentence rewards against the labels instead of pairwise accuracy.",
)
@click.option(
    "--step-separator",
    default=None,
    help="With --steps: what joins the steps into the response (default: a newline, like "
    "TRL's step_separator); \\n, \\t and \\\\ are read as escapes.",
)
@score_length_option
@path_option("--json", "json_out", "Also write the report as JSON.")
@batch_size_option
@device_option
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
        check_output(json_out, "--json")
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

        device = checked_device(device)
        with clean_errors(ValueError):  # DataError, CheckpointError, or a --max-length too long
            pairs = load_pairs(data_path)
            model = load(model_path(model_dir), device=device)
            records = score_pairs(
                model, pairs, batch_size=batch_size, max_length=max_length, show_progress=True
            )
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

    device = checked_device(device)
    with clean_errors(DataError, CheckpointError):
        records = load_steps(steps_path)
        model = load(model_path(model_dir), device=device)
    with clean_errors(ValueError):  # a --max-length the backbone cannot take
        report = evaluate_steps(
            model,
            records,
            separator=DEFAULT_STEP_SEPARATOR if separator is None else separator,
            batch_size=batch_size,
            max_length=max_length,
            show_progress=True,
        )
    click.echo(format_credit_report(report))
    return report


def _read_score_records(path: Path) -> list[PairScores]:
    """The records of a file ``srm score --out`` wrote; a clear error, naming the line, for
    anything else (not JSON, not score records, empty)."""
    from srm.files import FileError, read_input_text
    from srm.records import PairScores, ScoreRecordError

    hint = "give a file written by srm score --data PATH --out FILE"
    try:
        lines = read_input_text(path, expected="a score file").split("\n")
    except FileError as err:
        raise click.ClickException(f"{err}; {hint}") from err
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


def _write_json_report(report: dict, json_out: Path | None) -> None:
    """Write ``report`` to ``--json`` as every output is written (:mod:`srm.files`)."""
    from srm.files import FileError, write_atomically

    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        with clean_errors(FileError):
            write_atomically(json_out, [json.dumps(report, indent=2) + "\n"])
        click.echo(f"Wrote {json_out}.")


def _unescape(text: str) -> str:
    """Read ``\\n``, ``\\t`` and ``\\\\`` in a command-line string as the characters they name."""
    escapes = {"n": "\n", "t": "\t", "\\": "\\"}
    return re.sub(r"\\([nt\\])", lambda m: escapes[m.group(1)], text)
