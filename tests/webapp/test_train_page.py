"""The Train page: a job started from the form is recorded in the store and launched (the
subprocess is patched out here; the browser test runs a real one), cancelled, and listed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from srm.backbones import NAMED_BACKBONES
from srm.config import HEADS, ModelConfig, TrainConfig, field_docs
from srm.data import load_pairs
from srm.jobs import create_score_job
from srm.store import Model, TrainingJob, make_sessionmaker, open_store
from tests.conftest import SAMPLE
from tests.webapp.conftest import fill, rerun
from webapp import job_views

START = "FormSubmitter:train.form-Start training"


@pytest.fixture
def launched(monkeypatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr("srm.jobs.launch", lambda url, job_id: calls.append((url, job_id)) or 0)
    return calls


def jobs(db_url: str) -> list[TrainingJob]:
    with make_sessionmaker(open_store(db_url))() as s:
        rows = list(s.scalars(select(TrainingJob).order_by(TrainingJob.id)))
        s.expunge_all()
        return rows


def from_the_backbone(at):
    """The form set to train new heads on a backbone (the default continues the active model)."""
    at.radio(key="train.start_from").set_value("the backbone")
    return rerun(at)


def test_start_a_training_job(filled_store: str, launched, run_page) -> None:
    at = from_the_backbone(run_page("train"))
    at.selectbox(key="train.backbone").set_value("tiny")
    at.selectbox(key="train.head").set_value("token")
    at.number_input(key="train.steps").set_value(7)
    at.selectbox(key="train.device").set_value("cpu")
    at.button(key="FormSubmitter:train.form-Start training").click()
    rerun(at)
    [job] = jobs(filled_store)
    assert launched == [(filled_store, job.id)]
    assert (job.kind, job.status) == ("train", "queued")
    assert job.config["model"]["backbone"] == "tiny" and job.config["model"]["head"] == "token"
    assert job.config["max_steps"] == 7 and job.config["device"] == "cpu"
    assert job.config["score_after"] is True
    assert job.config["parent_model_id"] is not None  # the active (bundled) model
    assert f"Started training job {job.id}" in at.success[0].value
    history = at.dataframe[0].value
    assert list(history["job"]) == [job.id] and list(history["status"]) == ["queued"]


def test_the_form_starts_at_the_configs_defaults(filled_store, launched, run_page) -> None:
    """One rule: a job started from the backbone with the form as it opens trains as `srm
    train` would."""
    at = from_the_backbone(run_page("train"))
    assert at.selectbox(key="train.backbone").options == [*NAMED_BACKBONES, "other…"]
    assert "smollm2" in at.selectbox(key="train.backbone").options
    assert at.selectbox(key="train.head").options == list(HEADS)
    at.button(key="FormSubmitter:train.form-Start training").click()
    rerun(at)
    [job] = jobs(filled_store)
    defaults = TrainConfig().to_dict()
    fields = ("lr", "lora_r", "batch_size", "finetune", "device", "mixed_precision")
    for field in (*fields, "gradient_checkpointing"):
        assert job.config[field] == defaults[field], field
    for field in ("backbone", "head", "max_length"):
        assert job.config["model"][field] == defaults["model"][field], field
    assert any("Trains on 50 pairs of sample" in c.value for c in at.caption)


def test_the_forms_limits_are_the_configs(filled_store, launched, run_page) -> None:
    """The number inputs take what the config takes (field_bounds), not limits of their own:
    the config's shortest sequence (8 tokens) is on the form, and nothing below it."""
    at = from_the_backbone(run_page("train"))
    limits = {
        key: (at.number_input(key=f"train.{key}").min, at.number_input(key=f"train.{key}").max)
        for key in ("steps", "batch_size", "max_length", "lora_r")
    }
    assert limits == {
        "steps": (1, None),
        "batch_size": (1, None),
        "max_length": (ModelConfig.model_fields["max_length"].metadata[0].ge, None),
        "lora_r": (1, None),
    }
    assert limits["max_length"][0] == 8
    assert 0 < at.number_input(key="train.lr").min < 1e-300
    at.number_input(key="train.max_length").set_value(8)
    at.number_input(key="train.steps").set_value(2)
    at.button(key=START).click()
    rerun(at)
    [job] = jobs(filled_store)
    assert job.config["model"]["max_length"] == 8


