"""Jobs: long work as a process that records itself in the store (srm.jobs).

Real SQLite stores in tmp_path, the ``tiny`` backbone and a few steps; only
:func:`test_launch_runs_the_job_in_its_own_process` starts a process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

import srm.jobs as jobs
import srm.jobs.run
import srm.jobs.scoring
import srm.train
from srm import checkpoint
from srm.cli import main
from srm.config import ConfigError, ModelConfig
from srm.data import PreferencePair, load_pairs
from srm.jobs import (
    JobStateError,
    create_score_job,
    create_train_job,
    job_metrics,
    launch,
    list_jobs,
    log_tail,
    reap_dead_jobs,
    request_cancel,
    run_job,
    runs_dir,
)
from srm.model import SentenceRewardModel
from srm.store import (
    Model,
    Score,
    StoreError,
    TrainingJob,
    get_pair,
    import_pairs,
    make_sessionmaker,
    open_store,
    record_label,
    register_model,
    scored_pairs,
)
from srm.store.models import utcnow
from srm.train import TrainingError

#: A config that trains in about a second on a CPU.
TINY = {
    "model": {"backbone": "tiny", "d": 16, "max_length": 64},
    "max_steps": 2,
    "batch_size": 2,
    "finetune": "heads",
    "device": "cpu",
    "log_every": 1,
}
N_PAIRS = 8


@pytest.fixture(autouse=True)
def _runs_in_tmp_path(runs_in_tmp_path) -> None:
    """Every job test keeps its run directories in tmp_path."""


@pytest.fixture
def pairs(sample_path: Path) -> list[PreferencePair]:
    return load_pairs(sample_path)[:N_PAIRS]


@pytest.fixture
def sessions(db_url: str, pairs: list[PreferencePair]):
    """A store holding the first 8 sample pairs as dataset "sample"."""
    factory = make_sessionmaker(open_store(db_url))
    with factory.begin() as s:
        import_pairs(s, "sample", pairs)
    return factory


def new_train_job(sessions, **kwargs) -> int:
    kwargs = {"dataset": "sample", "config": TINY, **kwargs}
    with sessions.begin() as s:
        return create_train_job(s, **kwargs).id


def get_job(sessions, job_id: int) -> TrainingJob:
    with sessions() as s:
        return s.get(TrainingJob, job_id)


def count(sessions, entity) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(entity))


@pytest.fixture
def tiny_model_id(sessions, tmp_path: Path) -> int:
    """An untrained tiny model, saved and registered."""
    config = ModelConfig(backbone="tiny", d=16, max_length=64)
    model = SentenceRewardModel.create(config, seed=0)
    model.backbone.requires_grad_(False)
    path = checkpoint.save(model, tmp_path / "tiny-model")
    with sessions.begin() as s:
        return register_model(s, "tiny", str(path)).id


# ------------------------------------------------------------------------------ runs_dir
def test_runs_dir_sits_beside_a_sqlite_store(tmp_path: Path) -> None:
    path = runs_dir(f"sqlite:///{tmp_path / 'team' / 'store.db'}")
    assert path == tmp_path / "team" / "runs"
    assert path.is_dir()


def test_runs_dir_follows_srm_runs_dir_then_xdg(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert runs_dir("postgresql+psycopg://u@h/db") == tmp_path / "xdg" / "srm-studio" / "runs"
    monkeypatch.setenv("SRM_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs_dir(f"sqlite:///{tmp_path / 'store.db'}") == tmp_path / "elsewhere"


# ------------------------------------------------------------------------------ creating
def test_create_train_job_queues_the_full_config(sessions, db_url: str) -> None:
    job_id = new_train_job(sessions, parent_model_id=None, score_after=False)
    job = get_job(sessions, job_id)
    assert (job.kind, job.status, job.pid, job.progress) == ("train", "queued", None, 0.0)
    assert job.config["output_dir"] == str(runs_dir(db_url) / f"job-{job_id}")
    assert job.config["max_steps"] == 2
    assert job.config["lr"] == 2e-4  # defaults filled in: the job reproduces itself
    assert job.config["model"]["backbone"] == "tiny"
    assert (job.config["parent_model_id"], job.config["score_after"]) == (None, False)


@pytest.mark.parametrize(
    "config,field",
    [
        ({"lr": -1}, "lr"),
        ({"max_steps": "10"}, "max_steps"),
        ({"batch_size": True}, "batch_size"),
        ({"bogus": 1}, "bogus"),
        ({"model": {"head": "nope"}}, "head"),
        ({"model": {"d": 2.5}}, "model.d"),
        ({"model": "tiny"}, "model"),
        ({"output_dir": "runs/x"}, "output_dir"),
    ],
)
def test_create_train_job_names_a_bad_field_and_writes_nothing(sessions, config, field) -> None:
    with pytest.raises(ConfigError, match=field):
        new_train_job(sessions, config={**TINY, **config})
    assert count(sessions, TrainingJob) == 0


def test_create_jobs_refuse_unknown_datasets_and_models(sessions) -> None:
    with pytest.raises(StoreError, match="no dataset 'nope' in the store"):
        new_train_job(sessions, dataset="nope")
    with pytest.raises(StoreError, match="no model with id 99"):
        new_train_job(sessions, parent_model_id=99)
    with sessions.begin() as s, pytest.raises(StoreError, match="no model with id 99"):
        create_score_job(s, dataset="sample", model_id=99)
    assert count(sessions, TrainingJob) == 0


# ------------------------------------------------------------------------------ running
def test_train_job_trains_on_corrected_pairs_registers_and_scores(
    sessions, pairs, db_url: str, tiny_model_id: int, monkeypatch
) -> None:
    with sessions.begin() as s:
        for pair, action in [(pairs[0], "swap"), (pairs[1], "discard"), (pairs[2], "tie")]:
            pair_id = get_pair(s, "sample", pair.id).id
            record_label(s, pair_id, "ana", action, expected_event_id=None)
    seen = {}
    real_train = srm.train.train

    def spy(cfg, train_pairs, *args, **kwargs):
        seen["pairs"] = list(train_pairs)
        return real_train(cfg, train_pairs, *args, **kwargs)

    monkeypatch.setattr("srm.train.train", spy)
    job_id = new_train_job(sessions, parent_model_id=tiny_model_id)

    assert run_job(db_url, job_id) == "succeeded"

    assert seen["pairs"] == [pairs[0].swapped(), *pairs[3:]]  # the tie and discard stay out
    job = get_job(sessions, job_id)
    assert (job.status, job.progress, job.pid, job.host) == (
        "succeeded",
        1.0,
        os.getpid(),
        socket.gethostname(),
    )
    assert job.started_at is not None and job.finished_at is not None
    assert job.error is None
    with sessions() as s:
        model = s.get(Model, job.model_id)
        assert model.name == f"job {job_id}: sentence on tiny"
        assert model.parent_id == tiny_model_id
        assert model.metrics["pairs"] == N_PAIRS - 2
        assert model.metrics["steps"] == 2
        assert model.config["max_steps"] == 2
        checkpoint_dir = model.checkpoint_dir
        # Every pair is scored, as imported: discarded ones too.
        scored = s.scalar(select(func.count()).where(Score.model_id == job.model_id))
    assert checkpoint_dir == job.config["output_dir"]
    assert checkpoint.load(checkpoint_dir).config.backbone == "tiny"
    assert scored == N_PAIRS
    assert [row["step"] for row in job_metrics(job)] == [1, 2]
    assert "loss" in job_metrics(job)[0]


def test_a_failing_job_records_its_error_and_reraises(sessions, pairs, db_url: str) -> None:
    with sessions.begin() as s:
        for pair in pairs:
            pair_id = get_pair(s, "sample", pair.id).id
            record_label(s, pair_id, "ana", "discard", expected_event_id=None)
    job_id = new_train_job(sessions)
    with pytest.raises(TrainingError, match="nothing to train on"):
        run_job(db_url, job_id)
    job = get_job(sessions, job_id)
    assert (job.status, job.model_id) == ("failed", None)
    assert job.finished_at is not None
    message, tail = job.error.split("\n\n", 1)
    assert message == (
        "nothing to train on: give at least one preference pair or a step-labelled response"
    )
    assert tail.splitlines()[-1] == f"srm.train_state.TrainingError: {message}"
    assert job.message == message


def test_run_job_refuses_a_job_that_is_not_queued(sessions, db_url: str) -> None:
    job_id = new_train_job(sessions)
    with sessions.begin() as s:
        s.get(TrainingJob, job_id).status = "running"
    with pytest.raises(JobStateError, match=f"job {job_id} is running, not queued"):
        run_job(db_url, job_id)
    assert get_job(sessions, job_id).started_at is None  # untouched


def test_score_job_saves_one_score_per_pair(sessions, db_url: str, tiny_model_id: int) -> None:
    with sessions.begin() as s:
        job_id = create_score_job(s, dataset="sample", model_id=tiny_model_id).id
    assert run_job(db_url, job_id) == "succeeded"
    job = get_job(sessions, job_id)
    assert (job.kind, job.status, job.progress) == ("score", "succeeded", 1.0)
    assert (job.step, job.total) == (N_PAIRS, N_PAIRS)
    assert job.message == f"scored {N_PAIRS} pairs with model {tiny_model_id}"
    assert job_metrics(job) == []
    with sessions() as s:
        scores = s.scalars(select(Score).where(Score.model_id == tiny_model_id)).all()
    assert len(scores) == N_PAIRS
    assert len({score.pair_id for score in scores}) == N_PAIRS


# ------------------------------------------------------------------------------ cancelling
def test_cancel_while_training_leaves_a_checkpoint_and_no_model(
    sessions, db_url: str, monkeypatch
) -> None:
    monkeypatch.setattr(jobs.run, "PROGRESS_INTERVAL", 0.0)
    real_train = srm.train.train

    def cancel_after_first_step(cfg, pairs, *args, progress, **kwargs):
        def hook(step, total, metrics):
            if step == 1:  # what the app's Cancel button does, from another session
                with sessions.begin() as s:
                    request_cancel(s, job_id)
            progress(step, total, metrics)

        return real_train(cfg, pairs, *args, progress=hook, **kwargs)

    monkeypatch.setattr("srm.train.train", cancel_after_first_step)
    job_id = new_train_job(sessions, config={**TINY, "max_steps": 50})

    assert run_job(db_url, job_id) == "cancelled"

    job = get_job(sessions, job_id)
    assert (job.status, job.step, job.total, job.cancel_requested) == ("cancelled", 1, 50, True)
    assert job.finished_at is not None
    assert "resumable checkpoint" in job.message
    assert (Path(job.config["output_dir"]) / "checkpoints" / "step-000001").is_dir()
    assert job.model_id is None
    assert count(sessions, Model) == 0


def test_a_cancelled_score_job_keeps_the_chunks_it_saved(
    sessions, db_url: str, tiny_model_id: int, monkeypatch
) -> None:
    monkeypatch.setattr(jobs.run, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(jobs.scoring, "SCORE_CHUNK", 3)
    real_save = jobs.scoring.save_scores

    def save_then_cancel(session, model_id, dataset, records):
        stored = real_save(session, model_id, dataset, records)
        session.get(TrainingJob, job_id).cancel_requested = True
        return stored

    monkeypatch.setattr(jobs.scoring, "save_scores", save_then_cancel)
    with sessions.begin() as s:
        job_id = create_score_job(s, dataset="sample", model_id=tiny_model_id).id

    assert run_job(db_url, job_id) == "cancelled"

    job = get_job(sessions, job_id)
    assert job.message == f"cancelled after scoring 3/{N_PAIRS} pairs (saved)"
    assert count(sessions, Score) == 3


@pytest.fixture
def sigterm_guard():
    """SIGTERM raises here unless the code under test handles it (its default would end the
    test run); the handler the test run had is put back afterwards."""

    def unhandled(signum, frame):
        raise AssertionError("SIGTERM reached the default handler")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_stops_a_score_job_after_its_chunk(
    sessions, db_url: str, tiny_model_id: int, monkeypatch, sigterm_guard
) -> None:
    monkeypatch.setattr(jobs.scoring, "SCORE_CHUNK", 3)
    import srm.score

    real_score = srm.score.score_pairs

    def score_then_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the first chunk
        return real_score(*args, **kwargs)

    monkeypatch.setattr(srm.score, "score_pairs", score_then_sigterm)
    with sessions.begin() as s:
        job_id = create_score_job(s, dataset="sample", model_id=tiny_model_id).id

    result = CliRunner().invoke(main, ["score", "--job", str(job_id), "--db", db_url])

    assert result.exit_code == 143, result.output
    job = get_job(sessions, job_id)
    assert job.status == "cancelled"
    assert job.message == f"stopped by SIGTERM after scoring 3/{N_PAIRS} pairs (saved)"
    assert count(sessions, Score) == 3  # the chunk under way was finished and saved


def test_sigterm_stops_a_train_job_with_a_resumable_checkpoint(
    sessions, db_url: str, monkeypatch, sigterm_guard
) -> None:
    real_train = srm.train.train

    def sigterm_then_train(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_train(*args, **kwargs)

    monkeypatch.setattr("srm.train.train", sigterm_then_train)
    job_id = new_train_job(sessions, config={**TINY, "max_steps": 20})

    result = CliRunner().invoke(main, ["train", "--job", str(job_id), "--db", db_url])

    assert result.exit_code == 143, result.output
    job = get_job(sessions, job_id)
    assert job.status == "cancelled"
    assert job.message.startswith("stopped by SIGTERM at step 0/20; resumable checkpoint: ")
    assert checkpoint.read_info(job.message.rsplit(": ", 1)[1]).training["resumable"]
    assert job.model_id is None


def test_request_cancel_by_status(sessions, db_url: str) -> None:
    queued, running, done = (new_train_job(sessions) for _ in range(3))
    with sessions.begin() as s:
        s.get(TrainingJob, running).status = "running"
        s.get(TrainingJob, done).status = "succeeded"
    with sessions.begin() as s:
        assert request_cancel(s, queued).status == "cancelled"
        assert request_cancel(s, running).cancel_requested
        assert request_cancel(s, done).status == "succeeded"
        with pytest.raises(StoreError, match="no job with id 99"):
            request_cancel(s, 99)
    job = get_job(sessions, queued)
    assert job.finished_at is not None and not job.cancel_requested
    assert get_job(sessions, running).status == "running"
    assert not get_job(sessions, done).cancel_requested
    with pytest.raises(JobStateError, match="is cancelled, not queued"):
        run_job(db_url, queued)


# ------------------------------------------------------------------------------ watching
def test_reap_dead_jobs_fails_jobs_whose_process_is_gone(sessions) -> None:
    finished = subprocess.run([sys.executable, "-c", "pass"], check=True)
    del finished
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_pid = gone.pid
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    gone.wait()
    here = socket.gethostname()
    ids = {}
    with sessions.begin() as s:
        for name, status, pid, host in [
            ("gone", "running", gone_pid, here),
            ("zombie", "running", zombie.pid, here),
            ("launched", "queued", gone_pid, here),
            ("alive", "running", os.getpid(), here),
            ("elsewhere", "running", gone_pid, "another-host"),
            ("unlaunched", "queued", None, None),
            ("over", "succeeded", gone_pid, here),
        ]:
            job = TrainingJob(kind="train", status=status, pid=pid, host=host, config={})
            s.add(job)
            s.flush()
            ids[name] = job.id

    with sessions.begin() as s:
        reaped = reap_dead_jobs(s)

    assert sorted(reaped) == sorted([ids["gone"], ids["zombie"], ids["launched"]])
    job = get_job(sessions, ids["gone"])
    assert job.status == "failed" and job.finished_at is not None
    assert job.error == (
        f"the job's process (pid {gone_pid}) exited without reporting; see its log"
    )
    statuses = {name: get_job(sessions, i).status for name, i in ids.items()}
    assert statuses["alive"] == "running"
    assert statuses["elsewhere"] == "running"
    assert statuses["unlaunched"] == "queued"
    assert statuses["over"] == "succeeded"
    zombie.poll()  # let Popen know it was reaped


def add_running_job(sessions, *, heartbeat_age: float | None, host: str = "another-host") -> int:
    """A running job of a process on ``host`` that last beat ``heartbeat_age`` seconds ago
    (None: it never beat, as jobs started before heartbeats existed)."""
    beat = None if heartbeat_age is None else utcnow() - timedelta(seconds=heartbeat_age)
    with sessions.begin() as s:
        job = TrainingJob(
            kind="train", status="running", pid=4242, host=host, config={}, heartbeat_at=beat
        )
        s.add(job)
        s.flush()
        return job.id


def test_a_job_without_heartbeat_is_failed_by_whoever_lists_the_jobs(store_url: str) -> None:
    """``srm jobs`` on any machine fails a job whose process stopped beating, wherever it ran."""
    sessions = make_sessionmaker(open_store(store_url))
    silent = add_running_job(sessions, heartbeat_age=jobs.HEARTBEAT_TIMEOUT + 60)
    beating = add_running_job(sessions, heartbeat_age=1)
    older = add_running_job(sessions, heartbeat_age=None)  # no heartbeat to judge it by

    result = CliRunner().invoke(main, ["jobs", "--db", store_url])

    assert result.exit_code == 0, result.output
    statuses = {line.split()[0]: line.split()[2] for line in result.output.splitlines()[1:]}
    assert statuses == {str(silent): "failed", str(beating): "running", str(older): "running"}
    job = get_job(sessions, silent)
    assert job.finished_at is not None
    assert job.error.startswith(
        "no heartbeat from the job's process (pid 4242 on another-host) for over "
        f"{jobs.HEARTBEAT_TIMEOUT:.0f} s: it died or lost the store; see its log"
    )


def test_creating_a_job_fails_the_silent_ones_first(sessions) -> None:
    silent = add_running_job(sessions, heartbeat_age=jobs.HEARTBEAT_TIMEOUT + 60)
    new_train_job(sessions)
    assert get_job(sessions, silent).status == "failed"


def test_a_running_job_beats_even_between_progress_reports(
    sessions, db_url: str, monkeypatch
) -> None:
    monkeypatch.setattr(jobs.run, "HEARTBEAT_INTERVAL", 0.01)
    real_train = srm.train.train
    beats = []

    def slow_start(*args, **kwargs):  # a long phase that reports no progress
        deadline = time.monotonic() + 60
        while len(set(beats)) < 3 and time.monotonic() < deadline:
            beats.append(get_job(sessions, job_id).heartbeat_at)
            time.sleep(0.01)
        return real_train(*args, **kwargs)

    monkeypatch.setattr("srm.train.train", slow_start)
    job_id = new_train_job(sessions)
    assert run_job(db_url, job_id) == "succeeded"
    assert len(set(beats)) == 3 and None not in beats


def test_a_job_failed_for_silence_stops_and_stays_failed(
    sessions, db_url: str, monkeypatch
) -> None:
    """A process that comes back (a machine woken from sleep) finds its job failed: it stops
    at its next progress write and leaves the job as the reader recorded it."""
    monkeypatch.setattr(jobs.run, "PROGRESS_INTERVAL", 0.0)
    real_train = srm.train.train

    def failed_meanwhile(*args, **kwargs):
        with sessions.begin() as s:
            job = s.get(TrainingJob, job_id)
            job.status, job.error, job.message = "failed", "no heartbeat", "no heartbeat"
        return real_train(*args, **kwargs)

    monkeypatch.setattr("srm.train.train", failed_meanwhile)
    job_id = new_train_job(sessions, config={**TINY, "max_steps": 20})
    with pytest.raises(JobStateError, match=f"job {job_id} was marked failed while it ran"):
        run_job(db_url, job_id)
    job = get_job(sessions, job_id)
    assert (job.status, job.message, job.model_id) == ("failed", "no heartbeat", None)
    run = Path(job.config["output_dir"])
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000001"]  # stopped there
    assert not (run / "model").exists()


def test_reap_due_throttles_housekeeping_per_store() -> None:
    assert jobs.reap_due("sqlite:///a.db", interval=3600)
    assert not jobs.reap_due("sqlite:///a.db", interval=3600)
    assert jobs.reap_due("sqlite:///b.db", interval=3600)
    assert jobs.reap_due("sqlite:///a.db", interval=0)


def test_job_metrics_skips_a_half_written_last_line(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"step": 10, "loss": 0.69}) + "\n" + '{"step": 20, "lo', encoding="utf-8"
    )
    job = TrainingJob(id=1, kind="train", config={"output_dir": str(tmp_path)})
    assert job_metrics(job) == [{"step": 10, "loss": 0.69}]
    assert job_metrics(TrainingJob(kind="train", config={"output_dir": str(tmp_path / "x")})) == []


def test_log_tail_shows_the_last_lines_as_a_terminal_would(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text(
        "".join(f"line {i}\n" for i in range(50)) + "training:  10%\rtraining:  50%\r",
        encoding="utf-8",
    )
    job = TrainingJob(log_path=str(log))
    assert log_tail(job, lines=3) == "line 48\nline 49\ntraining:  50%"
    assert log_tail(TrainingJob(log_path=None)) == ""
    assert log_tail(TrainingJob(log_path=str(tmp_path / "missing.log"))) == ""


def test_list_jobs_newest_first_readable_after_the_session(sessions, tiny_model_id) -> None:
    first = new_train_job(sessions)
    with sessions.begin() as s:
        second = create_score_job(s, dataset="sample", model_id=tiny_model_id).id
    with sessions() as s:
        listed = list_jobs(s)
    assert [job.id for job in listed] == [second, first]
    assert listed[0].dataset.name == "sample"
    assert listed[0].model.name == "tiny"
    assert listed[1].model is None
    with sessions() as s:
        assert [job.id for job in list_jobs(s, limit=1)] == [second]


# ------------------------------------------------------------------------------ both backends
def test_job_life_cycle_on_either_backend(store_url: str, pairs, monkeypatch) -> None:
    """Create, run (train, register, score), cancel and reap on SQLite and PostgreSQL."""
    sessions = make_sessionmaker(open_store(store_url))
    with sessions.begin() as s:
        import_pairs(s, "sample", pairs)
    job_id = new_train_job(sessions)
    assert run_job(store_url, job_id) == "succeeded"
    job = get_job(sessions, job_id)
    assert (job.status, job.progress) == ("succeeded", 1.0)
    assert count(sessions, Score) == N_PAIRS

    monkeypatch.setattr(jobs.run, "PROGRESS_INTERVAL", 0.0)
    real_train = srm.train.train

    def cancel_at_once(cfg, train_pairs, *args, progress, **kwargs):
        with sessions.begin() as s:
            request_cancel(s, second)
        return real_train(cfg, train_pairs, *args, progress=progress, **kwargs)

    monkeypatch.setattr("srm.train.train", cancel_at_once)
    second = new_train_job(sessions, config={**TINY, "max_steps": 20})
    assert run_job(store_url, second) == "cancelled"
    assert get_job(sessions, second).step == 1

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with sessions.begin() as s:
        third = TrainingJob(status="running", pid=gone.pid, host=socket.gethostname())
        s.add(third)
        s.flush()
        third_id = third.id
    with sessions.begin() as s:
        assert reap_dead_jobs(s) == [third_id]
    with sessions() as s:
        assert [j.status for j in list_jobs(s)] == ["failed", "cancelled", "succeeded"]


# ------------------------------------------------------------------------------ launching
def test_launch_runs_the_job_in_its_own_process(sessions, db_url: str) -> None:
    job_id = new_train_job(sessions)
    pid = launch(db_url, job_id)
    with pytest.raises(JobStateError, match="launched already"):
        launch(db_url, job_id)

    deadline = time.monotonic() + 120
    while (job := get_job(sessions, job_id)).status in ("queued", "running"):
        assert time.monotonic() < deadline, log_tail(job)
        time.sleep(0.5)

    assert job.status == "succeeded", f"{job.error}\n{log_tail(job)}"
    assert (job.pid, job.host) == (pid, socket.gethostname())
    assert job.log_path == str(Path(job.config["output_dir"]) / "job.log")
    assert Path(job.log_path).is_file()
    assert f"Job {job_id} succeeded" in log_tail(job)
    assert job.model_id is not None
    assert count(sessions, Score) == N_PAIRS
    with pytest.raises(JobStateError, match="is succeeded, not queued"):
        launch(db_url, job_id)
    with sessions.begin() as s:
        assert reap_dead_jobs(s) == []  # finished jobs are not candidates; the child is reaped


# ------------------------------------------------------------------- local score job limit
def test_local_score_jobs_are_capped_with_a_message_that_says_what_to_do(
    sessions, tiny_model_id: int, monkeypatch
) -> None:
    """Every upload's import starts a local score job: once, nothing bounded how many ran."""
    monkeypatch.delenv(jobs.scoring.MAX_LOCAL_SCORE_JOBS_ENV, raising=False)
    with sessions.begin() as s:
        first = create_score_job(s, dataset="sample", model_id=tiny_model_id).id
        create_score_job(s, dataset="sample", model_id=tiny_model_id)
    with sessions.begin() as s, pytest.raises(jobs.JobLimitError) as refused:
        create_score_job(s, dataset="sample", model_id=tiny_model_id)
    assert str(refused.value) == (
        "this machine already has 2 scoring job(s) queued or running, its limit "
        "($SRM_MAX_LOCAL_SCORE_JOBS = 2): wait for one to finish (the Train page lists them), "
        "then score the dataset from the Train page, or run it on a worker"
    )
    with sessions.begin() as s:  # a worker's job does not run here
        create_score_job(s, dataset="sample", model_id=tiny_model_id, launcher="worker")
    with sessions.begin() as s:  # a finished job makes room
        s.get(TrainingJob, first).status = "succeeded"
    with sessions.begin() as s:
        create_score_job(s, dataset="sample", model_id=tiny_model_id)
    monkeypatch.setenv(jobs.scoring.MAX_LOCAL_SCORE_JOBS_ENV, "3")
    with sessions.begin() as s:
        create_score_job(s, dataset="sample", model_id=tiny_model_id)
    monkeypatch.setenv(jobs.scoring.MAX_LOCAL_SCORE_JOBS_ENV, "zero")
    with sessions.begin() as s, pytest.raises(ConfigError, match="use a whole number, 1 or more"):
        create_score_job(s, dataset="sample", model_id=tiny_model_id)


