"""Launching a queued job as its own process (``python -m srm.cli train|score --job N``), in a
new process session, its output in the run directory's log.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

from sqlalchemy import case, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from srm.jobs.watching import JobStateError, _children, _get_job, _reap_children, _run_dir
from srm.store import (
    TrainingJob,
    make_sessionmaker,
    open_store,
)

log = logging.getLogger(__name__)


LOG_FILE = "job.log"


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
