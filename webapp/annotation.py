"""The Annotate page's services: label writes, the audit trail, sentence tags, adjudication,
the guidelines and their lock. Plain data in and out; the rules live in :mod:`srm.store`.

Writes go through ``store_access.write`` (refused in demo mode) and clear the cached reads
they make stale, so an annotator sees their own change at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from srm import store
from webapp import auth, services
from webapp.filters import ANY, LABELLED, UNLABELLED, label_filter
from webapp.pairs_service import pair_row
from webapp.services import PROJECT_DIR, PairRow
from webapp.store_access import demo_mode, read_session, write

#: Label actions with their keyboard shortcuts, in the order the Annotate page shows them.
LABEL_SHORTCUTS = {"keep": "k", "swap": "s", "tie": "t", "discard": "d"}
UNDO_SHORTCUT = "u"
GUIDELINES_FILE = PROJECT_DIR / "docs" / "guidelines.md"


def _changed() -> None:
    services.clear_pair_caches()
    disagreements.clear()
    team_progress.clear()
    team_agreement.clear()


# ------------------------------------------------------------------------------- labels
def pair(url: str, db_id: int) -> PairRow | None:
    """One pair by its store key, read fresh; ``None`` when it is gone."""
    with read_session(url) as session:
        row = session.get(store.Pair, db_id)
        return pair_row(row) if row is not None else None


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


def history(url: str, pair: PairRow, only: str | None = None) -> list[dict[str, Any]]:
    """The pair's audit trail, oldest first: label events (``#`` is their place in the log)
    and sentence tags (``sentence`` says which one), each with who and when. With ``only``
    (blind labelling, before a vote), that annotator's own rows, without the label after."""
    rows = _history(url, pair)
    if only is None:
        return rows
    return [
        {k: v for k, v in row.items() if k != "label after"}
        for row in rows
        if row["annotator"] == only
    ]


def _history(url: str, pair: PairRow) -> list[dict[str, Any]]:
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
    """Settling disagreements, accepting and rejecting labels is a reviewer's call: a reviewer
    or admin account, the admin role when shared passwords are set."""
    return auth.may_review() and not demo_mode()


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
    auth.require_reviewer("Settling a disagreement")
    with write(url) as session:
        event = store.adjudicate(
            session, pair.db_id, adjudicator, label, expected_event_id=expected_event_id, note=note
        )
        event_id = event.id
    _changed()
    return event_id


def review(
    url: str,
    pair: PairRow,
    reviewer: str,
    label: str | None,
    expected_event_id: int | None,
    note: str = "",
) -> int:
    """A reviewer's verdict on the pair's label: ``label=None`` accepts it, a label rejects it
    and settles the pair on that label (:func:`srm.store.review_label`)."""
    auth.require_reviewer("Reviewing a label")
    with write(url) as session:
        event = store.review_label(
            session,
            pair.db_id,
            reviewer,
            accept=label is None,
            label=label,
            expected_event_id=expected_event_id,
            note=note,
        )
        event_id = event.id
    _changed()
    return event_id


# ------------------------------------------------------------------------------- blind labelling
@dataclass(frozen=True)
class Visible:
    """What the Annotate page may show of a pair (:func:`visible`)."""

    others: bool
    """Other annotators' votes, tags and trail rows, and the disagreement box."""
    label: bool
    """The current label and what is worded from it (the bar's ``label:``, "the label says
    better/worse", the disagreement with the label)."""


def visible(blind: bool, voted: bool, reviewing: bool = False) -> Visible:
    """Blind labelling: before their own vote on a blind dataset's pair, an annotator sees
    nothing of the others' votes or of the label they make; after it, everything. A reviewer
    browsing the review views (``reviewing``) sees everything: they settle the votes.

    >>> visible(blind=True, voted=False), visible(blind=True, voted=True).label
    (Visible(others=False, label=False), True)
    """
    shown = not blind or voted or reviewing
    return Visible(others=shown, label=shown)


# ------------------------------------------------------------------------------- queue views
MY_QUEUE, MY_VOTED = "my queue", "my voted pairs"
AGGREGATIONS = store.AGGREGATIONS
#: The views of the whole dataset, as the page offered them before assignment: the label
#: statuses, the unlabelled pairs (the default) first.
DATASET_VIEWS = (UNLABELLED, ANY, LABELLED, *store.LABELS)


def queue_views(assigned: bool, reviewer: bool) -> list[str]:
    """The Annotate page's "Show" choices, the default first: an annotator with assigned
    pairs works through them ("my queue") and looks back at their own votes; reviewers and
    admins also get the dataset views; without assignments, the dataset views.

    >>> queue_views(assigned=True, reviewer=False)
    ['my queue', 'my voted pairs']
    """
    if not assigned:
        return list(DATASET_VIEWS)
    return [MY_QUEUE, MY_VOTED, *(DATASET_VIEWS if reviewer else ())]


