"""Models: compare two models on a dataset, see what changed, and pick the active one."""

import streamlit as st

from srm.records import sig3
from webapp import auth, charts, mdtext, scoring, services, showcase, widgets

url = services.store_url()
demo = services.demo_mode()
st.title("Models")

active = services.active_model(url)
models = services.list_models(url, audit_folds=False)
hidden = len(services.list_models(url)) - len(models)
if not models:
    if active is not None:
        st.info(  # safe: the label escaped
            f"Only the bundled model is available ({mdtext.escape(active.label)}); "
            "train one to compare."
        )
    else:
        st.info("No models yet: train one on the Train page.")
    st.stop()

st.dataframe(  # demo mode: no server paths, and "—" rather than "None" for a missing figure
    [
        {
            "id": m.id,
            "name": showcase.public_name(m.name) if demo else m.name,
            "head": m.head,
            "backbone": showcase.public_name(m.backbone) if demo else m.backbone,
            "active": "●" if active is not None and m.id == active.id else "",
            "created (UTC)": m.created or "—",
            "train accuracy": (
                "—" if m.metrics.get("accuracy") is None else f"{m.metrics['accuracy']:.1%}"
            ),
        }
        | ({} if demo else {"path": m.path})
        for m in models
    ],
    hide_index=True,
    width="stretch",
)
if hidden:
    st.caption(  # safe: a count
        f"{services.plural(hidden, 'audit fold model')} not listed: each judges its own "
        "held-out fold (Annotate, Audit labels)."
    )
by_id = {m.id: m for m in models}
ids = list(by_id)

if not demo and auth.is_admin():
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    make_active = left.selectbox(
        "Active model (the one the pages score with)",
        ids,
        index=ids.index(active.id) if active is not None and active.id in by_id else 0,
        format_func=lambda i: by_id[i].label,
        key="models.active",
    )
    if right.button(
        "Make active",
        key="models.make_active",
        disabled=active is not None and make_active == active.id,
    ):
        services.set_active_model(url, make_active)
        st.rerun()

if not demo and auth.is_admin():
    on = scoring.demo_filter_on(url)
    if (
        st.toggle(
            "Demo: leave out red-team and harmful-content pairs",
            value=on,
            key="models.demo_filter",
            help="The demo's automatic examples skip pairs from red-team sources (HH-RLHF's "
            "harmless-base) and pairs whose text touches weapons, drugs, violence, self-harm, "
            "sexual content or crime. Featured pairs are shown whatever this says.",
        )
        != on
    ):
        scoring.set_demo_filter(url, not on)
        st.rerun()

# --- A vs B -----------------------------------------------------------------------------------
st.subheader("Compare")
names = [s["name"] for s in services.dataset_summaries(url)]
if not names or len(ids) < 2:
    st.caption("Comparing needs two models and a dataset.")
    st.stop()
# Default: the newest model (B) against the one before it (A).
st.session_state.setdefault("models.b", ids[0])
st.session_state.setdefault("models.a", next(i for i in ids if i != st.session_state["models.b"]))
pick = st.columns(3)
dataset = pick[0].selectbox("Dataset", names, key="models.dataset")
a = pick[1].selectbox("Model A", ids, format_func=lambda i: by_id[i].label, key="models.a")
b = pick[2].selectbox("Model B", ids, format_func=lambda i: by_id[i].label, key="models.b")
if a == b:
    st.caption("Pick two different models.")
    st.stop()

total = next(s["n_pairs"] for s in services.dataset_summaries(url) if s["name"] == dataset)
coverage = {name: services.scored_count(url, dataset, m) for name, m in (("A", a), ("B", b))}
for name, model_id in (("A", a), ("B", b)):
    if coverage[name] == total:
        continue
    shown = mdtext.escape(dataset)
    if coverage[name] == 0:
        st.warning(f"Model {name} has not scored {shown} yet.")  # safe: the name escaped
    else:
        st.info(  # safe: the name escaped
            f"Model {name} has scored {coverage[name]:,} of the {total:,} pairs of {shown}."
        )
    if (
        not demo
        and auth.is_admin()
        and st.button(f"Score all of {shown} with model {name}", key=f"models.score.{name}")
    ):
        job_id = services.start_score_job(url, dataset, model_id)
        st.session_state["train.flash"] = f"Started scoring job {job_id}."
        st.session_state["train.job"] = job_id
        st.switch_page("app_pages/train.py")
if 0 in coverage.values():
    st.stop()

comparison = scoring.compare_models(url, dataset, a, b)
overall = comparison.overall
if overall is None:
    st.warning("The two models have no scored pair with a preference label in common.")
    st.stop()
# The note is fixed words, counts and the letters A/B: no text from the data.
note = scoring.sample_note(comparison)
if demo and comparison.in_sample:  # a demo shows no figures on training data
    st.info("One of these models trained on this dataset's pairs: pick another dataset.")
    st.stop()
if demo:
    st.caption(note)  # safe: fixed words and counts
