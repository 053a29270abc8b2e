"""The Inspect page: verdict, coloured sentences, heatmap, sentence picking, boundary edits."""

from __future__ import annotations

import json
import math
from pathlib import Path

from sqlalchemy import func, select

from srm.checkpoint import save
from srm.config import ModelConfig
from srm.data import PreferencePair, load_pairs
from srm.model import SentenceRewardModel
from srm.segment import segment
from srm.store import Score, make_sessionmaker, open_store
from tests.webapp.conftest import fill, rerun


def responses_html(at) -> list[str]:
    """The tinted responses on the page, chosen first (not the prompt-term chips)."""
    return [h.value for h in at.html if h.value.startswith('<div class="srm-response"')]


def open_pair(run_page, dataset: str, pair_id: str):
    at = run_page("inspect")
    at.selectbox(key="inspect.dataset").set_value(dataset)
    at.selectbox(key="inspect.pair_id").set_value(pair_id)
    return rerun(at)


def stored_scores(db_url: str) -> int:
    with make_sessionmaker(open_store(db_url))() as s:
        return s.scalar(select(func.count(Score.id)))


def test_shows_verdict_sentences_and_charts(filled_store: str, sample_path: Path, run_page):
    pair = load_pairs(sample_path)[1]
    at = open_pair(run_page, "sample", pair.id)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model prefers"] in ("chosen", "rejected")
    assert metrics["Current label"] == "unlabelled"
    assert metrics["P(chosen is better)"].endswith("%")
    # The margin split beside the verdict, adding up to the margin shown.
    margin, prompt, sentences = (float(metrics[k]) for k in ("Margin", "Prompt term", "Sentences"))
    # Shown to 3 significant figures: each number is within half a unit of its third digit.
    slack = sum(
        0.5 * 10 ** (math.floor(math.log10(abs(x))) - 2) for x in (margin, prompt, sentences) if x
    )
    assert abs(prompt + sentences - margin) <= slack + 1e-12
    assert any(c.value.startswith(f"margin {metrics['Margin']} = prompt term") for c in at.caption)
    # Each side says how much of it was scored, and shows its prompt term beside its sentences.
    n = len(segment(pair.chosen))
    assert any(c.value == f"Scored {n} of {n} sentence{'s' * (n != 1)}" for c in at.caption)
    assert sum("srm-prompt-term" in h.value for h in at.html) == 2
    # One coloured span per sentence of each response, then the legend.
    chosen_html = responses_html(at)[0]
    assert chosen_html.count("data-sentence=") == len(segment(pair.chosen))
    assert len(at.get("plotly_chart")) >= 2  # heatmap and contributions
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heatmap["data"][0]["type"] == "heatmap"
    assert heatmap["data"][0]["y"] == ["chosen", "rejected"]
    assert heatmap["data"][0]["x"][0] == "prompt"  # the prompt term has a column


def test_a_model_without_a_prompt_term_shows_sentences_only(
    filled_store: str, sample_path: Path, run_page, tmp_path, monkeypatch
) -> None:
    model = tmp_path / "sentences-only"
    config = ModelConfig(backbone="tiny", d=16, prompt_term=False)
    save(SentenceRewardModel.create(config, seed=0), model)
    monkeypatch.setenv("SRM_MODEL", str(model))
    pair = load_pairs(sample_path)[1]
    at = open_pair(run_page, "sample", pair.id)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Prompt term"] == "none"
    assert metrics["Sentences"] == metrics["Margin"]
    assert any(c.value == f"margin {metrics['Margin']} = sentences {metrics['Margin']} "
               "(no prompt term)" for c in at.caption)  # fmt: skip
    assert not any("srm-prompt-term" in h.value for h in at.html)
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heatmap["data"][0]["x"][0] == "1"


def test_scores_are_computed_once_and_kept_in_the_store(filled_store, sample_path, run_page):
    pair = load_pairs(sample_path)[0]
    open_pair(run_page, "sample", pair.id)
    assert stored_scores(filled_store) == 1
    open_pair(run_page, "sample", pair.id)  # read back from the store, not scored again
    assert stored_scores(filled_store) == 1


def test_picking_a_sentence_shows_its_numbers(filled_store, sample_path, run_page):
    pair = next(p for p in load_pairs(sample_path) if len(segment(p.rejected)) >= 2)
    at = open_pair(run_page, "sample", pair.id)
    at.radio(key="inspect.side").set_value("rejected")
    rerun(at)
    at.selectbox(key="inspect.sentence.rejected").set_value(1)
    rerun(at)
    labels = [m.label for m in at.metric]
    assert {"Reward", "Weight", "Weight × reward"} <= set(labels)
    selected = [h.value for h in at.html if 'data-sentence="2"' in h.value and "outline" in h.value]
    assert selected


def test_merging_two_sentences_rescores_at_once(filled_store, sample_path, run_page):
    pair = next(p for p in load_pairs(sample_path) if len(segment(p.chosen)) >= 3)
    at = open_pair(run_page, "sample", pair.id)
    before = responses_html(at)[0].count("data-sentence=")
    at.button(key="inspect.merge").click()
    rerun(at)
    assert responses_html(at)[0].count("data-sentence=") == before - 1
    assert any("edited segmentation" in c.value for c in at.caption)
    at.button(key="inspect.reset").click()
    rerun(at)
    assert responses_html(at)[0].count("data-sentence=") == before


def test_markup_in_responses_is_shown_as_text(app_store: str, run_page) -> None:
    evil = '<script>window.__xss=1</script> Hello. <img src=x onerror="window.__xss=1"> Bye.'
    fill(app_store, [PreferencePair("x1", "Say <b>hi</b>.", evil, "Fine. Thanks.")], "xss")
    at = open_pair(run_page, "xss", "x1")
    html = responses_html(at)[0]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=" in html


def test_featuring_a_pair_for_the_demo(filled_store, sample_path, run_page) -> None:
    pair = load_pairs(sample_path)[5]
    at = open_pair(run_page, "sample", pair.id)
    toggle = at.toggle[0]
    assert toggle.value is False
    toggle.set_value(True)
    rerun(at)
    from srm.store import get_setting

    with make_sessionmaker(open_store(filled_store))() as s:
        assert get_setting(s, "demo_pairs") == [["sample", pair.id]]
