"""Starting a queued job's process, as its ``launcher`` says (:func:`start`):

- ``local``: :func:`launch` runs ``python -m srm.cli jobs run N`` here, in a new process
  session, its output in the run directory's log;
- ``worker``: nothing happens here; an ``srm worker`` on any machine that reaches the store
  claims the job (:mod:`srm.jobs.working`);
- ``command``: :func:`submit` runs the configured submit command (``$SRM_SUBMIT_COMMAND``,
  such as ``sbatch --job-name srm-{job_id} run.sbatch``), whose job later runs
  ``srm jobs run N`` on a cluster node and reports into the same store.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import socket
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import case, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from srm.config import ConfigError
from srm.jobs.watching import JobStateError, get_job, job_run_dir, launched_processes, reap_children
from srm.store import (
    TrainingJob,
    make_sessionmaker,
    open_store,
)
from srm.store.models import utcnow

log = logging.getLogger(__name__)


LOG_FILE = "job.log"
#: The environment variable holding the submit command of the ``command`` launcher.
SUBMIT_COMMAND_ENV = "SRM_SUBMIT_COMMAND"
#: The placeholders a submit command may hold.
SUBMIT_FIELDS = ("job_id", "db_url", "kind")
#: Seconds a submit command may take (``sbatch`` returns at once; a hung one fails the job).
SUBMIT_TIMEOUT = 60.0
#: Characters of a submit command's output kept in a failed job's message and error.
SUBMIT_OUTPUT_CHARS = 2000
#: Programs that run their ``-c`` argument as shell code (see _refuse_url_in_shell_code).
SHELLS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish", "csh", "tcsh"}
)
#: A URL's password, as SQLAlchemy's URL pattern finds it: after "scheme://user:", up to "@".
_PASSWORD = re.compile(r"^(?P<head>[^:/]+://[^:/@]*:)[^@]*@")


def start(url: str, job_id: int) -> int | None:
    """Start queued job ``job_id`` as its ``launcher`` says: the pid of a ``local`` job's
    process, ``None`` for a ``worker`` job (a worker claims it) and a ``command`` one (the
    submit command ran; a failure to submit marks the job failed, see :func:`submit`)."""
    engine = open_store(url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            launcher = get_job(session, job_id).launcher
        if launcher == "local":
            return _launch(url, sessions, job_id)
        if launcher == "command":
            _submit(url, sessions, job_id, submit_command())
        return None
    finally:
        engine.dispose()


def launch(url: str, job_id: int) -> int:
    """Start the process that runs queued ``local`` job ``job_id`` and return its pid.

    The process (``python -m srm.cli jobs run N --db URL``) starts a new process
    session, so stopping the app (Ctrl-C) does not stop the job; its stdout and stderr go to
    ``job.log`` in the run directory. A URL holding a password goes through ``$SRM_DB_URL``
    instead of the command line, where any local user could read it.
    """
    engine = open_store(url)
    try:
        return _launch(url, make_sessionmaker(engine), job_id)
    finally:
        engine.dispose()  # the app launches many jobs from one long-lived process


def _launch(url: str, sessions: sessionmaker[Session], job_id: int) -> int:
    reap_children()
    with sessions() as session:
        job = get_job(session, job_id)
        _check_startable(job)
        if job.launcher != "local":
            raise JobStateError(
                f"job {job_id} is for the {job.launcher} launcher; it is not launched here"
            )
        kind, run_dir = job.kind, job_run_dir(job)
    process, log_path = spawn_job(url, job_id, run_dir)
    launched_processes[process.pid] = process
    record_launch(sessions, job_id, process.pid, log_path)
    log.info("launched job %d (%s) as pid %d; log: %s", job_id, kind, process.pid, log_path)
    return process.pid


def _check_startable(job: TrainingJob) -> None:
    if job.status != "queued":
        raise JobStateError(f"job {job.id} is {job.status}, not queued; it cannot be launched")
    if job.pid is not None:
        raise JobStateError(f"job {job.id} was launched already (pid {job.pid})")


def spawn_job(
    url: str, job_id: int, run_dir: Path, *, die_with_parent: bool = False
) -> tuple[subprocess.Popen, Path]:
    """Start ``python -m srm.cli jobs run N`` in a new process session, its output appended
    to ``run_dir/job.log``; return the process and the log's path. With ``die_with_parent``
    (what a worker asks, on Linux) the process is killed when the one that started it dies,
    as it would be if the machine went down, so the job's heartbeats stop and the job is failed.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_FILE
    command = [sys.executable, "-m", "srm.cli", "jobs", "run", str(job_id)]
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
            preexec_fn=_die_with_parent() if die_with_parent else None,
        )
    return process, log_path


