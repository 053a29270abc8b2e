"""`make app` for real, read in Chromium: the flow a person follows through SRM Studio.

Import a file, open a pair and read its sentence rewards, swap a label with a keyboard shortcut,
retrain on the correction, compare the models, and present the featured pairs in read-only demo
mode; untrusted text in a pair is shown as text, never run, and markdown planted in the data
or in a URL never turns into an image or a link. The tests share one server and one
store (see conftest.py) and run in file order: later tests use what earlier ones made (the
trained model, the featured pairs). Each page is saved to tests/e2e/artifacts/<page>.png; with
SRM_UPDATE_SCREENSHOTS=1 the Inspect and Annotate pages also go to docs/screenshots/, where the
README shows them.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import psutil
import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from srm import jobs, store
from srm.data import PreferencePair, load_pairs
from srm.segment import segment
from tests.e2e.conftest import (
    ARTIFACTS,
    REPO_ROOT,
    XSS_IMG,
    XSS_PAIRS,
    XSS_SCRIPT,
    App,
    free_port,
)

pytestmark = pytest.mark.e2e
T = TypeVar("T")

ANNOTATOR = "e2e-annotator"
# Prose on both sides, a few sentences each: the pair the Inspect screenshot in docs/ shows.
SHOWN_PAIR = "hh-rlhf/harmless-base/test/00755"
# A pair whose imported verdict is doubtful (the chosen answer is confused): the one swapped.
SWAPPED_PAIR = "hh-rlhf/helpful-rejection-sampled/test/00160"
DOCS_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
SAMPLE = REPO_ROOT / "data" / "sample_50.jsonl"
MODEL_LOAD = 120_000  # ms: the first page that scores loads torch and the model
TRAIN_JOB = 180_000  # ms: the job is a new process that imports torch, trains, then scores


# ------------------------------------------------------------------------------- helpers
def open_page(page: Page, app: App, path: str = "") -> None:
    page.goto(f"{app.url}/{path}")
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible(timeout=60_000)


def choose(page: Page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label` (a combobox with a listbox popup).

    A rerun that lands while the list is open can close it again, so the pick is retried.
    """
    box = page.get_by_role("combobox", name=label)
    for _ in range(3):
        box.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
    expect(box).to_have_value(option)


def grid_row(page: Page, *cells: str) -> Locator:
    """Rows of any st.dataframe holding every one of `cells` as a whole cell.

    The grid draws on a canvas; its cells are mirrored in an accessibility table (hidden, so
    located by CSS rather than by role), which is what this reads.
    """
    rows = page.get_by_test_id("stDataFrame").locator("tr")
    for text in cells:
        cell = page.locator("td", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))
        rows = rows.filter(has=cell)
    return rows


def metric(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label)


def action_bar(page: Page) -> Locator:
    """The Annotate page's action bar: the pair's heading, its facts line and the buttons."""
    return page.locator(".st-key-annotate-bar")


def matching(page: Page, n: int) -> Locator:
    """The Data page's count line; anchored, since "52 matching pairs" contains "2 matching"."""
    return page.get_by_text(re.compile(rf"^{n} matching pairs?\b"))


def settled_screenshot(page: Page, name: str, *, docs_until: Locator | None = None) -> None:
    """Save the whole page to artifacts/<name>.png once Streamlit has finished its run.

    Streamlit scrolls its main area inside the window, so Playwright's full_page sees only the
    viewport: the window is made as tall as the content for the shot instead. With
    SRM_UPDATE_SCREENSHOTS=1, the page down to `docs_until` also goes to docs/screenshots/.
    """
    expect(page.locator("[data-stale='true']")).to_have_count(0)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    viewport = page.viewport_size
    height = page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height, 600), 8000)})
    page.wait_for_timeout(500)  # plotly redraws on resize; nothing to wait on but time
    page.screenshot(path=ARTIFACTS / f"{name}.png")
    if docs_until is not None and os.environ.get("SRM_UPDATE_SCREENSHOTS") == "1":
        box = docs_until.bounding_box()
        clip = {"x": 0, "y": 0, "width": viewport["width"], "height": box["y"] + box["height"] + 12}
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=DOCS_SCREENSHOTS / f"{name}.png", clip=clip)
    page.set_viewport_size(viewport)


