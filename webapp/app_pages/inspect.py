"""Inspect: where one model puts the credit in one pair, sentence by sentence."""

import streamlit as st

from srm.records import sig3
from webapp import auth, charts, credit_methods, highlight, mdtext, scoring, services, widgets

NAMES_HELP = (
    "Names used on every page: reward r_j (what a sentence earns), weight a_j (how much it "
    "counts), contribution a_j × r_j (what it adds to its response's score); the prompt term's "
    "contribution a₀ × r₀ to one response's score; and per pair, margin = prompt shift (the "
    "difference of the two prompt contributions) + sentence shift (the difference of the "
    "sentence contributions)."
)

url = services.store_url()
st.title("Inspect a pair")

summaries = widgets.require_datasets(url)
model = services.active_model(url)
if model is None:
    st.warning("No reward model: train one on the Train page, or set SRM_MODEL to a checkpoint.")
    st.stop()

# --- which pair: from another page ("inspect.target"), the URL, or the pickers ---------------
names = [s["name"] for s in summaries]
target = st.session_state.pop("inspect.target", None)
if target is None and "pair" in st.query_params and "inspect.pair_id" not in st.session_state:
    target = (st.query_params.get("dataset", names[0]), st.query_params["pair"])  # a shared link
if target is not None and target[0] in names:
    st.session_state["inspect.dataset"] = target[0]
    st.session_state["inspect.pair_id"] = target[1]

pick = st.columns([2, 3, 2])
dataset = pick[0].selectbox("Dataset", names, key="inspect.dataset")
search = pick[2].text_input("Find", key="inspect.search", placeholder="filter ids and text")
ids = [r.id for r in services.pair_page(url, dataset, search, 0, 200)]
current = st.session_state.get("inspect.pair_id")
if current and current not in ids:
    ids = [current, *ids]
if not ids:
    st.info("No pair matches.")
    st.stop()
pair_id = pick[1].selectbox(
    "Pair", ids, key="inspect.pair_id", help="The first 200 matches; type in Find to narrow."
)
try:
    pair = services.get_pair(url, dataset, pair_id)
except services.StoreError as err:  # a shared link to a pair that is not there
    st.error(mdtext.escape(err))
    st.stop()
st.query_params.update({"dataset": dataset, "pair": pair_id})

record = scoring.scores(url, pair, model)
edit_key = f"inspect.spans.{pair.db_id}"
edits: dict = st.session_state.setdefault(edit_key, {})
if edits:
    record = scoring.rescore_with_spans(pair, model, edits)

# --- the verdict in one line; the responses next, so they start on the first screen -----------
verdict = scoring.verdict(record, pair.label)
notes = [verdict.prompt_note, verdict.coverage_note, scoring.agreement_text(verdict)]
st.markdown(  # safe: fixed words, numbers, the label's name and the model's label escaped
    f"**Model prefers {verdict.model_prefers}** · P(chosen better) "
    f"{verdict.probability_text} · label {mdtext.escape(pair.label or 'unlabelled')} · "
    f"{verdict.split_text} · model {mdtext.escape(model.label)}"
    + (" · edited segmentation (not saved)" if edits else "")
    + (" · notes below the responses" if any(notes) else ""),
    help=NAMES_HELP,
)
with st.container(key="inspect_prompt"):
    st.html(highlight.prompt_html(pair.prompt, lines=2))

# Likelihood is offered when the sentences carry one (another pair or model may not).
modes = credit_methods.colour_modes(record)
if st.session_state.get("inspect.by") not in (None, *modes):
    st.session_state["inspect.by"] = "reward"
by = (
    st.segmented_control(
        "Colour sentences by",
        modes,
        default="reward",
        key="inspect.by",
        help=" ".join(credit_methods.MODE_HELP[mode] for mode in modes),
        label_visibility="collapsed",
    )
    or "reward"
)
method = credit_methods.credit_method(record.head)
scale = highlight.shared_scale(record, by)
sides = st.columns(2)
for col, side in zip(sides, ("chosen", "rejected"), strict=True):
    with col:
        scored = record.side(side)
        st.markdown(f"#### {side.capitalize()} · score {sig3(scored.score)}")  # safe: no data
        st.html(highlight.sentences_html(getattr(pair, side), scored, by=by, scale=scale))
        if record.has_prompt_term:
            st.html(highlight.prompt_term_html(scored, by=by, scale=scale))
        st.caption(verdict.coverage[side].describe().capitalize())
        cut = scoring.cut_note(scored)
        if cut:
            st.caption(cut)  # fixed words and counts
