"""Annotation as a team: accounts, sign-in, assignment with overlap, blind labelling, and the
label a dataset's votes aggregate to.

Every function takes a session and never commits, as elsewhere in :mod:`srm.store`.

- **Accounts** are annotators with a role (:data:`~srm.store.models.ROLES`) and an argon2
  password hash (``argon2-cffi``). Once one exists, only accounts may write
  (:func:`srm.store.annotators.get_or_create_annotator`) and the app signs people in.
- **Sign-in** (:func:`authenticate`) logs every attempt in ``login_attempts``; after
  :data:`MAX_FAILURES` failures for a name within :data:`LOCKOUT`, that name is refused until
  the window has passed, right password or not.
- **Assignment** (:func:`assign`) gives each pair of a dataset to ``overlap`` annotators,
  balanced (each gets as near the same number as can be) and reproducible from a seed;
  :func:`reassign` moves the pairs someone has not voted on yet to someone else.
- **Blind labelling** (:func:`is_blind`): on by default when overlap > 1.
- **Aggregation** (:func:`aggregate_labels`): the label training, export and evaluation use,
  from every vote by the dataset's method: ``majority`` (the per-pair rule of
  :mod:`srm.store.labels`, ties waiting for adjudication) or ``dawid-skene`` (crowd-kit).
"""

from __future__ import annotations

import logging
import random
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from srm.store.agreement import agreement_pairs
from srm.store.annotators import get_or_create_annotator
from srm.store.datasets import dataset_id
from srm.store.errors import StoreError
from srm.store.labels import (
    annotator_votes,
    log_query,
    majority,
    settlers,
    standing_events,
)
from srm.store.models import (
    AGGREGATIONS,
    LABELS,
    ROLES,
    Annotator,
    Assignment,
    Dataset,
    LabelEvent,
    LoginAttempt,
    Pair,
    utcnow,
)

logger = logging.getLogger(__name__)

#: Failed sign-ins for one name within :data:`LOCKOUT` after which the name is refused.
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
#: Shortest password an account may have.
MIN_PASSWORD = 8


class LoginError(StoreError):
    """A sign-in that did not succeed; the message is safe to show (it never says whether the
    name exists)."""


# ------------------------------------------------------------------------------- accounts
def _hasher():  # noqa: ANN202
    from argon2 import PasswordHasher

    return PasswordHasher()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"password: use at least {MIN_PASSWORD} characters")
    if "\x00" in password:
        raise StoreError("password: a NUL character cannot be part of a password")


def add_user(session: Session, name: str, role: str, password: str) -> Annotator:
    """Create an account, or give one to an annotator name that already has votes (their
    votes stay theirs). Refused for a name that already has an account."""
    name = name.strip()
    if not name:
        raise StoreError("name: give a non-empty account name")
    if len(name) > 200:
        raise StoreError(f"name: {len(name)} characters; use at most 200")
    if role not in ROLES:
        raise StoreError(f"role: got {role!r}; use one of {', '.join(ROLES)}")
    _check_password(password)
    annotator = session.scalar(select(Annotator).where(Annotator.name == name))
    if annotator is not None and annotator.role is not None:
        raise StoreError(
            f"{name!r} already has an account ({annotator.role}); "
            "use `srm users passwd` to change the password"
        )
    if annotator is None:
        annotator = Annotator(name=name)
        session.add(annotator)
    annotator.role = role
    annotator.password_hash = _hasher().hash(password)
    annotator.password_set_at = utcnow()
    annotator.disabled = False
    session.flush()
    return annotator


def get_account(session: Session, name: str) -> Annotator:
    account = session.scalar(
        select(Annotator).where(Annotator.name == name.strip(), Annotator.role.is_not(None))
    )
    if account is None:
        raise StoreError(f"no account called {name.strip()!r} (see `srm users list`)")
    return account


def list_users(session: Session) -> list[Annotator]:
    """Every account, by name."""
    return list(
        session.scalars(
            select(Annotator).where(Annotator.role.is_not(None)).order_by(Annotator.name)
        )
    )


def set_password(session: Session, name: str, password: str) -> Annotator:
    """A new password; app sessions signed in before it end."""
    _check_password(password)
    account = get_account(session, name)
    account.password_hash = _hasher().hash(password)
    account.password_set_at = utcnow()
    session.flush()
    return account


