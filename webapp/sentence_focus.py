"""The keyboard's place among a pair's sentences on the Annotate page: one focused sentence,
moved through the chosen response and on into the rejected one, tagged good or bad by key.

Plain values and functions, no Streamlit: the page keeps a :class:`SentenceFocus` in session
state per pair and draws the outline where it points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from srm.records import SIDES

#: The focused sentence's keys. The page's other keys: k s t d (labels), u (undo), n p (pairs).
FOCUS_SHORTCUTS = {"next": "j", "previous": "h", "good": "g", "bad": "b"}


@dataclass(frozen=True)
class SentenceFocus:
    """Sentence ``index`` (0-based) of response ``side``."""

    side: str
    index: int

    def describe(self, counts: Mapping[str, int]) -> str:
        """``"Sentence 3 of 5 in chosen"`` (1-based, as the Tag sentences list numbers them)."""
        return f"Sentence {self.index + 1} of {counts[self.side]} in {self.side}"


def moved(
    focus: SentenceFocus | None, counts: Mapping[str, int], step: int
) -> SentenceFocus | None:
    """The focus ``step`` sentences on (back when negative) through the chosen response, then
    the rejected one, stopping at the first and the last sentence; ``counts`` is each side's
    number of sentences. A focus that no longer points at a sentence (``None``, or a
    segmentation that changed) starts again at the first; ``None`` when neither side has one.

    >>> moved(SentenceFocus("chosen", 1), {"chosen": 2, "rejected": 3}, 1)
    SentenceFocus(side='rejected', index=0)
    """
    order = [SentenceFocus(side, i) for side in SIDES for i in range(counts.get(side, 0))]
    if not order:
        return None
    if focus not in order:
        return order[0]
    at = order.index(focus) + step
    return order[max(0, min(at, len(order) - 1))]
