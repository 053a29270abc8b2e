"""What leaves the store for training: the corrected pairs, and sentence tags as PRM steps.

Both read the current labels (``Pair.label``, see :mod:`srm.store.labels`): swapped pairs come
out swapped, ties and discards stay behind, and a pair nobody labelled keeps its imported
verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srm.data import PreferencePair, SentenceLabels
from srm.store.errors import StoreError
from srm.store.labels import current_tags
from srm.store.models import (
    LABELS,
    PREFERENCE_COLUMNS,
    Dataset,
    Pair,
    Score,
    SentenceTag,
    preferred_side,
)

#: Labels that take a pair out of training and export: a tie or a discard says neither
#: response is preferred. Every other pair trains, swapped when its label is ``swap``.
LEFT_OUT_LABELS = tuple(label for label in LABELS if preferred_side(label) is None)


def training_pair(pair: PreferencePair, label: str | None) -> PreferencePair | None:
    """The pair as training sees it under its current ``label`` (None: unlabelled): as
    imported, swapped, or None when the label leaves it out (:data:`LEFT_OUT_LABELS`). The
    one rule for ``srm export``, ``srm train --dataset``, train jobs and the Train page."""
    side = preferred_side(label)
    if side is None:
        return None
    return pair.swapped() if side == "rejected" else pair


@dataclass(frozen=True)
class LabelCounts:
    """How a dataset's pairs stand: ``unlabelled`` pairs keep their imported verdict."""

    unlabelled: int = 0
    keep: int = 0
    swap: int = 0
    tie: int = 0
    discard: int = 0

    @classmethod
    def from_summary(cls, counts: Mapping[str, int]) -> LabelCounts:
        """From pairs per label, as :func:`srm.store.label_summary` counts them."""
        return cls(**{f.name: counts.get(f.name, 0) for f in fields(cls)})

    @property
    def total(self) -> int:
        return self.unlabelled + self.keep + self.swap + self.tie + self.discard

    @property
    def left_out(self) -> int:
        """Pairs training leaves out (:data:`LEFT_OUT_LABELS`)."""
        return sum(getattr(self, label) for label in LEFT_OUT_LABELS)

    @property
    def exported(self) -> int:
        """Pairs with a preference, which training sees: unlabelled, kept and swapped."""
        return self.total - self.left_out

    def summary(self) -> str:
        """``"45 of 50 pairs: 35 unlabelled, 5 kept, 5 swapped; left out 3 ties, 2 discards"``"""
        return (
            f"{self.exported} of {self.total} pairs: {self.unlabelled} unlabelled, "
            f"{self.keep} kept, {self.swap} swapped; left out {self.tie} ties, "
            f"{self.discard} discards"
        )


@dataclass(frozen=True)
class EffectivePairs:
    pairs: list[PreferencePair]
    counts: LabelCounts


def effective_pairs(session: Session, dataset: str) -> EffectivePairs:
    """The dataset as training should see it, in import order: swaps applied, ties and
    discards left out, every other pair as imported."""
    rows = session.execute(
        select(*PREFERENCE_COLUMNS, Pair.label)
        .where(Pair.dataset_id == dataset_id(session, dataset))
        .order_by(Pair.id)
    )
    counts: Counter[str] = Counter()
    pairs = []
    for *columns, label in rows:
        counts[label or "unlabelled"] += 1
        pair = training_pair(PreferencePair(*columns), label)
        if pair is not None:
            pairs.append(pair)
    return EffectivePairs(pairs, LabelCounts(**counts))


def labelled_pairs(session: Session, dataset: str) -> list[tuple[PreferencePair, str | None]]:
    """Every pair of ``dataset`` as imported, with its current label, in import order: what
    an audit folds (all pairs) and trains on (:func:`training_pair` of each)."""
    rows = session.execute(
        select(*PREFERENCE_COLUMNS, Pair.label)
        .where(Pair.dataset_id == dataset_id(session, dataset))
        .order_by(Pair.id)
    )
    return [(PreferencePair(*columns), label) for *columns, label in rows]


def imported_pairs(session: Session, dataset: str) -> list[PreferencePair]:
    """Every pair of ``dataset`` as imported (labels not applied), in import order."""
    rows = session.execute(
        select(*PREFERENCE_COLUMNS)
        .where(Pair.dataset_id == dataset_id(session, dataset))
        .order_by(Pair.id)
    )
    return [PreferencePair(*row) for row in rows]


@dataclass(frozen=True)
class PrmExport:
    records: list[dict[str, Any]]
    """TRL's stepwise-supervision rows: ``prompt``, ``completions`` (the response's sentences)
    and ``labels`` (one bool per sentence: good True, bad False), plus ``id`` (pair:side)."""
    tagged_responses: int
    """Responses with at least one current tag (of pairs not discarded)."""
    incomplete: int
    """Tagged responses left out because a sentence had no good/bad tag (untagged or unsure)."""


