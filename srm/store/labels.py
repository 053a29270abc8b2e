"""Label corrections: the append-only label log, undo, adjudication, sentence tags, agreement.

Every function takes a session and never commits; the caller owns the unit of work. A label
write is a compare-and-append: the client says which event it last saw for the pair
(``expected_event_id``, ``None`` for "no events yet"), and the write is refused with
:class:`StaleWriteError` when the pair has moved on, so one annotator never silently overwrites
another. The check and the append are race-free: on SQLite writers hold the database write lock
from ``BEGIN IMMEDIATE`` (see :func:`srm.store.make_sessionmaker`); on PostgreSQL the pair row is
locked (``SELECT ... FOR NO KEY UPDATE``) for the rest of the transaction; and the unique
(pair, seq) constraint backs both up.

When annotators disagree, the latest label stands until a reviewer settles the pair:
:func:`disagreements` lists such pairs and :func:`adjudicate` appends an ``adjudicate`` event,
through the same compare-and-append, whose label becomes the pair's.

    >>> with Session.begin() as s:
    ...     state = label_state(s, pair.id)                  # label None, event_id None
    ...     record_label(s, pair.id, "ana", "swap", expected_event_id=state.event_id)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from srm.store.engine import insert_unless_present
from srm.store.errors import StaleWriteError, StoreError
from srm.store.models import (
    LABELS,
    SIDES,
    TAGS,
    Annotator,
    Dataset,
    LabelEvent,
    Pair,
    SentenceTag,
    utcnow,
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


# ------------------------------------------------------------------------------- annotators
def get_or_create_annotator(session: Session, name: str) -> Annotator:
    """The annotator called ``name`` (surrounding spaces ignored), created on first use.

    Two writers creating the same new annotator at once both succeed: the insert ignores a
    duplicate name instead of failing the second transaction.
    """
    name = name.strip()
    if not name:
        raise StoreError("annotator: give a non-empty name (who made this correction?)")
    annotator = session.scalar(select(Annotator).where(Annotator.name == name))
    if annotator is None:
        insert_unless_present(session, Annotator, {"name": name, "created_at": utcnow()})
        annotator = session.scalars(select(Annotator).where(Annotator.name == name)).one()
    return annotator


# ------------------------------------------------------------------------------- the label log
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
    """Append ``label`` (keep, swap, tie or discard) to the pair's log; return the new event.

    Raises :class:`StaleWriteError` when the pair's latest event is not ``expected_event_id``.
    After any error here, roll the transaction back (leaving ``with Session.begin()`` by the
    exception does), reload the pair, and try again.
    """
    if label not in LABELS:
        raise StoreError(
            f"label: got {label!r}; use one of {', '.join(LABELS)} (undo has its own function)"
        )
    pair = _lock_pair(session, pair_id)
    latest = _check_fresh(session, pair, expected_event_id)
    return _append(session, pair, latest, annotator, action=label, label=label, note=note)


def undo_label(
    session: Session,
    pair_id: int,
    annotator: str,
    *,
    expected_event_id: int | None,
    note: str | None = None,
) -> LabelEvent:
    """Revert the pair's latest label that is not already undone, by appending an ``undo``.

    Undo walks back like an editor's: keep, swap, undo -> keep; undo again -> unlabelled.
    Nothing is deleted; the undo event names the event it reverts (``undoes_event_id``).
    """
    pair = _lock_pair(session, pair_id)
    latest = _check_fresh(session, pair, expected_event_id)
    standing = standing_labels(label_history(session, pair.id))
    if not standing:
        raise StoreError(f"pair {pair.external_id!r} has no label to undo")
    undone = standing[-1]
    previous = standing[-2].label if len(standing) > 1 else None
    return _append(
        session,
        pair,
        latest,
        annotator,
        action="undo",
        label=previous,
        note=note,
        undoes_event_id=undone.id,
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

    Refused (:class:`StoreError`) unless at least two annotators' standing labels on the pair
    differ (see :func:`disagreements`), and, like every write, with :class:`StaleWriteError`
    when the pair moved on since ``expected_event_id``. An undo takes an adjudication back like
    any label; a later label by an annotator reopens the disagreement.
    """
    if label not in LABELS:
        raise StoreError(f"label: got {label!r}; an adjudication settles on one of {LABELS}")
    pair = _lock_pair(session, pair_id)
    latest = _check_fresh(session, pair, expected_event_id)
    votes = _pair_votes(session, pair.id)
    if len(set(votes.values())) < 2:
        given = ", ".join(f"{name} {vote}" for name, vote in sorted(votes.items())) or "none"
        raise StoreError(
            f"pair {pair.external_id!r}: the annotators do not disagree (labels: {given}); "
            "nothing to adjudicate, label the pair instead"
        )
    return _append(session, pair, latest, adjudicator, action="adjudicate", label=label, note=note)


