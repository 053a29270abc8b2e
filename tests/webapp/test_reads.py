"""A read never writes: what the pages poll and read (the active model, the job list) issues
no INSERT, UPDATE or DELETE and takes no write lock; housekeeping runs at app start, where
work is created, or on a throttle."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, event

from srm.store import (
    TrainingJob,
    get_active_model,
    list_models,
    make_sessionmaker,
    open_store,
)
from srm.store.models import utcnow
from webapp import services

#: Statements that write, or take the write lock a writer needs (SQLite's BEGIN IMMEDIATE,
#: PostgreSQL's row locks).
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|BEGIN IMMEDIATE)\b|\bFOR UPDATE\b", re.IGNORECASE)


@contextmanager
def writes(engine: Engine) -> Iterator[list[str]]:
    """The writing statements ``engine`` runs inside the ``with`` block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if WRITE.search(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def add_job(url: str, status: str, *, silent_for: timedelta = timedelta(0)) -> int:
    """A job row as a job's process leaves it, last heard of ``silent_for`` ago."""
    with make_sessionmaker(open_store(url)).begin() as s:
        job = TrainingJob(
            kind="score",
            status=status,
            config={},
            host="another-host",
            pid=4242,
            heartbeat_at=utcnow() - silent_for,
        )
        s.add(job)
        s.flush()
        return job.id


def test_reading_the_active_model_writes_nothing(app_store: str, tiny_model: Path) -> None:
    url = services.store_url()
    with writes(services.engine(url)) as seen:
        assert services.active_model(url) is None  # the app has not registered its model yet
        assert services.active_model(url) is None
    assert seen == []
    services.register_default_model(url)  # what the app's entry script does at start
    with writes(services.engine(url)) as seen:
        model = services.active_model(url)
        services.register_default_model(url)  # every later run: a read, nothing to do
    assert seen == []
    assert model is not None and model.path == str(tiny_model.resolve())
    with make_sessionmaker(open_store(url))() as s:
        assert [m.id for m in list_models(s)] == [get_active_model(s).id] == [model.id]


def test_the_app_registers_its_default_model_at_start(app_store: str, run_page) -> None:
    run_page("models")
    with make_sessionmaker(open_store(app_store))() as s:
        assert get_active_model(s) is not None


def test_demo_mode_uses_the_default_model_without_registering_it(
    app_store: str, monkeypatch
) -> None:
    monkeypatch.setenv("SRM_DEMO", "1")
    url = services.store_url()
    with writes(services.engine(url)) as seen:
        services.register_default_model(url)
        model = services.active_model(url)
    assert seen == [] and model is not None and model.id is None


def test_polling_the_jobs_takes_no_write_lock(app_store: str) -> None:
    url = services.store_url()
    done = add_job(url, "succeeded")
    with writes(services.engine(url)) as seen:
        for _ in range(3):  # the Train page's polls
            assert [(j.id, j.status) for j in services.jobs(url)] == [(done, "succeeded")]
    assert seen == []


def test_dead_jobs_are_reaped_at_most_once_per_interval(app_store: str, monkeypatch) -> None:
    monkeypatch.setattr("srm.jobs.REAP_INTERVAL", 3600.0)  # no second reap within this test
    url = services.store_url()
    dead = add_job(url, "running", silent_for=timedelta(hours=1))
    with writes(services.engine(url)) as seen:
        assert [(j.id, j.status) for j in services.jobs(url)] == [(dead, "failed")]
    assert seen  # the first poll that finds an unfinished job reaps
    later = add_job(url, "running", silent_for=timedelta(hours=1))
    with writes(services.engine(url)) as seen:
        for _ in range(3):
            statuses = {j.id: j.status for j in services.jobs(url)}
            assert statuses == {later: "running", dead: "failed"}
    assert seen == []  # the polls in between only read; creating a job reaps too
