"""``srm worker``: run the store's queued ``worker`` jobs on this machine, one at a time.

A worker polls the store, claims the oldest queued job it may take (:func:`srm.store.claim_job`:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional ``UPDATE`` on SQLite, so each job runs
once however many workers race for it) and runs it exactly as the app's jobs run, as
``srm jobs run N`` in a process of its own, output in the job's log. The job's
process writes its progress, heartbeats and outcome into the store and reads cancels from it;
the worker adds a heartbeat of its own while the process runs, so a job claimed but not yet
started is watched too.

If the worker dies, its job dies with it (on Linux the job's process gets SIGKILL), the
heartbeats stop, and whoever next reaps (another worker, the app, ``srm jobs``) marks the job
**failed** after :data:`~srm.jobs.watching.HEARTBEAT_TIMEOUT` seconds. It is not requeued: a
train job leaves checkpoints to resume from, and a new job is the user's call. SIGTERM or
Ctrl-C stops the worker cleanly: the running job gets SIGTERM and stops as ``srm jobs run`` does
(a resumable checkpoint, status ``cancelled``), then the worker exits.

    >>> worker = Worker(url, WorkerOptions(kinds=("train",), tags=("gpu",)), say=print)
    >>> worker.run()        # until worker.request_stop() (the CLI's SIGTERM/SIGINT handler)
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from srm.config import ConfigError
from srm.jobs import run as job_run
from srm.jobs.creating import TAG_PATTERN
from srm.jobs.kinds import job_kinds
from srm.jobs.launching import record_launch, spawn_job
from srm.jobs.watching import fail_job, get_job, job_run_dir, reap_dead_jobs, reap_due
from srm.store import (
    FINISHED_STATUSES,
    beat_claimed,
    claim_job,
    has_claimable_job,
    make_sessionmaker,
    open_store,
)

log = logging.getLogger(__name__)

#: Seconds between two polls of an idle worker.
POLL_INTERVAL = 5.0


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker takes and how it runs it."""

    #: Job kinds it runs (default: every kind registered, :func:`srm.jobs.job_kinds`).
    kinds: tuple[str, ...] = field(default_factory=job_kinds)
    #: Its tags: it also takes the jobs queued for a worker with one of them (untagged jobs
    #: go to any worker).
    tags: tuple[str, ...] = ()
    #: Device written into each job it claims (``cuda``, ``cuda:1``, ``cpu``); ``None`` keeps
    #: the job's own (``auto``: CUDA when available).
    device: str | None = None
    #: Seconds between two polls when the queue is empty.
    poll: float = POLL_INTERVAL
    #: Run at most one job, then return.
    once: bool = False
    #: The shared directory job runs must lie under (the app's ``--models-dir``); a job whose
    #: run directory is elsewhere is failed rather than written where the app cannot read it.
    models_dir: Path | None = None

    def __post_init__(self) -> None:
        known = job_kinds()
        if not self.kinds or any(kind not in known for kind in self.kinds):
            raise ConfigError(
                f"kinds: got {', '.join(self.kinds) or 'none'}; use some of {', '.join(known)}"
            )
        bad = [tag for tag in self.tags if not TAG_PATTERN.fullmatch(tag)]
        if bad:
            raise ConfigError(f"tag: got {bad[0]!r}; use letters, digits, '-', '_' or '.'")
        if not self.poll > 0:
            raise ConfigError(f"poll: got {self.poll}; give a positive number of seconds")


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    dataset: str | None
    tag: str | None
    run_dir: Path


