"""A model's verdicts beside the labels: on one pair (:func:`verdict`), and two models on a
dataset (:func:`compare_models`), judged by the current labels with the length-only baseline
beside them. The app's Inspect, Annotate and Models pages show these; ``srm compare`` prints
:func:`format_comparison`.

    >>> with Session() as session:
    ...     comparison = compare_models(session, "sample", a=3, b=4)
    >>> print(format_comparison(comparison))

A pair counts when both models scored it and its current label prefers a side
(:func:`srm.store.preferred_side`: ties and discards are left out). Margins are turned toward
the label's side, so a positive margin is a right verdict; a margin of 0 is wrong, as in
:mod:`srm.evaluate`, and so is a length tie for the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from srm.records import (
    Coverage,
    MarginSplit,
    PairScores,
    clear_preference,
    margin_split,
    p_chosen,
    probability_text,
    sig3,
)
from srm.store import (
    SIDES,
    Model,
    ScoredPair,
    StoreError,
    dataset_id,
    preferred_side,
    scored_pairs,
    training_pair_ids,
)

#: A source with fewer pairs than this gets no accuracy worth reading: at 20 pairs one pair
#: moves it by 5 points, and a 95% interval around 60% spans about 40% to 80%.
MIN_SOURCE_PAIRS = 20


# ------------------------------------------------------------------------------- one pair
@dataclass(frozen=True)
class Verdict:
    """The model's preference beside the pair's current label, with what carries it."""

    margin: float
    """Chosen minus rejected score (as imported)."""
    p_chosen: float
    """sigma(margin): the model's probability that the imported ``chosen`` is better."""
    model_prefers: str
    label: str | None
    agrees: bool | None
    """``None`` for ties and discards, which prefer neither response."""
    split: MarginSplit
    """margin = prompt term shift + sentence terms."""
    coverage: dict[str, Coverage]
    """Per side: how many of its sentences the score saw."""
    prompt_term: bool = True
    """The scores have a prompt term (:attr:`srm.records.PairScores.has_prompt_term`)."""

    @property
    def clear(self) -> bool:
        """Outside the no-clear-preference band around P = 50%."""
        return clear_preference(self.margin)

    @property
    def suggestion(self) -> tuple[str, float]:
        """The label the model suggests for the pair as imported, ``keep`` or ``swap``, and its
        probability that the response it prefers is the better one.

        >>> v.p_chosen, v.suggestion        # a model that prefers the rejected response
        (0.27, ('swap', 0.73))
        """
        if self.model_prefers == "chosen":
            return "keep", self.p_chosen
        return "swap", 1.0 - self.p_chosen

    @property
    def suggested_label(self) -> str | None:
        """The label a page puts forward (its primary button): the suggestion's, or ``None``
        when the model has no clear preference, which is no suggestion to follow."""
        return self.suggestion[0] if self.clear else None

    @property
    def suggestion_text(self) -> str:
        """The suggestion in words, its probability written by
        :func:`srm.records.probability_text` like every P the pages show:
        ``"model suggests swap: P(rejected better) = 73.1%"``, or inside the band
        ``"no clear preference: P(chosen better) = 52.3%"``."""
        if not self.clear:
            return f"no clear preference: P(chosen better) = {probability_text(self.p_chosen)}"
        action, probability = self.suggestion
        return (
            f"model suggests {action}: P({self.model_prefers} better) = "
            f"{probability_text(probability)}"
        )

    @property
    def probability_text(self) -> str:
        """``"73.1%"``, or ``"52.3% · no clear preference"`` inside the band; rounded by
        :func:`srm.records.probability_text`, so never across 50%."""
        text = probability_text(self.p_chosen)
        return text if self.clear else f"{text} · no clear preference"

    @property
    def split_text(self) -> str:
        """``"margin -0.0868 = prompt shift -0.0787 + sentence shift -0.0081"``, or
        ``"margin 0.0120 = sentence shift 0.0120 (no prompt term)"``: the names every page
        gives the two parts (the prompt shift is the difference of the two responses' prompt
        contributions a_0 r_0, the sentence shift that of their sentence contributions)."""
        if not self.prompt_term:
            return (
                f"margin {sig3(self.split.margin)} = sentence shift "
                f"{sig3(self.split.sentences)} (no prompt term)"
            )
        return (
            f"margin {sig3(self.split.margin)} = prompt shift {sig3(self.split.prompt)} "
            f"+ sentence shift {sig3(self.split.sentences)}"
        )

    @property
    def prompt_note(self) -> str | None:
        """Words for a margin the prompt term carries (None when the sentences carry it)."""
        if not self.split.prompt_dominates:
            return None
        return (
            f"The prompt term carries {self.split.prompt_share:.0%} of this margin: the verdict "
            "comes from how much weight each response gives the prompt, not from what any of "
            "its sentences earned, so the sentence colours do not explain it."
        )

    @property
    def coverage_note(self) -> str | None:
        """Words for a verdict based on cut responses (None when both were scored whole)."""
        cut = [f"{side} {c.describe()}" for side, c in self.coverage.items() if not c.complete]
        if not cut:
            return None
        return (
            "Verdict on cut responses: "
            + "; ".join(cut)
            + ". The rest did not fit the model's context and took no part in the score."
        )


