"""Finding pairs: one :class:`PairFilter` (labels, margins, assignment, votes, a model's
scores) and :func:`filter_pairs`, which every count, page and summary of pairs goes through.

Every function takes a session and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from srm.store.errors import StoreError
from srm.store.models import (
    LABELS,
    Annotator,
    Assignment,
    Dataset,
    LabelEvent,
    Pair,
    Score,
    preferred_side,
)

#: Values of :attr:`PairFilter.label`: a label, or whether the pair has one at all.
LABEL_FILTERS = ("unlabelled", "labelled", *LABELS)


@dataclass(frozen=True)
class PairFilter:
    """What a queue shows beyond dataset and text search; every field left ``None`` is ignored.

    >>> list_pairs(s, "hh", where=PairFilter(label="unlabelled", model_id=3, disagreeing=True))

    ``label`` is one of :data:`LABEL_FILTERS`. The score filters need ``model_id`` and keep only
    pairs that model scored: ``min_gap``/``max_gap`` bound its reward gap (chosen minus
    rejected, as imported), and ``disagreeing`` keeps pairs where it prefers the response the
    current label rejects (ties and discards have no preference and never disagree).
    """

    source: str | None = None
    label: str | None = None
    min_margin: float | None = None
    max_margin: float | None = None
    model_id: int | None = None
    min_gap: float | None = None
    max_gap: float | None = None
    disagreeing: bool = False
    assigned_to: str | None = None
    """Only the pairs assigned to this annotator (``srm assign``)."""
    unvoted_by: str | None = None
    """Only the pairs this annotator has no standing vote on (their queue of work left)."""
    voted_by: str | None = None
    """Only the pairs this annotator has a standing vote on (their work done)."""

    def __post_init__(self) -> None:
        if self.label is not None and self.label not in LABEL_FILTERS:
            raise StoreError(f"label: got {self.label!r}; use one of {', '.join(LABEL_FILTERS)}")
        uses_scores = self.min_gap is not None or self.max_gap is not None or self.disagreeing
        if uses_scores and self.model_id is None:
            raise StoreError("min_gap, max_gap and disagreeing need model_id: whose scores?")


def filter_pairs(
    query: Select, dataset: str | None, search: str | None, where: PairFilter | None
) -> Select:
    if dataset is not None:
        # A subquery, not a join: the planner then estimates the dataset's rows from the
        # column's statistics instead of a generic join guess.
        dataset_id = select(Dataset.id).where(Dataset.name == dataset).scalar_subquery()
        query = query.where(Pair.dataset_id == dataset_id)
    if search:
        # autoescape: a search for "50%" or "snake_case" means those characters literally.
        columns = (Pair.external_id, Pair.prompt, Pair.chosen, Pair.rejected)
        query = query.where(or_(*(c.icontains(search, autoescape=True) for c in columns)))
    if where is None:
        return query
    if where.source is not None:
        query = query.where(Pair.source == where.source)
    if where.min_margin is not None:
        query = query.where(Pair.margin >= where.min_margin)
    if where.max_margin is not None:
        query = query.where(Pair.margin <= where.max_margin)
    if where.label == "unlabelled":
        query = query.where(Pair.label.is_(None))
    elif where.label == "labelled":
        query = query.where(Pair.label.is_not(None))
    elif where.label is not None:
        query = query.where(Pair.label == where.label)
    if where.assigned_to is not None:
        query = query.where(
            Pair.id.in_(
                select(Assignment.pair_id)
                .join(Annotator, Assignment.annotator_id == Annotator.id)
                .where(Annotator.name == where.assigned_to)
            )
        )
    if where.unvoted_by is not None:
        query = query.where(Pair.id.not_in(_voted_pairs(where.unvoted_by)))
    if where.voted_by is not None:
        query = query.where(Pair.id.in_(_voted_pairs(where.voted_by)))
    if where.model_id is not None:
        query = query.join(Score, (Score.pair_id == Pair.id) & (Score.model_id == where.model_id))
        gap = Score.gap
        if where.min_gap is not None:
            query = query.where(gap >= where.min_gap)
        if where.max_gap is not None:
            query = query.where(gap <= where.max_gap)
        if where.disagreeing:
            query = query.where(
                (label_prefers("chosen") & (gap < 0)) | (label_prefers("rejected") & (gap > 0))
            )
    return query


def _voted_pairs(name: str) -> Select:
    """The ids of the pairs ``name`` has a standing vote on (a label event not undone)."""
    undo = aliased(LabelEvent)
    return (
        select(LabelEvent.pair_id)
        .join(Annotator, LabelEvent.annotator_id == Annotator.id)
        .where(
            Annotator.name == name,
            LabelEvent.action.in_(LABELS),
            ~exists().where(undo.undoes_event_id == LabelEvent.id),
        )
    )


def label_prefers(side: str) -> ColumnElement[bool]:
    """SQL for "the pair's current label prefers ``side``" (:func:`preferred_side`)."""
    prefers = Pair.label.in_([label for label in LABELS if preferred_side(label) == side])
    return or_(Pair.label.is_(None), prefers) if preferred_side(None) == side else prefers


def count_pairs(
    session: Session,
    dataset: str | None = None,
    *,
    search: str | None = None,
    where: PairFilter | None = None,
) -> int:
    """How many pairs match (the whole store when no filter is given)."""
    # count(*), not count(id): PostgreSQL can then answer from an index alone.
    query = filter_pairs(select(func.count()).select_from(Pair), dataset, search, where)
    return session.scalar(query) or 0


def list_pairs(
    session: Session,
    dataset: str | None = None,
    *,
    search: str | None = None,
    where: PairFilter | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Pair]:
    """One page of pairs in import order, filtered by dataset, a case-insensitive search over
    id, prompt and both responses, and ``where`` (labels, margins, a model's scores)."""
    # The ids first, then their rows: sorting and skipping narrow ids instead of whole pairs
    # (kilobytes each) keeps a deep page cheap.
    ids_query = filter_pairs(select(Pair.id), dataset, search, where)
    ids = list(session.scalars(ids_query.order_by(Pair.id).limit(limit).offset(offset)))
    if not ids:
        return []
    return list(session.scalars(select(Pair).where(Pair.id.in_(ids)).order_by(Pair.id)))


def get_pair(session: Session, dataset: str, external_id: str) -> Pair:
    """The pair with id ``external_id`` (the id in the imported file) in ``dataset``."""
    pair = session.scalar(
        select(Pair)
        .join(Pair.dataset)
        .where(Dataset.name == dataset, Pair.external_id == external_id)
    )
    if pair is None:
        raise StoreError(f"no pair {external_id!r} in dataset {dataset!r}; check the names")
    return pair


def list_sources(session: Session, dataset: str | None = None) -> list[str]:
    """The distinct ``source`` values (of one dataset, or of the store), sorted."""
    query = filter_pairs(select(Pair.source).distinct(), dataset, None, None)
    return sorted(session.scalars(query))


def margin_bounds(session: Session, dataset: str | None = None) -> tuple[float, float] | None:
    """The smallest and largest imported margin, or ``None`` when no pair has one."""
    query = filter_pairs(select(func.min(Pair.margin), func.max(Pair.margin)), dataset, None, None)
    low, high = session.execute(query).one()
    return None if low is None else (float(low), float(high))


def label_summary(session: Session, dataset: str | None = None) -> dict[str, int]:
    """How many pairs carry each label, with ``unlabelled`` for those without one."""
    query = filter_pairs(select(Pair.label, func.count()), dataset, None, None)
    counts = dict.fromkeys(("unlabelled", *LABELS), 0)
    for label, n in session.execute(query.group_by(Pair.label)):
        counts[label or "unlabelled"] = n
    return counts