def view_filter(view: str, annotator: str) -> dict[str, Any]:
    """The :func:`services.pair_filter` arguments of a view (source aside)."""
    if view == MY_QUEUE:
        return {"assigned_to": annotator, "unvoted_by": annotator}
    if view == MY_VOTED:
        return {"assigned_to": annotator, "voted_by": annotator}
    return label_filter(view)


@st.cache_data(ttl=10, show_spinner=False)
def blind(url: str, dataset: str) -> bool:
    with read_session(url) as session:
        return store.is_blind(session, dataset)


def has_voted(url: str, pair: PairRow, annotator: str) -> bool:
    """Read fresh: the page un-blinds the pair right after the vote."""
    with read_session(url) as session:
        return store.has_voted(session, pair.db_id, annotator)


@st.cache_data(ttl=10, show_spinner=False)
def assigned_count(url: str, dataset: str, annotator: str) -> int:
    """How many pairs of ``dataset`` are assigned to ``annotator`` (0 without assignments)."""
    with read_session(url) as session:
        if not store.has_assignments(session, dataset):
            return 0
        return store.count_pairs(session, dataset, where=store.PairFilter(assigned_to=annotator))


# ------------------------------------------------------------------------------- the team
def accounts(url: str) -> list[str]:
    """Every account's name, for the assignment form."""
    with read_session(url) as session:
        return [a.name for a in store.list_users(session)]


@st.cache_data(ttl=10, show_spinner=False)
def team_progress(url: str, dataset: str) -> dict[str, Any]:
    """Per annotator assigned, done and remaining; the dataset's pairs, overlap and complete
    pairs (enough votes)."""
    with read_session(url) as session:
        found = store.progress(session, dataset)
    return {
        "pairs": found.pairs,
        "overlap": found.overlap,
        "complete": found.complete,
        "annotators": [
            {"annotator": a.name, "assigned": a.assigned, "done": a.done, "remaining": a.remaining}
            for a in found.annotators
        ],
    }


def my_progress(url: str, dataset: str, annotator: str) -> store.AnnotatorProgress:
    """The annotator's assigned pairs and how many of them they voted on (0 of 0 without)."""
    found = team_progress(url, dataset)["annotators"]
    row = next((a for a in found if a["annotator"] == annotator), None)
    if row is None:
        return store.AnnotatorProgress(annotator, 0, 0)
    return store.AnnotatorProgress(annotator, row["assigned"], row["done"])


@st.cache_data(ttl=10, show_spinner=False)
def team_agreement(url: str, dataset: str) -> dict[str, Any]:
    """The agreement dashboard's rows: Cohen's kappa per two annotators, Krippendorff's alpha,
    each annotator's agreement with the aggregate label, the undecided pairs. A value that
    cannot be computed is ``"—"``, never ``None``."""
    with read_session(url) as session:
        found = store.team_agreement(session, dataset)

    def number(value: float | None, digits: int = 2) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    return {
        "method": found.method,
        "overlapped": found.overlapped,
        "alpha": number(found.alpha),
        "undecided": found.undecided,
        "pairwise": [
            {
                "annotators": f"{p.a} · {p.b}",
                "shared pairs": p.n,
                "agreement": f"{p.percent:.0f}%",
                "Cohen's kappa": number(p.kappa),
            }
            for p in found.pairwise
        ],
        "with_aggregate": [
            {
                "annotator": a.name,
                "pairs": a.n,
                "agrees with the aggregate": "—" if a.percent is None else f"{a.percent:.0f}%",
            }
            for a in found.with_aggregate
        ],
    }


def aggregation(url: str, dataset: str) -> str:
    with read_session(url) as session:
        return store.get_aggregation(session, dataset)


def _team_changed() -> None:
    for cached in (team_progress, team_agreement, assigned_count, blind):
        cached.clear()
    _changed()


def set_blind(url: str, dataset: str, on: bool) -> None:
    """Blind labelling on or off for the dataset (:func:`srm.store.set_blind`)."""
    auth.require_admin("Switching blind labelling")
    with write(url) as session:
        store.set_blind(session, dataset, on)
    _team_changed()


def set_aggregation(url: str, dataset: str, method: str) -> None:
    auth.require_admin("Choosing how votes aggregate")
    with write(url) as session:
        store.set_aggregation(session, dataset, method)
    _team_changed()


def assign(url: str, dataset: str, names: list[str], overlap: int, seed: int) -> str:
    """Assign the dataset's pairs (:func:`srm.store.assign`); what was done, in words."""
    auth.require_admin("Assigning pairs")
    with write(url) as session:
        done = store.assign(session, dataset, names, overlap, seed=seed)
    _team_changed()
    short = f"; {done.short} pairs still short of {overlap}" if done.short else ""
    return f"{done.added} assignments made (overlap {overlap}){short}"


def reassign(url: str, dataset: str, from_name: str, to_name: str) -> str:
    auth.require_admin("Reassigning pairs")
    with write(url) as session:
        done = store.reassign(session, dataset, from_name, to_name)
    _team_changed()
    return f"{done.moved} pairs moved, {done.kept} kept (voted on, or already assigned)"


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
