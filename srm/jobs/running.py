"""Running a job in this process (what ``srm jobs run N`` does): the job's row marked running,
its kind's runner (:func:`srm.jobs.kinds.job_kind`) run with a :class:`~srm.jobs.run.JobRun`
(progress on a throttle, a heartbeat from a thread of its own, a cancel read back with every
progress write), and the outcome recorded, a failure with the traceback's tail.

Nothing here names a kind: a new job kind is one :func:`~srm.jobs.kinds.register_job_kind`
call in the module holding its runner (as :mod:`~srm.jobs.training`,
:mod:`~srm.jobs.scoring` and :mod:`~srm.jobs.auditing` hold theirs).
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from srm.config import ConfigError
from srm.jobs.kinds import job_kind, job_kinds
from srm.jobs.run import Heartbeat, JobRun, ProgressWriter
from srm.jobs.watching import JobStateError, get_job
from srm.store import FINISHED_STATUSES, StoreError, make_sessionmaker, open_store
from srm.store.models import utcnow

if TYPE_CHECKING:
    from srm.sigterm import StopRequest

log = logging.getLogger(__name__)

#: Traceback lines kept in a failed job's ``error``.
TRACEBACK_LINES = 12


def run_job(url: str, job_id: int, *, sigterm: StopRequest | None = None) -> str:
    """Run job ``job_id`` in this process (``srm jobs run N`` calls this) and return its final
    status: ``succeeded`` or ``cancelled``. A failure is recorded in the job (``failed``, the
    message and the traceback's tail in ``error``) and re-raised. Once ``sigterm`` (see
    :mod:`srm.sigterm`) says SIGTERM arrived, the job stops as a cancel stops it, and its
    message says why.

    What a job does is its kind's ``run`` (:class:`~srm.jobs.kinds.JobKind`): a train job
    trains on the dataset's corrected pairs and registers the model (:mod:`srm.jobs.training`),
    a score job scores every pair of the dataset (:mod:`srm.jobs.scoring`), an audit job runs
    or continues an audit, a fold per transaction (:mod:`srm.jobs.auditing`).
    Raises :class:`JobStateError` (touching nothing) unless the job is queued: a job runs once;
    and when its kind is not registered in this process;
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
        job = get_job(session, job_id, lock=True)
        if job.status != "queued":
            raise JobStateError(
                f"job {job_id} is {job.status}, not queued: a job runs once; create a new one"
            )
        try:
            kind = job_kind(job.kind)
        except ConfigError:
            raise JobStateError(
                f"job {job_id} is of kind {job.kind!r}, which nothing here runs (the kinds "
                f"registered: {', '.join(job_kinds())})"
            ) from None
        job.status, job.pid, job.host = "running", os.getpid(), socket.gethostname()
        job.started_at, job.message = utcnow(), "starting"
        job.heartbeat_at = job.started_at
        config, model_id = dict(job.config), job.model_id
        dataset = job.dataset.name if job.dataset is not None else None
    log.info("job %d (%s) running as pid %d", job_id, kind.name, os.getpid())
    try:
        with Heartbeat(sessions, job_id):
            if dataset is None:
                raise StoreError(f"job {job_id}'s dataset was deleted; create a new job")
            report = ProgressWriter(sessions, job_id)
            run = JobRun(sessions, job_id, dataset, config, report, sigterm, model_id)
            status, message = kind.run(run)
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


def _finish(
    sessions: sessionmaker[Session],
    job_id: int,
    status: str,
    *,
    message: str | None = None,
    error: str | None = None,
) -> None:
    with sessions.begin() as session:
        job = get_job(session, job_id, lock=True)
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
