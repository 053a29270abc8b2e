"""Train: retrain on the corrected labels, score datasets, and follow the jobs as they run."""

import streamlit as st

from srm.backbones import NAMED, NAMED_BACKBONES
from srm.config import (
    DEVICES,
    FINETUNE_MODES,
    HEADS,
    PRECISIONS,
    ModelConfig,
    TrainConfig,
    field_docs,
)
from srm.store import LabelCounts
from webapp import auth, browser_scripts, charts, form_memory, job_views, mdtext, services, widgets
from webapp.form_memory import Field

#: The form's defaults are the config's (one rule: a job from the form trains as `srm train`).
DEFAULTS = TrainConfig()
TRAIN_HELP, MODEL_HELP = field_docs(TrainConfig), field_docs(ModelConfig)
OTHER_BACKBONE = "other…"
#: Steps of a run started here: the config's default, one epoch, can take hours on a CPU.
DEFAULT_STEPS = 200
WITH_TAGS = (
    "Annotators' good/bad sentence tags as sentence labels, beside the pairs: each labelled "
    "sentence's reward is trained towards its label, weighted by the sentence-label weight."
)
CONTINUE, FROM_BACKBONE = "the active model", "the backbone"
START_FROM_HELP = (
    "The active model: the new model starts from its weights and keeps its architecture "
    "(head, backbone, sizes), so it keeps what the active model learned: retraining continues "
    "it. The backbone: new heads on a plain backbone, learning from scratch."
)
NO_TAGS = (
    "No sentence of this dataset is tagged good or bad yet: tag sentences on the Annotate "
    "page, and a job can learn from them too."
)


def choose(column, label: str, choices: tuple[str, ...], default: str, key: str, help: str) -> str:
    """A selectbox of a config field's choices, on the config's default."""
    return column.selectbox(label, choices, index=choices.index(default), key=key, help=help)


def form_fields(
    names: list[str], run_on: list[str], continuable: bool, parent_finetune: str | None
) -> tuple[Field, ...]:
    """The form's remembered fields (:mod:`form_memory`): their keys, defaults and bounds, as
    the widgets below take them."""
    return (
        Field(
            "train.start_from",
            CONTINUE if continuable else FROM_BACKBONE,
            (CONTINUE, FROM_BACKBONE),
        ),
        Field("train.dataset", names[0], tuple(names)),
        Field("train.sentence_tags", False),
        Field.of_config("train.step_weight", TrainConfig, "step_weight"),
        Field("train.head", DEFAULTS.model.head, HEADS),
        Field("train.backbone", DEFAULTS.model.backbone, (*NAMED_BACKBONES, OTHER_BACKBONE)),
        Field("train.backbone_other", ""),
        Field.of_config("train.steps", TrainConfig, "max_steps", DEFAULT_STEPS),
        Field("train.finetune", DEFAULTS.finetune, FINETUNE_MODES),
        Field("train.continue_finetune", parent_finetune or DEFAULTS.finetune, FINETUNE_MODES),
        Field("train.device", DEFAULTS.device, DEVICES),
        Field.of_config("train.batch_size", TrainConfig, "batch_size"),
        Field.of_config("train.max_length", ModelConfig, "max_length"),
        Field.of_config("train.lr", TrainConfig, "lr"),
        Field.of_config("train.lora_r", TrainConfig, "lora_r"),
        Field("train.mixed_precision", DEFAULTS.mixed_precision, PRECISIONS),
        Field("train.gradient_checkpointing", DEFAULTS.gradient_checkpointing),
        Field("train.run_on", run_on[0], tuple(run_on)),
        Field("train.worker_tag", ""),
        Field("train.score_after", True),
    )


url = services.store_url()
st.title("Train")

summaries = widgets.require_datasets(url)
names = [s["name"] for s in summaries]
admin = auth.is_admin()
if not admin:
    st.info("Starting and cancelling jobs needs the admin role; you can follow them here.")