def _die_with_parent() -> Callable[[], None] | None:
    """Linux's ``PR_SET_PDEATHSIG``: SIGKILL this child when its parent dies. Elsewhere there
    is no such call; the child then finishes its job on its own."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return set_death_signal


def record_launch(sessions: sessionmaker[Session], job_id: int, pid: int, log_path: Path) -> None:
    """Record the process started for ``job_id``: its pid, this host and its log."""
    # Only these columns: the process may already have marked itself running.
    with sessions.begin() as session:
        session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id)
            .values(
                pid=pid,
                host=socket.gethostname(),
                log_path=str(log_path),
                message=case(
                    (TrainingJob.status == "queued", "starting"), else_=TrainingJob.message
                ),
            )
        )


# ------------------------------------------------------------------------------- submitting
def submit_command() -> str | None:
    """The ``command`` launcher's template: ``$SRM_SUBMIT_COMMAND`` (``srm app
    --submit-command`` sets it), or ``None`` when none is configured."""
    return os.environ.get(SUBMIT_COMMAND_ENV, "").strip() or None


def submit_args(template: str, **values: object) -> list[str]:
    """The argument list of a submit command: ``template`` split as a POSIX shell would
    (:func:`shlex.split`), then each argument's placeholders (:data:`SUBMIT_FIELDS`) filled in.
    No shell ever sees the result, so a value can never add or split arguments.

    >>> submit_args("sbatch --job-name 'srm {job_id}' run.sbatch", job_id=7, db_url="", kind="x")
    ['sbatch', '--job-name', 'srm 7', 'run.sbatch']
    """
    try:
        words = shlex.split(template)
    except ValueError as err:
        raise ConfigError(f"${SUBMIT_COMMAND_ENV}: {err} in {template!r}") from None
    if not words:
        raise ConfigError(f"${SUBMIT_COMMAND_ENV}: the submit command is empty")
    _refuse_url_in_shell_code(words)
    for word in words:
        try:
            fields = [part[1] for part in string.Formatter().parse(word) if part[1] is not None]
        except ValueError as err:
            raise ConfigError(f"${SUBMIT_COMMAND_ENV}: {err} in {word!r}") from None
        unknown = [name for name in fields if name not in SUBMIT_FIELDS]
        if unknown:
            raise ConfigError(
                f"${SUBMIT_COMMAND_ENV}: unknown placeholder {{{unknown[0]}}} in {word!r}; "
                f"use {', '.join('{' + f + '}' for f in SUBMIT_FIELDS)} (double braces for "
                "literal ones)"
            )
    return [word.format(**{f: values[f] for f in SUBMIT_FIELDS}) for word in words]


def _refuse_url_in_shell_code(words: list[str]) -> None:
    """Refuse ``{db_url}`` inside the code a shell runs (``sh -c '... {db_url} ...'``): the
    store URL is data, and there its ``;``, ``$(...)`` or quotes would run as commands. After
    the code, as an argument (``sh -c 'echo "$1"' sh {db_url}``), it is safe, and so is
    ``$SRM_DB_URL``, which the command's environment always holds."""
    for i, word in enumerate(words):
        if Path(word).name not in SHELLS:
            continue
        later = words[i + 1 :]
        flag = next((n for n, w in enumerate(later) if _is_c_flag(w)), None)
        if flag is None:
            continue
        code = next((w for w in later[flag + 1 :] if not w.startswith("-")), "")
        if "db_url" in _placeholders(code):
            raise ConfigError(
                f"${SUBMIT_COMMAND_ENV}: {{db_url}} is inside the code {word} runs ({code!r}), "
                "where a shell would run any ;, $(...) or quote in the store URL as commands. "
                'Use "$SRM_DB_URL" (the command\'s environment holds it), or pass {db_url} as '
                f"an argument after the code: {word} -c '... \"$1\" ...' {word} {{db_url}}"
            )


