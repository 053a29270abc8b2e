"""Job kinds (srm.jobs.kinds): a kind is one registration, and everything generic about jobs,
creating one, ``srm jobs run N``, ``srm jobs``, a worker choosing what it takes, reads the
registry; the store holds any registered kind (issue 27: "adding a job kind in a test touches
one registration").

On SQLite and on PostgreSQL (``store_url``; PostgreSQL needs SRM_TEST_PG_URL).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

import srm.jobs.working
from srm.cli import main
from srm.config import ConfigError
from srm.jobs import (
    JobKind,
    JobRun,
    JobStateError,
    Worker,
    WorkerOptions,
    create_job,
    create_train_job,
    job_kind,
    job_kinds,
    load_plugin_kinds,
    register_job_kind,
    run_job,
    runs_dir,
    unregister_job_kind,
)
from srm.jobs.training import follow_train_job
from srm.store import StoreError, TrainingJob, dataset_id

ECHO = "echo"
REPO = Path(__file__).resolve().parents[2]


def run_echo(run: JobRun) -> tuple[str, str]:
    """The test's kind: reports a step a word, then writes the words to its run directory."""
    words = run.config["words"]
    for n, word in enumerate(words, start=1):
        if run.report(n, len(words), n / len(words), f"said {word}", force=True):
            return "cancelled", f"cancelled after {n} words"
    run_dir = Path(run.config["run_dir"])  # made by the launcher; not when run in this process
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "echo.txt").write_text(" ".join(words), encoding="utf-8")
    return "succeeded", f"echoed {len(words)} words of dataset {run.dataset}"


def check_echo(session, job: TrainingJob) -> None:
    words = job.config.get("words")
    if not isinstance(words, list) or not words:
        raise ConfigError(f"words: got {words!r}; give a list of words to echo")


@pytest.fixture
def echo() -> Iterator[JobKind]:
    """The kind ``echo``, registered for one test: the one registration a new kind is."""
    kind = register_job_kind(JobKind(ECHO, run_echo, check=check_echo))
    yield kind
    unregister_job_kind(ECHO)


@pytest.fixture
def sessions(session_factory, make_store, runs_in_tmp_path):
    """A store (SQLite or PostgreSQL) with dataset "d" of 4 pairs; runs under tmp_path."""
    make_store(4, "d")
    return session_factory


def new_job(sessions, kind: str = ECHO, **kwargs) -> int:
    kwargs = {"dataset": "d", "config": {"words": ["a", "b", "c"]}} | kwargs
    with sessions.begin() as s:
        return create_job(s, kind, **kwargs).id


def job_row(sessions, job_id: int) -> TrainingJob:
    with sessions() as s:
        return s.get(TrainingJob, job_id)


def count_jobs(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(TrainingJob))


class FinishedProcess:
    """What the worker waits for once :func:`run_here` ran the job."""

    pid = os.getpid()

    def wait(self) -> int:
        return 0

    def poll(self) -> int:
        return 0


def run_here(url: str, job_id: int, run_dir: Path, **_: object) -> tuple[FinishedProcess, Path]:
    """The worker's ``srm jobs run N``, in this process: a new process would not know a kind
    registered by a test."""
    run_job(url, job_id)
    return FinishedProcess(), run_dir / "job.log"


def test_a_registered_kind_is_created_run_listed_and_claimed(
    echo, sessions, store_url: str, monkeypatch
) -> None:
    # Created: checked by the kind's check, given a run directory under its run_dir_key.
    job_id = new_job(sessions)
    job = job_row(sessions, job_id)
    assert (job.kind, job.status, job.launcher) == (ECHO, "queued", "local")
    run_dir = runs_dir(store_url) / f"job-{job_id}"
    assert job.config == {"words": ["a", "b", "c"], "run_dir": str(run_dir)}

    # Run as srm jobs run N runs it, in this process: progress, result, outcome.
    assert run_job(store_url, job_id) == "succeeded"
    job = job_row(sessions, job_id)
    assert (job.status, job.step, job.total, job.progress) == ("succeeded", 3, 3, 1.0)
    assert job.message == "echoed 3 words of dataset d"
    assert (run_dir / "echo.txt").read_text(encoding="utf-8") == "a b c"

    # The CLI's srm jobs run N, and srm jobs listing both.
    cli_job = new_job(sessions, config={"words": ["hi"]})
    ran = CliRunner().invoke(main, ["jobs", "run", str(cli_job), "--db", store_url])
    assert ran.exit_code == 0, ran.output
    assert f"Job {cli_job} succeeded: echoed 1 words of dataset d" in ran.output
    listed = CliRunner().invoke(main, ["jobs", "--db", store_url])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1:3] for line in listed.output.splitlines()[1:]}
    assert rows == {str(job_id): [ECHO, "succeeded"], str(cli_job): [ECHO, "succeeded"]}

    # A worker that takes echo jobs only claims the echo job, not the older train job.
    with sessions.begin() as s:
        train = create_train_job(s, dataset="d", config={}, launcher="worker").id
    for_worker = new_job(sessions, launcher="worker", config={"words": ["w"]})
    assert ECHO in WorkerOptions().kinds  # a worker's default: every registered kind
    monkeypatch.setattr(srm.jobs.working, "spawn_job", run_here)
    lines: list[str] = []
    worker = Worker(store_url, WorkerOptions(kinds=(ECHO,), once=True), lines.append)
    assert worker.run() == 1
    job = job_row(sessions, for_worker)
    assert (job.status, job.claimed_by) == ("succeeded", worker.name)
    assert job.host == socket.gethostname()
    assert lines[0].startswith(f"claimed job {for_worker} (echo, dataset d) as worker ")
    assert lines[1].startswith(f"job {for_worker} succeeded (exit 0) in ")
    left = job_row(sessions, train)
    assert (left.status, left.claimed_by) == ("queued", None)


