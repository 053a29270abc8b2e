"""Evaluation: pairwise accuracy overall, per source and per benchmark section, beside the
length-only baseline, with a calibration summary.

Conventions follow RewardBench (allenai/reward-bench): a pair is right when
score(chosen) > score(rejected), so a tie is wrong; a section's score is the example-count-
weighted mean of its subsets' accuracies. The length-only baseline says the longer response
(in characters) wins, ties again wrong: any accuracy means little without it beside it.

Everything works from the records :func:`srm.score.score_pairs` returns
(:class:`srm.records.PairScores`), so a saved scores file can be evaluated again without the
model (``srm eval --scores FILE``).

Pairwise accuracy cannot tell a model that puts the blame on the right sentence from one that
does not, so :func:`credit_report` also checks sentence rewards against people's sentence
labels (TRL's stepwise format, :func:`srm.data.load_steps`; ``srm eval --steps FILE``): how
well a reward separates good sentences from bad ones (AUROC), and how often a response's
lowest-ranked sentence is a bad one (pointing accuracy), beside position, length and random
baselines.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from srm.data import DEFAULT_STEP_SEPARATOR, PreferencePair, StepRecord
from srm.records import (
    PairScores,
    ResponseScores,
    coverage_counts,
    coverage_summary,
    margin_split,
    p_chosen,
)

#: RewardBench's subsets by section (its "filtered" split).
REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "chat": (
        "alpacaeval-easy",
        "alpacaeval-length",
        "alpacaeval-hard",
        "mt-bench-easy",
        "mt-bench-med",
    ),
    "chat-hard": (
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "safety": (
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ),
    "reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
SECTION_OF = {subset: section for section, subs in REWARDBENCH_SECTIONS.items() for subset in subs}
CALIBRATION_BUCKETS = 5


def summarize(records: Iterable[PairScores]) -> dict[str, Any]:
    """Accuracy report from scored records (:class:`srm.records.PairScores`), with how much of
    the responses the scores saw (``coverage``: responses cut, sentences unscored)."""
    records = list(records)
    rows = []
    for r in records:
        split = margin_split(r)
        chosen_len = len(r.chosen.text)
        rejected_len = len(r.rejected.text)
        rows.append(
            {
                "source": r.source,
                "subset": r.subset,
                "margin": split.margin,
                "correct": split.margin > 0,
                "length_correct": chosen_len > rejected_len,
                "split": split,
                "chosen_longer": chosen_len > rejected_len,
            }
        )
    if not rows:
        raise ValueError("no scored pairs to evaluate")
    by_source: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    report: dict[str, Any] = {
        "overall": _group_stats(rows),
        "by_source": {source: _group_stats(group) for source, group in sorted(by_source.items())},
        "calibration": calibration(rows),
        "coverage": coverage_counts(records),
        "prompt_term": prompt_term_stats(rows),
    }
    sections = section_scores(rows)
    if sections:
        report["sections"] = sections
    return report


def prompt_term_stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How much of the verdicts the prompt term carries (:func:`srm.records.margin_split`):

    * ``dominates``: share of pairs whose prompt term outweighs their sentences' part;
    * ``prompt_accuracy`` / ``sentence_accuracy``: accuracy of each part alone (its sign);
    * ``prompt_follows_length``: share of pairs with a non-zero prompt term whose sign says
      "the longer response wins". The prompt's weight a_0 shrinks as sentences are added
      (the attention is a softmax over the markers), so r_0 * (a0_c - a0_r) can read length.
    """
    moved = [r for r in rows if r["split"].prompt != 0]
    return {
        "dominates": sum(r["split"].prompt_dominates for r in rows) / len(rows),
        "prompt_accuracy": sum(r["split"].prompt > 0 for r in rows) / len(rows),
        "sentence_accuracy": sum(r["split"].sentences > 0 for r in rows) / len(rows),
        "prompt_follows_length": (
            sum((r["split"].prompt > 0) == r["chosen_longer"] for r in moved) / len(moved)
            if moved
            else None
        ),
    }


def _group_stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    return {
        "n": n,
        "accuracy": sum(r["correct"] for r in rows) / n,
        "length_baseline": sum(r["length_correct"] for r in rows) / n,
        "mean_margin": sum(r["margin"] for r in rows) / n,
    }