def test_precision_and_gradient_checkpointing_reach_the_job(filled_store, launched, run_page):
    """The settings a large backbone on a GPU needs (docs/multi-gpu.md) are on the form."""
    at = run_page("train")
    assert at.selectbox(key="train.mixed_precision").options == ["no", "fp16", "bf16"]
    at.selectbox(key="train.mixed_precision").set_value("bf16")
    at.checkbox(key="train.gradient_checkpointing").check()
    at.button(key=START).click()
    rerun(at)
    [job] = jobs(filled_store)
    assert (job.config["mixed_precision"], job.config["gradient_checkpointing"]) == ("bf16", True)


def test_a_bad_setting_is_shown_and_nothing_is_queued(filled_store, launched, run_page) -> None:
    at = from_the_backbone(run_page("train"))
    at.selectbox(key="train.backbone").set_value("other…")
    at.text_input(key="train.backbone_other").input("")
    at.button(key="FormSubmitter:train.form-Start training").click()
    rerun(at)
    assert "The job was not started" in at.error[0].value
    assert "backbone" in at.error[0].value
    assert jobs(filled_store) == [] and launched == []


def test_cancel_a_queued_job(filled_store: str, launched, run_page) -> None:
    at = run_page("train")
    at.button(key="FormSubmitter:train.form-Start training").click()
    rerun(at)
    [job] = jobs(filled_store)
    at.button(key=f"train.cancel.{job.id}").click()
    rerun(at)
    [job] = jobs(filled_store)
    assert job.status == "cancelled"
    assert list(at.dataframe[0].value["status"]) == ["cancelled"]


def test_score_the_dataset_as_a_job(filled_store: str, launched, run_page) -> None:
    at = run_page("train")
    assert any("has scored 0 of 50 pairs" in c.value for c in at.caption)
    at.button(key="train.score").click()
    rerun(at)
    [job] = jobs(filled_store)
    assert (job.kind, job.status, job.dataset_id is not None) == ("score", "queued", True)
    assert launched == [(filled_store, job.id)]


def test_a_scoring_job_can_go_to_any_worker(filled_store: str, launched, run_page) -> None:
    at = run_page("train")
    at.radio(key="train.score_run_on").set_value("any worker")
    at.text_input(key="train.score_worker_tag").input("gpu")
    at.button(key="train.score").click()
    rerun(at)
    [job] = jobs(filled_store)
    assert launched == []
    assert (job.kind, job.status, job.launcher, job.worker_tag) == (
        "score",
        "queued",
        "worker",
        "gpu",
    )
    assert f"Queued scoring job {job.id} for any worker." in at.success[0].value


def test_an_audit_says_how_long_it_takes_then_starts_as_a_job(
    filled_store: str, launched, run_page
) -> None:
    from srm.store import Audit

    at = run_page("train")
    at.number_input(key="train.audit_folds").set_value(2)
    at.number_input(key="train.audit_steps").set_value(3)
    at.selectbox(key="train.audit_backbone").set_value("tiny")
    rerun(at)
    estimate = next(i.value for i in at.info if "models of" in i.value)
    assert estimate.startswith("2 models of 3 steps on 50 pairs of sample")
    assert "under a minute" in estimate
    at.button(key="train.audit_start").click()
    rerun(at)
    [job] = jobs(filled_store)
    assert launched == [(filled_store, job.id)]
    with make_sessionmaker(open_store(filled_store))() as s:
        audit = s.get(Audit, job.config["audit_id"])
        assert (job.kind, audit.folds, audit.status) == ("audit", 2, "running")
        assert audit.config["max_steps"] == 3 and audit.config["model"]["backbone"] == "tiny"


