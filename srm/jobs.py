"""Long work (training a model, scoring a dataset) as subprocesses recorded in the store.

The app never trains inside a Streamlit script run: it creates a job row, launches a process
that runs it, and polls the row. The process writes its own progress (throttled to one short
transaction a second), reads ``cancel_requested`` back with each write, and stops itself when
it is set. A job runs once: ``queued -> running -> succeeded | failed | cancelled``.

Liveness does not depend on who looks: a running job's process writes ``heartbeat_at`` every
:data:`HEARTBEAT_INTERVAL` seconds from a thread of its own, and :func:`reap_dead_jobs` fails a
running job silent for :data:`HEARTBEAT_TIMEOUT` seconds, whichever machine it ran on (and, at
once, a job of this machine whose process is gone). Reaping writes, so it runs where work is
created (:func:`create_train_job`, :func:`create_score_job`), in ``srm jobs``, and, for readers
that poll such as the app's job list, at most every :data:`REAP_INTERVAL` seconds
(:func:`reap_due`): the polls in between only read.

    >>> with Session.begin() as s:
    ...     job = create_train_job(s, dataset="sample", config={"model": {"backbone": "tiny"}})
    >>> pid = launch(url, job.id)            # srm train --job N --db URL, in its own session
    >>> with Session.begin() as s:
    ...     reap_dead_jobs(s)                # jobs whose process died without a word -> failed
    ...     jobs = list_jobs(s)              # newest first; job.progress, job.message, ...
    >>> with Session.begin() as s:
    ...     request_cancel(s, job.id)        # the job stops at its next progress write

Functions that take a session never commit (the caller owns the unit of work); the ones that
take a store URL (:func:`launch`, :func:`run_job`) open their own short transactions, so no
write transaction is ever held while a model trains.

A train job's run directory is its ``output_dir`` (``runs_dir(url)/job-<id>``): the model,
``metrics.jsonl``, ``checkpoints/`` and ``job.log``. A score job's is ``run_dir`` in its config
and holds only the log.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, selectinload, sessionmaker

from srm.config import METRICS_FILE, ConfigError, merge_train_config
from srm.store import (
    FINISHED_STATUSES,
    Model,
    StoreError,
    TrainingJob,
    dataset_id,
    effective_pairs,
    imported_pairs,
    make_sessionmaker,
    open_store,
    register_model,
    save_scores,
)
from srm.store.models import utcnow

if TYPE_CHECKING:
    from srm.model import SentenceRewardModel
    from srm.sigterm import StopRequest

log = logging.getLogger(__name__)

#: Seconds between two progress writes of a running job (the last one is always written).
PROGRESS_INTERVAL = 1.0
#: Seconds between two heartbeats of a running job's process.
HEARTBEAT_INTERVAL = 10.0
#: A running job whose process has not beaten for this long is failed by the next reaper.
HEARTBEAT_TIMEOUT = 120.0
#: Seconds between two reaps by one process that polls the jobs (the app).
REAP_INTERVAL = 30.0
#: Pairs scored and saved per transaction: a killed job leaves whole chunks, never half of one.
SCORE_CHUNK = 64
#: Pairs per forward pass when scoring (inference needs far less memory than training).
SCORE_BATCH_SIZE = 16
#: Share of a train job's progress bar spent training when it scores the dataset afterwards.
TRAIN_SHARE = 0.9
LOG_FILE = "job.log"
#: Keys of a train job's config that are not TrainConfig fields.
JOB_KEYS = ("parent_model_id", "score_after")
#: Traceback lines kept in a failed job's ``error``.
TRACEBACK_LINES = 12

# Processes this process launched, so that finished ones are waited for (no zombies while the
# app runs) and Popen never warns that a child it forgot is still running.
_children: dict[int, subprocess.Popen] = {}
# When this process last reaped each store (see reap_due).
_last_reap: dict[str, float] = {}
_last_reap_lock = threading.Lock()


class JobStateError(StoreError):
    """The job is not in the state the request needs (running a job twice, say)."""


# --------------------------------------------------------------------------------- creating
def runs_dir(url: str) -> Path:
    """Where job run directories go, created on demand.

    ``$SRM_RUNS_DIR`` if set; else ``runs/`` beside a SQLite store file (a project's store and
    its runs travel together); else ``$XDG_DATA_HOME/srm-studio/runs`` (as
    :func:`srm.store.default_url` picks the default store).
    """
    env = os.environ.get("SRM_RUNS_DIR")
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
) -> TrainingJob:
    """Queue a training run on ``dataset`` (its corrected pairs, read when the job starts).

    ``config`` holds :class:`~srm.config.TrainConfig` fields, model fields nested under
    ``"model"`` (as ``TrainConfig.to_dict()`` gives them), without ``output_dir``: the job's
    run directory is ``runs_dir(url)/job-<id>``. It is checked here, field by field, types
    included (:func:`srm.config.merge_train_config`: the job runs later, in another process),
    and a bad value raises :class:`~srm.config.ConfigError` naming the field before anything
    is written. The stored
    config is the full one, defaults filled in, so the job reproduces itself.

    >>> create_train_job(s, dataset="sample", config={"max_steps": 100, "model": {"head": "token"}})
    """
    if "output_dir" in config:
        raise ConfigError(
            "output_dir: a job writes to its own run directory (runs/job-<id>); leave it out"
        )
    cfg = merge_train_config({k: v for k, v in config.items() if k not in JOB_KEYS})
    owner = dataset_id(session, dataset)
    if parent_model_id is not None and session.get(Model, parent_model_id) is None:
        raise StoreError(f"no model with id {parent_model_id} in the store (parent_model_id)")
    reap_dead_jobs(session)
    stored = cfg.to_dict() | {"parent_model_id": parent_model_id, "score_after": bool(score_after)}
    job = TrainingJob(kind="train", status="queued", dataset_id=owner, config=stored)
    session.add(job)
    session.flush()  # the id names the run directory
    run_dir = runs_dir(_session_url(session)) / f"job-{job.id}"
    # A new dict, not an edit in place: a JSON column notices reassignment only.
    job.config = stored | {"output_dir": str(run_dir)}
    session.flush()
    return job


def create_score_job(session: Session, *, dataset: str, model_id: int) -> TrainingJob:
    """Queue scoring every pair of ``dataset`` (as imported) with model ``model_id`` into the
    store's scores, replacing that model's earlier scores of those pairs."""
    owner = dataset_id(session, dataset)
    if session.get(Model, model_id) is None:
        raise StoreError(f"no model with id {model_id} in the store; see the Models page")
    reap_dead_jobs(session)
    job = TrainingJob(
        kind="score",
        status="queued",
        dataset_id=owner,
        model_id=model_id,
        config={"batch_size": SCORE_BATCH_SIZE, "device": "auto"},
    )
    session.add(job)
    session.flush()
    run_dir = runs_dir(_session_url(session)) / f"job-{job.id}"
    job.config = job.config | {"run_dir": str(run_dir)}
    session.flush()
    return job


# --------------------------------------------------------------------------------- launching
def launch(url: str, job_id: int) -> int:
    """Start the process that runs queued job ``job_id`` and return its pid.

    The process (``python -m srm.cli train|score --job N --db URL``) starts a new process
    session, so stopping the app (Ctrl-C) does not stop the job; its stdout and stderr go to
    ``job.log`` in the run directory. A URL holding a password goes through ``$SRM_DB_URL``
    instead of the command line, where any local user could read it.
    """
    _reap_children()
    engine = open_store(url)
    try:
        return _launch(url, make_sessionmaker(engine), job_id)
    finally:
        engine.dispose()  # the app launches many jobs from one long-lived process


def _launch(url: str, sessions: sessionmaker[Session], job_id: int) -> int:
    with sessions() as session:
        job = _get_job(session, job_id)
        if job.status != "queued":
            raise JobStateError(f"job {job_id} is {job.status}, not queued; it cannot be launched")
        if job.pid is not None:
            raise JobStateError(f"job {job_id} was launched already (pid {job.pid})")
        kind, run_dir = job.kind, _run_dir(job)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_FILE
    command = [sys.executable, "-m", "srm.cli", kind, "--job", str(job_id)]
    env = os.environ | {
        "PYTHONUNBUFFERED": "1",
        # tqdm redraws 10 times a second by default; in a log file every redraw stays.
        "TQDM_MININTERVAL": os.environ.get("TQDM_MININTERVAL", "2"),
    }
    if make_url(url).password is None:
        command += ["--db", url]
    else:
        env["SRM_DB_URL"] = url
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _children[process.pid] = process
    # Only these columns: the process may already have marked itself running.
    with sessions.begin() as session:
        session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id)
            .values(
                pid=process.pid,
                host=socket.gethostname(),
                log_path=str(log_path),
                message=case(
                    (TrainingJob.status == "queued", "starting"), else_=TrainingJob.message
                ),
            )
        )
    log.info("launched job %d (%s) as pid %d; log: %s", job_id, kind, process.pid, log_path)
    return process.pid


# --------------------------------------------------------------------------------- running
def run_job(url: str, job_id: int, *, sigterm: StopRequest | None = None) -> str:
    """Run job ``job_id`` in this process (``srm train|score --job N`` calls this) and return
    its final status: ``succeeded`` or ``cancelled``. A failure is recorded in the job
    (``failed``, the message and the traceback's tail in ``error``) and re-raised. Once
    ``sigterm`` (see :mod:`srm.sigterm`) says SIGTERM arrived, the job stops as a cancel
    stops it, and its message says why.

    A train job trains on the dataset's corrected pairs (:func:`srm.store.effective_pairs`),
    registers the model and, with ``score_after``, scores the dataset with it. A score job
    scores every pair of the dataset, as imported, :data:`SCORE_CHUNK` pairs per transaction.
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
    report = _ProgressWriter(sessions, job_id)
    try:
        with _Heartbeat(sessions, job_id):
            if dataset is None:
                raise StoreError(f"job {job_id}'s dataset was deleted; create a new job")
            if kind == "train":
                status, message = _run_train(sessions, job_id, dataset, config, report, sigterm)
            else:
                status, message = _run_score(
                    sessions,
                    dataset,
                    model_id,
                    report,
                    device=str(config.get("device", "auto")),
                    batch_size=int(config.get("batch_size", SCORE_BATCH_SIZE)),
                    sigterm=sigterm,
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


def _run_train(
    sessions: sessionmaker[Session],
    job_id: int,
    dataset: str,
    config: dict[str, Any],
    report: _ProgressWriter,
    sigterm: StopRequest | None = None,
) -> tuple[str, str]:
    from srm.train import train

    cfg = merge_train_config({k: v for k, v in config.items() if k not in JOB_KEYS})
    score_after = bool(config.get("score_after", True))
    share = TRAIN_SHARE if score_after else 1.0
    if report(0, 0, 0.0, "loading the dataset", force=True):
        return "cancelled", "cancelled before training started"
    with sessions() as session:
        pairs = effective_pairs(session, dataset)
    log.info("dataset %r: %s", dataset, pairs.counts.summary())

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        message = f"step {step}/{total}"
        if "loss" in metrics:
            message += f" · loss {metrics['loss']:.4f} · acc {metrics['accuracy']:.2f}"
        if report(step, total, share * step / total, message):
            raise KeyboardInterrupt  # train() writes a resumable checkpoint and returns

    result = train(cfg, pairs.pairs, progress=progress, show_progress=True, stop=sigterm)
    if result.interrupted:
        return "cancelled", (
            f"{_stopped(sigterm)} at step {result.steps}/{result.total_steps}; "
            f"resumable checkpoint: {result.checkpoint}"
        )
    metrics: dict[str, Any] = {
        **result.train_metrics,
        "steps": result.steps,
        "pairs": len(pairs.pairs),
        "seconds": round(result.seconds, 2),
    }
    if result.eval_metrics:
        metrics["eval"] = result.eval_metrics
    with sessions.begin() as session:
        model = register_model(
            session,
            f"job {job_id}: {cfg.model.head} on {cfg.model.backbone}",
            str(Path(result.output_dir).resolve()),
            config=cfg.to_dict(),
            parent_id=config.get("parent_model_id"),
            metrics=metrics,
        )
        model_id = model.id
        _get_job(session, job_id).model_id = model_id
    summary = f"model {model_id}: {result.steps} steps on {len(pairs.pairs)} pairs"
    if "loss" in result.train_metrics:
        summary += f" · loss {metrics['loss']:.4f} · acc {metrics['accuracy']:.2f}"
    report(result.steps, result.total_steps, share, summary, force=True)
    if not score_after:
        return "succeeded", summary
    status, scored = _run_score(
        sessions, dataset, model_id, report, device=cfg.device, start=share, sigterm=sigterm
    )
    return status, f"{summary}; {scored}"


def _run_score(
    sessions: sessionmaker[Session],
    dataset: str,
    model_id: int | None,
    report: _ProgressWriter,
    *,
    device: str = "auto",
    batch_size: int = SCORE_BATCH_SIZE,
    start: float = 0.0,
    sigterm: StopRequest | None = None,
) -> tuple[str, str]:
    """Score ``dataset`` with model ``model_id``; progress runs from ``start`` to 1. A cancel
    or SIGTERM stops it after the chunk under way."""
    from srm.checkpoint import load

    if report(0, 0, start, "loading the model", force=True):
        return "cancelled", "cancelled before scoring started"
    with sessions() as session:
        model_row = session.get(Model, model_id) if model_id is not None else None
        if model_row is None:
            raise StoreError(f"model {model_id} is not in the store; create a new job")
        checkpoint_dir = model_row.checkpoint_dir
    model = load(checkpoint_dir, device=_device(device))

    def progress(done: int, total: int) -> None:
        report(done, total, start + (1 - start) * done / total, f"scored {done}/{total} pairs")

    done, total = score_dataset(
        sessions,
        dataset,
        model_id,
        model,
        batch_size=batch_size,
        progress=progress,
        stop=lambda: report.cancelled() or (sigterm is not None and sigterm()),
    )
    if done < total:
        return "cancelled", f"{_stopped(sigterm)} after scoring {done}/{total} pairs (saved)"
    report(done, total, 1.0, f"scored {done}/{total} pairs", force=True)
    return "succeeded", f"scored {done} pairs with model {model_id}"


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


def _stopped(sigterm: StopRequest | None) -> str:
    """How a job that stopped early says why: a cancel from the store, or SIGTERM."""
    return "stopped by SIGTERM" if sigterm is not None and sigterm() else "cancelled"


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


# --------------------------------------------------------------------------------- watching
def request_cancel(session: Session, job_id: int) -> TrainingJob:
    """Ask job ``job_id`` to stop. A queued job is cancelled at once (its process, if one was
    launched, then refuses to start it); a running one gets ``cancel_requested`` and stops at
    its next progress write (training leaves a resumable checkpoint, scoring keeps the chunks
    it saved); a finished job is left as it is."""
    job = _get_job(session, job_id, lock=True)
    if job.status == "queued":
        job.status, job.finished_at = "cancelled", utcnow()
        job.message = "cancelled before it started"
    elif job.status == "running":
        job.cancel_requested = True
    session.flush()
    return job


def reap_dead_jobs(session: Session) -> list[int]:
    """Mark failed the jobs whose process is gone without reporting (killed, out of memory, a
    crash before Python could record it, a machine that went away); return their ids.

    A running job whose heartbeat is older than :data:`HEARTBEAT_TIMEOUT` is failed, whichever
    host it ran on. A job of this host (running, or launched and still queued) is failed at
    once when its process no longer exists; a pid the system gave to an unrelated process
    since counts as alive, and then the heartbeat decides.
    """
    _reap_children()
    cutoff = utcnow() - timedelta(seconds=HEARTBEAT_TIMEOUT)
    silent = session.scalars(
        select(TrainingJob)
        .where(TrainingJob.status == "running", TrainingJob.heartbeat_at < cutoff)
        .order_by(TrainingJob.id)
        .with_for_update()
    ).all()
    for job in silent:
        _fail(
            job,
            f"no heartbeat from the job's process (pid {job.pid} on {job.host}) for over "
            f"{HEARTBEAT_TIMEOUT:.0f} s: it died or lost the store; see its log",
        )
    local = session.scalars(
        select(TrainingJob)
        .where(
            TrainingJob.host == socket.gethostname(),
            TrainingJob.pid.is_not(None),
            (TrainingJob.status == "running") | (TrainingJob.status == "queued"),
        )
        .order_by(TrainingJob.id)
        .with_for_update()
    ).all()
    gone = [job for job in local if job.pid is not None and not _process_alive(job.pid)]
    for job in gone:
        _fail(job, f"the job's process (pid {job.pid}) exited without reporting; see its log")
    session.flush()
    return sorted(job.id for job in [*silent, *gone])


def reap_due(url: str, interval: float = REAP_INTERVAL) -> bool:
    """Whether a process that polls the jobs of store ``url`` (the app) should reap now: true
    at most once every ``interval`` seconds per store, so that its polls in between only read.
    """
    now = time.monotonic()
    with _last_reap_lock:
        if now - _last_reap.get(url, -math.inf) < interval:
            return False
        _last_reap[url] = now
        return True


def _fail(job: TrainingJob, error: str) -> None:
    job.status, job.finished_at = "failed", utcnow()
    job.error = job.message = error


def _process_alive(pid: int) -> bool:
    try:  # our own child: reap it if it has exited (a zombie still answers kill(pid, 0))
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == 0
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _reap_children() -> None:
    for pid, process in list(_children.items()):
        if process.poll() is not None:
            del _children[pid]


def job_metrics(job: TrainingJob) -> list[dict[str, Any]]:
    """The rows of a train job's ``metrics.jsonl`` so far (training lines ``{"step", "loss",
    "accuracy", ...}`` and eval lines ``{"step", "eval": {...}}``); ``[]`` before the first.

    The file is being appended to while the job runs, so a last line cut short is skipped.
    """
    output_dir = (job.config or {}).get("output_dir")
    if job.kind != "train" or not output_dir:
        return []
    try:
        lines = (Path(output_dir) / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                log.warning("job %d: skipping a broken line %d in %s", job.id, number, output_dir)
    return rows


#: At most this much of a log's end is read: a progress bar can make one line very long.
_LOG_TAIL_BYTES = 1 << 20


def log_tail(job: TrainingJob, lines: int = 40) -> str:
    """The last ``lines`` lines of the job's log, ``""`` when there is none (yet).

    Progress bars redraw with carriage returns: a line shows what a terminal would, the text
    after its last ``\\r``.
    """
    if not job.log_path:
        return ""
    path = Path(job.log_path)
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _LOG_TAIL_BYTES))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    shown = []
    for line in text.removesuffix("\n").split("\n"):  # not splitlines(): it splits at \r
        redraws = [part for part in line.split("\r") if part.strip()]
        shown.append(redraws[-1] if redraws else "")
    if size > _LOG_TAIL_BYTES:
        shown = shown[1:]  # the first line was cut
    return "\n".join(shown[-lines:])


def list_jobs(session: Session, limit: int = 50) -> list[TrainingJob]:
    """The ``limit`` newest jobs, newest first, with ``job.dataset`` and ``job.model`` loaded.

    Store sessions do not expire objects on commit (:func:`srm.store.make_sessionmaker`), so
    the jobs, their dataset and model stay readable after the session closes; other lazy
    attributes (``job.model.parent``) need an open session.
    """
    return list(
        session.scalars(
            select(TrainingJob)
            .options(selectinload(TrainingJob.dataset), selectinload(TrainingJob.model))
            .order_by(TrainingJob.id.desc())
            .limit(limit)
        )
    )


# --------------------------------------------------------------------------------- helpers
def _get_job(session: Session, job_id: int, *, lock: bool = False) -> TrainingJob:
    job = session.get(TrainingJob, job_id, with_for_update=lock)
    if job is None:
        raise StoreError(f"no job with id {job_id} in the store; see srm jobs")
    return job


def _run_dir(job: TrainingJob) -> Path:
    config = job.config or {}
    return Path(config.get("output_dir") or config["run_dir"])


def _session_url(session: Session) -> str:
    return session.get_bind().url.render_as_string(hide_password=False)


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
