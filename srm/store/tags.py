"""Sentence tags: annotators' good/bad/unsure on spans of a response, kept as an append-only
history (a re-tag is a new row; the latest per annotator and span counts).

Every function takes a session and never commits; the caller owns the unit of work.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from srm.store.annotators import get_or_create_annotator
from srm.store.errors import StoreError
from srm.store.models import SIDES, TAGS, Pair, SentenceTag


def tag_sentence(
    session: Session,
    pair_id: int,
    annotator: str,
    side: str,
    span: tuple[int, int],
    tag: str,
    *,
    note: str | None = None,
) -> SentenceTag:
    """Tag the characters ``span = (start, end)`` of the pair's ``side`` response.

    ``side`` is ``chosen`` or ``rejected`` as imported; ``tag`` is good, bad or unsure. Spans
    usually come from :func:`srm.segment.segment` (``(s.start, s.end)``). Tagging a span again
    appends a new row; :func:`current_tags` returns the latest per annotator and span.
    """
    if side not in SIDES:
        raise StoreError(f"side: got {side!r}; use chosen or rejected")
    if tag not in TAGS:
        raise StoreError(f"tag: got {tag!r}; use one of {', '.join(TAGS)}")
    pair = session.get(Pair, pair_id)
    if pair is None:
        raise StoreError(f"no pair with id {pair_id} in the store")
    start, end = span
    length = len(getattr(pair, side))
    if not 0 <= start < end <= length:
        raise StoreError(
            f"span: got ({start}, {end}); the {side} response of pair {pair.external_id!r} has "
            f"{length} characters, so give 0 <= start < end <= {length}"
        )
    row = SentenceTag(
        pair_id=pair.id,
        annotator=get_or_create_annotator(session, annotator),
        side=side,
        span_start=start,
        span_end=end,
        tag=tag,
        note=note or None,
    )
    session.add(row)
    session.flush()
    return row


def tag_history(session: Session, pair_id: int) -> list[SentenceTag]:
    """Every tag given on a pair, oldest first, with its annotator loaded (for the audit
    trail: a re-tag is a new row, so who changed which sentence's tag, and when, is kept)."""
    return list(
        session.scalars(
            select(SentenceTag)
            .where(SentenceTag.pair_id == pair_id)
            .options(selectinload(SentenceTag.annotator))
            .order_by(SentenceTag.id)
        )
    )


def current_tags(session: Session, pair_ids: list[int] | None = None) -> list[SentenceTag]:
    """The latest tag per (pair, annotator, side, span), oldest first; all pairs by default."""
    query = select(SentenceTag).options(selectinload(SentenceTag.annotator))
    if pair_ids is not None:
        query = query.where(SentenceTag.pair_id.in_(pair_ids))
    latest: dict[tuple[int, int, str, int, int], SentenceTag] = {}
    for row in session.scalars(query.order_by(SentenceTag.id)):
        latest[(row.pair_id, row.annotator_id, row.side, row.span_start, row.span_end)] = row
    return sorted(latest.values(), key=lambda row: row.id)
