"""Figures that compare models (the Models page): accuracy by source beside the length
baseline, each pair's margin under two models, and one response's sentence rewards under both.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from srm.compare import MIN_SOURCE_PAIRS, PairShift
from srm.records import ResponseScores
from webapp.charts.style import empty, hover_text, style
from webapp.palette import NEGATIVE, POSITIVE, WEIGHT

BASELINE = "#b0b0b0"
MODEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def accuracy_by_source(rows: Sequence[dict[str, Any]], *, large: bool = False) -> go.Figure:
    """Pairwise accuracy per source for each model, beside the length-only baseline.

    ``rows`` are ``{"model", "source", "accuracy", "n"}`` (accuracy in 0..1), optionally with
    ``"few": True`` for a group too small to read (drawn faint and hatched, its label saying
    so); a row whose model is ``"length baseline"`` is drawn grey. Each source's label and
    each bar's text carry its n (a bar of one pair reads "100%" and "n=1", not a verdict).
    The dashed line at 50% is a coin flip.
    """
    if not rows:
        return empty("no evaluation results yet", large=large)
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
    return style(fig, "Pairwise accuracy by source", large=large, height=380)


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
        return empty("no pairs scored by both models yet", large=large)
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
    return style(
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
    return style(fig, title, large=large, height=340)