def test_a_job_for_any_worker_is_queued_not_launched(filled_store: str, launched, run_page) -> None:
    at = from_the_backbone(run_page("train"))
    assert at.radio(key="train.run_on").options == ["this machine", "any worker"]
    at.selectbox(key="train.backbone").set_value("tiny")
    at.radio(key="train.run_on").set_value("any worker")
    at.text_input(key="train.worker_tag").input("gpu")
    at.button(key="FormSubmitter:train.form-Start training").click()
    rerun(at)
    [job] = jobs(filled_store)
    assert launched == []
    assert (job.status, job.launcher, job.worker_tag, job.pid) == ("queued", "worker", "gpu", None)
    assert f"Queued training job {job.id} for any worker tagged gpu." in at.success[0].value
    assert list(at.dataframe[0].value["where"]) == ["a worker tagged gpu"]
    assert "· on a worker tagged gpu" in at.markdown[0].value


def test_the_submit_command_is_a_choice_once_configured(
    filled_store: str, launched, run_page, monkeypatch, tmp_path
) -> None:
    record = tmp_path / "args"
    monkeypatch.setenv("SRM_SUBMIT_COMMAND", f"sh -c 'echo \"$@\" > {record}' sh {{job_id}}")
    at = run_page("train")
    at.radio(key="train.run_on").set_value("the submit command")
    at.button(key="FormSubmitter:train.form-Start training").click()
    rerun(at)
    [job] = jobs(filled_store)
    assert launched == []
    assert record.read_text() == f"{job.id}\n"
    assert (job.status, job.launcher) == ("queued", "command")


def form_of(at, form_id: str):
    """The form block with this id in the page's element tree."""

    def walk(node):
        proto = getattr(node, "proto", None)
        if type(proto).__name__ == "Block" and proto.WhichOneof("type") == "form":
            if proto.form.form_id == form_id:
                return proto.form
        for child in getattr(node, "children", {}).values():
            found = walk(child)
            if found is not None:
                return found
        return None

    return walk(at._tree)


def test_enter_in_a_field_does_not_start_a_job(filled_store, launched, run_page) -> None:
    """Streamlit submits a form on Enter unless told not to: the browser sends the submit
    when the form says enter_to_submit, so the form must say False (browser test: Enter in
    Steps starts nothing)."""
    at = run_page("train")
    form = form_of(at, "train.form")
    assert form is not None and form.enter_to_submit is False
    at.number_input(key="train.steps").set_value(30)
    rerun(at)
    assert jobs(filled_store) == [] and launched == []
    at.number_input(key="train.steps").set_value(30)
    at.button(key=START).click()  # the button does start it
    rerun(at)
    assert [j.config["max_steps"] for j in jobs(filled_store)] == [30]


def test_job_details_follow_the_newest_job(filled_store, launched, run_page) -> None:
    at = run_page("train")
    at.button(key=START).click()
    rerun(at)
    at.button(key=START).click()
    rerun(at)
    first, second = (j.id for j in jobs(filled_store))
    assert at.selectbox(key="train.detail").value == second  # the job just started
    at.selectbox(key="train.detail").set_value(first)  # an older job picked stays picked ...
    rerun(at)
    rerun(at)
    assert at.selectbox(key="train.detail").value == first
    at.button(key=START).click()  # ... until a job is started here
    rerun(at)
    assert at.selectbox(key="train.detail").value == max(j.id for j in jobs(filled_store))


def test_job_to_show_is_the_newest_unless_an_older_one_was_picked() -> None:
    assert job_views.job_to_show([1], None, None) == 1
    assert job_views.job_to_show([2, 1], 1, 1) == 2  # was following the newest: follows on
    assert job_views.job_to_show([3, 2, 1], 1, 2) == 1  # picked an older job: kept
    assert job_views.job_to_show([3, 2, 1], 3, 3) == 3
    assert job_views.job_to_show([3, 2, 1], 9, 3) == 3  # a job no longer listed


def finish(db_url: str, job_id: int, **fields) -> None:
    with make_sessionmaker(open_store(db_url)).begin() as s:
        job = s.get(TrainingJob, job_id)
        for name, value in {"status": "succeeded", "progress": 1.0, **fields}.items():
            setattr(job, name, value)


