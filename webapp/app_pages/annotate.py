"""Annotate: fix preference labels fast, the pairs the model most disagrees with first.

The first screen is the pair: a compact action bar that stays on top while the page scrolls,
the prompt (folded past a few lines) and the two responses side by side. The guidelines sit in
the sidebar, beside every pair; the trail, the queue, agreement and adjudication come below.
This script picks the annotator, the queue and the pair; the parts it places are in
``webapp/annotate/`` (the pair: ``pair_view``; around it: ``panels``; the buttons' callbacks:
``actions``).
"""

import streamlit as st

from webapp import annotation, auth, browser_scripts, filters, mdtext, services, widgets
from webapp.annotate import pair_view, panels
from webapp.annotate.actions import CONFLICT, MESSAGE, Actions
from webapp.cursor import AnnotateCursor

url = services.store_url()
summaries = widgets.require_datasets(url)

# --- who is annotating: the signed-in account; without accounts, the URL, else what this
# browser remembers (kept in both) --------------------------------------------------------------
signed_in = auth.account()
if signed_in is not None:
    annotator = signed_in  # nothing typed, in the URL or in a cookie can change it
else:
    if "annotate.annotator" not in st.session_state:
        st.session_state["annotate.annotator"] = (
            st.query_params.get("annotator") or browser_scripts.remembered_annotator()
        )
    annotator = st.sidebar.text_input(
        "Annotator",
        key="annotate.annotator",
        placeholder="your name",
        help="Kept in the audit trail, in the page's URL and in this browser.",
    ).strip()

panels.keyboard_help()
panels.guidelines(url)

st.title("Annotate")
if signed_in is not None:
    st.caption(f":material/person: {auth.signed_in_text()}")  # safe: escaped
else:
    if not annotator:
        st.warning("Type your name in the sidebar to start: every correction records who made it.")
        st.stop()
    st.query_params["annotator"] = annotator
    if browser_scripts.remembered_annotator() != annotator:
        with st.sidebar:
            browser_scripts.remember_annotator(annotator)

# --- the queue -------------------------------------------------------------------------------
model = services.active_model(url)
# An annotator with assigned pairs works through them; reviewers also see the whole dataset.
bar = filters.filter_bar(
    url,
    "annotate",
    [s["name"] for s in summaries],
    lambda picked: annotation.queue_views(
        annotation.assigned_count(url, picked, annotator) > 0, auth.may_review()
    ),
    status_label="Show",
)
dataset, status, search = bar.dataset, bar.status, bar.search
pair_filter = services.pair_filter(source=bar.source, **annotation.view_filter(status, annotator))
# Blind labelling: before their vote, an annotator sees nothing of the others' (reviewers in the
# dataset views see everything: they settle the votes).
blind = annotation.blind(url, dataset)
reviewing = auth.may_review() and status in annotation.DATASET_VIEWS
# What the queue's table may show of its pairs' labels: as a pair before the annotator's vote,
# except in their own voted pairs; and what the dataset-wide views (label counts, who voted,
# the disagreements) may show: nothing of others' votes while the annotator has pairs to vote.
listed = annotation.visible(blind, status == annotation.MY_VOTED, reviewing)
overview = annotation.visible(blind, False, reviewing)
model_id = model.id if model is not None else None
ranking = services.queue_ranking(url, dataset, model)
queue = services.queue_page(
    url, dataset, model_id, search, pair_filter, 0, 50, ranking.audit_id, blind and not reviewing
)
ids = [p.db_id for p, _ in queue]

# The pair shown: the cursor's if the queue holds it, or if the annotator came back to it (`p`)
# or a write on it was refused, even when the queue no longer holds it (webapp/cursor.py).
cursor: AnnotateCursor = st.session_state.setdefault("annotate.cursor", AnnotateCursor())
pinned = cursor.pinned_outside(ids)
pinned_pair = annotation.pair(url, pinned) if pinned is not None else None
if pinned_pair is not None and pinned_pair.dataset != dataset:
    pinned_pair = None
shown = cursor.resolve(ids, pinned_found=pinned_pair is not None)
current, disagreement = queue[shown.position] if shown.in_queue else (pinned_pair, None)
next_id = cursor.next_after(ids, shown)

actions = Actions(url, annotator, cursor)

conflict = st.session_state.pop(CONFLICT, None)
if conflict:
    st.error(mdtext.escape(conflict), icon=":material/sync_problem:")
message = st.session_state.pop(MESSAGE, None)
if message:
    st.toast(mdtext.escape(message))

if current is None:
    st.success("Nothing left in this queue.", icon=":material/task_alt:")
    if cursor.trail:
        st.button("Back", key="annotate.prev", shortcut="p", on_click=cursor.back)
else:
    view = pair_view.load(url, current, model, annotator, dataset, blind=blind, reviewing=reviewing)
    position = shown.position
    where = f"{position + 1} of {len(ids)}" if position is not None else "not in this queue"
    pair_view.action_bar(view, actions, where, next_id)
    pair_view.responses(url, view, actions)
    pair_view.settle_box(view, actions)
    pair_view.review_box(view, actions)
    pair_view.model_notes(url, view, model, ranking, disagreement)
    pair_view.audit_trail(url, view, annotator)

# --- where the work stands -------------------------------------------------------------------
stats_col = panels.progress(url, dataset, annotator, model, ranking, queue, overview)
panels.queue_table(queue, listed)
panels.open_disagreements(url, dataset, overview, cursor)

with st.expander("Audit labels (out of fold)", icon=":material/fact_check:"):
    widgets.audit_panel(url, dataset, "annotate")

if auth.may_review() and not services.demo_mode():
    with st.expander("Team: progress, assignment, agreement", icon=":material/groups:"):
        panels.team_panel(url, dataset)

with stats_col:
    panels.agreement_stats(url, dataset, overview)
