"""The app's jobs from the command line: ``srm jobs`` lists them, ``srm jobs cancel N`` stops
one, and ``srm jobs run N`` runs one of any kind (:func:`run_job_command`; ``srm train|score|audit
--job N`` is the older spelling of it)."""

from __future__ import annotations

import logging

import click

from srm.cli.options import clean_errors, db_option, open_store


def only_with_job(ctx: click.Context) -> None:
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


def run_job_command(ctx: click.Context, kind: str | None, job_id: int, db_url: str | None) -> None:
    """Run job ``job_id`` here, whatever its kind (``kind``: only a job of that kind, as
    ``srm train --job N`` says); exit 0 when it succeeds, 1 when it fails, 130 when cancelled,
    143 when SIGTERM stopped it (as a cancel does: a resumable checkpoint, whole chunks)."""
    from accelerate import PartialState

    from srm import jobs
    from srm.config import ConfigError
    from srm.sigterm import EXIT_CODE as SIGTERM_EXIT_CODE
    from srm.sigterm import stop_on_sigterm
    from srm.store import TrainingJob

    if kind is not None:
        only_with_job(ctx)
    url, sessions = open_store(db_url, read_only=True)
    with sessions() as session:
        job = session.get(TrainingJob, job_id)
        found = None if job is None else job.kind
        device = None if job is None else (job.config or {}).get("device")
    if found is None:
        raise click.ClickException(f"no job with id {job_id} in the store {url}; see srm jobs")
    if kind is not None and found != kind:
        raise click.ClickException(
            f"job {job_id} is a {found} job; run it with srm jobs run {job_id}"
        )
    try:
        job_kind = jobs.job_kind(found)
    except ConfigError:
        raise click.ClickException(
            f"job {job_id} is a {found} job, which nothing here runs (the kinds registered: "
            f"{', '.join(jobs.job_kinds())})"
        ) from None
    # Under accelerate launch or torchrun, one process of several (a kind with a follower, such
    # as train): the main one runs the job, the others follow it (JobKind.follow).
    processes = PartialState(cpu=device == "cpu")
    several = processes.num_processes > 1
    if several and job_kind.follow is None:
        raise click.ClickException(
            f"a {found} job runs in one process; start it without accelerate launch or torchrun"
        )
    if several and not processes.is_main_process:
        with stop_on_sigterm(sigint=True) as sigterm:
            status = job_kind.follow(sigterm)
        if status == "cancelled":
            ctx.exit(SIGTERM_EXIT_CODE if sigterm.by_sigterm else 130)
        return
    srm_log = logging.getLogger("srm")
    level = srm_log.level
    srm_log.setLevel(min(srm_log.getEffectiveLevel(), logging.INFO))  # progress in the job log
    try:
        with stop_on_sigterm(sigint=several) as sigterm:
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
        ctx.exit(SIGTERM_EXIT_CODE if sigterm.by_sigterm else 130)


@click.group("jobs", invoke_without_command=True)
@db_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the newest jobs to list.",
)
@click.pass_context
def jobs_cmd(ctx: click.Context, db_url: str | None, limit: int) -> None:
    """List jobs, newest first; `srm jobs run N` runs one here, `srm jobs cancel N` stops one.

    Dead jobs are marked failed first: running jobs with no heartbeat for two minutes (from
    any machine), and jobs of this machine whose process is gone.
    """
    ctx.ensure_object(dict)["db_url"] = db_url
    if ctx.invoked_subcommand is not None:
        return
    from srm.jobs import job_place, list_jobs, reap_dead_jobs

    url, sessions = open_store(db_url)
    with sessions.begin() as session:
        reap_dead_jobs(session)
        rows = [
            (
                str(job.id),
                job.kind,
                job.status,
                job_place(job),
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
    header = ("id", "kind", "status", "where", "dataset", "progress", "message", "created (UTC)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@jobs_cmd.command("run")
@click.argument("job_id", type=int)
@db_option
@click.pass_context
def jobs_run_cmd(ctx: click.Context, job_id: int, db_url: str | None) -> None:
    """Run queued job JOB_ID, of any kind (train, score, audit), in this process, as the app, a
    worker or a submit command starts it; exit 0 when it succeeds, 1 when it fails, 130 when
    cancelled, 143 when SIGTERM stopped it. Under accelerate launch or torchrun a train job runs
    as several processes."""
    run_job_command(ctx, None, job_id, db_url or ctx.obj.get("db_url"))


@jobs_cmd.command("cancel")
@click.argument("job_id", type=int)
@db_option
@click.pass_obj
def jobs_cancel_cmd(obj: dict, job_id: int, db_url: str | None) -> None:
    """Stop job JOB_ID: a queued job is cancelled at once, a running one at its next progress
    report (training leaves a resumable checkpoint)."""
    from srm.jobs import request_cancel
    from srm.store import StoreError, TrainingJob

    _, sessions = open_store(db_url or obj.get("db_url"))
    with clean_errors(StoreError), sessions.begin() as session:
        before = session.get(TrainingJob, job_id)
        was = before.status if before is not None else None
        job = request_cancel(session, job_id)
        status = job.status
    if was == "queued":
        click.echo(f"Job {job_id} cancelled before it started.")
    elif was == "running":
        click.echo(f"Asked job {job_id} to stop; it does at its next progress report (srm jobs).")
    else:
        click.echo(f"Job {job_id} already {status}; nothing to cancel.")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
