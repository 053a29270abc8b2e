"""Models and their scores: registering a checkpoint, storing a model's scores of a
dataset, and reading them back for evaluation.

Every function takes a session and never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from srm.store.engine import INSERT_CHUNK, refresh_statistics
from srm.store.errors import StoreError
from srm.store.models import Dataset, Model, Pair, Score, ScoreGap, utcnow

if TYPE_CHECKING:
    from srm.records import PairScores


def register_model(
    session: Session,
    name: str,
    checkpoint_dir: str,
    *,
    config: Mapping[str, Any] | None = None,
    parent_id: int | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Model:
    """Record a checkpoint directory as a model; registering the same directory again returns
    the existing row unchanged."""
    model = session.scalar(select(Model).where(Model.checkpoint_dir == checkpoint_dir))
    if model is None:
        model = Model(
            name=name,
            checkpoint_dir=checkpoint_dir,
            config=dict(config or {}),
            parent_id=parent_id,
            metrics=dict(metrics or {}),
        )
        session.add(model)
        session.flush()
    return model


def save_scores(
    session: Session, model_id: int, dataset: str, records: Sequence[PairScores]
) -> int:
    """Store :func:`srm.score.score_pairs` records (matched to pairs by ``id``) for a model,
    replacing that model's earlier scores of the same pairs; return how many were stored."""
    ids = {
        external_id: pair_id
        for external_id, pair_id in session.execute(
            select(Pair.external_id, Pair.id).join(Pair.dataset).where(Dataset.name == dataset)
        )
    }
    missing = [r.id for r in records if r.id not in ids]
    if missing:
        raise StoreError(
            f"{len(missing)} scored pair(s) are not in dataset {dataset!r} (first: "
            f"{missing[0]!r}); score the pairs of this dataset, or import them first"
        )
    rows = [
        {
            "pair_id": ids[r.id],
            "model_id": model_id,
            "chosen_score": r.chosen.score,
            "rejected_score": r.rejected.score,
            "chosen_detail": r.chosen.to_json(),
            "rejected_detail": r.rejected.to_json(),
            "created_at": utcnow(),
        }
        for r in records
    ]
    pair_ids = [row["pair_id"] for row in rows]
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = pair_ids[start : start + INSERT_CHUNK]
        session.execute(delete(Score).where(Score.model_id == model_id, Score.pair_id.in_(chunk)))
        session.execute(insert(Score.__table__), rows[start : start + INSERT_CHUNK])
    refresh_statistics(session, Score.__tablename__, len(rows))
    return len(rows)


def get_score(session: Session, pair_id: int, model_id: int) -> Score | None:
    return session.scalar(select(Score).where(Score.pair_id == pair_id, Score.model_id == model_id))


@dataclass(frozen=True)
class ScoredPair(ScoreGap):
    """One pair as a model saw it, with what evaluation needs and none of the long texts."""

    pair_id: int
    external_id: str
    source: str
    label: str | None
    chosen_chars: int
    rejected_chars: int
    chosen_score: float
    rejected_score: float


def scored_pairs(session: Session, dataset: str, model_id: int) -> list[ScoredPair]:
    """Every pair of ``dataset`` that ``model_id`` has scored, in import order."""
    dataset_id = select(Dataset.id).where(Dataset.name == dataset).scalar_subquery()
    rows = session.execute(
        select(
            Pair.id,
            Pair.external_id,
            Pair.source,
            Pair.label,
            func.length(Pair.chosen),
            func.length(Pair.rejected),
            Score.chosen_score,
            Score.rejected_score,
        )
        .join(Score, (Score.pair_id == Pair.id) & (Score.model_id == model_id))
        .where(Pair.dataset_id == dataset_id)
        .order_by(Pair.id)
    )
    return [ScoredPair(*row) for row in rows]


def list_models(session: Session) -> list[Model]:
    """Every registered model, newest first."""
    return list(session.scalars(select(Model).order_by(Model.id.desc())))
