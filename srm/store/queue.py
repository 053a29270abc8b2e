"""The annotation queue: pairs ordered by how strongly a model (or an audit's out-of-fold
scores) disagrees with their current label.

Every function takes a session and never commits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, case, select
from sqlalchemy.orm import Session

from srm.store.models import AuditScore, Pair, Score
from srm.store.pairs import PairFilter, filter_pairs, label_prefers


def disagreement(gap: Any) -> Any:
    """How strongly a model disagrees with a pair's current label, as a SQL expression.

    ``gap`` is the model's chosen-minus-rejected score (as imported). Positive: the model
    prefers the response the label rejects, by that much; negative: it agrees, and values near
    0 are the pairs it is unsure of. A label that prefers ``rejected`` (a swap) turns the gap
    around; ties and discards, which prefer neither, are ordered as the imported verdict.
    """
    return case((label_prefers("rejected"), gap), else_=-gap)


def annotation_queue(
    session: Session,
    dataset: str | None,
    model_id: int | None,
    *,
    audit_id: int | None = None,
    search: str | None = None,
    where: PairFilter | None = None,
    limit: int = 20,
    offset: int = 0,
    blind: bool = False,
) -> list[tuple[Pair, float | None]]:
    """One page of pairs to review, with the :func:`disagreement` on each.

    With ``audit_id``, the audit's out-of-fold scores (:mod:`srm.audit`: each pair judged by
    a model that never trained on it) order the queue; else model ``model_id``'s scores. Most
    confident disagreement with the current label first, then (where the model agrees) the
    pairs it is least sure of; pairs without a score come last, in import order. ``blind``
    (blind labelling): against the imported verdict instead of the current label, so that the
    order says nothing of other annotators' votes.
    """

    def disagreement_of(gap: Any) -> Any:
        return -gap if blind else disagreement(gap)

    d = None
    ids_query = filter_pairs(select(Pair.id), dataset, search, where)
    judge = _judging_scores(model_id, audit_id)
    if judge is None:
        ids_query = ids_query.order_by(Pair.id)
    else:
        d = disagreement_of(judge.table.gap).label("d")
        joined_by_filter = judge.table is Score and where is not None and where.model_id == model_id
        if not joined_by_filter:
            ids_query = ids_query.outerjoin(judge.table, judge.joined)
        ids_query = ids_query.add_columns(d).order_by(d.is_(None), d.desc(), Pair.id)
    rows = session.execute(ids_query.limit(limit).offset(offset)).all()
    if not rows:
        return []
    pairs = {
        p.id: p for p in session.scalars(select(Pair).where(Pair.id.in_([r[0] for r in rows])))
    }
    return [(pairs[r[0]], r[1] if d is not None else None) for r in rows]


def pair_disagreement(
    session: Session, pair_id: int, model_id: int | None, *, audit_id: int | None = None
) -> float | None:
    """The :func:`disagreement` with one pair's current label, as :func:`annotation_queue`
    gives it (from audit ``audit_id`` when given, else model ``model_id``); ``None`` when the
    pair has no such score."""
    judge = _judging_scores(model_id, audit_id)
    if judge is None:
        return None
    query = select(disagreement(judge.table.gap)).select_from(Pair).join(judge.table, judge.joined)
    return session.scalar(query.where(Pair.id == pair_id))


class JudgingScores(NamedTuple):
    table: type[Score] | type[AuditScore]
    joined: ColumnElement[bool]
    """The join of ``table`` to :class:`Pair` on the judging rows."""


def _judging_scores(model_id: int | None, audit_id: int | None) -> JudgingScores | None:
    """The scores that judge a pair's label: audit ``audit_id``'s out-of-fold scores when
    given, else model ``model_id``'s; ``None`` when neither is."""
    if audit_id is not None:
        joined = (AuditScore.pair_id == Pair.id) & (AuditScore.audit_id == audit_id)
        return JudgingScores(AuditScore, joined)
    if model_id is not None:
        return JudgingScores(Score, (Score.pair_id == Pair.id) & (Score.model_id == model_id))
    return None