def verdict(record: PairScores, label: str | None) -> Verdict:
    """What the model's scores of a pair say, beside the pair's current ``label``."""
    split = margin_split(record)
    prefers = "chosen" if split.margin >= 0 else "rejected"
    wanted = preferred_side(label)
    return Verdict(
        margin=split.margin,
        p_chosen=p_chosen(split.margin),
        model_prefers=prefers,
        label=label,
        agrees=None if wanted is None else prefers == wanted,
        split=split,
        coverage={side: record.side(side).coverage for side in SIDES},
        prompt_term=record.has_prompt_term,
    )


# ------------------------------------------------------------------------------- two models
@dataclass(frozen=True)
class PairShift:
    """One pair under models A and B: each margin turned toward the side the label prefers."""

    id: str
    source: str
    label: str | None
    a: float
    """A's margin for the label: positive when A prefers the response the label prefers."""
    b: float
    longer_preferred: bool
    """The label prefers the longer response: the length-only baseline's verdict is right."""
    pair_id: int | None = field(default=None, compare=False)
    """The pair's key in the store (two shifts of one pair under the same margins are equal
    whatever it is)."""

    @property
    def flipped(self) -> bool:
        """The two models give the pair different verdicts."""
        return (self.a > 0) != (self.b > 0)


@dataclass(frozen=True)
class SourceAccuracy:
    """Pairwise accuracy of A, B and the length-only baseline on one group of pairs."""

    source: str
    n: int
    a: float
    b: float
    length_baseline: float

    @classmethod
    def of(cls, source: str, pairs: Sequence[PairShift]) -> SourceAccuracy:
        n = len(pairs)
        return cls(
            source=source,
            n=n,
            a=sum(p.a > 0 for p in pairs) / n,
            b=sum(p.b > 0 for p in pairs) / n,
            length_baseline=sum(p.longer_preferred for p in pairs) / n,
        )


@dataclass(frozen=True)
class Comparison:
    """Models ``a`` and ``b`` on the pairs of ``dataset`` both scored (see the module doc)."""

    dataset: str
    a: int
    b: int
    a_name: str
    b_name: str
    n_a: int
    """Pairs of the dataset model A has scored (labelled or not)."""
    n_b: int
    pairs: tuple[PairShift, ...]
    """The pairs compared, in import order: those neither model trained on when there are
    any (see :attr:`in_sample`)."""
    seen_left_out: int = 0
    """Pairs both scored but left out because model A or B trained on them."""
    in_sample: bool = False
    """Every pair both scored was trained on by A or B: the figures are on training data, and
    a gain there says how well a model fitted its labels, not how well it judges."""
    unknown: tuple[str, ...] = ()
    """``"A"``/``"B"``: models whose training pairs the store does not know (the bundled
    model, a checkpoint trained from a file), so they may have seen these pairs."""

    @property
    def held_out(self) -> bool:
        """The comparison is on pairs neither model is known to have trained on."""
        return not self.in_sample and not self.unknown

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def by_source(self) -> list[SourceAccuracy]:
        """Per source, in order of first appearance."""
        sources = dict.fromkeys(p.source for p in self.pairs)
        return [
            SourceAccuracy.of(source, [p for p in self.pairs if p.source == source])
            for source in sources
        ]

    @property
    def overall(self) -> SourceAccuracy | None:
        """Over every pair compared (``source`` is ``"all"``); ``None`` when there is none."""
        return SourceAccuracy.of("all", self.pairs) if self.pairs else None

    @property
    def flipped(self) -> list[PairShift]:
        """The pairs whose verdict changed, the largest move first."""
        return sorted((p for p in self.pairs if p.flipped), key=lambda p: -abs(p.b - p.a))

    def accuracy_rows(self, names: tuple[str, str] = ("A", "B")) -> list[dict[str, Any]]:
        """``{"model", "source", "accuracy", "n", "few"}`` for A, B (called ``names``) and
        ``"length baseline"``, per source and then over ``"all"``: the rows of the Models
        page's chart. ``few``: fewer than :data:`MIN_SOURCE_PAIRS` pairs, too few for the
        accuracy to mean much (the chart greys them)."""
        overall = self.overall
        groups = [*self.by_source, *([overall] if overall is not None else [])]
        return [
            {
                "model": model,
                "source": group.source,
                "accuracy": accuracy,
                "n": group.n,
                "few": group.n < MIN_SOURCE_PAIRS,
            }
            for group in groups
            for model, accuracy in (
                (names[0], group.a),
                (names[1], group.b),
                ("length baseline", group.length_baseline),
            )
        ]


