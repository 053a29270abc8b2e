"""The Models page: A against B per source with the length baseline, flipped verdicts,
sentence reward shifts, making a model active; and demo mode, which edits nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from srm.data import load_pairs
from srm.store import (
    get_active_model,
    make_sessionmaker,
    open_store,
    register_model,
    save_scores,
    set_active_model,
)
from tests.webapp.conftest import rerun


@pytest.fixture
def two_models(filled_store: str, sample_path: Path, tmp_path: Path) -> tuple[int, int]:
    """Two tiny models (different seeds) that both scored every sample pair."""
    from srm.checkpoint import save
    from srm.config import ModelConfig
    from srm.model import SentenceRewardModel
    from srm.score import score_pairs

    pairs = load_pairs(sample_path)
    ids = []
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        for seed in (1, 2):
            model = SentenceRewardModel.create(ModelConfig(backbone="tiny", d=16), seed=seed)
            save(model, tmp_path / f"m{seed}")
            row = register_model(
                s,
                f"seed {seed}",
                str(tmp_path / f"m{seed}"),
                config={"model": {"head": "sentence", "backbone": "tiny"}},
            )
            save_scores(s, row.id, "sample", score_pairs(model, pairs))
            ids.append(row.id)
        set_active_model(s, ids[0])
    return ids[0], ids[1]


def test_compares_two_models(filled_store: str, two_models, run_page) -> None:
    a, b = two_models
    at = run_page("models")
    assert at.selectbox(key="models.a").value == a and at.selectbox(key="models.b").value == b
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pairs compared"] == "50"
    assert {"Accuracy A", "Accuracy B", "Length baseline"} <= set(metrics)
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # accuracy by source, margin shift, sentence shifts
    flipped_header = next(s.value for s in at.subheader if s.value.startswith("Flipped verdicts"))
    n_flipped = int(flipped_header.split("(")[1].rstrip(")"))
    if n_flipped:
        table = next(d.value for d in at.dataframe if "B margin for the label" in d.value)
        assert len(table) == n_flipped
        a_margin, b_margin = table["A margin for the label"], table["B margin for the label"]
        assert ((a_margin > 0) != (b_margin > 0)).all()


def test_make_another_model_active(filled_store: str, two_models, run_page) -> None:
    a, b = two_models
    at = run_page("models")
    assert at.button(key="models.make_active").disabled  # A is already active
    at.selectbox(key="models.active").set_value(b)
    rerun(at)
    at.button(key="models.make_active").click()
    rerun(at)
    with make_sessionmaker(open_store(filled_store))() as s:
        assert get_active_model(s).id == b


def test_missing_scores_offer_a_scoring_job(
    filled_store, two_models, tiny_model, monkeypatch, run_page
):
    launched = []
    monkeypatch.setattr("srm.jobs.launch", lambda url, job_id: launched.append(job_id) or 0)
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        fresh = register_model(s, "unscored", str(tiny_model), config={}).id
    at = run_page("models")
    at.selectbox(key="models.b").set_value(fresh)
    rerun(at)
    assert "has not scored sample yet" in at.warning[0].value
    at.button(key="models.score.B").click()
    rerun(at)
    assert len(launched) == 1
    assert at.title[0].value == "Train"


# ------------------------------------------------------------------------------- demo mode
EDITING_KEYS = ("import", "keep", "swap", "make_active", "form", "score", "cancel", "annotator")


def test_demo_mode_shows_curated_pairs_without_editing_controls(
    filled_store: str, two_models, monkeypatch, run_page
) -> None:
    monkeypatch.setenv("SRM_DEMO", "1")
    at = run_page()
    assert at.title[0].value == "Where does a reward model put the credit?"
    assert len(at.get("plotly_chart")) == 2
    assert not at.button and not at.text_input and not at.text_area and not at.file_uploader
    assert at.pills(key="demo.example").options  # the curated examples
    # The verdict's split is shown, and the words say what carries it. Pairs whose sentences
    # carry the margin come first; the tiny models leave some of those among the surest.
    assert any(c.value.startswith("margin ") and "= prompt term" in c.value for c in at.caption)
    assert [s.value for s in at.success if "Here the sentences decide" in s.value]
    assert not [i.value for i in at.info if "the question's own term" in i.value]
    at = run_page("models")
    keys = [w.key or "" for w in (*at.button, *at.selectbox, *at.text_input)]
    assert not [k for k in keys if any(word in k for word in EDITING_KEYS)]
    assert {m.label: m.value for m in at.metric}["Pairs compared"] == "50"


def test_partial_scores_are_compared_and_can_be_completed(
    filled_store, two_models, tiny_model, sample_path, monkeypatch, run_page
):
    from srm.checkpoint import load
    from srm.score import score_pairs

    launched = []
    monkeypatch.setattr("srm.jobs.launch", lambda url, job_id: launched.append(job_id) or 0)
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        partial = register_model(s, "partial", str(tiny_model), config={}).id
        save_scores(
            s, partial, "sample", score_pairs(load(tiny_model), load_pairs(sample_path)[:5])
        )
    at = run_page("models")
    at.selectbox(key="models.b").set_value(partial)
    rerun(at)
    assert "Model B has scored 5 of the 50 pairs of sample" in at.info[0].value
    assert {m.label: m.value for m in at.metric}["Pairs compared"] == "5"
    at.button(key="models.score.B").click()
    rerun(at)
    assert len(launched) == 1


def test_sentence_credit_against_annotators_tags(filled_store: str, two_models, run_page) -> None:
    """Tags are stepwise labels: the page reports each model's AUROC/pointing on them, the same
    figures srm.evaluate.credit_report gives for the tagged sentences."""
    from srm.evaluate import credit_report
    from srm.store import get_score, list_pairs, tag_sentence, tagged_credit

    a, _ = two_models
    engine = open_store(filled_store)
    with make_sessionmaker(engine).begin() as s:
        tagged = 0
        for pair in list_pairs(s, "sample"):
            sentences = get_score(s, pair.id, a).response("chosen").sentences
            if len(sentences) < 2:
                continue
            first, last = sentences[0], sentences[-1]
            tag_sentence(s, pair.id, "ana", "chosen", (first.start, first.end), "bad")
            tag_sentence(s, pair.id, "ana", "chosen", (last.start, last.end), "good")
            tagged += 1
    with make_sessionmaker(engine)() as s:
        found = tagged_credit(s, "sample", a)
    assert found.tagged_responses == tagged == len(found.items) and found.unscored == 0
    expected = credit_report(found.items, head="sentence")["overall"]
    assert expected["eligible"] == tagged
    # The first sentence is always the bad one here, so the "first sentence" baseline is perfect.
    assert expected["metrics"]["first"]["pointing"] == 1.0

    at = run_page("models")
    table = next(d.value for d in at.dataframe if "A AUROC" in d.value.columns)
    rows = table.set_index("ranking")
    model_row = rows.iloc[0]
    assert model_row["A AUROC"] == pytest.approx(expected["metrics"]["reward"]["auroc"])
    assert model_row["A pointing"] == pytest.approx(expected["metrics"]["reward"]["pointing"])
    assert rows.loc[rows.index.str.contains("first")].iloc[0]["A pointing"] == 1.0
    assert any(f"{tagged} tagged responses" in c.value for c in at.caption)


def test_sentence_credit_asks_for_tags_when_there_are_none(filled_store, two_models, run_page):
    at = run_page("models")
    assert any("No sentence of this dataset is tagged yet" in c.value for c in at.caption)
