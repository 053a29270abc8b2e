"""The look every figure of the app shares: colour scales, hover text made safe, the common
layout (``style``) and the blank figure that says why it is blank (``empty``).

Anything from the data that plotly draws (hover text, legend names, tick labels) is escaped with
``html.escape``: plotly renders a subset of HTML in those strings, and responses are untrusted.
"""

from __future__ import annotations

import html
import textwrap

import plotly.graph_objects as go

from webapp.palette import NEGATIVE, POSITIVE, WEIGHT

NEUTRAL = "#f7f7f7"
REWARD_SCALE = [[0.0, NEGATIVE], [0.5, NEUTRAL], [1.0, POSITIVE]]
WEIGHT_SCALE = [[0.0, NEUTRAL], [1.0, WEIGHT]]
# Hover text: at most this many characters of a sentence, wrapped at about this width.
HOVER_CHARS = 120
HOVER_WIDTH = 50
#: A heatmap labels its cells up to this many columns.
MAX_CELL_LABELS = 20


def shortened(text: str, chars: int) -> str:
    """``text`` with its whitespace collapsed, cut to ``chars`` characters (the last an
    ellipsis) when longer: ``shortened("a  b c", 4) == "a b…"``."""
    flat = " ".join(text.split())
    if len(flat) > chars:
        flat = flat[: chars - 1].rstrip() + "…"
    return flat


def hover_text(text: str) -> str:
    """A sentence made safe and short for a plotly hover: whitespace collapsed, cut to about
    120 characters, wrapped with ``<br>`` about every 50, every piece HTML-escaped."""
    flat = shortened(text, HOVER_CHARS)
    # Wrap before escaping, so a line break never splits an entity such as &lt;.
    lines = textwrap.wrap(flat, HOVER_WIDTH, break_on_hyphens=False) or [""]
    return "<br>".join(html.escape(line, quote=True) for line in lines)


def style(fig: go.Figure, title: str, *, large: bool, height: int) -> go.Figure:
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


def empty(message: str, *, large: bool) -> go.Figure:
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
    return style(fig, "", large=large, height=240)
