"""Jobs run away from the app: ``srm worker`` processes claiming queued jobs from the store, and
the ``command`` launcher handing a job to a scheduler (a fake ``sbatch`` here).

Most tests run on SQLite and on PostgreSQL (``store_url``; PostgreSQL needs SRM_TEST_PG_URL and
is required in CI). Workers are real ``srm worker`` processes running real jobs on the random
``tiny`` backbone for a step or two.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from sqlalchemy import select

import srm.jobs.watching
from srm import checkpoint
from srm.cli import main
from srm.config import ConfigError
from srm.data import load_pairs
from srm.jobs import (
    JobStateError,
    Worker,
    WorkerOptions,
    create_score_job,
    create_train_job,
    launch,
    log_tail,
    reap_dead_jobs,
    request_cancel,
    runs_dir,
    start,
    submit_args,
)
from srm.jobs.launching import shown_url
from srm.jobs.watching import seconds_from_env
from srm.store import (
    Model,
    TrainingJob,
    claim_job,
    import_pairs,
    make_sessionmaker,
    open_store,
)
from srm.store.models import utcnow

#: A config that trains in about a second on a CPU (scoring afterwards is left out unless asked).
TINY = {
    "model": {"backbone": "tiny", "d": 16, "max_length": 64},
    "max_steps": 1,
    "batch_size": 2,
    "finetune": "heads",
    "device": "cpu",
    "log_every": 1,
}
#: A job long enough to be caught mid-run: it is stopped long before it ends.
LONG = {**TINY, "max_steps": 100_000, "save_every": 100_000}
WAIT = 240.0  # seconds: a job is a new process that imports torch, on a busy 2-core machine
HEARTBEAT_INTERVAL = "0.5"  # seconds, for the worker processes and the jobs they start


@pytest.fixture(autouse=True)
def _shared_models_dir(tmp_path: Path, monkeypatch) -> Path:
    """Runs go to one models directory, as a team's shared one (SRM_MODELS_DIR)."""
    models = tmp_path / "models"
    monkeypatch.setenv("SRM_MODELS_DIR", str(models))
    monkeypatch.setenv("SRM_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL)
    return models


@pytest.fixture
def sessions(store_url: str, sample_path: Path):
    """A store (SQLite or PostgreSQL) holding 8 sample pairs as dataset "sample"."""
    factory = make_sessionmaker(open_store(store_url))
    with factory.begin() as s:
        import_pairs(s, "sample", load_pairs(sample_path)[:8])
    return factory


def queue(sessions, n: int = 1, config: dict | None = None, **kwargs) -> list[int]:
    """``n`` train jobs for workers (``launcher="worker"`` unless given)."""
    kwargs = {"launcher": "worker", "score_after": False} | kwargs
    with sessions.begin() as s:
        return [
            create_train_job(s, dataset="sample", config=config or TINY, **kwargs).id
            for _ in range(n)
        ]


def get_job(sessions, job_id: int) -> TrainingJob:
    with sessions() as s:
        return s.get(TrainingJob, job_id)


def wait_for(sessions, job_id: int, ready: Callable[[TrainingJob], bool]) -> TrainingJob:
    deadline = time.monotonic() + WAIT
    while not ready(job := get_job(sessions, job_id)):
        assert time.monotonic() < deadline, f"{job.status}: {job.message}\n{log_tail(job)}"
        time.sleep(0.2)
    return job


def finished(job: TrainingJob) -> bool:
    return job.status in ("succeeded", "failed", "cancelled")


def training(job: TrainingJob) -> bool:
    """Mid-run: its process is past its first training step."""
    assert not finished(job), f"{job.status}: {job.error}"
    return job.status == "running" and job.step >= 1


class WorkerProcess:
    """An ``srm worker`` process; its output goes to a file in ``tmp_path``."""

    def __init__(self, url: str, out: Path, *args: str) -> None:
        self.out = out
        command = [sys.executable, "-m", "srm.cli", "worker", "--db", url, "--poll", "0.2"]
        with out.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, *args], stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )

    @property
    def output(self) -> str:
        return self.out.read_text(encoding="utf-8")

    def wait_for_line(self, text: str) -> None:
        """Until the worker has written ``text``."""
        deadline = time.monotonic() + WAIT
        while text not in self.output:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM, as Slurm and systemd stop it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the worker did not stop on SIGTERM:\n{self.output}") from None