def test_a_finished_jobs_curves_stay_in_its_details(filled_store, launched, run_page, tmp_path):
    at = run_page("train")
    at.button(key=START).click()
    rerun(at)
    [job] = jobs(filled_store)
    rows = [{"step": s, "loss": 0.7 - 0.01 * s, "accuracy": 0.5 + 0.01 * s} for s in (1, 2, 3)]
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with make_sessionmaker(open_store(filled_store))() as s:
        parent = job.config["parent_model_id"]
        model_id = s.scalars(select(Model.id)).first()
    finish(filled_store, job.id, config={**job.config, "output_dir": str(out)}, model_id=model_id)
    at = run_page("train")
    assert at.selectbox(key="train.detail").value == job.id
    [chart] = at.get("plotly_chart")
    [loss] = [t for t in json.loads(chart.proto.spec)["data"] if t.get("name") == "train loss"]
    assert loss["x"] == [1, 2, 3]
    assert not [c.value for c in at.caption if c.value.startswith("No training metrics")]
    assert at.success[-1].value == (
        f"Registered model #{model_id}: compare it with its parent, model #{parent}, on the "
        "Models page."
    )


def test_a_scoring_jobs_details_say_what_scoring_did(filled_store, launched, run_page) -> None:
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        run_page("train")  # the app registers its model
        model_id = s.scalars(select(Model.id)).first()
        job_id = create_score_job(s, dataset="sample", model_id=model_id).id
    finish(filled_store, job_id)
    at = run_page("train")
    shown = [a.value for a in at.success]
    assert (
        f"Model #{model_id} has scored the dataset: the Inspect and Models pages and the "
        "Annotate queue now read these scores." in shown
    )
    assert not [t for t in shown if "parent" in t or "Registered" in t]
    assert not [b for b in at.button if b.key == "train.to_models"]


# --- also learning from the sentence tags ------------------------------------------------------
def tag_sentences(db_url: str, dataset: str, n_pairs: int) -> None:
    """Tag the first sentence of both responses of the dataset's first ``n_pairs`` pairs
    (good on chosen, bad on rejected): 2 × n_pairs tagged responses."""
    from srm.segment import segment
    from srm.store import Pair, dataset_id, tag_sentence

    with make_sessionmaker(open_store(db_url)).begin() as s:
        query = select(Pair).where(Pair.dataset_id == dataset_id(s, dataset)).order_by(Pair.id)
        for pair in s.scalars(query.limit(n_pairs)):
            for side, tag in (("chosen", "good"), ("rejected", "bad")):
                first = segment(getattr(pair, side))[0]
                tag_sentence(s, pair.id, "ana", side, (first.start, first.end), tag)


def test_a_job_can_also_learn_from_the_sentence_tags(filled_store, launched, run_page) -> None:
    tag_sentences(filled_store, "sample", 6)
    at = run_page("train")
    box = at.checkbox(key="train.sentence_tags")
    assert box.label == "Also learn from the sentence tags (12 tagged responses)"
    assert not box.disabled and box.value is False
    assert not [n for n in at.number_input if n.key == "train.step_weight"]
    box.check()
    rerun(at)
    # Ticked: the weight of the sentence-label term, with the config's own words as help.
    weight = at.number_input(key="train.step_weight")
    assert weight.value == TrainConfig().step_weight
    assert weight.help == field_docs(TrainConfig)["step_weight"]
    assert any(c.value.endswith("Also the sentence tags of 12 responses.") for c in at.caption)
    weight.set_value(2.5)
    at.button(key=START).click()
    rerun(at)
    [job] = jobs(filled_store)
    assert job.config["sentence_tags"] is True
    assert job.config["step_weight"] == 2.5


def test_without_tags_the_box_is_off_and_says_why(filled_store, launched, run_page) -> None:
    fill(filled_store, load_pairs(SAMPLE)[:3], "untagged")
    tag_sentences(filled_store, "sample", 1)
    at = run_page("train")
    at.checkbox(key="train.sentence_tags").check()
    rerun(at)
    at.selectbox(key="train.dataset").set_value("untagged")
    rerun(at)
    box = at.checkbox(key="train.sentence_tags")
    assert box.label == "Also learn from the sentence tags (no tagged responses)"
    assert box.disabled and box.value is False
    assert "tag sentences on the Annotate page" in box.help
    assert any("No sentence of this dataset is tagged" in c.value for c in at.caption)
    assert not [n for n in at.number_input if n.key == "train.step_weight"]
    at.button(key=START).click()
    rerun(at)
    [job] = jobs(filled_store)
    assert job.config["sentence_tags"] is False
    assert job.config["step_weight"] == TrainConfig().step_weight


