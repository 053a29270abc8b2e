"""``srm audit``: the out-of-fold label audit of a store dataset (:mod:`srm.audit`), run here
as a job of the store (so ``srm jobs`` shows its progress and ``srm jobs cancel`` stops it),
or ``--job N`` (the same as ``srm jobs run N``, as the app launches it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from srm.audit import DEFAULT_FOLDS
from srm.cli.jobs import run_job_command
from srm.cli.options import (
    clean_errors,
    config_options,
    db_option,
    job_option,
    open_store,
    path_option,
)
from srm.config import SEED_MAX, ModelConfig, TrainConfig

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

#: The recipe fields ``srm audit`` takes as flags; a --config recipe sets any field.
AUDIT_MODEL_FLAGS = ("backbone", "head", "max_length", "score_max_length")
AUDIT_TRAIN_FLAGS = ("max_steps", "batch_size", "device")


@click.command("audit")
@click.option("--dataset", help="The store dataset whose labels to audit.")
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=DEFAULT_FOLDS,
    show_default=True,
    help="Folds, split by prompt: a model per fold trains on the others.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, SEED_MAX),
    default=0,
    show_default=True,
    help="Seed of the fold assignment.",
)
@path_option(
    "--config",
    "config_file",
    "Recipe TOML each fold trains with (default: recipes/default.toml); flags override it.",
    exists=True,
)
@config_options(ModelConfig, AUDIT_MODEL_FLAGS)
@config_options(TrainConfig, AUDIT_TRAIN_FLAGS)
@click.option("--resume", "resume", type=int, default=None, help="Continue audit N.")
@click.option("--list", "list_audits", is_flag=True, help="List the audits and stop.")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Pairs printed at the end, the most confident disagreement first.",
)
@db_option(when="The store")
@job_option("audit")
@click.pass_context
def audit_cmd(
    ctx: click.Context,
    dataset: str | None,
    folds: int,
    seed: int,
    config_file: Path | None,
    resume: int | None,
    list_audits: bool,
    top: int,
    db_url: str | None,
    job_id: int | None,
    **flags: object,
) -> None:
    """Audit a dataset's labels out of fold: split it into --folds by prompt, train a model per
    fold on the others, score the held-out fold, and store each pair's out-of-fold margin.

    The Annotate queue then puts first the pairs a model that never saw them disagrees with
    most. Ctrl-C, SIGTERM or srm jobs cancel stop it with its finished folds saved; --resume
    N continues. Exit code 0 finished, 1 failed, 130 cancelled, 143 SIGTERM.
    """
    if job_id is not None:
        run_job_command(ctx, "audit", job_id, db_url)
        return
    from srm import jobs
    from srm.config import ConfigError, read_config_file
    from srm.store import StoreError, audit_summaries

    url, sessions = open_store(db_url)
    if list_audits:
        with sessions() as session:
            rows = audit_summaries(session, dataset)
        if not rows:
            click.echo("No audits yet.")
        for a in rows:
            click.echo(
                f"{a.id}  {a.dataset}  {a.status}  {a.folds_done}/{a.folds} folds  "
                f"{a.scored} pairs  {a.head} head on {a.backbone}  models "
                f"{', '.join(map(str, a.model_ids)) or '-'}  {a.created}"
            )
        return
    if (dataset is None) == (resume is None):
        raise click.UsageError("Give --dataset NAME for a new audit, or --resume N, not both.")
    given = {name: value for name, value in flags.items() if value is not None}
    with clean_errors(ConfigError, StoreError), sessions.begin() as session:
        if resume is not None:
            if given or config_file is not None:
                raise click.UsageError("--resume N continues with audit N's own recipe.")
            job = jobs.create_audit_job(session, resume=resume)
        else:
            base = read_config_file(config_file) if config_file is not None else None
            job = jobs.create_audit_job(
                session, dataset=dataset, folds=folds, seed=seed, config=given, base=base
            )
        created, audit_id = job.id, job.config["audit_id"]
        name = job.dataset.name
    click.echo(f"Audit {audit_id} of {name!r} runs as job {created} (srm jobs shows it).")
    _run_here(ctx, url, created)
    _print_top(sessions, name, audit_id, top)


def _run_here(ctx: click.Context, url: str, job_id: int) -> None:
    """Run the audit job in this process, as ``srm audit --job N`` would."""
    import logging

    from srm import jobs
    from srm.sigterm import EXIT_CODE as SIGTERM_EXIT_CODE
    from srm.sigterm import stop_on_sigterm
    from srm.store import TrainingJob, make_sessionmaker, open_store

    srm_log = logging.getLogger("srm")
    level = srm_log.level
    srm_log.setLevel(min(srm_log.getEffectiveLevel(), logging.INFO))
    try:
        with stop_on_sigterm() as sigterm:
            status = jobs.run_job(url, job_id, sigterm=sigterm)
    except Exception as err:
        message = str(err).split("\n", 1)[0] or type(err).__name__
        raise click.ClickException(f"audit job {job_id} failed: {message}") from err
    finally:
        srm_log.setLevel(level)
    with make_sessionmaker(open_store(url))() as session:
        message = session.get(TrainingJob, job_id).message
    click.echo(f"Job {job_id} {status}: {message}")
    if status == "cancelled":
        ctx.exit(SIGTERM_EXIT_CODE if sigterm() else 130)


def _print_top(sessions: sessionmaker[Session], dataset: str, audit_id: int, top: int) -> None:
    from srm.store import annotation_queue

    if top == 0:
        return
    with sessions() as session:
        rows = annotation_queue(session, dataset, None, audit_id=audit_id, limit=top)
        shown = [(p.external_id, p.source, p.label, d) for p, d in rows]
    click.echo(f"\nMost confident out-of-fold disagreement with the current label (top {top}):")
    click.echo(f"  {'id':<28} {'source':<14} {'label':<10} {'disagreement':>12}")
    for external_id, source, label, d in shown:
        value = "-" if d is None else f"{d:+.3f}"
        click.echo(
            f"  {external_id[:28]:<28} {source[:14]:<14} {label or 'unlabelled':<10} {value:>12}"
        )
