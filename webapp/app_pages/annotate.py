"""Annotate: fix preference labels fast, the pairs the model most disagrees with first.

The first screen is the pair: a compact action bar that stays on top while the page scrolls,
the prompt (folded past a few lines) and the two responses side by side. The guidelines sit in
the sidebar, beside every pair; the trail, the queue, agreement and adjudication come below.
"""

import streamlit as st

from srm.records import SIDES
from srm.store import LABELS, preferred_side
from webapp import (
    annotation,
    auth,
    browser_scripts,
    filters,
    highlight,
    mdtext,
    scoring,
    sentence_focus,
    services,
    widgets,
)
from webapp.cursor import AnnotateCursor
from webapp.sentence_focus import FOCUS_SHORTCUTS

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

with st.sidebar:  # installed early, before the pair is scored, so Esc works from the start
    browser_scripts.blur_on_escape("annotate.note")
st.sidebar.caption(
    "Keys: k keep · s swap · t tie · d discard · u undo · n next · p back · "
    f"{FOCUS_SHORTCUTS['next']}/{FOCUS_SHORTCUTS['previous']} next/previous sentence · "
    f"{FOCUS_SHORTCUTS['good']}/{FOCUS_SHORTCUTS['bad']} tag it good/bad · "
    "Esc or Enter leaves the note"
)

# --- guidelines: in the sidebar, so they stay in reach beside every pair -----------------------
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


# Callbacks run before the next script run, so the page redraws with the new state at once;
# they move the cursor, and the pair left behind goes on the session's way back (`p`).
def _act(label: str, pair: services.PairRow, expected: int | None, next_id: int | None) -> None:
    note = st.session_state.get("annotate.note", "")
    try:
        event_id = annotation.record_label(url, pair, annotator, label, expected, note)
    except services.StaleWriteError as err:
        st.session_state["annotate.conflict"] = str(err)
        cursor.show(pair.db_id, remember=False, pin=True)  # stay: reload and decide again
        return
    st.session_state["annotate.last"] = (pair, event_id)
    st.session_state["annotate.note"] = ""
    st.session_state["annotate.message"] = f"{pair.id}: {label}"
    cursor.show(next_id)  # None when the queue holds no other pair: "nothing left"


def _undo() -> None:
    last = st.session_state.get("annotate.last")
    if last is None:
        return
    pair, event_id = last
    try:
        annotation.undo_label(url, pair, annotator, event_id)
    except (services.StaleWriteError, services.StoreError) as err:
        st.session_state["annotate.conflict"] = str(err)
        return
    st.session_state["annotate.last"] = None
    st.session_state["annotate.message"] = f"{pair.id}: undone"
    cursor.show(pair.db_id, pin=True)


def _reviewed(write, pair: services.PairRow, words: str) -> None:
    """A reviewer's settling write (``write(note)``), with the note; on success the page says
    ``words`` and stays on the pair; a refusal (a stale write too) is shown instead."""
    try:
        write(st.session_state.get("annotate.note", ""))
    except services.StoreError as err:
        st.session_state["annotate.conflict"] = str(err)
        return
    st.session_state["annotate.note"] = ""
    st.session_state["annotate.message"] = f"{pair.id}: {words}"
    cursor.show(pair.db_id, remember=False, pin=True)


def _review(label: str | None, pair: services.PairRow, expected: int | None) -> None:
    """Accept the pair's label (``label=None``) or reject it for ``label``."""
    _reviewed(
        lambda note: annotation.review(url, pair, annotator, label, expected, note),
        pair,
        "label accepted" if label is None else f"rejected, settled as {label}",
    )


def _settle(label: str, pair: services.PairRow, expected: int | None) -> None:
    _reviewed(
        lambda note: annotation.adjudicate(url, pair, annotator, label, expected, note),
        pair,
        f"settled as {label}",
    )


def _tag(key: str, pair: services.PairRow, side: str, span: tuple[int, int]) -> None:
    tag = st.session_state.get(key)
    if tag:  # clicking the selected tag again clears the control; the stored tag stays
        annotation.tag_sentence(url, pair, annotator, side, span, tag)


