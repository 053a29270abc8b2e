"""webapp/sentence_focus.py: the Annotate page's keyboard focus among a pair's sentences."""

from __future__ import annotations

import pytest

from webapp.annotation import LABEL_SHORTCUTS, UNDO_SHORTCUT
from webapp.sentence_focus import FOCUS_SHORTCUTS, SentenceFocus, moved

COUNTS = {"chosen": 2, "rejected": 3}


@pytest.mark.parametrize(
    ("start", "step", "expected"),
    [
        (("chosen", 0), 1, ("chosen", 1)),
        (("chosen", 1), 1, ("rejected", 0)),  # on from chosen's last into rejected's first
        (("rejected", 0), -1, ("chosen", 1)),  # and back
        (("rejected", 1), 1, ("rejected", 2)),
        (("rejected", 2), 1, ("rejected", 2)),  # the last sentence stays the last
        (("chosen", 0), -1, ("chosen", 0)),  # the first stays the first
        (("chosen", 1), 0, ("chosen", 1)),
        (("rejected", 7), 0, ("chosen", 0)),  # a stale focus (resegmented) starts again
    ],
)
def test_the_focus_walks_chosen_then_rejected(start, step, expected) -> None:
    assert moved(SentenceFocus(*start), COUNTS, step) == SentenceFocus(*expected)


def test_the_focus_starts_at_the_first_sentence_there_is() -> None:
    assert moved(None, COUNTS, 0) == SentenceFocus("chosen", 0)
    assert moved(None, {"chosen": 0, "rejected": 2}, 1) == SentenceFocus("rejected", 0)
    assert moved(None, {"chosen": 0, "rejected": 0}, 1) is None


def test_the_focus_is_named_as_the_tag_list_numbers_it() -> None:
    assert SentenceFocus("rejected", 2).describe(COUNTS) == "Sentence 3 of 3 in rejected"


def test_the_keys_do_not_clash_with_the_pages_others() -> None:
    assert FOCUS_SHORTCUTS == {"next": "j", "previous": "h", "good": "g", "bad": "b"}
    taken = {*LABEL_SHORTCUTS.values(), UNDO_SHORTCUT, "n", "p"}  # labels, undo, next, back
    assert taken == set("kstdunp")
    assert not taken & set(FOCUS_SHORTCUTS.values())
