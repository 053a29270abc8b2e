"""The researcher's and the presenter's screens at 1280×720, in Chromium through `make app`:
Inspect shows the responses on its first screen and draws the sentence × sentence attention
when asked; the demo shows no server path, no "None" and no red-team example.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from srm.data import load_pairs
from srm.data.content import harmful_source
from tests.e2e.conftest import App
from tests.e2e.test_app import MODEL_LOAD, SAMPLE, expect_responses, open_page

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 1280, 720
#: A helpful-base pair whose responses are a few short sentences.
PAIR = next(p for p in load_pairs(SAMPLE) if p.source == "hh-rlhf/helpful-base")


@pytest.fixture
def small(browser: Browser) -> Iterator[Page]:
    """A 1280×720 window: a laptop with the browser's bars, the screen a talk is given on."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def test_inspect_shows_the_first_sentence_without_scrolling(app: App, small: Page) -> None:
    open_page(small, app, f"inspect?dataset=sample&pair={quote(PAIR.id)}")
    expect_responses(small, PAIR.chosen.split(".")[0])
    for side in range(2):  # chosen, then rejected
        first = small.locator(".srm-response").nth(side).locator("[data-sentence='1']").first
        box = first.bounding_box()
        assert box is not None
        assert 0 <= box["y"] and box["y"] + min(box["height"], 24) <= HEIGHT, box


def test_inspect_draws_the_attention_heatmap_on_demand(app: App, small: Page) -> None:
    open_page(small, app, f"inspect?dataset=sample&pair={quote(PAIR.id)}")
    expect_responses(small, PAIR.chosen.split(".")[0])
    maps = small.locator(".js-plotly-plot").filter(has_text="sentence (reads)")
    expect(maps).to_have_count(0)  # nothing computed until asked
    toggle = small.get_by_text("Show the attention maps")
    expect(toggle).to_be_visible(timeout=MODEL_LOAD)  # below the scored responses' numbers
    toggle.click()
    expect(maps).to_have_count(2, timeout=MODEL_LOAD)  # chosen and rejected
    expect(maps.first.locator(".heatmaplayer")).to_be_attached()
    small.get_by_role("combobox", name="Layer").click()
    small.get_by_role("option", name="layer 1", exact=True).click()
    expect(maps).to_have_count(2)


def test_the_demo_shows_no_path_no_none_and_no_red_team_pair(demo_app: App, small: Page) -> None:
    red_team = [p for p in load_pairs(SAMPLE) if harmful_source(p.source)]
    assert red_team  # the sample holds HH-RLHF's harmless-base (red-team) pairs
    open_page(small, demo_app)
    pills = small.get_by_role("radio", name=re.compile(r"^Example \d+$"))
    expect(pills.first).to_be_visible(timeout=MODEL_LOAD)
    for i in range(pills.count()):
        pills.nth(i).click()
        expect(small.locator(".srm-caption")).to_be_visible(timeout=MODEL_LOAD)
        expect(small.locator("[data-stale='true']")).to_have_count(0)
        text = " ".join(small.locator("body").inner_text().split())  # the sidebar too
        assert not re.search(r"\bNone\b", text), text
        assert not re.search(r"(^|\s)(/|~/|\./)\w+/", text), text  # no server path
        assert f"Example {i + 1}" in text
        for pair in red_team:
            assert " ".join(pair.chosen.split())[:60] not in text, pair.id
    # A click on the example shown keeps it shown.
    shown = small.locator(".srm-caption").inner_text()
    pills.nth(pills.count() - 1).click()
    expect(small.locator("[data-stale='true']")).to_have_count(0)
    assert small.locator(".srm-caption").inner_text() == shown
