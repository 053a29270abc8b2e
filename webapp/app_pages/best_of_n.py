"""Best-of-N: a prompt's candidate responses ranked by the model, each candidate's sentences
coloured, and the top choice set against the runner-up sentence by sentence."""

import streamlit as st

from srm.bestofn import explain
from srm.data import DataError
from srm.records import sig3
from webapp import candidates, charts, highlight, mdtext, services, widgets
from webapp.palette import max_abs

url = services.store_url()
st.title("Best-of-N")
st.markdown(
    "Rank the responses a policy sampled for each prompt by the active reward model, and see "
    "why the best one won. Upload a JSON Lines file with one prompt per line: "
    '`{"id": "q1", "prompt": "...", "responses": ["...", "...", ...]}` '
    "(`id` optional, at least two responses), or try the example."
)
model = services.active_model(url)
if model is None:
    st.warning("No reward model: train one on the Train page, or set SRM_MODEL to a checkpoint.")
    st.stop()

pick = st.columns([3, 1])
upload = pick[0].file_uploader(
    "Candidates file", type=["jsonl", "json", "parquet"], key="bestofn.upload"
)
if pick[1].button("Use the example", key="bestofn.use_example"):
    st.session_state["bestofn.example"] = True
if upload is not None:
    name, data = upload.name, upload.getvalue()
elif st.session_state.get("bestofn.example"):
    name, data = candidates.EXAMPLE.name, candidates.EXAMPLE.read_bytes()
else:
    st.info("Upload a candidates file, or use the example.")
    st.stop()

try:
    rankings = candidates.rank_file(model, name, data)
except DataError as err:
    st.error(mdtext.escape(err))
    st.stop()
st.caption(  # safe: the file name and the model label are escaped
    f"{len(rankings)} prompts from {mdtext.escape(name)}, ranked by {mdtext.escape(model.label)}."
)

by_id = {r.id: r for r in rankings}
prompt_id = st.selectbox(
    "Prompt",
    list(by_id),
    key="bestofn.prompt",
    format_func=lambda i: f"{i} · {' '.join(by_id[i].prompt.split())[:80]}",
)
ranking = by_id[prompt_id]
with st.container(border=True):
    st.html(highlight.plain_html(ranking.prompt))

# --- the ranking ------------------------------------------------------------------------------
why = explain(ranking)
best, runner_up = why.best + 1, why.runner_up + 1
top = st.columns(3)
top[0].metric("Best", f"candidate {best}", help="The highest score.")
top[1].metric("Its score", sig3(why.best_score))
top[2].metric(
    "Lead over the runner-up",
    sig3(why.lead),
    help=f"Candidate {best}'s score − candidate {runner_up}'s.",
)
st.dataframe(
    [
        {
            "rank": rank,
            "candidate": i + 1,
            "score": ranking.responses[i].score,
            "sentences": ranking.responses[i].n_sentences,
            "response": " ".join(ranking.responses[i].text.split())[:120],
        }
        for rank, i in enumerate(ranking.order, start=1)
    ],
    hide_index=True,
    key="bestofn.table",
)

# --- why the top choice -----------------------------------------------------------------------
st.subheader(f"Why candidate {best} over candidate {runner_up}")  # safe: numbers only
for line in why.text().splitlines():
    st.markdown(mdtext.escape(line))  # safe: sentences from the file, escaped
st.dataframe(
    [
        {
            "sentence": row.position,
            f"candidate {best}": row.top_text,
            # "—" where a candidate has no sentence at this position
            "adds": widgets.number_cell(row.top_term, "+.3f"),
            f"candidate {runner_up}": row.runner_up_text,
            "adds ": widgets.number_cell(row.runner_up_term, "+.3f"),
            "difference": widgets.number_cell(row.difference, "+.3f"),
        }
        for row in why.rows
    ],
    hide_index=True,
    key="bestofn.sentences",
    column_config={
        "adds": st.column_config.TextColumn(help="a_j·r_j: what the sentence adds"),
        "adds ": st.column_config.TextColumn(help="a_j·r_j: what the sentence adds"),
        "difference": st.column_config.TextColumn(help="What this position adds to the lead"),
    },
)

# --- every candidate's sentences --------------------------------------------------------------
st.subheader("The candidates, best first")
by = (
    st.segmented_control("Colour by", ["reward", "weight"], default="reward", key="bestofn.by")
    or "reward"
)
st.plotly_chart(charts.candidates_heatmap(ranking, by), key="bestofn.heatmap", width="stretch")
scale = max_abs(getattr(s, by) for record in ranking.responses for s in record.sentences)
st.html(highlight.legend_html(by, scale))
for rank, i in enumerate(ranking.order, start=1):
    record = ranking.responses[i]
    with st.container(border=True):
        heading = f"**#{rank} · candidate {i + 1}** · score {sig3(record.score)}"
        st.markdown(heading)  # safe: numbers only
        if record.prompt_weight != 0:
            st.html(highlight.prompt_term_html(record, by=by, scale=scale))
        st.html(highlight.sentences_html(record.text, record, by=by, scale=scale))
