"""Agreement between annotators: per-annotator counts, percent agreement and Cohen's kappa
for every two annotators, on their standing votes (:func:`srm.store.labels.annotator_votes`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from sqlalchemy.orm import Session

from srm.store.labels import annotator_votes, log_query
from srm.store.models import LABELS, Dataset, LabelEvent, Pair


@dataclass(frozen=True)
class AnnotatorStats:
    name: str
    events: int
    """Every event the annotator appended, undos included."""
    undos: int
    pairs: int
    """Pairs on which the annotator's own latest label stands (is not undone)."""
    labels: dict[str, int] = field(default_factory=dict)
    """How many of those pairs carry each label."""


@dataclass(frozen=True)
class PairwiseAgreement:
    """Two annotators on the pairs both of them labelled."""

    a: str
    b: str
    n: int
    agreed: int
    kappa: float | None
    """Cohen's kappa; ``None`` when chance agreement is 1 (both gave every shared pair one and
    the same label), where kappa is 0/0 and the percent agreement says it all."""

    @property
    def percent(self) -> float:
        return 100.0 * self.agreed / self.n


@dataclass(frozen=True)
class AgreementReport:
    annotators: list[AnnotatorStats]
    pairwise: list[PairwiseAgreement]
    """One entry per two annotators with at least one pair in common."""


def agreement(session: Session, dataset: str | None = None) -> AgreementReport:
    """Per-annotator counts, and percent agreement and Cohen's kappa for every two annotators.

    An annotator's label on a pair is their latest label event there that nobody undid. Two
    annotators are compared on the pairs both have such a label on, over the four labels.
    Adjudications count as events of whoever settled, never as their label on the pair.
    """
    query = log_query()
    if dataset is not None:
        query = (
            query.join(Pair, LabelEvent.pair_id == Pair.id)
            .join(Dataset)
            .where(Dataset.name == dataset)
        )
    rows = session.execute(query).all()
    events: Counter[str] = Counter(row.name for row in rows)
    undos: Counter[str] = Counter(row.name for row in rows if row.action == "undo")
    labels: dict[str, dict[int, str]] = defaultdict(dict)  # annotator -> pair -> label
    for pair_id, votes in annotator_votes(rows).items():
        for name, label in votes.items():
            labels[name][pair_id] = label
    stats = [
        AnnotatorStats(
            name,
            events=events[name],
            undos=undos[name],
            pairs=len(labels[name]),
            labels=dict(Counter(labels[name].values())),
        )
        for name in sorted(events)
    ]
    return AgreementReport(stats, agreement_pairs(labels))


def agreement_pairs(labels: dict[str, dict[int, str]]) -> list[PairwiseAgreement]:
    """:class:`PairwiseAgreement` for every two annotators (``labels``: annotator -> pair ->
    vote) on the pairs both voted on; two with none in common are left out."""
    found = []
    for a, b in combinations(sorted(labels), 2):
        shared = sorted(labels[a].keys() & labels[b].keys())
        if shared:
            found.append(pairwise_agreement(a, b, [(labels[a][p], labels[b][p]) for p in shared]))
    return found


def pairwise_agreement(a: str, b: str, pairs: list[tuple[str, str]]) -> PairwiseAgreement:
    n = len(pairs)
    agreed = sum(x == y for x, y in pairs)
    count_a = Counter(x for x, _ in pairs)
    count_b = Counter(y for _, y in pairs)
    # p_e = sum_k p_a(k) p_b(k); kept in integers (times n^2) so p_e == 1 is tested exactly.
    chance = sum(count_a[k] * count_b[k] for k in LABELS)
    if chance == n * n:
        return PairwiseAgreement(a, b, n, agreed, None)
    kappa = (agreed * n - chance) / (n * n - chance)  # (p_o - p_e) / (1 - p_e)
    return PairwiseAgreement(a, b, n, agreed, kappa)
