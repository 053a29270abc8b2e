"""webapp/charts/: what each figure shows, built from small hand-made records."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from srm.compare import PairShift
from srm.records import PairScores, ResponseScores, sig3
from webapp import charts
from webapp.charts.comparison import BASELINE
from webapp.charts.style import HOVER_CHARS, HOVER_WIDTH
from webapp.palette import NEGATIVE, POSITIVE

Sentence = tuple[str, float | None, float | None]  # (text, reward, weight)
XSS = '<script>alert(1)</script> <img src=x onerror="window.__xss=1"> '


def make_side(
    sentences: list[Sentence],
    *,
    prompt: tuple[float, float] = (0.4, 0.1),
    tokens: list[tuple[int, int, float]] | None = None,
) -> ResponseScores:
    """One scored response whose score obeys the model's invariant:
    prompt_weight * prompt_reward + sum(weight * reward) == score."""
    records, pos = [], 0
    for text, reward, weight in sentences:
        records.append(
            {"text": text, "start": pos, "end": pos + len(text), "reward": reward, "weight": weight}
        )
        pos += len(text)
    prompt_reward, prompt_weight = prompt
    score = prompt_reward * prompt_weight + sum(
        r["reward"] * r["weight"] for r in records if r["reward"] is not None
    )
    side = {
        "score": score,
        "prompt_reward": prompt_reward,
        "prompt_weight": prompt_weight,
        "truncated": any(r["reward"] is None for r in records),
        "sentences": records,
    }
    if tokens is not None:
        side["tokens"] = [{"start": a, "end": b, "reward": r} for a, b, r in tokens]
    return ResponseScores.from_json(side)


def make_record(chosen: list[Sentence], rejected: list[Sentence], **fields: Any) -> PairScores:
    """A scored pair record as srm.score.score_pairs returns it (sentence head)."""
    return PairScores(
        id="p1",
        source="hh",
        head="sentence",
        prefix_rewards=False,
        chosen=make_side(chosen),
        rejected=make_side(rejected, prompt=(-0.2, 0.3)),
        **fields,
    )


@pytest.fixture
def pair() -> PairScores:
    return make_record(
        [("Sure, here it is. ", 0.8, 0.5), (XSS, -0.4, 0.3), ("Dropped. ", None, None)],
        [("No. ", -1.2, 0.6), ("Go away. ", -0.3, 0.1)],
    )


def annotation_texts(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


# --- sentence_heatmap -------------------------------------------------------------------------


def test_heatmap_rows_are_sides_and_columns_sentences(pair: PairScores) -> None:
    heatmap = charts.sentence_heatmap(pair).data[0]
    assert list(heatmap.y) == ["chosen", "rejected"]
    # The prompt term first: it is part of every score, so the chart never leaves it out.
    assert list(heatmap.x) == ["prompt", "1", "2", "3"]
    assert [list(row) for row in heatmap.z] == [[0.4, 0.8, -0.4, None], [-0.2, -1.2, -0.3, None]]


def test_heatmap_prompt_column_explains_the_term_and_a_scale_it_exceeds(pair: PairScores) -> None:
    heatmap = charts.sentence_heatmap(pair).data[0]
    side, line, detail = heatmap.customdata[0][0]
    assert (side, line) == ("chosen", "prompt term · reward +0.4")
    assert detail == "reward +0.4 × weight 0.1 = +0.04 of the score"
    assert "beyond" not in charts.sentence_heatmap(pair).layout.title.text
    loud = replace(pair, chosen=replace(pair.chosen, prompt_reward=-5.0))
    fig = charts.sentence_heatmap(loud)
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-1.2, 1.2)  # the sentences set the scale
    assert "prompt term is beyond the sentences' scale" in fig.layout.title.text


def sentences_only(record: PairScores) -> PairScores:
    """The same record from a model without a prompt term: a_0 = 0 on both sides."""
    return replace(
        record,
        chosen=replace(record.chosen, prompt_weight=0.0),
        rejected=replace(record.rejected, prompt_weight=0.0),
    )


def test_a_model_without_a_prompt_term_gets_no_prompt_column(pair: PairScores) -> None:
    record = sentences_only(pair)
    assert pair.has_prompt_term and not record.has_prompt_term
    fig = charts.sentence_heatmap(record)
    heatmap = fig.data[0]
    assert list(heatmap.x) == ["1", "2", "3"]
    assert [list(row) for row in heatmap.z] == [[0.8, -0.4, None], [-1.2, -0.3, None]]
    assert heatmap.customdata[0][0][1] == "sentence 1 · reward +0.8"
    assert fig.layout.xaxis.title.text == "sentence"
    # A prompt reward beyond the sentences' scale does not matter when it has no weight.
    loud = replace(record, chosen=replace(record.chosen, prompt_reward=-5.0))
    assert "beyond" not in charts.sentence_heatmap(loud).layout.title.text


def test_heatmap_puts_chosen_on_top(pair: PairScores) -> None:
    assert charts.sentence_heatmap(pair).layout.yaxis.autorange == "reversed"


def test_heatmap_reward_scale_is_diverging_and_symmetric(pair: PairScores) -> None:
    fig = charts.sentence_heatmap(pair)
    heatmap = fig.data[0]
    assert heatmap.zmid == 0
    assert (heatmap.zmin, heatmap.zmax) == (-1.2, 1.2)
    assert "reward" in fig.layout.title.text


def test_heatmap_weight_scale_is_sequential(pair: PairScores) -> None:
    fig = charts.sentence_heatmap(pair, "weight")
    heatmap = fig.data[0]
    assert [list(row) for row in heatmap.z] == [[0.1, 0.5, 0.3, None], [0.3, 0.6, 0.1, None]]
    assert (heatmap.zmin, heatmap.zmax) == (0.0, 0.6)
    assert heatmap.zmid is None
    assert "weight" in fig.layout.title.text
    with pytest.raises(ValueError, match="value must be"):
        charts.sentence_heatmap(pair, "score")


def test_heatmap_hover_is_escaped_and_explains_empty_cells(pair: PairScores) -> None:
    heatmap = charts.sentence_heatmap(pair).data[0]
    side, line, text = heatmap.customdata[0][2]
    assert (side, line) == ("chosen", "sentence 2 · reward -0.4")
    assert "<script" not in text and "<img" not in text and 'onerror="' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "onerror=&quot;window.__xss=1&quot;&gt;" in text
    assert "%{customdata[2]}" in heatmap.hovertemplate
    assert "truncation" in heatmap.customdata[0][3][1]
    assert heatmap.customdata[1][3][1] == "no sentence 3"


def test_heatmap_marks_cut_sentences_as_not_scored(pair: PairScores) -> None:
    fig = charts.sentence_heatmap(pair)
    main, cut = fig.data
    assert main.text[0][3] == ""  # the gap in the coloured trace ...
    assert cut.name == "not scored"  # ... is filled by a grey one that says so
    assert [list(row) for row in cut.z] == [[None, None, None, 1.0], [None, None, None, None]]
    assert cut.text[0][3] == "not scored" and cut.text[1][3] == ""
    assert cut.showscale is False and cut.colorscale[0][1] == cut.colorscale[1][1]
    assert cut.customdata[0][3][1] == "sentence 3 · cut by truncation (not scored)"
    named = charts.sentence_heatmap(pair, names={"chosen": "preferred", "rejected": "other"})
    assert list(named.data[1].y) == list(named.data[0].y) == ["preferred", "other"]
    whole = make_record([("One. ", 0.1, 1.0)], [("Two. ", 0.2, 1.0)])
    assert len(charts.sentence_heatmap(whole).data) == 1  # nothing cut, nothing grey


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.004, "+0.004"), (-0.00412, "-0.00412"), (0.0, "0"), (-0.0, "0"), (1.23456, "+1.23")],
)
def test_heatmap_cells_read_three_significant_figures(value: float, shown: str) -> None:
    record = make_record([("One. ", value, 0.5)], [("Two. ", -value, 0.5)])
    labels = charts.sentence_heatmap(record).data[0].text
    assert labels[0][1] == shown
    assert all(label not in ("+0.00", "-0.00", "0.00") for row in labels for label in row)


def test_hover_text_collapses_cuts_and_wraps() -> None:
    long = "word\n\n  " * 60
    text = charts.hover_text(long)
    lines = text.split("<br>")
    assert "\n" not in text and "  " not in text
    assert text.endswith("…")
    assert len(text.replace("<br>", " ")) <= HOVER_CHARS
    assert len(lines) >= 2 and all(len(line) <= HOVER_WIDTH for line in lines)
    # Wrapping happens before escaping, so an entity is never split across lines.
    assert charts.hover_text("<" * 60).split("<br>")[0] == "&lt;" * 50


def test_heatmap_labels_cells_only_when_few(pair: PairScores) -> None:
    heatmap = charts.sentence_heatmap(pair).data[0]
    assert [list(row) for row in heatmap.text] == [
        ["+0.4", "+0.8", "-0.4", ""],
        ["-0.2", "-1.2", "-0.3", ""],
    ]
    many = make_record([(f"S{i}. ", 0.1, 0.01) for i in range(21)], [("R. ", 0.1, 1.0)])
    assert charts.sentence_heatmap(many).data[0].text is None


def test_heatmap_title_says_rewards_are_prefix_rewards(pair: PairScores) -> None:
    fig = charts.sentence_heatmap(replace(pair, prefix_rewards=True))
    assert "before it" in fig.layout.title.text
    assert "before it" not in charts.sentence_heatmap(pair).layout.title.text


def with_likelihood(record: PairScores, head: str = "sentence") -> PairScores:
    """The record with a likelihood on each scored sentence: -1, -2, ... down each side
    (rejected from -4), and for ``head="likelihood"`` the rewards equal to it."""

    def side(rec: ResponseScores, start: float) -> ResponseScores:
        sentences = []
        for j, s in enumerate(rec.sentences):
            lik = None if not s.scored else start - j
            reward = lik if head == "likelihood" else s.reward
            sentences.append(replace(s, likelihood=lik, reward=reward))
        return replace(rec, sentences=tuple(sentences))

    return replace(
        record, head=head, chosen=side(record.chosen, -1.0), rejected=side(record.rejected, -4.0)
    )


def test_a_likelihood_gets_rows_of_its_own_on_a_scale_about_its_mean(pair: PairScores) -> None:
    fig = charts.sentence_heatmap(with_likelihood(pair))
    reward, likelihood, cut, cut_likelihood = fig.data
    assert list(reward.y) == ["chosen", "rejected"]
    assert list(likelihood.y) == ["chosen · likelihood", "rejected · likelihood"]
    assert [list(row) for row in likelihood.z] == [
        [None, -1.0, -2.0, None],
        [None, -4.0, -5.0, None],
    ]
    # Log-probabilities are all negative: centred at their mean (-3), reaching -1 and -5.
    assert (likelihood.zmid, likelihood.zmin, likelihood.zmax) == (-3.0, -5.0, -1.0)
    assert (reward.zmid, reward.zmin, reward.zmax) == (0.0, -1.2, 1.2)  # rewards as before
    assert (
        likelihood.colorbar.title.text == "likelihood" and likelihood.colorbar.y < reward.colorbar.y
    )
    assert [list(row) for row in likelihood.text] == [["", "-1", "-2", ""], ["", "-4", "-5", ""]]
    assert (
        likelihood.customdata[0][0][1] == "prompt · no likelihood (the prompt is given, not scored)"
    )
    assert likelihood.customdata[1][2][1] == "sentence 2 · likelihood -5"
    # Each pair of rows on its own y axis (so plotly labels the right cells), columns shared.
    assert (reward.yaxis, likelihood.yaxis) == ("y", "y2")
    assert fig.layout.xaxis2.title.text == "prompt term, then sentence"
    # The sentence truncation cut is grey in both of its rows.
    assert (cut.name, cut_likelihood.name) == ("not scored", "not scored")
    assert (list(cut.y), list(cut_likelihood.y)) == (list(reward.y), list(likelihood.y))
    assert (cut.yaxis, cut_likelihood.yaxis) == ("y", "y2")
    assert [row[3] for row in (*cut.z, *cut_likelihood.z)] == [1.0, None, 1.0, None]
    title = fig.layout.title.text
    assert "below, likelihood" in title and "centred at the pair's mean, -3" in title
    assert fig.layout.height > charts.sentence_heatmap(pair).layout.height


def test_coloured_by_likelihood_the_heatmap_shows_it_once(pair: PairScores) -> None:
    fig = charts.sentence_heatmap(with_likelihood(pair), "likelihood")
    assert [list(t.y) for t in fig.data] == [["chosen", "rejected"], ["chosen", "rejected"]]
    assert fig.data[0].zmid == -3.0 and fig.data[1].name == "not scored"
    assert list(fig.data[0].x) == ["1", "2", "3"]  # no prompt column: it has no likelihood
    assert fig.layout.title.text.startswith("Colour: likelihood, each sentence's mean token")


def test_a_likelihood_heads_rewards_are_the_likelihood_centred_and_shown_once(
    pair: PairScores,
) -> None:
    lm = with_likelihood(sentences_only(pair), "likelihood")
    fig = charts.sentence_heatmap(lm)
    heatmap = fig.data[0]
    assert [list(t.y) for t in fig.data if t.name != "not scored"] == [["chosen", "rejected"]]
    assert [list(row) for row in heatmap.z] == [[-1.0, -2.0, None], [-4.0, -5.0, None]]
    assert (heatmap.zmid, heatmap.zmin, heatmap.zmax) == (-3.0, -5.0, -1.0)
    assert fig.layout.title.text == (
        "Colour: reward = likelihood, each sentence's mean token log-probability"
        " · centred at the pair's mean, -3"
    )


# --- contributions_chart ----------------------------------------------------------------------


def test_contributions_add_up_to_each_score(pair: PairScores) -> None:
    fig = charts.contributions_chart(pair)
    assert [t.name for t in fig.data] == ["chosen", "rejected"]
    for trace, side in zip(fig.data, ("chosen", "rejected"), strict=True):
        relative = [y for y, m in zip(trace.y, trace.measure, strict=True) if m == "relative"]
        assert math.isclose(sum(relative), pair.side(side).score, abs_tol=1e-6)
        assert trace.measure[-1] == "total" and trace.y[-1] == pair.side(side).score
    # The truncated third sentence took no part in the score and is not drawn.
    assert list(fig.data[0].x) == ["prompt", "s1", "s2", "score"]
    assert fig.data[0].y[0] == pytest.approx(0.4 * 0.1)


def test_contributions_title_gives_margin_and_probability(pair: PairScores) -> None:
    title = charts.contributions_chart(pair).layout.title.text
    # chosen 0.4*0.1 + 0.8*0.5 - 0.4*0.3 = 0.32; rejected -0.2*0.3 - 1.2*0.6 - 0.3*0.1 = -0.81
    margin = pair.chosen.score - pair.rejected.score
    assert margin == pytest.approx(1.13)
    assert "Margin (chosen − rejected) +1.13 = prompt shift +0.1 + sentence shift +1.03" in title
    assert f"{1 / (1 + math.exp(-margin)):.1%}" in title


def test_contributions_without_a_prompt_term_are_the_sentences(pair: PairScores) -> None:
    record = sentences_only(pair)
    record = replace(
        record,
        chosen=replace(record.chosen, score=record.chosen.sentence_term),
        rejected=replace(record.rejected, score=record.rejected.sentence_term),
    )
    fig = charts.contributions_chart(record)
    assert list(fig.data[0].x) == ["s1", "s2", "score"]
    assert "= sentence shift +1.03 (no prompt term)" in fig.layout.title.text


def test_sig3_gives_three_significant_figures() -> None:
    assert sig3(-0.086812) == "-0.0868"
    assert sig3(0.5, signed=False) == "0.5"
    assert sig3(123.456) == "+123"
    assert sig3(0.0000123) == "+1.23e-5"
    assert sig3(0.0) == "0"


def test_contributions_hover_is_escaped(pair: PairScores) -> None:
    text, detail = charts.contributions_chart(pair).data[0].customdata[2]
    assert "<script" not in text and "&lt;script&gt;" in text
    assert detail == "reward -0.4 × weight 0.3 = -0.12"


# --- token_chart ------------------------------------------------------------------------------


def test_token_chart_has_one_bar_per_token() -> None:
    text = "Hi <b>there</b>"
    side = make_side([(text, 0.5, 1.0)], tokens=[(0, 2, 0.2), (2, 6, -0.1), (6, 15, 0.3)])
    bar = charts.token_chart(side, text).data[0]
    assert list(bar.x) == [1, 2, 3] and list(bar.y) == [0.2, -0.1, 0.3] and bar.base is None
    assert "<b>" not in bar.customdata[1][0] and "&lt;b&gt;" in bar.customdata[1][0]
    assert bar.customdata[1][1] == "-0.1"  # 3 significant figures


def test_token_log_probabilities_are_coloured_about_their_mean() -> None:
    text = "Hi there you"
    side = make_side([(text, -2.0, 1.0)], tokens=[(0, 2, -1.0), (2, 8, -2.0), (8, 12, -6.0)])
    fig = charts.token_chart(side, text, log_probabilities=True)
    bar = fig.data[0]
    assert list(bar.marker.color) == [POSITIVE, POSITIVE, NEGATIVE]
    # Each bar runs from the mean (-3, dashed) to the token's log-probability.
    assert bar.base == -3.0 and list(bar.y) == [2.0, 1.0, -3.0]
    assert [row[1] for row in bar.customdata] == ["-1", "-2", "-6"]
    assert [shape.y0 for shape in fig.layout.shapes] == [-3.0]
    assert "log-probability" in bar.hovertemplate and "likelihood head" in fig.layout.title.text
    # The token head's rewards are coloured by sign, as before.
    assert list(charts.token_chart(side, text).data[0].marker.color) == [NEGATIVE] * 3


def test_token_chart_needs_token_rewards() -> None:
    with pytest.raises(ValueError, match="token-head"):
        charts.token_chart(make_side([("A. ", 0.1, 1.0)]), "A. ")


# --- accuracy_by_source -----------------------------------------------------------------------


def test_accuracy_by_source_groups_models_by_source() -> None:
    rows = [
        {"model": "A: base", "source": "hh", "accuracy": 0.56, "n": 50},
        {"model": "A: base", "source": "shp", "accuracy": 0.7, "n": 20},
        {"model": "length baseline", "source": "hh", "accuracy": 0.5, "n": 50},
        {"model": "length baseline", "source": "shp", "accuracy": 0.45, "n": 20},
        {"model": "B: <new>", "source": "hh", "accuracy": 0.6, "n": 50},
    ]
    fig = charts.accuracy_by_source(rows)
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["A: base", "length baseline", "B: &lt;new&gt;"]
    assert list(fig.data[0].x) == ["hh (n=50)", "shp (n=20)"]
    assert list(fig.data[0].y) == pytest.approx([56.0, 70.0])
    assert list(fig.data[2].x) == ["hh (n=50)"]
    assert fig.data[1].marker.color == BASELINE
    assert fig.layout.yaxis.ticksuffix == "%"
    (line,) = fig.layout.shapes
    assert (line.y0, line.y1, line.line.dash) == (50, 50, "dash")


def test_accuracy_by_source_greys_sources_with_too_few_pairs() -> None:
    rows = [
        {"model": "A", "source": "hh", "accuracy": 0.6, "n": 80, "few": False},
        {"model": "A", "source": "<rare>", "accuracy": 1.0, "n": 3, "few": True},
    ]
    fig = charts.accuracy_by_source(rows)
    assert list(fig.data[0].x) == ["hh (n=80)", "&lt;rare&gt; (n=3)<br>under 20: too few to read"]
    assert list(fig.data[0].marker.opacity) == [1.0, 0.3]
    assert list(fig.data[0].marker.pattern.shape) == ["", "/"]  # hatched, not only faint


def test_every_accuracy_bar_carries_its_n() -> None:
    rows = [
        {"model": model, "source": "rare", "accuracy": acc, "n": 1, "few": True}
        for model, acc in (("A", 0.0), ("B", 1.0), ("length baseline", 1.0))
    ] + [{"model": "A", "source": "all", "accuracy": 0.5712, "n": 1234, "few": False}]
    fig = charts.accuracy_by_source(rows)
    assert [list(bar.text) for bar in fig.data] == [
        ["0%<br>n=1", "57%<br>n=1,234"],
        ["100%<br>n=1"],
        ["100%<br>n=1"],
    ]


def test_accuracy_by_source_without_rows_says_so() -> None:
    fig = charts.accuracy_by_source([])
    assert not fig.data and annotation_texts(fig) == ["no evaluation results yet"]


# --- margin_shift_scatter and sentence_shift_chart ---------------------------------------------


def shift(pair_id: str, a: float, b: float, label: str | None = None) -> PairShift:
    return PairShift(id=pair_id, source="hh", label=label, a=a, b=b, longer_preferred=True)


def test_margin_shift_highlights_flipped_pairs() -> None:
    points = [shift("p1", 1.0, 1.5), shift("<p2>", 0.5, -0.5, "<swap>"), shift("p3", -0.2, -1.0)]
    fig = charts.margin_shift_scatter(points, names=("base", "tuned"))
    same, flipped = fig.data
    assert same.name.startswith("same verdict") and flipped.name.startswith("flipped")
    assert list(flipped.x) == [0.5] and list(flipped.y) == [-0.5]
    assert flipped.marker.size > same.marker.size
    assert list(flipped.customdata[0]) == ["&lt;p2&gt;", "&lt;swap&gt;"]
    diagonal = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.y0 and s.x1 == s.y1]
    assert len(diagonal) == 1
    assert "1 of 3" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "margin under base"
    assert annotation_texts(charts.margin_shift_scatter([])) == [
        "no pairs scored by both models yet"
    ]


def test_sentence_shift_groups_both_models_by_sentence() -> None:
    a = make_side([("One. ", 0.5, 0.5), ("<i>Two</i>. ", None, None)])
    b = make_side([("One. ", -0.1, 0.5), ("<i>Two</i>. ", 0.3, 0.5)])
    fig = charts.sentence_shift_chart(a, b, names=("A: base", "B: tuned"))
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["A: base", "B: tuned"]
    assert list(fig.data[0].y) == [0.5, None] and list(fig.data[1].y) == [-0.1, 0.3]
    assert list(fig.data[1].x) == [1, 2]
    assert fig.data[1].customdata[1] == "&lt;i&gt;Two&lt;/i&gt;."


# --- training_curves --------------------------------------------------------------------------

TRAIN_ROWS = [
    {"step": 50, "loss": 0.60, "accuracy": 0.62, "lr": 1e-4},
    {"step": 25, "loss": 0.69, "accuracy": 0.50, "lr": 1e-4},
]


def traces(fig: go.Figure) -> dict[str, tuple[list, list]]:
    return {t.name: (list(t.x), list(t.y)) for t in fig.data}


def test_training_curves_from_training_rows_only() -> None:
    fig = charts.training_curves(TRAIN_ROWS)
    assert traces(fig) == {
        "train loss": ([25, 50], [0.69, 0.60]),
        "train accuracy": ([25, 50], [0.50, 0.62]),
    }
    loss, accuracy = fig.data
    assert loss.xaxis == "x" and accuracy.xaxis == "x2"  # one subplot each


@pytest.mark.parametrize(
    "eval_row",
    [
        {"step": 50, "eval": {"n": 10, "accuracy": 0.7, "length_baseline": 0.5}},  # srm.train
        {"step": 50, "eval_accuracy": 0.7, "eval_loss": 0.55},
        {"step": 50, "split": "eval", "accuracy": 0.7, "loss": 0.55},
    ],
)
def test_training_curves_add_eval_series(eval_row: dict) -> None:
    series = traces(charts.training_curves([*TRAIN_ROWS, eval_row]))
    assert series["eval accuracy"] == ([50], [0.7])
    assert series["train accuracy"] == ([25, 50], [0.50, 0.62])
    assert series["train loss"] == ([25, 50], [0.69, 0.60])
    if "n" not in eval_row.get("eval", {}):
        assert series["eval loss"] == ([50], [0.55])
    else:
        assert "eval loss" not in series


def test_training_curves_without_metrics() -> None:
    fig = charts.training_curves([])
    assert not fig.data and annotation_texts(fig) == ["no metrics yet"]


# --- every figure -----------------------------------------------------------------------------


def test_figures_share_the_template_and_grow_in_demo_mode(pair: PairScores) -> None:
    side = pair.chosen
    point = shift("p1", 1.0, -1.0)
    row = {"model": "A: base", "source": "hh", "accuracy": 0.5, "n": 2}
    builds = [
        partial(charts.sentence_heatmap, pair),
        partial(charts.contributions_chart, pair),
        partial(charts.sentence_shift_chart, side, side),
        partial(charts.margin_shift_scatter, [point]),
        partial(charts.accuracy_by_source, [row]),
        partial(charts.training_curves, TRAIN_ROWS),
        partial(charts.training_curves, []),
    ]
    for build in builds:
        normal, large = build(), build(large=True)
        assert normal.layout.template == pio.templates["plotly_white"]
        assert large.layout.font.size > normal.layout.font.size
        assert large.layout.height > normal.layout.height


def test_demo_names_the_sides_and_sentences_in_words(pair: PairScores) -> None:
    names = {"chosen": "The other answer", "rejected": "The answer people preferred"}
    heatmap = charts.sentence_heatmap(pair, names=names)
    assert list(heatmap.data[0].y) == ["The other answer", "The answer people preferred"]
    waterfall = charts.contributions_chart(pair, names=names)
    assert list(waterfall.data[0].x)[:3] == ["the question", "sentence 1", "sentence 2"]
    assert "σ" not in waterfall.layout.title.text
    assert [a.text.split(" · ")[0] for a in waterfall.layout.annotations] == list(names.values())


# ------------------------------------------------------------------------------- attention
def test_attention_heatmap_rows_are_sentences_and_columns_blocks() -> None:
    matrix = [[0.6, 0.3, 0.0, 0.1], [0.2, 0.3, 0.4, 0.1]]  # sentence 1 cannot read sentence 2
    blocks = ["prompt", "1", "2", "markers"]
    fig = charts.attention_heatmap(
        matrix, blocks, ["First <b>bold</b> sentence here, and then quite a lot more. ", "Two."]
    )
    heat = fig.data[0]
    assert list(heat.x) == ["prompt", "s1", "s2", "markers"]
    # Numbered, cut to 28 characters and escaped: plotly renders HTML in tick labels.
    assert list(heat.y) == ["1. First &lt;b&gt;bold&lt;/b&gt; sentence…", "2. Two."]
    assert [list(row) for row in heat.z] == matrix
    assert (heat.zmin, heat.zmax) == (0.0, 0.6)
    assert heat.customdata[1][2].startswith("sentence 2 → s2: 40.0% of its attention<br>")
    assert fig.layout.yaxis.autorange == "reversed"  # sentence 1 on top, as it reads


def test_attention_heatmap_checks_its_shapes() -> None:
    with pytest.raises(ValueError, match="2 rows for 1 sentences and 3 blocks"):
        charts.attention_heatmap([[0.5, 0.5, 0.0]] * 2, ["prompt", "1", "markers"], ["One."])
    empty = charts.attention_heatmap([], ["prompt", "markers"], [])
    assert empty.layout.annotations[0].text == "This response has no sentences."
