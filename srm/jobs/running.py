"""Running a job in this process (what ``srm train|score --job N`` does): progress written to
its row on a throttle, a heartbeat from a thread of its own, a cancel read back with every
progress write, and a failure recorded with the traceback's tail.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from srm.config import merge_train_config
from srm.devices import resolve_device
from srm.jobs.auditing import run_audit
from srm.jobs.creating import JOB_KEYS
from srm.jobs.scoring import SCORE_BATCH_SIZE, score_dataset
from srm.jobs.watching import JobStateError, _get_job, seconds_from_env
from srm.store import (
    FINISHED_STATUSES,
    Model,
    StoreError,
    TrainingJob,
    effective_pairs,
    make_sessionmaker,
    open_store,
    record_training_pairs,
    register_model,
    tagged_sentences,
)
from srm.store.models import utcnow

if TYPE_CHECKING:
    from srm.sigterm import StopRequest

log = logging.getLogger(__name__)


#: Seconds between two progress writes of a running job (the last one is always written).
PROGRESS_INTERVAL = 1.0
#: Seconds between two heartbeats of a running job's process; ``$SRM_HEARTBEAT_INTERVAL`` sets
#: it (keep it well under :data:`~srm.jobs.watching.HEARTBEAT_TIMEOUT`).
HEARTBEAT_INTERVAL = seconds_from_env("SRM_HEARTBEAT_INTERVAL", 10.0)
#: Share of a train job's progress bar spent training when it scores the dataset afterwards.
TRAIN_SHARE = 0.9
#: Traceback lines kept in a failed job's ``error``.
TRACEBACK_LINES = 12


def run_job(url: str, job_id: int, *, sigterm: StopRequest | None = None) -> str:
    """Run job ``job_id`` in this process (``srm train|score --job N`` calls this) and return
    its final status: ``succeeded`` or ``cancelled``. A failure is recorded in the job
    (``failed``, the message and the traceback's tail in ``error``) and re-raised. Once
    ``sigterm`` (see :mod:`srm.sigterm`) says SIGTERM arrived, the job stops as a cancel
    stops it, and its message says why.

    A train job trains on the dataset's corrected pairs (:func:`srm.store.effective_pairs`),
    registers the model with the pairs it trained on and, with ``score_after``, scores the
    dataset with it. A score job scores every pair of the dataset, as imported,
    :data:`SCORE_CHUNK` pairs per transaction.
    An audit job runs or continues an audit (:mod:`srm.jobs.auditing`), a fold per transaction.
    Raises :class:`JobStateError` (touching nothing) unless the job is queued: a job runs once;
    and when a reaper failed the job while it ran (its heartbeats stopped reaching the store),
    after stopping at the next progress write and leaving the job as the reaper recorded it.
    """
    engine = open_store(url)
    try:
        return _run_job(make_sessionmaker(engine), job_id, sigterm)
    finally:
        engine.dispose()


def _run_job(
    sessions: sessionmaker[Session], job_id: int, sigterm: StopRequest | None = None
) -> str:
    with sessions.begin() as session:
        job = _get_job(session, job_id, lock=True)
        if job.status != "queued":
            raise JobStateError(
                f"job {job_id} is {job.status}, not queued: a job runs once; create a new one"
            )
        job.status, job.pid, job.host = "running", os.getpid(), socket.gethostname()
        job.started_at, job.message = utcnow(), "starting"
        job.heartbeat_at = job.started_at
        kind, config, model_id = job.kind, dict(job.config), job.model_id
        dataset = job.dataset.name if job.dataset is not None else None
    log.info("job %d (%s) running as pid %d", job_id, kind, os.getpid())
    try:
        with _Heartbeat(sessions, job_id):
            if dataset is None:
                raise StoreError(f"job {job_id}'s dataset was deleted; create a new job")
            run = JobRun(
                sessions, job_id, dataset, config, _ProgressWriter(sessions, job_id), sigterm
            )
            if kind == "train":
                status, message = _run_train(run)
            elif kind == "audit":
                status, message = run_audit(run)
            else:
                status, message = _run_score(
                    run,
                    model_id,
                    device=str(config.get("device", "auto")),
                    batch_size=int(config.get("batch_size", SCORE_BATCH_SIZE)),
                )
    except KeyboardInterrupt:  # SIGINT outside train(), which handles its own
        status, message = "cancelled", "interrupted"
    except BaseException as err:
        log.exception("job %d failed", job_id)
        try:
            _finish(sessions, job_id, "failed", error=_describe_error(err))
        except Exception:  # the store itself may be what failed: keep the first error
            log.exception("could not record job %d as failed", job_id)
        raise
    _finish(sessions, job_id, status, message=message)
    log.info("job %d %s: %s", job_id, status, message)
    return status


def _run_train(run: JobRun) -> tuple[str, str]:
    from srm.train import metrics_text, train

    sessions, dataset, config, report = run.sessions, run.dataset, run.config, run.report

    cfg = merge_train_config({k: v for k, v in config.items() if k not in JOB_KEYS})
    score_after = bool(config.get("score_after", True))
    share = TRAIN_SHARE if score_after else 1.0
    if report(0, 0, 0.0, "loading the dataset", force=True):
        _share_with_followers(None)
        return "cancelled", "cancelled before training started"
    with sessions() as session:
        pairs = effective_pairs(session, dataset)
        # "Also learn from the sentence tags": annotators' good/bad tags as step labels.
        steps = tagged_sentences(session, dataset) if config.get("sentence_tags") else []
    log.info("dataset %r: %s", dataset, pairs.counts.summary())
    if steps:
        log.info("and %d tagged responses (sentence labels)", len(steps))
    resume_from = config.get("resume_from")  # a job that continues a stopped one
    _share_with_followers((cfg.to_dict(), pairs.pairs, steps, resume_from))

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        message = f"step {step}/{total}"
        if "loss" in metrics:
            message += f" · {metrics_text(metrics)}"
        if report(step, total, share * step / total, message):
            raise KeyboardInterrupt  # train() writes a resumable checkpoint and returns

    result = train(
        cfg,
        pairs.pairs,
        progress=progress,
        resume_from=resume_from,
        show_progress=True,
        stop=run.sigterm,
        train_steps=steps,
    )
    if result.interrupted:
        return "cancelled", (
            f"{run.stopped_by()} at step {result.steps}/{result.total_steps}; "
            f"resumable checkpoint: {result.checkpoint}"
        )
    metrics: dict[str, Any] = {
        **result.train_metrics,
        "steps": result.steps,
        "pairs": len(result.pair_ids),
        "tagged_responses": len(steps),
        "seconds": round(result.seconds, 2),
    }
    if result.eval_metrics:
        metrics["eval"] = result.eval_metrics
    with sessions.begin() as session:
        model = register_model(
            session,
            f"job {run.job_id}: {cfg.model.head} on {cfg.model.backbone}",
            str(Path(result.output_dir).resolve()),
            config=cfg.to_dict(),
            parent_id=config.get("parent_model_id"),
            metrics=metrics,
        )
        model_id = model.id
        # The pairs it saw, so comparisons can keep to pairs it did not (srm.compare).
        record_training_pairs(session, model_id, dataset, result.pair_ids)
        _get_job(session, run.job_id).model_id = model_id
    summary = f"model {model_id}: {result.steps} steps on {len(result.pair_ids)} pairs"
    if steps:
        summary += f" and {len(steps)} tagged responses"
    if "loss" in result.train_metrics:
        summary += f" · {metrics_text(result.train_metrics)}"
    report(result.steps, result.total_steps, share, summary, force=True)
    if not score_after:
        return "succeeded", summary
    status, scored = _run_score(run, model_id, device=cfg.device, start=share)
    return status, f"{summary}; {scored}"


def follow_train_job(sigterm: StopRequest | None = None) -> str:
    """Train as one of several processes of a train job (``accelerate launch`` or ``torchrun``
    running ``srm train --job N``), not the main one: with the config and pairs the main
    process sends (:func:`_share_with_followers`), writing nothing. The main process owns the
    job's row, the run directory and the scoring afterwards. Returns ``succeeded`` or
    ``cancelled``, as the main process's :func:`run_job` does; train() stops all processes
    together on a cancel or SIGTERM."""
    from accelerate.utils import broadcast_object_list

    from srm.config import TrainConfig
    from srm.train import train

    shared: list[Any] = [None]
    broadcast_object_list(shared)
    if shared[0] is None:
        return "cancelled"
    config, pairs, steps, resume_from = shared[0]
    result = train(
        TrainConfig.from_dict(config),
        pairs,
        resume_from=resume_from,
        show_progress=False,
        stop=sigterm,
        train_steps=steps,
    )
    return "cancelled" if result.interrupted else "succeeded"


def _share_with_followers(
    work: tuple[dict[str, Any], list[Any], list[Any], str | None] | None,
) -> None:
    """Send the other processes of a multi-process train job (:func:`follow_train_job`) the
    config, pairs, tagged responses and checkpoint to resume from (if any) to train on, or None
    when the job stopped before training: all train on what the main process read, even while
    labels change."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    if PartialState().num_processes > 1:
        broadcast_object_list([work])


def _run_score(
    run: JobRun,
    model_id: int | None,
    *,
    device: str = "auto",
    batch_size: int = SCORE_BATCH_SIZE,
    start: float = 0.0,
) -> tuple[str, str]:
    """Score the job's dataset with model ``model_id``; progress runs from ``start`` to 1. A
    cancel or SIGTERM stops it after the chunk under way."""
    from srm.checkpoint import load

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


class _ProgressWriter:
    """Writes a running job's progress to its row, at most every :data:`PROGRESS_INTERVAL`
    seconds unless forced, each write its own transaction; reads ``cancel_requested`` back."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.cancel_requested = False
        self._last_write = self._last_read = -math.inf

    def __call__(
        self, step: int, total: int, progress: float, message: str, *, force: bool = False
    ) -> bool:
        """Record progress (maybe); return whether the job has been asked to stop."""
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_INTERVAL:
            return self.cancel_requested
        self._last_write = self._last_read = now
        with self.sessions.begin() as session:
            session.execute(
                update(TrainingJob)
                .where(TrainingJob.id == self.job_id, TrainingJob.status == "running")
                .values(
                    step=step,
                    total=total,
                    progress=min(progress, 1.0),
                    message=message,
                    heartbeat_at=utcnow(),
                )
            )
            self.cancel_requested = self._read_cancel(session)
        return self.cancel_requested

    def cancelled(self) -> bool:
        """Whether the job has been asked to stop, read afresh unless it was just read."""
        now = time.monotonic()
        if not self.cancel_requested and now - self._last_read >= PROGRESS_INTERVAL:
            self._last_read = now
            with self.sessions() as session:
                self.cancel_requested = self._read_cancel(session)
        return self.cancel_requested

    def _read_cancel(self, session: Session) -> bool:
        """Whether to stop: a cancel was asked for, or the job is no longer running (a reaper
        failed it while this process could not beat)."""
        query = select(TrainingJob.cancel_requested, TrainingJob.status).where(
            TrainingJob.id == self.job_id
        )
        cancel, status = session.execute(query).one()
        return bool(cancel) or status != "running"


class _Heartbeat(threading.Thread):
    """Writes the job's ``heartbeat_at`` every :data:`HEARTBEAT_INTERVAL` seconds while the
    ``with`` block runs, from a thread of its own: loading a model or evaluating reports no
    progress for minutes, and the job must not look dead meanwhile."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int) -> None:
        super().__init__(name=f"srm-job-{job_id}-heartbeat", daemon=True)
        self.sessions, self.job_id = sessions, job_id
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(HEARTBEAT_INTERVAL):
            try:
                with self.sessions.begin() as session:
                    session.execute(
                        update(TrainingJob)
                        .where(TrainingJob.id == self.job_id, TrainingJob.status == "running")
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # the store may be out of reach for a moment: beat again later
                log.warning("job %d: could not write a heartbeat", self.job_id, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self.join()


@dataclass(frozen=True)
class JobRun:
    """A running job as its stages (training, scoring, an audit) see it: the store, the job's
    id, its dataset and config, the progress writer, and the SIGTERM flag (:mod:`srm.sigterm`)."""

    sessions: sessionmaker[Session]
    job_id: int
    dataset: str
    config: dict[str, Any]
    report: _ProgressWriter
    sigterm: StopRequest | None = None

    def stop(self) -> bool:
        """Whether to stop now: a cancel from the store, or SIGTERM."""
        return self.report.cancelled() or self.by_sigterm()

    def by_sigterm(self) -> bool:
        return self.sigterm is not None and self.sigterm()

    def stopped_by(self) -> str:
        """How a job that stopped early says why."""
        return "stopped by SIGTERM" if self.by_sigterm() else "cancelled"


def _finish(
    sessions: sessionmaker[Session],
    job_id: int,
    status: str,
    *,
    message: str | None = None,
    error: str | None = None,
) -> None:
    with sessions.begin() as session:
        job = _get_job(session, job_id, lock=True)
        if job.status in FINISHED_STATUSES:  # failed by a reaper while it ran: leave it so
            raise JobStateError(
                f"job {job_id} was marked {job.status} while it ran ({job.message}); "
                f"it stopped without recording {status}"
            )
        job.status, job.finished_at = status, utcnow()
        if status == "succeeded":
            job.progress = 1.0
        if message is not None:
            job.message = message
        if error is not None:
            job.error = error
            job.message = error.split("\n", 1)[0]


def _describe_error(err: BaseException) -> str:
    """A failed job's ``error``: the exception's message, a blank line, the traceback's tail."""
    message = str(err) or type(err).__name__
    lines = "".join(traceback.format_exception(type(err), err, err.__traceback__)).splitlines()
    return message + "\n\n" + "\n".join(lines[-TRACEBACK_LINES:])
