"""Showcase (demo mode): curated pairs told as a story, read-only, large and clear."""

import streamlit as st

from srm.records import sig3
from webapp import charts, highlight, scoring, services, showcase

url = services.store_url()
model = services.active_model(url)
st.title("Where does a reward model put the credit?")
st.markdown(
    "A **sentence-level reward model** scores every sentence of an answer, then weighs the "
    "sentences, and a part for the question itself, into one score. Below, each sentence is "
    "coloured by its reward, and each example's caption says what decides the verdict: the "
    "sentences, or the question itself."
)
if model is None:
    st.info("No reward model is installed.")
    st.stop()
curated = scoring.demo_pairs(url, model)
if not curated:
    st.info(
        "No example to show yet: none of the pairs has a clear verdict its sentences carry. "
        "An admin can feature pairs on the Inspect page."
    )
    st.stop()


def keep_example() -> None:
    """A click on the example already shown would deselect it: keep it shown instead."""
    if st.session_state.get("demo.example") is None:
        st.session_state["demo.example"] = st.session_state.get("demo.shown", 0)


if st.session_state.get("demo.example") not in (None, *range(len(curated))):
    st.session_state["demo.example"] = 0  # the list changed under this session
choice = st.pills(
    "Example",
    range(len(curated)),
    format_func=lambda i: f"Example {i + 1}",
    default=0,
    key="demo.example",
    on_change=keep_example,
)
choice = st.session_state["demo.shown"] = 0 if choice is None else choice
dataset, pair_id = curated[choice]
pair = services.get_pair(url, dataset, pair_id)
record = scoring.scores(url, pair, model)
verdict = scoring.verdict(record, pair.label)
names = showcase.side_names(pair.label)

st.subheader("The question")
with st.container(border=True):  # the last human turn; earlier turns folded
    st.html(highlight.question_html(pair.prompt))

with st.container(border=True, key="demo_caption"):
    st.html(showcase.caption_html(record, verdict))
if verdict.coverage_note:
    st.warning(verdict.coverage_note, icon=":material/content_cut:")

by = (
    st.segmented_control("Colour by", ["reward", "weight"], default="reward", key="demo.by")
    or "reward"
)
st.markdown(showcase.legend(by))  # safe: fixed words
scale = highlight.shared_scale(record, by)
cols = st.columns(2)
for col, side in zip(cols, showcase.sides_in_order(pair.label), strict=True):
    with col:
        scored = record.side(side)
        st.subheader(f"{names[side]} · score {sig3(scored.score)}")  # safe: fixed words, a number
        st.html(
            highlight.sentences_html(getattr(pair, side), scored, by=by, scale=scale, large=True)
        )
        if record.has_prompt_term:
            st.caption(showcase.question_part(scored))  # fixed words and a number
st.html(highlight.legend_html(by, scale))
st.plotly_chart(
    charts.sentence_heatmap(record, by, large=True, names=names),
    key="demo.heatmap",
    width="stretch",
)
with st.expander("How each score adds up"):
    st.caption(showcase.WATERFALL)
    st.plotly_chart(
        charts.contributions_chart(record, large=True, names=names),
        key="demo.waterfall",
        width="stretch",
    )
st.caption(showcase.model_words(model))  # safe: fixed words and the name escaped
