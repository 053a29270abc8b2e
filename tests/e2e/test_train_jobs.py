"""Issue 25 in Chromium at 1280x720: a job started from the Train page shows its progress bar
without scrolling, and a cancelled job resumes from the page.

Runs its own `make app` (the module's `app` fixture); the job trains the random `tiny`
backbone from the backbone, set through the URL the form keeps its values in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from srm import store
from srm.jobs import request_cancel
from tests.e2e.conftest import App
from tests.e2e.test_app import open_page, sessions

pytestmark = pytest.mark.e2e

#: A long run of the tiny backbone (it is cancelled long before the end), set by the URL.
FORM = "train?start_from=the+backbone&backbone=tiny&steps=5000&device=cpu&score_after=0"


@pytest.fixture
def small_page(browser: Browser) -> Iterator[Page]:
    """A tab at 1280x720, the size the issue names."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def train_jobs(app: App) -> list[store.TrainingJob]:
    with sessions(app)() as session:
        rows = list(
            session.scalars(
                select(store.TrainingJob)
                .where(store.TrainingJob.kind == "train")
                .order_by(store.TrainingJob.id)
            )
        )
        session.expunge_all()
        return rows


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.5)


def test_a_started_job_shows_its_progress_then_resumes_after_a_cancel(
    app: App, small_page: Page
) -> None:
    page = small_page
    open_page(page, app, FORM)
    expect(page.get_by_role("radio", name="the backbone")).to_be_checked()
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Started training job")).to_be_visible()
    [job] = train_jobs(app)
    assert job.config["model"]["backbone"] == "tiny" and job.config["max_steps"] == 5000
    bar = page.locator(f".st-key-train-running-{job.id}").get_by_test_id("stProgress")
    expect(bar).to_be_in_viewport()
    expect(page.get_by_text("step ", exact=False).first).to_be_visible(timeout=120_000)

    # Cancel once a step is done (a checkpoint to resume from), then resume from the page.
    wait_for(lambda: train_jobs(app)[0].step >= 1, "the first step")
    page.locator(f".st-key-train-running-{job.id}").get_by_role("button", name="Cancel").click()
    wait_for(lambda: train_jobs(app)[0].status == "cancelled", "the cancel")
    assert "resumable checkpoint" in train_jobs(app)[0].message
    # A click that lands while the page reruns (its jobs list refreshes every 2 s) can be lost:
    # click again until the store holds the resumed job (a second click after it is refused:
    # a job is resumed once).
    deadline = time.monotonic() + 90
    while len(train_jobs(app)) < 2:
        assert time.monotonic() < deadline, "waited 90 s for the resumed job"
        resume = page.get_by_role("button", name="Resume")
        resume.scroll_into_view_if_needed()
        resume.click()
        for _ in range(20):
            if len(train_jobs(app)) == 2:
                break
            time.sleep(0.5)
    expect(page.get_by_text(f"Resumed job {job.id} as job ").first).to_be_visible(timeout=60_000)
    stopped, resumed = train_jobs(app)
    try:
        assert (stopped.status, resumed.config["resumes_job"]) == ("cancelled", job.id)
        assert resumed.config["resume_from"].startswith(stopped.config["output_dir"])
        bar = page.locator(f".st-key-train-running-{resumed.id}").get_by_test_id("stProgress")
        expect(bar).to_be_in_viewport()
        # It goes on from the checkpoint's step, not from the start.
        wait_for(lambda: train_jobs(app)[1].step > stopped.step, "the resumed job's next step")
    finally:
        with sessions(app).begin() as session:  # free the CPU for the other tests
            request_cancel(session, resumed.id)
