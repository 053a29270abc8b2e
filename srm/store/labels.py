"""Label corrections: the append-only label log of every annotator's votes, undo, review and
adjudication. Sentence tags are in :mod:`srm.store.tags`, agreement in
:mod:`srm.store.agreement`, who may write in :mod:`srm.store.annotators`.

Every function takes a session and never commits; the caller owns the unit of work.

Every vote is kept: each annotator's vote on a pair is their newest label event there that
they did not take back (:func:`annotator_votes`), and the pair's label is the votes' majority
(a tie, or no vote, leaves it ``None`` until a reviewer settles it), unless the pair's newest
standing event is a reviewer's settling one (adjudicate, accept, reject), whose label stands
(:func:`replay_label`). ``Pair.label`` and each event's ``label`` hold that rule's result; a
dataset set to Dawid-Skene aggregates its votes at read time instead (:mod:`srm.store.team`).

A write is a compare-and-append: the client says which event it last saw for the pair
(``expected_event_id``, ``None`` for "no events yet"), and the write is refused with
:class:`StaleWriteError` when the pair moved on in a way that matters to it: for a vote or an
undo, an event of the writer's own (another tab) or a settling one since; for a settling write,
any event since (a reviewer decides on the votes they saw). Other annotators' votes never make
a vote stale: they are independent, and both count. The check and the append are race-free: on
SQLite writers hold the database write lock from ``BEGIN IMMEDIATE`` (see
:func:`srm.store.make_sessionmaker`); on PostgreSQL the pair row is locked (``SELECT ... FOR NO
KEY UPDATE``) for the rest of the transaction; and the unique (pair, seq) constraint backs both.

When accounts exist (:mod:`srm.store.team`), every writer must be an enabled account, and
settling needs the reviewer or admin role.

    >>> with Session.begin() as s:
    ...     state = label_state(s, pair.id)                  # label None, event_id None
    ...     record_label(s, pair.id, "ana", "swap", expected_event_id=state.event_id)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from srm.store.annotators import get_or_create_annotator
from srm.store.errors import StaleWriteError, StoreError
from srm.store.models import (
    LABELS,
    SETTLING,
    Annotator,
    Dataset,
    LabelEvent,
    Pair,
)


@dataclass(frozen=True)
class LabelState:
    """Where a pair's label stands: what the client shows and the id it must send back."""

    pair_id: int
    label: str | None
    """The current correction, or ``None``: no annotator label, the imported verdict stands."""
    event_id: int | None
    """The latest event's id (``None`` before the first): pass it as ``expected_event_id``."""

    @property
    def effective(self) -> str:
        """The label training uses: ``keep`` for an unlabelled pair."""
        return self.label or "keep"


def label_state(session: Session, pair_id: int) -> LabelState:
    row = session.execute(
        select(Pair.label, Pair.last_event_id).where(Pair.id == pair_id)
    ).one_or_none()
    if row is None:
        raise StoreError(f"no pair with id {pair_id} in the store")
    return LabelState(pair_id, row.label, row.last_event_id)


def label_history(session: Session, pair_id: int) -> list[LabelEvent]:
    """Every event of a pair, oldest first, with its annotator loaded (the audit trail)."""
    return list(
        session.scalars(
            select(LabelEvent)
            .where(LabelEvent.pair_id == pair_id)
            .options(selectinload(LabelEvent.annotator))
            .order_by(LabelEvent.seq)
        )
    )


def record_label(
    session: Session,
    pair_id: int,
    annotator: str,
    label: str,
    *,
    expected_event_id: int | None,
    note: str | None = None,
) -> LabelEvent:
    """Append ``annotator``'s vote ``label`` (keep, swap, tie or discard); return the event.

    It replaces the annotator's own earlier vote on the pair; other annotators' votes stay and
    count. Raises :class:`StaleWriteError` when the annotator (in another tab) or a reviewer
    changed the pair since ``expected_event_id``. After any error here, roll the transaction
    back (leaving ``with Session.begin()`` by the exception does), reload, and try again.
    """
    if label not in LABELS:
        raise StoreError(
            f"label: got {label!r}; use one of {', '.join(LABELS)} (undo has its own function)"
        )
    writer = get_or_create_annotator(session, annotator)
    pair = _lock_pair(session, pair_id)
    log = _log_rows(session, pair.id)
    _check_fresh(pair, log, expected_event_id, writer.name, strict=False)
    return _append(session, pair, log, writer, action=label, label=label, note=note)