def _tag_key(pair: services.PairRow, side: str, number: int) -> str:
    """The session key of sentence ``number`` (1-based)'s control under Tag sentences."""
    return f"annotate.tag.{pair.db_id}.{side}.{number}"


def _move_focus(key: str, counts: dict[str, int], step: int) -> None:
    st.session_state[key] = sentence_focus.moved(st.session_state.get(key), counts, step)


def _tag_focused(
    tag: str, pair: services.PairRow, side: str, span: tuple[int, int], key: str
) -> None:
    """``g``/``b``: the focused sentence's tag, written as its control writes it; the control
    shows it after the rerun."""
    if st.session_state.get(key) == tag:
        return  # already so
    st.session_state[key] = tag
    annotation.tag_sentence(url, pair, annotator, side, span, tag)


conflict = st.session_state.pop("annotate.conflict", None)
if conflict:
    st.error(mdtext.escape(conflict), icon=":material/sync_problem:")
message = st.session_state.pop("annotate.message", None)
if message:
    st.toast(mdtext.escape(message))

if current is None:
    st.success("Nothing left in this queue.", icon=":material/task_alt:")
    if cursor.trail:
        st.button("Back", key="annotate.prev", shortcut="p", on_click=cursor.back)
else:
    # The label as loaded now: a write is refused if the pair changes after this point.
    label, seen_event = annotation.label_state(url, current)
    position = shown.position
    record = scoring.scores(url, current, model) if model is not None else None
    show = annotation.visible(
        blind, not blind or annotation.has_voted(url, current, annotator), reviewing
    )
    # Before a blind vote the model speaks beside the imported verdict, not the label.
    shown_label = label if show.label else None
    verdict = scoring.verdict(record, shown_label) if record is not None else None
    # The primary button: the model's suggestion, none when it has no clear preference, and
    # keep (the imported verdict) when there is no model.
    suggested = verdict.suggested_label if verdict is not None else "keep"
    split = next(
        (d for d in annotation.disagreements(url, dataset) if d.db_id == current.db_id), None
    )
    if not show.others:
        split = None

    with st.container(key="annotate.bar"):
        head, actions = st.columns([5, 8], vertical_alignment="center")
        head.subheader(f"Pair {mdtext.escape(current.id)}", anchor=False)  # no link from an id
        where = f"{position + 1} of {len(ids)}" if position is not None else "not in this queue"
        facts = [f"label: {label or 'unlabelled'}"] if show.label else []
        facts.append(where)
        if verdict is not None:
            facts.append(verdict.suggestion_text)
        if split is not None:
            facts.append(f"annotators disagree: {split.votes_text}")
        facts.append(f"source {current.source or '—'}")
        head.caption(" · ".join(mdtext.escape(f) for f in facts))  # safe: escaped
        with actions:
            buttons = st.container(horizontal=True, gap="xsmall")
            for name, key in annotation.LABEL_SHORTCUTS.items():
                buttons.button(  # Streamlit shows the shortcut key on the button itself
                    name.capitalize(),
                    key=f"annotate.{name}",
                    shortcut=key,
                    on_click=_act,
                    args=(name, current, seen_event, next_id),
                    type="primary" if name == suggested else "secondary",
                )
            buttons.button(
                "Undo",
                key="annotate.undo",
                shortcut=annotation.UNDO_SHORTCUT,
                on_click=_undo,
                disabled=st.session_state.get("annotate.last") is None,
                help="Takes back your last action in this session.",
            )
            buttons.button(
                "Back",
                key="annotate.prev",
                shortcut="p",
                on_click=cursor.back,
                disabled=not cursor.trail,
                help="Back through the pairs you handled in this session.",
            )
            buttons.button(
                "Next",
                key="annotate.next",
                shortcut="n",
                on_click=cursor.show,
                args=(next_id,),
                disabled=next_id is None or next_id == current.db_id,
            )
            st.text_input(
                "Note",
                key="annotate.note",
                label_visibility="collapsed",
                placeholder="Note (optional, saved with the next action); Esc or Enter "
                "returns to the shortcuts",
            )
            if st.session_state.get("annotate.note", "").strip():  # it reached the server
                st.caption(":material/edit_note: The note goes with your next action.")

    st.html(highlight.prompt_html(current.prompt))
    tags = annotation.tags(url, current)
    if not show.others:  # only the annotator's own tags
        tags = {k: {annotator: by[annotator]} for k, by in tags.items() if annotator in by}
    scale = highlight.shared_scale(record, "reward") if record is not None else 1.0
    # Each side's sentences: the model's when it scored the pair, else the same segmentation.
    sentences_of = {
        side: record.side(side).sentences
        if record is not None
        else scoring.sentences(getattr(current, side))
        for side in SIDES
    }
    counts = {side: len(found) for side, found in sentences_of.items()}
    # The keyboard's focused sentence, kept per pair; it starts at chosen's first sentence.
    focus_key = f"annotate.focus.{current.db_id}"
    focus = sentence_focus.moved(st.session_state.get(focus_key), counts, 0)
    st.session_state[focus_key] = focus
    focus_span = None
    if focus is not None:
        focused = sentences_of[focus.side][focus.index]
        focus_span = (focused.start, focused.end)
        keys = st.container(horizontal=True, gap="xsmall", vertical_alignment="center")
        keys.caption(
            f"{focus.describe(counts)} focused: {FOCUS_SHORTCUTS['good']} good · "
            f"{FOCUS_SHORTCUTS['bad']} bad · {FOCUS_SHORTCUTS['next']}/"
            f"{FOCUS_SHORTCUTS['previous']} move"
        )  # safe: numbers and fixed words only
        for name, step, icon in (
            ("previous", -1, ":material/arrow_back:"),
            ("next", 1, ":material/arrow_forward:"),
        ):
            keys.button(
                f"{name.capitalize()} sentence",
                key=f"annotate.sentence_{name}",
                shortcut=FOCUS_SHORTCUTS[name],
                icon=icon,
                type="tertiary",
                on_click=_move_focus,
                args=(focus_key, counts, step),
            )
        for tag in ("good", "bad"):
            keys.button(
                f"Tag {tag}",
                key=f"annotate.sentence_{tag}",
                shortcut=FOCUS_SHORTCUTS[tag],
                type="tertiary",
                on_click=_tag_focused,
                args=(
                    tag,
                    current,
                    focus.side,
                    focus_span,
                    _tag_key(current, focus.side, focus.index + 1),
                ),
            )
    cols = st.columns(2)
    for col, side in zip(cols, SIDES, strict=True):
        with col:
            better = preferred_side(label) if show.label else None  # None: imported
            verdict_note = (
                ""
                if better is None
                else (" · the label says better" if side == better else " · the label says worse")
            )
            st.markdown(f"**{side.capitalize()}**{verdict_note}")  # safe: fixed words only
            text = getattr(current, side)
            side_tags = {(s, e): votes for (d, s, e), votes in tags.items() if d == side}
            sentences = sentences_of[side]
            side_focus = focus_span if focus is not None and focus.side == side else None
            if record is not None:
                scored = record.side(side)
                st.html(
                    highlight.sentences_html(
                        text, scored, by="reward", scale=scale, tags=side_tags, focus=side_focus
                    )
                )
                st.caption(scored.coverage.describe().capitalize())
            else:
                st.html(
                    highlight.tagged_html(
                        text, [(s.start, s.end) for s in sentences], side_tags, focus=side_focus
                    )
                )
            with st.expander("Tag sentences", icon=":material/thumbs_up_down:"):
                for i, sentence in enumerate(sentences, start=1):
                    span = (sentence.start, sentence.end)
                    tag_key = _tag_key(current, side, i)
                    mine = tags.get((side, *span), {}).get(annotator)
                    st.session_state.setdefault(tag_key, mine if mine in ("good", "bad") else None)
                    st.segmented_control(
                        f"{i}. {mdtext.escape(sentence.text.strip()[:120])}",
                        ["good", "bad"],
                        key=tag_key,
                        on_change=_tag,
                        args=(tag_key, current, side, span),
                    )

    if split is not None:
        with st.container(border=True):
            now = (
                f"the majority's, {label}"
                if label is not None
                else "undecided: the votes tie, and a reviewer settles it"
            )
            st.markdown(
                f":material/gavel: **Annotators disagree** on this pair: "
                f"{mdtext.escape(split.votes_text)}. The pair's label is {mdtext.escape(now)}."
            )  # safe: escaped
            if annotation.may_adjudicate():
                settle = st.container(horizontal=True)
                for name in annotation.LABEL_SHORTCUTS:
                    settle.button(
                        f"Settle as {name}",
                        key=f"annotate.settle.{name}",
                        on_click=_settle,
                        args=(name, current, seen_event),
                    )
                st.caption("An adjudication is its own event in the trail; it becomes the label.")
            else:
                st.caption("A reviewer settles disagreements.")

    if label is not None and show.label and annotation.may_adjudicate():
        with st.container(border=True, key="annotate.review"):
            st.markdown(
                f":material/rule: **Review** the label, {mdtext.escape(label)}: accept it, or "
                "reject it and settle the pair on another."
            )  # safe: escaped
            verdicts = st.container(horizontal=True)
            verdicts.button(
                "Accept label",
                key="annotate.accept",
                on_click=_review,
                args=(None, current, seen_event),
            )
            for name in annotation.LABEL_SHORTCUTS:
                if name != label:
                    verdicts.button(
                        f"Reject → settle as {name}",
                        key=f"annotate.reject.{name}",
                        on_click=_review,
                        args=(name, current, seen_event),
                    )

    if verdict is not None:
        st.caption(
            f"Model: prefers **{verdict.model_prefers}** · P(chosen better) = "
            f"{verdict.probability_text} · {verdict.split_text}"
        )  # safe: numbers and fixed words only
        for note in (verdict.coverage_note, verdict.prompt_note):
            if note:
                st.caption(f":material/info: {note}")  # safe: numbers and fixed words only
    if disagreement is None:  # scored just now, after the queue was read
        disagreement = services.disagreement(url, current, model, ranking.audit_id)
    if disagreement is not None and show.label:
        out_of_fold = ranking.kind == "audit"
        st.metric(
            "Out-of-fold disagreement"
            if out_of_fold
            else "Disagreement with the label (in sample)",
            f"{disagreement:+.2f}",
            help="How far the "
            + (
                "audit's model of this pair's fold, which never trained on it,"
                if out_of_fold
                else "model"
            )
            + " prefers the response the label rejects (negative: it agrees). The queue puts "
            "the largest first.",
        )

    st.caption(
        f"Pair {mdtext.escape(current.id)} of dataset {mdtext.escape(current.dataset)}"
    )  # safe: escaped
    st.markdown("**Audit trail**")
    trail = annotation.history(url, current, only=None if show.others else annotator)
    if trail:
        st.dataframe(trail, hide_index=True, width="stretch")
    else:
        st.caption("No label events yet: the imported verdict stands.")