@dataclass(frozen=True)
class Disagreement:
    """A pair on which annotators' standing labels differ."""

    pair_id: int
    external_id: str
    votes: dict[str, str]
    """Annotator -> their latest label on the pair that nobody undid."""
    label: str | None
    """The pair's current label (what training uses)."""
    event_id: int | None
    """The pair's latest event: pass it to :func:`adjudicate` as ``expected_event_id``."""
    settled_by: str | None
    """Who adjudicated, when the pair's standing label is an adjudication; else ``None``."""


def disagreements(session: Session, dataset: str, *, settled: bool = False) -> list[Disagreement]:
    """The dataset's pairs where annotators disagree, open ones only unless ``settled``, in
    pair order. A pair is settled while its newest standing event is an adjudication."""
    rows = session.execute(
        select(
            LabelEvent.id,
            LabelEvent.pair_id,
            Annotator.name,
            LabelEvent.action,
            LabelEvent.label,
            LabelEvent.undoes_event_id,
        )
        .join(Annotator, LabelEvent.annotator_id == Annotator.id)
        .join(Pair, LabelEvent.pair_id == Pair.id)
        .join(Dataset)
        .where(Dataset.name == dataset)
        .order_by(LabelEvent.pair_id, LabelEvent.seq)
    ).all()
    split = {
        pair_id: votes
        for pair_id, votes in annotator_votes(rows).items()
        if len(set(votes.values())) > 1
    }
    if not split:
        return []
    settled_by = _settled_by(rows)
    pairs = session.execute(
        select(Pair.id, Pair.external_id, Pair.label, Pair.last_event_id)
        .where(Pair.id.in_(split))
        .order_by(Pair.id)
    )
    return [
        Disagreement(p.id, p.external_id, split[p.id], p.label, p.last_event_id, settled_by[p.id])
        for p in pairs
        if settled or settled_by[p.id] is None
    ]


def _settled_by(rows: list) -> dict[int, str | None]:
    """``pair id -> adjudicator`` when the pair's newest standing event is an adjudication."""
    stacks: dict[int, list] = defaultdict(list)
    for row in rows:
        if row.action == "undo":
            stacks[row.pair_id].pop()
        else:
            stacks[row.pair_id].append(row)
    return defaultdict(
        lambda: None,
        {
            pair_id: stack[-1].name
            for pair_id, stack in stacks.items()
            if stack and stack[-1].action == "adjudicate"
        },
    )


def _pair_votes(session: Session, pair_id: int) -> dict[str, str]:
    query = _vote_rows().where(LabelEvent.pair_id == pair_id).order_by(LabelEvent.seq)
    return annotator_votes(session.execute(query).all()).get(pair_id, {})


def _vote_rows() -> Select:
    """Label events as :func:`annotator_votes` reads them: id, pair, annotator's name, action
    and the event each undoes."""
    return select(
        LabelEvent.id,
        LabelEvent.pair_id,
        Annotator.name,
        LabelEvent.action,
        LabelEvent.undoes_event_id,
    ).join(Annotator, LabelEvent.annotator_id == Annotator.id)


def verify_label_log(session: Session) -> list[str]:
    """Replay every pair's label log and list what does not add up (nothing: all is well).

    Checks that each log is numbered 1, 2, 3... without gaps, that every undo reverts the
    newest standing label and every event's ``label`` is what the replay gives, and that each
    pair's ``label``/``last_event_id`` match its latest event.
    """
    problems = []
    logs: dict[int, list[LabelEvent]] = defaultdict(list)
    for event in session.scalars(select(LabelEvent).order_by(LabelEvent.pair_id, LabelEvent.seq)):
        logs[event.pair_id].append(event)
    pairs = session.execute(select(Pair.id, Pair.external_id, Pair.label, Pair.last_event_id))
    for pair_id, external_id, label, last_event_id in pairs:
        log = logs.get(pair_id, [])
        where = f"pair {external_id!r} (id {pair_id})"
        if [e.seq for e in log] != list(range(1, len(log) + 1)):
            problems.append(f"{where}: event numbers {[e.seq for e in log]} have gaps")
        standing: list[LabelEvent] = []
        for event in log:
            if event.action == "undo":
                top = standing.pop() if standing else None
                if top is None or top.id != event.undoes_event_id:
                    problems.append(f"{where}: undo event {event.id} reverts the wrong event")
            else:
                standing.append(event)
            replayed = standing[-1].label if standing else None
            if event.label != replayed:
                problems.append(f"{where}: event {event.id} says {event.label}, replay {replayed}")
        expected = (log[-1].label, log[-1].id) if log else (None, None)
        if (label, last_event_id) != expected:
            problems.append(
                f"{where}: pair says {label} (event {last_event_id}), log says "
                f"{expected[0]} (event {expected[1]})"
            )
    return problems