def undo_label(
    session: Session,
    pair_id: int,
    annotator: str,
    *,
    expected_event_id: int | None,
    note: str | None = None,
) -> LabelEvent:
    """Take back ``annotator``'s newest event on the pair that still stands, by appending an
    ``undo`` naming it (``undoes_event_id``); nothing is deleted.

    Undo walks back like an editor's, through the writer's own events only: keep, swap, undo ->
    keep; undo again -> no vote of theirs. Other annotators' votes are untouched.
    """
    writer = get_or_create_annotator(session, annotator)
    pair = _lock_pair(session, pair_id)
    log = _log_rows(session, pair.id)
    _check_fresh(pair, log, expected_event_id, writer.name, strict=False)
    own = [row for row in standing_events(log) if row.name == writer.name]
    if not own:
        raise StoreError(f"pair {pair.external_id!r} has no label of {writer.name}'s to undo")
    return _append(
        session, pair, log, writer, action="undo", label=None, note=note, undoes=own[-1].id
    )


def adjudicate(
    session: Session,
    pair_id: int,
    adjudicator: str,
    label: str,
    *,
    expected_event_id: int | None,
    note: str | None = None,
) -> LabelEvent:
    """Settle a pair the annotators disagree on: append an ``adjudicate`` event whose ``label``
    becomes the pair's label (the annotators' own events stay in the log as they were).

    Refused (:class:`StoreError`) unless at least two annotators' votes on the pair differ
    (see :func:`disagreements`), and, like every settling write, with
    :class:`StaleWriteError` when anything happened on the pair since ``expected_event_id``.
    The adjudicator can undo it; a later vote by an annotator reopens the pair.
    """
    if label not in LABELS:
        raise StoreError(f"label: got {label!r}; an adjudication settles on one of {LABELS}")
    writer = get_or_create_annotator(session, adjudicator, role="reviewer")
    pair = _lock_pair(session, pair_id)
    log = _log_rows(session, pair.id)
    _check_fresh(pair, log, expected_event_id, writer.name, strict=True)
    votes = annotator_votes(log).get(pair.id, {})
    if len(set(votes.values())) < 2:
        given = ", ".join(f"{name} {vote}" for name, vote in sorted(votes.items())) or "none"
        raise StoreError(
            f"pair {pair.external_id!r}: the annotators do not disagree (labels: {given}); "
            "nothing to adjudicate: accept or reject the label instead"
        )
    return _append(session, pair, log, writer, action="adjudicate", label=label, note=note)


def review_label(
    session: Session,
    pair_id: int,
    reviewer: str,
    *,
    accept: bool,
    label: str | None = None,
    expected_event_id: int | None,
    note: str | None = None,
) -> LabelEvent:
    """A reviewer's verdict on a pair's label: ``accept`` confirms the current label (an
    ``accept`` event), else ``label`` replaces it (a ``reject`` event carrying the reviewer's
    label). Either settles the pair as an adjudication does, and is refused when anything
    happened on the pair since ``expected_event_id``.
    """
    writer = get_or_create_annotator(session, reviewer, role="reviewer")
    pair = _lock_pair(session, pair_id)
    log = _log_rows(session, pair.id)
    _check_fresh(pair, log, expected_event_id, writer.name, strict=True)
    if accept:
        if label is not None and label != pair.label:
            raise StoreError(f"accept confirms the current label ({pair.label}); got {label!r}")
        if pair.label is None:
            raise StoreError(
                f"pair {pair.external_id!r} has no label to accept (no votes, or a tie); "
                "settle it with a label (reject) or adjudicate the tie"
            )
        return _append(session, pair, log, writer, action="accept", label=pair.label, note=note)
    if label not in LABELS:
        raise StoreError(f"label: got {label!r}; rejecting a label means giving one of {LABELS}")
    if label == pair.label:
        raise StoreError(f"the label is already {label}; accept it instead")
    return _append(session, pair, log, writer, action="reject", label=label, note=note)


@dataclass(frozen=True)
class Disagreement:
    """A pair on which annotators' votes differ."""

    pair_id: int
    external_id: str
    votes: dict[str, str]
    """Annotator -> their vote on the pair (their newest label they did not take back)."""
    label: str | None
    """The pair's current label: the majority, ``None`` on a tie, or the settled label."""
    event_id: int | None
    """The pair's latest event: pass it to :func:`adjudicate` as ``expected_event_id``."""
    settled_by: str | None
    """Who settled it, when the pair's newest standing event is a settling one; else ``None``."""


