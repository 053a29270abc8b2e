"""The Annotate page around the pair: the keys and the guidelines in the sidebar, and below
the pair where the work stands (what orders the queue, progress), the queue itself, the
disagreements to settle, the team's progress, assignment and agreement, and the agreement
between annotators. What others voted stays hidden as :func:`webapp.annotation.visible` says
(``overview``: what the dataset-wide views may show).
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from srm.store import LABELS
from webapp import annotation, auth, browser_scripts, mdtext, services, widgets
from webapp.annotate.actions import MESSAGE, NOTE
from webapp.annotation import Visible
from webapp.cursor import AnnotateCursor
from webapp.sentence_focus import FOCUS_SHORTCUTS


def keyboard_help() -> None:
    """The note's Esc handler and the list of keys, in the sidebar."""
    with st.sidebar:  # installed early, before the pair is scored, so Esc works from the start
        browser_scripts.blur_on_escape(NOTE)
    st.sidebar.caption(
        "Keys: k keep · s swap · t tie · d discard · u undo · n next · p back · "
        f"{FOCUS_SHORTCUTS['next']}/{FOCUS_SHORTCUTS['previous']} next/previous sentence · "
        f"{FOCUS_SHORTCUTS['good']}/{FOCUS_SHORTCUTS['bad']} tag it good/bad · "
        "Esc or Enter leaves the note"
    )


def guidelines(url: str) -> None:
    """The guidelines in the sidebar, so they stay in reach beside every pair; an editor for
    them unless the store locks them."""
    with st.sidebar:
        st.markdown("**Guidelines**")
        text = annotation.guidelines(url)
        with st.container(height=360, border=True, key="annotate.guidelines"):
            if text:  # markdown, shown without images, raw HTML or live links
                st.html(mdtext.guidelines_html(text))
            else:
                st.caption("No guidelines yet.")
        lock = annotation.guidelines_lock(url)
        if lock is None:
            with st.popover("Edit guidelines", icon=":material/edit:"):
                st.text_area("Markdown", value=text, key="annotate.guidelines_text", height=300)
                if st.button("Save guidelines", key="annotate.guidelines_save"):
                    annotation.save_guidelines(url, st.session_state["annotate.guidelines_text"])
                    st.rerun()
        else:
            st.caption(f":material/lock: {lock}")  # safe: fixed sentences


def progress(
    url: str,
    dataset: str,
    annotator: str,
    model: services.ModelInfo | None,
    ranking: services.Ranking,
    queue: list[tuple[services.PairRow, float | None]],
    overview: Visible,
) -> DeltaGenerator:
    """What orders the queue, the dataset's jobs and how far its labelling is (blind: the
    annotator's own votes only), with scoring the queue's unscored pairs for an admin; the
    column beside it, for :func:`agreement_stats`."""
    icon = ":material/verified:" if ranking.kind == "audit" else ":material/warning:"
    st.caption(f"{icon} {mdtext.escape(ranking.text)}")  # safe: escaped
    widgets.dataset_jobs_progress(url, dataset, "annotate")
    counts = services.label_summary(url, dataset)
    done = sum(counts.values()) - counts["unlabelled"]
    total = sum(counts.values())
    progress_col, stats_col = st.columns([3, 2])
    if overview.others:
        progress_col.progress(
            done / total if total else 0.0, text=f"{done:,} of {total:,} pairs labelled"
        )
        progress_col.caption(" · ".join(f"{name} {counts[name]:,}" for name in LABELS))
    else:  # blind: the annotator's own progress, nothing of the labels
        mine = annotation.my_progress(url, dataset, annotator)
        progress_col.progress(
            mine.done / mine.assigned if mine.assigned else 0.0,
            text=f"You have voted on {mine.done:,} of your {mine.assigned:,} pairs",
        )  # safe: numbers only
    unscored = sum(d is None for _, d in queue)
    if ranking.kind == "model" and unscored and model is not None and model.id is not None:
        left, right = progress_col.columns([3, 1], vertical_alignment="center")
        left.caption(f"{unscored} of the first {len(queue)} pairs here have no score yet.")
        if auth.is_admin() and right.button(
            "Score them all",
            key="annotate.score",
            help="Scores the whole dataset with the active model as a job; the queue reorders.",
        ):
            job_id = services.start_score_job(url, dataset, model.id)
            st.session_state[MESSAGE] = f"Scoring job {job_id} started"
            st.rerun()
    return stats_col


def queue_table(queue: list[tuple[services.PairRow, float | None]], listed: Visible) -> None:
    """The queue as a table, in its order (its labels only where ``listed`` shows them)."""
    with st.expander("Queue", icon=":material/list:"):
        st.dataframe(
            [
                {"id": p.id, "label": p.label or "", "disagreement": d, "source": p.source}
                if listed.label
                else {"id": p.id, "source": p.source}
                for p, d in queue
            ],
            hide_index=True,
            width="stretch",
            column_config={"disagreement": st.column_config.NumberColumn(format="%+.2f")},
        )
        if any(d is None for _, d in queue):
            st.caption("Pairs without a score come last, in import order.")


