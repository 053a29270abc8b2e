"""Label corrections: the append-only log, undo, stale writes, concurrency, tags, agreement."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest
from sqlalchemy import func, select, update

from srm.data import PreferencePair
from srm.store import (
    LabelCounts,
    LabelEvent,
    LabelState,
    Pair,
    StaleWriteError,
    StoreError,
    adjudicate,
    agreement,
    current_tags,
    effective_pairs,
    label_history,
    label_state,
    label_summary,
    make_sessionmaker,
    open_store,
    record_label,
    tag_sentence,
    undo_label,
    verify_label_log,
)
from srm.store.export import training_pair


def apply(session_factory, pair_id: int, actions: list[str], annotator: str = "ana") -> None:
    """Each action in its own transaction, each based on the state it just read."""
    for action in actions:
        with session_factory.begin() as s:
            seen = label_state(s, pair_id).event_id
            if action == "undo":
                undo_label(s, pair_id, annotator, expected_event_id=seen)
            else:
                record_label(s, pair_id, annotator, action, expected_event_id=seen)


# ---------------------------------------------------------------------------- the label log
@pytest.mark.parametrize(
    "actions, label",
    [
        ([], None),
        (["swap"], "swap"),
        (["swap", "keep"], "keep"),
        (["swap", "undo"], None),
        (["keep", "swap", "undo"], "keep"),
        (["keep", "swap", "undo", "undo"], None),
        (["swap", "undo", "tie"], "tie"),
        (["swap", "tie", "undo", "discard"], "discard"),
        (["swap", "tie", "undo", "discard", "undo", "undo"], None),
        (["keep", "swap", "tie", "undo", "undo", "swap"], "swap"),
    ],
    ids=lambda v: "-".join(v) or "none" if isinstance(v, list) else str(v),
)
def test_the_current_label_after_a_sequence(session_factory, make_store, actions, label) -> None:
    ids = make_store(2)
    apply(session_factory, ids["p0"], actions)
    with session_factory() as s:
        state = label_state(s, ids["p0"])
        assert state.label == label
        assert state.effective == (label or "keep")
        history = label_history(s, ids["p0"])
        assert [e.action for e in history] == actions  # append-only: every action is there
        assert [e.seq for e in history] == list(range(1, len(actions) + 1))
        assert state.event_id == (history[-1].id if history else None)
        exported = {p.id: p for p in effective_pairs(s, "d").pairs}
    expected_chosen = {
        None: "A good answer 0.",
        "keep": "A good answer 0.",
        "swap": "A bad answer 0.",
    }
    if label in ("tie", "discard"):
        assert "p0" not in exported
    else:
        assert exported["p0"].chosen == expected_chosen[label]
    assert exported["p1"].chosen == "A good answer 1."  # untouched neighbour


def test_training_pair_is_the_one_label_rule() -> None:
    pair = PreferencePair("x", "Q?", "A.", "B.", "hh", 1.0)
    assert training_pair(pair, None) == pair == training_pair(pair, "keep")
    assert training_pair(pair, "swap") == pair.swapped()
    assert training_pair(pair, "tie") is None and training_pair(pair, "discard") is None


def test_the_train_page_counts_what_training_selects(session_factory, make_store) -> None:
    """The Train page reads label_summary through LabelCounts: the same counts, and as many
    pairs, as effective_pairs gives srm train --dataset and the jobs."""
    ids = make_store(6)
    for pair, label in [("p0", "swap"), ("p1", "tie"), ("p2", "discard"), ("p3", "keep")]:
        apply(session_factory, ids[pair], [label])
    with session_factory() as s:
        effective = effective_pairs(s, "d")
        counts = LabelCounts.from_summary(label_summary(s, "d"))
    assert counts == effective.counts
    assert (counts.exported, counts.swap, counts.left_out) == (len(effective.pairs), 1, 2)


def test_the_log_audit_finds_a_tampered_store(session_factory, make_store) -> None:
    ids = make_store(2)
    apply(session_factory, ids["p0"], ["keep", "swap", "undo"])
    apply(session_factory, ids["p1"], ["tie"])
    with session_factory() as s:
        assert verify_label_log(s) == []
    with session_factory.begin() as s:  # edits no label function would make
        s.execute(update(Pair).where(Pair.id == ids["p1"]).values(label="swap"))
        s.execute(update(LabelEvent).where(LabelEvent.seq == 3).values(label="swap"))
    with session_factory() as s:
        problems = verify_label_log(s)
    last = label_state_event(session_factory, ids["p0"])
    assert problems == [
        f"pair 'p0' (id {ids['p0']}): event {last} says swap, replay keep",
        f"pair 'p0' (id {ids['p0']}): pair says keep (event {last}), log says swap (event {last})",
        f"pair 'p1' (id {ids['p1']}): pair says swap (event {last + 1}), log says tie "
        f"(event {last + 1})",
    ]


def label_state_event(session_factory, pair_id: int) -> int:
    with session_factory() as s:
        return label_state(s, pair_id).event_id


def test_an_undo_names_the_event_it_reverts(session_factory, make_store) -> None:
    ids = make_store(1)
    apply(session_factory, ids["p0"], ["keep", "swap", "undo", "undo"])
    with session_factory() as s:
        keep, swap, undo_swap, undo_keep = label_history(s, ids["p0"])
    assert (undo_swap.undoes_event_id, undo_swap.label) == (swap.id, "keep")
    assert (undo_keep.undoes_event_id, undo_keep.label) == (keep.id, None)


def test_undo_with_nothing_to_undo_is_refused(session_factory, make_store) -> None:
    ids = make_store(1)
    with pytest.raises(StoreError, match="pair 'p0' has no label of ana's to undo"):
        with session_factory.begin() as s:
            undo_label(s, ids["p0"], "ana", expected_event_id=None)
    apply(session_factory, ids["p0"], ["swap", "undo"])
    with pytest.raises(StoreError, match="no label of ana's to undo"):
        apply(session_factory, ids["p0"], ["undo"])


def test_an_unknown_label_or_annotator_is_refused(session_factory, make_store) -> None:
    ids = make_store(1)
    with session_factory.begin() as s:
        with pytest.raises(StoreError, match="label: got 'flip'; use one of keep, swap, tie"):
            record_label(s, ids["p0"], "ana", "flip", expected_event_id=None)
        with pytest.raises(StoreError, match="annotator: give a non-empty name"):
            record_label(s, ids["p0"], "  ", "keep", expected_event_id=None)
        with pytest.raises(StoreError, match="no pair with id 999"):
            record_label(s, 999, "ana", "keep", expected_event_id=None)


# ---------------------------------------------------------------------------- stale writes
def test_a_vote_is_stale_only_after_the_writers_own_change(session_factory, make_store) -> None:
    """ana in two tabs: the second tab's vote, based on what it loaded before the first tab's
    swap, is refused; bo's vote, based on the same old view, is independent and counts."""
    ids = make_store(1)
    with session_factory() as s:
        seen_before = label_state(s, ids["p0"]).event_id  # no events
    with session_factory.begin() as s:
        ana_event = record_label(s, ids["p0"], "ana", "swap", expected_event_id=None).id

    message = (
        rf"pair 'p0' was changed by you \(in another tab or window\) at \d{{4}}-\d\d-\d\d "
        rf"\d\d:\d\d:\d\d UTC \(swap, event {ana_event}\) after you loaded it; nothing "
        "was written"
    )
    with pytest.raises(StaleWriteError, match=message):
        with session_factory.begin() as s:
            record_label(s, ids["p0"], "ana", "tie", expected_event_id=seen_before)
    with session_factory() as s:
        assert s.scalar(select(func.count(LabelEvent.id))) == 1
    with session_factory.begin() as s:  # bo saw the same empty pair: his vote stands beside
        record_label(s, ids["p0"], "bo", "tie", expected_event_id=seen_before)
    with session_factory() as s:
        assert [(e.annotator.name, e.action, e.label) for e in label_history(s, ids["p0"])] == [
            ("ana", "swap", "swap"),
            ("bo", "tie", None),  # one vote each: undecided
        ]
    apply(session_factory, ids["p0"], ["tie"], annotator="cy")
    with session_factory() as s:
        assert label_state(s, ids["p0"]).label == "tie"  # two votes to one