def disagreements(session: Session, dataset: str, *, settled: bool = False) -> list[Disagreement]:
    """The dataset's pairs where annotators disagree, open ones only unless ``settled``, in
    pair order. A pair is settled while its newest standing event is a settling one."""
    rows = session.execute(
        log_query()
        .join(Pair, LabelEvent.pair_id == Pair.id)
        .join(Dataset)
        .where(Dataset.name == dataset)
    ).all()
    split = {
        pair_id: votes
        for pair_id, votes in annotator_votes(rows).items()
        if len(set(votes.values())) > 1
    }
    if not split:
        return []
    settled_by = settlers(rows)
    pairs = session.execute(
        select(Pair.id, Pair.external_id, Pair.label, Pair.last_event_id)
        .where(Pair.id.in_(split))
        .order_by(Pair.id)
    )
    return [
        Disagreement(
            p.id, p.external_id, split[p.id], p.label, p.last_event_id, settled_by.get(p.id)
        )
        for p in pairs
        if settled or p.id not in settled_by
    ]


def settlers(rows: list) -> dict[int, str]:
    """``pair id -> reviewer`` for the pairs whose newest standing event is a settling one
    (``rows``: label log rows as :func:`annotator_votes` takes them)."""
    newest: dict[int, Any] = {}
    for row in standing_events(rows):
        newest[row.pair_id] = row
    return {pair_id: row.name for pair_id, row in newest.items() if row.action in SETTLING}


def log_query() -> Select:
    """Label events as :func:`annotator_votes` and :func:`replay_label` read them, in (pair,
    seq) order: id, pair, seq, annotator's name, action, label and the event each undoes."""
    return (
        select(
            LabelEvent.id,
            LabelEvent.pair_id,
            LabelEvent.seq,
            Annotator.name,
            LabelEvent.action,
            LabelEvent.label,
            LabelEvent.undoes_event_id,
            LabelEvent.created_at,
        )
        .join(Annotator, LabelEvent.annotator_id == Annotator.id)
        .order_by(LabelEvent.pair_id, LabelEvent.seq)
    )


def _log_rows(session: Session, pair_id: int) -> list:
    return list(session.execute(log_query().where(LabelEvent.pair_id == pair_id)).all())


def standing_events(rows: list) -> list:
    """The events nobody took back, in their order: every event but the undos and the events
    an undo names."""
    undone = {row.undoes_event_id for row in rows if row.action == "undo"}
    return [row for row in rows if row.action != "undo" and row.id not in undone]


def majority(votes: Iterable[str]) -> str | None:
    """The label most votes give, or ``None`` for a tie at the top (or no vote).

    >>> majority(["keep", "swap", "keep"]), majority(["keep", "swap"]), majority([])
    ('keep', None, None)
    """
    ranked = Counter(votes).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def replay_label(rows: list) -> str | None:
    """A pair's label after its log ``rows`` (one pair's events in order, as :func:`log_query`
    gives them): a settling event's label while it is the newest standing event, else the
    :func:`majority` of the annotators' votes."""
    standing = standing_events(rows)
    if standing and standing[-1].action in SETTLING:
        return standing[-1].label
    return majority(annotator_votes(rows).get(rows[0].pair_id, {}).values() if rows else ())


def verify_label_log(session: Session) -> list[str]:
    """Replay every pair's label log and list what does not add up (nothing: all is well).

    Checks that each log is numbered 1, 2, 3... without gaps, that every undo takes back an
    earlier event of the pair that still stood, that every event's ``label`` is what the
    replay (:func:`replay_label`) gives, and that each pair's ``label``/``last_event_id``
    match its latest event.
    """
    problems = []
    logs: dict[int, list] = defaultdict(list)
    for row in session.execute(log_query()):
        logs[row.pair_id].append(row)
    pairs = session.execute(select(Pair.id, Pair.external_id, Pair.label, Pair.last_event_id))
    for pair_id, external_id, label, last_event_id in pairs:
        log = logs.get(pair_id, [])
        where = f"pair {external_id!r} (id {pair_id})"
        if [e.seq for e in log] != list(range(1, len(log) + 1)):
            problems.append(f"{where}: event numbers {[e.seq for e in log]} have gaps")
        for i, event in enumerate(log):
            if event.action == "undo":
                standing = {row.id for row in standing_events(log[:i])}
                if event.undoes_event_id not in standing:
                    problems.append(f"{where}: undo event {event.id} reverts no standing event")
            replayed = replay_label(log[: i + 1])
            if event.label != replayed:
                problems.append(f"{where}: event {event.id} says {event.label}, replay {replayed}")
        expected = (log[-1].label, log[-1].id) if log else (None, None)
        if (label, last_event_id) != expected:
            problems.append(
                f"{where}: pair says {label} (event {last_event_id}), log says "
                f"{expected[0]} (event {expected[1]})"
            )
    return problems


