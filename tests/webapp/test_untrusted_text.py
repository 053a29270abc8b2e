"""Text from the data or the URL shows as text on every page: markdown bait planted in a dataset
name, a pair id, a source, sentences, an annotator name, the guidelines, a model name, a job's
message and error, or a URL parameter never turns into an image or a link."""

from __future__ import annotations

from pathlib import Path

import pytest

from srm import jobs as srm_jobs
from srm.data import PreferencePair
from srm.store import (
    GUIDELINES,
    get_pair,
    import_pairs,
    label_state,
    make_sessionmaker,
    open_store,
    record_label,
    register_model,
    review_label,
    set_active_model,
    set_setting,
)
from tests.webapp.conftest import assert_no_markup_from_data, markdown_shown, rerun
from webapp.mdtext import escape

BAIT_URL = "http://127.0.0.1:8999"
DATASET = f"![d]({BAIT_URL}/dataset.png)"
PAIR_ID = f"![b]({BAIT_URL}/x.png)"
SOURCE = f"[Session expired: sign in again]({BAIT_URL}/login)"
ANNOTATOR = f"[admin]({BAIT_URL}/annotator) www.bait.example"
MODEL = f"![m]({BAIT_URL}/model.png)"
MESSAGE = f"step 1 ![j]({BAIT_URL}/job.png) :red[loss] $x^2$ mail@bait.example"
ERROR = (
    f"failed\n\n# [Session expired: sign in again]({BAIT_URL}/login)\n<img src={BAIT_URL}/e.png>"
)
CHOSEN = f"Fine. Click [here]({BAIT_URL}/c) now. Then see ![c]({BAIT_URL}/c.png) too."
REJECTED = f"No. Visit {BAIT_URL}/r for more."
GUIDELINES_BAIT = (
    f"### Label well\n\n![g]({BAIT_URL}/guide.png) Read [the rules]({BAIT_URL}/rules). "
    f"<img src='{BAIT_URL}/raw.png'>\n\n| key | action |\n|---|---|\n| **k** | keep |\n"
)


def escaped_anywhere(at, raw: str) -> bool:
    """The bait is on the page as text (escaped), so the check above looked at something."""
    return any(escape(raw) in text for text in markdown_shown(at))


@pytest.fixture
def bait_store(app_store: str, tiny_model: Path) -> str:
    """A store where every user-controlled string carries markdown bait."""
    with make_sessionmaker(open_store(app_store)).begin() as s:
        import_pairs(s, DATASET, [PreferencePair(PAIR_ID, "Say hi.", CHOSEN, REJECTED, SOURCE)])
        config = {"model": {"head": "sentence", "backbone": "tiny"}, "causal": True}
        register_model(s, "plain", str(tiny_model.parent / "plain"), config=config)  # a 2nd
        set_active_model(s, register_model(s, MODEL, str(tiny_model), config=config).id)
        set_setting(s, GUIDELINES, GUIDELINES_BAIT)
        pair = get_pair(s, DATASET, PAIR_ID)
        record_label(s, pair.id, ANNOTATOR, "keep", expected_event_id=None)
        tiny = {"max_steps": 1, "model": {"backbone": "tiny"}}
        queued = srm_jobs.create_train_job(s, dataset=DATASET, config=tiny)
        queued.message = MESSAGE
        failed = srm_jobs.create_train_job(s, dataset=DATASET, config=tiny)
        failed.status, failed.message, failed.error = "failed", MESSAGE, ERROR
    return app_store


def test_inspect_opened_from_a_link_shows_the_bait_as_text(bait_store, run_page) -> None:
    at = run_page("inspect", query={"dataset": DATASET, "pair": PAIR_ID})
    assert at.selectbox(key="inspect.pair_id").value == PAIR_ID
    assert_no_markup_from_data(at)
    assert escaped_anywhere(at, MODEL)  # "Model: <label>"


