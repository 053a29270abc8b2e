"""What issue 15 found in Chromium on the Inspect and Train pages, checked there: a markdown
table and code are shown as such, and Enter in the Train form starts no job.

Runs its own `make app` (the module's `app` fixture), on the bundled sample and model.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from srm import store
from srm.segment import segment
from tests.e2e.conftest import App
from tests.e2e.test_app import expect_responses, open_page, sample_pair, sessions
from tests.e2e.test_app import settled_screenshot as screenshot

pytestmark = pytest.mark.e2e

TABLE_PAIR = "pandalm/test/0184"  # both responses are markdown tables


def jobs_in_store(app: App) -> int:
    with sessions(app)() as session:
        return session.scalar(select(func.count(store.TrainingJob.id)))


def test_a_markdown_table_is_shown_as_a_table_in_monospace(app: App, page: Page) -> None:
    pair = sample_pair(TABLE_PAIR)
    open_page(page, app, f"inspect?dataset=sample&pair={quote(TABLE_PAIR, safe='')}")
    expect_responses(page, "Derek Jeter")
    chosen = page.locator(".srm-response").first
    table = chosen.locator("pre.srm-table")
    expect(table).to_be_visible()
    assert "monospace" in table.evaluate("e => getComputedStyle(e).fontFamily")
    # The whole table is one sentence: one span, not a sentence per row.
    expect(chosen.locator("span[data-sentence]")).to_have_count(len(segment(pair.chosen)))
    assert len(segment(pair.chosen)) == 1
    # Rows stay on lines of their own, as in the response.
    assert table.inner_text().splitlines()[:2] == pair.chosen.splitlines()[:2]
    screenshot(page, "inspect-table")


def test_enter_in_the_steps_field_starts_no_job(app: App, page: Page) -> None:
    open_page(page, app, "train")
    expect(page.get_by_role("heading", name="Retrain on the corrected labels")).to_be_visible()
    before = jobs_in_store(app)
    steps = page.get_by_role("spinbutton", name="Steps")
    steps.fill("7")
    steps.press("Enter")
    # A rerun from a widget outside the form: once it has run, a submit sent by the Enter
    # (which would have reached the server first) would have run too.
    page.get_by_text("Audit labels (out of fold)").click()
    folds = page.get_by_role("spinbutton", name="Folds")
    folds.fill("3")
    folds.press("Enter")
    expect(page.get_by_text("3 models of", exact=False)).to_be_visible()
    expect(page.locator("[data-stale='true']")).to_have_count(0)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    expect(page.get_by_text("Started training job")).to_have_count(0)
    assert jobs_in_store(app) == before
