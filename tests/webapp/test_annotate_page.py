"""The Annotate page: a name is required, label actions and undo reach the store's audit
trail, stale writes are shown, sentence tags are one click, the queue follows the model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from srm.data import load_pairs
from srm.store import (
    GUIDELINES,
    GUIDELINES_LOCKED,
    LabelEvent,
    SentenceTag,
    get_active_model,
    get_pair,
    get_score,
    get_setting,
    label_state,
    make_sessionmaker,
    open_store,
    pair_disagreement,
    record_label,
    set_setting,
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
    return unescaped(heading.removeprefix("Pair "))


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
    assert any(
        "k keep · s swap · t tie · d discard · u undo" in c.value for c in at.sidebar.caption
    )


def test_a_stale_write_is_refused_and_shown(filled_store: str, run_page) -> None:
    at = start(run_page)
    shown = current_id(at)
    # Ana labels the same pair in another tab after this page loaded it.
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        pair = get_pair(s, "sample", shown)
        record_label(s, pair.id, "ana", "tie", expected_event_id=label_state(s, pair.id).event_id)
    at.button(key="annotate.keep").click()
    rerun(at)
    assert "was changed by you (in another tab or window)" in unescaped(at.error[0].value)
    assert events(filled_store) == [(shown, "tie", "tie", "ana")]  # the keep was not written


def test_another_annotators_vote_is_not_stale_and_both_count(filled_store: str, run_page):
    at = start(run_page)
    shown = current_id(at)
    label_directly(filled_store, shown, "bo", "tie")  # after this page loaded the pair
    at.button(key="annotate.keep").click()
    rerun(at)
    assert not at.error
    # Both votes stand; one each for tie and keep is a tie, so the pair waits for a reviewer.
    assert events(filled_store) == [(shown, "tie", "tie", "bo"), (shown, "keep", None, "ana")]


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
    assert shown["Disagreement with the label (in sample)"] == f"{expected:+.2f}"


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


# --- the issue-15 flow: one primary action, the way back, refused writes, tags, adjudication --
def unescaped(markdown: str) -> str:
    """Text as mdtext.escape gave it to markdown, without its backslashes and word joiners."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def bar_caption(at) -> str:
    """The facts line under the pair's heading in the action bar."""
    return next(unescaped(c.value) for c in at.caption if unescaped(c.value).startswith("label: "))


def label_directly(db_url: str, pair_id: str, annotator: str, label: str) -> None:
    with make_sessionmaker(open_store(db_url)).begin() as s:
        pair = get_pair(s, "sample", pair_id)
        record_label(
            s, pair.id, annotator, label, expected_event_id=label_state(s, pair.id).event_id
        )


def score_shown_pair(db_url: str, sample_path: Path, at, chosen: float, rejected: float) -> None:
    """The active model's stored scores of the pair on screen, each side scoring as given."""
    from tests.webapp.test_inspect_page import save_record

    save_record(db_url, next(p for p in load_pairs(sample_path) if p.id == current_id(at)),
                chosen, rejected)  # fmt: skip


def test_one_primary_action_is_the_models_suggestion(
    filled_store: str, sample_path: Path, run_page
) -> None:
    at = start(run_page)
    score_shown_pair(filled_store, sample_path, at, chosen=0.0, rejected=1.0)
    rerun(at)
    primary = [b.key for b in at.button if b.proto.type == "primary"]
    assert primary == ["annotate.swap"]
    # P as every page writes it (srm.records.probability_text): sigma(1) = 73.1%
    assert "model suggests swap: P(rejected better) = 73.1%" in bar_caption(at)
    assert any("P(chosen better) = 26.9% · margin" in c.value for c in at.caption)
    assert not any("Model disagrees by" in m.label for m in at.metric)


def test_no_clear_preference_puts_no_label_forward(
    filled_store: str, sample_path: Path, run_page
) -> None:
    at = start(run_page)
    score_shown_pair(filled_store, sample_path, at, chosen=0.1, rejected=0.0)  # P = 52.5%
    rerun(at)
    assert [b.key for b in at.button if b.proto.type == "primary"] == []
    assert "no clear preference: P(chosen better) = 52.5%" in bar_caption(at)
    assert "model suggests" not in bar_caption(at)
    assert any(
        "P(chosen better) = 52.5% · no clear preference · margin" in c.value for c in at.caption
    )