def test_a_reflected_url_parameter_is_shown_as_text(bait_store, run_page) -> None:
    phishing = f"[Session expired: sign in again]({BAIT_URL}/login)"
    at = run_page("inspect", query={"dataset": DATASET, "pair": phishing})
    assert at.error, "a missing pair is reported"
    assert_no_markup_from_data(at)
    assert escaped_anywhere(at, phishing)


def annotate(run_page):
    """The Annotate page on the bait pair (labelled already, so not in the default queue)."""
    at = run_page("annotate", query={"annotator": "ana"})
    at.selectbox(key="annotate.status").set_value("any")
    return rerun(at)


def test_annotate_page(bait_store, run_page) -> None:
    at = annotate(run_page)
    assert at.subheader[0].value.startswith("Pair ")
    assert_no_markup_from_data(at)
    for raw in (PAIR_ID, DATASET, SOURCE, ANNOTATOR):
        assert escaped_anywhere(at, raw), raw
    # The guidelines keep their markdown, without the image, the raw HTML or a live link.
    [guidelines] = [h.value for h in at.get("html") if "srm-guidelines" in h.value]
    assert "<h3>Label well</h3>" in guidelines and "<table>" in guidelines
    assert "image not shown: g" in guidelines and f"(link: {BAIT_URL}/rules)" in guidelines


def test_annotate_stale_write_message(bait_store, run_page) -> None:
    at = annotate(run_page)
    # A reviewer settles the pair after this page loaded it (another annotator's vote would
    # simply count): the write is refused, and the message names them, as text.
    with make_sessionmaker(open_store(bait_store)).begin() as s:
        pair = get_pair(s, DATASET, PAIR_ID)
        review_label(
            s,
            pair.id,
            ANNOTATOR,
            accept=False,
            label="swap",
            expected_event_id=label_state(s, pair.id).event_id,
        )
    at.button(key="annotate.keep").click()
    rerun(at)
    assert at.error, "the stale write is refused"
    assert_no_markup_from_data(at)
    assert escaped_anywhere(at, ANNOTATOR)


def test_data_page_import_outcomes(bait_store, sample_path: Path, run_page) -> None:
    at = run_page()
    at.text_input(key="data.import_name").input(f"![n]({BAIT_URL}/name.png)")
    at.text_input(key="data.import_path").input(str(sample_path))
    at.button(key="data.import_file").click()
    rerun(at)
    assert at.success, "imported"
    assert_no_markup_from_data(at)
    at.text_input(key="data.import_path").input(f"![p]({BAIT_URL}/path.png)")
    at.button(key="data.import_file").click()
    rerun(at)
    assert at.error, "no such file"
    assert_no_markup_from_data(at)


def test_train_page(bait_store, run_page) -> None:
    at = run_page("train")
    assert_no_markup_from_data(at)
    assert escaped_anywhere(at, DATASET)  # "Trains on n pairs of <dataset>"
    assert escaped_anywhere(at, MESSAGE)  # the queued job's progress text
    assert escaped_anywhere(at, ERROR)  # the failed job's error, in the history


def test_models_page(bait_store, run_page) -> None:
    at = run_page("models")
    assert_no_markup_from_data(at)
    assert escaped_anywhere(at, DATASET)  # "Model A has not scored <dataset> yet"


def test_showcase_in_demo_mode(bait_store, monkeypatch, run_page) -> None:
    """The caption quotes a sentence of the pair: it stays text, as the model's name does.
    The pair is featured: a tiny random model has no clear verdict to pick it by."""
    with make_sessionmaker(open_store(bait_store)).begin() as s:
        set_setting(s, "demo_pairs", [[DATASET, PAIR_ID]])
    monkeypatch.setenv("SRM_DEMO", "1")
    at = run_page()
    assert_no_markup_from_data(at)
    assert [h for h in at.html if 'class="srm-caption"' in h.value]  # the caption ran
    assert escaped_anywhere(at, MODEL)  # "Model: <name>"