def standing_labels(events: list[LabelEvent]) -> list[LabelEvent]:
    """The label events not undone, oldest first: each undo pops the newest one."""
    stack: list[LabelEvent] = []
    for event in events:
        if event.action == "undo":
            stack.pop()
        else:
            stack.append(event)
    return stack


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


def _check_fresh(session: Session, pair: Pair, expected_event_id: int | None) -> LabelEvent | None:
    """The pair's latest event, if the client saw it; else :class:`StaleWriteError`."""
    latest = session.get(LabelEvent, pair.last_event_id) if pair.last_event_id else None
    if pair.last_event_id == expected_event_id:
        return latest
    if latest is None:
        raise StaleWriteError(
            f"pair {pair.external_id!r} has no label events, but the write expected event "
            f"{expected_event_id} (an id from another pair?); nothing was written. Reload the "
            "pair and send expected_event_id=None."
        )
    saw = "no label events" if expected_event_id is None else f"event {expected_event_id}"
    if latest.action == "undo":
        what = f"undo, back to {latest.label or 'unlabelled'}"
    else:
        what = latest.action
    raise StaleWriteError(
        f"pair {pair.external_id!r} was changed by {latest.annotator.name} at "
        f"{latest.created_at:%Y-%m-%d %H:%M:%S} UTC ({what}, event {latest.id}) after you "
        f"loaded it (you saw {saw}); nothing was written. Reload the pair and decide again."
    )


