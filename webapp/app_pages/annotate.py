"""Annotate: fix preference labels fast, the pairs the model most disagrees with first."""

import streamlit as st

import auth
import highlight
import mdtext
import scoring
import services
import widgets
from srm.store import preferred_side

url = services.store_url()
st.title("Annotate")

summaries = widgets.require_datasets(url)

# --- who is annotating (required; remembered for the session and in the page's URL) -----------
if "annotate.annotator" not in st.session_state:
    st.session_state["annotate.annotator"] = st.query_params.get("annotator", "")
annotator = st.sidebar.text_input(
    "Annotator", key="annotate.annotator", placeholder="your name", help="Kept in the audit trail."
).strip()

with st.expander("Guidelines", icon=":material/menu_book:"):
    text = services.guidelines(url)
    if text:  # markdown, shown without images, raw HTML or live links
        st.html(mdtext.guidelines_html(text))
    else:
        st.caption("No guidelines yet.")
    if auth.is_admin():
        with st.popover("Edit guidelines"):
            st.text_area("Markdown", value=text, key="annotate.guidelines_text", height=300)
            if st.button("Save guidelines", key="annotate.guidelines_save"):
                services.save_guidelines(url, st.session_state["annotate.guidelines_text"])
                st.rerun()

if not annotator:
    st.warning("Type your name in the sidebar to start: every correction records who made it.")
    st.stop()
st.query_params["annotator"] = annotator

# --- the queue -------------------------------------------------------------------------------
names = [s["name"] for s in summaries]
model = services.active_model(url)
row = st.columns([2, 2, 2, 3])
dataset = row[0].selectbox("Dataset", names, key="annotate.dataset")
status = row[1].selectbox(
    "Show",
    ["unlabelled", "any", "labelled", "keep", "swap", "tie", "discard"],
    key="annotate.status",
)
source = row[2].selectbox(
    "Source", ["All sources", *services.sources(url, dataset)], key="annotate.source"
)
search = row[3].text_input("Search", key="annotate.search", placeholder="id or text")
filters = services.pair_filter(
    source=None if source == "All sources" else source,
    label=None if status == "any" else status,
)
model_id = model.id if model is not None else None
ranking = services.queue_ranking(url, dataset, model)
queue = services.queue_page(url, dataset, model_id, search, filters, 0, 50, ranking.audit_id)
icon = ":material/verified:" if ranking.kind == "audit" else ":material/warning:"
st.caption(f"{icon} {mdtext.escape(ranking.text)}")  # safe: escaped
widgets.dataset_jobs_progress(url, dataset, "annotate")
with st.expander("Audit labels (out of fold)", icon=":material/fact_check:"):
    widgets.audit_panel(url, dataset, "annotate")

counts = services.label_summary(url, dataset)
done = sum(counts.values()) - counts["unlabelled"]
total = sum(counts.values())
progress_col, stats_col = st.columns([3, 2])
progress_col.progress(done / total if total else 0.0, text=f"{done:,} of {total:,} pairs labelled")
progress_col.caption(
    " · ".join(f"{name} {counts[name]:,}" for name in ("keep", "swap", "tie", "discard"))
)

conflict = st.session_state.pop("annotate.conflict", None)
if conflict:
    st.error(mdtext.escape(conflict), icon=":material/sync_problem:")
message = st.session_state.pop("annotate.message", None)
if message:
    st.toast(mdtext.escape(message))

unscored = sum(d is None for _, d in queue)
if ranking.kind == "model" and unscored and model is not None and model.id is not None:
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.caption(f"{unscored} of the first {len(queue)} pairs here have no score yet.")
    if auth.is_admin() and right.button(
        "Score them all",
        key="annotate.score",
        help="Scores the whole dataset with the active model as a job; the queue reorders.",
    ):
        job_id = services.start_score_job(url, dataset, model.id)
        st.session_state["annotate.message"] = f"Scoring job {job_id} started"
        st.rerun()

if not queue:
    st.success("Nothing left in this queue.", icon=":material/task_alt:")
    current = None
else:
    ids = [p.db_id for p, _ in queue]
    if st.session_state.get("annotate.current") not in ids:
        st.session_state["annotate.current"] = ids[0]
    position = ids.index(st.session_state["annotate.current"])
    current, disagreement = queue[position]


# Callbacks run before the next script run, so the page redraws with the new state at once.
def _act(label: str, pair: services.PairRow, expected: int | None, next_id: int | None) -> None:
    note = st.session_state.get("annotate.note", "")
    try:
        event_id = services.record_label(url, pair, annotator, label, expected, note)
    except services.StaleWriteError as err:
        st.session_state["annotate.conflict"] = str(err)
        return
    st.session_state["annotate.last"] = (pair, event_id)
    st.session_state["annotate.note"] = ""
    st.session_state["annotate.message"] = f"{pair.id}: {label}"
    if next_id is not None:
        st.session_state["annotate.current"] = next_id


def _undo() -> None:
    last = st.session_state.get("annotate.last")
    if last is None:
        return
    pair, event_id = last
    try:
        services.undo_label(url, pair, annotator, event_id)
    except (services.StaleWriteError, services.StoreError) as err:
        st.session_state["annotate.conflict"] = str(err)
        return
    st.session_state["annotate.last"] = None
    st.session_state["annotate.current"] = pair.db_id
    st.session_state["annotate.message"] = f"{pair.id}: undone"


