"""Reads and writes on the store. Every function takes a session and never commits:
the caller owns the unit of work (``with Session.begin() as session: ...``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from srm.store.engine import insert_unless_present
from srm.store.errors import StaleWriteError, StoreError
from srm.store.models import (
    LABELS,
    PREFERENCE_COLUMNS,
    Annotator,
    Assignment,
    AuditScore,
    Dataset,
    LabelEvent,
    Model,
    Pair,
    Score,
    ScoreGap,
    Setting,
    preferred_side,
    utcnow,
)

if TYPE_CHECKING:
    from srm.data import PreferencePair
    from srm.records import PairScores

__all__ = ["StaleWriteError", "StoreError"]  # re-exported: callers import them from here too

# Keep each executemany chunk well under SQLite's bound-parameter limit.
_INSERT_CHUNK = 2_000
# Bulk writes at least this big refresh the query planner's statistics (see _analyze).
_ANALYZE_AFTER = 1_000
#: Values of :attr:`PairFilter.label`: a label, or whether the pair has one at all.
LABEL_FILTERS = ("unlabelled", "labelled", *LABELS)


@dataclass(frozen=True)
class ImportResult:
    dataset: str
    added: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.added + self.unchanged


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    source_file: str | None
    n_pairs: int


def dataset_id(session: Session, name: str) -> int:
    """The id of dataset ``name``; a :class:`StoreError` listing the datasets if unknown."""
    found = session.scalar(select(Dataset.id).where(Dataset.name == name))
    if found is None:
        known = ", ".join(session.scalars(select(Dataset.name).order_by(Dataset.name))) or "none"
        raise StoreError(f"no dataset {name!r} in the store (datasets: {known}); see srm datasets")
    return found


def get_or_create_dataset(session: Session, name: str, source_file: str | None = None) -> Dataset:
    """The dataset ``name``, created if new, and locked for the rest of the transaction.

    The row lock (PostgreSQL; SQLite writers hold the database lock anyway) makes two imports
    into one dataset run one after the other, so the second sees the first's pairs.
    """
    row = {"name": name, "source_file": source_file, "imported_at": utcnow()}
    insert_unless_present(session, Dataset, row)
    return session.scalars(select(Dataset).where(Dataset.name == name).with_for_update()).one()


def import_pairs(
    session: Session,
    dataset_name: str,
    pairs: Sequence[PreferencePair],
    source_file: str | None = None,
) -> ImportResult:
    """Add ``pairs`` to the dataset ``dataset_name`` (created if new), in bulk.

    Idempotent: a pair whose id is already in the dataset with the same content is counted as
    unchanged. A pair whose id exists with *different* content is a conflict, and the whole import
    is refused (raising :class:`StoreError`) rather than silently keeping one version. (A stored
    ``subset`` of NULL, from a store made before subsets were kept, matches any subset.)

    A blank dataset name, and text no store can hold alike (:func:`srm.data.text_problem`: NUL
    characters, lone surrogates), are refused before anything is written, with the same
    message on SQLite and PostgreSQL: pairs built in Python skip :func:`srm.data.load_pairs`.
    """
    _check_importable(dataset_name, pairs)
    dataset = get_or_create_dataset(session, dataset_name, source_file)
    existing = {
        row.external_id: row
        for row in session.execute(select(*PREFERENCE_COLUMNS).where(Pair.dataset_id == dataset.id))
    }
    new_rows: list[dict] = []
    conflicts: list[str] = []
    for pair in pairs:
        old = existing.get(pair.id)
        if old is None:
            new_rows.append(
                {
                    "dataset_id": dataset.id,
                    "external_id": pair.id,
                    "prompt": pair.prompt,
                    "chosen": pair.chosen,
                    "rejected": pair.rejected,
                    "source": pair.source,
                    "margin": pair.margin,
                    "subset": pair.subset,
                }
            )
        elif (old.prompt, old.chosen, old.rejected, old.source, old.margin) != (
            pair.prompt,
            pair.chosen,
            pair.rejected,
            pair.source,
            pair.margin,
        ) or old.subset not in (None, pair.subset):
            conflicts.append(pair.id)
    if conflicts:
        shown = ", ".join(repr(c) for c in conflicts[:5])
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        raise StoreError(
            f"{len(conflicts)} pair(s) already in dataset {dataset_name!r} with different content "
            f"(ids {shown}{more}); nothing was imported. Import into a new dataset "
            "(--dataset NAME) or give the changed pairs new ids."
        )
    # A Core insert on the table runs as one executemany per chunk (multi-row VALUES on
    # PostgreSQL): fast for 100k rows. Not insert(Pair): ORM bulk inserts leave out None values,
    # so rows with and without a margin would alternate between statements, one row each.
    for start in range(0, len(new_rows), _INSERT_CHUNK):
        session.execute(insert(Pair.__table__), new_rows[start : start + _INSERT_CHUNK])
    if len(new_rows) >= _ANALYZE_AFTER:
        _analyze(session, Pair.__tablename__)
    return ImportResult(dataset_name, added=len(new_rows), unchanged=len(pairs) - len(new_rows))


def _check_importable(dataset_name: str, pairs: Sequence[PreferencePair]) -> None:
    """Raise :class:`StoreError` for a dataset name or pair text that cannot be stored."""
    from srm.data import text_problem

    name_problem = text_problem(dataset_name)
    if name_problem is not None or not dataset_name.strip():
        why = name_problem or "is blank"
        raise StoreError(
            f"dataset name {dataset_name!r} {why}; give a name with visible characters "
            "(--dataset NAME)"
        )
    name_limit = _column_length(Dataset.name)
    if len(dataset_name) > name_limit:
        raise StoreError(
            f"dataset name {_shorten(dataset_name)} {_too_long(dataset_name, name_limit)}; give "
            "a shorter name (--dataset NAME)"
        )
    problems = [
        f"pair {_shorten(pair.id)}: field '{name}' {problem}"
        for pair in pairs
        for name in ("id", "prompt", "chosen", "rejected", "source", "subset")
        if isinstance(value := getattr(pair, name), str)
        and (problem := _field_problem(name, value)) is not None
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise StoreError(
            f"{len(problems)} text field(s) cannot be stored; nothing was imported: "
            + "; ".join(problems[:3])
            + more
        )


#: The pair fields held in columns of a bounded length (PostgreSQL refuses longer values,
#: SQLite keeps them): checked on import, so both stores give the same answer.
_SIZED_FIELDS = {"id": Pair.external_id, "source": Pair.source, "subset": Pair.subset}


def _field_problem(name: str, value: str) -> str | None:
    """Why a pair's text field cannot be stored (:func:`srm.data.text_problem`, or longer than
    its column), or None."""
    from srm.data import text_problem

    column = _SIZED_FIELDS.get(name)
    if column is not None and len(value) > _column_length(column):
        return f"{_too_long(value, _column_length(column))}; shorten it"
    return text_problem(value)


def _column_length(column: Any) -> int:
    return column.property.columns[0].type.length


def _too_long(value: str, limit: int) -> str:
    return f"is {len(value):,} characters long, over the {limit} the store holds"


def _shorten(text: str, limit: int = 60) -> str:
    """``text`` as repr, cut to ``limit`` characters for a message."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


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