def test_a_stale_vote_never_names_another_annotators_vote(session_factory, make_store) -> None:
    """Blind labelling: the refusal after a reviewer settled the pair says who settled and
    how, but a refusal never carries another annotator's vote."""
    ids = make_store(1)
    apply(session_factory, ids["p0"], ["swap"], annotator="ana")
    with session_factory() as s:
        seen = label_state(s, ids["p0"]).event_id
    apply(session_factory, ids["p0"], ["keep"], annotator="bo")
    with session_factory.begin() as s:
        last = label_state(s, ids["p0"]).event_id
        adjudicate(s, ids["p0"], "rev", "keep", expected_event_id=last)
    with pytest.raises(StaleWriteError, match=r"changed by rev .*\(adjudicate, keep, event") as err:
        with session_factory.begin() as s:
            record_label(s, ids["p0"], "ana", "tie", expected_event_id=seen)
    assert "bo" not in str(err.value)


def test_an_event_id_from_another_pair_is_stale(session_factory, make_store) -> None:
    ids = make_store(2)
    apply(session_factory, ids["p0"], ["swap"])
    with session_factory() as s:
        other = label_state(s, ids["p0"]).event_id
    with pytest.raises(StaleWriteError, match=f"pair 'p1' has no event {other} "):
        with session_factory.begin() as s:
            record_label(s, ids["p1"], "ana", "keep", expected_event_id=other)


