"""Plotly figure builders for the app's pages: pure functions from plain records to figures.

Inputs are the typed score records of :mod:`srm.records` (what :func:`srm.score.score_pairs`
returns), the comparison of :mod:`srm.compare`, rows of a run's ``metrics.jsonl`` and small
dicts the pages assemble. Pages only place the figures; tests
call these functions directly.

Anything from the data that plotly draws (hover text, legend names, tick labels) is escaped with
``html.escape``: plotly renders a subset of HTML in those strings, and responses are untrusted.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from srm.compare import MIN_SOURCE_PAIRS, PairShift
from srm.records import (
    PairScores,
    ResponseScores,
    margin_split,
    p_chosen,
    probability_text,
    sig3,
)
from webapp import credit_methods
from webapp.credit_methods import VALUES
from webapp.palette import NEGATIVE, POSITIVE, WEIGHT, Scale

Record = dict[str, Any]

SIDES = ("chosen", "rejected")
NEUTRAL = "#f7f7f7"
TOTAL = "#7f7f7f"
REWARD_SCALE = [[0.0, NEGATIVE], [0.5, NEUTRAL], [1.0, POSITIVE]]
WEIGHT_SCALE = [[0.0, NEUTRAL], [1.0, WEIGHT]]
BASELINE = "#b0b0b0"
MODEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
# Hover text: at most this many characters of a sentence, wrapped at about this width.
HOVER_CHARS = 120
HOVER_WIDTH = 50
MAX_CELL_LABELS = 20
NOT_SCORED = "not scored"
CUT_GREY = "#bdbdbd"


def sentence_heatmap(
    pair_record: PairScores,
    value: str = "reward",
    *,
    large: bool = False,
    names: Mapping[str, str] | None = None,
) -> go.Figure:
    """Both responses of a pair as two rows of cells: the prompt term, then one cell per
    sentence, coloured by ``value`` (reward, weight or likelihood).

    Rows are ``chosen`` (top) and ``rejected``; columns ``prompt`` then sentence 1..K, K the
    longer response's sentence count (cells past a response's end are empty). The prompt
    column holds marker 0's term (r_0 or a_0): it is part of every score, and often most of
    the margin, so leaving it out would tell a story the numbers do not. ``value="reward"``
    uses a diverging scale symmetric about 0, ``"weight"`` a sequential one from 0; the scale
    is set by the *sentences*, so a prompt term beyond it shows at full colour and the title
    says so. Log-probabilities (a likelihood, or a likelihood-head model's rewards: all
    negative) are coloured about the pair's mean instead (:func:`credit_methods.colour_scale`),
    and the title says so.

    When the record's sentences carry a likelihood that the rows do not already show
    (:func:`credit_methods.has_likelihood`), two more rows follow, ``chosen · likelihood`` and
    ``rejected · likelihood``, in a subplot below with its own scale and colour bar (the
    prompt has no likelihood: its cell is empty). Sentences cut by truncation are grey cells
    marked "not scored" (traces after the coloured ones, ``name="not scored"``, over the gaps
    they leave). Cells are
    labelled with :func:`cell_text` when K <= 20. A model without a prompt term
    (:attr:`~srm.records.PairScores.has_prompt_term`), or coloured by likelihood alone, gets
    no prompt column. ``names`` relabels the sides (the demo's "The answer people preferred").
    """
    _check_value(value)
    names = names or {}
    k = max(len(pair_record.side(side).sentences) for side in SIDES)
    # The prompt has no likelihood: coloured by it alone, the prompt column would be empty.
    with_prompt = pair_record.has_prompt_term and value != "likelihood"
    columns = ["prompt", *(str(j) for j in range(1, k + 1))][0 if with_prompt else 1 :]
    blocks = [value]
    if value != "likelihood" and credit_methods.has_likelihood(pair_record):
        blocks.append("likelihood")

    # One subplot per pair of rows, sharing the columns: each with its own y axis, so that
    # plotly places each trace's cell labels on its own rows.
    fig = make_subplots(rows=len(blocks), cols=1, shared_xaxes=True, vertical_spacing=0.14)
    hovertemplate = "<b>%{customdata[0]}</b> · %{customdata[1]}<br>%{customdata[2]}<extra></extra>"
    cuts = []
    notes = []
    for n_block, block in enumerate(blocks):
        suffix = "" if n_block == 0 else f" · {block}"
        rows = [_heatmap_row(pair_record, side, block, k, names, suffix) for side in SIDES]
        if not with_prompt:
            rows = [{key: cells[1:] for key, cells in row.items()} for row in rows]
        scale = credit_methods.colour_scale(pair_record, block)
        centre, span = scale.centre, scale.span
        clipped = with_prompt and any(
            abs(row["z"][0] - centre) > span
            for row in rows
            if row["z"][0] is not None and len(row["z"]) > 1
        )
        if block == "weight":
            colors = {"colorscale": WEIGHT_SCALE, "zmin": 0.0, "zmax": span}
        else:
            colors = {
                "colorscale": REWARD_SCALE,
                "zmid": centre,
                "zmin": centre - span,
                "zmax": centre + span,
            }
        y = [f"{names.get(side, side)}{suffix}" for side in SIDES]
        colorbar = {"title": {"text": block}, "thickness": 12}
        if len(blocks) > 1:  # one colour bar beside each pair of rows
            low, high = fig.get_subplot(n_block + 1, 1).yaxis.domain
            colorbar |= {"len": high - low, "y": (low + high) / 2, "yanchor": "middle"}
        heatmap = go.Heatmap(
            z=[row["z"] for row in rows],
            x=columns,
            y=y,
            name=block,
            customdata=[row["data"] for row in rows],
            hovertemplate=hovertemplate,
            hoverongaps=True,
            xgap=2,
            ygap=2,
            colorbar=colorbar,
            **colors,
        )
        if k <= MAX_CELL_LABELS:
            heatmap.update(text=[row["labels"] for row in rows], texttemplate="%{text}")
        fig.add_trace(heatmap, row=n_block + 1, col=1)
        cut = [row["cut"] for row in rows]  # 1 where truncation cut the sentence
        if any(v is not None for cells in cut for v in cells):
            grey = go.Heatmap(
                z=cut,
                x=columns,
                y=y,  # the rows as named
                name=NOT_SCORED,
                customdata=[row["data"] for row in rows],
                hovertemplate=hovertemplate,
                hoverongaps=False,
                colorscale=[[0.0, CUT_GREY], [1.0, CUT_GREY]],
                showscale=False,
                xgap=2,
                ygap=2,
            )
            if k <= MAX_CELL_LABELS:
                grey.update(
                    text=[[cell_text(None) if v is not None else "" for v in c] for c in cut],
                    texttemplate="%{text}",
                    textfont={"color": "#333"},
                )
            cuts.append((grey, n_block + 1))
        notes.append(_heatmap_words(pair_record, block, scale, clipped, below=n_block > 0))
    for grey, row in cuts:  # over the gaps the coloured traces leave
        fig.add_trace(grey, row=row, col=1)
    fig.update_yaxes(autorange="reversed")  # chosen (row 0) on top
    fig.update_xaxes(type="category", categoryarray=columns)
    fig.update_xaxes(
        title_text="prompt term, then sentence" if with_prompt else "sentence",
        row=len(blocks),
        col=1,
    )
    if k > MAX_CELL_LABELS:  # too many to label each: show every fifth sentence
        fig.update_xaxes(tickvals=columns[::5])
    height = 260 if len(blocks) == 1 else 400
    return _style(fig, "Colour: " + "<br>".join(notes), large=large, height=height)


def _heatmap_row(
    pair_record: PairScores,
    side: str,
    value: str,
    k: int,
    names: Mapping[str, str],
    suffix: str,
) -> dict[str, list]:
    """One side's cells for ``value``, the prompt column first: ``z`` values, ``data``
    (hover: row name, value line, sentence text), ``labels`` and ``cut`` (1 where truncation
    cut the sentence). The prompt has no likelihood: a likelihood row's prompt cell is
    empty."""
    rec = pair_record.side(side)
    name = f"{names.get(side, side)}{suffix}"
    signed = value != "weight"
    if value == "likelihood":
        prompt_value = None
        prompt_data = [name, "prompt · no likelihood (the prompt is given, not scored)", ""]
    else:
        prompt_value = getattr(rec, f"prompt_{value}")
        prompt_data = [
            name,
            f"prompt term · {value} {sig3(prompt_value, signed=signed)}",
            f"reward {sig3(rec.prompt_reward)} × weight "
            f"{sig3(rec.prompt_weight, signed=False)} = {sig3(rec.prompt_term)} of the score",
        ]
    row: dict[str, list] = {
        "z": [prompt_value],
        "data": [prompt_data],
        "labels": ["" if prompt_value is None else cell_text(prompt_value, value)],
        "cut": [None],
    }
    for j in range(k):
        if j >= len(rec.sentences):
            row["z"].append(None)
            row["cut"].append(None)
            row["data"].append([name, f"no sentence {j + 1}", ""])
            row["labels"].append("")
            continue
        s = rec.sentences[j]
        v = credit_methods.sentence_value(s, value)
        row["z"].append(v)
        row["cut"].append(1.0 if not s.scored else None)
        if not s.scored:
            line = f"sentence {j + 1} · cut by truncation (not scored)"
        elif v is None:
            line = f"sentence {j + 1} · no {value}"
        else:
            line = f"sentence {j + 1} · {value} {sig3(v, signed=signed)}"
        row["labels"].append("" if v is None else cell_text(v, value))  # grey trace labels it
        row["data"].append([name, line, hover_text(s.text)])
    return row


def _heatmap_words(
    pair_record: PairScores, value: str, scale: Scale, clipped: bool, *, below: bool
) -> str:
    """A heatmap title's words for one pair of rows: what the colour is, and its scale when
    it is not about 0."""
    if value == "reward" and credit_methods.credit_method(pair_record.head).rewards_are_likelihood:
        what = "reward = likelihood, each sentence's mean token log-probability"
    elif value == "reward":
        what = "sentence reward"
        if pair_record.prefix_rewards:
            what += " (each given the sentences before it)"
    elif value == "weight":
        what = "weight of each sentence in the score"
    else:
        what = "likelihood, each sentence's mean token log-probability"
    if below:
        what = f"below, {what}"
    if scale.mean is not None:
        what += f" · centred at the pair's mean, {sig3(scale.mean)}"
    if clipped:
        what += " · the prompt term is beyond the sentences' scale (full colour)"
    return what


def cell_text(v: float | None, value: str = "reward") -> str:
    """A heatmap cell's label: the value to 3 significant figures (:func:`sig3`, so a small
    value is never shown as 0.00 and an exact zero is "0"), a reward or likelihood signed, a
    weight not; "not scored" for a sentence truncation cut.

    >>> cell_text(-0.000412), cell_text(0.0), cell_text(0.25, "weight"), cell_text(None)
    ('-0.000412', '0', '0.25', 'not scored')
    """
    if v is None:
        return NOT_SCORED
    return sig3(v, signed=value != "weight")


def contributions_chart(
    pair_record: PairScores, *, large: bool = False, names: Mapping[str, str] | None = None
) -> go.Figure:
    """How each score is built: prompt term, then weight × reward per sentence, then the total.

    One waterfall per response, side by side on a shared y axis. The relative bars add up to
    the score exactly (the model's own decomposition); the title gives the model's margin
    (chosen − rejected), split into the prompt term's shift and the sentences' part, and
    P(chosen preferred) = sigmoid(margin). Truncated sentences, which took no part in the
    score, are left out, and so is the prompt term of a model without one. With ``names``
    (the demo's), the sides are called by them, the bars "sentence 1", ... and the title is
    in words.
    """
    words = names is not None
    names = names or {side: side for side in SIDES}
    with_prompt = pair_record.has_prompt_term
    scores = {side: pair_record.side(side).score for side in SIDES}
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=[f"{names[side]} · score {sig3(scores[side])}" for side in SIDES],
    )
    for col, side in enumerate(SIDES, start=1):
        rec = pair_record.side(side)
        x = ["the question" if words else "prompt"]
        y, measure = [rec.prompt_term], ["relative"]
        detail = [
            [
                "prompt contribution",
                f"reward {sig3(rec.prompt_reward)} × weight "
                f"{sig3(rec.prompt_weight, signed=False)} = {sig3(rec.prompt_term)}",
            ]
        ]
        if not with_prompt:
            x, y, measure, detail = [], [], [], []
        for j, s in enumerate(rec.sentences, start=1):
            if s.reward is None or s.weight is None:
                continue
            term = s.weight * s.reward
            x.append(f"sentence {j}" if words else f"s{j}")
            y.append(term)
            measure.append("relative")
            detail.append(
                [
                    hover_text(s.text),
                    f"reward {sig3(s.reward)} × weight {sig3(s.weight, signed=False)}"
                    f" = {sig3(term)}",
                ]
            )
        x.append("score")
        y.append(rec.score)
        measure.append("total")
        detail.append([f"{names[side]} score", sig3(rec.score)])
        fig.add_trace(
            go.Waterfall(
                name=names[side],
                x=x,
                y=y,
                measure=measure,
                customdata=detail,
                hovertemplate=(
                    "<b>%{x}</b><br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>"
                ),
                increasing={"marker": {"color": POSITIVE}},
                decreasing={"marker": {"color": NEGATIVE}},
                totals={"marker": {"color": TOTAL}},
                connector={"line": {"color": "#c8c8c8", "width": 1}},
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    split = margin_split(pair_record)
    parts = (
        f"prompt shift {sig3(split.prompt)} + sentence shift {sig3(split.sentences)}"
        if with_prompt
        else f"sentence shift {sig3(split.sentences)} (no prompt term)"
    )
    title = (
        f"Margin (chosen − rejected) {sig3(split.margin)} = {parts} · "
        f"P(chosen preferred) = σ(margin) = {probability_text(p_chosen(split.margin))}"
    )
    if words:
        title = "How each answer's score adds up: the question, then each sentence"
    fig.update_yaxes(title_text="contribution to score", row=1, col=1)
    fig.update_xaxes(type="category")
    return _style(fig, title, large=large, height=380)


def token_chart(
    side_record: ResponseScores, text: str, *, large: bool = False, log_probabilities: bool = False
) -> go.Figure:
    """The token head's reward for every response token: one bar each from 0, coloured by
    sign; hover shows the token.

    With ``log_probabilities`` (a likelihood-head model, whose tokens carry their
    log-probabilities, all negative) each bar runs from the response's mean token
    log-probability (a dashed line) to the token's, coloured above or below it: bars from 0
    would all point down and hide the differences.
    """
    tokens = side_record.tokens
    if tokens is None:
        raise ValueError(
            "this record has no token rewards: only token-head and likelihood-head models "
            "produce them; use sentence_heatmap for sentence and response heads"
        )
    values = [t.reward for t in tokens]
    centre = math.fsum(values) / len(values) if log_probabilities and values else 0.0
    what = "log-probability" if log_probabilities else "reward"
    fig = go.Figure(
        go.Bar(
            x=list(range(1, len(tokens) + 1)),
            y=[v - centre for v in values],
            base=centre if log_probabilities else None,
            marker_color=[POSITIVE if v >= centre else NEGATIVE for v in values],
            customdata=[[html.escape(repr(text[t.start : t.end])), sig3(t.reward)] for t in tokens],
            hovertemplate=(
                f"token %{{x}} · %{{customdata[0]}}<br>{what} %{{customdata[1]}}<extra></extra>"
            ),
        )
    )
    fig.update_xaxes(title_text="token")
    fig.update_yaxes(title_text=what, zeroline=not log_probabilities)
    title = "Token rewards (token head)"
    if log_probabilities:
        fig.add_hline(
            y=centre, line_dash="dash", line_color="#888", annotation_text=f"mean {sig3(centre)}"
        )
        title = (
            "Token log-probabilities (likelihood head), from the response's mean: above it "
            "purple, below orange"
        )
    return _style(fig, title, large=large, height=320)


def accuracy_by_source(rows: Sequence[Record], *, large: bool = False) -> go.Figure:
    """Pairwise accuracy per source for each model, beside the length-only baseline.

    ``rows`` are ``{"model", "source", "accuracy", "n"}`` (accuracy in 0..1), optionally with
    ``"few": True`` for a group too small to read (drawn faint and hatched, its label saying
    so); a row whose model is ``"length baseline"`` is drawn grey. Each source's label and
    each bar's text carry its n (a bar of one pair reads "100%" and "n=1", not a verdict).
    The dashed line at 50% is a coin flip.
    """
    if not rows:
        return _empty("no evaluation results yet", large=large)
    models = list(dict.fromkeys(r["model"] for r in rows))
    sources = list(dict.fromkeys(r["source"] for r in rows))
    n_of = {r["source"]: r.get("n") for r in rows}
    few = {r["source"] for r in rows if r.get("few")}

    def axis_label(source: str) -> str:
        n = n_of[source]
        shown = html.escape(source) if n is None else f"{html.escape(source)} (n={n})"
        return f"{shown}<br>under {MIN_SOURCE_PAIRS}: too few to read" if source in few else shown

    fig = go.Figure()
    palette = iter(MODEL_COLORS * (len(models) // len(MODEL_COLORS) + 1))
    for model in models:
        by_source = {r["source"]: r for r in rows if r["model"] == model}
        present = [s for s in sources if s in by_source]
        acc = [by_source[s]["accuracy"] for s in present]
        fig.add_trace(
            go.Bar(
                name=html.escape(model),
                x=[axis_label(s) for s in present],
                y=[None if a is None else 100 * a for a in acc],
                customdata=[by_source[s].get("n") for s in present],
                text=[bar_text(by_source[s]["accuracy"], by_source[s].get("n")) for s in present],
                textposition="outside",
                cliponaxis=False,  # "100%" above a full bar stays visible
                marker_color=BASELINE if model == "length baseline" else next(palette),
                marker_opacity=[0.3 if s in few else 1.0 for s in present],
                marker_pattern_shape=["/" if s in few else "" for s in present],
                hovertemplate=(
                    f"<b>{html.escape(model)}</b><br>%{{x}}: %{{y:.1f}}%"
                    " (n=%{customdata})<extra></extra>"
                ),
            )
        )
    fig.add_hline(y=50, line_dash="dash", line_color="#888", annotation_text="50%")
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="accuracy", ticksuffix="%", range=[0, 112])
    fig.update_xaxes(title_text="source", type="category")
    return _style(fig, "Pairwise accuracy by source", large=large, height=380)


def bar_text(accuracy: float | None, n: int | None) -> str | None:
    """An accuracy bar's text: whole percent and its n, ``"57%<br>n=120"``."""
    if accuracy is None:
        return None
    return f"{100 * accuracy:.0f}%" + ("" if n is None else f"<br>n={n:,}")


def margin_shift_scatter(
    points: Sequence[PairShift], *, names: tuple[str, str] = ("A", "B"), large: bool = False
) -> go.Figure:
    """Each pair's margin under model A (x) against model B (y), in the labelled direction
    (:attr:`srm.compare.Comparison.pairs`).

    Points off the dashed y = x line moved between the models; ``flipped`` points (the models
    disagree on the winner: the top-left and bottom-right quadrants) are highlighted.
    """
    if not points:
        return _empty("no pairs scored by both models yet", large=large)
    fig = go.Figure()
    groups = (
        (False, "same verdict", {"color": "#9ecae1", "size": 7}),
        (
            True,
            "flipped",
            {
                "color": NEGATIVE,
                "size": 11,
                "symbol": "diamond",
                "line": {"color": "#333", "width": 1},
            },
        ),
    )
    for flipped, label, marker in groups:
        group = [p for p in points if p.flipped == flipped]
        if not group:
            continue
        fig.add_trace(
            go.Scatter(
                name=f"{label} ({len(group)})",
                x=[p.a for p in group],
                y=[p.b for p in group],
                mode="markers",
                marker=marker,
                customdata=[[html.escape(p.id), html.escape(p.label or "")] for p in group],
                hovertemplate=(
                    "<b>%{customdata[0]}</b> %{customdata[1]}<br>"
                    f"{html.escape(names[0])}: %{{x:+.3f}}<br>"
                    f"{html.escape(names[1])}: %{{y:+.3f}}<extra></extra>"
                ),
            )
        )
    values = [v for p in points for v in (p.a, p.b)]
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    fig.add_shape(
        type="line",
        x0=lo,
        y0=lo,
        x1=hi,
        y1=hi,
        line={"dash": "dash", "color": "#888"},
        layer="below",
    )
    fig.add_hline(y=0, line_color="#bbb", line_width=1, layer="below")
    fig.add_vline(x=0, line_color="#bbb", line_width=1, layer="below")
    fig.update_xaxes(title_text=f"margin under {html.escape(names[0])}", range=[lo, hi])
    fig.update_yaxes(
        title_text=f"margin under {html.escape(names[1])}",
        range=[lo, hi],
        scaleanchor="x",
        scaleratio=1,
    )
    n_flipped = sum(p.flipped for p in points)
    return _style(
        fig, f"Margin shift: {n_flipped} of {len(points)} pairs flipped", large=large, height=480
    )


def sentence_shift_chart(
    a_side: ResponseScores,
    b_side: ResponseScores,
    *,
    names: tuple[str, str] = ("A", "B"),
    side: str | None = None,
    large: bool = False,
) -> go.Figure:
    """One response's per-sentence rewards under two models, as grouped bars by sentence;
    ``side`` (chosen or rejected) names the response in the title."""
    fig = go.Figure()
    for record, name, color in zip((a_side, b_side), names, (POSITIVE, WEIGHT), strict=True):
        sentences = record.sentences
        fig.add_trace(
            go.Bar(
                name=html.escape(name),
                x=list(range(1, len(sentences) + 1)),
                y=[s.reward for s in sentences],
                marker_color=color,
                customdata=[hover_text(s.text) for s in sentences],
                hovertemplate=(
                    f"<b>{html.escape(name)}</b> · sentence %{{x}} · reward %{{y:+.3f}}"
                    "<br>%{customdata}<extra></extra>"
                ),
            )
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="sentence", dtick=1)
    fig.update_yaxes(title_text="reward", zeroline=True)
    title = f"Sentence rewards: {html.escape(names[0])} vs {html.escape(names[1])}"
    if side is not None:
        title = f"{html.escape(side.capitalize())} · {title[0].lower()}{title[1:]}"
    return _style(fig, title, large=large, height=340)


def training_curves(rows: Sequence[Record], *, large: bool = False) -> go.Figure:
    """Loss and accuracy against step from a run's ``metrics.jsonl`` rows.

    Training rows are ``{"step", "loss", "accuracy", ...}``. Evaluation results are read in
    any of the shapes they come in: nested (``{"step", "eval": {"accuracy", ...}}``, what
    :mod:`srm.train` writes), prefixed (``"eval_accuracy"``) or tagged (``"split": "eval"``).
    Only the series that are present are drawn.
    """
    series: dict[str, list[tuple[float, float]]] = {
        "train loss": [],
        "eval loss": [],
        "train accuracy": [],
        "eval accuracy": [],
    }
    for i, row in enumerate(rows):
        step = row.get("step", i)
        if isinstance(row.get("eval"), dict):
            ev = row["eval"]
        elif row.get("split") == "eval":
            ev = row
        else:
            ev = {k.removeprefix("eval_"): v for k, v in row.items() if k.startswith("eval_")}
            for metric in ("loss", "accuracy"):
                if _is_number(row.get(metric)):
                    series[f"train {metric}"].append((step, row[metric]))
        for metric in ("loss", "accuracy"):
            if _is_number(ev.get(metric)):
                series[f"eval {metric}"].append((step, ev[metric]))
    if not any(series.values()):
        return _empty("no metrics yet", large=large)

    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss", "accuracy"], horizontal_spacing=0.1)
    styles = {
        "train loss": (1, "#1f77b4", "solid"),
        "eval loss": (1, "#ff7f0e", "dot"),
        "train accuracy": (2, "#2ca02c", "solid"),
        "eval accuracy": (2, "#ff7f0e", "dot"),
    }
    for name, points in series.items():
        if not points:
            continue
        points.sort(key=lambda p: p[0])
        col, color, dash = styles[name]
        fig.add_trace(
            go.Scatter(
                name=name,
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines+markers" if len(points) < 30 else "lines",
                line={"color": color, "dash": dash},
                hovertemplate=f"{name}<br>step %{{x}}: %{{y:.4f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.add_hline(y=0.5, line_dash="dash", line_color="#aaa", row=1, col=2)
    # From step 0, so a short run's few points sit on whole-number ticks, not 4.5, 5, 5.5.
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    return _style(fig, "Training curves", large=large, height=360)


# --- helpers -------------------------------------------------------------------------------


def hover_text(text: str) -> str:
    """A sentence made safe and short for a plotly hover: whitespace collapsed, cut to about
    120 characters, wrapped with ``<br>`` about every 50, every piece HTML-escaped."""
    flat = " ".join(text.split())
    if len(flat) > HOVER_CHARS:
        flat = flat[: HOVER_CHARS - 1].rstrip() + "…"
    # Wrap before escaping, so a line break never splits an entity such as &lt;.
    lines = textwrap.wrap(flat, HOVER_WIDTH, break_on_hyphens=False) or [""]
    return "<br>".join(html.escape(line, quote=True) for line in lines)


def _style(fig: go.Figure, title: str, *, large: bool, height: int) -> go.Figure:
    """The look every figure shares; ``large`` is demo mode (bigger type, taller)."""
    scale = 1.35 if large else 1.0
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.0, "xanchor": "left"},
        font={"size": round(13 * scale)},
        hoverlabel={"font": {"size": round(13 * scale)}, "align": "left"},
        margin={"l": 60, "r": 20, "t": round(70 * scale), "b": 50},
        height=round(height * scale),
    )
    return fig


def _empty(message: str, *, large: bool) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16 if not large else 22, "color": "#888"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, "", large=large, height=240)


def _check_value(value: str) -> None:
    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


ATTENTION_SCALE = [[0.0, NEUTRAL], [1.0, WEIGHT]]
#: What :func:`attention_heatmap` means and does not, in one line (srm.attention's docstring).
ATTENTION_MEANING = (
    "Each row is one sentence: how its tokens split their attention, on average, between the "
    "prompt, the sentences (a causal backbone sees only earlier ones and itself) and the "
    "markers. Attention is what the layers looked at, not credit: a sentence much attended to "
    "did not necessarily move the score (the reward heatmap above shows the credit)."
)
ATTENTION_LABEL_CHARS = 28
"""A row label quotes this many characters of its sentence (then "…")."""


def attention_heatmap(
    matrix: Sequence[Sequence[float]],
    blocks: Sequence[str],
    sentences: Sequence[str],
    *,
    title: str = "",
) -> go.Figure:
    """One response's sentence x sentence attention (:meth:`srm.attention.AttentionMap.matrix`)
    as a heatmap: a row per sentence, labelled with its number and the start of its text, a
    column per key block ("prompt", the sentences "1".."K", "markers"). A cell is the share of
    the row sentence's attention that goes to the column block (rows sum to about 1), so the
    colour runs from 0 to the largest share on the map. For one sentence:
    ``attention_heatmap([[0.7, 0.2, 0.1]], ["prompt", "1", "markers"], ["Hello."])``.
    """
    if not matrix:
        return _empty("This response has no sentences.", large=False)
    if len(sentences) != len(matrix) or any(len(row) != len(blocks) for row in matrix):
        raise ValueError(
            f"attention_heatmap: got {len(matrix)} rows for {len(sentences)} sentences and "
            f"{len(blocks)} blocks; pass AttentionMap.matrix(), .blocks and the sentences"
        )
    columns = [b if b in ("prompt", "markers") else f"s{b}" for b in blocks]
    rows = [f"{i + 1}. {_short(text)}" for i, text in enumerate(sentences)]
    hover = [
        [
            f"sentence {i + 1} → {col}: {v:.1%} of its attention<br>{hover_text(text)}"
            for col, v in zip(columns, row, strict=True)
        ]
        for i, (text, row) in enumerate(zip(sentences, matrix, strict=True))
    ]
    top = max((v for row in matrix for v in row), default=0.0)
    fig = go.Figure(
        go.Heatmap(
            z=[list(row) for row in matrix],
            x=columns,
            y=rows,
            text=[[f"{v:.2f}" for v in row] for row in matrix],
            texttemplate="%{text}" if len(blocks) <= MAX_CELL_LABELS else None,
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            colorscale=ATTENTION_SCALE,
            zmin=0.0,
            zmax=max(top, 1e-6),
            colorbar={"title": {"text": "share"}},
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="sentence (reads)")
    fig.update_xaxes(title_text="what it reads: prompt, sentence, markers", type="category")
    _style(fig, html.escape(title), large=False, height=140 + 34 * len(matrix))
    fig.update_layout(margin={"l": 220})  # room for the quoted sentences
    return fig


def _short(text: str) -> str:
    """A sentence cut for a row label, escaped: plotly renders HTML in tick labels."""
    flat = " ".join(text.split())
    if len(flat) > ATTENTION_LABEL_CHARS:
        flat = flat[: ATTENTION_LABEL_CHARS - 1].rstrip() + "…"
    return html.escape(flat, quote=True)
