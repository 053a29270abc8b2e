"""The Annotate page: a name is required, label actions and undo reach the store's audit
trail, stale writes are shown, sentence tags are one click, the queue follows the model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from srm.data import load_pairs
from srm.store import (
    LabelEvent,
    SentenceTag,
    get_active_model,
    get_pair,
    get_score,
    label_state,
    make_sessionmaker,
    open_store,
    pair_disagreement,
    record_label,
)
from tests.webapp.conftest import rerun


def start(run_page, name: str = "ana"):
    at = run_page("annotate")
    at.sidebar.text_input(key="annotate.annotator").input(name)
    return rerun(at)


def events(db_url: str) -> list[tuple[str, str, str | None, str]]:
    with make_sessionmaker(open_store(db_url))() as s:
        rows = s.scalars(select(LabelEvent).order_by(LabelEvent.id))
        return [(e.pair.external_id, e.action, e.label, e.annotator.name) for e in rows]


def current_id(at) -> str:
    """The pair id in the "Pair <id>" heading, where it is escaped for markdown."""
    heading = next(s.value for s in at.subheader if s.value.startswith("Pair "))
    return re.sub(r"\\(.)", r"\1", heading.removeprefix("Pair ")).replace("\u2060", "")


def test_a_name_is_required(filled_store: str, run_page) -> None:
    at = run_page("annotate")
    assert "Type your name" in at.warning[0].value
    assert not [b for b in at.button if b.key == "annotate.swap"]


def test_swap_then_undo_are_written_to_the_audit_trail(filled_store: str, run_page) -> None:
    at = start(run_page)
    first = current_id(at)
    at.text_input(key="annotate.note").input("rejected is more helpful")
    at.button(key="annotate.swap").click()
    rerun(at)
    assert events(filled_store) == [(first, "swap", "swap", "ana")]
    assert current_id(at) != first  # moved on to the next pair
    assert at.session_state["annotate.note"] == ""

    at.button(key="annotate.undo").click()
    rerun(at)
    assert events(filled_store)[-1] == (first, "undo", None, "ana")
    assert current_id(at) == first  # back on the undone pair
    trail = at.dataframe[0].value
    assert list(trail["action"]) == ["swap", "undo"]
    assert list(trail["annotator"]) == ["ana", "ana"]
    assert trail["note"].iloc[0] == "rejected is more helpful"


def test_every_action_has_a_shortcut_shown_on_screen(filled_store: str, run_page) -> None:
    at = start(run_page)
    shortcuts = {b.key: b.proto.shortcut for b in at.button}
    assert {k: shortcuts[f"annotate.{k}"] for k in ("keep", "swap", "tie", "discard", "undo")} == {
        "keep": "k",
        "swap": "s",
        "tie": "t",
        "discard": "d",
        "undo": "u",
    }
    assert (shortcuts["annotate.next"], shortcuts["annotate.prev"]) == ("n", "p")
    assert any("k keep · s swap · t tie · d discard · u undo" in c.value for c in at.caption)


def test_a_stale_write_is_refused_and_shown(filled_store: str, run_page) -> None:
    at = start(run_page)
    shown = current_id(at)
    # Someone else labels the same pair after this page loaded it.
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        pair = get_pair(s, "sample", shown)
        record_label(s, pair.id, "bo", "tie", expected_event_id=label_state(s, pair.id).event_id)
    at.button(key="annotate.keep").click()
    rerun(at)
    assert "was changed by bo" in at.error[0].value
    assert events(filled_store) == [(shown, "tie", "tie", "bo")]  # ana's keep was not written


def test_tagging_a_sentence_is_one_click(filled_store: str, run_page) -> None:
    at = start(run_page)
    pair_id = current_id(at)
    control = next(c for c in at.segmented_control if c.key.endswith(".chosen.1"))
    control.set_value("bad")
    rerun(at)
    with make_sessionmaker(open_store(filled_store))() as s:
        expected_pair = get_pair(s, "sample", pair_id).id
        tags = [
            (t.pair_id, t.side, t.span_start, t.tag, t.annotator.name)
            for t in s.scalars(select(SentenceTag))
        ]
    assert tags == [(expected_pair, "chosen", 0, "bad", "ana")]


def test_queue_puts_the_most_confident_disagreement_first(
    filled_store: str, sample_path: Path, tiny_model: Path, run_page
) -> None:
    from srm.checkpoint import load
    from srm.score import score_pairs
    from srm.store import register_model, save_scores, set_active_model

    pairs = load_pairs(sample_path)
    records = score_pairs(load(tiny_model), pairs[:12])
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        model = register_model(s, "tiny", str(tiny_model.resolve()), config={"model": {}})
        set_active_model(s, model.id)
        save_scores(s, model.id, "sample", records)
    gaps = {r.id: r.chosen.score - r.rejected.score for r in records}
    at = start(run_page)
    queue = next(d.value for d in at.dataframe if "disagreement" in d.value)
    scored = queue["disagreement"].iloc[:12]
    assert list(scored) == sorted(scored, reverse=True)
    # Disagreeing with an unlabelled pair means preferring its rejected response.
    for pair_id, d in zip(queue["id"].iloc[:12], scored, strict=True):
        assert d == pytest.approx(-gaps[pair_id], abs=1e-6)
    assert queue["disagreement"].iloc[12:].isna().all()  # unscored pairs come last
    assert current_id(at) == queue["id"].iloc[0]


def test_a_pair_scored_just_now_shows_the_queues_disagreement(filled_store: str, run_page) -> None:
    """The queue was read before anything was scored; the page scores the pair it shows, keeps
    the scores, and shows the disagreement the queue's query gives for them."""
    at = start(run_page)
    pair_id = current_id(at)
    with make_sessionmaker(open_store(filled_store))() as s:
        model = get_active_model(s)
        pair = get_pair(s, "sample", pair_id)
        stored = get_score(s, pair.id, model.id)
        expected = pair_disagreement(s, pair.id, model.id)
    assert expected == pytest.approx(stored.rejected_score - stored.chosen_score)  # unlabelled
    shown = {m.label: m.value for m in at.metric}
    assert shown["Model disagrees by (in sample)"] == f"{expected:+.2f}"


