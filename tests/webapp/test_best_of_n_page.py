"""The Best-of-N page: candidates ranked by the active model, the top choice explained against
the runner-up, every candidate's sentences coloured; text from the file shows as text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srm.bestofn import Ranking, explain, rank
from srm.checkpoint import load
from srm.data import load_candidates
from tests.webapp.conftest import assert_no_markup_from_data, rerun
from webapp import candidates

BAIT_URL = "http://127.0.0.1:8999"


def test_asks_for_a_file_first(app_store: str, run_page) -> None:
    at = run_page("best_of_n")
    assert at.title[0].value == "Best-of-N"
    assert "Upload a candidates file" in at.info[0].value


def test_ranks_the_example_and_explains_the_top_choice(
    app_store: str, run_page, tiny_model: Path
) -> None:
    at = run_page("best_of_n")
    at.button(key="bestofn.use_example").click()
    at = rerun(at)
    items = load_candidates(candidates.EXAMPLE)
    assert at.selectbox(key="bestofn.prompt").options == [
        f"{i.id} · {' '.join(i.prompt.split())[:80]}" for i in items
    ]
    expected: Ranking = rank(load(tiny_model), items[:1])[0]
    why = explain(expected)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Best"] == f"candidate {why.best + 1}"
    best, runner_up = why.best + 1, why.runner_up + 1
    assert at.subheader[0].value == f"Why candidate {best} over candidate {runner_up}"
    table = at.dataframe[0].value
    assert list(table["candidate"]) == [i + 1 for i in expected.order]
    sentences = at.dataframe[1].value
    assert len(sentences) == len(why.rows)
    # A position only one candidate has a sentence at: a dash, never a literal None.
    missing = sum((r.top_term is None) + (r.runner_up_term is None) for r in why.rows)
    assert (sentences[["adds", "adds "]] == "—").to_numpy().sum() == missing
    assert "None" not in sentences.astype(str).to_numpy()
    assert list(sentences["difference"]) == [f"{r.difference:+.3f}" for r in why.rows]
    # One tinted response per candidate, best first.
    tinted = [h.value for h in at.get("html") if "srm-sentence" in h.value]
    assert len(tinted) == len(expected.responses)
    # Another prompt: its own ranking.
    at.selectbox(key="bestofn.prompt").set_value(at.selectbox(key="bestofn.prompt").options[2])
    at = rerun(at)
    assert at.title[0].value == "Best-of-N" and not at.error


def test_a_bad_file_lists_its_problems(app_store: str, run_page, tmp_path, monkeypatch) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "responses": ["one"]}) + "\n")
    monkeypatch.setattr(candidates, "EXAMPLE", bad)
    at = run_page("best_of_n")
    at.button(key="bestofn.use_example").click()
    at = rerun(at)
    shown = at.error[0].value.replace("\\", "").replace("\u2060", "")  # markdown-escaped
    assert "bad.jsonl:line 1: field 'responses': has 1; give at least two" in shown


def test_text_from_the_file_is_never_markup(
    app_store: str, run_page, tmp_path, monkeypatch
) -> None:
    bait = tmp_path / "bait.jsonl"
    record = {
        "id": f"![i]({BAIT_URL}/id.png)",
        "prompt": f"Greet <img src={BAIT_URL}/p.png> me.",
        "responses": [
            f"Hello. Click [here]({BAIT_URL}/c) now.",
            f"Hi! See ![x]({BAIT_URL}/x.png) please. <a href='{BAIT_URL}'>go</a>",
        ],
    }
    bait.write_text(json.dumps(record) + "\n")
    monkeypatch.setattr(candidates, "EXAMPLE", bait)
    at = run_page("best_of_n")
    at.button(key="bestofn.use_example").click()
    at = rerun(at)
    assert not at.error
    assert_no_markup_from_data(at)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rankings are cached per file content and model; each test starts clean."""
    candidates._rank.clear()