def expect_sentences_and_heatmap(page: Page) -> None:
    """The pair is scored: coloured sentence spans and the plotly heatmap are on the page."""
    expect(page.locator(".srm-response span[data-sentence]").first).to_be_visible(
        timeout=MODEL_LOAD
    )
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot .heatmaplayer").first).to_be_attached()


def expect_responses(page: Page, *texts: str) -> None:
    """Coloured responses holding each of `texts` are on the page, and the run has finished.

    Waiting on the pair's own text matters: after a rerun starts, the previous pair's spans
    stay on the page until they are replaced, and acting then would interrupt the scoring.
    """
    for text in texts:
        expect(page.locator(".srm-response").filter(has_text=text).first).to_be_visible(
            timeout=MODEL_LOAD
        )
    expect(page.locator("[data-stale='true']")).to_have_count(0)


def sample_pair(pair_id: str) -> PreferencePair:
    return next(p for p in load_pairs(SAMPLE) if p.id == pair_id)


def sessions(app: App) -> sessionmaker[Session]:
    return store.make_sessionmaker(store.open_store(app.db_url))


def newest(session: Session, table: type[T]) -> T | None:
    """The row of `table` added last."""
    return session.scalars(select(table).order_by(table.id.desc()).limit(1)).first()


def ensure_xss_dataset(app: App, xss_file: Path) -> None:
    """The XSS pairs in the store, whether or not the Data-page test imported them."""
    with sessions(app).begin() as session:
        store.import_pairs(session, "xss", load_pairs(xss_file), source_file=str(xss_file))


def open_listed(page: Page, app: App, path: str, pair_id: str) -> None:
    """Open `path`, which asks for pair `pair_id` of a dataset written straight into the store
    (not through the app): the app caches its reads for up to 10 s, so the page is opened
    again until it lists the pair, as a user's reload would."""
    deadline = time.monotonic() + 30
    while True:
        open_page(page, app, path)
        try:
            expect(page.get_by_role("combobox", name="Pair")).to_have_value(pair_id, timeout=5_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


# ------------------------------------------------------------------------------- the studio
def test_server_binds_loopback_only(app: App) -> None:
    listeners = [
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == app.port
    ]
    assert listeners, f"nothing listens on port {app.port}"
    assert set(listeners) == {"127.0.0.1"}, listeners


def test_data_page_lists_the_sample_and_imports_a_file_by_path(
    app: App, page: Page, xss_file: Path
) -> None:
    assert "Imported 50 new pairs into dataset 'sample'" in app.log.read_text()
    open_page(page, app)
    expect(page.get_by_role("heading", name="Preference data")).to_be_visible()
    expect(matching(page, 50)).to_be_visible()
    expect(grid_row(page, "hh-rlhf/harmless-base/test/01944", "sample")).to_have_count(1)

    page.get_by_text("Import pairs").click()
    page.get_by_role("textbox", name="Dataset name").fill("xss")
    page.get_by_role("tab", name="Path on the server").click()
    page.get_by_role("textbox", name="Path", exact=True).fill(str(xss_file))
    page.get_by_role("textbox", name="Path", exact=True).press("Enter")
    page.get_by_role("button", name="Import path").click()
    expect(page.get_by_text(re.compile(r"Imported \d+ new pairs into dataset xss"))).to_be_visible()
    # The new dataset is in the filters and its pairs are counted (the caches were cleared).
    expect(matching(page, 50 + len(XSS_PAIRS))).to_be_visible()
    choose(page, "Dataset", "xss")
    expect(matching(page, len(XSS_PAIRS))).to_be_visible()
    choose(page, "Dataset", "sample")
    expect(matching(page, 50)).to_be_visible()
    settled_screenshot(page, "data")


def test_inspect_opens_from_the_data_page_with_sentence_rewards(app: App, page: Page) -> None:
    pair_id = SHOWN_PAIR
    open_page(page, app)
    page.get_by_role("textbox", name="Search").fill(pair_id.rsplit("/", 1)[1])
    page.get_by_role("textbox", name="Search").press("Enter")
    expect(matching(page, 1)).to_be_visible()
    choose(page, "Open a pair", pair_id)
    page.get_by_role("button", name="Inspect").click()

    expect(page.get_by_role("heading", name="Inspect a pair")).to_be_visible()
    expect(page.get_by_role("combobox", name="Pair")).to_have_value(pair_id)
    expect_sentences_and_heatmap(page)
    # Every sentence of both responses is its own coloured span, with its reward in the title.
    pair = sample_pair(pair_id)
    expect_responses(page, pair.chosen[:40], pair.rejected[:40])
    responses = page.locator(".srm-response")
    for i, text in enumerate((pair.chosen, pair.rejected)):
        spans = responses.nth(i).locator("span[data-sentence]")
        expect(spans).to_have_count(len(segment(text)))
        expect(spans.first).to_have_attribute("title", re.compile("reward", re.IGNORECASE))
    expect(metric(page, "Current label")).to_contain_text("unlabelled")
    expect(metric(page, "Model prefers")).to_contain_text(re.compile("chosen|rejected"))
    # The margin split beside the verdict, and how much of each response was scored.
    expect(metric(page, "Prompt shift")).to_be_visible()
    expect(metric(page, "Sentence shift")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"margin \S+ = prompt shift \S+ \+ sentence shift \S+")).first
    ).to_be_visible()
    for text in (pair.chosen, pair.rejected):
        n = len(segment(text))
        expect(page.get_by_text(f"Scored {n} of {n} sentences", exact=True).first).to_be_visible()
    expect(page.locator(".srm-prompt-term")).to_have_count(2)
    # The heatmap's first column is the prompt term.
    heatmap = page.get_by_test_id("stPlotlyChart").first
    expect(heatmap.locator(".xtick text").first).to_have_text("prompt")
    settled_screenshot(page, "inspect", docs_until=heatmap)

    feature(page, app, "sample", pair_id)  # the demo's first example (see the demo test)


