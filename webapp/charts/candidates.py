"""Best-of-N figures (the Best-of-N page): one prompt's candidates, best first, as rows of
sentence cells. A pure builder, as the other chart modules are (it shares their colour scales
and hover text, :mod:`webapp.charts.style`): tests call it."""

from __future__ import annotations

import plotly.graph_objects as go

from srm.bestofn import Ranking
from srm.records import sig3
from webapp.charts.style import REWARD_SCALE, WEIGHT_SCALE, hover_text
from webapp.palette import max_abs

VALUES = ("reward", "weight")


def candidates_heatmap(ranking: Ranking, value: str = "reward") -> go.Figure:
    """Every candidate of ``ranking`` as a row (best at the top, labelled ``#rank · candidate
    i``), with the prompt term then one cell per sentence coloured by ``value`` (r_j, or a_j),
    on one scale for all rows, set by the sentences. Cells past a candidate's end are empty,
    and so are sentences truncation left out; the hover gives the sentence and its term
    a_j r_j. A model without a prompt term gets no prompt column."""
    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}")
    order = ranking.order
    rows = [ranking.responses[i] for i in order]
    with_prompt = any(r.prompt_weight != 0 for r in rows)
    k = max((len(r.sentences) for r in rows), default=0)
    columns = (["prompt"] if with_prompt else []) + [str(j) for j in range(1, k + 1)]
    names = [f"#{rank} · candidate {i + 1}" for rank, i in enumerate(order, start=1)]
    z: list[list[float | None]] = []  # (N, K [+ 1])
    hover: list[list[list[str]]] = []  # (N, K [+ 1], 2): value line, sentence text
    for record in rows:
        z_row: list[float | None] = []
        hover_row: list[list[str]] = []
        if with_prompt:
            z_row.append(getattr(record, f"prompt_{value}"))
            hover_row.append(
                [f"prompt contribution · adds {sig3(record.prompt_term)} to the score", ""]
            )
        for j in range(k):
            if j >= len(record.sentences):
                z_row.append(None)
                hover_row.append([f"no sentence {j + 1}", ""])
                continue
            s = record.sentences[j]
            if not s.scored:
                z_row.append(None)
                hover_row.append([f"sentence {j + 1} · cut by truncation", hover_text(s.text)])
                continue
            z_row.append(getattr(s, value))
            line = (
                f"sentence {j + 1} · reward {sig3(s.reward)} × weight "  # type: ignore[arg-type]
                f"{sig3(s.weight, signed=False)} = {sig3(s.weight * s.reward)}"  # type: ignore[operator, arg-type]
            )
            hover_row.append([line, hover_text(s.text)])
        z.append(z_row)
        hover.append(hover_row)
    first = 1 if with_prompt else 0
    top = max_abs(v for row in z for v in row[first:])
    if value == "reward":
        colors = {"colorscale": REWARD_SCALE, "zmid": 0.0, "zmin": -top, "zmax": top}
    else:
        colors = {"colorscale": WEIGHT_SCALE, "zmin": 0.0, "zmax": top}
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=columns,
            y=names,
            customdata=hover,
            hovertemplate="<b>%{y}</b> · %{customdata[0]}<br>%{customdata[1]}<extra></extra>",
            hoverongaps=False,
            xgap=2,
            ygap=2,
            colorbar={"title": {"text": value}, "thickness": 12},
            **colors,
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")  # the best on top
    fig.update_xaxes(
        title_text="prompt term, then sentence" if with_prompt else "sentence",
        type="category",
        categoryarray=columns,
    )
    fig.update_layout(
        template="plotly_white",
        title={"text": f"Candidates best first · colour: sentence {value}", "x": 0.0},
        margin={"l": 140, "r": 20, "t": 60, "b": 50},
        height=120 + 40 * len(rows),
    )
    return fig
