"""What a runner sees of the job it runs (:class:`JobRun`), and the two writers that keep the
job's row current while it runs: :class:`ProgressWriter` (progress on a throttle, a cancel read
back with every write) and :class:`Heartbeat` (``heartbeat_at`` from a thread of its own).

A runner is a function ``JobRun -> (status, message)``, registered with its job kind
(:class:`srm.jobs.kinds.JobKind`). Set the intervals here (``srm.jobs.run.PROGRESS_INTERVAL``):
they are read where they are used.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from srm.jobs.watching import seconds_from_env
from srm.store import TrainingJob
from srm.store.models import utcnow

if TYPE_CHECKING:
    from srm.sigterm import StopRequest

log = logging.getLogger(__name__)

#: Seconds between two progress writes of a running job (the last one is always written).
PROGRESS_INTERVAL = 1.0
#: Seconds between two heartbeats of a running job's process; ``$SRM_HEARTBEAT_INTERVAL`` sets
#: it (keep it well under :data:`~srm.jobs.watching.HEARTBEAT_TIMEOUT`).
HEARTBEAT_INTERVAL = seconds_from_env("SRM_HEARTBEAT_INTERVAL", 10.0)


class ProgressWriter:
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


class Heartbeat(threading.Thread):
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

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self.join()


@dataclass(frozen=True)
class JobRun:
    """A running job as its runner sees it: the store, the job's id, its dataset, config and
    model, the progress writer, and the SIGTERM flag (:mod:`srm.sigterm`)."""

    sessions: sessionmaker[Session]
    job_id: int
    dataset: str
    config: dict[str, Any]
    report: ProgressWriter
    sigterm: StopRequest | None = None
    #: The job's model: the one a score job scores (a train job records its own).
    model_id: int | None = None

    def stop(self) -> bool:
        """Whether to stop now: a cancel from the store, or SIGTERM."""
        return self.report.cancelled() or self.by_sigterm()

    def by_sigterm(self) -> bool:
        return self.sigterm is not None and self.sigterm()

    def stopped_by(self) -> str:
        """How a job that stopped early says why."""
        return "stopped by SIGTERM" if self.by_sigterm() else "cancelled"