flash = st.session_state.pop("train.flash", None)
if flash:
    st.success(flash)  # fixed words and job numbers
model = services.active_model(url)
continuable = services.continuable(model)
FIELDS = form_fields(
    names,
    services.run_on_choices(),
    continuable,
    services.trained_finetune(model) if continuable else None,
)
# What the form opens with in this session: the URL's values (a reload keeps the form), else
# the defaults. Read once: a widget's default must not change while its key lives.
initial = st.session_state.setdefault(
    "train.initial", form_memory.restore(FIELDS, st.query_params.to_dict())
)
start = {f.key: initial.get(f.key, f.default) for f in FIELDS}


def index(key: str) -> int:
    field = next(f for f in FIELDS if f.key == key)
    return field.choices.index(start[key])


def number(column, label: str, key: str, help: str, **kwargs):
    """A number input on remembered field ``key``, within its bounds (the config's)."""
    field = next(f for f in FIELDS if f.key == key)
    return column.number_input(
        label, field.low, field.high, start[key], key=key, help=help, **kwargs
    )


# The jobs running now, above the form: after Start, the new job's progress is on screen.
@st.fragment(run_every=2)
def running_panel() -> None:
    running_jobs(services.jobs(url))


def running_jobs(jobs: list[services.JobRow]) -> None:
    live = [j for j in jobs if not j.finished]
    for job in live:
        with st.container(border=True, key=f"train-running-{job.id}"):
            head_col, cancel_col = st.columns([5, 1])
            dataset_name = mdtext.escape(job.dataset or "—")
            head_col.markdown(  # safe: the dataset and the place are escaped
                f"**Job {job.id}** · {job.kind} · {dataset_name} · {job.status} "
                f"· on {mdtext.escape(job.place)}"
            )
            cancel_col.button(
                "Cancel",
                key=f"train.cancel.{job.id}",
                on_click=services.cancel_job,
                args=(url, job.id),
                icon=":material/stop:",
                disabled=not admin,
            )
            st.progress(
                min(max(job.progress, 0.0), 1.0), text=mdtext.escape(job.message or job.status)
            )
    watched = st.session_state.get("train.job")
    done = next((j for j in jobs if j.id == watched and j.finished), None)
    if done is not None:
        st.session_state["train.job"] = None
        st.session_state["train.flash"] = f"Job {done.id} {done.status}."
        st.session_state["train.detail"] = done.id  # its details, not an older job's
        st.rerun(scope="app")  # refresh the model lists


running_panel()
scroll_to = st.session_state.pop("train.scroll_to", None)
if scroll_to is not None:  # a job just started from the form below: its progress on screen
    browser_scripts.scroll_into_view(f"train-running-{scroll_to}")

