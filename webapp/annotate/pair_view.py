"""The pair on the Annotate page: what is loaded of it (:func:`load`), then, top to bottom, the
action bar, the prompt and the two responses with their sentence tags, settling a disagreement,
reviewing the label, what the model says, and the audit trail. Before a blind vote the
annotator sees nothing of other people's votes (:func:`webapp.annotation.visible`).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from srm.compare import Verdict
from srm.records import SIDES, PairScores
from srm.store import preferred_side
from webapp import annotation, highlight, mdtext, scoring, sentence_focus, services
from webapp.annotate.actions import LAST, NOTE, Actions, move_focus, tag_key
from webapp.annotation import OpenDisagreement, Visible
from webapp.sentence_focus import FOCUS_SHORTCUTS


@dataclass(frozen=True)
class ShownPair:
    """The pair on screen, as loaded for this script run, and what the page may show of it."""

    pair: services.PairRow
    label: str | None
    """The label as loaded now: a write is refused if the pair changes after this point."""
    seen_event: int | None
    record: PairScores | None
    """The active model's scores of the pair; ``None`` without a model."""
    show: Visible
    verdict: Verdict | None
    """The model's verdict beside the label, or beside the imported verdict before a blind
    vote."""
    split: OpenDisagreement | None
    """The annotators' disagreement on the pair, when there is one and it may be shown."""


def load(
    url: str,
    current: services.PairRow,
    model: services.ModelInfo | None,
    annotator: str,
    dataset: str,
    *,
    blind: bool,
    reviewing: bool,
) -> ShownPair:
    """Read what the page shows of ``current``, fresh."""
    label, seen_event = annotation.label_state(url, current)
    record = scoring.scores(url, current, model) if model is not None else None
    show = annotation.visible(
        blind, not blind or annotation.has_voted(url, current, annotator), reviewing
    )
    # Before a blind vote the model speaks beside the imported verdict, not the label.
    shown_label = label if show.label else None
    verdict = scoring.verdict(record, shown_label) if record is not None else None
    split = next(
        (d for d in annotation.disagreements(url, dataset) if d.db_id == current.db_id), None
    )
    if not show.others:
        split = None
    return ShownPair(current, label, seen_event, record, show, verdict, split)


def action_bar(view: ShownPair, actions: Actions, where: str, next_id: int | None) -> None:
    """The compact bar that stays on top while the page scrolls: the pair's facts, the label
    buttons (the model's suggestion primary), undo, back, next and the note. ``where`` is the
    pair's place in the queue, in words."""
    current, label, seen_event = view.pair, view.label, view.seen_event
    show, verdict, split = view.show, view.verdict, view.split
    # The primary button: the model's suggestion, none when it has no clear preference, and
    # keep (the imported verdict) when there is no model.
    suggested = verdict.suggested_label if verdict is not None else "keep"
    with st.container(key="annotate.bar"):
        head, controls = st.columns([5, 8], vertical_alignment="center")
        head.subheader(f"Pair {mdtext.escape(current.id)}", anchor=False)  # no link from an id
        facts = [f"label: {label or 'unlabelled'}"] if show.label else []
        facts.append(where)
        if verdict is not None:
            facts.append(verdict.suggestion_text)
        if split is not None:
            facts.append(f"annotators disagree: {split.votes_text}")
        facts.append(f"source {current.source or '—'}")
        head.caption(" · ".join(mdtext.escape(f) for f in facts))  # safe: escaped
        with controls:
            buttons = st.container(horizontal=True, gap="xsmall")
            for name, key in annotation.LABEL_SHORTCUTS.items():
                buttons.button(  # Streamlit shows the shortcut key on the button itself
                    name.capitalize(),
                    key=f"annotate.{name}",
                    shortcut=key,
                    on_click=actions.label,
                    args=(name, current, seen_event, next_id),
                    type="primary" if name == suggested else "secondary",
                )
            buttons.button(
                "Undo",
                key="annotate.undo",
                shortcut=annotation.UNDO_SHORTCUT,
                on_click=actions.undo,
                disabled=st.session_state.get(LAST) is None,
                help="Takes back your last action in this session.",
            )
            buttons.button(
                "Back",
                key="annotate.prev",
                shortcut="p",
                on_click=actions.cursor.back,
                disabled=not actions.cursor.trail,
                help="Back through the pairs you handled in this session.",
            )
            buttons.button(
                "Next",
                key="annotate.next",
                shortcut="n",
                on_click=actions.cursor.show,
                args=(next_id,),
                disabled=next_id is None or next_id == current.db_id,
            )
            st.text_input(
                "Note",
                key=NOTE,
                label_visibility="collapsed",
                placeholder="Note (optional, saved with the next action); Esc or Enter "
                "returns to the shortcuts",
            )
            if st.session_state.get(NOTE, "").strip():  # it reached the server
                st.caption(":material/edit_note: The note goes with your next action.")