def _filter_pairs(
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
                (_label_prefers("chosen") & (gap < 0)) | (_label_prefers("rejected") & (gap > 0))
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


def _label_prefers(side: str) -> ColumnElement[bool]:
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
    query = _filter_pairs(select(func.count()).select_from(Pair), dataset, search, where)
    return session.scalar(query) or 0


def list_datasets(session: Session) -> list[DatasetSummary]:
    # A correlated count per dataset reads its slice of an index; an outer join with GROUP BY
    # made SQLite build a temporary index over every pair on each call (~100 ms at 100k).
    n_pairs = (
        select(func.count())
        .select_from(Pair)
        .where(Pair.dataset_id == Dataset.id)
        .correlate(Dataset)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Dataset.name, Dataset.source_file, n_pairs).order_by(Dataset.name)
    )
    return [DatasetSummary(name, source_file, n) for name, source_file, n in rows]


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
    ids_query = _filter_pairs(select(Pair.id), dataset, search, where)
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
    query = _filter_pairs(select(Pair.source).distinct(), dataset, None, None)
    return sorted(session.scalars(query))


def margin_bounds(session: Session, dataset: str | None = None) -> tuple[float, float] | None:
    """The smallest and largest imported margin, or ``None`` when no pair has one."""
    query = _filter_pairs(select(func.min(Pair.margin), func.max(Pair.margin)), dataset, None, None)
    low, high = session.execute(query).one()
    return None if low is None else (float(low), float(high))