def feature(page: Page, app: App, dataset: str, pair_id: str) -> None:
    """Switch on "Feature this pair in demo mode" on the Inspect page, and see it stored.

    The switch flips in the browser at once; the store is written by the run that follows,
    which closing the page would cut short.
    """
    toggle = page.get_by_role("switch", name="Feature this pair in demo mode")
    expect(toggle).not_to_be_checked()
    page.get_by_text("Feature this pair in demo mode").click()  # the input itself is hidden
    expect(toggle).to_be_checked()
    deadline = time.monotonic() + 30
    while [dataset, pair_id] not in featured_pairs(app):
        assert time.monotonic() < deadline, f"{pair_id} was not featured: {featured_pairs(app)}"
        page.wait_for_timeout(200)


def featured_pairs(app: App) -> list[list[str]]:
    with sessions(app)() as session:
        return [list(x) for x in store.get_setting(session, "demo_pairs") or []]


def test_annotate_swaps_a_label_with_the_keyboard(app: App, page: Page) -> None:
    open_page(page, app, "annotate")
    expect(page.get_by_text("Type your name in the sidebar")).to_be_visible()
    page.get_by_role("textbox", name="Annotator").fill(ANNOTATOR)
    page.get_by_role("textbox", name="Annotator").press("Enter")
    choose(page, "Dataset", "sample")
    page.get_by_role("textbox", name="Search").fill(SWAPPED_PAIR.rsplit("/", 1)[1])
    page.get_by_role("textbox", name="Search").press("Enter")
    heading = page.get_by_role("heading", name=re.compile(r"^Pair "))
    expect(heading).to_have_text(f"Pair {SWAPPED_PAIR}")
    pair = sample_pair(SWAPPED_PAIR)
    expect_responses(page, pair.chosen[:40], pair.rejected[:40])
    expect(action_bar(page)).to_contain_text(re.compile(r"label:\W*unlabelled"))
    expect(page.get_by_text("No label events yet")).to_be_visible()

    # Shortcuts are ignored while a text input has the focus: click the page body first.
    page.get_by_role("heading", name="Annotate").click()
    page.keyboard.press("s")
    # The swapped pair leaves the "unlabelled" queue, which held only it.
    expect(page.get_by_text("Nothing left in this queue.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^1 of 50 pairs labelled"))).to_be_visible()

    choose(page, "Show", "swap")
    expect(heading).to_have_text(f"Pair {SWAPPED_PAIR}")
    expect(action_bar(page)).to_contain_text(re.compile(r"label:\W*swap"))
    expect(grid_row(page, ANNOTATOR, "swap")).to_have_count(1)
    settled_screenshot(page, "annotate", docs_until=page.get_by_test_id("stDataFrame").first)

    with sessions(app)() as session:
        pair = store.get_pair(session, "sample", SWAPPED_PAIR)
        events = store.label_history(session, pair.id)
        assert [(e.annotator.name, e.action, e.label) for e in events] == [
            (ANNOTATOR, "swap", "swap")
        ]


