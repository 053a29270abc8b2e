"""The Models page: A against B per source with the length baseline, flipped verdicts,
sentence reward shifts, making a model active; and demo mode, which edits nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srm.compare import compare_models
from srm.data import PreferencePair, load_pairs
from srm.store import (
    get_active_model,
    import_pairs,
    list_pairs,
    make_sessionmaker,
    open_store,
    record_label,
    register_model,
    save_scores,
    set_active_model,
)
from tests.conftest import scores_of
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


# ------------------------------------------------------------------------------- a certain flip
#: Two models' stored scores (chosen minus rejected) of five pairs, every chosen the longer:
#: f2 is swapped by an annotator and f3 tied (left out), so the margins for the label are
#: f0 A +1 B +2, f1 A +0.5 B -0.5 (flips), f2 A -1.5 B +1 (flips), f4 A -1 B +1 (flips).
FLIP_GAPS = {"A": [1.0, 0.5, 1.5, 3.0, -1.0], "B": [2.0, -0.5, -1.0, 3.0, 1.0]}


@pytest.fixture
def flipping_models(app_store: str) -> tuple[int, int]:
    """Models A and B with their scores written straight into the store (no model runs)."""
    pairs = [
        PreferencePair(f"f{i}", "Which?", "A longer answer.", "Short.", "hh" if i < 2 else "shp")
        for i in range(5)
    ]
    with make_sessionmaker(open_store(app_store)).begin() as s:
        import_pairs(s, "flips", pairs)
        ids = {p.external_id: p.id for p in list_pairs(s, "flips")}
        record_label(s, ids["f2"], "ana", "swap", expected_event_id=None)
        record_label(s, ids["f3"], "ana", "tie", expected_event_id=None)
        models = []
        for name, gaps in FLIP_GAPS.items():
            model_id = register_model(s, f"model {name}", f"/runs/{name}", config={}).id
            records = [scores_of(p.id, gap, 0.0) for p, gap in zip(pairs, gaps, strict=True)]
            save_scores(s, model_id, "flips", records)
            models.append(model_id)
        set_active_model(s, models[0])
    return models[0], models[1]


def test_the_comparison_of_a_certain_flip(app_store: str, flipping_models, run_page) -> None:
    a, b = flipping_models
    with make_sessionmaker(open_store(app_store))() as s:
        comparison = compare_models(s, "flips", a, b)
    # By hand: A is right on f0, f1 (2 of 4), B on f0, f2, f4 (3 of 4); the longer response
    # wins everywhere but the swapped f2.
    assert (comparison.n, comparison.overall.a, comparison.overall.b) == (4, 0.5, 0.75)
    assert comparison.overall.length_baseline == 0.75
    assert [(p.id, p.a, p.b) for p in comparison.flipped] == [
        ("f2", -1.5, 1.0),
        ("f4", -1.0, 1.0),
        ("f1", 0.5, -0.5),
    ]

    at = run_page("models")
    assert (at.selectbox(key="models.a").value, at.selectbox(key="models.b").value) == (a, b)
    metrics = {m.label: m for m in at.metric}
    assert metrics["Pairs compared"].value == "4"
    assert (metrics["Accuracy A"].value, metrics["Accuracy B"].value) == ("50.0%", "75.0%")
    assert metrics["Accuracy B"].delta == "+25.0 points"
    assert metrics["Length baseline"].value == "75.0%"
    assert "Flipped verdicts (3)" in [h.value for h in at.subheader]
    table = next(d.value for d in at.dataframe if "B margin for the label" in d.value)
    assert table.to_dict("records") == [
        {
            "id": "f2",
            "source": "shp",
            "label": "swap",
            "A margin for the label": -1.5,
            "B margin for the label": 1.0,
            "B is now": "right",
        },
        {
            "id": "f4",
            "source": "shp",
            "label": "unlabelled",
            "A margin for the label": -1.0,
            "B margin for the label": 1.0,
            "B is now": "right",
        },
        {
            "id": "f1",
            "source": "hh",
            "label": "unlabelled",
            "A margin for the label": 0.5,
            "B margin for the label": -0.5,
            "B is now": "wrong",
        },
    ]
    accuracy, shift = (c.proto.spec for c in at.get("plotly_chart")[:2])
    bars = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in json.loads(accuracy)["data"]}
    # Every group here is far below MIN_SOURCE_PAIRS: labelled with its n, and as too few.
    hh, shp, all_ = (
        f"{s} (n={n})<br>under 20: too few to read" for s, n in (("hh", 2), ("shp", 2), ("all", 4))
    )
    assert bars == {
        "A: model A": {hh: 100.0, shp: 0.0, all_: 50.0},
        "B: model B": {hh: 50.0, shp: 100.0, all_: 75.0},
        "length baseline": {hh: 100.0, shp: 50.0, all_: 75.0},
    }
    for trace in json.loads(accuracy)["data"]:  # and every bar says its n, not just a percent
        assert [t.split("<br>")[1] for t in trace["text"]] == ["n=2", "n=2", "n=4"]
    assert "3 of 4 pairs flipped" in json.loads(shift)["layout"]["title"]["text"]
    # The pair picker offers the flipped pairs, the largest move first.
    assert at.selectbox(key="models.pair").options == ["f2", "f4", "f1"]


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
    # One caption in words says what carries the verdict; pairs whose sentences carry the
    # margin come first, and the tiny models leave some of those among the surest.
    (caption,) = [h.value for h in at.html if 'class="srm-caption"' in h.value]
    assert ">The model " in caption
    assert "The sentences carry" in caption and "σ" not in caption
    # The sides are named by what people preferred, that one first.
    assert [h.value.split(" · ")[0] for h in at.subheader[1:]] == [
        "The answer people preferred",
        "The other answer",
    ]
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
    assert model_row["A AUROC"] == f"{expected['metrics']['reward']['auroc']:.3f}"
    assert model_row["A pointing"] == f"{expected['metrics']['reward']['pointing']:.3f}"
    assert rows.loc[rows.index.str.contains("first")].iloc[0]["A pointing"] == "1.000"
    assert "None" not in table.astype(str).to_numpy()
    assert any(f"{tagged} tagged responses" in c.value for c in at.caption)


def test_sentence_credit_asks_for_tags_when_there_are_none(filled_store, two_models, run_page):
    at = run_page("models")
    assert any("No sentence of this dataset is tagged yet" in c.value for c in at.caption)


def test_srm_compare_prints_the_pages_numbers(app_store: str, flipping_models) -> None:
    from click.testing import CliRunner

    from srm.cli import main

    a, b = flipping_models
    args = ["compare", "--dataset", "flips", "--a", str(a), "--b", str(b), "--db", app_store]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    overall = next(line for line in result.output.splitlines() if line.startswith("overall"))
    assert overall.split() == ["overall", "4", "50.0%", "75.0%", "75.0%"]
    assert "flipped verdicts: 3 (B now right on 2, wrong on 1)" in result.output
    flips = [line.split()[0] for line in result.output.splitlines() if line.startswith("  f")]
    assert flips == ["f2", "f4", "f1"]
    listed = CliRunner().invoke(main, ["models", "--db", app_store])
    assert f"*{a}  model A" in listed.output and f" {b}  model B" in listed.output

    unknown = CliRunner().invoke(main, [*args[:-4], "--b", "999", "--db", app_store])
    assert unknown.exit_code == 1 and "no model with id 999" in unknown.output


def test_a_comparison_on_the_pairs_b_trained_on_is_flagged_in_sample(
    filled_store: str, two_models, sample_path: Path, run_page
) -> None:
    from srm.store import record_training_pairs

    _, b = two_models
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        record_training_pairs(s, b, "sample", [p.id for p in load_pairs(sample_path)])
    at = run_page("models")
    (warning,) = at.warning
    assert (
        "IN-SAMPLE" in warning.value and "trained on every one of these 50 pairs" in warning.value
    )
    (accuracy_b,) = [m for m in at.metric if m.label == "Accuracy B"]
    assert accuracy_b.proto.delta.endswith("(in sample)")
    # No green for a gain on training data: delta_color="off" draws it grey.
    assert accuracy_b.proto.color == accuracy_b.proto.MetricColor.GRAY


def test_a_held_out_comparison_says_so(filled_store: str, two_models, run_page) -> None:
    a, b = two_models
    from srm.store import record_training_pairs

    with make_sessionmaker(open_store(filled_store)).begin() as s:
        record_training_pairs(s, a, "sample", [])
        record_training_pairs(s, b, "sample", [])
    at = run_page("models")
    assert not at.warning
    # Neither model has recorded training pairs: the store cannot vouch for held-out.
    assert any("does not know which pairs model A and B trained on" in i.value for i in at.info)
