"""Which pair the Annotate page shows, and the way back: a plain class, no Streamlit.

The page keeps one :class:`AnnotateCursor` in its session state and its callbacks move it; the
queue is read again on every run, so the cursor holds pair ids only and :meth:`resolve` decides,
run by run, which of them the page shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shown:
    """The pair a run shows (``pair_id``, ``None`` for "nothing left") and its place in the
    queue (``position``, ``None`` when the queue no longer holds it)."""

    pair_id: int | None
    position: int | None

    @property
    def in_queue(self) -> bool:
        return self.position is not None


@dataclass
class AnnotateCursor:
    """The pair being annotated, whether it is pinned, and the session's way back.

    A pinned pair stays on screen when the queue no longer holds it: the annotator came back
    to it (``p``), or a write on it was refused and they must decide again. An unpinned pair
    that left the queue (labelled elsewhere, filtered out) gives way to the queue's first.

    >>> cursor = AnnotateCursor()
    >>> cursor.resolve([7, 8]), cursor.current
    (Shown(pair_id=7, position=0), 7)
    >>> cursor.show(8); cursor.back(), cursor.current, cursor.pinned
    (7, 7, 7)
    """

    current: int | None = None
    pinned: int | None = None
    trail: list[int] = field(default_factory=list)  # the way back, the latest last

    def show(self, to: int | None, *, remember: bool = True, pin: bool = False) -> None:
        """Show pair ``to`` (``None``: nothing); the pair left behind goes on the way back
        unless ``remember=False`` or it is already the trail's last step."""
        left = self.current
        if (
            remember
            and left is not None
            and left != to
            and (not self.trail or self.trail[-1] != left)
        ):
            self.trail.append(left)
        self.current = to
        self.pinned = to if pin else None

    def back(self) -> int | None:
        """Step back to the last pair left behind, pinned so the queue cannot take it away;
        ``None`` (and no change) when the way back is empty."""
        if not self.trail:
            return None
        self.show(self.trail.pop(), remember=False, pin=True)
        return self.current

    def pinned_outside(self, queue_ids: Sequence[int]) -> int | None:
        """The pinned pair the page must look up itself (the queue does not hold it), if any;
        pass whether it was found (still there, in this dataset) to :meth:`resolve`."""
        if (
            self.current is not None
            and self.current == self.pinned
            and self.current not in queue_ids
        ):
            return self.current
        return None

    def resolve(self, queue_ids: Sequence[int], pinned_found: bool = False) -> Shown:
        """The pair to show given this run's queue: the current one if the queue holds it, or
        if it is pinned and ``pinned_found``; else the queue's first; else nothing. The cursor
        moves to it (without a step on the way back: the annotator did not leave a pair)."""
        if self.current in queue_ids:
            return Shown(self.current, list(queue_ids).index(self.current))
        if pinned_found and self.pinned_outside(queue_ids) is not None:
            return Shown(self.current, None)
        self.current = queue_ids[0] if queue_ids else None
        self.pinned = None
        return Shown(self.current, 0 if queue_ids else None)

    @staticmethod
    def next_after(queue_ids: Sequence[int], shown: Shown) -> int | None:
        """The pair after ``shown`` in the queue (the queue's first when ``shown`` is not in
        it); ``None`` at the end of the queue.

        >>> AnnotateCursor.next_after([7, 8], Shown(8, 1)) is None
        True
        >>> AnnotateCursor.next_after([7, 8], Shown(3, None))  # 3 left the queue
        7
        """
        after = shown.position + 1 if shown.position is not None else 0
        return queue_ids[after] if after < len(queue_ids) else None