def responses(url: str, view: ShownPair, actions: Actions) -> None:
    """The prompt, then the two responses side by side, tinted by the model's sentence rewards
    when it scored the pair, with the annotators' sentence tags, the keyboard's focused
    sentence and the controls to tag each sentence."""
    current, label, record, show = view.pair, view.label, view.record, view.show
    annotator = actions.annotator
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
                on_click=move_focus,
                args=(focus_key, counts, step),
            )
        for tag in ("good", "bad"):
            keys.button(
                f"Tag {tag}",
                key=f"annotate.sentence_{tag}",
                shortcut=FOCUS_SHORTCUTS[tag],
                type="tertiary",
                on_click=actions.tag_focused,
                args=(
                    tag,
                    current,
                    focus.side,
                    focus_span,
                    tag_key(current, focus.side, focus.index + 1),
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
                    control = tag_key(current, side, i)
                    mine = tags.get((side, *span), {}).get(annotator)
                    st.session_state.setdefault(control, mine if mine in ("good", "bad") else None)
                    st.segmented_control(
                        f"{i}. {mdtext.escape(sentence.text.strip()[:120])}",
                        ["good", "bad"],
                        key=control,
                        on_change=actions.tag,
                        args=(control, current, side, span),
                    )


def settle_box(view: ShownPair, actions: Actions) -> None:
    """When annotators disagree on the pair: the votes, and for a reviewer the buttons that
    settle it."""
    current, label, seen_event, split = view.pair, view.label, view.seen_event, view.split
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
                        on_click=actions.settle,
                        args=(name, current, seen_event),
                    )
                st.caption("An adjudication is its own event in the trail; it becomes the label.")
            else:
                st.caption("A reviewer settles disagreements.")


def review_box(view: ShownPair, actions: Actions) -> None:
    """For a reviewer, on a labelled pair: accept the label, or reject it for another."""
    current, label, seen_event, show = view.pair, view.label, view.seen_event, view.show
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
                on_click=actions.review,
                args=(None, current, seen_event),
            )
            for name in annotation.LABEL_SHORTCUTS:
                if name != label:
                    verdicts.button(
                        f"Reject → settle as {name}",
                        key=f"annotate.reject.{name}",
                        on_click=actions.review,
                        args=(name, current, seen_event),
                    )


def model_notes(
    url: str,
    view: ShownPair,
    model: services.ModelInfo | None,
    ranking: services.Ranking,
    disagreement: float | None,
) -> None:
    """What the model says of the pair, and how far the ranking disagrees with its label
    (``disagreement`` as the queue read it, ``None`` when it had none)."""
    current, verdict, show = view.pair, view.verdict, view.show
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


def audit_trail(url: str, view: ShownPair, annotator: str) -> None:
    """The pair's label events and tags, oldest first; before a blind vote, the annotator's
    own."""
    current, show = view.pair, view.show
    st.caption(
        f"Pair {mdtext.escape(current.id)} of dataset {mdtext.escape(current.dataset)}"
    )  # safe: escaped
    st.markdown("**Audit trail**")
    trail = annotation.history(url, current, only=None if show.others else annotator)
    if trail:
        st.dataframe(trail, hide_index=True, width="stretch")
    else:
        st.caption("No label events yet: the imported verdict stands.")