st.html(  # the method named in fixed words, escaped all the same
    highlight.legend_html(by, scale, caption=credit_methods.colour_caption(record.head, by))
)

# --- the numbers, and what they mean ------------------------------------------------------------
top = st.columns(6)
top[0].metric("Model prefers", verdict.model_prefers, help="By the sign of the margin.")
widgets.p_chosen_metric(
    top[1],
    verdict,
    "P(chosen is better)",
    help="σ(margin), margin = chosen score − rejected score. Within 50% ± "
    f"{scoring.NO_CLEAR_PREFERENCE:.0%} the model has no clear preference.",
)
top[2].metric("Margin", sig3(verdict.margin), help="Chosen score − rejected score.")
top[3].metric(
    "Prompt shift",
    sig3(verdict.split.prompt) if verdict.prompt_term else "none",
    help="What the prompt term moves the margin by: the chosen response's prompt contribution "
    "(a₀ × r₀) minus the rejected one's. Both responses see the same prompt (one r₀), so only "
    "its weight a₀ differs."
    if verdict.prompt_term
    else "This model has no prompt term (trained with prompt_term = false): its attention "
    "covers the sentences only, so they make the whole margin.",
)
top[4].metric(
    "Sentence shift",
    sig3(verdict.split.sentences),
    help="The chosen response's sentence contributions (Σ a_j × r_j) minus the rejected "
    "one's. Prompt shift + sentence shift = margin.",
)
top[5].metric(
    "Current label",
    pair.label or "unlabelled",
    help="Unlabelled: no annotator has corrected it, so the imported verdict (keep) stands.",
)
if verdict.prompt_note:
    st.warning(verdict.prompt_note, icon=":material/info:")
if verdict.coverage_note:
    st.warning(verdict.coverage_note, icon=":material/content_cut:")
agreement = notes[2]  # fixed words and the label's name
if agreement is not None and not verdict.clear:  # neither backs nor questions the label
    st.info(agreement, icon=":material/balance:")
elif verdict.agrees is False:
    st.warning(agreement, icon=":material/flag:")
elif verdict.agrees is True:
    st.success(agreement, icon=":material/check_circle:")

st.plotly_chart(charts.sentence_heatmap(record, by), key="inspect.heatmap", width="stretch")
st.plotly_chart(charts.contributions_chart(record), key="inspect.waterfall", width="stretch")

# --- attention: computed when asked for, once per pair and model; the pickers only reslice it --
st.subheader("Attention, sentence × sentence")
st.caption(charts.ATTENTION_MEANING)
if st.toggle("Show the attention maps", key="inspect.attention", help="One forward pass."):
    try:
        maps = scoring.attention_maps(pair, model)
    except ValueError:
        st.caption(
            "This model reads no attention map: it is not a sentence reward model with its own "
            "backbone and markers (an imported reward classifier, for one)."
        )
    else:
        first = maps["chosen"]
        layer_pick, head_pick = st.columns(2)
        layer = layer_pick.selectbox(
            "Layer",
            [None, *range(first.layers)],
            format_func=lambda i: "all layers (averaged)" if i is None else f"layer {i + 1}",
            key=f"inspect.attention.layer.{first.layers}",
        )
        head = head_pick.selectbox(
            "Head",
            [None, *range(first.heads)],
            format_func=lambda i: "heads averaged" if i is None else f"head {i + 1}",
            key=f"inspect.attention.head.{first.heads}",
        )
        for col, side in zip(st.columns(2), ("chosen", "rejected"), strict=True):
            amap = maps[side]
            texts = [s.text for s in scoring.sentences(getattr(pair, side))][: amap.sentences]
            col.plotly_chart(
                charts.attention_heatmap(
                    amap.matrix(layer=layer, head=head), amap.blocks, texts, title=side.capitalize()
                ),
                key=f"inspect.attention.{side}",
                width="stretch",
            )