def prm_records(session: Session, dataset: str) -> PrmExport:
    """Sentence tags as step-labelled records for TRL's ``PRMTrainer``.

    A response becomes a record only when every sentence (as :func:`srm.segment.segment`
    splits it) carries a good or bad tag: a step label is never guessed. A tag covers every
    sentence its span overlaps; where tags overlap on one sentence, the latest counts. Discarded
    pairs are left out; a tie says nothing about the sentences, so a tied pair's tags count.
    """
    tagged = _tagged_responses(session, dataset)
    records = [
        {
            "id": item.id,
            "prompt": item.prompt,
            "completions": [span.text.strip() for span in item.spans],
            "labels": list(item.labels),
        }
        for item in tagged
        if None not in item.labels
    ]
    return PrmExport(records, len(tagged), len(tagged) - len(records))


def tagged_sentences(session: Session, dataset: str) -> list[SentenceLabels]:
    """Every tagged response of ``dataset`` (pairs not discarded) with a label per sentence
    (:func:`srm.segment.segment`'s sentences; True good, False bad, None untagged or unsure),
    for training (``srm train --dataset NAME --sentence-tags``, a train job's "also learn
    from the sentence tags"). Unlike :func:`prm_records`, a response tagged in part counts:
    its untagged sentences take no part in the loss. Ids are ``external_id:side``."""
    return [item for item in _tagged_responses(session, dataset) if item.labelled]


def _tagged_responses(session: Session, dataset: str) -> list[SentenceLabels]:
    """Each response with at least one current tag, labelled sentence by sentence (a tag
    covers every sentence its span overlaps; the latest wins)."""
    from srm.segment import segment

    wanted = dataset_id(session, dataset)
    pairs = {
        pair.id: pair
        for pair in session.scalars(
            select(Pair)
            .where(Pair.dataset_id == wanted, Pair.id.in_(select(SentenceTag.pair_id)))
            .order_by(Pair.id)
        )
        if pair.label != "discard"
    }
    by_response: dict[tuple[int, str], list[SentenceTag]] = {}
    for tag in current_tags(session, list(pairs)):
        by_response.setdefault((tag.pair_id, tag.side), []).append(tag)
    tagged = []
    for (pair_id, side), tags in sorted(by_response.items()):
        pair = pairs[pair_id]
        response = getattr(pair, side)
        spans = segment(response)
        tagged.append(
            SentenceLabels(
                id=f"{pair.external_id}:{side}",
                prompt=pair.prompt,
                response=response,
                spans=tuple(spans),
                labels=tuple(_step_label(span.start, span.end, tags) for span in spans),
            )
        )
    return tagged


@dataclass(frozen=True)
class TaggedCredit:
    items: list[dict[str, Any]]
    """``{"source", "labels", "record"}`` (``record`` a :class:`~srm.records.ResponseScores`)
    per tagged response the model has scored, for
    :func:`srm.evaluate.credit_report`: one label per sentence of the model's record (True
    good, False bad, None untagged or unsure)."""
    tagged_responses: int
    """Responses with at least one current tag (of pairs not discarded)."""
    unscored: int
    """Tagged responses the model has not scored yet (left out)."""


def tagged_credit(session: Session, dataset: str, model_id: int) -> TaggedCredit:
    """Annotators' sentence tags beside a model's stored sentence rewards: the same data as
    ``srm eval --steps``, so the same report (:func:`srm.evaluate.credit_report`) says how
    well the model's credit finds the sentences people tagged bad. A tag labels every scored
    sentence its span overlaps (the latest tag wins, as in :func:`prm_records`); untagged
    sentences stay unlabelled rather than guessed."""
    wanted = dataset_id(session, dataset)
    pairs = {
        pair.id: pair
        for pair in session.scalars(
            select(Pair).where(Pair.dataset_id == wanted, Pair.id.in_(select(SentenceTag.pair_id)))
        )
        if pair.label != "discard"
    }
    by_response: dict[tuple[int, str], list[SentenceTag]] = {}
    for tag in current_tags(session, list(pairs)):
        by_response.setdefault((tag.pair_id, tag.side), []).append(tag)
    scores = {
        row.pair_id: row
        for row in session.scalars(
            select(Score).where(Score.model_id == model_id, Score.pair_id.in_(list(pairs)))
        )
    }
    items, unscored = [], 0
    for (pair_id, side), tags in sorted(by_response.items()):
        score = scores.get(pair_id)
        if score is None:
            unscored += 1
            continue
        record = score.response(side)
        labels = [_step_label(s.start, s.end, tags) for s in record.sentences]
        items.append({"source": pairs[pair_id].source, "labels": labels, "record": record})
    return TaggedCredit(items, len(by_response), unscored)


def _step_label(start: int, end: int, tags: Iterable[SentenceTag]) -> bool | None:
    covering = [t for t in tags if t.span_start < end and start < t.span_end]
    if not covering:
        return None
    latest = max(covering, key=lambda t: t.id)
    return {"good": True, "bad": False}.get(latest.tag)


def dataset_id(session: Session, name: str) -> int:
    """The id of dataset ``name``; a :class:`StoreError` listing the datasets if unknown."""
    found = session.scalar(select(Dataset.id).where(Dataset.name == name))
    if found is None:
        known = ", ".join(session.scalars(select(Dataset.name).order_by(Dataset.name))) or "none"
        raise StoreError(f"no dataset {name!r} in the store (datasets: {known}); see srm datasets")
    return found
