"""Signing in and roles (webapp/auth.py): with a password configured nothing shows before the
right one, annotators label but do not train, import by path, edit the guidelines or choose the
active model; an exposed server without a password serves no page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from srm.store import GUIDELINES, get_setting, make_sessionmaker, open_store
from tests.webapp.conftest import APP, rerun

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
    script = f"""
import sys
import streamlit as st
sys.path.insert(0, {str(Path(APP).parent)!r})
import services
st.session_state["auth.role"] = "annotator"
import annotation
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
