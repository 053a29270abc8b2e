"""Creating jobs: a queued row whose config is checked before anything is written, and the
run directory each job gets (:func:`runs_dir`).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from srm.config import ConfigError, merge_train_config
from srm.jobs.scoring import SCORE_BATCH_SIZE
from srm.jobs.watching import reap_dead_jobs
from srm.store import (
    JOB_LAUNCHERS,
    Model,
    StoreError,
    TrainingJob,
    dataset_id,
)

#: Keys of a train job's config that are not TrainConfig fields (``resume_from`` and
#: ``resumes_job``: a job that continues a stopped one, :func:`resume_train_job`).
JOB_KEYS = ("parent_model_id", "score_after", "sentence_tags", "resume_from", "resumes_job")
#: The statuses of a train job that can be resumed, given a resumable checkpoint.
RESUMABLE_STATUSES = ("cancelled", "failed")
#: A worker tag: letters, digits, ``-``, ``_`` and ``.``; a worker takes a comma-separated list.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Score jobs this machine runs at once (``launcher="local"``), unless
#: ``$SRM_MAX_LOCAL_SCORE_JOBS`` says otherwise: every import of an upload starts one, and each
#: loads a model and scores a whole dataset.
MAX_LOCAL_SCORE_JOBS = 2
MAX_LOCAL_SCORE_JOBS_ENV = "SRM_MAX_LOCAL_SCORE_JOBS"


class JobLimitError(StoreError):
    """A job refused because this machine already runs as many of its kind as it may."""


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


def create_train_job(
    session: Session,
    *,
    dataset: str,
    config: dict[str, Any],
    parent_model_id: int | None = None,
    score_after: bool = True,
    launcher: str = "local",
    worker_tag: str | None = None,
    sentence_tags: bool = False,
    continue_parent: bool = False,
) -> TrainingJob:
    """Queue a training run on ``dataset`` (its corrected pairs, read when the job starts;
    with ``sentence_tags``, also its annotators' good/bad sentence tags as step labels,
    weighted by the config's ``step_weight``: :func:`srm.store.tagged_sentences`).

    ``config`` holds :class:`~srm.config.TrainConfig` fields, model fields nested under
    ``"model"`` (as ``TrainConfig.to_dict()`` gives them), without ``output_dir``: the job's
    run directory is ``runs_dir(url)/job-<id>``. It is checked here, field by field, types
    included (:func:`srm.config.merge_train_config`: the job runs later, in another process),
    and a bad value raises :class:`~srm.config.ConfigError` naming the field before anything
    is written. The stored
    config is the full one, defaults filled in, so the job reproduces itself.

    ``launcher`` says who starts the job's process once it is created (:func:`srm.jobs.start`):
    ``"local"`` (this machine), ``"worker"`` (an ``srm worker`` claims it; with ``worker_tag``,
    only a worker holding that tag) or ``"command"`` (the configured submit command).

    With ``continue_parent``, the run starts from the weights of model ``parent_model_id``
    (``init_from`` its checkpoint) and takes its architecture (backbone, head, sizes) from
    that checkpoint; only the input settings (lengths) and the training recipe come from
    ``config``. Retraining then continues the model the app calls the new one's parent.

    >>> create_train_job(s, dataset="sample", config={"max_steps": 100, "model": {"head": "token"}})
    """
    check_launcher(launcher, worker_tag)
    if "output_dir" in config:
        raise ConfigError(
            "output_dir: a job writes to its own run directory (runs/job-<id>); leave it out"
        )
    if continue_parent:
        config = _continuing(session, config, parent_model_id)
    cfg = merge_train_config({k: v for k, v in config.items() if k not in JOB_KEYS})
    if sentence_tags and not cfg.step_weight:
        raise ConfigError(
            "step_weight: learning from the sentence tags needs a step_weight above 0 "
            "(1 is the default)"
        )
    owner = dataset_id(session, dataset)
    if parent_model_id is not None and session.get(Model, parent_model_id) is None:
        raise StoreError(f"no model with id {parent_model_id} in the store (parent_model_id)")
    stored = cfg.to_dict() | {
        "parent_model_id": parent_model_id,
        "score_after": bool(score_after),
        "sentence_tags": bool(sentence_tags),
    }
    return queue_job(
        session, "train", owner, stored, launcher, worker_tag, run_dir_key="output_dir"
    )


def _continuing(
    session: Session, config: dict[str, Any], parent_model_id: int | None
) -> dict[str, Any]:
    """``config`` starting from model ``parent_model_id``'s weights and architecture."""
    from srm.checkpoint import CheckpointError, read_info
    from srm.train import INPUT_FIELDS

    parent = session.get(Model, parent_model_id) if parent_model_id is not None else None
    if parent is None:
        raise StoreError(
            "continue_parent: name the model to continue (parent_model_id), or train from the "
            "backbone"
        )
    try:
        architecture = read_info(Path(parent.checkpoint_dir)).model.to_dict()
    except CheckpointError as err:
        raise StoreError(f"continue_parent: model {parent.id}: {err}") from err
    given = dict(config.get("model") or {})
    inputs = {k: given[k] for k in INPUT_FIELDS if k in given}
    return config | {"init_from": parent.checkpoint_dir, "model": architecture | inputs}


def resume_point(session: Session, job: TrainingJob) -> Path | str:
    """Where a new job would resume train job ``job`` from: its run directory's newest
    resumable checkpoint (``checkpoints/step-N``, which a cancel, SIGTERM or ``save_every``
    writes); else, as a string, why it cannot be resumed."""
    from srm.audit import latest_checkpoint

    if job.kind != "train":
        return f"job {job.id} is a {job.kind} job; only a train job resumes"
    if job.status not in RESUMABLE_STATUSES:
        return f"job {job.id} is {job.status}; only a cancelled or failed train job resumes"
    if job.model_id is not None:
        return f"job {job.id} trained its model (model {job.model_id}); score it again instead"
    later = session.scalars(
        select(TrainingJob).where(TrainingJob.kind == "train", TrainingJob.id > job.id)
    )
    resumed_by = next((j.id for j in later if (j.config or {}).get("resumes_job") == job.id), None)
    if resumed_by is not None:
        return f"job {job.id} was resumed by job {resumed_by}; resume that one instead"
    found = latest_checkpoint(Path((job.config or {}).get("output_dir", "")))
    if found is None:
        return f"job {job.id} stopped before its first checkpoint; start a new job instead"
    return found


def resume_train_job(session: Session, job_id: int) -> TrainingJob:
    """Queue a new train job that continues stopped train job ``job_id`` where its newest
    resumable checkpoint left it (:func:`resume_point`): the same config, run directory,
    dataset, launcher and worker tag, with ``resume_from`` that checkpoint and ``resumes_job``
    the stopped job. The stopped job stays as it was: the list shows both, and a job is
    resumed once (resume the newer job after that). Refusals raise :class:`StoreError`
    saying why.

    A new job rather than the same one run again: a job runs once
    (``queued -> running -> finished``), and its row keeps what happened to it. Its metrics
    keep the stopped run's lines up to the checkpoint's step (one run directory).

    >>> resume_train_job(s, 7).config["resume_from"]    # '.../job-7/checkpoints/step-000040'
    """
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise StoreError(f"no job with id {job_id} in the store")
    point = resume_point(session, job)
    if isinstance(point, str):
        raise StoreError(point)
    config = dict(job.config) | {"resume_from": str(point), "resumes_job": job.id}
    return queue_job(
        session,
        "train",
        job.dataset_id,
        config,
        job.launcher,
        job.worker_tag,
        run_dir_key=None,  # the stopped job's run directory: its checkpoints, its metrics
    )


def create_score_job(
    session: Session,
    *,
    dataset: str,
    model_id: int,
    launcher: str = "local",
    worker_tag: str | None = None,
) -> TrainingJob:
    """Queue scoring every pair of ``dataset`` (as imported) with model ``model_id`` into the
    store's scores, replacing that model's earlier scores of those pairs; ``launcher`` and
    ``worker_tag`` as for :func:`create_train_job`."""
    check_launcher(launcher, worker_tag)
    owner = dataset_id(session, dataset)
    if session.get(Model, model_id) is None:
        raise StoreError(f"no model with id {model_id} in the store; see the Models page")
    if launcher == "local":
        check_local_score_jobs(session)
    config = {"batch_size": SCORE_BATCH_SIZE, "device": "auto"}
    return queue_job(session, "score", owner, config, launcher, worker_tag, model_id=model_id)


def max_local_score_jobs() -> int:
    """:data:`MAX_LOCAL_SCORE_JOBS`, or ``$SRM_MAX_LOCAL_SCORE_JOBS`` when set."""
    raw = os.environ.get(MAX_LOCAL_SCORE_JOBS_ENV, "").strip()
    if not raw:
        return MAX_LOCAL_SCORE_JOBS
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            f"${MAX_LOCAL_SCORE_JOBS_ENV}: got {raw!r}; use a whole number, 1 or more"
        )
    return int(raw)