def _lock_pair(session: Session, pair_id: int) -> Pair:
    # FOR NO KEY UPDATE (PostgreSQL; SQLite ignores it, its writers already hold the lock):
    # serialises writers of this pair without blocking inserts that merely reference it.
    # populate_existing: a copy of the pair loaded earlier in this session may be stale.
    pair = session.scalars(
        select(Pair)
        .where(Pair.id == pair_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).first()
    if pair is None:
        raise StoreError(f"no pair with id {pair_id} in the store")
    return pair


def _check_fresh(
    pair: Pair, log: list, expected_event_id: int | None, writer: str, *, strict: bool
) -> None:
    """Refuse (:class:`StaleWriteError`) a write whose writer has not seen what matters to it:
    with ``strict`` (settling), any event after ``expected_event_id``; else the writer's own
    events and settling ones. Names no other annotator's vote (blind labelling)."""
    if expected_event_id is None:
        seen = 0
    else:
        match = [row.seq for row in log if row.id == expected_event_id]
        if not match:
            raise StaleWriteError(
                f"pair {pair.external_id!r} has no event {expected_event_id} (an id from "
                "another pair?); nothing was written. Reload the pair and decide again."
            )
        seen = match[0]
    since = [row for row in log if row.seq > seen]
    for row in since if strict else reversed(since):
        if strict or row.name == writer or row.action in SETTLING:
            if row.action == "undo":
                what = "an undo"
            elif row.action in SETTLING:
                what = f"{row.action}, {row.label}"
            else:
                what = row.action if (strict or row.name == writer) else "a vote"
            who = "you (in another tab or window)" if row.name == writer else row.name
            raise StaleWriteError(
                f"pair {pair.external_id!r} was changed by {who} at "
                f"{row.created_at:%Y-%m-%d %H:%M:%S} UTC ({what}, event {row.id}) after you "
                "loaded it; nothing was written. Reload the pair and decide again."
            )


class _NewRow(NamedTuple):
    id: int
    pair_id: int
    seq: int
    name: str
    action: str
    label: str | None
    undoes_event_id: int | None


def _append(
    session: Session,
    pair: Pair,
    log: list,
    writer: Annotator,
    *,
    action: str,
    label: str | None,
    note: str | None,
    undoes: int | None = None,
) -> LabelEvent:
    seq = log[-1].seq + 1 if log else 1
    # The new event's id is not known before the insert; -1 is never the target of an undo.
    new = _NewRow(-1, pair.id, seq, writer.name, action, label, undoes)
    after = replay_label([*log, new])
    event = LabelEvent(
        pair_id=pair.id,
        seq=seq,
        annotator=writer,
        action=action,
        label=after,
        undoes_event_id=undoes,
        note=note or None,
    )
    session.add(event)
    try:
        session.flush()
    except IntegrityError as err:
        # Only reachable if a writer bypassed the lock above: the (pair, seq) slot was taken.
        raise StaleWriteError(
            f"pair {pair.external_id!r} was changed by another writer at the same moment; "
            "nothing was written. Reload the pair and decide again."
        ) from err
    pair.label = after
    pair.last_event_id = event.id
    session.flush()
    return event


def annotator_votes(rows: list) -> dict[int, dict[str, str]]:
    """``pair id -> annotator -> label``: each annotator's latest label on each pair that
    nobody undid. ``rows`` are a label log's events in (pair, seq) order, each with ``id``,
    ``pair_id``, ``name`` (the annotator), ``action`` and ``undoes_event_id``. Adjudications
    are not votes: they settle the annotators' disagreement, so they take no side in it."""
    undone = {row.undoes_event_id for row in rows if row.undoes_event_id is not None}
    votes: dict[int, dict[str, str]] = defaultdict(dict)
    for row in rows:
        if row.action in LABELS and row.id not in undone:
            votes[row.pair_id][row.name] = row.action
    return dict(votes)
