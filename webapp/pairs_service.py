"""The datasets and their pairs as the pages list them: dataset summaries, sources and label
counts, pages of pairs, the Annotate queue and what orders it, and label agreement.

Reads are cached briefly (``ttl``); :func:`clear_pair_caches` forgets them after an import or a
label write (``annotation`` and ``importing`` call it), so an annotator sees their own change at
once and other people's within seconds. Pages reach these through ``services``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import streamlit as st

from srm import store
from webapp.rows import ModelInfo, PairRow
from webapp.store_access import read_session


# ------------------------------------------------------------------------------- plain rows
def pair_row(pair: store.Pair) -> PairRow:
    """The store's pair as the plain row pages get."""
    return PairRow(
        pair.id,
        pair.external_id,
        pair.dataset.name,
        pair.source,
        pair.prompt,
        pair.chosen,
        pair.rejected,
        pair.margin,
        pair.label,
        pair.last_event_id,
        pair.subset,
    )


def clear_pair_caches() -> None:
    """Forget the cached pair reads: after an import or a label write."""
    for cached in (pair_count, pair_page, label_summary, queue_page, dataset_summaries, agreement):
        cached.clear()


# ------------------------------------------------------------------------------- datasets
@st.cache_data(ttl=10, show_spinner=False)
def dataset_summaries(url: str) -> list[dict]:
    with read_session(url) as session:
        return [asdict(s) for s in store.list_datasets(session)]


@st.cache_data(ttl=60, show_spinner=False)
def sources(url: str, dataset: str | None) -> list[str]:
    with read_session(url) as session:
        return store.list_sources(session, dataset)


@st.cache_data(ttl=10, show_spinner=False)
def label_summary(url: str, dataset: str | None) -> dict[str, int]:
    with read_session(url) as session:
        return store.label_summary(session, dataset)


def pair_filter(
    source: str | None = None,
    label: str | None = None,
    margin: tuple[float, float] | None = None,
    disagreeing_model: int | None = None,
    assigned_to: str | None = None,
    unvoted_by: str | None = None,
    voted_by: str | None = None,
) -> dict[str, Any]:
    """The filter fields as a plain dict (hashable by the cache); see ``store.PairFilter``."""
    fields = {
        "source": source,
        "label": label,
        "min_margin": margin[0] if margin else None,
        "max_margin": margin[1] if margin else None,
        "model_id": disagreeing_model,
        "disagreeing": disagreeing_model is not None,
    }
    team = {"assigned_to": assigned_to, "unvoted_by": unvoted_by, "voted_by": voted_by}
    return fields | {k: v for k, v in team.items() if v is not None}


def _where(filters: Mapping[str, Any] | None) -> store.PairFilter | None:
    return store.PairFilter(**filters) if filters else None


def _page(
    search: str | None, filters: Mapping[str, Any] | None, page: int, page_size: int
) -> dict[str, Any]:
    """The keyword arguments of one page of a pair listing (the Data page's or the queue's)."""
    return {
        "search": search or None,
        "where": _where(filters),
        "limit": page_size,
        "offset": page * page_size,
    }


@st.cache_data(ttl=10, show_spinner=False)
def pair_count(
    url: str, dataset: str | None, search: str, filters: Mapping[str, Any] | None = None
) -> int:
    with read_session(url) as session:
        return store.count_pairs(session, dataset, search=search or None, where=_where(filters))


@st.cache_data(ttl=10, show_spinner=False)
def pair_page(
    url: str,
    dataset: str | None,
    search: str,
    page: int,
    page_size: int,
    filters: Mapping[str, Any] | None = None,
) -> list[PairRow]:
    with read_session(url) as session:
        pairs = store.list_pairs(session, dataset, **_page(search, filters, page, page_size))
        return [pair_row(p) for p in pairs]