def test_train_page_runs_a_tiny_training_job_to_the_end(app: App, page: Page) -> None:
    open_page(page, app, "train")
    expect(page.get_by_role("heading", name="Retrain on the corrected labels")).to_be_visible()
    choose(page, "Dataset", "sample")
    page.get_by_text("the backbone", exact=True).click()  # not the active model: a tiny one
    choose(page, "Backbone", "tiny")
    page.get_by_role("spinbutton", name="Steps").fill("5")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(re.compile(r"Started training job \d+"))).to_be_visible()

    finished = page.get_by_text(re.compile(r"^Job \d+ (succeeded|failed|cancelled)\.$"))
    expect(finished).to_be_visible(timeout=TRAIN_JOB)
    with sessions(app)() as session:
        job = newest(session, store.TrainingJob)
        assert job.status == "succeeded", f"{job.status}: {job.error}\n{job.message}"
        assert job.config["max_steps"] == 5
        assert job.config["model"]["backbone"] == "tiny"
        job_id, model_id = job.id, job.model_id
    assert model_id is not None
    expect(grid_row(page, str(job_id), "train", "succeeded")).to_have_count(1)
    # .first: while the page reruns after the job ends, its old details linger a moment.
    expect(page.get_by_text(f"Registered model #{model_id}").first).to_be_visible()
    settled_screenshot(page, "train")


def test_models_page_lists_the_new_model_and_compares(app: App, page: Page) -> None:
    with sessions(app)() as session:
        model = newest(session, store.Model)
    assert model is not None and "tiny" in model.name, "run the Train test first"
    open_page(page, app, "models")
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    expect(grid_row(page, str(model.id), model.name)).to_have_count(1)
    expect(page.get_by_role("button", name="Make active")).to_be_visible()

    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    model_b = page.get_by_role("combobox", name="Model B")
    expect(model_b).to_have_value(re.compile(re.escape(model.name)))
    # The default model scored the pairs the earlier tests opened; the new one scored them all.
    expect(metric(page, "Pairs compared")).to_be_visible(timeout=60_000)
    expect(metric(page, "Length baseline")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(r"^Flipped verdicts"))).to_be_visible()
    settled_screenshot(page, "models")


def test_untrusted_text_is_shown_never_run(app: App, page: Page, xss_file: Path) -> None:
    ensure_xss_dataset(app, xss_file)
    pair = XSS_PAIRS[0]

    open_listed(page, app, f"inspect?dataset=xss&pair={pair['id']}", pair["id"])
    expect_sentences_and_heatmap(page)
    expect_responses(page, XSS_SCRIPT, XSS_IMG)
    expect(page.get_by_text(XSS_SCRIPT).first).to_be_visible()  # the prompt, as plain text
    expect(page.locator("img[src='x']")).to_have_count(0)
    assert page.evaluate("window.__xss") is None
    settled_screenshot(page, "inspect-xss")
    feature(page, app, "xss", pair["id"])  # the demo's second example, in large type

    open_page(page, app, f"annotate?annotator={ANNOTATOR}")
    choose(page, "Dataset", "xss")
    expect(page.get_by_role("heading", name=re.compile(r"^Pair xss-"))).to_be_visible()
    expect_responses(page, XSS_SCRIPT, XSS_IMG)  # every XSS pair has both, in its responses
    expect(page.locator("img[src='x']")).to_have_count(0)
    assert page.evaluate("window.__xss") is None
    settled_screenshot(page, "annotate-xss")


