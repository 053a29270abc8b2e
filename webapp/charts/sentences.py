"""Figures of one scored pair, sentence by sentence (the Inspect page and the demo): both
responses as rows of sentence cells (``sentence_heatmap``), how each score adds up
(``contributions_chart``) and a token head's per-token rewards (``token_chart``). Inputs are the
typed score records of :mod:`srm.records` (what :func:`srm.score.score_pairs` returns).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from srm.records import (
    PairScores,
    ResponseScores,
    margin_split,
    p_chosen,
    probability_text,
    sig3,
)
from webapp import credit_methods
from webapp.charts.style import (
    MAX_CELL_LABELS,
    REWARD_SCALE,
    WEIGHT_SCALE,
    hover_text,
    style,
)
from webapp.credit_methods import VALUES
from webapp.palette import NEGATIVE, POSITIVE, Scale

SIDES = ("chosen", "rejected")
TOTAL = "#7f7f7f"
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
    return style(fig, "Colour: " + "<br>".join(notes), large=large, height=height)


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
    return style(fig, title, large=large, height=380)


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
    return style(fig, title, large=large, height=320)


def _check_value(value: str) -> None:
    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}")