# --- a new training job -----------------------------------------------------------------------
# The dataset and "also learn from the sentence tags" sit above the form: the counts and the
# weight field follow them at once, which a form's widgets (read only on submit) would not.
# Enter in a field does not submit: a job starts only from the button (a run can take hours).
with st.container(border=True):
    st.subheader("Retrain on the corrected labels")
    if continuable:
        start_from = st.radio(
            "Start from",
            (CONTINUE, FROM_BACKBONE),
            index=index("train.start_from"),
            key="train.start_from",
            horizontal=True,
            help=START_FROM_HELP,
        )
    else:
        start_from = FROM_BACKBONE
    continuing = start_from == CONTINUE
    top = st.columns([1, 2, 1], vertical_alignment="bottom")
    dataset = top[0].selectbox("Dataset", names, index=index("train.dataset"), key="train.dataset")
    tagged = services.tagged_response_count(url, dataset)
    if not tagged:  # nothing to learn from: the box is off, and the caption says why
        st.session_state["train.sentence_tags"] = False
    sentence_tags = top[1].checkbox(
        f"Also learn from the sentence tags ({services.plural(tagged, 'tagged response')})"
        if tagged
        else "Also learn from the sentence tags (no tagged responses)",
        start["train.sentence_tags"],
        key="train.sentence_tags",
        disabled=not tagged,
        help=WITH_TAGS if tagged else NO_TAGS,
    )
    step_weight = DEFAULTS.step_weight
    if sentence_tags:
        weight_help = TRAIN_HELP["step_weight"]
        step_weight = number(
            top[2], "Sentence-label weight", "train.step_weight", weight_help, step=0.1
        )
    counts = LabelCounts.from_summary(services.label_summary(url, dataset))
    also = f" Also the sentence tags of {services.plural(tagged, 'response')}." * sentence_tags
    also += f" {NO_TAGS}" * (not tagged)
    st.caption(  # safe: the dataset name escaped, the rest numbers and fixed words
        f"Trains on {counts.exported:,} pairs of {mdtext.escape(dataset)}: "
        f"{counts.swap:,} swapped by annotators; {counts.left_out:,} ties and discards left out."
        + also
    )
    if continuing and model is not None:
        st.caption(  # safe: the label is escaped
            f"Continues {mdtext.escape(model.label)}: the new model starts from its weights, "
            "with its head, backbone and sizes, and is its child."
        )
    elif model is not None and model.id is not None:
        st.caption(  # safe: the label is escaped
            f"New heads on the backbone; the new model is still listed as a child of "
            f"{mdtext.escape(model.label)}, the active model."
        )
    with st.form("train.form", border=False, enter_to_submit=False):
        first = st.columns(4)
        head = backbone = other = None
        if not continuing:  # a continued model keeps its architecture
            head = first[0].selectbox(
                "Head", HEADS, index=index("train.head"), key="train.head", help=MODEL_HELP["head"]
            )
            backbone = first[1].selectbox(
                "Backbone",
                (*NAMED_BACKBONES, OTHER_BACKBONE),
                index=index("train.backbone"),
                key="train.backbone",
                help=" ".join(f"{b.name}: {b.description}." for b in NAMED.values())
                + f" {OTHER_BACKBONE}: a local path or cached Hugging Face name.",
            )
            other = first[2].text_input(
                "Other backbone",
                start["train.backbone_other"],
                key="train.backbone_other",
                placeholder="path or name",
            )
        steps = number(first[3], "Steps", "train.steps", TRAIN_HELP["max_steps"])
        second = st.columns(4)
        # Each way of starting has its own fine-tuning field: a continued model starts with
        # the recipe it was trained with (LoRA cannot continue trained backbone weights).
        finetune_key = "train.continue_finetune" if continuing else "train.finetune"
        finetune = choose(
            second[0],
            "Fine-tuning",
            FINETUNE_MODES,
            start[finetune_key],
            finetune_key,
            TRAIN_HELP["finetune"],
        )
        device = choose(
            second[1],
            "Device",
            DEVICES,
            start["train.device"],
            "train.device",
            TRAIN_HELP["device"],
        )
        batch_size = number(
            second[2], "Pairs per batch", "train.batch_size", TRAIN_HELP["batch_size"]
        )
        max_length = number(
            second[3], "Tokens per sequence", "train.max_length", MODEL_HELP["max_length"]
        )
        third = st.columns(4)
        lr = number(third[0], "Learning rate", "train.lr", TRAIN_HELP["lr"], format="%.0e")
        lora_r = number(third[1], "LoRA rank", "train.lora_r", TRAIN_HELP["lora_r"])
        precision = choose(
            third[2],
            "Mixed precision",
            PRECISIONS,
            start["train.mixed_precision"],
            "train.mixed_precision",
            TRAIN_HELP["mixed_precision"],
        )
        checkpointing = third[3].checkbox(
            "Gradient checkpointing",
            start["train.gradient_checkpointing"],
            key="train.gradient_checkpointing",
            help=TRAIN_HELP["gradient_checkpointing"],
        )
        fourth = st.columns([2, 1, 1])
        run_on = fourth[0].radio(
            "Run on",
            services.run_on_choices(),
            index=index("train.run_on"),
            key="train.run_on",
            horizontal=True,
            help="This machine: a process of the app's machine. Any worker: queued for an "
            "`srm worker` on any machine that reaches the store (a GPU box). See "
            "docs/scaling.md.",
        )
        worker_tag = fourth[1].text_input(
            "Worker tag",
            start["train.worker_tag"],
            key="train.worker_tag",
            placeholder="any",
            help="With any worker: only a worker started with --tag TAG takes the job.",
        )
        score_after = fourth[2].checkbox(
            "Score the dataset afterwards", start["train.score_after"], key="train.score_after"
        )
        submitted = st.form_submit_button(
            "Start training", type="primary", icon=":material/play_arrow:", disabled=not admin
        )

