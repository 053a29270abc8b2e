"""Scoring a store dataset with a model into the store's scores, a chunk of pairs per
transaction: what score jobs (:func:`run_score`, created by :func:`create_score_job`), a train
job's scoring afterwards and ``srm score --dataset`` run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from srm.config import ConfigError, ScoreConfig
from srm.jobs.creating import create_job
from srm.jobs.kinds import JobKind, register_job_kind
from srm.jobs.run import JobRun
from srm.jobs.watching import reap_dead_jobs
from srm.store import (
    Model,
    StoreError,
    TrainingJob,
    dataset_id,
    imported_pairs,
    register_model,
    save_scores,
)

if TYPE_CHECKING:
    from srm.model import SentenceRewardModel


#: Pairs scored and saved per transaction: a killed job leaves whole chunks, never half of one.
SCORE_CHUNK = 64
#: Pairs per forward pass when scoring (inference needs far less memory than training).
SCORE_BATCH_SIZE = ScoreConfig().batch_size
#: Score jobs this machine runs at once (``launcher="local"``), unless
#: ``$SRM_MAX_LOCAL_SCORE_JOBS`` says otherwise: every import of an upload starts one, and each
#: loads a model and scores a whole dataset.
MAX_LOCAL_SCORE_JOBS = 2
MAX_LOCAL_SCORE_JOBS_ENV = "SRM_MAX_LOCAL_SCORE_JOBS"


class JobLimitError(StoreError):
    """A job refused because this machine already runs as many of its kind as it may."""


def score_dataset(
    sessions: sessionmaker[Session],
    dataset: str,
    model_id: int,
    model: SentenceRewardModel,
    *,
    batch_size: int = SCORE_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[int, int]:
    """Score every pair of ``dataset`` (as imported) with ``model`` into the store as model
    ``model_id``, :data:`SCORE_CHUNK` pairs per transaction, so a process killed halfway leaves
    whole chunks saved. ``progress(done, total)`` follows every batch; ``stop()`` is asked
    before each chunk. Returns (pairs scored and saved, pairs in the dataset).
    """
    from srm.score import score_pairs

    with sessions() as session:
        pairs = imported_pairs(session, dataset)
    total, done = len(pairs), 0
    for start in range(0, total, SCORE_CHUNK):
        if stop is not None and stop():
            break
        chunk = pairs[start : start + SCORE_CHUNK]

        def chunk_progress(n: int, _total: int, before: int = done) -> None:
            if progress is not None:
                progress(before + n, total)

        records = score_pairs(model, chunk, batch_size=batch_size, progress=chunk_progress)
        with sessions.begin() as session:
            save_scores(session, model_id, dataset, records)
        done += len(chunk)
    return done, total


@dataclass(frozen=True)
class CheckpointScores:
    """What :func:`score_checkpoint` did: the checkpoint's model id in the store, and how many
    of the dataset's pairs it scored."""

    model_id: int
    checkpoint_dir: Path
    done: int
    total: int


def score_checkpoint(
    sessions: sessionmaker[Session],
    dataset: str,
    checkpoint_dir: str | Path,
    *,
    device: str = "auto",
    batch_size: int = SCORE_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> CheckpointScores:
    """Register the checkpoint at ``checkpoint_dir`` as a model of the store (with the config
    it was trained with) and score every pair of ``dataset`` with it (:func:`score_dataset`):
    what ``srm score --dataset NAME --model DIR`` does.

    An unknown dataset (:class:`~srm.store.StoreError`, naming the known ones) and a bad
    checkpoint (:class:`~srm.checkpoint.CheckpointError`) are refused before anything is
    written or a model is loaded to no end.
    """
    from srm.checkpoint import load, read_info
    from srm.devices import resolve_device

    with sessions() as session:
        dataset_id(session, dataset)
    path = Path(checkpoint_dir).resolve()
    info = read_info(path)
    model = load(path, device=resolve_device(device))
    with sessions.begin() as session:
        registered = register_model(
            session,
            path.name,
            str(path),
            config=(info.training or {}).get("config") or {"model": info.model.to_dict()},
        )
        model_id = registered.id
    done, total = score_dataset(
        sessions, dataset, model_id, model, batch_size=batch_size, progress=progress
    )
    return CheckpointScores(model_id, path, done, total)


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
    ``worker_tag`` as for :func:`srm.jobs.create_train_job`. A ``local`` one is refused while
    this machine runs as many as it may (:func:`check_local_score_jobs`)."""
    return create_job(
        session,
        "score",
        dataset=dataset,
        model_id=model_id,
        launcher=launcher,
        worker_tag=worker_tag,
    )


def check_score_job(session: Session, job: TrainingJob) -> None:
    """The score kind's check (:attr:`srm.jobs.kinds.JobKind.check`): a model to score, room
    on this machine for a ``local`` job, and a :class:`~srm.config.ScoreConfig` (``batch_size``,
    ``device``), defaults filled in."""
    if job.model_id is None:
        raise ConfigError("model_id: a score job scores a model; name it")
    if job.launcher == "local":
        check_local_score_jobs(session)
    job.config = ScoreConfig(**job.config).to_dict()


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


def run_score(run: JobRun) -> tuple[str, str]:
    """A score job: score every pair of the job's dataset, as imported, with the job's model,
    :data:`SCORE_CHUNK` pairs per transaction."""
    return score_run(
        run,
        run.model_id,
        device=str(run.config.get("device", "auto")),
        batch_size=int(run.config.get("batch_size", SCORE_BATCH_SIZE)),
    )


def score_run(
    run: JobRun,
    model_id: int | None,
    *,
    device: str = "auto",
    batch_size: int = SCORE_BATCH_SIZE,
    start: float = 0.0,
) -> tuple[str, str]:
    """Score job ``run``'s dataset with model ``model_id``, its progress running from
    ``start`` to 1 (a train job scores after training). A cancel or SIGTERM stops it after the
    chunk under way."""
    from srm.checkpoint import load
    from srm.devices import resolve_device

    sessions, report = run.sessions, run.report

    if report(0, 0, start, "loading the model", force=True):
        return "cancelled", "cancelled before scoring started"
    with sessions() as session:
        model_row = session.get(Model, model_id) if model_id is not None else None
        if model_row is None:
            raise StoreError(f"model {model_id} is not in the store; create a new job")
        checkpoint_dir = model_row.checkpoint_dir
    model = load(checkpoint_dir, device=resolve_device(device))

    def progress(done: int, total: int) -> None:
        report(done, total, start + (1 - start) * done / total, f"scored {done}/{total} pairs")

    done, total = score_dataset(
        sessions,
        run.dataset,
        model_id,
        model,
        batch_size=batch_size,
        progress=progress,
        stop=run.stop,
    )
    if done < total:
        return "cancelled", f"{run.stopped_by()} after scoring {done}/{total} pairs (saved)"
    report(done, total, 1.0, f"scored {done}/{total} pairs", force=True)
    return "succeeded", f"scored {done} pairs with model {model_id}"


register_job_kind(JobKind("score", run_score, check=check_score_job))