def section_scores(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """RewardBench-style sections: count-weighted means of subset accuracies. A subset that is
    not one of RewardBench's is its own section."""
    by_subset: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row["subset"]:
            by_subset[row["subset"]].append(row)
    sections: dict[str, dict[str, Any]] = {}
    for subset, group in sorted(by_subset.items()):
        section = sections.setdefault(SECTION_OF.get(subset, subset), {"subsets": {}})
        section["subsets"][subset] = {
            "n": len(group),
            "accuracy": sum(r["correct"] for r in group) / len(group),
        }
    for section in sections.values():
        subsets = section["subsets"].values()
        n = sum(s["n"] for s in subsets)
        section["n"] = n
        section["accuracy"] = sum(s["accuracy"] * s["n"] for s in subsets) / n
    return sections


def calibration(rows: Sequence[dict[str, Any]], buckets: int = CALIBRATION_BUCKETS) -> list[dict]:
    """Accuracy by |margin| bucket (equal-count buckets, least confident first), beside the
    model's own confidence sigma(|margin|): a calibrated model's two columns agree."""
    ordered = sorted(rows, key=lambda r: abs(r["margin"]))
    size = math.ceil(len(ordered) / buckets)
    result = []
    for start in range(0, len(ordered), size):
        group = ordered[start : start + size]
        # The verdict is right when the label agrees with the sign of the margin.
        result.append(
            {
                "lo": abs(group[0]["margin"]),
                "hi": abs(group[-1]["margin"]),
                "n": len(group),
                "accuracy": sum(r["correct"] for r in group) / len(group),
                "mean_confidence": sum(p_chosen(abs(r["margin"])) for r in group) / len(group),
            }
        )
    return result


def evaluate_model(
    model: Any, pairs: Sequence[PreferencePair], batch_size: int = 16, show_progress: bool = False
) -> dict[str, Any]:
    """Score ``pairs`` with ``model`` and summarise (see :func:`summarize`)."""
    from srm.score import score_pairs

    return summarize(score_pairs(model, pairs, batch_size=batch_size, show_progress=show_progress))


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    lines = [f"{'':<36} {'n':>6} {'accuracy':>9} {'length':>8} {'margin':>8}"]

    def row(name: str, s: dict[str, Any]) -> str:
        return (
            f"{name[:36]:<36} {s['n']:>6} {s['accuracy']:>9.1%} "
            f"{s['length_baseline']:>8.1%} {s['mean_margin']:>8.3f}"
        )

    lines.append(row("overall", report["overall"]))
    if len(report["by_source"]) > 1:
        lines += [row(f"  {source}", s) for source, s in report["by_source"].items()]
    for name, section in report.get("sections", {}).items():
        lines.append(f"section {name:<28} {section['n']:>6} {section['accuracy']:>9.1%}")
        for subset, s in section["subsets"].items():
            lines.append(f"  {subset[:34]:<34} {s['n']:>6} {s['accuracy']:>9.1%}")
    lines.append("")
    lines.append("calibration (|margin| buckets): accuracy vs confidence sigma(|margin|)")
    for b in report["calibration"]:
        lines.append(
            f"  |margin| {b['lo']:.3f}-{b['hi']:.3f}  n={b['n']:<5} "
            f"accuracy {b['accuracy']:.1%}  confidence {b['mean_confidence']:.1%}"
        )
    term = report.get("prompt_term")
    if term and term["prompt_follows_length"] is not None:
        lines.append("")
        lines.append(
            f"prompt term: carries most of the margin in {term['dominates']:.1%} of pairs; "
            f"alone it is right on {term['prompt_accuracy']:.1%}, the sentences alone on "
            f"{term['sentence_accuracy']:.1%}; its sign follows 'the longer response wins' "
            f"in {term['prompt_follows_length']:.1%}"
        )
    cut = coverage_summary(report["coverage"]) if "coverage" in report else None
    if cut:
        lines.append(f"{cut} (raise --max-length where the backbone allows)")
    lines.append("(length = the length-only baseline: the longer response wins)")
    return "\n".join(lines)


# ------------------------------------------------------------------ sentence-level credit

#: The report's method rows, in table order: two that read the model, four baselines. A
#: model whose records carry the likelihood credit (:attr:`SentenceScore.likelihood`) gets
#: the row ``likelihood`` after ``weighted``.
CREDIT_METHODS = ("reward", "weighted", "random", "first", "last", "length")
_BASELINE_NAMES = {
    "random": "random sentence",
    "first": "first sentence blamed",
    "last": "last sentence blamed",
    "length": "shortest sentence blamed",
}


def credit_method_names(
    head: str, prefix_rewards: bool = True, *, likelihood: bool = False
) -> dict[str, str]:
    """What each method row ranks sentences by, named for the model's head.

    * ``sentence`` head: the sentence reward r_j = v_j - v_(j-1).
    * ``response`` head: r_j = v_j - v_(j-1) too, and with a causal backbone v_j, the value
      at marker j, is what the model gives the response cut after sentence j (the same
      tokens up to that marker): these rewards ARE prefix re-scoring differences, the usual
      way of reading credit out of a response-level model. Its weights are all 1, so its
      weight x reward row repeats its reward row.
    * ``token`` head: the mean token reward of the sentence; its weight is the sentence's
      share of the response's tokens.
    * ``likelihood`` head: the sentence's mean token log-probability under the LM; weight x
      reward is its summed log-probability over the response's token count (so within a
      response it ranks as the sum does).
    * ``classifier`` head (an imported reward model): its prefix rewards, v_j - v_(j-1), with
      v_j its score of the response cut after sentence j; weights all 1.

    ``likelihood=True`` adds the row ``likelihood`` (a model whose backbone LM gave each
    sentence its mean token log-probability beside its reward).

    With a backbone that is not causal (``prefix_rewards=False``) v_j has seen the whole
    response, so the differences are not prefix rewards, and the names say so.
    """
    reward = {
        "sentence": "sentence reward r_j",
        "response": "prefix re-scoring (response head)",
        "token": "mean token reward (token head)",
        "likelihood": "likelihood: mean token log-prob",
        "classifier": "prefix rewards (imported reward model)",
    }.get(head)
    if reward is None:
        raise ValueError(
            f"unknown head {head!r}; expected sentence, response, token, likelihood or classifier"
        )
    weighted = {
        "likelihood": "likelihood: summed log-prob / n tokens",
    }.get(head, "weight x reward a_j*r_j")
    if not prefix_rewards and head == "response":
        reward = "marker value differences (response head, not causal)"
    elif not prefix_rewards and head == "sentence":
        reward += " (not causal)"
    rows = {"reward": reward, "weighted": weighted}
    if likelihood and head != "likelihood":
        rows["likelihood"] = "likelihood: mean token log-prob (backbone LM)"
    return rows | _BASELINE_NAMES


def default_credit_method(head: str) -> str:
    """The credit the app colours sentences by unless told otherwise, one of the report's
    rows: the reward r_j, for every head. For the sentence head, r_j and a_j r_j found the
    sentences people marked bad equally often on QA-Feedback's labels (AUROC 0.523 both,
    pointing 63.7% and 64.4%: docs/benchmarks.md, ``bench/credit_labels.py``), and r_j is
    the sentence's own reward, not its share of this response's score; for the other heads
    r_j is the method's own reading (mean log-probability, prefix rewards)."""
    if head not in {"sentence", "response", "token", "likelihood", "classifier"}:
        raise ValueError(f"unknown head {head!r}")
    return "reward"


def auroc(scores: Sequence[float], good: Sequence[bool]) -> float | None:
    """P(score of a good item > score of a bad one), a tie counting one half; ``None``
    unless there is at least one good and one bad item.

    The Mann-Whitney U statistic from average ranks: sort once (O(n log n)), give each run
    of equal scores the mean of its ranks, and sum the ranks of the good items.

    >>> auroc([0.1, 0.5, 0.5, 0.9], [False, False, True, True])  # (1 + 0.5 + 1 + 1) / 4
    0.875
    """
    if len(scores) != len(good):
        raise ValueError(f"{len(scores)} scores but {len(good)} labels")
    n_good = sum(good)
    n_bad = len(good) - n_good
    if n_good == 0 or n_bad == 0:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    good_rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start + 1  # order[start:end] is a run of equal scores
        while end < len(order) and scores[order[end]] == scores[order[start]]:
            end += 1
        mean_rank = (start + 1 + end) / 2  # ranks start + 1 .. end, 1-based
        good_rank_sum += mean_rank * sum(good[i] for i in order[start:end])
        start = end
    u = good_rank_sum - n_good * (n_good + 1) / 2  # pairs (good, bad) with good above
    return u / (n_good * n_bad)


def pointing_credit(scores: Sequence[float], good: Sequence[bool]) -> float:
    """1 when the lowest score falls on a bad sentence, 0 on a good one; when several tie
    for lowest, the share of bad sentences among them (what picking one at random earns).

    >>> pointing_credit([0.2, -1.0, -1.0], [False, True, False])
    0.5
    """
    lowest = min(scores)
    tied = [g for s, g in zip(scores, good, strict=True) if s == lowest]
    return sum(not g for g in tied) / len(tied)


@dataclass(frozen=True)
class _JudgedResponse:
    """The sentences of one response that every metric uses: labelled and scored."""

    source: str
    good: list[bool]  # (S,) one per labelled, scored sentence
    scores: dict[str, list[float]]  # method -> (S,) higher = better
    unlabelled: int
    truncated: int


def credit_report(
    items: Iterable[dict[str, Any]], *, head: str, prefix_rewards: bool = True
) -> dict[str, Any]:
    """How well sentence rewards find the sentences people marked bad, overall and per source.

    ``items``: ``{"source": str, "labels": [True | False | None, ...], "record": ...}`` with
    ``record`` a scored response (:class:`srm.records.ResponseScores`: one side of a
    :func:`srm.score.score_pairs` record, or what :func:`srm.score.score_responses` returns)
    and one label per sentence of it. ``head`` and
    ``prefix_rewards`` name the rows (:func:`credit_method_names`).

    A sentence takes part only if it has a label (``None`` = unlabelled) and a reward
    (``None`` = left out by truncation); both kinds are counted. Every row is computed on
    the same sentences, so the rows compare. Per group of responses:

    * ``auroc``: over all the group's sentences pooled, P(a good sentence ranks above a bad
      one), ties one half; ``None`` without both kinds.
    * ``pointing``: over the ``eligible`` responses (a good and a bad sentence), the mean
      :func:`pointing_credit` of the lowest-ranked sentence; ``None`` without any.

    Rows: ``reward`` ranks by r_j, ``weighted`` by a_j * r_j (what the sentence adds to the
    score); baselines ``random`` (AUROC 0.5, pointing = mean share of bad sentences),
    ``first`` (ranks by position, so the first sentence is blamed), ``last`` (by distance
    from the end, so the last is blamed) and ``length`` (characters of the stripped text,
    so the shortest is blamed).

    Returns ``{"head", "prefix_rewards", "methods": {row: name}, "default_method": row,
    "overall": group, "by_source": {source: group}}`` (``default_method``: the row the app
    colours sentences by, :func:`default_credit_method`) where a group is ``{"responses",
    "eligible", "sentences": {"good", "bad", "unlabelled", "truncated"}, "metrics": {row:
    {"auroc", "pointing"}}}``.
    """
    items = list(items)
    judged = [_judge(index, item) for index, item in enumerate(items)]
    if not judged:
        raise ValueError("no scored responses to evaluate")
    with_likelihood = all("likelihood" in r.scores for r in judged)
    names = credit_method_names(head, prefix_rewards, likelihood=with_likelihood)
    if not with_likelihood:
        for r in judged:
            r.scores.pop("likelihood", None)
    by_source: dict[str, list[_JudgedResponse]] = defaultdict(list)
    for response in judged:
        by_source[response.source].append(response)
    rows = list(names)
    return {
        "head": head,
        "prefix_rewards": prefix_rewards,
        "methods": names,
        "default_method": default_credit_method(head),
        "overall": _credit_stats(judged, rows),
        "by_source": {
            source: _credit_stats(group, rows) for source, group in sorted(by_source.items())
        },
    }


def _judge(index: int, item: dict[str, Any]) -> _JudgedResponse:
    labels = item["labels"]
    record: ResponseScores = item["record"]
    sentences = record.sentences
    if len(labels) != len(sentences):
        raise ValueError(
            f"item {index}: {len(labels)} labels but the record has {len(sentences)} sentences; "
            "score the response with its own sentence boundaries (spans=)"
        )
    k = len(sentences)
    good: list[bool] = []
    scores: dict[str, list[float]] = {m: [] for m in CREDIT_METHODS if m != "random"}
    has_likelihood = all(s.likelihood is not None for s in sentences if s.reward is not None)
    if has_likelihood:
        scores["likelihood"] = []
    unlabelled = truncated = 0
    for j, (label, sentence) in enumerate(zip(labels, sentences, strict=True)):
        if label is None:
            unlabelled += 1
            continue
        if sentence.reward is None or sentence.weight is None:
            truncated += 1
            continue
        good.append(bool(label))
        scores["reward"].append(sentence.reward)
        scores["weighted"].append(sentence.weight * sentence.reward)
        scores["first"].append(j)
        scores["last"].append(k - 1 - j)
        scores["length"].append(len(sentence.text.strip()))
        if has_likelihood:
            scores["likelihood"].append(sentence.likelihood)
    return _JudgedResponse(item.get("source") or "", good, scores, unlabelled, truncated)


def _credit_stats(
    responses: Sequence[_JudgedResponse], rows: Sequence[str] = CREDIT_METHODS
) -> dict[str, Any]:
    good = [g for r in responses for g in r.good]
    n_good = sum(good)
    eligible = [r for r in responses if any(r.good) and not all(r.good)]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    metrics: dict[str, dict[str, float | None]] = {}
    for method in rows:
        if method == "random":
            metrics[method] = {
                "auroc": 0.5 if 0 < n_good < len(good) else None,
                "pointing": mean([r.good.count(False) / len(r.good) for r in eligible]),
            }
            continue
        pooled = [s for r in responses for s in r.scores[method]]
        metrics[method] = {
            "auroc": auroc(pooled, good),
            "pointing": mean([pointing_credit(r.scores[method], r.good) for r in eligible]),
        }
    return {
        "responses": len(responses),
        "eligible": len(eligible),
        "sentences": {
            "good": n_good,
            "bad": len(good) - n_good,
            "unlabelled": sum(r.unlabelled for r in responses),
            "truncated": sum(r.truncated for r in responses),
        },
        "metrics": metrics,
    }


def evaluate_steps(
    model: Any,
    records: Sequence[StepRecord],
    *,
    separator: str = DEFAULT_STEP_SEPARATOR,
    batch_size: int = 16,
    max_length: int | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Score each record's response with its own sentence boundaries and report how well
    the sentence rewards match the labels (:func:`credit_report`).

    The response is the record's sentences joined by ``separator``
    (:meth:`StepRecord.response`); ``max_length`` is tokens per sequence (``None``: the
    model's own scoring length).
    """
    from srm.score import score_responses

    texts, spans = [], []
    for record in records:
        text, record_spans = record.response(separator)
        texts.append(text)
        spans.append(record_spans)
    scored = score_responses(
        model,
        [record.prompt for record in records],
        texts,
        spans=spans,
        batch_size=batch_size,
        max_length=max_length,
        show_progress=show_progress,
    )
    items = [
        {"source": record.source, "labels": list(record.labels), "record": response}
        for record, response in zip(records, scored, strict=True)
    ]
    return credit_report(items, head=model.config.head, prefix_rewards=bool(model.causal))


def format_credit_report(report: dict[str, Any]) -> str:
    """A plain-text table for the terminal: method rows x (AUROC, pointing), overall and per
    source when there are several, each group headed by its counts."""

    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    def group(title: str, g: dict[str, Any]) -> list[str]:
        s = g["sentences"]
        responses = "response" if g["responses"] == 1 else "responses"
        lines = [
            f"{title}: {g['responses']} {responses}, {g['eligible']} with good and bad; "
            f"sentences {s['good']} good, {s['bad']} bad, {s['truncated']} truncated, "
            f"{s['unlabelled']} unlabelled"
        ]
        for method, name in report["methods"].items():
            m = g["metrics"][method]
            lines.append(
                f"  {name[:44]:<44} {number(m['auroc'], '.3f'):>7} "
                f"{number(m['pointing'], '.1%'):>9}"
            )
        return lines

    lines = [f"{'sentence credit':<46} {'AUROC':>7} {'pointing':>9}"]
    lines += group("overall", report["overall"])
    if len(report["by_source"]) > 1:
        for source, g in report["by_source"].items():
            lines += group(f"source {source}", g)
    lines.append("")
    lines.append("AUROC: chance that a good sentence ranks above a bad one (0.5 = chance).")
    lines.append(
        "pointing: share of responses with good and bad sentences whose lowest-ranked "
        "sentence is bad."
    )
    lines.append("truncated: labelled sentences the context length left out (not scored).")
    return "\n".join(lines)