# The form as it stands, in the URL: a reload opens it so (outer fields at once, the form's
# own on Start, when Streamlit sends them).
remembered = form_memory.remember(FIELDS, st.session_state)
if remembered != st.query_params.to_dict():
    st.query_params.from_dict(remembered)

if submitted:
    if continuing:  # the architecture is the parent's; the input length is the form's
        model_fields = {"max_length": int(max_length)}
    else:
        chosen_backbone = (other or "").strip() if backbone == OTHER_BACKBONE else backbone
        model_fields = {"backbone": chosen_backbone, "head": head, "max_length": int(max_length)}
    config = {
        "model": model_fields,
        "max_steps": int(steps),
        "finetune": finetune,
        "device": device,
        "batch_size": int(batch_size),
        "lr": float(lr),
        "lora_r": int(lora_r),
        "score_after": score_after,
        "mixed_precision": precision,
        "gradient_checkpointing": checkpointing,
    }
    if sentence_tags:
        config["step_weight"] = float(step_weight)
    try:
        tag = worker_tag if run_on == "any worker" else None
        job_id = services.start_train_job(
            url,
            dataset,
            config,
            run_on,
            tag,
            sentence_tags=sentence_tags,
            continue_active=continuing,
        )
    except Exception as err:  # a config error, unknown dataset, or a failed launch: show it
        st.error(f"The job was not started: {mdtext.escape(err)}")  # safe: escaped
    else:
        if run_on == "this machine":
            flash = f"Started training job {job_id}."
        else:  # a tag is letters, digits and -_. (srm.jobs.TAG_PATTERN), escaped all the same
            tagged = f" tagged {mdtext.escape(tag)}" if tag else ""
            flash = f"Queued training job {job_id} for {run_on}{tagged}."
        st.session_state["train.flash"] = flash
        st.session_state["train.scroll_to"] = job_id
        st.session_state["train.job"] = job_id
        st.session_state["train.detail"] = job_id  # its details, not an older job's
        st.rerun()

# --- batch scoring ----------------------------------------------------------------------------
with st.expander("Score a dataset with the active model", icon=":material/speed:"):
    if model is None or model.id is None:
        st.caption("No model in the store yet.")
    else:
        score_dataset = st.selectbox("Dataset", names, key="train.score_dataset")
        have = services.scored_count(url, score_dataset, model.id)
        total = next(s["n_pairs"] for s in summaries if s["name"] == score_dataset)
        st.caption(
            f"{mdtext.escape(model.label)} has scored {have:,} of {total:,} pairs."
        )  # safe: the label is escaped, the rest are numbers
        where = st.columns(2)
        score_run_on = where[0].radio(
            "Run on", services.run_on_choices(), key="train.score_run_on", horizontal=True
        )
        score_tag = where[1].text_input(
            "Worker tag", key="train.score_worker_tag", placeholder="any"
        )
        if st.button(
            "Score all pairs", key="train.score", icon=":material/play_arrow:", disabled=not admin
        ):
            tag = score_tag if score_run_on == "any worker" else None
            job_id = services.start_score_job(url, score_dataset, model.id, score_run_on, tag)
            st.session_state["train.flash"] = (
                f"Started scoring job {job_id}."
                if score_run_on == "this machine"
                else f"Queued scoring job {job_id} for {score_run_on}."  # fixed words
            )
            st.session_state["train.job"] = job_id
            st.session_state["train.detail"] = job_id
            st.rerun()