def set_disabled(session: Session, name: str, disabled: bool = True) -> Annotator:
    """Disable an account (it can no longer sign in or write; its votes stay), or enable it."""
    account = get_account(session, name)
    account.disabled = disabled
    session.flush()
    return account


def set_role(session: Session, name: str, role: str) -> Annotator:
    if role not in ROLES:
        raise StoreError(f"role: got {role!r}; use one of {', '.join(ROLES)}")
    account = get_account(session, name)
    account.role = role
    session.flush()
    return account


def authenticate(session: Session, name: str, password: str, *, now: datetime | None = None):
    """The enabled account ``name`` whose password is ``password``; else :class:`LoginError`.

    Every attempt is written to ``login_attempts`` (the caller commits it, failed or not) and
    a failure is logged. A name with :data:`MAX_FAILURES` failures in the last
    :data:`LOCKOUT` (since its last success) is refused without checking the password.
    """
    from argon2.exceptions import InvalidHashError, VerificationError

    now = now or utcnow()
    name = name.strip()[:200]
    since = now - LOCKOUT
    last_ok = session.scalar(
        select(func.max(LoginAttempt.at)).where(LoginAttempt.name == name, LoginAttempt.ok)
    )
    if last_ok is not None and _aware(last_ok) > since:
        since = _aware(last_ok)
    failures = session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.name == name, ~LoginAttempt.ok, LoginAttempt.at > since)
    )
    if failures >= MAX_FAILURES:
        session.add(LoginAttempt(name=name, ok=False, at=now))
        logger.warning("sign-in refused for %r: %d failures in %s", name, failures, LOCKOUT)
        minutes = int(LOCKOUT.total_seconds() // 60)
        raise LoginError(
            f"Too many failed sign-ins for this name: wait {minutes} minutes, or ask an admin."
        )
    account = session.scalar(
        select(Annotator).where(Annotator.name == name, Annotator.role.is_not(None))
    )
    ok = False
    if account is not None and not account.disabled and account.password_hash:
        try:
            ok = _hasher().verify(account.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher().hash(password)  # the same work either way: timing says nothing of the name
    session.add(LoginAttempt(name=name, ok=ok, at=now))
    session.flush()
    if not ok:
        logger.warning("a failed sign-in for %r", name)
        raise LoginError("Wrong name or password, or the account is disabled.")
    return account


def session_valid(session: Session, name: str, signed_in_at: datetime) -> bool:
    """Whether a sign-in made at ``signed_in_at`` still holds: the account exists, is enabled,
    and its password was not changed since."""
    account = session.scalar(
        select(Annotator).where(Annotator.name == name, Annotator.role.is_not(None))
    )
    if account is None or account.disabled:
        return False
    changed = account.password_set_at
    return changed is None or _aware(changed) <= _aware(signed_in_at)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time here is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------------------- assignment
@dataclass(frozen=True)
class AssignResult:
    dataset: str
    overlap: int
    added: int
    """Assignments made by this call."""
    per_annotator: dict[str, int]
    """Each named annotator's assigned pairs in the dataset after it."""
    short: int
    """Pairs still below ``overlap`` (only when fewer annotators than ``overlap`` are free)."""


def _writers(session: Session, names: list[str]) -> list[Annotator]:
    found = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        found.append(get_or_create_annotator(session, name))
    if not found:
        raise StoreError("annotators: name at least one")
    return found


def assign(
    session: Session, dataset: str, annotators: list[str], overlap: int, *, seed: int = 0
) -> AssignResult:
    """Give each pair of ``dataset`` to ``overlap`` of ``annotators``, balanced.

    Pairs are taken in a seeded shuffle; each goes to the annotators with the fewest pairs so
    far (ties broken by the same seed), never twice to one person. Pairs already assigned keep
    their annotators and are topped up to ``overlap``; running it again adds nothing. When
    accounts exist, every name must be an enabled account. The dataset's ``overlap`` is set,
    which turns blind labelling on when it is above 1 (unless set otherwise).
    """
    writers = _writers(session, annotators)
    if not 1 <= overlap <= len(writers):
        raise StoreError(
            f"overlap: got {overlap}; give 1 to {len(writers)} (the number of annotators named)"
        )
    ds_id = dataset_id(session, dataset)
    pair_ids = list(
        session.scalars(select(Pair.id).where(Pair.dataset_id == ds_id).order_by(Pair.id))
    )
    have: dict[int, set[int]] = defaultdict(set)
    for pair_id, annotator_id in session.execute(
        select(Assignment.pair_id, Assignment.annotator_id)
        .join(Pair, Assignment.pair_id == Pair.id)
        .where(Pair.dataset_id == ds_id)
    ):
        have[pair_id].add(annotator_id)
    load = Counter({w.id: 0 for w in writers})
    for assigned in have.values():
        for annotator_id in assigned:
            if annotator_id in load:
                load[annotator_id] += 1
    rng = random.Random(seed)
    rng.shuffle(pair_ids)
    tiebreak = {w.id: rng.random() for w in writers}
    added, short, now = [], 0, utcnow()
    for pair_id in pair_ids:
        need = overlap - len(have[pair_id])
        if need <= 0:
            continue
        free = sorted(
            (w.id for w in writers if w.id not in have[pair_id]),
            key=lambda a: (load[a], tiebreak[a]),
        )
        for annotator_id in free[:need]:
            added.append({"pair_id": pair_id, "annotator_id": annotator_id, "assigned_at": now})
            load[annotator_id] += 1
            have[pair_id].add(annotator_id)
        short += len(have[pair_id]) < overlap
    if added:
        session.execute(Assignment.__table__.insert(), added)
    ds = session.get(Dataset, ds_id)
    ds.overlap = max(overlap, ds.overlap or 0)
    session.flush()
    return AssignResult(dataset, overlap, len(added), {w.name: load[w.id] for w in writers}, short)


@dataclass(frozen=True)
class ReassignResult:
    moved: int
    kept: int
    """Pairs left with the first annotator: they had voted there, or the second already had it."""


def reassign(session: Session, dataset: str, from_name: str, to_name: str) -> ReassignResult:
    """Move ``from_name``'s assigned pairs of ``dataset`` they have not voted on to ``to_name``
    (the pairs ``to_name`` already holds stay where they are)."""
    source = get_or_any_annotator(session, from_name)
    target = _writers(session, [to_name])[0]
    if source.id == target.id:
        raise StoreError("reassign: name two different annotators")
    ds_id = dataset_id(session, dataset)
    voted = set(_voted_pairs(session, ds_id, source.name))
    theirs = set(
        session.scalars(
            select(Assignment.pair_id)
            .join(Pair, Assignment.pair_id == Pair.id)
            .where(Pair.dataset_id == ds_id, Assignment.annotator_id == target.id)
        )
    )
    rows = session.scalars(
        select(Assignment)
        .join(Pair, Assignment.pair_id == Pair.id)
        .where(Pair.dataset_id == ds_id, Assignment.annotator_id == source.id)
    ).all()
    moved = kept = 0
    for row in rows:
        if row.pair_id in voted or row.pair_id in theirs:
            kept += 1
            continue
        row.annotator_id = target.id
        row.assigned_at = utcnow()
        moved += 1
    session.flush()
    return ReassignResult(moved, kept)


def unassign(session: Session, dataset: str) -> int:
    """Remove every assignment of ``dataset`` (votes stay); the number removed."""
    ds_id = dataset_id(session, dataset)
    ids = select(Pair.id).where(Pair.dataset_id == ds_id).scalar_subquery()
    removed = session.execute(delete(Assignment).where(Assignment.pair_id.in_(ids))).rowcount
    session.get(Dataset, ds_id).overlap = None
    session.flush()
    return removed or 0


def get_or_any_annotator(session: Session, name: str) -> Annotator:
    annotator = session.scalar(select(Annotator).where(Annotator.name == name.strip()))
    if annotator is None:
        raise StoreError(f"no annotator called {name.strip()!r} in the store")
    return annotator


def has_assignments(session: Session, dataset: str) -> bool:
    ds_id = dataset_id(session, dataset)
    return (
        session.scalar(
            select(Assignment.id)
            .join(Pair, Assignment.pair_id == Pair.id)
            .where(Pair.dataset_id == ds_id)
            .limit(1)
        )
        is not None
    )


def _voted_pairs(session: Session, ds_id: int, name: str) -> list[int]:
    rows = session.execute(
        log_query().join(Pair, LabelEvent.pair_id == Pair.id).where(Pair.dataset_id == ds_id)
    ).all()
    return [pair_id for pair_id, votes in annotator_votes(rows).items() if name in votes]


@dataclass(frozen=True)
class AnnotatorProgress:
    name: str
    assigned: int
    done: int
    """Assigned pairs the annotator has a vote on."""

    @property
    def remaining(self) -> int:
        return self.assigned - self.done


@dataclass(frozen=True)
class DatasetProgress:
    dataset: str
    pairs: int
    overlap: int | None
    complete: int
    """Pairs with as many votes as the overlap asks (1 without assignments)."""
    annotators: list[AnnotatorProgress]


def progress(session: Session, dataset: str) -> DatasetProgress:
    """Per annotator: assigned pairs and how many they have voted on; per dataset: pairs with
    enough votes."""
    ds_id = dataset_id(session, dataset)
    ds = session.get(Dataset, ds_id)
    n_pairs = session.scalar(select(func.count()).select_from(Pair).where(Pair.dataset_id == ds_id))
    rows = session.execute(
        log_query().join(Pair, LabelEvent.pair_id == Pair.id).where(Pair.dataset_id == ds_id)
    ).all()
    votes = annotator_votes(rows)
    assigned: dict[str, set[int]] = defaultdict(set)
    for name, pair_id in session.execute(
        select(Annotator.name, Assignment.pair_id)
        .join(Annotator, Assignment.annotator_id == Annotator.id)
        .join(Pair, Assignment.pair_id == Pair.id)
        .where(Pair.dataset_id == ds_id)
    ):
        assigned[name].add(pair_id)
    people = [
        AnnotatorProgress(
            name, len(pairs), sum(name in votes.get(pair_id, {}) for pair_id in pairs)
        )
        for name, pairs in sorted(assigned.items())
    ]
    need = ds.overlap or 1
    complete = sum(len(v) >= need for v in votes.values())
    return DatasetProgress(dataset, n_pairs or 0, ds.overlap, complete, people)


# ------------------------------------------------------------------------------- blind, method
def is_blind(session: Session, dataset: str) -> bool:
    """Whether annotators see nothing of others' votes on a pair before their own: the
    dataset's ``blind`` setting, else on when its overlap is above 1."""
    ds = session.get(Dataset, dataset_id(session, dataset))
    return ds.blind if ds.blind is not None else (ds.overlap or 1) > 1


def set_blind(session: Session, dataset: str, blind: bool | None) -> None:
    """``True``/``False``, or ``None``: back to the default (on when overlap > 1)."""
    session.get(Dataset, dataset_id(session, dataset)).blind = blind
    session.flush()


def get_aggregation(session: Session, dataset: str) -> str:
    return session.get(Dataset, dataset_id(session, dataset)).aggregation


def set_aggregation(session: Session, dataset: str, method: str) -> None:
    if method not in AGGREGATIONS:
        raise StoreError(f"aggregation: got {method!r}; use one of {', '.join(AGGREGATIONS)}")
    session.get(Dataset, dataset_id(session, dataset)).aggregation = method
    session.flush()


def has_voted(session: Session, pair_id: int, name: str) -> bool:
    """Whether ``name`` has a vote on the pair that they did not take back."""
    rows = session.execute(log_query().where(LabelEvent.pair_id == pair_id)).all()
    return name in annotator_votes(rows).get(pair_id, {})


# ------------------------------------------------------------------------------- aggregation
@dataclass(frozen=True)
class AggregateLabels:
    """A dataset's labels as training, export and evaluation use them."""

    method: str
    labels: dict[int, str | None]
    """Pair id -> label, for every pair with a vote or a settling event (``None``: undecided,
    a majority tie waiting for a reviewer)."""
    votes: dict[int, dict[str, str]]
    """Pair id -> annotator -> vote."""
    settled: dict[int, str]
    """Pair id -> the reviewer whose settling event decides it."""

    @property
    def undecided(self) -> set[int]:
        return {pair_id for pair_id, label in self.labels.items() if label is None}


def aggregate_labels(session: Session, dataset: str, method: str | None = None) -> AggregateLabels:
    """Every voted pair's label under ``method`` (default: the dataset's own).

    ``majority``: what ``Pair.label`` holds (the per-pair rule). ``dawid-skene``: crowd-kit's
    Dawid-Skene over every vote of the dataset, each annotator weighted by an estimated
    confusion matrix; a settled pair keeps its reviewer's label either way.
    """
    ds_id = dataset_id(session, dataset)
    method = method or session.get(Dataset, ds_id).aggregation
    if method not in AGGREGATIONS:
        raise StoreError(f"aggregation: got {method!r}; use one of {', '.join(AGGREGATIONS)}")
    rows = session.execute(
        log_query().join(Pair, LabelEvent.pair_id == Pair.id).where(Pair.dataset_id == ds_id)
    ).all()
    votes = annotator_votes(rows)
    settled = settlers(rows)
    newest = {row.pair_id: row for row in standing_events(rows)}
    decided = set(votes) | set(settled)  # pairs whose votes were all taken back: no label
    if method == "majority":
        labels = {pair_id: majority(votes.get(pair_id, {}).values()) for pair_id in decided}
    else:
        labels = dict.fromkeys(decided)
        labels.update(dawid_skene(votes))
    for pair_id in settled:
        labels[pair_id] = newest[pair_id].label
    return AggregateLabels(method, labels, votes, settled)


def dawid_skene(votes: dict[int, dict[str, str]]) -> dict[int, str]:
    """``pair id -> label`` by Dawid-Skene (crowd-kit) over ``pair -> annotator -> vote``."""
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    records = [
        {"task": pair_id, "worker": name, "label": label}
        for pair_id, by in votes.items()
        for name, label in by.items()
    ]
    if not records:
        return {}
    with warnings.catch_warnings():  # crowd-kit 1.4 uses pandas keywords pandas 3 deprecates
        warnings.filterwarnings("ignore", module="crowdkit")
        result = DawidSkene(n_iter=100).fit_predict(pd.DataFrame(records))
    return {int(task): str(label) for task, label in result.items()}


# ------------------------------------------------------------------------------- agreement
@dataclass(frozen=True)
class WithAggregate:
    name: str
    n: int
    """The annotator's voted pairs that have an aggregate label."""
    agreed: int

    @property
    def percent(self) -> float | None:
        return 100.0 * self.agreed / self.n if self.n else None


@dataclass(frozen=True)
class TeamAgreement:
    """Agreement where it was measured: on the pairs two or more annotators voted on."""

    method: str
    overlapped: int
    """Pairs with two or more votes."""
    alpha: float | None
    """Krippendorff's alpha (nominal) over the overlapped pairs; ``None`` with fewer than two
    such pairs or a single label throughout."""
    pairwise: list
    """:class:`srm.store.agreement.PairwiseAgreement` per two annotators sharing pairs."""
    with_aggregate: list[WithAggregate]
    undecided: int
    """Pairs whose votes tie with nobody settling them yet."""


def team_agreement(session: Session, dataset: str, method: str | None = None) -> TeamAgreement:
    """Cohen's kappa per two annotators on their shared pairs, Krippendorff's alpha on the
    overlapped pairs, and each annotator's agreement with the aggregate label."""
    agg = aggregate_labels(session, dataset, method)
    by_name: dict[str, dict[int, str]] = defaultdict(dict)
    for pair_id, by in agg.votes.items():
        for name, label in by.items():
            by_name[name][pair_id] = label
    pairwise = agreement_pairs(by_name)
    with_agg = []
    for name, mine in sorted(by_name.items()):
        decided = [p for p in mine if agg.labels.get(p) is not None]
        with_agg.append(
            WithAggregate(name, len(decided), sum(mine[p] == agg.labels[p] for p in decided))
        )
    overlapped = {p: by for p, by in agg.votes.items() if len(by) >= 2}
    return TeamAgreement(
        agg.method,
        len(overlapped),
        krippendorff_alpha(overlapped),
        pairwise,
        with_agg,
        len(agg.undecided),
    )


def krippendorff_alpha(votes: dict[int, dict[str, str]]) -> float | None:
    """Krippendorff's alpha for nominal labels (crowd-kit), over pairs with two or more votes."""
    import pandas as pd
    from crowdkit.metrics.data import alpha_krippendorff

    records = [
        {"task": pair_id, "worker": name, "label": LABELS.index(label)}
        for pair_id, by in votes.items()
        if len(by) >= 2
        for name, label in by.items()
    ]
    if len({r["task"] for r in records}) < 2 or len({r["label"] for r in records}) < 2:
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="crowdkit")
        return float(alpha_krippendorff(pd.DataFrame(records)))
