"""One response's sentence x sentence attention as a heatmap (the Inspect page, from
:class:`srm.attention.AttentionMap`): what the layers looked at, which is not credit."""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from webapp.charts.style import MAX_CELL_LABELS, WEIGHT_SCALE, empty, hover_text, shortened, style

ATTENTION_SCALE = WEIGHT_SCALE
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
        return empty("This response has no sentences.", large=False)
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
    style(fig, html.escape(title), large=False, height=140 + 34 * len(matrix))
    fig.update_layout(margin={"l": 220})  # room for the quoted sentences
    return fig


def _short(text: str) -> str:
    """A sentence cut for a row label, escaped: plotly renders HTML in tick labels."""
    return html.escape(shortened(text, ATTENTION_LABEL_CHARS), quote=True)
