"""Showcase (demo mode): curated pairs told as a story, read-only, large and clear."""

import streamlit as st

import charts
import highlight
import mdtext
import scoring
import services
import widgets
from srm.records import sig3
from srm.store import preferred_side

url = services.store_url()
model = services.active_model(url)
st.title("Where does a reward model put the credit?")
st.markdown(
    "A **sentence-level reward model** scores every sentence of a response, then weighs the "
    "sentences, and a term for the question itself, into one score. Below, each sentence is "
    "coloured by its reward, and the split under the verdict says how much of it the "
    "sentences decide."
)
if model is None:
    st.info("No reward model is installed.")
    st.stop()
curated = scoring.demo_pairs(url, model)
if not curated:
    st.info("The store has no pairs to show.")
    st.stop()

choice = (
    st.pills(
        "Example",
        range(len(curated)),
        format_func=lambda i: f"Example {i + 1}",
        default=0,
        key="demo.example",
    )
    or 0
)
dataset, pair_id = curated[choice]
pair = services.get_pair(url, dataset, pair_id)
record = scoring.scores(url, pair, model)
verdict = scoring.verdict(record, pair.label)

st.subheader("The question")
with st.container(border=True):
    st.html(highlight.plain_html(pair.prompt.strip(), large=True))

top = st.columns(3)
top[0].metric("The model prefers", verdict.model_prefers)
widgets.p_chosen_metric(top[1], verdict, "Probability the chosen answer is better")
top[2].metric(
    "People preferred",
    preferred_side(pair.label) or {"tie": "neither"}.get(pair.label or "", "—"),
)

st.caption(verdict.split_text)
if verdict.prompt_note:
    st.info(
        "In this example the verdict comes mostly from the question's own term "
        f"({verdict.split.prompt_share:.0%} of the margin), not from what the sentences earned: "
        "the colours below show the sentences' small share.",
        icon=":material/info:",
    )
else:
    st.success(
        f"Here the sentences decide: they carry {1 - verdict.split.prompt_share:.0%} of the "
        "margin.",
        icon=":material/format_list_bulleted:",
    )
if verdict.coverage_note:
    st.warning(verdict.coverage_note, icon=":material/content_cut:")

by = (
    st.segmented_control("Colour by", ["reward", "weight"], default="reward", key="demo.by")
    or "reward"
)
scale = highlight.shared_scale(record, by)
cols = st.columns(2)
for col, side in zip(cols, ("chosen", "rejected"), strict=True):
    with col:
        scored = record.side(side)
        st.subheader(f"{side.capitalize()} answer · score {sig3(scored.score)}")  # safe: a number
        if record.has_prompt_term:
            st.html(highlight.prompt_term_html(scored, by=by, scale=scale, large=True))
        st.html(
            highlight.sentences_html(getattr(pair, side), scored, by=by, scale=scale, large=True)
        )
st.html(highlight.legend_html(by, scale))
st.plotly_chart(
    charts.sentence_heatmap(record, by, large=True), key="demo.heatmap", width="stretch"
)
st.plotly_chart(
    charts.contributions_chart(record, large=True), key="demo.waterfall", width="stretch"
)
st.caption(f"Model: {mdtext.escape(model.label)}")  # safe: the label escaped
