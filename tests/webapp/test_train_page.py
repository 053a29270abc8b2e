"""The Train page: a job started from the form is recorded in the store and launched (the
subprocess is patched out here; the browser test runs a real one), cancelled, and listed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from srm.backbones import NAMED_BACKBONES
from srm.config import HEADS, TrainConfig
from srm.store import TrainingJob, make_sessionmaker, open_store
from tests.webapp.conftest import rerun


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


def test_start_a_training_job(filled_store: str, launched, run_page) -> None:
    at = run_page("train")
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
    """One rule: a job started with the form as it opens trains as `srm train` would."""
    at = run_page("train")
    assert at.selectbox(key="train.backbone").options == [*NAMED_BACKBONES, "other…"]
    assert "smollm2" in at.selectbox(key="train.backbone").options
    assert at.selectbox(key="train.head").options == list(HEADS)
    at.button(key="FormSubmitter:train.form-Start training").click()
    rerun(at)
    [job] = jobs(filled_store)
    defaults = TrainConfig().to_dict()
    for field in ("lr", "lora_r", "batch_size", "finetune", "device"):
        assert job.config[field] == defaults[field], field
    for field in ("backbone", "head", "max_length"):
        assert job.config["model"][field] == defaults["model"][field], field
    assert any("Trains on 50 pairs of sample" in c.value for c in at.caption)


def test_a_bad_setting_is_shown_and_nothing_is_queued(filled_store, launched, run_page) -> None:
    at = run_page("train")
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
    at = run_page("train")
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