# ---------------------------------------------------------------------------- concurrency
WRITERS = 8
EVENTS_PER_WRITER = 200
SHARED_PAIRS = 5


def _write_labels(url: str, writer: int, pair_ids: list[int]) -> int:
    """One annotator's session: read a pair, then label it in a separate short transaction,
    as the app does; a stale write is reloaded and retried. Returns how many were retried."""
    session_factory = make_sessionmaker(open_store(url))
    read_factory = make_sessionmaker(session_factory.kw["bind"], read_only=True)
    annotator = f"annotator-{writer}"
    retries = 0
    for i in range(EVENTS_PER_WRITER):
        pair_id = pair_ids[(writer + i) % len(pair_ids)]
        label = ("keep", "swap", "tie", "discard")[i % 4]
        while True:
            with read_factory() as s:
                seen = label_state(s, pair_id).event_id
            try:
                with session_factory.begin() as s:
                    record_label(
                        s, pair_id, annotator, label, expected_event_id=seen, note=f"{writer}:{i}"
                    )
                break
            except StaleWriteError:
                retries += 1
                time.sleep(0.001 * (writer + 1))
    return retries


def test_concurrent_writers_lose_no_event(store_url: str, make_store) -> None:
    """8 processes x 200 label events on 5 shared pairs, each event its own transaction:
    every event is stored once, in each writer's order, and each pair's log has no gap."""
    pair_ids = list(make_store(SHARED_PAIRS).values())
    with mp.get_context("spawn").Pool(WRITERS) as pool:
        pool.starmap(_write_labels, [(store_url, w, pair_ids) for w in range(WRITERS)])

    with make_sessionmaker(open_store(store_url))() as s:
        events = s.scalars(select(LabelEvent).order_by(LabelEvent.id)).all()
        assert len(events) == WRITERS * EVENTS_PER_WRITER
        for writer in range(WRITERS):
            notes = [e.note for e in events if e.annotator.name == f"annotator-{writer}"]
            assert notes == [f"{writer}:{i}" for i in range(EVENTS_PER_WRITER)]
        for pair_id in pair_ids:
            log = [e for e in events if e.pair_id == pair_id]
            assert [e.seq for e in log] == list(range(1, len(log) + 1))
            assert label_state(s, pair_id) == LabelState(pair_id, log[-1].label, log[-1].id)
        assert verify_label_log(s) == []


# ---------------------------------------------------------------------------- sentence tags
def test_tags_are_appended_and_the_latest_per_span_counts(session_factory, make_store) -> None:
    ids = make_store(2)
    with session_factory.begin() as s:
        tag_sentence(s, ids["p0"], "ana", "chosen", (0, 7), "good")
        tag_sentence(s, ids["p0"], "ana", "chosen", (0, 7), "bad", note="on reflection")
        tag_sentence(s, ids["p0"], "bo", "chosen", (0, 7), "unsure")
        tag_sentence(s, ids["p0"], "ana", "rejected", (2, 5), "bad")
        tag_sentence(s, ids["p1"], "ana", "rejected", (0, 15), "good")
    with session_factory() as s:
        assert [
            (t.annotator.name, t.side, t.span_start, t.span_end, t.tag, t.note)
            for t in current_tags(s, [ids["p0"]])
        ] == [
            ("ana", "chosen", 0, 7, "bad", "on reflection"),
            ("bo", "chosen", 0, 7, "unsure", None),
            ("ana", "rejected", 2, 5, "bad", None),
        ]
        assert len(current_tags(s)) == 4


