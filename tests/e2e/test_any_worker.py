"""The Train page queues a job for "any worker", and an `srm worker` running beside the app (as
it would on a GPU machine) claims it and runs it to the end, in Chromium.

The app runs as `make app` runs it (conftest `serve()`); the worker is a real `srm worker`
process on the same store, so nothing on the app's side starts the job.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from srm import store
from tests.e2e.conftest import App, serve
from tests.e2e.test_app import TRAIN_JOB, choose, grid_row, open_page

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-e2e")


@pytest.fixture(scope="module")
def studio(workdir: Path) -> Iterator[App]:
    """The app on an empty store (it imports the bundled sample), jobs writing their runs to a
    models directory of its own, as a shared one would be."""
    models = str(workdir / "models")
    with serve(workdir / "app.db", workdir / "make-app.log", SRM_MODELS_DIR=models) as app:
        yield app


@pytest.fixture(scope="module")
def worker(studio: App, workdir: Path) -> Iterator[Path]:
    """`srm worker` on the app's store, stopped with SIGTERM afterwards; its output file."""
    out = workdir / "worker.log"
    env = dict(os.environ) | {"SRM_MODELS_DIR": str(workdir / "models"), "HF_HUB_OFFLINE": "1"}
    with out.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "srm.cli", "worker", "--db", studio.db_url, "--poll", "0.5"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    yield out
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=60) == 0, out.read_text()
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_a_job_for_any_worker_runs_on_the_worker(studio: App, worker: Path, page: Page) -> None:
    open_page(page, studio, "train")
    expect(page.get_by_role("heading", name="Retrain on the corrected labels")).to_be_visible()
    choose(page, "Dataset", "sample")
    page.get_by_text("the backbone", exact=True).click()  # not the active model: a tiny one
    choose(page, "Backbone", "tiny")
    page.get_by_role("spinbutton", name="Steps").fill("3")
    form = page.get_by_test_id("stForm")  # the scoring expander has a "Run on" of its own
    form.get_by_test_id("stRadio").get_by_text("any worker", exact=True).click()
    page.get_by_role("button", name="Start training").click()
    queued = page.get_by_text(re.compile(r"^Queued training job \d+ for any worker\.$"))
    expect(queued).to_be_visible()
    job_id = int(re.search(r"\d+", queued.inner_text()).group())

    expect(page.get_by_text(f"Job {job_id} succeeded.", exact=True)).to_be_visible(
        timeout=TRAIN_JOB
    )
    engine = store.open_store(studio.db_url)
    with store.make_sessionmaker(engine)() as session:
        job = session.get(store.TrainingJob, job_id)
        assert (job.status, job.launcher) == ("succeeded", "worker"), job.error
        assert job.claimed_by.startswith(f"{socket.gethostname()}:")
        assert job.config["max_steps"] == 3
        assert job.model_id is not None
    engine.dispose()
    expect(grid_row(page, str(job_id), "train", "succeeded", socket.gethostname())).to_have_count(1)
    # The worker writes its line once the job's process has exited, after the store says so.
    deadline = time.monotonic() + 60
    while f"job {job_id} succeeded (exit 0)" not in (log := worker.read_text(encoding="utf-8")):
        assert time.monotonic() < deadline, log
        time.sleep(0.5)
    assert f"claimed job {job_id} (train, dataset sample)" in log