def compare_scores(rows_a: Sequence[ScoredPair], rows_b: Sequence[ScoredPair]) -> list[PairShift]:
    """The pairs both models scored (:func:`srm.store.scored_pairs`) whose label prefers a
    side, in ``rows_a``'s order, each with both margins turned toward that side."""
    by_id_b = {row.pair_id: row for row in rows_b}
    shifts = []
    for ra in rows_a:
        rb = by_id_b.get(ra.pair_id)
        side = preferred_side(ra.label)
        if rb is None or side is None:
            continue
        sign = 1.0 if side == "chosen" else -1.0
        shifts.append(
            PairShift(
                id=ra.external_id,
                source=ra.source,
                label=ra.label,
                a=sign * ra.gap,
                b=sign * rb.gap,
                longer_preferred=sign * (ra.chosen_chars - ra.rejected_chars) > 0,
                pair_id=ra.pair_id,
            )
        )
    return shifts


def compare_models(session: Session, dataset: str, a: int, b: int) -> Comparison:
    """Model ``a`` against model ``b`` on the pairs of ``dataset`` both have scored, judged by
    the current labels, and kept to the pairs neither trained on (their recorded training
    pairs, :func:`srm.store.training_pair_ids`). When every such pair was trained on, the
    comparison keeps them all and says it is :attr:`~Comparison.in_sample`. A
    :class:`~srm.store.StoreError` names an unknown dataset or model."""
    dataset_id(session, dataset)  # a StoreError listing the datasets when unknown
    names = []
    for model_id in (a, b):
        model = session.get(Model, model_id)
        if model is None:
            raise StoreError(f"no model with id {model_id} in the store; see the Models page")
        names.append(model.name)
    rows_a = scored_pairs(session, dataset, a)
    rows_b = scored_pairs(session, dataset, b)
    shifts = compare_scores(rows_a, rows_b)
    trained = {name: training_pair_ids(session, m) for name, m in (("A", a), ("B", b))}
    seen = set().union(*(ids for ids in trained.values() if ids is not None))
    held = [p for p in shifts if p.pair_id not in seen]
    in_sample = bool(shifts) and not held
    return Comparison(
        dataset=dataset,
        a=a,
        b=b,
        a_name=names[0],
        b_name=names[1],
        n_a=len(rows_a),
        n_b=len(rows_b),
        pairs=tuple(shifts if in_sample else held),
        seen_left_out=0 if in_sample else len(shifts) - len(held),
        in_sample=in_sample,
        unknown=tuple(name for name, ids in trained.items() if ids is None),
    )


def sample_note(comparison: Comparison) -> str:
    """One line on which pairs the figures come from: held out, or why they may not be."""
    c = comparison
    if c.in_sample:
        return (
            f"IN-SAMPLE: model A or B trained on every one of these {_pairs(c.n)}; the accuracy "
            "says how well they fitted their training labels, not how well they judge. Compare "
            "on a dataset neither trained on."
        )
    parts = []
    if c.seen_left_out:
        parts.append(f"{_pairs(c.seen_left_out)} that a model trained on left out")
    if c.unknown:
        parts.append(
            f"the store does not know which pairs model {' and '.join(c.unknown)} trained on, "
            "so it may have seen some of these"
        )
    if not parts:
        return f"Held out: neither model trained on these {_pairs(c.n)}."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _pairs(n: int) -> str:
    return f"{n} pair" if n == 1 else f"{n} pairs"


def format_comparison(comparison: Comparison) -> str:
    """A plain-text report for the terminal: the figures the app's Models page shows."""
    c = comparison
    lines = [
        f"A: #{c.a} {c.a_name} (scored {c.n_a} pairs of {c.dataset})",
        f"B: #{c.b} {c.b_name} (scored {c.n_b} pairs of {c.dataset})",
        f"{c.n} pairs compared: scored by both, judged by the current labels",
        "(annotators' corrections applied; ties and discards left out)",
        sample_note(c),
    ]
    overall = c.overall
    if overall is None:
        lines.append("No pair scored by both models has a preference label.")
        return "\n".join(lines)
    lines += ["", f"{'':<36} {'n':>6} {'A':>8} {'B':>8} {'length':>8}"]

    def row(name: str, s: SourceAccuracy) -> str:
        return f"{name[:36]:<36} {s.n:>6} {s.a:>8.1%} {s.b:>8.1%} {s.length_baseline:>8.1%}"

    lines.append(row("overall", overall))
    lines += [
        row(f"  {s.source}", s) + ("  (too few pairs to read)" if s.n < MIN_SOURCE_PAIRS else "")
        for s in c.by_source
    ]
    flipped = c.flipped
    now_right = sum(p.b > 0 for p in flipped)
    lines += [
        "",
        f"flipped verdicts: {len(flipped)} (B now right on {now_right}, wrong on "
        f"{len(flipped) - now_right})",
    ]
    if flipped:
        lines.append(f"  {'id':<24} {'source':<12} {'label':<10} {'A margin':>9} {'B margin':>9}")
        lines += [
            f"  {p.id[:24]:<24} {p.source[:12]:<12} {p.label or 'unlabelled':<10} "
            f"{p.a:>+9.3f} {p.b:>+9.3f}"
            for p in flipped
        ]
    lines += [
        "",
        "(margins point toward the current label: positive when the model prefers the response "
        "the label prefers)",
        "(length = the length-only baseline: the longer response wins)",
    ]
    return "\n".join(lines)
