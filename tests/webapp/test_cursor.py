"""The Annotate page's cursor, without Streamlit: the way back, a pinned pair after a refused
write, a pair that left the queue, an empty queue."""

from __future__ import annotations

import ast
from pathlib import Path

from webapp import cursor as cursor_module
from webapp.cursor import AnnotateCursor, Shown


def test_the_cursor_imports_no_streamlit() -> None:
    tree = ast.parse(Path(cursor_module.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [name for name in imported if name.split(".")[0] == "streamlit"]


def test_a_fresh_cursor_shows_the_queues_first_pair() -> None:
    cursor = AnnotateCursor()
    assert cursor.resolve([3, 4, 5]) == Shown(3, 0)
    assert cursor.current == 3 and cursor.trail == []
    assert AnnotateCursor.next_after([3, 4, 5], Shown(3, 0)) == 4


def test_the_way_back_retraces_the_pairs_left_behind() -> None:
    cursor = AnnotateCursor()
    cursor.resolve([3, 4, 5])
    cursor.show(4)
    cursor.show(5)
    cursor.show(5)  # showing the same pair again adds no step
    assert cursor.trail == [3, 4]
    assert cursor.back() == 4
    assert (cursor.current, cursor.pinned, cursor.trail) == (4, 4, [3])
    cursor.show(5)
    cursor.show(4, remember=False)  # "Next" back and forth: only real steps are kept
    assert cursor.trail == [3, 4]
    assert cursor.back() == 4 and cursor.trail == [3]
    assert cursor.back() == 3 and cursor.back() is None
    assert cursor.current == 3  # an empty way back changes nothing


def test_a_pair_gone_back_to_stays_when_the_queue_dropped_it() -> None:
    cursor = AnnotateCursor()
    cursor.resolve([3, 4])
    cursor.show(4)  # 3 was labelled and left the "unlabelled" queue
    cursor.back()
    assert cursor.pinned_outside([4]) == 3
    assert cursor.resolve([4], pinned_found=True) == Shown(3, None)
    assert AnnotateCursor.next_after([4], Shown(3, None)) == 4  # next: the queue's first


def test_a_refused_writes_pair_is_pinned_until_the_annotator_moves_on() -> None:
    cursor = AnnotateCursor()
    cursor.resolve([3, 4])
    cursor.show(3, remember=False, pin=True)  # the write was refused: stay, decide again
    assert cursor.trail == []
    assert cursor.resolve([4], pinned_found=True) == Shown(3, None)  # someone labelled it
    cursor.show(4)  # the next action unpins it
    assert cursor.pinned is None and cursor.trail == [3]
    assert cursor.resolve([4]) == Shown(4, 0)


def test_a_pair_that_left_the_queue_gives_way_to_the_queues_first() -> None:
    cursor = AnnotateCursor()
    cursor.resolve([3, 4, 5])
    cursor.show(4)
    assert cursor.pinned_outside([3, 5]) is None  # not pinned: nothing to look up
    assert cursor.resolve([3, 5]) == Shown(3, 0)
    assert cursor.current == 3 and cursor.trail == [3]


def test_a_pinned_pair_that_is_gone_gives_way_too() -> None:
    cursor = AnnotateCursor()
    cursor.resolve([3, 4])
    cursor.show(3, pin=True)
    assert cursor.pinned_outside([4]) == 3
    assert cursor.resolve([4], pinned_found=False) == Shown(4, 0)  # deleted, another dataset
    assert cursor.pinned is None


def test_an_empty_queue_shows_nothing_and_keeps_the_way_back() -> None:
    cursor = AnnotateCursor()
    cursor.resolve([3, 4])
    cursor.show(4)
    cursor.show(None)  # the last pair labelled: "nothing left"
    assert cursor.resolve([]) == Shown(None, None)
    assert AnnotateCursor.next_after([], Shown(None, None)) is None
    assert cursor.trail == [3, 4]
    assert cursor.back() == 4
    assert cursor.resolve([], pinned_found=True) == Shown(4, None)


def test_the_last_pair_of_the_queue_has_no_next() -> None:
    assert AnnotateCursor.next_after([3, 4], Shown(4, 1)) is None