class Worker:
    """One worker process: :meth:`run` claims and runs jobs until :meth:`request_stop`."""

    def __init__(
        self, url: str, options: WorkerOptions, say: Callable[[str], None] = lambda _: None
    ) -> None:
        self.url, self.options, self.say = url, options, say
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stop_requested = False
        self._wake = threading.Event()
        self._process: subprocess.Popen | None = None

    def request_stop(self) -> None:
        """Stop after the job under way, which is asked to stop too (SIGTERM: it saves a
        resumable checkpoint). Safe to call from a signal handler."""
        self.stop_requested = True
        self._wake.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Claim and run jobs until asked to stop (or, with ``once``, after one job or an empty
        queue); return how many jobs it ran."""
        engine = open_store(self.url)
        sessions = make_sessionmaker(engine)
        readers = make_sessionmaker(engine, read_only=True)
        ran = 0
        try:
            while not self.stop_requested:
                if reap_due(self.url):
                    with sessions.begin() as session:
                        reaped = reap_dead_jobs(session)
                    if reaped:
                        self.say(f"failed dead jobs {', '.join(map(str, reaped))}")
                job = self._claim(sessions, readers)
                if job is not None:
                    self._run(sessions, job)
                    ran += 1
                if self.options.once:
                    break
                if job is None:
                    self._wake.wait(self.options.poll)
        finally:
            engine.dispose()
        return ran

    def _claim(
        self, sessions: sessionmaker[Session], readers: sessionmaker[Session]
    ) -> ClaimedJob | None:
        # An idle worker's polls only read; the write lock is taken when there is a job.
        kinds, tags = self.options.kinds, self.options.tags
        with readers() as session:
            if not has_claimable_job(session, kinds=kinds, tags=tags):
                return None
        with sessions.begin() as session:
            job = claim_job(
                session,
                self.name,
                host=socket.gethostname(),
                kinds=kinds,
                tags=tags,
            )
            if job is None:
                return None
            dataset = job.dataset.name if job.dataset is not None else None
            claimed = ClaimedJob(job.id, job.kind, dataset, job.worker_tag, job_run_dir(job))
            if self.options.device is not None:
                job.config = dict(job.config) | {"device": self.options.device}
            refusal = self._refusal(claimed.run_dir)
            if refusal is not None:
                fail_job(job, refusal)
        if refusal is not None:
            self.say(f"job {claimed.id} failed: {refusal}")
            return None
        tag = f", tag {claimed.tag}" if claimed.tag else ""
        self.say(
            f"claimed job {claimed.id} ({claimed.kind}, dataset {claimed.dataset}{tag}) as "
            f"worker {self.name}; log: {claimed.run_dir / 'job.log'}"
        )
        return claimed

    def _refusal(self, run_dir: Path) -> str | None:
        """Why this worker must not run a job writing to ``run_dir``, if it must not."""
        models_dir = self.options.models_dir
        if models_dir is not None and not run_dir.resolve().is_relative_to(models_dir.resolve()):
            return (
                f"its run directory {run_dir} is outside worker {self.name}'s models directory "
                f"{models_dir}; start the app with --models-dir on that shared directory"
            )
        if not run_dir.parent.is_dir():
            return (
                f"its runs directory {run_dir.parent} does not exist on {socket.gethostname()}: "
                "the app and the workers need one shared models directory, mounted at the same "
                "path (srm app --models-dir, SRM_MODELS_DIR)"
            )
        return None

    def _run(self, sessions: sessionmaker[Session], job: ClaimedJob) -> None:
        started = time.monotonic()
        process, log_path = spawn_job(self.url, job.id, job.run_dir, die_with_parent=True)
        self._process = process
        if self.stop_requested:  # the stop came between the claim and the start
            process.send_signal(signal.SIGTERM)
        record_launch(sessions, job.id, process.pid, log_path)
        beat = _ClaimHeartbeat(sessions, job.id, self.name)
        beat.start()
        try:
            code = process.wait()
        finally:
            beat.stop()
            self._process = None
        with sessions.begin() as session:
            row = get_job(session, job.id, lock=True)
            if row.status not in FINISHED_STATUSES:  # it died before it could say so
                fail_job(
                    row,
                    f"the job's process exited with status {code} without recording an "
                    f"outcome; see its log ({log_path})",
                )
            status, message = row.status, row.message
        self.say(
            f"job {job.id} {status} (exit {code}) in {time.monotonic() - started:.0f} s: {message}"
        )


class _ClaimHeartbeat(threading.Thread):
    """The worker's heartbeat for the job it runs, every :data:`job_run.HEARTBEAT_INTERVAL`
    seconds until :meth:`stop`."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, worker: str) -> None:
        super().__init__(name=f"srm-worker-job-{job_id}-heartbeat", daemon=True)
        self.sessions, self.job_id, self.worker = sessions, job_id, worker
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(job_run.HEARTBEAT_INTERVAL):
            try:
                with self.sessions.begin() as session:
                    beat_claimed(session, self.job_id, self.worker)
            except Exception:  # the store may be out of reach for a moment: beat again later
                log.warning("job %d: worker heartbeat failed", self.job_id, exc_info=True)

    def stop(self) -> None:
        self._done.set()
        self.join()
