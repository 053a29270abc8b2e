"""Creating jobs: :func:`create_job` queues a job of any registered kind
(:mod:`srm.jobs.kinds`), the kind's own check run on it before anything is written, and gives
it a run directory (:func:`runs_dir`). Each kind's ``create_NAME_job`` (``create_train_job``,
``create_score_job``, ``create_audit_job``, in the kind's module) is a typed front for it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from srm.config import ConfigError
from srm.jobs.kinds import job_kind
from srm.jobs.watching import reap_dead_jobs
from srm.store import (
    JOB_LAUNCHERS,
    Model,
    StoreError,
    TrainingJob,
    dataset_id,
)

#: A worker tag: letters, digits, ``-``, ``_`` and ``.``; a worker takes a comma-separated list.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_launcher(launcher: str, worker_tag: str | None = None) -> None:
    """Refuse a launcher not in :data:`~srm.store.JOB_LAUNCHERS`, a tag on a job no worker
    claims, and a malformed tag, with a :class:`~srm.config.ConfigError` naming the field."""
    if launcher not in JOB_LAUNCHERS:
        raise ConfigError(f"launcher: got {launcher!r}; use one of {', '.join(JOB_LAUNCHERS)}")
    if worker_tag is None:
        return
    if launcher != "worker":
        raise ConfigError(f"worker_tag: only a job for a worker has one (launcher {launcher!r})")
    if not TAG_PATTERN.fullmatch(worker_tag):
        raise ConfigError(
            f"worker_tag: got {worker_tag!r}; use up to 64 letters, digits, '-', '_' or '.'"
        )


def runs_dir(url: str) -> Path:
    """Where job run directories go (a train job's model among them), created on demand.

    ``$SRM_MODELS_DIR`` if set (``srm app --models-dir``: a directory every machine that runs
    jobs mounts at the same path, so the app reads the models remote workers write); else
    ``$SRM_RUNS_DIR`` (its older name); else ``runs/`` beside a SQLite store file (a project's
    store and its runs travel together); else ``$XDG_DATA_HOME/srm-studio/runs`` (as
    :func:`srm.store.default_url` picks the default store).
    """
    env = os.environ.get("SRM_MODELS_DIR") or os.environ.get("SRM_RUNS_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        parsed = make_url(url)
        database = parsed.database
        if (
            parsed.get_backend_name() == "sqlite"
            and database
            and database != ":memory:"
            and not database.startswith("file:")
        ):
            path = Path(database).expanduser().resolve().parent / "runs"
        else:
            data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
            path = data_home / "srm-studio" / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def create_job(
    session: Session,
    kind: str,
    *,
    dataset: str,
    config: dict[str, Any] | None = None,
    model_id: int | None = None,
    launcher: str = "local",
    worker_tag: str | None = None,
) -> TrainingJob:
    """Queue a job of registered kind ``kind`` (:func:`srm.jobs.register_job_kind`) on
    ``dataset``, with ``config`` (checked and completed by the kind's ``check``), model
    ``model_id`` (the one a score job scores), and who starts it: ``launcher`` and
    ``worker_tag`` as :func:`check_launcher` takes them. Dead jobs are reaped first, and the job
    gets a run directory, ``runs_dir(url)/job-<id>``, under its kind's ``run_dir_key``.

    Everything is checked before anything is written: an unregistered kind is a
    :class:`~srm.config.ConfigError` naming the registered ones; an unknown dataset or model a
    :class:`~srm.store.StoreError`.

    >>> create_job(s, "score", dataset="sample", model_id=3, launcher="worker")
    """
    spec = job_kind(kind)
    check_launcher(launcher, worker_tag)
    owner = dataset_id(session, dataset)
    if model_id is not None and session.get(Model, model_id) is None:
        raise StoreError(f"no model with id {model_id} in the store; see the Models page")
    job = TrainingJob(
        kind=kind,
        status="queued",
        launcher=launcher,
        worker_tag=worker_tag,
        dataset_id=owner,
        config=dict(config or {}),
        model_id=model_id,
    )
    if spec.check is not None:
        spec.check(session, job)
    return queue_job(session, job, run_dir_key=spec.run_dir_key)


def queue_job(session: Session, job: TrainingJob, *, run_dir_key: str | None) -> TrainingJob:
    """Add ``job``, a new queued row whose config is checked already, reaping dead jobs first;
    with ``run_dir_key``, name its run directory, ``runs_dir(url)/job-<id>``, under that key in
    its config. :func:`create_job` checks and calls this; a job that continues another one
    (:func:`srm.jobs.resume_train_job`) calls it directly."""
    job_kind(job.kind)
    reap_dead_jobs(session)
    session.add(job)
    session.flush()  # the id names the run directory
    if run_dir_key is not None:
        run_dir = runs_dir(session_url(session)) / f"job-{job.id}"
        # A new dict, not an edit in place: a JSON column notices reassignment only.
        job.config = dict(job.config) | {run_dir_key: str(run_dir)}
        session.flush()
    return job


def session_url(session: Session) -> str:
    """The store URL ``session`` is bound to, password included (what a job's process needs)."""
    return session.get_bind().url.render_as_string(hide_password=False)