def _move(to: int) -> None:
    st.session_state["annotate.current"] = to


def _tag(key: str, pair: services.PairRow, side: str, span: tuple[int, int]) -> None:
    tag = st.session_state.get(key)
    if tag:  # clicking the selected tag again clears the control; the stored tag stays
        services.tag_sentence(url, pair, annotator, side, span, tag)


if current is not None:
    # The label as loaded now: a write is refused if the pair changes after this point.
    label, seen_event = services.label_state(url, current)
    next_id = ids[position + 1] if position + 1 < len(ids) else None
    st.subheader(f"Pair {mdtext.escape(current.id)}", anchor=False)  # no link made from an id
    info = st.columns([1, 1, 1, 2])
    info[0].metric("Current label", label or "unlabelled")
    info[1].metric("Queue position", f"{position + 1} of {len(ids)}")
    info[3].caption(
        f"dataset {mdtext.escape(current.dataset)} · source {mdtext.escape(current.source or '—')}"
    )

    actions = st.columns(7)
    for col, (name, key) in zip(actions, services.LABEL_SHORTCUTS.items(), strict=False):
        col.button(  # Streamlit shows the shortcut key on the button itself
            name.capitalize(),
            key=f"annotate.{name}",
            shortcut=key,
            on_click=_act,
            args=(name, current, seen_event, next_id),
            type="primary" if name in ("keep", "swap") else "secondary",
            width="stretch",
        )
    actions[4].button(
        "Undo",
        key="annotate.undo",
        shortcut=services.UNDO_SHORTCUT,
        on_click=_undo,
        disabled=st.session_state.get("annotate.last") is None,
        help="Takes back your last action in this session.",
        width="stretch",
    )
    moves = (
        ("Previous", "prev", "p", ids[position - 1] if position else None),
        ("Next", "next", "n", next_id),
    )
    for col, (name, key, shortcut, target) in zip(actions[5:], moves, strict=True):
        col.button(
            name,
            key=f"annotate.{key}",
            shortcut=shortcut,
            on_click=_move,
            args=(ids[position] if target is None else target,),
            disabled=target is None,
            width="stretch",
        )
    st.text_input("Note (optional, saved with the next action)", key="annotate.note")
    st.caption("Shortcuts: k keep · s swap · t tie · d discard · u undo · n next · p previous")

    with st.container(border=True):
        st.text(current.prompt.strip())
    record = scoring.scores(url, current, model) if model is not None else None
    if record is not None:
        verdict = scoring.verdict(record, label)
        st.caption(
            f"Model: prefers **{verdict.model_prefers}** · P(chosen better) = "
            f"{verdict.probability_text} · {verdict.split_text}"
        )
        for note in (verdict.coverage_note, verdict.prompt_note):
            if note:
                st.caption(f":material/info: {note}")  # safe: numbers and fixed words only
        scale = highlight.shared_scale(record, "reward")
    if disagreement is None:  # scored just now, after the queue was read
        disagreement = services.disagreement(url, current, model, ranking.audit_id)
    if disagreement is not None:
        out_of_fold = ranking.kind == "audit"
        info[2].metric(
            "Out-of-fold disagreement" if out_of_fold else "Model disagrees by (in sample)",
            f"{disagreement:+.2f}",
            help="How far the "
            + (
                "audit's model of this pair's fold, which never trained on it,"
                if out_of_fold
                else "model"
            )
            + " prefers the response the label rejects (negative: it agrees).",
        )
    my_tags = services.tags(url, current, annotator)
    cols = st.columns(2)
    for col, side in zip(cols, ("chosen", "rejected"), strict=True):
        with col:
            better = preferred_side(label)
            verdict_note = (
                ""
                if better is None
                else (" · the label says better" if side == better else " · the label says worse")
            )
            st.markdown(f"**{side.capitalize()}**{verdict_note}")  # safe: fixed words only
            text = getattr(current, side)
            if record is not None:
                scored = record.side(side)
                st.caption(scored.coverage.describe().capitalize())
                st.html(highlight.sentences_html(text, scored, by="reward", scale=scale))
                sentences = scored.sentences
            else:
                st.text(text)
                sentences = scoring.sentences(text)
            with st.expander("Tag sentences", icon=":material/thumbs_up_down:"):
                for i, sentence in enumerate(sentences, start=1):
                    span = (sentence.start, sentence.end)
                    tag_key = f"annotate.tag.{current.db_id}.{side}.{i}"
                    st.session_state.setdefault(tag_key, my_tags.get((side, *span)))
                    st.segmented_control(
                        f"{i}. {mdtext.escape(sentence.text.strip()[:120])}",
                        ["good", "bad"],
                        key=tag_key,
                        on_change=_tag,
                        args=(tag_key, current, side, span),
                    )

    st.markdown("**Audit trail**")
    trail = services.history(url, current)
    if trail:
        st.dataframe(trail, hide_index=True, width="stretch")
    else:
        st.caption("No label events yet: the imported verdict stands.")

    with st.expander("Queue", icon=":material/list:"):
        st.dataframe(
            [
                {"id": p.id, "label": p.label or "", "disagreement": d, "source": p.source}
                for p, d in queue
            ],
            hide_index=True,
            width="stretch",
            column_config={"disagreement": st.column_config.NumberColumn(format="%+.2f")},
        )
        if any(d is None for _, d in queue):
            st.caption("Pairs without a score come last, in import order.")

with stats_col:
    stats = services.agreement(url, dataset)
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