# --- issue 24: sentence tags by key --------------------------------------------------------
def focused_html(at) -> list[str]:
    """The responses' HTML that holds the keyboard's focused sentence."""
    return [h.value for h in at.get("html") if 'data-focus="true"' in h.value]


def test_sentence_tags_by_key(filled_store: str, run_page) -> None:
    at = start(run_page)
    pair_id = current_id(at)
    shortcuts = {b.key: b.proto.shortcut for b in at.button}
    assert [shortcuts[f"annotate.sentence_{k}"] for k in ("next", "previous", "good", "bad")] == [
        "j",
        "h",
        "g",
        "b",
    ]
    assert any("j/h next/previous sentence · g/b tag it good/bad" in c.value
               for c in at.sidebar.caption)  # fmt: skip
    chosen = next(c for c in at.segmented_control if c.key.endswith(".chosen.1"))
    n_chosen = sum(c.key.split(".")[-2] == "chosen" for c in at.segmented_control)
    assert f"Sentence 1 of {n_chosen} in chosen focused: g good · b bad · j/h move" in [
        c.value for c in at.caption
    ]
    assert (
        len(focused_html(at)) == 1
        and 'data-sentence="1" data-focus="true"' in (focused_html(at)[0])
    )
    # j past chosen's last sentence reaches rejected's first, and g tags it.
    for _ in range(n_chosen):
        at.button(key="annotate.sentence_next").click()
        rerun(at)
    assert any(c.value.startswith("Sentence 1 of ") and " in rejected focused" in c.value
               for c in at.caption)  # fmt: skip
    at.button(key="annotate.sentence_good").click()
    rerun(at)
    # h goes back to chosen's last sentence, b tags it.
    at.button(key="annotate.sentence_previous").click()
    rerun(at)
    at.button(key="annotate.sentence_bad").click()
    rerun(at)
    with make_sessionmaker(open_store(filled_store))() as s:
        expected_pair = get_pair(s, "sample", pair_id).id
        tags = sorted(
            (t.pair_id, t.side, t.tag, t.annotator.name) for t in s.scalars(select(SentenceTag))
        )
    assert tags == [
        (expected_pair, "chosen", "bad", "ana"),
        (expected_pair, "rejected", "good", "ana"),
    ]
    controls = {c.key: c.value for c in at.segmented_control}
    base = chosen.key.removesuffix(".chosen.1")
    assert controls[f"{base}.rejected.1"] == "good"  # the control shows the key's tag
    assert controls[f"{base}.chosen.{n_chosen}"] == "bad"
    assert sum(v is not None for v in controls.values()) == 2
    marked = [h for h in focused_html(at) if 'data-tag="bad"' in h]
    assert len(marked) == 1  # the focused sentence, outlined and marked bad


def test_p_walks_back_to_the_pairs_just_labelled(filled_store: str, run_page) -> None:
    at = start(run_page)  # Show = unlabelled
    assert at.selectbox(key="annotate.status").value == "unlabelled"
    assert at.button(key="annotate.prev").disabled  # nothing handled yet
    first = current_id(at)
    at.button(key="annotate.swap").click()
    rerun(at)
    second = current_id(at)
    at.button(key="annotate.keep").click()
    rerun(at)
    assert current_id(at) not in (first, second)
    at.button(key="annotate.prev").click()
    rerun(at)
    assert current_id(at) == second  # labelled, so out of the queue, and shown all the same
    assert "label: keep · not in this queue" in bar_caption(at)
    at.button(key="annotate.prev").click()
    rerun(at)
    assert current_id(at) == first
    assert "label: swap" in bar_caption(at)
    assert at.button(key="annotate.prev").disabled  # back at the start of the session
    # Relabelling a pair reached by `p` corrects it and carries on with the queue.
    at.button(key="annotate.tie").click()
    rerun(at)
    assert events(filled_store)[-1] == (first, "tie", "tie", "ana")
    assert current_id(at) not in (first, second)


