"""Audits and training provenance in the store: which pairs a model trained on, and each
audit's folds and out-of-fold scores (see :mod:`srm.audit` for the method).

Every write here is idempotent: saving a fold again replaces that fold's rows of *that* audit
and nothing else, so a resumed audit that redoes a fold leaves one row per (audit, pair), and
a second audit of the dataset has rows of its own. Functions take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from srm.store.datasets import dataset_id
from srm.store.errors import StoreError
from srm.store.models import (
    Audit,
    AuditFold,
    AuditScore,
    Dataset,
    ModelTrainingPair,
    Pair,
    utcnow,
)

if TYPE_CHECKING:
    from srm.records import PairScores

_CHUNK = 2_000


def _pair_ids(session: Session, dataset: str, external_ids: Iterable[str]) -> list[int]:
    """Store ids of the pairs ``external_ids`` of ``dataset``; a missing one is an error."""
    ids = dict(
        session.execute(
            select(Pair.external_id, Pair.id).where(Pair.dataset_id == dataset_id(session, dataset))
        ).all()
    )
    wanted = list(external_ids)
    missing = [e for e in wanted if e not in ids]
    if missing:
        raise StoreError(
            f"{len(missing)} pair(s) are not in dataset {dataset!r} (first: {missing[0]!r}); "
            "import them first"
        )
    return [ids[e] for e in wanted]


def record_training_pairs(
    session: Session, model_id: int, dataset: str, external_ids: Iterable[str]
) -> int:
    """Record that model ``model_id`` trained on these pairs of ``dataset`` (replacing what
    was recorded for it in that dataset); return how many."""
    pair_ids = sorted(set(_pair_ids(session, dataset, external_ids)))
    in_dataset = select(Pair.id).where(Pair.dataset_id == dataset_id(session, dataset))
    session.execute(
        delete(ModelTrainingPair).where(
            ModelTrainingPair.model_id == model_id, ModelTrainingPair.pair_id.in_(in_dataset)
        )
    )
    rows = [{"model_id": model_id, "pair_id": p} for p in pair_ids]
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(ModelTrainingPair.__table__), rows[start : start + _CHUNK])
    return len(rows)


def training_pair_ids(session: Session, model_id: int) -> set[int] | None:
    """Store ids of the pairs model ``model_id`` trained on; ``None`` when the store does not
    know (a model with no recorded training pairs: the bundled one, one trained from a file)."""
    ids = set(
        session.scalars(
            select(ModelTrainingPair.pair_id).where(ModelTrainingPair.model_id == model_id)
        )
    )
    return ids or None


def create_audit(
    session: Session,
    dataset: str,
    *,
    folds: int,
    seed: int,
    config: dict[str, Any],
    run_dir: str,
) -> Audit:
    """A new audit of ``dataset`` (``running``, no folds yet)."""
    audit = Audit(
        dataset_id=dataset_id(session, dataset),
        folds=folds,
        seed=seed,
        config=dict(config),
        run_dir=run_dir,
        status="running",
    )
    session.add(audit)
    session.flush()
    return audit


def get_audit(session: Session, audit_id: int) -> Audit:
    audit = session.get(Audit, audit_id)
    if audit is None:
        raise StoreError(f"no audit with id {audit_id} in the store; see srm audit --list")
    return audit


def finished_folds(session: Session, audit_id: int) -> set[int]:
    """The folds of the audit already saved: a resumed audit skips them."""
    return set(session.scalars(select(AuditFold.fold).where(AuditFold.audit_id == audit_id)))


def save_audit_fold(
    session: Session,
    audit_id: int,
    fold: int,
    model_id: int,
    *,
    trained_on: Sequence[str],
    scores: Sequence[PairScores],
) -> None:
    """Save one finished fold of an audit: the fold's model's training pairs, the fold row and
    the held-out pairs' scores, replacing any earlier save of this fold of this audit (a fold
    redone after a crash between training and saving). Marks the audit complete with its last
    fold. A held-out pair the fold's model trained on is refused: it would not be out of fold.
    """
    audit = get_audit(session, audit_id)
    if not 0 <= fold < audit.folds:
        raise StoreError(f"fold: got {fold}; audit {audit_id} has folds 0 to {audit.folds - 1}")
    dataset = session.scalar(select(Dataset.name).where(Dataset.id == audit.dataset_id))
    assert dataset is not None  # a foreign key with cascade
    record_training_pairs(session, model_id, dataset, trained_on)
    held_out = _pair_ids(session, dataset, [r.id for r in scores])
    seen = set(_pair_ids(session, dataset, trained_on)) & set(held_out)
    if seen:
        raise StoreError(
            f"audit {audit_id} fold {fold}: model {model_id} trained on {len(seen)} of the pairs "
            "it would judge; an audit score must come from a model that never saw the pair"
        )
    session.execute(delete(AuditFold).where(AuditFold.audit_id == audit_id, AuditFold.fold == fold))
    session.add(
        AuditFold(
            audit_id=audit_id,
            fold=fold,
            model_id=model_id,
            n_trained=len(trained_on),
            n_held_out=len(scores),
        )
    )
    now = utcnow()
    rows = [
        {
            "audit_id": audit_id,
            "pair_id": pair_id,
            "fold": fold,
            "model_id": model_id,
            "chosen_score": r.chosen.score,
            "rejected_score": r.rejected.score,
            "created_at": now,
        }
        for pair_id, r in zip(held_out, scores, strict=True)
    ]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        session.execute(
            delete(AuditScore).where(
                AuditScore.audit_id == audit_id,
                AuditScore.pair_id.in_([row["pair_id"] for row in chunk]),
            )
        )
        session.execute(insert(AuditScore.__table__), chunk)
    session.flush()
    if len(finished_folds(session, audit_id)) == audit.folds:
        audit.status, audit.finished_at = "complete", now
        session.flush()


@dataclass(frozen=True)
class AuditSummary:
    """An audit as the pages and ``srm audit`` list it."""

    id: int
    dataset: str
    folds: int
    folds_done: int
    seed: int
    status: str
    backbone: str
    head: str
    steps: int | None
    scored: int
    created: str
    model_ids: tuple[int, ...]

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def label(self) -> str:
        """``"audit 3 (5 folds, sentence head on minilm, 800 steps)"``"""
        steps = f", {self.steps} steps" if self.steps else ""
        return f"audit {self.id} ({self.folds} folds, {self.head} head on {self.backbone}{steps})"


def audit_summaries(session: Session, dataset: str | None = None) -> list[AuditSummary]:
    """Audits (of one dataset, or all), newest first."""
    query = select(Audit, Dataset.name).join(Dataset, Dataset.id == Audit.dataset_id)
    if dataset is not None:
        query = query.where(Dataset.name == dataset)
    audits = session.execute(query.order_by(Audit.id.desc())).all()
    if not audits:
        return []
    ids = [a.id for a, _ in audits]
    scored = dict(
        session.execute(
            select(AuditScore.audit_id, func.count())
            .where(AuditScore.audit_id.in_(ids))
            .group_by(AuditScore.audit_id)
        ).all()
    )
    folds: dict[int, list[int]] = {}
    for audit_id, model_id in session.execute(
        select(AuditFold.audit_id, AuditFold.model_id)
        .where(AuditFold.audit_id.in_(ids))
        .order_by(AuditFold.fold)
    ):
        folds.setdefault(audit_id, []).append(model_id)
    summaries = []
    for audit, name in audits:
        model = (audit.config or {}).get("model", {})
        summaries.append(
            AuditSummary(
                id=audit.id,
                dataset=name,
                folds=audit.folds,
                folds_done=len(folds.get(audit.id, [])),
                seed=audit.seed,
                status=audit.status,
                backbone=str(model.get("backbone", "?")),
                head=str(model.get("head", "?")),
                steps=(audit.config or {}).get("max_steps"),
                scored=scored.get(audit.id, 0),
                created=f"{audit.created_at:%Y-%m-%d %H:%M}",
                model_ids=tuple(folds.get(audit.id, [])),
            )
        )
    return summaries


def latest_audit(session: Session, dataset: str) -> int | None:
    """The id of the newest *complete* audit of ``dataset``: the one the annotation queue
    orders by. A running or stopped audit does not count until its last fold is saved."""
    return session.scalar(
        select(Audit.id)
        .where(Audit.dataset_id == dataset_id(session, dataset), Audit.status == "complete")
        .order_by(Audit.id.desc())
        .limit(1)
    )


def audit_model_ids(session: Session) -> set[int]:
    """Models that are an audit's fold models (the Models page lists them apart)."""
    return set(session.scalars(select(AuditFold.model_id)))


def model_saw(session: Session, model_id: int) -> int:
    """How many pairs model ``model_id`` is recorded to have trained on."""
    return (
        session.scalar(
            select(func.count())
            .select_from(ModelTrainingPair)
            .where(ModelTrainingPair.model_id == model_id)
        )
        or 0
    )


__all__ = [
    "AuditSummary",
    "audit_model_ids",
    "audit_summaries",
    "create_audit",
    "finished_folds",
    "get_audit",
    "latest_audit",
    "model_saw",
    "record_training_pairs",
    "save_audit_fold",
    "training_pair_ids",
]
