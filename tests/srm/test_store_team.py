"""Team annotation in the store: accounts, sign-in limits, assignment with overlap, the queue of
work left, and labels aggregated from every vote (majority, Dawid-Skene), with agreement."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from srm.store import (
    LoginAttempt,
    LoginError,
    PairFilter,
    StoreError,
    add_user,
    adjudicate,
    aggregate_labels,
    assign,
    authenticate,
    effective_pairs,
    is_blind,
    label_state,
    list_pairs,
    list_users,
    progress,
    reassign,
    record_label,
    review_label,
    session_valid,
    set_aggregation,
    set_blind,
    set_disabled,
    set_password,
    team_agreement,
    verify_label_log,
)
from srm.store.models import utcnow
from srm.store.team import LOCKOUT, MAX_FAILURES
from tests.srm.test_store_labels import apply

PASSWORD = "correct horse"


def accounts(session_factory, *names: str, role: str = "annotator") -> None:
    with session_factory.begin() as s:
        for name in names:
            add_user(s, name, role, PASSWORD)


# ---------------------------------------------------------------------------- accounts
def test_an_account_signs_in_and_its_password_is_never_stored(session_factory) -> None:
    accounts(session_factory, "ana")
    with session_factory.begin() as s:
        assert authenticate(s, "ana", PASSWORD).name == "ana"
        (ana,) = list_users(s)
        assert ana.role == "annotator" and PASSWORD not in ana.password_hash
        assert ana.password_hash.startswith("$argon2")
    for name, password in [("ana", "wrong password"), ("nobody", PASSWORD)]:
        with pytest.raises(LoginError, match="Wrong name or password"):
            with session_factory.begin() as s:
                authenticate(s, name, password)


def test_failed_sign_ins_are_logged_and_limited(session_factory) -> None:
    accounts(session_factory, "ana")
    now = utcnow()
    for _ in range(MAX_FAILURES):
        with pytest.raises(LoginError, match="Wrong name or password"):
            with session_factory() as s:  # the attempt is committed even though it failed
                try:
                    authenticate(s, "ana", "guess", now=now)
                finally:
                    s.commit()
    with pytest.raises(LoginError, match="Too many failed sign-ins"):
        with session_factory() as s:
            try:
                authenticate(s, "ana", PASSWORD, now=now)  # the right password, refused
            finally:
                s.commit()
    with session_factory.begin() as s:
        assert s.scalar(select(func.count(LoginAttempt.id))) == MAX_FAILURES + 1
        later = now + LOCKOUT + timedelta(seconds=1)
        assert authenticate(s, "ana", PASSWORD, now=later).name == "ana"


def test_a_password_change_or_a_disabled_account_ends_sessions(session_factory) -> None:
    accounts(session_factory, "ana")
    signed_in = utcnow()
    with session_factory.begin() as s:
        assert session_valid(s, "ana", signed_in)
        set_password(s, "ana", "another password")
        assert not session_valid(s, "ana", signed_in)
        assert session_valid(s, "ana", utcnow())
        set_disabled(s, "ana")
        assert not session_valid(s, "ana", utcnow())
    with pytest.raises(LoginError):
        with session_factory.begin() as s:
            authenticate(s, "ana", "another password")
    with session_factory.begin() as s:
        with pytest.raises(StoreError, match="at least 8 characters"):
            add_user(s, "bo", "annotator", "short")
        with pytest.raises(StoreError, match="role: got 'boss'"):
            add_user(s, "bo", "boss", PASSWORD)
        with pytest.raises(StoreError, match="'ana' already has an account"):
            add_user(s, "ana", "admin", PASSWORD)


def test_with_accounts_only_accounts_write_and_settling_needs_a_reviewer(
    session_factory, make_store
) -> None:
    ids = make_store(2)
    apply(session_factory, ids["p1"], ["keep"], annotator="old-name")  # before accounts: fine
    accounts(session_factory, "ana", "bo")
    with pytest.raises(StoreError, match="'cy' has no account"):
        apply(session_factory, ids["p0"], ["keep"], annotator="cy")
    apply(session_factory, ids["p0"], ["keep"], annotator="ana")
    apply(session_factory, ids["p0"], ["swap"], annotator="bo")
    with pytest.raises(StoreError, match="'ana' is an annotator; this needs the reviewer"):
        with session_factory.begin() as s:
            seen = label_state(s, ids["p0"]).event_id
            adjudicate(s, ids["p0"], "ana", "keep", expected_event_id=seen)
    with session_factory.begin() as s:
        set_disabled(s, "bo")
    with pytest.raises(StoreError, match="the account 'bo' is disabled"):
        apply(session_factory, ids["p1"], ["tie"], annotator="bo")
    accounts(session_factory, "rev", role="reviewer")
    with session_factory.begin() as s:
        seen = label_state(s, ids["p0"]).event_id
        adjudicate(s, ids["p0"], "rev", "keep", expected_event_id=seen)
        assert label_state(s, ids["p0"]).label == "keep"


# ---------------------------------------------------------------------------- assignment
def test_assignment_gives_each_pair_to_overlap_annotators_balanced(
    session_factory, make_store
) -> None:
    ids = make_store(10)
    with session_factory.begin() as s:
        result = assign(s, "d", ["ana", "bo", "cy"], overlap=2, seed=1)
    assert result.added == 20 and result.short == 0
    assert sorted(result.per_annotator.values()) == [6, 7, 7]
    with session_factory() as s:
        queues = {
            name: {p.id for p in list_pairs(s, "d", where=PairFilter(assigned_to=name), limit=99)}
            for name in ("ana", "bo", "cy")
        }
        assert is_blind(s, "d")  # overlap 2: blind by default
    per_pair = Counter(pair for queue in queues.values() for pair in queue)
    assert set(per_pair) == set(ids.values()) and set(per_pair.values()) == {2}
    with session_factory.begin() as s:  # again: nothing more to add
        assert assign(s, "d", ["ana", "bo", "cy"], overlap=2, seed=1).added == 0
        set_blind(s, "d", False)
        assert not is_blind(s, "d")
        with pytest.raises(StoreError, match="overlap: got 4; give 1 to 3"):
            assign(s, "d", ["ana", "bo", "cy"], overlap=4)


def test_the_same_seed_gives_the_same_assignment(session_factory, make_store) -> None:
    make_store(8, dataset="a")
    make_store(8, dataset="b")

    def queue(dataset: str) -> list[str]:
        with session_factory.begin() as s:
            assign(s, dataset, ["ana", "bo"], overlap=1, seed=7)
        with session_factory() as s:
            return [
                p.external_id
                for p in list_pairs(s, dataset, where=PairFilter(assigned_to="ana"), limit=99)
            ]

    assert queue("a") == queue("b") and len(queue("a")) == 4


def test_the_queue_of_work_left_and_reassignment(session_factory, make_store) -> None:
    ids = make_store(4)
    with session_factory.begin() as s:
        assign(s, "d", ["ana"], overlap=1)
    apply(session_factory, ids["p0"], ["keep"], annotator="ana")
    apply(session_factory, ids["p1"], ["swap", "undo"], annotator="ana")  # taken back: left
    with session_factory() as s:
        left = PairFilter(assigned_to="ana", unvoted_by="ana")
        assert [p.external_id for p in list_pairs(s, "d", where=left, limit=9)] == [
            "p1",
            "p2",
            "p3",
        ]
        done = PairFilter(assigned_to="ana", voted_by="ana")
        assert [p.external_id for p in list_pairs(s, "d", where=done, limit=9)] == ["p0"]
        (ana,) = progress(s, "d").annotators
        assert (ana.assigned, ana.done, ana.remaining) == (4, 1, 3)
    with session_factory.begin() as s:
        moved = reassign(s, "d", "ana", "bo")
    assert (moved.moved, moved.kept) == (3, 1)  # p0 stays: ana voted there
    with session_factory() as s:
        people = {p.name: (p.assigned, p.done) for p in progress(s, "d").annotators}
    assert people == {"ana": (1, 1), "bo": (3, 0)}


# ---------------------------------------------------------------------------- aggregation
def test_majority_ties_wait_for_a_reviewer_and_stay_out_of_training(
    session_factory, make_store
) -> None:
    ids = make_store(3)
    apply(session_factory, ids["p0"], ["swap"], annotator="ana")
    apply(session_factory, ids["p0"], ["swap"], annotator="bo")
    apply(session_factory, ids["p0"], ["keep"], annotator="cy")
    apply(session_factory, ids["p1"], ["keep"], annotator="ana")
    apply(session_factory, ids["p1"], ["swap"], annotator="bo")
    with session_factory() as s:
        agg = aggregate_labels(s, "d")
        assert agg.labels == {ids["p0"]: "swap", ids["p1"]: None}
        assert agg.undecided == {ids["p1"]}
        result = effective_pairs(s, "d")
        assert result.counts.undecided == 1 and result.counts.swap == 1
        assert [p.id for p in result.pairs] == ["p0", "p2"]
        assert result.pairs[0].chosen == "A bad answer 0."  # swapped by two votes to one
        assert "1 undecided" in result.counts.summary()
    with session_factory.begin() as s:
        seen = label_state(s, ids["p1"]).event_id
        review_label(s, ids["p1"], "rev", accept=False, label="tie", expected_event_id=seen)
        with pytest.raises(StoreError, match="the label is already swap; accept it instead"):
            seen = label_state(s, ids["p0"]).event_id
            review_label(s, ids["p0"], "rev", accept=False, label="swap", expected_event_id=seen)
        review_label(s, ids["p0"], "rev", accept=True, expected_event_id=seen)
    with session_factory() as s:
        agg = aggregate_labels(s, "d")
        assert agg.labels == {ids["p0"]: "swap", ids["p1"]: "tie"}
        assert agg.settled == {ids["p0"]: "rev", ids["p1"]: "rev"}
        assert verify_label_log(s) == []


def test_dawid_skene_outvotes_an_unreliable_annotator(session_factory, make_store) -> None:
    """Two careful annotators and one who answers at random: on the pairs where the careful
    two split, Dawid-Skene follows the one the third's noise does not count for."""
    ids = make_store(12)
    truth = ["keep", "swap"] * 6
    noise = ["swap", "keep", "keep", "swap", "tie", "keep"] * 2
    for i, pair_id in enumerate(ids.values()):
        apply(session_factory, pair_id, [truth[i]], annotator="ana")
        bo = truth[i] if i < 10 else ("swap" if truth[i] == "keep" else "keep")
        apply(session_factory, pair_id, [bo], annotator="bo")
        apply(session_factory, pair_id, [noise[i]], annotator="cy")
    with session_factory.begin() as s:
        majority = aggregate_labels(s, "d").labels
        set_aggregation(s, "d", "dawid-skene")
        ds = aggregate_labels(s, "d").labels
        with pytest.raises(StoreError, match="aggregation: got 'vote'"):
            set_aggregation(s, "d", "vote")
    assert len(ds) == 12 and all(
        label in ("keep", "swap", "tie", "discard") for label in ds.values()
    )
    agree_ds = sum(ds[pid] == truth[i] for i, pid in enumerate(ids.values()))
    agree_majority = sum(majority[pid] == truth[i] for i, pid in enumerate(ids.values()))
    assert agree_ds >= agree_majority