def label_summary(session: Session, dataset: str | None = None) -> dict[str, int]:
    """How many pairs carry each label, with ``unlabelled`` for those without one."""
    query = _filter_pairs(select(Pair.label, func.count()), dataset, None, None)
    counts = dict.fromkeys(("unlabelled", *LABELS), 0)
    for label, n in session.execute(query.group_by(Pair.label)):
        counts[label or "unlabelled"] = n
    return counts


def disagreement(gap: Any) -> Any:
    """How strongly a model disagrees with a pair's current label, as a SQL expression.

    ``gap`` is the model's chosen-minus-rejected score (as imported). Positive: the model
    prefers the response the label rejects, by that much; negative: it agrees, and values near
    0 are the pairs it is unsure of. A label that prefers ``rejected`` (a swap) turns the gap
    around; ties and discards, which prefer neither, are ordered as the imported verdict.
    """
    return case((_label_prefers("rejected"), gap), else_=-gap)


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
    ids_query = _filter_pairs(select(Pair.id), dataset, search, where)
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


# ------------------------------------------------------------------------------- models, scores
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
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = pair_ids[start : start + _INSERT_CHUNK]
        session.execute(delete(Score).where(Score.model_id == model_id, Score.pair_id.in_(chunk)))
        session.execute(insert(Score.__table__), rows[start : start + _INSERT_CHUNK])
    if len(rows) >= _ANALYZE_AFTER:
        _analyze(session, Score.__tablename__)
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


# ------------------------------------------------------------------------------- settings
#: The setting that names the model pages score with (a ``Model.id``).
ACTIVE_MODEL = "active_model_id"
#: The setting holding the annotation guidelines (markdown).
GUIDELINES = "guidelines"
#: The setting that locks the guidelines against edits from the app (``srm guidelines --lock``).
GUIDELINES_LOCKED = "guidelines_locked"


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(Setting, key)
    return default if row is None else row.value


def set_setting(session: Session, key: str, value: Any) -> None:
    """Create or replace the store-wide setting ``key`` (any JSON value)."""
    insert_unless_present(session, Setting, {"key": key, "value": value, "updated_at": utcnow()})
    row = session.scalars(
        select(Setting)
        .where(Setting.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    row.value = value
    row.updated_at = utcnow()
    session.flush()


def get_active_model(session: Session) -> Model | None:
    """The model set active (:func:`set_active_model`), or ``None`` when none is."""
    model_id = get_setting(session, ACTIVE_MODEL)
    return session.get(Model, model_id) if model_id is not None else None


def set_active_model(session: Session, model_id: int) -> Model:
    model = session.get(Model, model_id)
    if model is None:
        raise StoreError(f"no model with id {model_id} in the store; see the Models page")
    set_setting(session, ACTIVE_MODEL, model_id)
    return model


def _analyze(session: Session, table: str) -> None:
    """Refresh the planner's statistics after a bulk write, inside the caller's transaction.

    SQLite keeps none until ANALYZE runs, and without them it walks an index to find every row
    of a dataset (random reads) where a plain scan is faster, as for a text search; PostgreSQL's
    autovacuum would get there, but only after the first queries ran on a blind plan.
    (~50 ms on SQLite at 100k pairs; PostgreSQL samples a fixed number of rows.)
    """
    session.execute(text(f"ANALYZE {table}"))