@pytest.mark.parametrize(
    "side, span, tag, message",
    [
        ("left", (0, 3), "good", "side: got 'left'; use chosen or rejected"),
        ("chosen", (0, 3), "great", "tag: got 'great'; use one of good, bad, unsure"),
        ("chosen", (3, 3), "good", r"span: got \(3, 3\); the chosen response of pair 'p0' has 16"),
        ("chosen", (0, 17), "good", r"give 0 <= start < end <= 16"),
    ],
)
def test_a_bad_tag_is_refused(session_factory, make_store, side, span, tag, message) -> None:
    ids = make_store(1)
    with session_factory.begin() as s:
        with pytest.raises(StoreError, match=message):
            tag_sentence(s, ids["p0"], "ana", side, span, tag)


# ---------------------------------------------------------------------------- agreement
def test_agreement_counts_percent_and_kappa(session_factory, make_store) -> None:
    ids = make_store(6)
    ana = {"p0": "keep", "p1": "keep", "p2": "swap", "p3": "swap", "p4": "tie"}
    bo = {"p0": "keep", "p1": "swap", "p2": "swap", "p3": "swap", "p5": "discard"}
    for pid, label in ana.items():
        apply(session_factory, ids[pid], [label], annotator="ana")
    for pid, label in bo.items():
        apply(session_factory, ids[pid], [label], annotator="bo")
    # cy labels p0 twice (the later one stands) and undoes a label on p1: it does not count.
    apply(session_factory, ids["p0"], ["swap", "keep"], annotator="cy")
    apply(session_factory, ids["p1"], ["tie", "undo"], annotator="cy")

    with session_factory() as s:
        report = agreement(s, "d")
        assert agreement(s, "other") == type(report)([], [])
    assert [(a.name, a.events, a.undos, a.pairs, a.labels) for a in report.annotators] == [
        ("ana", 5, 0, 5, {"keep": 2, "swap": 2, "tie": 1}),
        ("bo", 5, 0, 5, {"keep": 1, "swap": 3, "discard": 1}),
        ("cy", 4, 1, 1, {"keep": 1}),
    ]
    by_names = {(p.a, p.b): p for p in report.pairwise}
    assert set(by_names) == {("ana", "bo"), ("ana", "cy"), ("bo", "cy")}
    # ana vs bo on p0-p3: ana keep keep swap swap, bo keep swap swap swap -> 3 of 4 agree;
    # p_e = (2*1 + 2*3) / 16 = 0.5, kappa = (0.75 - 0.5) / (1 - 0.5) = 0.5.
    ana_bo = by_names["ana", "bo"]
    assert (ana_bo.n, ana_bo.agreed, ana_bo.percent) == (4, 3, 75.0)
    assert ana_bo.kappa == pytest.approx(0.5, abs=1e-12)
    # On p0 alone both say keep: chance agreement is 1 and kappa is undefined.
    ana_cy = by_names["ana", "cy"]
    assert (ana_cy.n, ana_cy.agreed, ana_cy.percent, ana_cy.kappa) == (1, 1, 100.0, None)


def test_kappa_below_chance_is_negative(session_factory, make_store) -> None:
    ids = make_store(2)
    apply(session_factory, ids["p0"], ["keep"], annotator="ana")
    apply(session_factory, ids["p1"], ["swap"], annotator="ana")
    apply(session_factory, ids["p0"], ["swap"], annotator="bo")
    apply(session_factory, ids["p1"], ["keep"], annotator="bo")
    with session_factory() as s:
        (pair,) = agreement(s).pairwise
    # p_o = 0, p_e = 0.5: kappa = -1.
    assert (pair.agreed, pair.kappa) == (0, -1.0)