def test_retraining_continues_the_parent_model(sessions, db_url: str) -> None:
    """A 2-step run that continues the active model scores the sample closer to it (mean
    |change of margin|) than a 2-step run from the backbone, and keeps its architecture."""
    active_job = new_train_job(sessions, config=TINY | {"max_steps": 40, "lr": 5e-3})
    assert run_job(db_url, active_job) == "succeeded"
    active = get_job(sessions, active_job).model_id
    short = TINY | {"max_steps": 2, "model": {"backbone": "tiny", "d": 8, "max_length": 48}}
    continued_job = new_train_job(
        sessions, config=short, parent_model_id=active, continue_parent=True
    )
    fresh_job = new_train_job(sessions, config=TINY, parent_model_id=active)
    for job_id in (continued_job, fresh_job):
        assert run_job(db_url, job_id) == "succeeded"
    continued = get_job(sessions, continued_job)
    assert continued.config["init_from"] == checkpoint_dir(sessions, active)
    assert continued.config["model"]["d"] == 16  # the parent's size, not the form's 8
    assert continued.config["model"]["max_length"] == 48  # an input setting: the form's

    def margins(model_id: int) -> dict[int, float]:
        with sessions() as s:
            return {
                p.pair_id: p.chosen_score - p.rejected_score
                for p in scored_pairs(s, "sample", model_id)
            }

    base = margins(active)

    def drift(model_id: int) -> float:
        other = margins(model_id)
        return sum(abs(other[p] - base[p]) for p in base) / len(base)

    assert len(base) == N_PAIRS
    assert drift(continued.model_id) < drift(get_job(sessions, fresh_job).model_id)
    with sessions.begin() as s, pytest.raises(StoreError, match="continue_parent: name the"):
        create_train_job(s, dataset="sample", config=TINY, continue_parent=True)