def test_team_agreement_by_hand(session_factory, make_store) -> None:
    """ana and bo on 4 shared pairs: 3 agree. Kappa by hand: p_o = 3/4; ana keeps 3 and swaps
    1, bo keeps 2 and swaps 2, so p_e = (3*2 + 1*2) / 16 = 1/2 and kappa = (3/4 - 1/2) / (1/2)
    = 0.5. Alpha on the same 4 pairs by hand: 8 values (5 keep, 3 swap), one disagreeing
    pair: D_o = 2/8, D_e = 2*5*3 / (8*7) = 30/56, alpha = 1 - (2/8) / (30/56) = 1 - 7/15."""
    ids = make_store(5)
    for pair, (a, b) in zip(
        ["p0", "p1", "p2", "p3"],
        [("keep", "keep"), ("keep", "keep"), ("swap", "swap"), ("keep", "swap")],
        strict=True,
    ):
        apply(session_factory, ids[pair], [a], annotator="ana")
        apply(session_factory, ids[pair], [b], annotator="bo")
    apply(session_factory, ids["p4"], ["tie"], annotator="ana")  # alone: no overlap
    with session_factory() as s:
        report = team_agreement(s, "d")
    (pair,) = report.pairwise
    assert (pair.a, pair.b, pair.n, pair.agreed) == ("ana", "bo", 4, 3)
    assert pair.kappa == pytest.approx(0.5)
    assert report.alpha == pytest.approx(1 - 7 / 15)
    assert report.overlapped == 4 and report.undecided == 1  # p3: one vote each
    with_agg = {w.name: (w.n, w.agreed) for w in report.with_aggregate}
    assert with_agg == {"ana": (4, 4), "bo": (3, 3)}  # p3 undecided: compared nowhere