# --- out-of-fold label audit -----------------------------------------------------------------
with st.expander("Audit labels (out of fold)", icon=":material/fact_check:"):
    audit_dataset = st.selectbox("Dataset", names, key="train.audit_dataset")
    widgets.audit_panel(url, audit_dataset, "train")


# --- jobs: history and details, polled every 2 s (the running ones are above the form) ---------
@st.fragment(run_every=2)
def jobs_panel() -> None:
    history(services.jobs(url))


def history(jobs: list[services.JobRow]) -> None:
    st.subheader("History")
    if not jobs:
        st.caption("No jobs yet.")
        return
    st.dataframe(
        [
            {
                "job": j.id,
                "kind": j.kind,
                "status": j.status,
                "where": j.place,
                "dataset": j.dataset,
                "progress": j.progress,
                "model": j.model_id,
                "message": j.message,
                "created (UTC)": j.created,
            }
            for j in jobs
        ],
        hide_index=True,
        width="stretch",
        column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
    )
    ids = [j.id for j in jobs]
    # The newest job unless another was picked; a job started or just finished here is shown.
    st.session_state["train.detail"] = job_views.job_to_show(
        ids, st.session_state.get("train.detail"), st.session_state.get("train.newest")
    )
    st.session_state["train.newest"] = ids[0]
    picked = st.selectbox("Job details", ids, format_func=lambda i: f"job {i}", key="train.detail")
    job = next(j for j in jobs if j.id == picked)
    metrics, log = services.job_details(url, job.id)
    if job.error:
        st.error(mdtext.escape(job.error))
    outcome = job_views.job_outcome(job)
    if outcome:
        st.success(outcome)  # fixed words and model numbers
    if job.kind == "train" and job.status == "succeeded" and job.model_id is not None:
        if st.button("Open Models", key="train.to_models", icon=":material/compare_arrows:"):
            st.session_state["models.b"] = job.model_id
            parent = job.config.get("parent_model_id")
            if parent is not None:
                st.session_state["models.a"] = parent
            st.switch_page("app_pages/models.py")
    if admin and services.resumable(url, job):
        if st.button(
            "Resume",
            key=f"train.resume.{job.id}",
            icon=":material/resume:",
            help="A new job that continues this one from its last checkpoint, in its run "
            "directory; this job stays as it is.",
        ):
            try:
                new_id = services.resume_job(url, job.id)
            except Exception as err:  # resumed meanwhile, or a failed launch: say so
                st.error(f"The job was not resumed: {mdtext.escape(err)}")  # safe: escaped
            else:
                st.session_state["train.flash"] = f"Resumed job {job.id} as job {new_id}."
                st.session_state["train.job"] = new_id
                st.session_state["train.scroll_to"] = new_id
                # The picked job counts as the newest one seen: the details follow on to the
                # new job (job_views.job_to_show); the picker itself is drawn already.
                st.session_state["train.newest"] = job.id
                st.rerun(scope="app")
    if job.kind == "train":
        if metrics:
            st.plotly_chart(
                charts.training_curves(metrics), key=f"train.curves.{job.id}", width="stretch"
            )
        else:
            st.caption("No training metrics yet: the curves start at the first logged step.")
    with st.expander("Configuration"):
        st.json(job.config)
    with st.expander("Log"):
        st.code(log or "(empty)", language=None)


jobs_panel()
