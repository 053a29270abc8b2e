"""Signing in and roles (webapp/auth.py): with a password configured nothing shows before the
right one, annotators label but do not train, import by path, edit the guidelines or choose the
active model; an exposed server without a password serves no page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.exceptions import HTTPException
from streamlit import config as st_config
from streamlit.runtime import Runtime
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec
from streamlit.testing.v1 import AppTest

from srm.config import read_config_file
from srm.store import GUIDELINES, get_setting, make_sessionmaker, open_store
from tests.waiting import wait_until_answering
from tests.webapp.conftest import APP, rerun
from webapp import auth

ANNOTATOR_PASSWORD, ADMIN_PASSWORD = "annotators' long secret", "admins' long secret"


@pytest.fixture
def protected(filled_store: str, monkeypatch) -> str:
    monkeypatch.setenv("SRM_APP_PASSWORD", ANNOTATOR_PASSWORD)
    monkeypatch.setenv("SRM_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return filled_store


def signed_in(password: str, page: str | None = None) -> AppTest:
    at = rerun(AppTest.from_file(APP, default_timeout=90))
    at.text_input(key="auth.password").input(password)
    at.button[0].click()  # the form's "Sign in"
    rerun(at)
    if page is not None:
        at.switch_page(f"app_pages/{page}.py")
        rerun(at)
    return at


def test_nothing_shows_before_signing_in(protected) -> None:
    at = rerun(AppTest.from_file(APP, default_timeout=90))
    assert [t.value for t in at.title] == ["SRM Studio"]
    assert not at.dataframe and not at.sidebar.caption  # no data, no store URL
    at.switch_page("app_pages/train.py")
    rerun(at)
    assert [t.value for t in at.title] == ["SRM Studio"]


def test_a_wrong_password_is_refused(protected) -> None:
    at = signed_in("guess")
    assert at.error[0].value == "Wrong password."
    assert [t.value for t in at.title] == ["SRM Studio"]
    assert "auth.password" not in at.session_state  # not kept in the session


def test_an_annotator_labels_but_does_not_administer(protected) -> None:
    at = signed_in(ANNOTATOR_PASSWORD)
    assert at.title[0].value == "Preference data"
    assert any(c.value.endswith("Signed in as annotator") for c in at.sidebar.caption)
    assert not [w for w in at.text_input if w.key == "data.import_path"]  # no import by path
    assert at.file_uploader(key="data.upload") is not None  # uploads are fine

    at.switch_page("app_pages/annotate.py")
    at.query_params["annotator"] = "ana"
    rerun(at)
    assert at.button(key="annotate.keep") is not None
    assert not at.get("popover")  # no "Edit guidelines"

    at.switch_page("app_pages/train.py")
    rerun(at)
    assert "needs the admin role" in at.info[0].value
    [start] = [b for b in at.button if b.label == "Start training"]
    assert start.disabled

    at.switch_page("app_pages/models.py")
    rerun(at)
    assert not [b for b in at.button if b.key == "models.make_active"]


def test_an_admin_may_do_everything(protected) -> None:
    at = signed_in(ADMIN_PASSWORD)
    assert any(c.value.endswith("Signed in as admin") for c in at.sidebar.caption)
    assert at.text_input(key="data.import_path") is not None
    at.switch_page("app_pages/train.py")
    rerun(at)
    [start] = [b for b in at.button if b.label == "Start training"]
    assert not start.disabled
    at.button(key="auth.sign_out").click()
    rerun(at)
    assert [t.value for t in at.title] == ["SRM Studio"]


def test_the_writes_check_the_role_too(protected) -> None:
    # A page that calls an admin write as an annotator, as a crafted request might.
    script = """
