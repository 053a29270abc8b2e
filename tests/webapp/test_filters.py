"""The filter bar's choices: every label status from srm.store.LABELS, one rule for "any"."""

from __future__ import annotations

from srm.store import LABELS
from webapp import annotation, filters


def test_the_label_statuses_are_built_from_the_stores_labels() -> None:
    assert filters.LABEL_STATUSES == ("any", "unlabelled", "labelled", *LABELS)
    assert filters.LABEL_COUNTS == ("unlabelled", *LABELS)
    # Annotate's dataset views: the same statuses, the unlabelled pairs first.
    assert annotation.DATASET_VIEWS[0] == "unlabelled"
    assert sorted(annotation.DATASET_VIEWS) == sorted(filters.LABEL_STATUSES)
    assert set(annotation.LABEL_SHORTCUTS) == set(LABELS)  # a button for every label


def test_a_label_status_becomes_a_label_filter() -> None:
    assert filters.label_filter("any") == {"label": None}
    assert filters.label_filter("unlabelled") == {"label": "unlabelled"}
    assert filters.label_filter(LABELS[0]) == {"label": LABELS[0]}
