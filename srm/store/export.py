"""What leaves the store for training: the corrected pairs, and sentence tags as PRM steps.

Both read each pair's label as its votes aggregate under the dataset's method
(:func:`srm.store.team.aggregate_labels`): swapped pairs come out swapped, ties and discards
stay behind, a pair whose votes are undecided (a majority tie nobody settled yet) stays behind
too, and a pair nobody labelled keeps its imported verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srm.data import PreferencePair, SentenceLabels
from srm.store.datasets import dataset_id
from srm.store.labels import log_query, standing_events
from srm.store.models import (
    LABELS,
    PREFERENCE_COLUMNS,
    LabelEvent,
    Pair,
    Score,
    SentenceTag,
    preferred_side,
)
from srm.store.tags import current_tags
from srm.store.team import aggregate_labels

#: Labels that take a pair out of training and export: a tie or a discard says neither
#: response is preferred. Every other pair trains, swapped when its label is ``swap``.
LEFT_OUT_LABELS = tuple(label for label in LABELS if preferred_side(label) is None)
#: The label of a pair whose votes do not decide it (a majority tie nobody settled yet): it
#: stays out of training and export until a reviewer settles it.
UNDECIDED = "undecided"


def training_pair(pair: PreferencePair, label: str | None) -> PreferencePair | None:
    """The pair as training sees it under its current ``label`` (None: unlabelled): as
    imported, swapped, or None when the label leaves it out (:data:`LEFT_OUT_LABELS`). The
    one rule for ``srm export``, ``srm train --dataset``, train jobs and the Train page."""
    if label == UNDECIDED:
        return None
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
    undecided: int = 0
    """Pairs whose votes tie, waiting for a reviewer: left out."""

    @classmethod
    def from_summary(cls, counts: Mapping[str, int]) -> LabelCounts:
        """From pairs per label, as :func:`srm.store.label_summary` counts them."""
        return cls(**{f.name: counts.get(f.name, 0) for f in fields(cls)})

    @property
    def total(self) -> int:
        return self.unlabelled + self.keep + self.swap + self.tie + self.discard + self.undecided

    @property
    def left_out(self) -> int:
        """Pairs training leaves out (:data:`LEFT_OUT_LABELS`, and undecided ones)."""
        return sum(getattr(self, label) for label in LEFT_OUT_LABELS) + self.undecided

    @property
    def exported(self) -> int:
        """Pairs with a preference, which training sees: unlabelled, kept and swapped."""
        return self.total - self.left_out

    def summary(self) -> str:
        """``"45 of 50 pairs: 35 unlabelled, 5 kept, 5 swapped; left out 3 ties, 2 discards"``
        (and ``", 1 undecided"`` when votes tie on a pair nobody settled)."""
        undecided = f", {self.undecided} undecided" if self.undecided else ""
        return (
            f"{self.exported} of {self.total} pairs: {self.unlabelled} unlabelled, "
            f"{self.keep} kept, {self.swap} swapped; left out {self.tie} ties, "
            f"{self.discard} discards{undecided}"
        )


@dataclass(frozen=True)
class EffectivePairs:
    pairs: list[PreferencePair]
    counts: LabelCounts


def effective_pairs(session: Session, dataset: str) -> EffectivePairs:
    """The dataset as training should see it, in import order: swaps applied, ties, discards
    and undecided pairs left out, every other pair as imported."""
    counts: Counter[str] = Counter()
    pairs = []
    for pair, label in labelled_pairs(session, dataset):
        counts[label or "unlabelled"] += 1
        kept = training_pair(pair, label)
        if kept is not None:
            pairs.append(kept)
    return EffectivePairs(pairs, LabelCounts(**counts))


def labelled_pairs(session: Session, dataset: str) -> list[tuple[PreferencePair, str | None]]:
    """Every pair of ``dataset`` as imported, with its label as the votes aggregate (``None``:
    nobody voted; :data:`UNDECIDED`: the votes tie), in import order: what an audit folds (all
    pairs) and trains on (:func:`training_pair` of each)."""
    labels = current_labels(session, dataset)
    rows = session.execute(
        select(*PREFERENCE_COLUMNS, Pair.id)
        .where(Pair.dataset_id == dataset_id(session, dataset))
        .order_by(Pair.id)
    )
    return [(PreferencePair(*columns), labels.get(pair_id)) for *columns, pair_id in rows]


def current_labels(session: Session, dataset: str) -> dict[int, str]:
    """``pair id -> label`` for the dataset's voted pairs under its aggregation method, with
    :data:`UNDECIDED` for a tie nobody settled; pairs without votes are absent."""
    aggregate = aggregate_labels(session, dataset)
    return {pair_id: label or UNDECIDED for pair_id, label in aggregate.labels.items()}


def vote_records(session: Session, dataset: str) -> list[dict[str, Any]]:
    """Every standing vote of the dataset, one record per (pair, annotator), in pair order:
    ``id``, ``annotator``, ``vote``, ``voted_at``, and the pair's aggregate ``label`` under the
    dataset's method (``undecided`` for a tie nobody settled) with ``settled_by`` when a
    reviewer's event decides it: what ``srm export --format votes`` writes."""
    ds_id = dataset_id(session, dataset)
    aggregate = aggregate_labels(session, dataset)
    rows = session.execute(
        log_query().join(Pair, LabelEvent.pair_id == Pair.id).where(Pair.dataset_id == ds_id)
    ).all()
    external = dict(
        session.execute(select(Pair.id, Pair.external_id).where(Pair.dataset_id == ds_id)).all()
    )
    newest_vote: dict[tuple[int, str], Any] = {}
    for row in standing_events(rows):
        if row.action in LABELS:
            newest_vote[(row.pair_id, row.name)] = row
    return [
        {
            "id": external[pair_id],
            "annotator": name,
            "vote": row.action,
            "voted_at": row.created_at.isoformat(),
            "label": aggregate.labels.get(pair_id) or UNDECIDED,
            "aggregation": aggregate.method,
            "settled_by": aggregate.settled.get(pair_id),
        }
        for (pair_id, name), row in sorted(
            newest_vote.items(), key=lambda item: (item[0][0], item[1].seq)
        )
    ]


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

    pairs, by_response = _current_tags_by_response(session, dataset)
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
    pairs, by_response = _current_tags_by_response(session, dataset)
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


def _current_tags_by_response(
    session: Session, dataset: str
) -> tuple[dict[int, Pair], dict[tuple[int, str], list[SentenceTag]]]:
    """The dataset's pairs that have sentence tags and are not discarded (``pair id -> pair``,
    in import order), and their current tags per response (``(pair id, side) -> tags``)."""
    tagged = select(Pair).where(
        Pair.dataset_id == dataset_id(session, dataset), Pair.id.in_(select(SentenceTag.pair_id))
    )
    pairs = {
        pair.id: pair
        for pair in session.scalars(tagged.order_by(Pair.id))
        if pair.label != "discard"
    }
    by_response: dict[tuple[int, str], list[SentenceTag]] = {}
    for tag in current_tags(session, list(pairs)):
        by_response.setdefault((tag.pair_id, tag.side), []).append(tag)
    return pairs, by_response


def _step_label(start: int, end: int, tags: Iterable[SentenceTag]) -> bool | None:
    covering = [t for t in tags if t.span_start < end and start < t.span_end]
    if not covering:
        return None
    latest = max(covering, key=lambda t: t.id)
    return {"good": True, "bad": False}.get(latest.tag)