def _placeholders(word: str) -> list[str]:
    """The placeholders of a template word (``{{`` and ``}}`` are literal braces)."""
    try:
        return [part[1] for part in string.Formatter().parse(word) if part[1] is not None]
    except ValueError:  # unbalanced braces: submit_args says so
        return []


def _is_c_flag(word: str) -> bool:
    """``-c``, or a cluster holding it (``-lc``, ``-ec``): the next word is shell code."""
    return word.startswith("-") and not word.startswith("--") and "c" in word[1:]


def shown_url(url: str) -> str:
    """``url`` exactly as given but for its password, ``***``: what a log may show of the
    command that ran (SQLAlchemy's own rendering would re-quote other characters too)."""
    return _PASSWORD.sub(r"\g<head>***@", url, count=1) if make_url(url).password else url


def submit(url: str, job_id: int, template: str | None = None) -> bool:
    """Hand ``command`` job ``job_id`` to the submit command (``template``, default
    :func:`submit_command`) and return whether it was accepted (exit status 0).

    The command runs without a shell, with ``$SRM_DB_URL``, ``$SRM_JOB_ID`` and
    ``$SRM_JOB_KIND`` in its environment (``sbatch`` passes them on to the batch script), for
    at most :data:`SUBMIT_TIMEOUT` seconds. Its arguments, output and exit status go to the
    job's log; the job stays queued with the output's last line as its message until the
    submitted ``srm jobs run N`` starts it, or, when the command fails, is marked failed
    with the output as its error.
    """
    engine = open_store(url)
    try:
        return _submit(url, make_sessionmaker(engine), job_id, template or submit_command())
    finally:
        engine.dispose()


def _submit(url: str, sessions: sessionmaker[Session], job_id: int, template: str | None) -> bool:
    with sessions() as session:
        job = get_job(session, job_id)
        _check_startable(job)
        kind, run_dir = job.kind, job_run_dir(job)
    try:
        if template is None:
            raise ConfigError(
                f"no submit command: set ${SUBMIT_COMMAND_ENV} (or srm app --submit-command), "
                "e.g. 'sbatch --job-name srm-{job_id} /path/to/srm-job.sbatch'"
            )
        args = submit_args(template, job_id=job_id, db_url=url, kind=kind)
        # The argv that runs, word for word, with the URL's password masked and nothing else.
        shown = submit_args(template, job_id=job_id, db_url=shown_url(url), kind=kind)
    except ConfigError as err:  # the job is not left queued for nobody
        with sessions.begin() as session:
            job = get_job(session, job_id, lock=True)
            job.status, job.finished_at = "failed", utcnow()
            job.message = job.error = str(err)
        raise
    env = os.environ | {"SRM_DB_URL": url, "SRM_JOB_ID": str(job_id), "SRM_JOB_KIND": kind}
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=SUBMIT_TIMEOUT,
            env=env,
        )
        code: int | None = done.returncode
        output = (done.stdout + done.stderr).strip()
    except OSError as err:  # not found, not executable
        code, output = None, f"could not run {args[0]!r}: {err.strerror or err}"
    except subprocess.TimeoutExpired:
        code, output = None, f"{args[0]!r} did not return within {SUBMIT_TIMEOUT:.0f} s"
    status = "no exit status" if code is None else f"exit status {code}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_FILE
    with log_path.open("a", encoding="utf-8") as log_file:
        # argv as a JSON list: exactly the words the command got (shlex.join would re-quote).
        log_file.write(
            f"$ {shlex.join(shown)}\nargv: {json.dumps(shown, ensure_ascii=False)}\n"
            f"{output}\n[submit command: {status}]\n"
        )
    accepted = code == 0
    last_line = output.splitlines()[-1] if output else ""
    with sessions.begin() as session:
        job = get_job(session, job_id, lock=True)
        job.log_path = str(log_path)
        if job.status != "queued":  # the submitted job already started (or was cancelled)
            pass
        elif accepted:
            job.message = f"submitted with {Path(args[0]).name}: {last_line}"[:500]
        else:
            job.status, job.finished_at = "failed", utcnow()
            job.message = f"the submit command {Path(args[0]).name} failed ({status})"
            job.error = f"{job.message}:\n{output[-SUBMIT_OUTPUT_CHARS:]}"
    log.info("job %d submitted with %s: %s", job_id, shlex.join(shown), status)
    return accepted