def test_a_kind_checks_its_jobs_before_anything_is_written(echo, sessions) -> None:
    with pytest.raises(ConfigError, match=r"words: got None; give a list of words"):
        new_job(sessions, config={})
    with pytest.raises(StoreError, match="no dataset 'nope' in the store"):
        new_job(sessions, dataset="nope")
    with pytest.raises(ConfigError, match="launcher: got 'slurm'"):
        new_job(sessions, launcher="slurm")
    assert count_jobs(sessions) == 0


def test_an_unregistered_kind_is_refused_and_a_stored_one_is_not_run(
    sessions, store_url: str
) -> None:
    # The echo fixture of another test registered its kind for that test only.
    assert job_kinds() == ("audit", "score", "train")
    with pytest.raises(ConfigError, match=r"kind: got 'echo'; use one of audit, score, train"):
        new_job(sessions)
    assert count_jobs(sessions) == 0
    with pytest.raises(ConfigError, match=r"kinds: got echo; use some of audit, score, train"):
        WorkerOptions(kinds=(ECHO,))
    # The store takes any kind (a process that registered it created the job); this process
    # does not run it, and leaves it queued.
    with sessions.begin() as s:
        row = TrainingJob(kind=ECHO, status="queued", dataset_id=dataset_id(s, "d"), config={})
        s.add(row)
        s.flush()
        job_id = row.id
    with pytest.raises(JobStateError, match=f"job {job_id} is of kind 'echo', which nothing here"):
        run_job(store_url, job_id)
    assert job_row(sessions, job_id).status == "queued"
    ran = CliRunner().invoke(main, ["jobs", "run", str(job_id), "--db", store_url])
    assert ran.exit_code == 1
    assert "kinds registered: audit, score, train" in ran.output


def test_the_shipped_kinds_are_registered_with_what_they_need(sessions) -> None:
    train, score, audit = job_kind("train"), job_kind("score"), job_kind("audit")
    assert train.follow is follow_train_job  # the only kind that runs as several processes
    assert (score.follow, audit.follow) == (None, None)
    assert (train.run_dir_key, score.run_dir_key, audit.run_dir_key) == (
        "output_dir",
        "run_dir",
        None,  # an audit job runs in its audit's directory
    )
    # create_job reaches their checks as create_NAME_job does.
    with pytest.raises(ConfigError, match="model_id: a score job scores a model"):
        new_job(sessions, "score", config={})
    with pytest.raises(StoreError, match="no audit with id 99"):
        new_job(sessions, "audit", config={"audit_id": 99})
    with pytest.raises(ConfigError, match="lr"):
        new_job(sessions, "train", config={"lr": "fast"})
    assert count_jobs(sessions) == 0


def test_a_kind_is_registered_once_under_a_name_the_store_holds(echo) -> None:
    with pytest.raises(ValueError, match="job kind 'echo' is registered already"):
        register_job_kind(JobKind(ECHO, run_echo))
    for name in ("Echo", "e,cho", "x" * 17, ""):
        with pytest.raises(ValueError, match="job kind name: got"):
            JobKind(name, run_echo)
    with pytest.raises(ValueError, match="run_dir_key: got 'out'"):
        JobKind("echo2", run_echo, run_dir_key="out")


PLUGIN = '''
"""A package's own job kind, installed beside srm (what the test's fake distribution ships)."""

from srm.jobs.kinds import JobKind


def greet(run):
    run.report(1, 1, 1.0, "greeted", force=True)
    return "succeeded", f"hello from a plugin to dataset {run.dataset}"


GREET = JobKind("greet", greet)
NOT_A_KIND = 42
'''


def install_plugin(site: Path) -> None:
    """A distribution in ``site`` as pip would leave it: the module, and a dist-info whose
    entry points declare two job kinds, one of them broken."""
    (site / "greet_plugin.py").write_text(PLUGIN, encoding="utf-8")
    info = site / "greet_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: greet-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[srm.job_kinds]\ngreet = greet_plugin:GREET\nbroken = greet_plugin:NOT_A_KIND\n",
        encoding="utf-8",
    )


def test_an_installed_package_adds_a_kind_that_any_process_runs(
    sessions, store_url: str, tmp_path: Path, monkeypatch, caplog
) -> None:
    """Another package's kind is an entry point (group srm.job_kinds): registered here with
    the broken one skipped and named, and known to a new `srm jobs run N` process, which is
    where a worker or the launcher runs every job."""
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    with caplog.at_level("WARNING", logger="srm.jobs.kinds"):
        assert load_plugin_kinds() == ["greet"]
    try:
        assert "greet" in job_kinds()
        assert "entry point broken = greet_plugin:NOT_A_KIND" in caplog.text
        assert "names a int, not a srm.jobs.JobKind" in caplog.text
        job_id = new_job(sessions, "greet", config={})
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
        ran = subprocess.run(
            [sys.executable, "-m", "srm.cli", "jobs", "run", str(job_id), "--db", store_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr
        job = job_row(sessions, job_id)
        assert (job.kind, job.status) == ("greet", "succeeded")
        assert job.message == "hello from a plugin to dataset d"
    finally:
        unregister_job_kind("greet")
