"""What the Annotate page's buttons and keys do: label, undo, settle, review and tag a pair,
and move the keyboard's focused sentence.

They run as Streamlit callbacks, before the next script run, so the page redraws with the new
state at once; they move the cursor (:class:`webapp.cursor.AnnotateCursor`), and the pair left
behind goes on the session's way back (``p``). A refused write (a stale one too) is kept for the
page to show (:data:`CONFLICT`), and what went well for a toast (:data:`MESSAGE`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from webapp import annotation, sentence_focus, services
from webapp.cursor import AnnotateCursor

#: The session keys the page and its callbacks share: the note, typed for the next action; a
#: refused write, shown once; a toast's words; the last label written, for undo.
NOTE = "annotate.note"
CONFLICT = "annotate.conflict"
MESSAGE = "annotate.message"
LAST = "annotate.last"


def tag_key(pair: services.PairRow, side: str, number: int) -> str:
    """The session key of sentence ``number`` (1-based)'s control under Tag sentences."""
    return f"annotate.tag.{pair.db_id}.{side}.{number}"


def move_focus(key: str, counts: dict[str, int], step: int) -> None:
    st.session_state[key] = sentence_focus.moved(st.session_state.get(key), counts, step)


@dataclass(frozen=True)
class Actions:
    """The callbacks of one script run, for ``annotator`` on the store at ``url``."""

    url: str
    annotator: str
    cursor: AnnotateCursor

    def label(
        self, label: str, pair: services.PairRow, expected: int | None, next_id: int | None
    ) -> None:
        note = st.session_state.get(NOTE, "")
        try:
            event_id = annotation.record_label(
                self.url, pair, self.annotator, label, expected, note
            )
        except services.StaleWriteError as err:
            st.session_state[CONFLICT] = str(err)
            self.cursor.show(pair.db_id, remember=False, pin=True)  # stay: reload, decide again
            return
        st.session_state[LAST] = (pair, event_id)
        st.session_state[NOTE] = ""
        st.session_state[MESSAGE] = f"{pair.id}: {label}"
        self.cursor.show(next_id)  # None when the queue holds no other pair: "nothing left"

    def undo(self) -> None:
        last = st.session_state.get(LAST)
        if last is None:
            return
        pair, event_id = last
        try:
            annotation.undo_label(self.url, pair, self.annotator, event_id)
        except (services.StaleWriteError, services.StoreError) as err:
            st.session_state[CONFLICT] = str(err)
            return
        st.session_state[LAST] = None
        st.session_state[MESSAGE] = f"{pair.id}: undone"
        self.cursor.show(pair.db_id, pin=True)

    def _reviewed(self, write: Callable[[str], object], pair: services.PairRow, words: str) -> None:
        """A reviewer's settling write (``write(note)``), with the note; on success the page
        says ``words`` and stays on the pair; a refusal (a stale write too) is shown instead."""
        try:
            write(st.session_state.get(NOTE, ""))
        except services.StoreError as err:
            st.session_state[CONFLICT] = str(err)
            return
        st.session_state[NOTE] = ""
        st.session_state[MESSAGE] = f"{pair.id}: {words}"
        self.cursor.show(pair.db_id, remember=False, pin=True)

    def review(self, label: str | None, pair: services.PairRow, expected: int | None) -> None:
        """Accept the pair's label (``label=None``) or reject it for ``label``."""
        self._reviewed(
            lambda note: annotation.review(self.url, pair, self.annotator, label, expected, note),
            pair,
            "label accepted" if label is None else f"rejected, settled as {label}",
        )

    def settle(self, label: str, pair: services.PairRow, expected: int | None) -> None:
        self._reviewed(
            lambda note: annotation.adjudicate(
                self.url, pair, self.annotator, label, expected, note
            ),
            pair,
            f"settled as {label}",
        )

    def tag(self, key: str, pair: services.PairRow, side: str, span: tuple[int, int]) -> None:
        tag = st.session_state.get(key)
        if tag:  # clicking the selected tag again clears the control; the stored tag stays
            annotation.tag_sentence(self.url, pair, self.annotator, side, span, tag)

    def tag_focused(
        self, tag: str, pair: services.PairRow, side: str, span: tuple[int, int], key: str
    ) -> None:
        """``g``/``b``: the focused sentence's tag, written as its control writes it; the
        control shows it after the rerun."""
        if st.session_state.get(key) == tag:
            return  # already so
        st.session_state[key] = tag
        annotation.tag_sentence(self.url, pair, self.annotator, side, span, tag)