def get_pair(url: str, dataset: str, external_id: str) -> PairRow:
    """One pair, read fresh (its label may have just changed)."""
    with read_session(url) as session:
        return pair_row(store.get_pair(session, dataset, external_id))


def margin_range(url: str, dataset: str | None) -> tuple[float, float] | None:
    """The smallest and largest imported margin, or ``None`` when no pair has one."""
    with read_session(url) as session:
        return store.margin_bounds(session, dataset)


# ------------------------------------------------------------------------------- the queue
@st.cache_data(ttl=10, show_spinner=False)
def queue_page(
    url: str,
    dataset: str | None,
    model_id: int | None,
    search: str,
    filters: Mapping[str, Any] | None,
    page: int,
    page_size: int,
    audit_id: int | None = None,
    blind: bool = False,
) -> list[tuple[PairRow, float | None]]:
    """A page of the Annotate queue (``store.annotation_queue``); ``blind`` orders it against
    the imported verdict, so that the order says nothing of the votes."""
    with read_session(url) as session:
        rows = store.annotation_queue(
            session,
            dataset,
            model_id,
            audit_id=audit_id,
            blind=blind,
            **_page(search, filters, page, page_size),
        )
        return [(pair_row(p), d) for p, d in rows]


@dataclass(frozen=True)
class Ranking:
    """What orders the Annotate queue: the newest complete audit of the dataset (out of
    fold), else the active model's scores (in sample: it may have trained on these labels),
    else import order."""

    kind: str
    """``audit``, ``model`` or ``none``."""
    audit_id: int | None
    model_id: int | None
    text: str
    """One line for the page saying which ranking is in force and what it is worth."""


def queue_ranking(url: str, dataset: str, model: ModelInfo | None) -> Ranking:
    with read_session(url) as session:
        audit_id = store.latest_audit(session, dataset)
        summary = next(
            (a for a in store.audit_summaries(session, dataset) if a.id == audit_id), None
        )
    if summary is not None:
        return Ranking(
            "audit",
            summary.id,
            None,
            f"Ordered by {summary.label}: each pair judged by a model that never trained on it "
            "(out of fold), the most confident disagreement with the current label first.",
        )
    if model is not None and model.id is not None:
        return Ranking(
            "model",
            None,
            model.id,
            f"Ordered by the active model, {model.label}, in sample: it may have trained on "
            "these labels, and a model that fitted a wrong label agrees with it. Audit the "
            "labels for an out-of-fold ranking.",
        )
    return Ranking("none", None, None, "In import order: there is no model to rank with.")


def disagreement(
    url: str, pair: PairRow, model: ModelInfo | None, audit_id: int | None = None
) -> float | None:
    """How far the ranking (an audit, else the model) prefers the response the pair's label
    rejects, as the queue orders by it (:func:`srm.store.disagreement`); ``None`` until the
    pair has such a score."""
    model_id = model.id if model is not None else None
    if model_id is None and audit_id is None:
        return None
    with read_session(url) as session:
        return store.pair_disagreement(session, pair.db_id, model_id, audit_id=audit_id)


@st.cache_data(ttl=10, show_spinner=False)
def agreement(url: str, dataset: str | None) -> dict[str, Any]:
    with read_session(url) as session:
        report = store.agreement(session, dataset)
    return {
        "annotators": [asdict(a) for a in report.annotators],
        "pairwise": [
            {
                "annotators": f"{p.a} · {p.b}",
                "shared pairs": p.n,
                "agreement": p.percent / 100,
                "Cohen's kappa": p.kappa,
            }
            for p in report.pairwise
        ],
    }


@st.cache_data(ttl=10, show_spinner=False)
def tagged_response_count(url: str, dataset: str) -> int:
    """How many responses of ``dataset`` annotators tagged sentences of (good or bad): what a
    train job "also learning from the sentence tags" learns from
    (:func:`srm.store.tagged_sentences`)."""
    with read_session(url) as session:
        return len(store.tagged_sentences(session, dataset))
