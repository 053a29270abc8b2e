"""Watching jobs: listing them, reading their metrics and logs, asking one to stop, and failing
the ones whose process died without a word (:func:`reap_dead_jobs`, throttled for pollers by
:func:`reap_due`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from srm.config import METRICS_FILE
from srm.store import (
    StoreError,
    TrainingJob,
)
from srm.store.models import utcnow

log = logging.getLogger(__name__)


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from environment variable ``name``, else ``default``.

    Read once, when :mod:`srm.jobs` is imported: every process of a set-up (the app, workers,
    the jobs they start) should be given the same values.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise ValueError(f"${name}: got {text!r}; give a positive number of seconds")
    return value


#: A running job whose process has not beaten for this long is failed by the next reaper (and a
#: job claimed by a worker that stopped beating for it). ``$SRM_HEARTBEAT_TIMEOUT`` sets it.
HEARTBEAT_TIMEOUT = seconds_from_env("SRM_HEARTBEAT_TIMEOUT", 120.0)
#: Seconds between two reaps by one process that polls the jobs (the app).
REAP_INTERVAL = 30.0
#: Processes this process launched (pid -> process), so that finished ones are waited for (no
#: zombies while the app runs) and Popen never warns that a child it forgot is still running.
launched_processes: dict[int, subprocess.Popen] = {}
# When this process last reaped each store (see reap_due).
_last_reap: dict[str, float] = {}
_last_reap_lock = threading.Lock()


class JobStateError(StoreError):
    """The job is not in the state the request needs (running a job twice, say)."""


def get_job(session: Session, job_id: int, *, lock: bool = False) -> TrainingJob:
    """Job ``job_id`` (``lock``: its row locked for update); a :class:`StoreError` if none."""
    job = session.get(TrainingJob, job_id, with_for_update=lock)
    if job is None:
        raise StoreError(f"no job with id {job_id} in the store; see srm jobs")
    return job


#: The config keys that may name a job's run directory: ``output_dir`` (a train job's, a
#: :class:`~srm.config.TrainConfig` field) or ``run_dir`` (every other kind's).
RUN_DIR_KEYS = ("output_dir", "run_dir")


def job_run_dir(job: TrainingJob) -> Path:
    """A job's run directory: the first of :data:`RUN_DIR_KEYS` its config holds."""
    config = job.config or {}
    for key in RUN_DIR_KEYS:
        if config.get(key):
            return Path(config[key])
    raise StoreError(f"job {job.id} names no run directory ({' or '.join(RUN_DIR_KEYS)})")


def request_cancel(session: Session, job_id: int) -> TrainingJob:
    """Ask job ``job_id`` to stop. A queued job is cancelled at once (its process, if one was
    launched, then refuses to start it); a running one gets ``cancel_requested`` and stops at
    its next progress write (training leaves a resumable checkpoint, scoring keeps the chunks
    it saved); a finished job is left as it is."""
    job = get_job(session, job_id, lock=True)
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
    host it ran on, and so is a job an ``srm worker`` claimed and stopped beating for (the
    worker died: it is failed, not requeued, as a job whose process died is). A job of this
    host (running, or launched and still queued) is failed at once when its process no longer
    exists; a pid the system gave to an unrelated process since counts as alive, and then the
    heartbeat decides.
    """
    reap_children()
    cutoff = utcnow() - timedelta(seconds=HEARTBEAT_TIMEOUT)
    claimed = (TrainingJob.status == "queued") & TrainingJob.claimed_by.is_not(None)
    silent = session.scalars(
        select(TrainingJob)
        .where((TrainingJob.status == "running") | claimed, TrainingJob.heartbeat_at < cutoff)
        .order_by(TrainingJob.id)
        .with_for_update()
    ).all()
    for job in silent:
        who = f"pid {job.pid} on {job.host}"
        if job.claimed_by is not None:
            who += f", worker {job.claimed_by}"
        fail_job(
            job,
            f"no heartbeat from the job's process ({who}) for over "
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
        fail_job(job, f"the job's process (pid {job.pid}) exited without reporting; see its log")
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


def fail_job(job: TrainingJob, error: str) -> None:
    """Mark ``job`` failed now, ``error`` as its error and message (the caller commits)."""
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


def reap_children() -> None:
    """Forget the launched processes that have exited (waiting for them: no zombies)."""
    for pid, process in list(launched_processes.items()):
        if process.poll() is not None:
            del launched_processes[pid]


def job_place(job: TrainingJob) -> str:
    """Where a job runs, in a few words: the host its process runs (or ran) on once known,
    else who it waits for (``any worker``, ``a worker tagged gpu``, ``the submit command``)."""
    if job.host:
        return job.host
    if job.launcher == "worker":
        return f"a worker tagged {job.worker_tag}" if job.worker_tag else "any worker"
    if job.launcher == "command":
        return "the submit command"
    return "this machine"


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
