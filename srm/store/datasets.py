"""Datasets and their import: a dataset's id by name, the datasets with their sizes, and
:func:`import_pairs`, which adds pairs in bulk and refuses conflicting or unstorable ones.

Every function takes a session and never commits: the caller owns the unit of work
(``with Session.begin() as session: ...``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from srm.store.engine import INSERT_CHUNK, insert_unless_present, refresh_statistics
from srm.store.errors import StoreError
from srm.store.models import PREFERENCE_COLUMNS, Dataset, Pair, utcnow

if TYPE_CHECKING:
    from srm.data import PreferencePair


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
    for start in range(0, len(new_rows), INSERT_CHUNK):
        session.execute(insert(Pair.__table__), new_rows[start : start + INSERT_CHUNK])
    refresh_statistics(session, Pair.__tablename__, len(new_rows))
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