def test_a_refused_write_stays_on_its_pair(filled_store: str, run_page) -> None:
    at = start(run_page)  # Show = unlabelled: the other tab's label takes the pair out of it
    shown = current_id(at)
    label_directly(filled_store, shown, "ana", "tie")  # ana, in another tab
    at.button(key="annotate.keep").click()
    rerun(at)
    assert "was changed by you" in at.error[0].value
    assert "decide again" in at.error[0].value
    assert current_id(at) == shown  # the queue did not move on
    assert "label: tie · not in this queue" in bar_caption(at)  # reloaded with the change
    at.button(key="annotate.swap").click()  # deciding again, on the fresh state, is written
    rerun(at)
    # The swap replaces ana's own tie: one vote, so it is the label.
    assert events(filled_store) == [(shown, "tie", "tie", "ana"), (shown, "swap", "swap", "ana")]


def test_tags_are_in_the_trail_and_marked_on_the_text(filled_store: str, run_page) -> None:
    at = start(run_page)
    control = next(c for c in at.segmented_control if c.key.endswith(".rejected.1"))
    control.set_value("bad")
    rerun(at)
    trail = at.dataframe[0].value
    assert list(trail["action"]) == ["tag bad"]
    assert list(trail["annotator"]) == ["ana"]
    assert trail["sentence"].iloc[0].startswith("rejected: ")
    assert trail["when (UTC)"].iloc[0]
    marked = [h.value for h in at.get("html") if 'data-tag="bad"' in h.value]
    assert len(marked) == 1 and "tagged: ana bad" in marked[0]
    assert "srm-tag-label" in marked[0]


def test_disagreements_are_listed_and_settled(filled_store: str, sample_path: Path, run_page):
    pairs = load_pairs(sample_path)
    split = pairs[3].id
    label_directly(filled_store, split, "ana", "keep")
    label_directly(filled_store, split, "bo", "swap")  # one each: undecided until settled
    at = start(run_page, "rev")
    table = next(d.value for d in at.dataframe if "votes" in d.value)
    assert list(table["id"]) == [split]
    assert list(table["votes"]) == ["ana keep · bo swap"]
    at.button(key="annotate.open_split").click()
    rerun(at)
    assert current_id(at) == split
    assert "annotators disagree: ana keep · bo swap" in bar_caption(at)
    assert "label: unlabelled" in bar_caption(at)
    assert any("The pair's label is undecided: the votes tie" in unescaped(m.value)
               for m in at.markdown)  # fmt: skip
    assert not [b for b in at.button if b.key == "annotate.accept"]  # no label to accept
    at.button(key="annotate.settle.keep").click()
    rerun(at)
    assert events(filled_store)[-1] == (split, "adjudicate", "keep", "rev")
    assert current_id(at) == split
    assert "label: keep" in bar_caption(at)
    trail = next(d.value for d in at.dataframe if "action" in d.value)
    assert list(trail["action"]) == ["keep", "swap", "adjudicate"]
    assert list(trail["label after"]) == ["keep", "unlabelled", "keep"]
    assert not [b for b in at.button if b.key == "annotate.settle.keep"]  # settled
    assert not [d for d in at.dataframe if "votes" in d.value]  # nothing left to settle
    with make_sessionmaker(open_store(filled_store))() as s:
        assert get_pair(s, "sample", split).label == "keep"


def test_the_guidelines_can_be_locked_in_the_store(filled_store: str, run_page) -> None:
    at = start(run_page)
    assert [p.proto.popover.label for p in at.sidebar.get("popover")] == ["Edit guidelines"]
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        set_setting(s, GUIDELINES_LOCKED, True)
    at = start(run_page)
    assert not at.get("popover")
    assert any("locked in the store" in c.value for c in at.sidebar.caption)
    script = """
import streamlit as st
from webapp import annotation, services
annotation.save_guidelines(services.store_url(), "changed")
"""
    at = AppTest.from_string(script, default_timeout=30)
    at.run()
    assert "the guidelines are locked in the store" in at.exception[0].value
    with make_sessionmaker(open_store(filled_store))() as s:
        assert get_setting(s, GUIDELINES) is None