def test_a_vote_without_account_is_refused_before_anything_is_written(
    session_factory, make_store
) -> None:
    ids = make_store(1)
    accounts(session_factory, "ana")
    with pytest.raises(StoreError, match="no account"):
        with session_factory.begin() as s:
            record_label(s, ids["p0"], "mallory", "swap", expected_event_id=None)
    with session_factory() as s:
        assert label_state(s, ids["p0"]).event_id is None


def test_a_blind_queue_is_ordered_without_the_votes(session_factory, make_store) -> None:
    """The queue puts the model's strongest disagreement with the label first; blind, it
    orders against the imported verdict, so a vote moves nothing in it."""
    from srm.store import annotation_queue, register_model, save_scores
    from tests.conftest import scores_of

    ids = make_store(3)
    with session_factory.begin() as s:
        model_id = register_model(s, "m", "/runs/m").id
        gaps = {"p0": 1.0, "p1": -2.0, "p2": 0.5}  # chosen - rejected as imported
        save_scores(s, model_id, "d", [scores_of(p, gap, 0.0) for p, gap in gaps.items()])
    apply(session_factory, ids["p0"], ["swap"], annotator="ana")

    def order(blind: bool) -> list[str]:
        with session_factory() as s:
            rows = annotation_queue(s, "d", model_id, blind=blind)
            return [p.external_id for p, _ in rows]

    assert order(blind=False) == ["p1", "p0", "p2"]  # p0's swap: the model now disagrees
    assert order(blind=True) == ["p1", "p2", "p0"]  # as imported: p0 is the surest
