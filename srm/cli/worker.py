"""``srm worker``: run the store's queued jobs on this machine (a GPU box, a cluster node), as
:class:`srm.jobs.Worker` does."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path

import click

from srm.cli.options import clean_errors, db_option, open_store, path_option


def _words(values: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated values of a repeatable option, flattened: ``--tag gpu,a100 --tag big``."""
    return tuple(word.strip() for value in values for word in value.split(",") if word.strip())


@click.command("worker")
@db_option
@click.option(
    "--device",
    default=None,
    help="Run every job it takes on this device (cuda, cuda:1, cpu), whatever the job asked. "
    "Default: the job's own (auto: CUDA when available).",
)
@click.option(
    "--kinds",
    default=None,
    help="Comma-separated job kinds it takes (train,score,audit). Default: every kind.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="Take the jobs queued for a worker with this tag (gpu) as well as untagged ones; "
    "repeat or comma-separate for several.",
)
@click.option("--once", is_flag=True, help="Run at most one queued job, then exit.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between two looks at an empty queue.",
)
@path_option(
    "--models-dir",
    "models_dir",
    "The shared directory job runs must lie under (the app's --models-dir); a job writing "
    "elsewhere is failed. Default: $SRM_MODELS_DIR.",
)
def worker_cmd(
    db_url: str | None,
    device: str | None,
    kinds: str | None,
    tags: tuple[str, ...],
    once: bool,
    poll: float,
    models_dir: Path | None,
) -> None:
    """Run the store's jobs queued for "any worker" on this machine, one at a time.

    Claims the oldest job it may take (each job runs once however many workers poll; SQLite
    stores serve workers on their own machine only, PostgreSQL any machine) and runs it as
    `srm jobs run N`. SIGTERM or Ctrl-C stops it cleanly: the job under way gets
    SIGTERM and saves a resumable checkpoint. A worker that dies leaves its job failed once the
    job's heartbeat is older than $SRM_HEARTBEAT_TIMEOUT seconds (120).
    """
    import os

    from srm.config import ConfigError
    from srm.jobs import Worker, WorkerOptions, job_kinds
    from srm.store import StoreError

    if models_dir is None and os.environ.get("SRM_MODELS_DIR"):
        models_dir = Path(os.environ["SRM_MODELS_DIR"])
    with clean_errors(ConfigError):
        options = WorkerOptions(
            kinds=job_kinds() if kinds is None else _words((kinds,)),
            tags=_words(tags),
            device=device,
            poll=poll,
            once=once,
            models_dir=models_dir,
        )
    if device is not None:
        from srm.cli.options import checked_device

        checked_device(device)
    url, _ = open_store(db_url)

    def say(line: str) -> None:
        click.echo(f"{datetime.now():%Y-%m-%d %H:%M:%S} {line}")

    worker = Worker(url, options, say)

    def stop(signum: int, frame: object) -> None:
        say(f"{signal.Signals(signum).name}: stopping after the job under way (it is told too)")
        worker.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    tags_text = f", tags {', '.join(options.tags)}" if options.tags else ""
    say(f"worker {worker.name} takes {', '.join(options.kinds)} jobs{tags_text} from {_shown(url)}")
    try:
        with clean_errors(StoreError):
            ran = worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say(f"worker {worker.name} stopped after {ran} job{'s' if ran != 1 else ''}")


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