def test_agreement_appears_when_two_annotators_overlap(
    filled_store: str, sample_path: Path, run_page
) -> None:
    pairs = load_pairs(sample_path)[:4]
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        for i, p in enumerate(pairs):
            pair = get_pair(s, "sample", p.id)
            e = record_label(s, pair.id, "ana", "keep", expected_event_id=None)
            record_label(s, pair.id, "bo", "keep" if i < 3 else "swap", expected_event_id=e.id)
    at = start(run_page)
    table = next(d.value for d in at.dataframe if "shared pairs" in d.value)
    assert list(table["annotators"]) == ["ana · bo"]
    assert table["agreement"].iloc[0] == 0.75


def test_unscored_pairs_can_be_scored_from_the_queue(
    filled_store: str, monkeypatch, run_page
) -> None:
    launched = []
    monkeypatch.setattr("srm.jobs.launch", lambda url, job_id: launched.append(job_id) or 0)
    at = start(run_page)
    at.button(key="annotate.score").click()
    rerun(at)
    assert len(launched) == 1
    from srm.store import TrainingJob

    with make_sessionmaker(open_store(filled_store))() as s:
        job = s.get(TrainingJob, launched[0])
        assert (job.kind, job.status) == ("score", "queued")


def test_the_queue_follows_an_audit_once_one_is_complete(
    filled_store: str, sample_path: Path, run_page
) -> None:
    from srm.store import create_audit, register_model, save_audit_fold
    from tests.conftest import scores_of

    at = start(run_page)
    assert any("in sample" in c.value for c in at.caption)  # the active model ranks
    pairs = load_pairs(sample_path)
    halves = [p.id for p in pairs[: len(pairs) // 2]], [p.id for p in pairs[len(pairs) // 2 :]]
    position = {p.id: n for n, p in enumerate(pairs)}
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        audit = create_audit(s, "sample", folds=2, seed=0, config={}, run_dir="/runs/a")
        for fold, (held, trained) in enumerate((halves, halves[::-1])):
            model = register_model(s, f"fold {fold}", f"/runs/a/fold-{fold}")
            # Out of fold, the model disagrees with pair n by n: the last pair comes first.
            scores = [scores_of(i, 0.0, float(position[i])) for i in held]
            save_audit_fold(s, audit.id, fold, model.id, trained_on=trained, scores=scores)
    at = start(run_page)
    assert any("out of fold" in c.value for c in at.caption)
    queue = next(d.value for d in at.dataframe if "disagreement" in d.value)
    assert queue["id"].iloc[0] == pairs[-1].id
    assert list(queue["disagreement"]) == sorted(queue["disagreement"], reverse=True)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Out-of-fold disagreement"] == f"{len(pairs) - 1:+.2f}"
