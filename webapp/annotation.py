"""The Annotate page's services: label writes, the audit trail, sentence tags, adjudication,
the guidelines and their lock. Plain data in and out; the rules live in :mod:`srm.store`.

Writes go through ``store_access.write`` (refused in demo mode) and clear the cached reads
they make stale, so an annotator sees their own change at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

import auth
import services
from services import PROJECT_DIR, PairRow
from srm import store
from store_access import demo_mode, read_session, write

#: Label actions with their keyboard shortcuts, in the order the Annotate page shows them.
LABEL_SHORTCUTS = {"keep": "k", "swap": "s", "tie": "t", "discard": "d"}
UNDO_SHORTCUT = "u"
GUIDELINES_FILE = PROJECT_DIR / "docs" / "guidelines.md"


def _changed() -> None:
    services.clear_pair_caches()
    disagreements.clear()


# ------------------------------------------------------------------------------- labels
def pair(url: str, db_id: int) -> PairRow | None:
    """One pair by its store key, read fresh; ``None`` when it is gone."""
    with read_session(url) as session:
        row = session.get(store.Pair, db_id)
        return services._pair_row(row) if row is not None else None


def label_state(url: str, pair: PairRow) -> tuple[str | None, int | None]:
    """The pair's current label and latest event id, read fresh."""
    with read_session(url) as session:
        state = store.label_state(session, pair.db_id)
        return state.label, state.event_id


def record_label(
    url: str, pair: PairRow, annotator: str, label: str, expected_event_id: int | None, note: str
) -> int:
    """Append a label; raises ``StaleWriteError`` when someone changed the pair meanwhile."""
    with write(url) as session:
        event = store.record_label(
            session, pair.db_id, annotator, label, expected_event_id=expected_event_id, note=note
        )
        event_id = event.id
    _changed()
    return event_id


def undo_label(url: str, pair: PairRow, annotator: str, expected_event_id: int | None) -> int:
    with write(url) as session:
        event = store.undo_label(
            session, pair.db_id, annotator, expected_event_id=expected_event_id
        )
        event_id = event.id
    _changed()
    return event_id


def history(url: str, pair: PairRow) -> list[dict[str, Any]]:
    """The pair's audit trail, oldest first: label events (``#`` is their place in the log)
    and sentence tags (``sentence`` says which one), each with who and when."""
    with read_session(url) as session:
        rows = [
            (
                e.created_at,
                {
                    "#": str(e.seq),
                    "when (UTC)": f"{e.created_at:%Y-%m-%d %H:%M:%S}",
                    "annotator": e.annotator.name,
                    "action": e.action,
                    "label after": e.label or "unlabelled",
                    "sentence": "",
                    "note": e.note or "",
                },
            )
            for e in store.label_history(session, pair.db_id)
        ]
        for t in store.tag_history(session, pair.db_id):
            text = " ".join(getattr(pair, t.side)[t.span_start : t.span_end].split())
            rows.append(
                (
                    t.created_at,
                    {
                        "#": "",
                        "when (UTC)": f"{t.created_at:%Y-%m-%d %H:%M:%S}",
                        "annotator": t.annotator.name,
                        "action": f"tag {t.tag}",
                        "label after": "",
                        "sentence": f"{t.side}: {text[:80]}{'…' if len(text) > 80 else ''}",
                        "note": t.note or "",
                    },
                )
            )
    # Python's sort is stable: label events keep their log order when two share a timestamp.
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


# ------------------------------------------------------------------------------- tags
def tag_sentence(
    url: str, pair: PairRow, annotator: str, side: str, span: tuple[int, int], tag: str
) -> None:
    with write(url) as session:
        store.tag_sentence(session, pair.db_id, annotator, side, span, tag)
    services.tag_credit.clear()


def tags(url: str, pair: PairRow) -> dict[tuple[str, int, int], dict[str, str]]:
    """Current sentence tags of the pair: ``(side, start, end) -> {annotator: tag}``."""
    found: dict[tuple[str, int, int], dict[str, str]] = {}
    with read_session(url) as session:
        for t in store.current_tags(session, [pair.db_id]):
            found.setdefault((t.side, t.span_start, t.span_end), {})[t.annotator.name] = t.tag
    return found


# ------------------------------------------------------------------------------- adjudication
@dataclass(frozen=True)
class OpenDisagreement:
    """A pair whose annotators disagree, as the page lists it."""

    db_id: int
    id: str
    votes: dict[str, str]
    label: str | None
    settled_by: str | None

    @property
    def votes_text(self) -> str:
        """``"ana keep · bo swap"``."""
        return " · ".join(f"{name} {label}" for name, label in sorted(self.votes.items()))


@st.cache_data(ttl=10, show_spinner=False)
def disagreements(url: str, dataset: str, settled: bool = False) -> list[OpenDisagreement]:
    """The dataset's pairs where annotators disagree (open ones, unless ``settled``)."""
    with read_session(url) as session:
        return [
            OpenDisagreement(d.pair_id, d.external_id, d.votes, d.label, d.settled_by)
            for d in store.disagreements(session, dataset, settled=settled)
        ]


def may_adjudicate() -> bool:
    """Settling disagreements is a reviewer's call: the admin role when passwords are set."""
    return auth.is_admin() and not demo_mode()


def adjudicate(
    url: str,
    pair: PairRow,
    adjudicator: str,
    label: str,
    expected_event_id: int | None,
    note: str = "",
) -> int:
    """Settle a disagreement with ``label``; refused unless the session is admin, unless the
    annotators disagree, and (``StaleWriteError``) when the pair moved on meanwhile."""
    auth.require_admin("Settling a disagreement")
    with write(url) as session:
        event = store.adjudicate(
            session, pair.db_id, adjudicator, label, expected_event_id=expected_event_id, note=note
        )
        event_id = event.id
    _changed()
    return event_id


# ------------------------------------------------------------------------------- guidelines
def guidelines(url: str) -> str:
    """Annotation guidelines: the store's ``guidelines`` setting, else docs/guidelines.md."""
    with read_session(url) as session:
        text = store.get_setting(session, store.GUIDELINES)
    if text:
        return str(text)
    return GUIDELINES_FILE.read_text(encoding="utf-8") if GUIDELINES_FILE.is_file() else ""


def guidelines_lock(url: str) -> str | None:
    """Why this session may not edit the guidelines, or ``None`` when it may."""
    if demo_mode():
        return "The demo is read-only."
    if not auth.is_admin():
        return "Only an admin may edit the guidelines."
    with read_session(url) as session:
        locked = store.get_setting(session, store.GUIDELINES_LOCKED, False)
    if locked:
        return "The guidelines are locked in the store (`srm guidelines --unlock` opens them)."
    return None


def save_guidelines(url: str, text: str) -> None:
    auth.require_admin("Editing the guidelines")
    with write(url) as session:
        if store.get_setting(session, store.GUIDELINES_LOCKED, False):
            raise store.StoreError(
                "the guidelines are locked in the store; unlock them with "
                "`srm guidelines --unlock` first"
            )
        store.set_setting(session, store.GUIDELINES, text)