# --- issue 25: retraining continues the model; a stopped job resumes; the form in the URL ------
def test_the_form_continues_the_active_model_by_default(
    filled_store: str, launched, run_page, tiny_model
) -> None:
    """As the form opens, the job starts from the active model's weights and architecture
    (the parent is then what it says); from the backbone, the architecture fields return."""
    at = run_page("train")
    assert at.radio(key="train.start_from").value == "the active model"
    assert at.radio(key="train.start_from").options == ["the active model", "the backbone"]
    assert [s.key for s in at.selectbox if s.key in ("train.head", "train.backbone")] == []
    continues = r"Continues \#1 tiny \(sentence head on tiny\): the new model starts from"
    assert any(c.value.startswith(continues) for c in at.caption)
    at.number_input(key="train.steps").set_value(3)
    at.number_input(key="train.max_length").set_value(48)
    at.button(key=START).click()
    rerun(at)
    [job] = jobs(filled_store)
    assert job.config["init_from"] == str(tiny_model.resolve())
    assert job.config["parent_model_id"] == 1
    assert job.config["model"]["backbone"] == "tiny" and job.config["model"]["d"] == 16
    assert (job.config["model"]["max_length"], job.config["max_steps"]) == (48, 3)
    assert launched == [(filled_store, job.id)]
    from_the_backbone(at)
    assert at.selectbox(key="train.backbone").value == TrainConfig().model.backbone


def test_the_form_keeps_its_values_in_the_url(filled_store: str, launched, run_page) -> None:
    """A reload is a new session: the form's values come back from the URL."""
    at = from_the_backbone(run_page("train"))
    at.selectbox(key="train.head").set_value("token")
    at.number_input(key="train.steps").set_value(7)
    at.number_input(key="train.lr").set_value(0.001)
    at.checkbox(key="train.score_after").uncheck()
    at.button(key=START).click()
    rerun(at)
    params = {k: at.query_params[k] for k in at.query_params}
    assert params == {
        "start_from": "the backbone",
        "head": "token",
        "steps": "7",
        "lr": "0.001",
        "score_after": "0",
    }
    again = run_page("train", query=params)
    assert again.radio(key="train.start_from").value == "the backbone"
    assert again.selectbox(key="train.head").value == "token"
    assert (
        again.number_input(key="train.steps").value,
        again.number_input(key="train.lr").value,
    ) == (7, 0.001)
    assert again.checkbox(key="train.score_after").value is False
    # The URL is input: values that are not the field's are dropped, the defaults stay.
    odd = run_page("train", query={"steps": "-4", "head": "<img>", "lr": "nan", "start_from": "x"})
    assert odd.number_input(key="train.steps").value == 200
    assert odd.radio(key="train.start_from").value == "the active model"


def test_a_cancelled_job_with_a_checkpoint_resumes_from_the_page(
    filled_store: str, launched, run_page
) -> None:
    at = run_page("train")
    at.button(key=START).click()
    rerun(at)
    [job] = jobs(filled_store)
    at.button(key=f"train.cancel.{job.id}").click()
    rerun(at)
    assert [b.key for b in at.button if b.key == f"train.resume.{job.id}"] == []  # no checkpoint
    step = Path(job.config["output_dir"]) / "checkpoints" / "step-000003"
    step.mkdir(parents=True)  # what a cancel during training leaves
    rerun(at)
    at.button(key=f"train.resume.{job.id}").click()
    rerun(at)
    stopped, resumed = jobs(filled_store)
    assert (stopped.id, stopped.status) == (job.id, "cancelled")
    assert (resumed.status, resumed.config["resumes_job"]) == ("queued", job.id)
    assert resumed.config["resume_from"] == str(step)
    assert launched[-1] == (filled_store, resumed.id)
    assert f"Resumed job {job.id} as job {resumed.id}." in at.success[0].value
    assert [b.key for b in at.button if b.key == f"train.resume.{job.id}"] == []  # resumed once