if record.chosen.tokens is not None and record.rejected.tokens is not None:
    # The token head's rewards, or a likelihood-head model's token log-probabilities.
    log_probs = method.rewards_are_likelihood
    st.subheader("Token log-probabilities" if log_probs else "Token rewards")
    token_side = st.radio("Response", ["chosen", "rejected"], horizontal=True, key="inspect.tokens")
    st.html(
        highlight.tokens_html(
            getattr(pair, token_side), record.side(token_side), log_probabilities=log_probs
        )
    )
    st.plotly_chart(
        charts.token_chart(
            record.side(token_side), getattr(pair, token_side), log_probabilities=log_probs
        ),
        key="inspect.token_chart",
        width="stretch",
    )

# --- one sentence, picked with widgets (a heatmap selection does not report back) -----------
# The sentence pickers' keys name the pair, so another pair starts at its first sentence.
st.subheader("A sentence")
pick_side, pick_index = st.columns([1, 4])
side = pick_side.radio("Response", ["chosen", "rejected"], key="inspect.side")
sentences = record.side(side).sentences
if sentences:
    index = pick_index.selectbox(
        "Sentence",
        range(len(sentences)),
        format_func=lambda i: f"{i + 1}. {sentences[i].text.strip()[:90]}",
        key=f"inspect.sentence.{pair.db_id}.{side}",
    )
    sentence = sentences[index]
    if sentence.reward is None or sentence.weight is None:
        st.caption("Cut by truncation: this sentence took no part in the score.")
    else:
        likelihood = "likelihood" in modes and sentence.likelihood is not None
        detail = st.columns(4 if likelihood else 3)
        detail[0].metric("Reward", sig3(sentence.reward))
        detail[1].metric("Weight", sig3(sentence.weight, signed=False))
        detail[2].metric(
            "Contribution",
            sig3(sentence.weight * sentence.reward),
            help="Weight × reward (a_j × r_j): what the sentence adds to its response's score.",
        )
        if likelihood:
            detail[3].metric(
                "Likelihood",
                sig3(sentence.likelihood),
                help=f"{credit_methods.LIKELIHOOD.capitalize()}.",
            )
    st.html(
        highlight.sentences_html(
            getattr(pair, side), record.side(side), by=by, scale=scale, selected=index + 1
        )
    )

# --- segmentation edits -----------------------------------------------------------------------
with st.expander("Edit sentence boundaries", icon=":material/content_cut:"):
    st.caption(
        "Merge a sentence with the next or split one, and the pair is rescored at once with "
        "your boundaries. Edits stay in this browser session; the stored scores keep the "
        "model's own segmentation."
    )
    text = getattr(pair, side)
    cuts = edits.get(side) or scoring.segment_spans(text)
    if len(cuts) == 0:
        st.caption("This response has no sentences.")
    else:
        which = st.selectbox(
            f"Sentence of the {side} response",
            range(len(cuts)),
            format_func=lambda i: f"{i + 1}. {text[cuts[i][0] : cuts[i][1]].strip()[:90]}",
            key=f"inspect.edit_index.{pair.db_id}.{side}",
        )
        chosen_cut = cuts[which]
        st.code(text[chosen_cut[0] : chosen_cut[1]], language=None, wrap_lines=True)
        splits = scoring.split_choices(text, chosen_cut)
        at = st.selectbox(
            "Split before",
            list(splits),
            format_func=splits.get,
            key=f"inspect.split_at.{pair.db_id}.{side}.{chosen_cut[0]}-{chosen_cut[1]}",
            placeholder="one word: nowhere to split",
            help="The words on either side of each place the sentence can be split.",
        )
        buttons = st.columns(3)
        try:
            if buttons[0].button(
                "Merge with next", key="inspect.merge", disabled=which >= len(cuts) - 1
            ):
                edits[side] = scoring.merge_sentences(text, cuts, which)
                st.rerun()
            if buttons[1].button("Split here", key="inspect.split", disabled=at is None):
                edits[side] = scoring.split_sentence(text, cuts, which, at)
                st.rerun()
        except ValueError as err:
            st.error(mdtext.escape(err))
        if buttons[2].button("Reset to automatic", key="inspect.reset", disabled=not edits):
            st.session_state[edit_key] = {}
            st.rerun()

# --- presenting -------------------------------------------------------------------------------
featured = scoring.is_demo_pair(url, pair)
if auth.is_admin() and (
    st.toggle("Feature this pair in demo mode", value=featured, key=f"inspect.demo.{pair.db_id}")
    != featured
):
    scoring.toggle_demo_pair(url, pair)
    st.rerun()