def _append(
    session: Session,
    pair: Pair,
    latest: LabelEvent | None,
    annotator: str,
    *,
    action: str,
    label: str | None,
    note: str | None,
    undoes_event_id: int | None = None,
) -> LabelEvent:
    event = LabelEvent(
        pair_id=pair.id,
        seq=latest.seq + 1 if latest is not None else 1,
        annotator=get_or_create_annotator(session, annotator),
        action=action,
        label=label,
        undoes_event_id=undoes_event_id,
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
    pair.label = label
    pair.last_event_id = event.id
    session.flush()
    return event


# ------------------------------------------------------------------------------- sentence tags
def tag_sentence(
    session: Session,
    pair_id: int,
    annotator: str,
    side: str,
    span: tuple[int, int],
    tag: str,
    *,
    note: str | None = None,
) -> SentenceTag:
    """Tag the characters ``span = (start, end)`` of the pair's ``side`` response.

    ``side`` is ``chosen`` or ``rejected`` as imported; ``tag`` is good, bad or unsure. Spans
    usually come from :func:`srm.segment.segment` (``(s.start, s.end)``). Tagging a span again
    appends a new row; :func:`current_tags` returns the latest per annotator and span.
    """
    if side not in SIDES:
        raise StoreError(f"side: got {side!r}; use chosen or rejected")
    if tag not in TAGS:
        raise StoreError(f"tag: got {tag!r}; use one of {', '.join(TAGS)}")
    pair = session.get(Pair, pair_id)
    if pair is None:
        raise StoreError(f"no pair with id {pair_id} in the store")
    start, end = span
    length = len(getattr(pair, side))
    if not 0 <= start < end <= length:
        raise StoreError(
            f"span: got ({start}, {end}); the {side} response of pair {pair.external_id!r} has "
            f"{length} characters, so give 0 <= start < end <= {length}"
        )
    row = SentenceTag(
        pair_id=pair.id,
        annotator=get_or_create_annotator(session, annotator),
        side=side,
        span_start=start,
        span_end=end,
        tag=tag,
        note=note or None,
    )
    session.add(row)
    session.flush()
    return row


def tag_history(session: Session, pair_id: int) -> list[SentenceTag]:
    """Every tag given on a pair, oldest first, with its annotator loaded (for the audit
    trail: a re-tag is a new row, so who changed which sentence's tag, and when, is kept)."""
    return list(
        session.scalars(
            select(SentenceTag)
            .where(SentenceTag.pair_id == pair_id)
            .options(selectinload(SentenceTag.annotator))
            .order_by(SentenceTag.id)
        )
    )


def current_tags(session: Session, pair_ids: list[int] | None = None) -> list[SentenceTag]:
    """The latest tag per (pair, annotator, side, span), oldest first; all pairs by default."""
    query = select(SentenceTag).options(selectinload(SentenceTag.annotator))
    if pair_ids is not None:
        query = query.where(SentenceTag.pair_id.in_(pair_ids))
    latest: dict[tuple[int, int, str, int, int], SentenceTag] = {}
    for row in session.scalars(query.order_by(SentenceTag.id)):
        latest[(row.pair_id, row.annotator_id, row.side, row.span_start, row.span_end)] = row
    return sorted(latest.values(), key=lambda row: row.id)


# ------------------------------------------------------------------------------- agreement
@dataclass(frozen=True)
class AnnotatorStats:
    name: str
    events: int
    """Every event the annotator appended, undos included."""
    undos: int
    pairs: int
    """Pairs on which the annotator's own latest label stands (is not undone)."""
    labels: dict[str, int] = field(default_factory=dict)
    """How many of those pairs carry each label."""


@dataclass(frozen=True)
class PairwiseAgreement:
    """Two annotators on the pairs both of them labelled."""

    a: str
    b: str
    n: int
    agreed: int
    kappa: float | None
    """Cohen's kappa; ``None`` when chance agreement is 1 (both gave every shared pair one and
    the same label), where kappa is 0/0 and the percent agreement says it all."""

    @property
    def percent(self) -> float:
        return 100.0 * self.agreed / self.n


@dataclass(frozen=True)
class AgreementReport:
    annotators: list[AnnotatorStats]
    pairwise: list[PairwiseAgreement]
    """One entry per two annotators with at least one pair in common."""


def agreement(session: Session, dataset: str | None = None) -> AgreementReport:
    """Per-annotator counts, and percent agreement and Cohen's kappa for every two annotators.

    An annotator's label on a pair is their latest label event there that nobody undid. Two
    annotators are compared on the pairs both have such a label on, over the four labels.
    Adjudications count as events of whoever settled, never as their label on the pair.
    """
    query = _vote_rows().order_by(LabelEvent.pair_id, LabelEvent.seq)
    if dataset is not None:
        query = (
            query.join(Pair, LabelEvent.pair_id == Pair.id)
            .join(Dataset)
            .where(Dataset.name == dataset)
        )
    rows = session.execute(query).all()
    events: Counter[str] = Counter(row.name for row in rows)
    undos: Counter[str] = Counter(row.name for row in rows if row.action == "undo")
    labels: dict[str, dict[int, str]] = defaultdict(dict)  # annotator -> pair -> label
    for pair_id, votes in annotator_votes(rows).items():
        for name, label in votes.items():
            labels[name][pair_id] = label
    stats = [
        AnnotatorStats(
            name,
            events=events[name],
            undos=undos[name],
            pairs=len(labels[name]),
            labels=dict(Counter(labels[name].values())),
        )
        for name in sorted(events)
    ]
    pairwise = []
    for a, b in combinations(sorted(labels), 2):
        shared = sorted(labels[a].keys() & labels[b].keys())
        if shared:
            pairwise.append(_compare(a, b, [(labels[a][p], labels[b][p]) for p in shared]))
    return AgreementReport(stats, pairwise)


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


def _compare(a: str, b: str, pairs: list[tuple[str, str]]) -> PairwiseAgreement:
    n = len(pairs)
    agreed = sum(x == y for x, y in pairs)
    count_a = Counter(x for x, _ in pairs)
    count_b = Counter(y for _, y in pairs)
    # p_e = sum_k p_a(k) p_b(k); kept in integers (times n^2) so p_e == 1 is tested exactly.
    chance = sum(count_a[k] * count_b[k] for k in LABELS)
    if chance == n * n:
        return PairwiseAgreement(a, b, n, agreed, None)
    kappa = (agreed * n - chance) / (n * n - chance)  # (p_o - p_e) / (1 - p_e)
    return PairwiseAgreement(a, b, n, agreed, kappa)
