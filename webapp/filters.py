"""The filter bar the Data and Annotate pages share: dataset, label status (or the Annotate
queue's view), source and search; the label choices come from :data:`srm.store.LABELS`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from srm.store import LABELS
from webapp import services

ANY, UNLABELLED, LABELLED = "any", "unlabelled", "labelled"
#: Every label status a pair listing filters on, "any" (no filter) first.
LABEL_STATUSES = (ANY, UNLABELLED, LABELLED, *LABELS)
#: The label counts a page shows (``services.label_summary``): the unlabelled pairs, each label.
LABEL_COUNTS = (UNLABELLED, *LABELS)
ALL_DATASETS, ALL_SOURCES = "All datasets", "All sources"


def label_filter(status: str) -> dict[str, Any]:
    """The :func:`services.pair_filter` argument of a label status: ``{"label": None}`` for
    :data:`ANY`, else the status ("unlabelled", "labelled" or a label)."""
    return {"label": None if status == ANY else status}


@dataclass(frozen=True)
class FilterChoice:
    """What the bar is set to; ``dataset`` and ``source`` are ``None`` for "all"."""

    dataset: str | None
    status: str
    source: str | None
    search: str


def filter_bar(
    url: str,
    key: str,
    datasets: Sequence[str],
    statuses: Callable[[str | None], Sequence[str]],
    *,
    status_label: str,
    status_key: str = "status",
    all_datasets: bool = False,
    search_placeholder: str = "id or text",
) -> FilterChoice:
    """One row: Dataset, the status (``statuses(dataset)``, its default first), Source and
    Search, under the session keys ``{key}.dataset``, ``{key}.{status_key}``, ``{key}.source``
    and ``{key}.search``. ``all_datasets`` offers :data:`ALL_DATASETS` first. A status the
    picked dataset does not offer (another dataset's view) falls back to the default."""
    row = st.columns([2, 2, 2, 3])
    choices = [ALL_DATASETS, *datasets] if all_datasets else list(datasets)
    picked = row[0].selectbox("Dataset", choices, key=f"{key}.dataset")
    dataset = None if picked == ALL_DATASETS else picked
    offered = list(statuses(dataset))
    if st.session_state.get(f"{key}.{status_key}") not in offered:
        st.session_state.pop(f"{key}.{status_key}", None)
    status = row[1].selectbox(status_label, offered, key=f"{key}.{status_key}")
    source = row[2].selectbox(
        "Source", [ALL_SOURCES, *services.sources(url, dataset)], key=f"{key}.source"
    )
    search = row[3].text_input("Search", key=f"{key}.search", placeholder=search_placeholder)
    return FilterChoice(dataset, status, None if source == ALL_SOURCES else source, search)
