"""Widgets several pages draw the same way: the stylesheet, the empty-store stop, and a
verdict's P(chosen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from srm.compare import Verdict
from srm.records import probability_text
from webapp import auditing, services

#: What a table shows for a figure that does not exist (Streamlit would show "None").
NO_FIGURE = "—"
#: The app's one stylesheet: every page's CSS, under the selectors of the keys it styles.
STYLESHEET = Path(__file__).with_name("style.css")


def stylesheet() -> None:
    """Load :data:`STYLESHEET` into the page: once per run, from the router. A CSS file sent
    alone takes no room on the page (Streamlit wraps it in ``<style>``)."""
    st.html(STYLESHEET)


def number_cell(value: float | None, spec: str = ".2f") -> str:
    """A table cell for a figure that may be missing: ``number_cell(0.5, "+.3f") == "+0.500"``,
    :data:`NO_FIGURE` for ``None`` (or NaN)."""
    if value is None or value != value:
        return NO_FIGURE
    return format(value, spec)


def require_datasets(url: str) -> list[dict[str, Any]]:
    """The store's dataset summaries; on an empty store, say so and stop the page."""
    summaries = services.dataset_summaries(url)
    if not summaries:
        st.info("The store is empty: import pairs on the Data page first.")
        st.stop()
    return summaries


def p_chosen_metric(column: Any, verdict: Verdict, label: str, help: str | None = None) -> None:
    """σ(margin) as a metric, marked "no clear preference" inside the band around 50%, and
    never rounded across 50% (:func:`srm.records.probability_text`)."""
    column.metric(
        label,
        probability_text(verdict.p_chosen),
        delta=None if verdict.clear else "no clear preference",
        delta_color="off",
        delta_arrow="off",
        help=help,
    )


def audit_panel(url: str, dataset: str, key: str) -> None:
    """The "Audit labels" controls the Annotate and Train pages share: folds, steps per fold,
    backbone and head over the project's default recipe, how long it will take (shown before
    it starts), a Start button, and the dataset's audits with Resume for a stopped one."""
    from srm.audit import DEFAULT_FOLDS, default_recipe
    from srm.backbones import NAMED_BACKBONES
    from srm.config import HEADS
    from webapp import auth, mdtext

    recipe = default_recipe()
    admin = auth.is_admin()
    st.caption(
        "Trains one model per fold on the other folds (pairs sharing a prompt stay together) "
        "and scores the held-out fold, so every pair is judged by a model that never saw its "
        "label. The queue then orders by that out-of-fold disagreement."
    )
    cols = st.columns(4)
    folds = cols[0].number_input("Folds", 2, 20, DEFAULT_FOLDS, key=f"{key}.audit_folds")
    steps = cols[1].number_input(
        "Steps per fold", 1, 100_000, recipe.max_steps or 200, key=f"{key}.audit_steps"
    )
    backbones = list(NAMED_BACKBONES)
    backbone = cols[2].selectbox(
        "Backbone",
        backbones,
        index=backbones.index(recipe.model.backbone) if recipe.model.backbone in backbones else 0,
        key=f"{key}.audit_backbone",
    )
    head = cols[3].selectbox(
        "Head", HEADS, index=HEADS.index(recipe.model.head), key=f"{key}.audit_head"
    )
    config = {"max_steps": int(steps), "model": {"backbone": backbone, "head": head}}
    estimate = auditing.audit_estimate(url, dataset, int(folds), config)
    basis = "from this store's finished runs" if estimate["measured"] else "a rough CPU figure"
    st.info(  # safe: numbers and fixed words; the dataset name escaped
        f"{int(folds)} models of {int(steps):,} steps on {estimate['pairs']:,} pairs of "
        f"{mdtext.escape(dataset)}, then every pair scored once: **{estimate['text']}** "
        f"({basis}). It runs as a job; you can cancel it and resume it later.",
        icon=":material/schedule:",
    )
    if st.button(
        "Audit labels",
        key=f"{key}.audit_start",
        icon=":material/fact_check:",
        disabled=not admin,
        help=None if admin else "Starting an audit needs the admin role.",
    ):
        try:
            job_id = auditing.start_audit_job(url, dataset, int(folds), config)
        except Exception as err:  # a bad setting, too few prompts: say so
            st.error(f"The audit was not started: {mdtext.escape(err)}")  # safe: escaped
        else:
            st.session_state["train.flash"] = f"Started audit job {job_id}."
            st.session_state[f"{key}.audit_flash"] = f"Started audit job {job_id}."
            st.rerun()
    flash = st.session_state.pop(f"{key}.audit_flash", None)
    if flash:
        st.success(flash)  # fixed words and a number
    for audit in auditing.audits(url, dataset):
        row = st.columns([4, 1], vertical_alignment="center")
        state = "complete" if audit.complete else f"{audit.folds_done}/{audit.folds} folds saved"
        row[0].caption(  # safe: the label is built from numbers and config names, escaped
            f"{mdtext.escape(audit.label)} · {state} · {audit.scored:,} pairs scored · "
            f"{audit.created} UTC"
        )
        if not audit.complete and row[1].button(
            "Resume", key=f"{key}.audit_resume.{audit.id}", disabled=not admin
        ):
            job_id = auditing.start_audit_job(url, dataset, audit.folds, {}, resume=audit.id)
            st.session_state[f"{key}.audit_flash"] = f"Resumed audit {audit.id} as job {job_id}."
            st.rerun()


def dataset_jobs_progress(url: str, dataset: str, key: str) -> None:
    """The dataset's running jobs (scoring after an import, an audit) with their progress,
    polled every 2 s; when one finishes, the whole page reruns so the queue reorders."""
    from webapp import mdtext

    @st.fragment(run_every=2)
    def show() -> None:
        live = services.dataset_jobs(url, dataset)
        ids = sorted(j.id for j in live)
        before = st.session_state.get(f"{key}.live_jobs")
        st.session_state[f"{key}.live_jobs"] = ids
        if before is not None and before != ids:
            services.queue_page.clear()
            st.rerun(scope="app")
        for job in live:
            st.progress(  # safe: the job's message escaped
                min(max(job.progress, 0.0), 1.0),
                text=f"Job {job.id} ({job.kind}): {mdtext.escape(job.message or job.status)}",
            )

    show()