import streamlit as st
from webapp import services
st.session_state["auth.role"] = "annotator"
from webapp import annotation
annotation.save_guidelines(services.store_url(), "hijacked")
"""
    at = AppTest.from_string(script, default_timeout=30)
    at.run()
    assert "Editing the guidelines needs the admin role" in at.exception[0].value
    with make_sessionmaker(open_store(protected))() as session:
        assert get_setting(session, GUIDELINES) is None


@pytest.mark.parametrize("address", ["0.0.0.0", ""])
def test_an_exposed_server_without_a_password_serves_nothing(
    filled_store, monkeypatch, address: str
) -> None:
    st_config.set_option("server.address", address)
    at = rerun(AppTest.from_file(APP, default_timeout=90))
    assert "without a password" in at.error[0].value
    assert not at.title  # no page ran
    monkeypatch.setenv("SRM_APP_INSECURE", "1")  # srm app --insecure
    at = rerun(AppTest.from_file(APP, default_timeout=90))
    assert at.title[0].value == "Preference data"


# ------------------------------------------------------------------------------------ uploads
def upload_record(name: str = "x.jsonl") -> UploadedFileRec:
    return UploadedFileRec(file_id="f1", name=name, type="application/json", data=b"{}\n")


def session_exists() -> SimpleNamespace:
    """A stand-in Streamlit runtime whose every session exists."""
    return SimpleNamespace(_session_mgr=SimpleNamespace(is_active_session=lambda _: True))


def test_uploads_are_refused_until_the_session_signs_in(protected) -> None:
    """Streamlit's upload endpoint took a file from any session that existed: a signed-out
    websocket client filled the server's memory with five 190 MB uploads."""
    at = rerun(AppTest.from_file(APP, default_timeout=90))  # the script guards uploads
    assert not at.get("file_uploader")  # and shows no uploader before signing in
    stranger = "a-session-that-never-signed-in"
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    with pytest.raises(HTTPException) as refused:
        manager.add_file(stranger, upload_record())
    assert refused.value.status_code == 403
    assert manager.get_files(stranger, ["f1"]) == []
    assert not Runtime.is_active_session(session_exists(), stranger)  # refused before the body

    session = "test session id"  # AppTest's, for every session
    assert not auth.may_upload(session)
    at = signed_in(ANNOTATOR_PASSWORD)
    assert Runtime.is_active_session(session_exists(), session)
    manager.add_file(session, upload_record())
    assert [f.name for f in manager.get_files(session, ["f1"])] == ["x.jsonl"]
    at.button(key="auth.sign_out").click()
    rerun(at)
    assert not auth.may_upload(session)


def test_without_passwords_on_loopback_every_session_may_upload(filled_store) -> None:
    rerun(AppTest.from_file(APP, default_timeout=90))
    assert auth.may_upload("any-session")
    st_config.set_option("server.address", "0.0.0.0")  # exposed and no password: no page...
    assert not auth.may_upload("any-session")  # ...and no upload either


def test_uploads_are_capped_in_size() -> None:
    config = read_config_file(Path(APP).parents[1] / ".streamlit" / "config.toml")
    assert config["server"]["maxUploadSize"] == 50  # megabytes; Streamlit's default is 200


def test_a_signed_out_websocket_client_cannot_put_a_file(
    filled_store: str, tiny_model: Path, tmp_path: Path
) -> None:
    """The app as `make app` starts it (webapp/launch.py), with passwords: a client that opens
    a websocket and asks for an upload address gets one, and its PUT is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "SRM_APP_PASSWORD": ANNOTATOR_PASSWORD,
        "SRM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SRM_DB_URL": filled_store,
        "SRM_MODEL": str(tiny_model),
    }
    launch = Path(APP).with_name("launch.py")
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen(
        [sys.executable, str(launch), "run", APP, "--server.port", str(port)]
        + ["--server.address", "127.0.0.1", "--server.headless", "true"]
        + ["--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=Path(APP).parents[1],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{base}/_stcore/health", app, tmp_path / "app.log", "the app")
        attack = subprocess.run(  # tests/upload_client.py, in a process of its own
            [sys.executable, "-m", "tests.upload_client", base],
            cwd=Path(APP).parents[1],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert attack.returncode == 0, attack.stderr
        assert attack.stdout.strip() == "400"  # refused before the body is read (was 204)
    finally:
        app.terminate()
        app.wait(timeout=60)
        log.close()