def write_markdown_bait(workdir: Path, bait: str) -> tuple[Path, str]:
    """A file of one pair whose id, source and responses carry markdown images and links to
    `bait` (and a bare address, an e-mail address and a www. host); returns (path, pair id)."""
    pair_id = f"![b]({bait}/pair.png)"
    record = {
        "id": pair_id,
        "prompt": "Say hi.",
        "chosen": f"Fine. Click [here]({bait}/chosen) now. Then see ![c]({bait}/chosen.png) "
        "too. Write to mail@bait.example or visit www.bait.example today.",
        "rejected": f"No. Visit {bait}/rejected for more.",
        "source": f"[Session expired]({bait}/source)",
    }
    path = workdir / "markdown-bait.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path, pair_id


def plant_markdown_bait(app: App, bait: str, dataset: str, pair_id: str) -> None:
    """Bait in what only the store holds: an annotator's name in the pair's history, the
    guidelines, and a failed job's error."""
    with sessions(app).begin() as session:
        row = store.get_pair(session, dataset, pair_id)
        annotator = f"[admin]({bait}/annotator)"
        store.record_label(session, row.id, annotator, "keep", expected_event_id=None)
        store.set_setting(
            session,
            store.GUIDELINES,
            f"### Label well\n\n![g]({bait}/guide.png) Read [the rules]({bait}/rules).\n\n"
            f"<img src='{bait}/raw.png'>\n",
        )
        job = jobs.create_train_job(session, dataset=dataset, config={"max_steps": 1})
        job.status, job.error = "failed", f"# [Session expired: sign in again]({bait}/login)"


def expect_nothing_from(page: Page, bait: str, requested: list[str]) -> None:
    """The page has finished its run, holds no image or link to `bait` (nor any link made of
    the bare address or e-mail address in the data, nor a heading anchor named after it), and
    the browser asked `bait` for nothing."""
    expect(page.locator("[data-stale='true']")).to_have_count(0)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    page.wait_for_timeout(500)  # an image element would start loading at once; none may exist
    port = bait.rsplit(":", 1)[1]  # also in a heading anchor's slug ("#pair-b-http-127-...")
    for selector in (f"img[src*='{port}']", f"a[href*='{port}']", "a[href*='bait.example']"):
        expect(page.locator(selector)).to_have_count(0)
    assert requested == []


def shown_text(locator: Locator) -> str:
    """What a reader sees, without the invisible word joiners the escaping adds."""
    return locator.inner_text().replace("\u2060", "")


def test_markdown_bait_in_urls_and_data_stays_text(app: App, page: Page, workdir: Path) -> None:
    bait = f"http://127.0.0.1:{free_port()}"  # nothing listens: any request is recorded here
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url) if r.url.startswith(bait) else None)

    # A reflected URL parameter: the pair named in a shared link is shown in an error, as text.
    for planted in (f"![b]({bait}/x.png)", f"[Session expired: sign in again]({bait}/login)"):
        open_page(page, app, f"inspect?dataset=sample&pair={quote(planted)}")
        error = page.get_by_test_id("stAlertContentError")
        expect(error).to_be_visible()
        assert planted in shown_text(error)
        expect_nothing_from(page, bait, requested)

    # Bait imported through the Data page (a name that sorts after the other datasets, so no
    # other test's default changes), then a path that is no file at all.
    file, pair_id = write_markdown_bait(workdir, bait)
    dataset = f"~ ![d]({bait}/dataset.png)"
    open_page(page, app)
    page.get_by_text("Import pairs").click()
    page.get_by_role("textbox", name="Dataset name").fill(dataset)
    page.get_by_role("tab", name="Path on the server").click()
    path = page.get_by_role("textbox", name="Path", exact=True)
    for typed, outcome in (
        (str(file), "Imported 1 new pairs"),
        (f"![p]({bait}/p.png)", "the app imports only from"),
    ):
        path.fill(typed)
        path.press("Enter")
        page.get_by_role("button", name="Import path").click()
        expect(page.get_by_text(re.compile(outcome))).to_be_visible()
        expect_nothing_from(page, bait, requested)
    plant_markdown_bait(app, bait, dataset, pair_id)

    open_page(page, app, f"inspect?dataset={quote(dataset)}&pair={quote(pair_id)}")
    expect_responses(page, "Click [here]")
    expect_nothing_from(page, bait, requested)

    open_page(page, app, f"annotate?annotator={ANNOTATOR}")
    choose(page, "Dataset", dataset)
    choose(page, "Show", "any")
    heading = page.get_by_role("heading", name=re.compile(r"^Pair "))
    expect(heading).to_contain_text("/pair.png)")  # the planted pair, once the rerun is done
    assert shown_text(heading) == f"Pair {pair_id}"
    expect(page.locator(".srm-guidelines h3")).to_have_text("Label well")
    expect(page.locator(".srm-guidelines")).to_contain_text("image not shown: g")
    page.get_by_text("Tag sentences").first.click()
    expect_nothing_from(page, bait, requested)
    settled_screenshot(page, "annotate-markdown-bait")

    open_page(page, app, "train")  # the newest job, the failed one, is shown with its error
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("Session expired")
    expect_nothing_from(page, bait, requested)


