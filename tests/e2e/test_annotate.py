"""The Annotate page in Chromium at 1440×900, as the annotator of issue 15 used it: the pair's
text is on the first screen, the note hands the keyboard back on Esc, the name survives a new
tab, and a sentence tag reaches the audit trail and the text.

The app runs as `make app` runs it (conftest `serve()`), on a fresh store holding the bundled
sample, scoring with the bundled default model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from srm import store
from srm.data import load_pairs
from srm.segment import segment
from tests.e2e.conftest import REPO_ROOT, App, serve

pytestmark = pytest.mark.e2e
MODEL_LOAD = 120_000  # ms: the first page that scores loads torch and the model
VIEWPORT = {"width": 1440, "height": 900}
SAMPLE = {p.id: p for p in load_pairs(REPO_ROOT / "data" / "sample_50.jsonl")}


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    workdir = tmp_path_factory.mktemp("annotate-e2e")
    with serve(workdir / "app.db", workdir / "make-app.log") as app:
        yield app


@pytest.fixture
def context(page: Page) -> BrowserContext:
    """The test's browser (its own cookies, from conftest's `page`, which keeps a failing
    test's first tab in artifacts/) at the size the issue was found at."""
    page.set_viewport_size(VIEWPORT)
    return page.context


def open_annotate(context: BrowserContext, app: App, query: str = "") -> Page:
    """The Annotate page in the context's first tab, or in a new tab once that one is used."""
    page = context.pages[0]
    if page.url != "about:blank":
        page = context.new_page()
        page.set_viewport_size(VIEWPORT)
    page.goto(f"{app.url}/annotate{query}")
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible(timeout=60_000)
    return page


def shown_pair(page: Page) -> str:
    """The pair in the action bar's heading, once its responses are drawn (word joiners that
    the escaping adds are dropped)."""
    expect(page.locator(".srm-response .srm-sentence").first).to_be_visible(timeout=MODEL_LOAD)
    expect(page.locator("[data-stale='true']")).to_have_count(0)
    heading = page.locator(".st-key-annotate-bar h3")
    return heading.inner_text().removeprefix("Pair ").replace("\u2060", "").strip()


def events(app: App, pair_id: str) -> list[tuple[str, str, str | None]]:
    with store.make_sessionmaker(store.open_store(app.db_url))() as session:
        pair = store.get_pair(session, "sample", pair_id)
        return [(e.annotator.name, e.action, e.note) for e in store.label_history(session, pair.id)]


def test_the_first_sentence_is_on_the_first_screen(studio: App, context: BrowserContext) -> None:
    page = open_annotate(context, studio, "?annotator=fold-reader")
    pair_id = shown_pair(page)
    first = segment(SAMPLE[pair_id].chosen)[0].text
    sentence = page.locator(".srm-response").first.locator("[data-sentence='1']")
    expect(sentence).to_have_text(first)
    assert page.get_by_test_id("stMain").evaluate("main => main.scrollTop") == 0
    box = sentence.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], box
    # The actions stay on screen when the page scrolls to the trail.
    page.get_by_test_id("stMain").evaluate("main => main.scrollTo(0, main.scrollHeight)")
    expect(page.get_by_role("button", name=re.compile(r"^Swap"))).to_be_in_viewport()


def test_esc_leaves_the_note_and_s_swaps(studio: App, context: BrowserContext) -> None:
    page = open_annotate(context, studio, "?annotator=note-taker")
    pair_id = shown_pair(page)
    # The page's small key script has loaded (it does so as the page first draws).
    page.wait_for_function("() => (window.__srmBlurKeys || {})['annotate-note'] === true")
    note = page.get_by_placeholder(re.compile(r"^Note \(optional"))
    note.click()
    note.press_sequentially("needs a source")
    note.press("Escape")
    expect(note).not_to_be_focused()
    # Leaving the field sends the note with a rerun; a key pressed while that rerun is drawn
    # can be lost in Streamlit (about 1 in 8 quick tries on a busy machine), so the test waits
    # for the page to say it has the note, as an annotator would see it.
    expect(page.get_by_text("The note goes with your next action.")).to_be_visible()
    page.keyboard.press("s")
    expect(page.get_by_text(re.compile(r"1 of 50 pairs labelled"))).to_be_visible()
    assert events(studio, pair_id) == [("note-taker", "swap", "needs a source")]
    expect(note).to_have_value("")  # the note went with the swap, and no "s" was typed into it


def test_the_name_survives_a_new_tab(studio: App, context: BrowserContext) -> None:
    first = open_annotate(context, studio)
    name = first.get_by_role("textbox", name="Annotator")
    name.fill("tab-opener")
    name.press("Enter")
    shown_pair(first)
    expect(first).to_have_url(re.compile(r"annotator=tab-opener"))
    # A bookmark without the URL parameter, in a new tab of the same browser.
    second = open_annotate(context, studio)
    expect(second.get_by_role("textbox", name="Annotator")).to_have_value("tab-opener")
    shown_pair(second)
    expect(second.get_by_text("Type your name in the sidebar")).to_have_count(0)
    expect(second).to_have_url(re.compile(r"annotator=tab-opener"))


def test_a_tag_reaches_the_trail_and_the_text(studio: App, context: BrowserContext) -> None:
    page = open_annotate(context, studio, "?annotator=tagger")
    pair_id = shown_pair(page)
    page.get_by_text("Tag sentences").first.click()
    page.get_by_role("radio", name="bad").first.click()
    trail = page.get_by_test_id("stDataFrame").locator("tr").filter(has_text="tag bad")
    expect(trail.filter(has_text="tagger")).to_have_count(1)
    marked = page.locator(".srm-response").first.locator("[data-sentence='1'][data-tag='bad']")
    expect(marked).to_have_attribute("title", re.compile(r"tagged: tagger bad"))
    expect(page.locator(".srm-response").first.locator(".srm-tag-label")).to_have_text("bad")
    with store.make_sessionmaker(store.open_store(studio.db_url))() as session:
        pair = store.get_pair(session, "sample", pair_id)
        assert [(t.annotator.name, t.side, t.tag) for t in store.tag_history(session, pair.id)] == [
            ("tagger", "chosen", "bad")
        ]
