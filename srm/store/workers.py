"""Claiming queued jobs for ``srm worker`` processes, on any machine that reaches the store.

A claim is atomic on both backends. On PostgreSQL the candidate row is read with ``SELECT ...
FOR UPDATE SKIP LOCKED``, so two workers polling at once each take a different job instead of
queueing behind one lock. On SQLite (where ``FOR UPDATE`` does not exist) writing transactions
begin ``IMMEDIATE`` and so run one at a time, and the claim is a conditional ``UPDATE ... WHERE
status = 'queued' AND claimed_by IS NULL`` (on both backends: a claim that finds the job taken
updates no row and claims nothing). SQLite is a file, so its workers are processes of the
machine that holds it; workers on other machines need PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from srm.store.models import TrainingJob, utcnow


def claim_job(
    session: Session,
    worker: str,
    *,
    host: str,
    kinds: Sequence[str],
    tags: Sequence[str] = (),
) -> TrainingJob | None:
    """Claim the oldest queued ``worker`` job of one of ``kinds`` for ``worker`` (``host:pid``)
    and return it, or ``None`` when there is none. A job with a ``worker_tag`` goes only to a
    worker holding that tag; an untagged one to any worker.

    The claim records ``claimed_by``, ``host`` and a first ``heartbeat_at`` (so a worker that
    dies before its job starts is noticed like one that dies later), and leaves the job
    ``queued``: the job's own process (``srm jobs run N``) marks it running, as always. The
    caller commits; with PostgreSQL the row stays locked until it does.
    """
    # PostgreSQL: the row is locked until commit, and other claims skip it. SQLite ignores
    # FOR UPDATE; its writing sessions begin IMMEDIATE, so claims queue behind one another.
    job_id = session.scalar(
        select(TrainingJob.id)
        .where(*_claimable(kinds, tags))
        .order_by(TrainingJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if job_id is None:
        return None
    # Conditional all the same: a claim never takes a job from under another one.
    claimed = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.status == "queued",
            TrainingJob.claimed_by.is_(None),
        )
        .values(claimed_by=worker, host=host, heartbeat_at=utcnow(), message="claimed")
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    return session.get(TrainingJob, job_id, populate_existing=True)


def has_claimable_job(session: Session, *, kinds: Sequence[str], tags: Sequence[str] = ()) -> bool:
    """Whether :func:`claim_job` would find a job: a read, so an idle worker's polls take no
    write lock."""
    query = select(TrainingJob.id).where(*_claimable(kinds, tags)).limit(1)
    return session.scalar(query) is not None


def _claimable(kinds: Sequence[str], tags: Sequence[str]) -> tuple[ColumnElement[bool], ...]:
    return (
        TrainingJob.status == "queued",
        TrainingJob.launcher == "worker",
        TrainingJob.claimed_by.is_(None),
        TrainingJob.kind.in_(list(kinds)),
        or_(TrainingJob.worker_tag.is_(None), TrainingJob.worker_tag.in_(list(tags))),
    )


def beat_claimed(session: Session, job_id: int, worker: str) -> None:
    """The claiming worker's heartbeat for its job while the job's process starts and runs:
    a worker that dies stops beating, and the job is failed (see
    :func:`srm.jobs.reap_dead_jobs`)."""
    session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.claimed_by == worker,
            TrainingJob.status.in_(("queued", "running")),
        )
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
