"""Plotly figure builders for the app's pages: pure functions from plain records to figures,
one module a concern: :mod:`~webapp.charts.sentences` (one scored pair, sentence by sentence),
:mod:`~webapp.charts.attention` (a response's sentence x sentence attention),
:mod:`~webapp.charts.comparison` (models side by side), :mod:`~webapp.charts.training` (a
run's curves) and :mod:`~webapp.charts.candidates` (Best-of-N), on the shared look of
:mod:`~webapp.charts.style`. Pages only place the figures, through the names below; tests call
the functions directly.

Anything from the data that plotly draws (hover text, legend names, tick labels) is escaped with
``html.escape``: plotly renders a subset of HTML in those strings, and responses are untrusted.
"""

from webapp.charts.attention import ATTENTION_MEANING, attention_heatmap
from webapp.charts.candidates import candidates_heatmap
from webapp.charts.comparison import (
    accuracy_by_source,
    bar_text,
    margin_shift_scatter,
    sentence_shift_chart,
)
from webapp.charts.sentences import cell_text, contributions_chart, sentence_heatmap, token_chart
from webapp.charts.style import hover_text
from webapp.charts.training import training_curves

__all__ = [
    "ATTENTION_MEANING",
    "accuracy_by_source",
    "attention_heatmap",
    "bar_text",
    "candidates_heatmap",
    "cell_text",
    "contributions_chart",
    "hover_text",
    "margin_shift_scatter",
    "sentence_heatmap",
    "sentence_shift_chart",
    "token_chart",
    "training_curves",
]