# ------------------------------------------------------------------------------- demo mode
SHOWCASE_TITLE = "Where does a reward model put the credit?"
EDITING = re.compile(
    r"^(Import|Start training|Keep|Swap|Tie|Discard|Undo|Make active|Score |Inspect this pair)"
)


def test_demo_mode_shows_the_showcase_and_no_editing_controls(demo_app: App, page: Page) -> None:
    with sessions(demo_app)() as session:
        n_models = len(store.list_models(session))
        before = (
            session.scalar(select(func.count(store.Score.id))),
            session.scalar(select(func.count(store.LabelEvent.id))),
        )

    assert n_models >= 2, "demo mode compares the models the studio tests made: run them first"
    open_page(page, demo_app)
    expect(page.get_by_role("heading", name=SHOWCASE_TITLE)).to_be_visible()
    expect(page.get_by_text("Demo mode: read-only")).to_be_visible()
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link")).to_have_count(2)
    expect(nav.get_by_role("link", name="Showcase")).to_be_visible()
    expect(nav.get_by_role("link", name="Models")).to_be_visible()
    # The pairs featured from the Inspect page, in that order.
    expect_sentences_and_heatmap(page)
    shown = sample_pair(SHOWN_PAIR)
    expect_responses(page, shown.chosen[:40], shown.rejected[:40])
    expect(page.get_by_text(re.compile(r"^Model: "))).to_be_visible()  # the page's last line
    expect(page.get_by_role("button", name=EDITING)).to_have_count(0)
    settled_screenshot(page, "showcase")
    page.get_by_role("radio", name="Example 2").click()
    expect_responses(page, XSS_SCRIPT, XSS_IMG)
    expect(page.get_by_text(XSS_SCRIPT).first).to_be_visible()
    expect(page.locator("img[src='x']")).to_have_count(0)
    assert page.evaluate("window.__xss") is None

    nav.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    # Drawn after every place an editing button could be (make active, score, inspect): the
    # studio's models trained on the sample, and the demo shows no in-sample comparison.
    expect(page.get_by_text(re.compile(r"trained on this dataset's pairs"))).to_be_visible()
    expect(page.get_by_role("button", name=EDITING)).to_have_count(0)
    settled_screenshot(page, "models-demo")

    # The studio's page addresses lead nowhere editable either.
    for path in ("data", "annotate", "train"):
        open_page(page, demo_app, path)
        expect(page.get_by_role("heading", name=SHOWCASE_TITLE)).to_be_visible()
        expect(page.get_by_role("button", name=EDITING)).to_have_count(0)

    with sessions(demo_app)() as session:
        after = (
            session.scalar(select(func.count(store.Score.id))),
            session.scalar(select(func.count(store.LabelEvent.id))),
        )
    assert after == before, "demo mode wrote to the store"


# ------------------------------------------------------------------------------- the audit
AUDIT_JOB = 300_000  # ms: two folds, each a process-side training and scoring on `tiny`