# --- where the work stands -------------------------------------------------------------------
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
        st.session_state["annotate.message"] = f"Scoring job {job_id} started"
        st.rerun()

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
                "No open disagreements: where two annotators' labels differ, the pair shows here."
            )

with st.expander("Audit labels (out of fold)", icon=":material/fact_check:"):
    widgets.audit_panel(url, dataset, "annotate")


def _team_panel(dataset: str) -> None:
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
            try:
                done = annotation.assign(url, dataset, chosen, int(overlap_n), int(seed))
            except services.StoreError as err:
                st.error(mdtext.escape(str(err)))
            else:
                st.session_state["annotate.message"] = done
                st.rerun()
    assigned = [a["annotator"] for a in team["annotators"]]
    if assigned:
        with st.form("annotate.reassign_form"):
            st.markdown("**Reassign** the pairs someone has not voted on yet")
            cols = st.columns(2)
            source_name = cols[0].selectbox("From", assigned, key="annotate.reassign_from")
            target = cols[1].selectbox("To", people, key="annotate.reassign_to")
            if st.form_submit_button("Reassign"):
                try:
                    done = annotation.reassign(url, dataset, source_name, target)
                except services.StoreError as err:
                    st.error(mdtext.escape(str(err)))
                else:
                    st.session_state["annotate.message"] = done
                    st.rerun()


if auth.may_review() and not services.demo_mode():
    with st.expander("Team: progress, assignment, agreement", icon=":material/groups:"):
        _team_panel(dataset)

with stats_col:
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