elif comparison.in_sample:
    st.warning(note, icon=":material/warning:")  # safe: fixed words and counts
elif not comparison.held_out:
    st.info(note, icon=":material/info:")  # safe: fixed words and counts
else:
    st.caption(note)  # safe: fixed words and counts
top = st.columns(4)
top[0].metric("Pairs compared", f"{comparison.n:,}")
top[1].metric("Accuracy A", f"{overall.a:.1%}")
top[2].metric(
    "Accuracy B",
    f"{overall.b:.1%}",
    delta=f"{100 * (overall.b - overall.a):+.1f} points"
    + (" (in sample)" if comparison.in_sample else ""),
    # A gain on pairs a model trained on is no gain: no green for it.
    delta_color="off" if comparison.in_sample else "normal",
)
top[3].metric("Length baseline", f"{overall.length_baseline:.1%}")
st.caption(  # safe: the dataset's name escaped
    "Accuracy against the current labels (annotators' corrections applied; ties and discards "
    f"left out). A scored {services.plural(comparison.n_a, 'pair')} of "
    f"{mdtext.escape(dataset)}, B {comparison.n_b:,}."
)
model_names = (f"A: {comparison.a_name}", f"B: {comparison.b_name}")
st.plotly_chart(
    charts.accuracy_by_source(comparison.accuracy_rows(model_names)),
    key="models.accuracy",
    width="stretch",
)
st.plotly_chart(charts.margin_shift_scatter(comparison.pairs), key="models.shift", width="stretch")

# --- sentence credit against annotators' tags -------------------------------------------------
st.subheader("Sentence credit against annotators' tags")
credit = {
    name: services.tag_credit(url, dataset, m, by_id[m].head) for name, m in (("A", a), ("B", b))
}
if credit["A"]["tagged"] == 0:
    st.caption(
        "No sentence of this dataset is tagged yet: tag sentences good or bad on the Annotate "
        "page to see whether each model's sentence rewards find the bad ones."
    )
elif any(c["report"] is None for c in credit.values()):
    st.caption("A model has not scored the tagged pairs yet.")
else:
    overall = credit["A"]["report"]["overall"]
    figures = ("A AUROC", "A pointing", "B AUROC", "B pointing")
    st.dataframe(  # "—" for a figure a response set cannot give (AUROC without both tags)
        [
            {k: widgets.number_cell(v, ".3f") if k in figures else v for k, v in row.items()}
            for row in services.credit_rows({name: c["report"] for name, c in credit.items()})
        ],
        hide_index=True,
        width="stretch",
    )
    counts = overall["sentences"]
    st.caption(
        f"{services.plural(overall['responses'], 'tagged response')} "
        f"({counts['good']} sentences tagged good, {counts['bad']} bad; "
        f"{overall['eligible']} with both, which pointing uses). AUROC: the chance a good "
        "sentence ranks above a bad one (0.5 is chance). Pointing: the share of responses whose "
        "lowest-ranked sentence is a bad one. The rows below the model's are baselines: a model "
        "that localizes credit beats them. Same report as srm eval --steps on "
        "srm export --format prm."
    )

flipped = scoring.flipped_rows(comparison)
st.subheader(f"Flipped verdicts ({len(flipped)})")  # safe: a count
if flipped:
    st.dataframe(
        flipped,
        hide_index=True,
        width="stretch",
        column_config={
            "A margin for the label": st.column_config.NumberColumn(format="%+.3f"),
            "B margin for the label": st.column_config.NumberColumn(format="%+.3f"),
        },
    )
    st.caption(
        "Margins here point toward the current label: positive when the model prefers the "
        "response the label prefers (for a swapped pair, that is rejected minus chosen)."
    )
else:
    st.caption("No pair changed sides.")

# --- one pair under both models -----------------------------------------------------------------
st.subheader("Sentence rewards under A and B")
choices = [p.id for p in comparison.flipped] or [p.id for p in comparison.pairs]
pair_id = st.selectbox("Pair", choices, key="models.pair")
pair = services.get_pair(url, dataset, pair_id)
record_a = scoring.cached_scores(url, pair, by_id[a])
record_b = scoring.cached_scores(url, pair, by_id[b])
if record_a is None or record_b is None:
    st.caption("One of the models has not scored this pair.")
    st.stop()
cols = st.columns(2)
for col, side in zip(cols, ("chosen", "rejected"), strict=True):
    col.plotly_chart(
        charts.sentence_shift_chart(
            record_a.side(side), record_b.side(side), names=("A", "B"), side=side
        ),
        key=f"models.sentences.{side}",
        width="stretch",
    )
    a_side, b_side = record_a.side(side), record_b.side(side)
    col.caption(
        f"{side}: score {sig3(a_side.score)} under A ({a_side.coverage.describe()}), "
        f"{sig3(b_side.score)} under B ({b_side.coverage.describe()})"
    )
if not demo and st.button("Inspect this pair", key="models.inspect"):
    st.session_state["inspect.target"] = (dataset, pair_id)
    st.switch_page("app_pages/inspect.py")
