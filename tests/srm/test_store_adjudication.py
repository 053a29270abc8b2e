"""Adjudication: pairs the annotators disagree on are listed, and a reviewer's adjudicate event
settles them as the effective label; tag events form a trail; migration 0007 keeps the log."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from srm.store import (
    Disagreement,
    StaleWriteError,
    StoreError,
    adjudicate,
    agreement,
    disagreements,
    effective_pairs,
    label_history,
    label_state,
    make_engine,
    make_sessionmaker,
    open_store,
    tag_history,
    tag_sentence,
    verify_label_log,
)
from srm.store.migrate import current_revision, head_revision, upgrade
from tests.srm.test_store_labels import apply

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)


def split_pair(session_factory, pair_id: int) -> None:
    """ana keeps, bo swaps: both votes stand, and a tie of one each decides nothing."""
    apply(session_factory, pair_id, ["keep"], annotator="ana")
    apply(session_factory, pair_id, ["swap"], annotator="bo")


def settle(session_factory, pair_id: int, label: str, who: str = "rev") -> int:
    with session_factory.begin() as s:
        seen = label_state(s, pair_id).event_id
        return adjudicate(s, pair_id, who, label, expected_event_id=seen, note="read both").id


def test_disagreements_are_listed_with_every_vote(session_factory, make_store) -> None:
    ids = make_store(4)
    split_pair(session_factory, ids["p0"])
    apply(session_factory, ids["p1"], ["tie"], annotator="ana")
    apply(session_factory, ids["p1"], ["tie"], annotator="bo")  # agree: not listed
    apply(session_factory, ids["p2"], ["discard"], annotator="ana")  # alone: not listed
    # bo's swap on p3 is undone: bo has no standing vote there, so nothing to settle.
    apply(session_factory, ids["p3"], ["keep"], annotator="ana")
    apply(session_factory, ids["p3"], ["swap", "undo"], annotator="bo")
    with session_factory() as s:
        found = disagreements(s, "d")
        last = label_state(s, ids["p0"]).event_id
        assert disagreements(s, "other") == []
    assert found == [Disagreement(ids["p0"], "p0", {"ana": "keep", "bo": "swap"}, None, last, None)]


def test_an_adjudication_becomes_the_effective_label(session_factory, make_store) -> None:
    ids = make_store(2)
    split_pair(session_factory, ids["p0"])
    event_id = settle(session_factory, ids["p0"], "keep")
    with session_factory() as s:
        assert label_state(s, ids["p0"]).label == "keep"
        log = label_history(s, ids["p0"])
        assert [(e.annotator.name, e.action, e.label, e.note) for e in log] == [
            ("ana", "keep", "keep", None),
            ("bo", "swap", None, None),  # one vote each: undecided
            ("rev", "adjudicate", "keep", "read both"),
        ]
        assert log[-1].id == event_id
        exported = {p.id: p.chosen for p in effective_pairs(s, "d").pairs}
        assert exported["p0"] == "A good answer 0."  # kept, not bo's swap
        assert disagreements(s, "d") == []  # settled
        (settled,) = disagreements(s, "d", settled=True)
        assert (settled.settled_by, settled.label) == ("rev", "keep")
        # The reviewer's decision is no vote: agreement is still ana against bo.
        report = agreement(s, "d")
        assert [a.name for a in report.annotators if a.pairs] == ["ana", "bo"]
        assert [(p.a, p.b, p.agreed) for p in report.pairwise] == [("ana", "bo", 0)]
        assert verify_label_log(s) == []


def test_undo_or_a_new_label_reopens_a_settled_pair(session_factory, make_store) -> None:
    ids = make_store(1)
    split_pair(session_factory, ids["p0"])
    settle(session_factory, ids["p0"], "tie")
    apply(session_factory, ids["p0"], ["undo"], annotator="rev")
    with session_factory() as s:
        assert label_state(s, ids["p0"]).label is None  # back to the votes: a tie
        assert [d.pair_id for d in disagreements(s, "d")] == [ids["p0"]]
    settle(session_factory, ids["p0"], "discard")
    apply(session_factory, ids["p0"], ["keep"], annotator="cy")
    with session_factory() as s:
        assert label_state(s, ids["p0"]).label == "keep"  # two votes to one
        (open_again,) = disagreements(s, "d")
        assert open_again.votes == {"ana": "keep", "bo": "swap", "cy": "keep"}
        assert open_again.settled_by is None
        assert verify_label_log(s) == []


def test_an_adjudication_needs_a_disagreement_and_a_fresh_pair(session_factory, make_store) -> None:
    ids = make_store(2)
    apply(session_factory, ids["p1"], ["keep"], annotator="ana")
    apply(session_factory, ids["p1"], ["keep"], annotator="bo")
    with session_factory.begin() as s:
        seen = label_state(s, ids["p1"]).event_id
        with pytest.raises(
            StoreError, match=r"'p1': the annotators do not disagree \(labels: ana keep, bo keep\)"
        ):
            adjudicate(s, ids["p1"], "rev", "swap", expected_event_id=seen)
        with pytest.raises(StoreError, match="labels: none"):
            adjudicate(s, ids["p0"], "rev", "swap", expected_event_id=None)
    split_pair(session_factory, ids["p0"])
    with session_factory.begin() as s:
        with pytest.raises(StoreError, match="an adjudication settles on one of"):
            adjudicate(s, ids["p0"], "rev", "maybe", expected_event_id=None)
        first = label_history(s, ids["p0"])[0].id
        with pytest.raises(StaleWriteError, match="was changed by bo"):
            adjudicate(s, ids["p0"], "rev", "keep", expected_event_id=first)
    with session_factory() as s:
        assert [e.action for e in label_history(s, ids["p0"])] == ["keep", "swap"]


def test_tag_history_keeps_every_tag_with_who_and_when(session_factory, make_store) -> None:
    ids = make_store(2)
    with session_factory.begin() as s:
        tag_sentence(s, ids["p0"], "ana", "chosen", (0, 7), "good")
        tag_sentence(s, ids["p1"], "ana", "chosen", (0, 7), "good")
        tag_sentence(s, ids["p0"], "bo", "rejected", (2, 5), "bad")
        tag_sentence(s, ids["p0"], "ana", "chosen", (0, 7), "bad")
    with session_factory() as s:
        trail = tag_history(s, ids["p0"])
        assert [(t.annotator.name, t.side, t.span_start, t.tag) for t in trail] == [
            ("ana", "chosen", 0, "good"),
            ("bo", "rejected", 2, "bad"),
            ("ana", "chosen", 0, "bad"),
        ]
        assert all(t.created_at is not None for t in trail)


def test_migrations_keep_the_label_log_and_recompute_labels_by_the_majority(
    store_url: str,
) -> None:
    """0007 keeps the log and its undo links through the table copy; 0009 recomputes the
    derived labels, written under the old rule (the latest label stands), by the majority
    rule (a tie decides nothing). Rows are written in SQL, as revision 0006 had them."""
    engine = make_engine(store_url)
    upgrade(engine, "0006")
    sessions = make_sessionmaker(engine)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO datasets (id, name, imported_at) VALUES (1, 'd', :t)"), {"t": NOW}
        )
        conn.execute(
            text(
                "INSERT INTO pairs (id, dataset_id, external_id, prompt, chosen, rejected, "
                "source, created_at, label, last_event_id) VALUES (1, 1, 'p0', 'Q?', 'A.', "
                "'B.', '', :t, 'swap', 4)"
            ),
            {"t": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO annotators (id, name, created_at) VALUES (1, 'ana', :t), (2, 'bo', :t)"
            ),
            {"t": NOW},
        )
        # ana keep; bo swap; bo undoes it; bo swaps again: labels as the old rule wrote them.
        for event_id, who, action, label, undoes in [
            (1, 1, "keep", "keep", None),
            (2, 2, "swap", "swap", None),
            (3, 2, "undo", "keep", 2),
            (4, 2, "swap", "swap", None),
        ]:
            conn.execute(
                text(
                    "INSERT INTO label_events (id, pair_id, seq, annotator_id, action, label, "
                    "undoes_event_id, created_at) VALUES (:i, 1, :i, :a, :c, :l, :u, :t)"
                ),
                {"i": event_id, "a": who, "c": action, "l": label, "u": undoes, "t": NOW},
            )
        if conn.dialect.name == "postgresql":  # explicit ids leave the sequences behind
            for table in ("datasets", "pairs", "annotators", "label_events"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))
    engine = open_store(store_url)
    assert current_revision(engine) == head_revision()  # 0007 and every later one
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        log = label_history(s, 1)
        assert [(e.action, e.label, e.undoes_event_id) for e in log] == [
            ("keep", "keep", None),
            ("swap", None, None),
            ("undo", "keep", 2),
            ("swap", None, None),
        ]
        assert label_state(s, 1).label is None
        assert verify_label_log(s) == []
    settle(sessions, 1, "keep")  # the adjudicate event is accepted
    with pytest.raises(Exception, match="ck_label_events_action"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO label_events (pair_id, seq, annotator_id, action, created_at) "
                "VALUES (1, 99, 1, 'bogus', CURRENT_TIMESTAMP)"
            )
        )
