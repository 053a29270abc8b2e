"""Widgets several pages draw the same way: the empty-store stop, and a verdict's P(chosen)."""

from __future__ import annotations

from typing import Any

import streamlit as st

import services
from srm.compare import Verdict


def require_datasets(url: str) -> list[dict[str, Any]]:
    """The store's dataset summaries; on an empty store, say so and stop the page."""
    summaries = services.dataset_summaries(url)
    if not summaries:
        st.info("The store is empty: import pairs on the Data page first.")
        st.stop()
    return summaries


def p_chosen_metric(column: Any, verdict: Verdict, label: str, help: str | None = None) -> None:
    """σ(margin) as a metric, marked "no clear preference" inside the band around 50%."""
    column.metric(
        label,
        f"{verdict.p_chosen:.1%}",
        delta=None if verdict.clear else "no clear preference",
        delta_color="off",
        delta_arrow="off",
        help=help,
    )
