"""The Data page under Streamlit's AppTest: import, filters, pagination, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srm.data import load_pairs
from srm.store import label_state, list_datasets, make_sessionmaker, open_store, record_label
from tests.webapp.conftest import rerun
from webapp import filters, services


def test_empty_store_explains_how_to_import(app_store: str, run_page) -> None:
    at = run_page()
    assert "The store is empty" in at.info[0].value
    assert not at.dataframe


def test_lists_the_imported_pairs(filled_store: str, sample_path: Path, run_page) -> None:
    at = run_page()
    assert at.title[0].value == "Preference data"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pairs"] == "50" and metrics["Unlabelled"] == "50"
    assert any("50 matching pairs · showing 25" in c.value for c in at.caption)
    frame = at.dataframe[0].value
    assert len(frame) == 25
    assert frame["id"].iloc[0] == load_pairs(sample_path)[0].id
    # No model has scored them: a dash, never a literal None.
    assert set(frame["margin"]) == {"—"} and "None" not in frame.astype(str).to_numpy()


def test_search_and_pagination(filled_store: str, sample_path: Path, run_page) -> None:
    at = run_page()
    at.number_input(key="data.page").set_value(2)
    rerun(at)
    assert len(at.dataframe[0].value) == 25
    assert at.dataframe[0].value["id"].iloc[0] == load_pairs(sample_path)[25].id

    at.text_input(key="data.search").input("pandalm/")
    rerun(at)
    assert any("15 matching pairs" in c.value for c in at.caption)
    assert at.number_input(key="data.page").value == 1  # reset: page 2 no longer exists
    assert set(at.dataframe[0].value["source"]) == {"pandalm"}


def test_source_and_label_filters(filled_store: str, sample_path: Path, run_page) -> None:
    pairs = load_pairs(sample_path)
    engine = open_store(filled_store)
    with make_sessionmaker(engine).begin() as s:
        from srm.store import get_pair

        pair = get_pair(s, "sample", pairs[4].id)
        record_label(s, pair.id, "ana", "swap", expected_event_id=label_state(s, pair.id).event_id)
    at = run_page()
    assert {m.label: m.value for m in at.metric}["Swap"] == "1"
    assert at.selectbox(key="data.label").options == list(filters.LABEL_STATUSES)
    at.selectbox(key="data.label").set_value("swap")
    rerun(at)
    frame = at.dataframe[0].value
    assert list(frame["id"]) == [pairs[4].id] and list(frame["label"]) == ["swap"]

    at.selectbox(key="data.label").set_value("any")
    at.selectbox(key="data.source").set_value("pandalm")
    rerun(at)
    assert set(at.dataframe[0].value["source"]) == {"pandalm"}


def test_import_reports_every_problem_and_writes_nothing(
    app_store: str, tmp_path: Path, run_page, monkeypatch
) -> None:
    monkeypatch.setenv("SRM_IMPORT_ROOTS", str(tmp_path))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})
        + "\n"
        + json.dumps({"prompt": "p", "chosen": ""})
        + "\n"
    )
    at = run_page()
    at.text_input(key="data.import_path").input(str(bad))
    at.button(key="data.import_file").click()
    rerun(at)
    assert "nothing was imported" in at.error[0].value
    problems = at.dataframe[0].value
    assert set(problems["where"]) == {"line 2"}
    assert "rejected" in set(problems["field"])
    assert "The store is empty" in at.info[0].value  # nothing half-written


def test_import_from_a_path_then_export_the_corrections(
    app_store: str, sample_path: Path, run_page
) -> None:
    at = run_page()
    at.text_input(key="data.import_name").input("mine")
    at.text_input(key="data.import_path").input(str(sample_path))
    at.button(key="data.import_file").click()
    rerun(at)
    assert "Imported 50 new pairs into dataset **mine**" in at.success[0].value
    at.selectbox(key="data.dataset").set_value("mine")
    rerun(at)
    at.button(key="data.export").click()
    rerun(at)
    assert any("50 of 50 pairs: 50 unlabelled" in c.value for c in at.caption)
    assert at.download_button(key="data.download") is not None


def test_an_import_scores_the_new_pairs_as_a_job(app_store: str, launched, run_page) -> None:
    from srm.store import TrainingJob, get_active_model

    at = import_path(run_page, "data/sample_50.jsonl")
    assert "Scoring them with the active model (job 1)" in at.success[0].value
    with make_sessionmaker(open_store(app_store))() as s:
        job = s.get(TrainingJob, launched[0])
        active = get_active_model(s)
        assert (job.kind, job.status, job.dataset.name) == ("score", "queued", "sample_50")
        assert job.model_id == active.id
    again = import_path(run_page, "data/sample_50.jsonl")  # nothing new: nothing to score
    assert "Scoring" not in again.success[0].value and launched == [1]


def test_a_nul_byte_in_an_import_path_is_a_clear_error(app_store: str, run_page) -> None:
    """Typed into the app, where no shell stops it: one line, not a traceback."""
    at = import_path(run_page, "data/sample\x00.jsonl")
    assert not at.exception
    assert "the path contains a NUL character" in at.error[0].value
    assert "The store is empty" in at.info[0].value


def import_path(run_page, path: str):
    at = run_page()
    at.text_input(key="data.import_path").input(path)
    at.button(key="data.import_file").click()
    return rerun(at)


def datasets(db_url: str) -> list[str]:
    with make_sessionmaker(open_store(db_url))() as s:
        return [d.name for d in list_datasets(s)]


def test_a_relative_path_under_the_project_data_folder_imports(app_store, run_page) -> None:
    at = import_path(run_page, "data/sample_50.jsonl")
    assert "Imported 50 new pairs into dataset **sample\\_50**" in at.success[0].value


@pytest.mark.parametrize("exists", [True, False])
def test_a_path_outside_the_import_folders_is_refused_unread(
    app_store, tmp_path: Path, run_page, exists: bool
) -> None:
    secret = tmp_path / "secret.csv"
    if exists:  # a CSV with the columns a pair needs would have imported before
        secret.write_text("prompt,chosen,rejected\nTOP-SECRET,a,b\n")
    at = import_path(run_page, str(secret))
    [error] = [e.value for e in at.error]
    # The same words whether or not the file exists, naming the folders it may come from.
    assert "the app imports only from" in error and "no such file" not in error
    assert "TOP\\-SECRET" not in error and "prompt" not in error
    assert datasets(app_store) == []


def test_a_symbolic_link_out_of_an_import_folder_is_refused(
    app_store, tmp_path: Path, run_page, monkeypatch
) -> None:
    root, outside = tmp_path / "imports", tmp_path / "elsewhere.jsonl"
    root.mkdir()
    outside.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    (root / "link.jsonl").symlink_to(outside)
    monkeypatch.setenv("SRM_IMPORT_ROOTS", str(root))
    at = import_path(run_page, str(root / "link.jsonl"))
    assert "the app imports only from" in at.error[0].value
    at = import_path(run_page, str(root / ".." / "elsewhere.jsonl"))
    assert "the app imports only from" in at.error[0].value
    assert datasets(app_store) == []


def test_an_empty_import_roots_setting_switches_path_imports_off(
    app_store, sample_path: Path, run_page, monkeypatch
) -> None:
    monkeypatch.setenv("SRM_IMPORT_ROOTS", "")
    at = import_path(run_page, str(sample_path))
    assert "importing by path is switched off" in at.error[0].value
    assert datasets(app_store) == []


def test_upload_problems_name_the_uploaded_file_not_the_server_path(app_store, run_page) -> None:
    at = run_page()
    at.file_uploader(key="data.upload").set_value(
        ("mine.jsonl", b'{"prompt": "p"}\n', "text/plain")
    )
    at.button(key="data.import_upload").click()
    rerun(at)
    assert set(at.dataframe[0].value["file"]) == {"mine.jsonl"}


def test_open_in_inspect_switches_page(filled_store: str, sample_path: Path, run_page) -> None:
    pairs = load_pairs(sample_path)
    at = run_page()
    at.selectbox(key="data.pair").set_value(pairs[2].id)
    at.button(key="data.open").click()
    rerun(at)
    assert at.title[0].value == "Inspect a pair"
    assert at.selectbox(key="inspect.pair_id").value == pairs[2].id


def test_a_password_in_the_store_url_is_never_shown() -> None:
    shown = services.display_url("postgresql+psycopg://ana:s3cret@db.example/srm")
    assert "s3cret" not in shown and shown.startswith("postgresql+psycopg://ana:")


def test_an_upload_the_store_cannot_hold_lists_the_problem_not_a_traceback(
    app_store: str, run_page
) -> None:
    """A lone surrogate used to pass validation and fail at insert, showing a traceback with
    server paths; the page shows the same message as srm import."""
    at = run_page()
    record = b'{"prompt": "Q?", "chosen": "Good \\ud800.", "rejected": "Bad."}\n'
    at.file_uploader(key="data.upload").upload("bait.jsonl", record)
    at.button(key="data.import_upload").click()
    rerun(at)
    assert "nothing was imported" in at.error[0].value
    [problem] = at.dataframe[0].value.to_dict("records")
    assert problem == {
        "file": problem["file"],
        "where": "line 1",
        "field": "chosen",
        "problem": "contains a lone surrogate (\\ud800) at character 6, which is not valid "
        "Unicode; a character outside the basic plane is written as a pair of escapes "
        "(\\ud83d\\ude00), never one alone",
    }
    assert problem["file"].endswith("bait.jsonl")
    assert "The store is empty" in at.info[0].value


def test_an_import_past_the_scoring_job_limit_is_kept_and_says_why_it_is_not_scored(
    app_store: str, launched, run_page, monkeypatch
) -> None:
    """Every upload's import started a local score job, with no limit on how many ran."""
    monkeypatch.setenv("SRM_MAX_LOCAL_SCORE_JOBS", "1")
    first = import_path(run_page, "data/sample_50.jsonl")
    assert "Scoring them with the active model (job 1)" in first.success[0].value
    at = run_page()
    pair = {"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."}
    at.file_uploader(key="data.upload").upload("more.jsonl", (json.dumps(pair) + "\n").encode())
    at.button(key="data.import_upload").click()
    rerun(at)
    message = at.success[0].value
    assert message.startswith("Imported 1 new pairs into dataset **more**")
    assert "Not scored yet: this machine already has 1 scoring job" in message  # escaped after
    assert launched == [1] and datasets(app_store) == ["more", "sample_50"]