@pytest.fixture
def workers(store_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``workers(*args)`` starts an ``srm worker`` on the store; all are stopped afterwards."""
    started: list[WorkerProcess] = []

    def make(*args: str) -> WorkerProcess:
        started.append(WorkerProcess(store_url, tmp_path / f"worker-{len(started)}.log", *args))
        return started[-1]

    yield make
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


# ------------------------------------------------------------------------------ settings
def test_the_shared_models_dir_comes_first(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SRM_RUNS_DIR", str(tmp_path / "older-name"))
    assert runs_dir(f"sqlite:///{tmp_path / 'store.db'}") == tmp_path / "models"
    monkeypatch.delenv("SRM_MODELS_DIR")
    assert runs_dir(f"sqlite:///{tmp_path / 'store.db'}") == tmp_path / "older-name"


def test_heartbeat_seconds_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SRM_HEARTBEAT_TIMEOUT", "7.5")
    assert seconds_from_env("SRM_HEARTBEAT_TIMEOUT", 120.0) == 7.5
    monkeypatch.delenv("SRM_HEARTBEAT_TIMEOUT")
    assert seconds_from_env("SRM_HEARTBEAT_TIMEOUT", 120.0) == 120.0
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("SRM_HEARTBEAT_TIMEOUT", bad)
        with pytest.raises(ValueError, match=rf"^\$SRM_HEARTBEAT_TIMEOUT: got '{bad}'; give a"):
            seconds_from_env("SRM_HEARTBEAT_TIMEOUT", 120.0)


# ------------------------------------------------------------------------------ claiming
def test_concurrent_claims_take_each_job_once(sessions) -> None:
    """Eight threads, each its own connection, claim until the queue is empty."""
    job_ids = queue(sessions, 12)
    claims: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            while True:
                with sessions.begin() as s:
                    job = claim_job(s, name, host="h", kinds=("train",))
                    if job is None:
                        return
                    claims.append((name, job.id))
        except BaseException as err:  # surfaced below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(job_id for _, job_id in claims) == job_ids
    with sessions() as s:
        rows = s.scalars(select(TrainingJob).order_by(TrainingJob.id)).all()
        assert {row.id: row.claimed_by for row in rows} == {j: w for w, j in claims}
        assert {(row.status, row.message, row.host) for row in rows} == {("queued", "claimed", "h")}


def test_claims_follow_launcher_kind_and_tag(sessions, tmp_path: Path) -> None:
    local = queue(sessions, launcher="local")[0]
    gpu = queue(sessions, worker_tag="gpu")[0]
    with sessions.begin() as s:
        model = Model(name="m", checkpoint_dir=str(tmp_path), config={})
        s.add(model)
        s.flush()
        score = create_score_job(s, dataset="sample", model_id=model.id, launcher="worker").id

    def claim(**kwargs) -> int | None:
        with sessions.begin() as s:
            job = claim_job(s, "w", host="h", **kwargs)
            return None if job is None else job.id

    assert claim(kinds=("train",)) is None  # the local job is launched by its app, the other
    assert claim(kinds=("train",), tags=("a100",)) is None  # waits for a gpu worker
    assert claim(kinds=("train", "score"), tags=("a100",)) == score  # untagged: any worker
    assert claim(kinds=("train",), tags=("a100", "gpu")) == gpu
    assert get_job(sessions, local).claimed_by is None


def test_a_job_is_started_as_its_launcher_says(sessions, store_url: str) -> None:
    [waiting] = queue(sessions)
    assert start(store_url, waiting) is None  # nothing runs here: a worker will claim it
    job = get_job(sessions, waiting)
    assert (job.status, job.pid, job.host) == ("queued", None, None)
    with pytest.raises(JobStateError, match=f"job {waiting} is for the worker launcher"):
        launch(store_url, waiting)
    with pytest.raises(ConfigError, match="worker_tag: only a job for a worker has one"):
        queue(sessions, launcher="local", worker_tag="gpu")
    with pytest.raises(ConfigError, match="launcher: got 'slurm'; use one of local, worker"):
        queue(sessions, launcher="slurm")
    with pytest.raises(ConfigError, match="worker_tag: got 'g p u'"):
        queue(sessions, worker_tag="g p u")


def test_a_claimed_job_whose_worker_went_silent_is_failed(sessions, monkeypatch) -> None:
    """A worker that died between its claim and its job's start is noticed by the heartbeat."""
    [job_id] = queue(sessions)
    with sessions.begin() as s:
        claim_job(s, "gone-host:4242", host="gone-host", kinds=("train",))
    with sessions.begin() as s:
        assert reap_dead_jobs(s) == []  # its claim is a first heartbeat
    monkeypatch.setattr(srm.jobs.watching, "HEARTBEAT_TIMEOUT", 60.0)
    with sessions.begin() as s:
        s.get(TrainingJob, job_id).heartbeat_at = utcnow() - timedelta(hours=1)
    with sessions.begin() as s:
        assert reap_dead_jobs(s) == [job_id]
    job = get_job(sessions, job_id)
    assert job.status == "failed"
    assert job.error.startswith(
        "no heartbeat from the job's process (pid None on gone-host, worker gone-host:4242) "
        "for over 60 s"
    )


# ------------------------------------------------------------------------------ the worker
def test_worker_options_name_the_bad_field() -> None:
    with pytest.raises(ConfigError, match="kinds: got train, fly; use some of audit, score, train"):
        WorkerOptions(kinds=("train", "fly"))
    with pytest.raises(ConfigError, match="tag: got 'g/pu'"):
        WorkerOptions(tags=("g/pu",))


def test_a_worker_refuses_a_job_outside_its_models_dir(
    sessions, store_url: str, tmp_path: Path
) -> None:
    [job_id] = queue(sessions)
    lines: list[str] = []
    options = WorkerOptions(once=True, device="cpu", models_dir=tmp_path / "elsewhere")
    assert Worker(store_url, options, lines.append).run() == 0
    job = get_job(sessions, job_id)
    assert job.status == "failed"
    assert job.error == (
        f"its run directory {tmp_path / 'models' / f'job-{job_id}'} is outside worker "
        f"{socket.gethostname()}:{os.getpid()}'s models directory {tmp_path / 'elsewhere'}; "
        "start the app with --models-dir on that shared directory"
    )
    assert lines == [f"job {job_id} failed: {job.error}"]


def test_a_worker_runs_a_job_as_the_app_would(
    sessions, store_url: str, tmp_path: Path, monkeypatch
) -> None:
    """In this process (the job itself is its own process, as always): claim, device, run,
    one log line per claimed and finished job."""
    [job_id] = queue(sessions, config={**TINY, "device": "auto"}, score_after=True)
    lines: list[str] = []
    worker = Worker(store_url, WorkerOptions(once=True, device="cpu"), lines.append)
    assert worker.run() == 1

    job = get_job(sessions, job_id)
    assert job.status == "succeeded", f"{job.error}\n{log_tail(job)}"
    assert job.config["device"] == "cpu"  # the worker's --device, recorded with the job
    assert (job.claimed_by, job.host) == (worker.name, socket.gethostname())
    assert job.log_path == str(tmp_path / "models" / f"job-{job_id}" / "job.log")
    with sessions() as s:
        model = s.get(Model, job.model_id)
        assert Path(model.checkpoint_dir).is_relative_to(tmp_path / "models")
    assert lines[0] == (
        f"claimed job {job_id} (train, dataset sample) as worker {worker.name}; log: {job.log_path}"
    )
    assert lines[1].startswith(f"job {job_id} succeeded (exit 0) in ")
    assert lines[1].endswith(f": {job.message}")
    assert len(lines) == 2


# Two processes claiming at once is what SKIP LOCKED is for: PostgreSQL (SQLite's claim race is
# test_concurrent_claims_take_each_job_once, on both stores).
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_two_workers_race_for_five_jobs_and_run_each_once(sessions, workers) -> None:
    job_ids = queue(sessions, 5)
    racing = [workers("--device", "cpu"), workers("--kinds", "train,score")]
    for job_id in job_ids:
        wait_for(sessions, job_id, finished)
    assert [w.stop() for w in racing] == [0, 0]

    with sessions() as s:
        jobs = s.scalars(select(TrainingJob).order_by(TrainingJob.id)).all()
        models = s.scalars(select(Model)).all()
    assert [(j.status, j.error) for j in jobs] == [("succeeded", None)] * 5
    assert sorted(m.id for m in models) == sorted(j.model_id for j in jobs)  # one model a job
    output = racing[0].output + racing[1].output
    for job in jobs:
        assert output.count(f"claimed job {job.id} (train") == 1, output
        # (The exit status may be SIGTERM's: the workers are stopped as the last job exits.)
        assert output.count(f"job {job.id} succeeded (exit ") == 1, output
        assert log_tail(job, lines=1000).count(f"Job {job.id} succeeded") == 1


# A cancel is a row update read back by the job: the remote case, PostgreSQL.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_cancel_reaches_a_job_on_a_worker(sessions, workers) -> None:
    [job_id] = queue(sessions, config=LONG)
    worker = workers()
    wait_for(sessions, job_id, training)
    with sessions.begin() as s:
        request_cancel(s, job_id)

    job = wait_for(sessions, job_id, finished)
    assert job.status == "cancelled", f"{job.error}\n{log_tail(job)}"
    assert job.message.startswith("cancelled at step ")
    assert checkpoint.read_info(job.message.rsplit(": ", 1)[1]).training["resumable"]
    worker.wait_for_line(f"job {job_id} cancelled (exit 130) in ")
    assert worker.stop() == 0


# Signals, not the store: one store is enough (Ctrl-C below likewise).
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sigterm_stops_the_worker_and_checkpoints_its_job(sessions, workers) -> None:
    [job_id, waiting] = queue(sessions, 2, config=LONG)
    worker = workers()
    wait_for(sessions, job_id, training)

    assert worker.stop() == 0  # exits cleanly once its job has stopped
    job = get_job(sessions, job_id)
    assert job.status == "cancelled", f"{job.error}\n{log_tail(job)}"
    assert job.message.startswith("stopped by SIGTERM at step ")
    assert checkpoint.read_info(job.message.rsplit(": ", 1)[1]).training["resumable"]
    assert "SIGTERM: stopping after the job under way" in worker.output
    assert f"job {job_id} cancelled (exit 143)" in worker.output
    assert get_job(sessions, waiting).status == "queued"  # left for another worker


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_ctrl_c_stops_the_worker_as_sigterm_does(sessions, workers) -> None:
    [job_id] = queue(sessions, config=LONG)
    worker = workers()
    wait_for(sessions, job_id, training)

    worker.process.send_signal(signal.SIGINT)
    assert worker.process.wait(timeout=WAIT) == 0, worker.output
    job = get_job(sessions, job_id)
    assert (job.status, job.message.split(" at step ")[0]) == ("cancelled", "stopped by SIGTERM")
    assert "SIGINT: stopping after the job under way" in worker.output


# A worker on another machine dying is the PostgreSQL case; heartbeat reaping on both stores is
# test_a_claimed_job_whose_worker_went_silent_is_failed.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_worker_killed_mid_job_leaves_it_failed(sessions, workers, monkeypatch) -> None:
    """SIGKILL (the OOM killer, a lost node): the job's process dies with the worker, its
    heartbeats stop, and a reaper on another machine (the app's) fails it after the timeout."""
    [job_id] = queue(sessions, config=LONG)
    worker = workers()
    running_job = wait_for(sessions, job_id, training)
    job_process = psutil.Process(running_job.pid)

    worker.process.kill()
    worker.process.wait()
    wait_until_dead(job_process)  # killed with its worker (PR_SET_PDEATHSIG)

    monkeypatch.setattr(srm.jobs.watching, "HEARTBEAT_TIMEOUT", 5.0)
    monkeypatch.setattr(socket, "gethostname", lambda: "the-app-machine")
    deadline = time.monotonic() + WAIT
    while True:
        with sessions.begin() as s:
            if reap_dead_jobs(s) == [job_id]:
                break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    job = get_job(sessions, job_id)
    assert job.status == "failed"
    assert job.error.startswith(
        f"no heartbeat from the job's process (pid {running_job.pid} on {running_job.host}, "
        f"worker {running_job.claimed_by}) for over 5 s"
    )


def wait_until_dead(process: psutil.Process) -> None:
    """Until ``process`` is gone or a zombie (its new parent may not reap it at once)."""
    deadline = time.monotonic() + WAIT
    try:
        while process.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"pid {process.pid} outlived its worker"
            time.sleep(0.2)
    except psutil.NoSuchProcess:
        pass


# ------------------------------------------------------------------------------ command
FAKE_SBATCH = """#!/bin/sh
# Records its arguments, one a line, and the job it was handed, as sbatch would queue it.
for arg in "$@"; do printf '%s\\n' "$arg"; done > "{record}"
printf '%s %s\\n' "$SRM_JOB_ID" "$SRM_JOB_KIND" >> "{record}"
[ -n "$SRM_DB_URL" ] || exit 3
if [ "$1" = "--partition=missing" ]; then
    echo "sbatch: error: invalid partition specified: missing" >&2
    exit 1
fi
echo "Submitted batch job 4242"
"""


@pytest.fixture
def fake_sbatch(tmp_path: Path) -> tuple[Path, Path]:
    """An executable ``sbatch`` stand-in and the file it records its arguments in."""
    record = tmp_path / "sbatch-args.txt"
    script = tmp_path / "bin" / "sbatch"
    script.parent.mkdir()
    script.write_text(FAKE_SBATCH.format(record=record), encoding="utf-8")
    script.chmod(0o755)
    return script, record


def test_the_command_launcher_submits_and_the_job_reports_back(
    tmp_path: Path, sample_path: Path, fake_sbatch, monkeypatch
) -> None:
    """The store's path holds a space and shell syntax: it stays one argument, never run."""
    script, record = fake_sbatch
    store_dir = tmp_path / "team store; $(touch PWNED)"
    url = f"sqlite:///{store_dir / 'srm.db'}"
    sessions = make_sessionmaker(open_store(url))
    with sessions.begin() as s:
        import_pairs(s, "sample", load_pairs(sample_path)[:8])
    monkeypatch.setenv(
        "SRM_SUBMIT_COMMAND", f"{script} --job-name 'srm {{kind}} {{job_id}}' --wrap {{db_url}}"
    )
    [job_id] = queue(sessions, launcher="command")

    assert start(url, job_id) is None
    assert record.read_text(encoding="utf-8").splitlines() == [
        "--job-name",
        f"srm train {job_id}",
        "--wrap",
        url,
        f"{job_id} train",
    ]
    assert not list(tmp_path.rglob("PWNED"))
    job = get_job(sessions, job_id)
    assert (job.status, job.message) == (
        "queued",
        "submitted with sbatch: Submitted batch job 4242",
    )
    assert log_tail(job).endswith("Submitted batch job 4242\n[submit command: exit status 0]")

    # What the batch script runs on a cluster node: the job reports into the same store.
    result = CliRunner().invoke(main, ["train", "--job", str(job_id), "--db", url])
    assert result.exit_code == 0, result.output
    assert get_job(sessions, job_id).status == "succeeded"


def test_a_failing_submit_marks_the_job_failed_with_its_output(
    sessions, store_url: str, fake_sbatch, monkeypatch
) -> None:
    script, record = fake_sbatch
    monkeypatch.setenv("SRM_SUBMIT_COMMAND", f"{script} --partition=missing run.sbatch")
    [job_id] = queue(sessions, launcher="command")

    assert start(store_url, job_id) is None
    job = get_job(sessions, job_id)
    assert job.status == "failed"
    assert job.message == "the submit command sbatch failed (exit status 1)"
    assert job.error == (
        "the submit command sbatch failed (exit status 1):\n"
        "sbatch: error: invalid partition specified: missing"
    )
    assert "[submit command: exit status 1]" in log_tail(job)

    monkeypatch.setenv("SRM_SUBMIT_COMMAND", str(script.parent / "no-such-sbatch"))
    [missing] = queue(sessions, launcher="command")
    start(store_url, missing)
    assert get_job(sessions, missing).error.startswith(
        "the submit command no-such-sbatch failed (no exit status):\ncould not run "
    )


def test_submit_args_refuse_unknown_placeholders() -> None:
    assert submit_args("run {job_id} {{literal}}", job_id=3, db_url="u", kind="train") == [
        "run",
        "3",
        "{literal}",
    ]
    with pytest.raises(ConfigError, match=r"unknown placeholder \{jobid\} in 'srm-\{jobid\}'"):
        submit_args("sbatch --job-name srm-{jobid}", job_id=3, db_url="u", kind="train")
    with pytest.raises(ConfigError, match="No closing quotation"):
        submit_args("sbatch 'run", job_id=3, db_url="u", kind="train")


@pytest.mark.parametrize(
    "template",
    [
        "sh -c 'echo {db_url}'",
        "/bin/bash -lc 'sbatch --wrap \"srm train --db {db_url}\"'",
        "env bash -o pipefail -c 'srm train --job {job_id} --db {db_url}'",
        "busybox sh -c 'x={db_url}'",
    ],
)
def test_submit_args_refuse_the_store_url_inside_shell_code(template: str) -> None:
    """There a shell would run the URL's ;, $(...) or quotes as commands."""
    with pytest.raises(
        ConfigError,
        match=r"\{db_url\} is inside the code .* runs \(.*\), where a shell would run any ;, "
        r"\$\(\.\.\.\) or quote in the store URL as commands\. Use \"\$SRM_DB_URL\"",
    ):
        submit_args(template, job_id=3, db_url="sqlite:////x; rm -rf ~", kind="train")


def test_submit_args_let_a_shell_take_the_store_url_as_an_argument() -> None:
    """After the code, the URL is one argument ($1), never code; {job_id} in the code is a
    number, and {{db_url}} literal text."""
    url = "sqlite:////x; rm -rf ~"
    assert submit_args(
        "sh -c 'srm train --job {job_id} --db \"$1\" # {{db_url}}' sh {db_url}",
        job_id=3,
        db_url=url,
        kind="train",
    ) == ["sh", "-c", 'srm train --job 3 --db "$1" # {db_url}', "sh", url]


def test_srm_app_refuses_a_shell_submit_command_holding_the_store_url(monkeypatch) -> None:
    def never(*args):  # an srm that let the command through would start the app here
        raise AssertionError("srm app started")

    monkeypatch.setattr(os, "execvpe", never)
    result = CliRunner().invoke(main, ["app", "--submit-command", "sh -c 'echo {db_url}'"])
    assert result.exit_code == 2
    assert "{db_url} is inside the code sh runs ('echo {db_url}')" in result.output


def test_the_job_log_shows_the_exact_argv_that_ran(
    tmp_path: Path, sample_path: Path, fake_sbatch, monkeypatch
) -> None:
    """Word for word what the command got, shell syntax in the store's path included (not
    re-quoted: SQLAlchemy's rendering would write %3B for ;), and only a password masked."""
    script, record = fake_sbatch
    url = f"sqlite:///{tmp_path / 'team store; $(x)' / 'srm.db'}"
    sessions = make_sessionmaker(open_store(url))
    with sessions.begin() as s:
        import_pairs(s, "sample", load_pairs(sample_path)[:4])
    monkeypatch.setenv("SRM_SUBMIT_COMMAND", f"{script} --job-name 'srm {{job_id}}' {{db_url}}")
    [job_id] = queue(sessions, launcher="command")
    start(url, job_id)
    ran = [str(script), "--job-name", f"srm {job_id}", url]
    assert record.read_text(encoding="utf-8").splitlines()[:3] == ran[1:]
    log = log_tail(get_job(sessions, job_id))
    assert f"$ {shlex.join(ran)}\nargv: {json.dumps(ran)}\n" in log
    assert "%3B" not in log


def test_a_logged_url_masks_its_password_and_nothing_else() -> None:
    assert (
        shown_url("postgresql+psycopg://srm:p%40ss;w@db.example/srm test?x=1 2")
        == "postgresql+psycopg://srm:***@db.example/srm test?x=1 2"
    )
    assert shown_url("sqlite:////tmp/a b;$(x).db") == "sqlite:////tmp/a b;$(x).db"


def test_srm_app_refuses_a_bad_submit_command() -> None:
    result = CliRunner().invoke(main, ["app", "--submit-command", "sbatch {job}"])
    assert result.exit_code == 2
    assert (
        "Invalid value for '--submit-command': $SRM_SUBMIT_COMMAND: unknown placeholder {job} in "
        "'{job}'; use {job_id}, {db_url}, {kind}"
    ) in result.output


def test_a_job_for_a_bad_submit_command_is_failed_not_left_queued(
    sessions, store_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("SRM_SUBMIT_COMMAND", "sbatch --job-name srm-{id} run.sbatch")
    [job_id] = queue(sessions, launcher="command")
    with pytest.raises(ConfigError, match=r"unknown placeholder \{id\}"):
        start(store_url, job_id)
    job = get_job(sessions, job_id)
    assert job.status == "failed"
    assert job.error.startswith("$SRM_SUBMIT_COMMAND: unknown placeholder {id} in 'srm-{id}'")