def checkpoint_dir(sessions, model_id: int) -> str:
    with sessions() as s:
        return s.get(Model, model_id).checkpoint_dir


# ------------------------------------------------------------------------------ resuming
def test_a_cancelled_train_job_resumes_as_a_new_job_where_it_stopped(
    sessions, db_url: str, monkeypatch
) -> None:
    """The resumed job continues the stopped run (same directory, from its checkpoint) and
    ends where an uninterrupted run ends; the stopped job stays cancelled, resumed once."""
    monkeypatch.setattr(jobs.run, "PROGRESS_INTERVAL", 0.0)
    real_train = srm.train.train
    config = TINY | {"max_steps": 4, "score_after": True}

    def cancel_at_step_two(cfg, pairs, *args, progress, **kwargs):
        def hook(step, total, metrics):
            if step == 2 and kwargs.get("resume_from") is None:
                with sessions.begin() as s:
                    request_cancel(s, stopped)
            progress(step, total, metrics)

        return real_train(cfg, pairs, *args, progress=hook, **kwargs)

    monkeypatch.setattr("srm.train.train", cancel_at_step_two)
    stopped = new_train_job(sessions, config=config)
    assert run_job(db_url, stopped) == "cancelled"
    with sessions.begin() as s:
        resumed = jobs.resume_train_job(s, stopped).id
    job = get_job(sessions, resumed)
    run_dir = get_job(sessions, stopped).config["output_dir"]
    assert job.config["output_dir"] == run_dir
    assert job.config["resume_from"] == str(Path(run_dir) / "checkpoints" / "step-000002")
    assert (job.config["resumes_job"], job.status, job.kind) == (stopped, "queued", "train")

    assert run_job(db_url, resumed) == "succeeded"
    whole = new_train_job(sessions, config=config)
    assert run_job(db_url, whole) == "succeeded"
    job = get_job(sessions, resumed)
    assert job.message.startswith(f"model {job.model_id}: 4 steps on {N_PAIRS} pairs")
    assert [m["step"] for m in job_metrics(job) if "loss" in m] == [1, 2, 3, 4]
    assert get_job(sessions, stopped).status == "cancelled"

    def margins(job_id: int) -> list[float]:
        with sessions() as s:
            found = scored_pairs(s, "sample", get_job(sessions, job_id).model_id)
            return [p.chosen_score - p.rejected_score for p in found]

    assert len(margins(resumed)) == N_PAIRS
    assert margins(resumed) == pytest.approx(margins(whole), abs=1e-5)
    with sessions.begin() as s:
        with pytest.raises(StoreError, match=f"was resumed by job {resumed}; resume that"):
            jobs.resume_train_job(s, stopped)
        with pytest.raises(StoreError, match=f"job {resumed} is succeeded; only a cancelled"):
            jobs.resume_train_job(s, resumed)


def test_a_job_cancelled_before_its_first_checkpoint_does_not_resume(sessions) -> None:
    job_id = new_train_job(sessions)
    with sessions.begin() as s:
        request_cancel(s, job_id)
        assert jobs.resume_point(s, s.get(TrainingJob, job_id)) == (
            f"job {job_id} stopped before its first checkpoint; start a new job instead"
        )
        with pytest.raises(StoreError, match="no job with id 99"):
            jobs.resume_train_job(s, 99)
