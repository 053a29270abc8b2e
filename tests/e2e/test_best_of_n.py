"""The Best-of-N page in Chromium: upload a candidates file, read the ranking, the explanation
and every candidate's coloured sentences; text from the file is shown, never run.

The app runs as `make app` runs it, on a free loopback port, scoring with the bundled default
model as a newcomer's app does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from srm.bestofn import explain, rank
from srm.checkpoint import default_model_dir, load
from srm.data import load_candidates
from tests.e2e.conftest import ARTIFACTS, REPO_ROOT, XSS_IMG, XSS_SCRIPT, serve

pytestmark = pytest.mark.e2e
MODEL_LOAD = 120_000  # ms: the first ranking loads torch and the model


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app (`make app`, as the other browser tests run it) on a free port with an empty
    store, scoring with the bundled default model; its URL."""
    workdir = tmp_path_factory.mktemp("bestofn-e2e")
    with serve(workdir / "app.db", workdir / "streamlit.log") as app:
        yield app.url


@pytest.fixture(scope="module")
def candidates_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example with one more prompt whose text carries script and image tags."""
    path = tmp_path_factory.mktemp("bestofn-input") / "candidates.jsonl"
    example = (REPO_ROOT / "data" / "best_of_n_example.jsonl").read_text(encoding="utf-8")
    xss = {
        "id": "xss",
        "prompt": f"Greet the user. {XSS_SCRIPT}",
        "responses": [f"Hello there. {XSS_IMG} Welcome back.", f"Hi. {XSS_SCRIPT} Nice day."],
    }
    path.write_text(example + json.dumps(xss) + "\n", encoding="utf-8")
    return path


def test_best_of_n_ranks_an_uploaded_file(studio: str, page: Page, candidates_file: Path) -> None:
    items = load_candidates(candidates_file)
    rankings = rank(load(default_model_dir()), items)
    page.goto(f"{studio}/best_of_n")
    expect(page.get_by_role("heading", name="Best-of-N")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Upload a candidates file, or use the example.")).to_be_visible()

    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(candidates_file)
    # The first prompt's ranking, as the model gives it here.
    why = explain(rankings[0])
    best, runner_up = why.best + 1, why.runner_up + 1
    heading = page.get_by_role("heading", name=f"Why candidate {best} over candidate {runner_up}")
    expect(heading).to_be_visible(timeout=MODEL_LOAD)
    expect(page.get_by_test_id("stMetric").filter(has_text="Best")).to_contain_text(
        f"candidate {best}"
    )
    expect(page.get_by_text(re.compile(rf"^Candidate {best} ranks first with "))).to_be_visible()
    # Every candidate's sentences, coloured; the heatmap of all of them.
    spans = page.locator(".srm-response span[data-sentence]")
    expect(spans.first).to_be_visible()
    n_sentences = sum(len(r.sentences) for r in rankings[0].responses)
    expect(spans).to_have_count(n_sentences)
    expect(page.locator(".js-plotly-plot .heatmaplayer").first).to_be_attached()
    expect(page.get_by_text(f"{len(items)} prompts from candidates.jsonl")).to_be_visible()

    # The prompt with tags in it: shown as text, never run.
    box = page.get_by_role("combobox", name="Prompt")
    box.click()
    page.get_by_role("option", name=re.compile(r"^xss · ")).click()
    xss_why = explain(rankings[-1])
    expect(
        page.get_by_role(
            "heading",
            name=f"Why candidate {xss_why.best + 1} over candidate {xss_why.runner_up + 1}",
        )
    ).to_be_visible()
    expect(page.get_by_text(XSS_SCRIPT).first).to_be_visible()
    expect(page.locator(".srm-response", has_text=XSS_IMG).first).to_be_visible()
    assert page.evaluate("window.__xss") is None
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "best_of_n.png", full_page=True)
