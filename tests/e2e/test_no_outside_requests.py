"""The app is offline by design: in Chromium at 1440×900, a walk through every page of the
studio and of demo mode requests nothing from any host but the app's own (no icon font, no
favicon, no usage statistics), and the Showcase tells each example's story in a caption.

Every request the browser makes is recorded (and any bound elsewhere is refused, so the test
means the same on a machine with a network). The app runs as `make app` runs it (conftest's
`serve`), on a fresh store with the bundled sample and the bundled default model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import ARTIFACTS, App, serve

pytestmark = pytest.mark.e2e
VIEWPORT = {"width": 1440, "height": 900}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
MODEL_LOAD = 120_000  # ms: the first page that scores loads torch and the model
SHOWN_PAIR = "hh-rlhf/harmless-base/test/00755"
STUDIO_PAGES = {  # path: the page's title
    "": "Preference data",
    f"inspect?dataset=sample&pair={quote(SHOWN_PAIR)}": "Inspect a pair",
    "annotate": "Annotate",
    "train": "Train",
    "models": "Models",
    "best_of_n": "Best-of-N",
}
NAMED_BY_PEOPLE = ["The answer people preferred", "The other answer"]
NAMED_FOR_A_TIE = ["The first answer", "The second answer"]
SHOWCASE_TITLE = "Where does a reward model put the credit?"
CAPTION = re.compile(
    r"^(The model (agrees|disagrees) with the people|The model has no clear preference|"
    r"People preferred neither answer)"
)


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname in LOCAL_HOSTS


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("offline-e2e")


@pytest.fixture(scope="module")
def studio(workdir: Path) -> Iterator[App]:
    with serve(workdir / "app.db", workdir / "make-app.log") as running:
        yield running


@pytest.fixture(scope="module")
def demo(workdir: Path) -> Iterator[App]:
    with serve(workdir / "app.db", workdir / "make-app-demo.log", SRM_DEMO="1") as running:
        yield running


@pytest.fixture
def recorded(browser: Browser) -> Iterator[tuple[BrowserContext, list[str]]]:
    """A 1440×900 browser context and the URL of every request it makes; any request for
    another host is recorded, then refused."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route(lambda url: not is_local(url), lambda route: route.abort())
    yield context, requests
    context.close()


def settle(page: Page) -> None:
    """Until Streamlit has finished the run (nothing stale, no running indicator)."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=MODEL_LOAD)
    expect(page.locator("[data-stale='true']")).to_have_count(0)


def open_titled(page: Page, app: App, path: str, title: str) -> None:
    page.goto(f"{app.url}/{path}")
    heading = page.get_by_role("heading", name=title, exact=True, level=1)
    expect(heading).to_be_visible(timeout=60_000)
    settle(page)


def expect_only_local(page: Page, requests: list[str]) -> None:
    """Every request so far, and every address the page's markup names, is the app's own."""
    named = page.eval_on_selector_all(
        "link[href], script[src], img[src], iframe[src], source[src]",
        "els => els.map(e => e.href || e.src)",
    )
    assert requests, "no request was recorded: the recording does not work"
    assert [u for u in requests if not is_local(u)] == []
    assert [u for u in named if not is_local(u)] == []


def test_the_studio_requests_nothing_beyond_the_app(studio: App, recorded) -> None:
    context, requests = recorded
    page = context.new_page()
    for path, title in STUDIO_PAGES.items():
        open_titled(page, studio, path, title)
        if path.startswith("inspect"):  # the page that loads the model and scores
            expect(page.locator(".srm-response span[data-sentence]").first).to_be_visible(
                timeout=MODEL_LOAD
            )
            expect(page.locator(".js-plotly-plot").first).to_be_visible()
            settle(page)
    icons = page.eval_on_selector_all("link[rel*='icon']", "els => els.map(e => e.href)")
    assert icons and all(is_local(u) for u in icons), icons
    expect_only_local(page, requests)


def test_the_demo_captions_every_example_and_requests_nothing_beyond_the_app(
    demo: App, recorded
) -> None:
    context, requests = recorded
    page = context.new_page()
    open_titled(page, demo, "", SHOWCASE_TITLE)
    examples = page.get_by_role("radio", name=re.compile(r"^Example \d+$"))
    # Only pairs with a clear verdict the sentences carry, none from a red-team source: with the
    # bundled model, one of the sample's pairs (nothing is featured in this store).
    count = examples.count()
    assert count >= 1
    captions = []
    for i in range(count):
        page.get_by_role("radio", name=f"Example {i + 1}", exact=True).click()
        expect(page.locator(".srm-response span[data-sentence]").first).to_be_visible(
            timeout=MODEL_LOAD
        )
        settle(page)
        caption = page.locator(".st-key-demo_caption")
        expect(caption).to_have_count(1)
        text = caption.inner_text().strip()
        assert CAPTION.match(text), text
        assert "σ" not in text and not re.search(r"\bs\d\b", text)
        # The sides are named by what people preferred, never "chosen" or "rejected".
        shown = page.locator("h3").all_inner_texts()
        sides = [t.split(" · ")[0] for t in shown if " · score" in t]
        assert sides in (NAMED_BY_PEOPLE, NAMED_FOR_A_TIE), shown
        captions.append(text)
        if i == 0:
            page.screenshot(path=ARTIFACTS / "showcase-1440.png", full_page=True)
    assert len(set(captions)) == count, captions  # each caption is its example's own
    open_titled(page, demo, "models", "Models")
    expect_only_local(page, requests)