def open_disagreements(url: str, dataset: str, overview: Visible, cursor: AnnotateCursor) -> None:
    """The pairs whose annotators disagree, with one to open; nothing for an annotator who
    may not see others' votes."""
    # Blind: no list of other people's votes for an annotator (reviewers settle them).
    open_splits = annotation.disagreements(url, dataset)
    if overview.others:
        with st.expander(
            f"Disagreements to settle ({len(open_splits)})",
            icon=":material/gavel:",
            expanded=bool(open_splits),
        ):
            if open_splits:
                st.dataframe(
                    [
                        {"id": d.id, "votes": d.votes_text, "label now": d.label or "unlabelled"}
                        for d in open_splits
                    ],
                    hide_index=True,
                    width="stretch",
                )
                chosen_split = st.selectbox(
                    "Pair to settle",
                    open_splits,
                    format_func=lambda d: f"{d.id} ({d.votes_text})",
                    key="annotate.split",
                )
                st.button(
                    "Open this pair",
                    key="annotate.open_split",
                    on_click=cursor.show,
                    args=(chosen_split.db_id,),
                    kwargs={"pin": True},
                )
            else:
                st.caption(
                    "No open disagreements: where two annotators' labels differ, the pair "
                    "shows here."
                )


def team_panel(url: str, dataset: str) -> None:
    """Progress, assignment and agreement for reviewers; assigning and the aggregation method
    for admins."""
    team = annotation.team_progress(url, dataset)
    overlap = team["overlap"] or 1
    st.progress(
        team["complete"] / team["pairs"] if team["pairs"] else 0.0,
        text=f"{team['complete']:,} of {team['pairs']:,} pairs have {overlap} "
        f"{'vote' if overlap == 1 else 'votes'}",
    )  # safe: numbers only
    if team["annotators"]:
        st.dataframe(team["annotators"], hide_index=True)
    else:
        st.caption("No pairs of this dataset are assigned yet.")
    agreement = annotation.team_agreement(url, dataset)
    st.markdown(
        f"**Agreement** on {agreement['overlapped']:,} pairs with two or more votes · "
        f"Krippendorff's alpha {agreement['alpha']} · {agreement['undecided']:,} undecided "
        f"(votes tie) · labels by {agreement['method']}"
    )  # safe: numbers and fixed words only
    if agreement["pairwise"]:
        st.dataframe(agreement["pairwise"], hide_index=True)
    if agreement["with_aggregate"]:
        st.dataframe(agreement["with_aggregate"], hide_index=True)
    if not auth.is_admin():
        return
    methods = list(annotation.AGGREGATIONS)
    method = st.selectbox(
        "Aggregate votes by",
        methods,
        index=methods.index(annotation.aggregation(url, dataset)),
        key=f"annotate.aggregation.{dataset}",
        help="Majority: ties wait for a reviewer. Dawid-Skene weighs each annotator by an "
        "estimate of how reliable they are.",
    )
    if method != annotation.aggregation(url, dataset):
        annotation.set_aggregation(url, dataset, method)
        st.rerun()
    blind_now = annotation.blind(url, dataset)
    blind_wanted = st.toggle(
        "Blind labelling",
        value=blind_now,
        key=f"annotate.blind.{dataset}",
        help="Before their own vote on a pair, annotators see no other vote, no label and "
        "nothing worded from it. On by default when pairs go to two or more annotators.",
    )
    if blind_wanted != blind_now:
        annotation.set_blind(url, dataset, blind_wanted)
        st.rerun()
    people = annotation.accounts(url)
    with st.form("annotate.assign_form"):
        st.markdown("**Assign pairs**")
        chosen = st.multiselect("Annotators", people, key="annotate.assign_names")
        cols = st.columns(2)
        overlap_n = cols[0].number_input("Overlap", 1, 10, 2, key="annotate.assign_overlap")
        seed = cols[1].number_input("Seed", 0, 2**31 - 1, 0, key="annotate.assign_seed")
        if st.form_submit_button("Assign"):
            _team_write(lambda: annotation.assign(url, dataset, chosen, int(overlap_n), int(seed)))
    assigned = [a["annotator"] for a in team["annotators"]]
    if assigned:
        with st.form("annotate.reassign_form"):
            st.markdown("**Reassign** the pairs someone has not voted on yet")
            cols = st.columns(2)
            source_name = cols[0].selectbox("From", assigned, key="annotate.reassign_from")
            target = cols[1].selectbox("To", people, key="annotate.reassign_to")
            if st.form_submit_button("Reassign"):
                _team_write(lambda: annotation.reassign(url, dataset, source_name, target))


def _team_write(write: Callable[[], str]) -> None:
    """An assignment: what it did, in the next run's toast, or the store's refusal here."""
    try:
        done = write()
    except services.StoreError as err:
        st.error(mdtext.escape(str(err)))
    else:
        st.session_state[MESSAGE] = done
        st.rerun()


def agreement_stats(url: str, dataset: str, overview: Visible) -> None:
    """How often annotators agree, pair by pair of them, when others' votes may be shown."""
    stats = (
        services.agreement(url, dataset) if overview.others else {"pairwise": [], "annotators": []}
    )
    if stats["pairwise"]:
        st.markdown("**Agreement between annotators**")
        st.dataframe(
            stats["pairwise"],
            hide_index=True,
            column_config={
                "agreement": st.column_config.NumberColumn(format="percent"),
                "Cohen's kappa": st.column_config.NumberColumn(format="%.2f"),
            },
        )
    elif stats["annotators"]:
        st.caption(
            "Annotators: "
            + ", ".join(f"{mdtext.escape(a['name'])} ({a['pairs']})" for a in stats["annotators"])
            + ". Agreement appears when two of them label the same pairs."
        )