def wait_for_jobs(app: App, dataset: str, timeout: float) -> None:
    """Until no job of `dataset` is queued or running (the jobs run beside the app)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions(app)() as session:
            live = session.scalar(
                select(func.count())
                .select_from(store.TrainingJob)
                .join(store.Dataset)
                .where(
                    store.Dataset.name == dataset,
                    store.TrainingJob.status.in_(("queued", "running")),
                )
            )
        if live == 0:
            return
        time.sleep(2)
    raise AssertionError(f"jobs of {dataset} still running after {timeout:.0f} s")


def test_an_import_opens_ordered_and_a_tiny_audit_runs_to_the_end(
    app: App, page: Page, workdir: Path
) -> None:
    fresh = workdir / "fresh.jsonl"
    fresh.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in load_pairs(SAMPLE)[:24]))
    open_page(page, app)
    page.get_by_text("Import pairs").click()
    page.get_by_role("textbox", name="Dataset name").fill("fresh")
    page.get_by_role("tab", name="Path on the server").click()
    page.get_by_role("textbox", name="Path", exact=True).fill(str(fresh))
    page.get_by_role("textbox", name="Path", exact=True).press("Enter")
    page.get_by_role("button", name="Import path").click()
    expect(
        page.get_by_text(re.compile(r"Scoring them with the active model \(job \d+\)"))
    ).to_be_visible()
    wait_for_jobs(app, "fresh", TRAIN_JOB / 1000)

    # No scoring button pressed: the queue is ordered by the scores the import's job made.
    with sessions(app)() as session:
        active = store.get_active_model(session)
        top, d = store.annotation_queue(session, "fresh", active.id, limit=1)[0]
        top_id = top.external_id
    assert d is not None and d > 0, f"the top of the queue does not disagree: {d}"
    open_page(page, app, "annotate")
    page.get_by_role("textbox", name="Annotator").fill(ANNOTATOR)
    page.get_by_role("textbox", name="Annotator").press("Enter")
    choose(page, "Dataset", "fresh")
    expect(page.get_by_role("heading", name=re.compile(r"^Pair "))).to_have_text(f"Pair {top_id}")
    expect(metric(page, "Disagreement with the label (in sample)")).to_contain_text(f"{d:+.2f}")
    expect(page.get_by_text(re.compile(r"Ordered by the active model.*in sample"))).to_be_visible()

    # A tiny audit: 2 folds of 3 steps on the random `tiny` backbone, from the page.
    page.get_by_text("Audit labels (out of fold)").click()
    page.get_by_role("spinbutton", name="Folds").fill("2")
    page.get_by_role("spinbutton", name="Folds").press("Enter")
    page.get_by_role("spinbutton", name="Steps per fold").fill("3")
    page.get_by_role("spinbutton", name="Steps per fold").press("Enter")
    choose(page, "Backbone", "tiny")
    estimate = page.get_by_text(re.compile(r"^2 models of 3 steps on 24 pairs of fresh"))
    expect(estimate).to_be_visible()  # how long, said before it starts
    page.get_by_role("button", name="Audit labels").click()
    expect(page.get_by_text(re.compile(r"Started audit job \d+"))).to_be_visible()
    wait_for_jobs(app, "fresh", AUDIT_JOB / 1000)
    with sessions(app)() as session:
        job = newest(session, store.TrainingJob)
        assert (job.kind, job.status) == ("audit", "succeeded"), f"{job.status}: {job.error}"
        (audit,) = store.audit_summaries(session, "fresh")
        assert (audit.status, audit.folds_done, audit.scored) == ("complete", 2, 24)
        top, d = store.annotation_queue(session, "fresh", None, audit_id=audit.id, limit=1)[0]
        top_id = top.external_id
    page.reload()
    expect(page.get_by_text(re.compile(r"Ordered by audit \d+ .*out of fold"))).to_be_visible(
        timeout=MODEL_LOAD
    )
    expect(page.get_by_role("heading", name=re.compile(r"^Pair "))).to_have_text(f"Pair {top_id}")
    expect(metric(page, "Out-of-fold disagreement")).to_contain_text(f"{d:+.2f}")
    settled_screenshot(page, "annotate-audit")