def check_local_score_jobs(session: Session) -> None:
    """Refuse one more local score job (:class:`JobLimitError`) while this machine's queued
    and running ones are at :func:`max_local_score_jobs`; dead jobs are reaped first, so they
    do not count. A local job not started yet has no host, and counts here."""
    reap_dead_jobs(session)
    limit = max_local_score_jobs()
    running = session.scalar(
        select(func.count())
        .select_from(TrainingJob)
        .where(
            TrainingJob.kind == "score",
            TrainingJob.launcher == "local",
            TrainingJob.status.in_(("queued", "running")),
            or_(TrainingJob.host.is_(None), TrainingJob.host == socket.gethostname()),
        )
    )
    if running >= limit:
        raise JobLimitError(
            f"this machine already has {running} scoring job(s) queued or running, its limit "
            f"(${MAX_LOCAL_SCORE_JOBS_ENV} = {limit}): wait for one to finish (the Train page "
            "lists them), then score the dataset from the Train page, or run it on a worker"
        )


def queue_job(
    session: Session,
    kind: str,
    owner: int,
    config: dict[str, Any],
    launcher: str,
    worker_tag: str | None,
    *,
    run_dir_key: str | None = "run_dir",
    **columns: Any,
) -> TrainingJob:
    """Add a queued job of ``kind`` on dataset id ``owner`` (reaping dead jobs first) and,
    with ``run_dir_key``, name its run directory, ``runs_dir(url)/job-<id>``, under that key
    in its config. ``columns`` go to the row as they are."""
    reap_dead_jobs(session)
    job = TrainingJob(
        kind=kind,
        status="queued",
        launcher=launcher,
        worker_tag=worker_tag,
        dataset_id=owner,
        config=config,
        **columns,
    )
    session.add(job)
    session.flush()  # the id names the run directory
    if run_dir_key is not None:
        run_dir = runs_dir(session_url(session)) / f"job-{job.id}"
        # A new dict, not an edit in place: a JSON column notices reassignment only.
        job.config = config | {run_dir_key: str(run_dir)}
        session.flush()
    return job


def session_url(session: Session) -> str:
    """The store URL ``session`` is bound to, password included (what a job's process needs)."""
    return session.get_bind().url.render_as_string(hide_password=False)
