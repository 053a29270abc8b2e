"""The training curves of a run (the Train page): loss and accuracy against step, from the
rows of its ``metrics.jsonl`` in whichever shape they come."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from webapp.charts.style import empty, style


def training_curves(rows: Sequence[dict[str, Any]], *, large: bool = False) -> go.Figure:
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
        return empty("no metrics yet", large=large)

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
    return style(fig, "Training curves", large=large, height=360)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
