"""Uploads behind the sign-in, in Chromium: with a password set, the app shows no uploader
before the right password, and once signed in an uploaded file is taken by Streamlit's upload
endpoint (which refuses a signed-out session: tests/webapp/test_auth.py) and imported.

The app runs as `make app` runs it (webapp/launch.py), on a free loopback port.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import serve

pytestmark = pytest.mark.e2e
PASSWORD = "an annotator's long shared secret"


@pytest.fixture(scope="module")
def protected_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("signed-in-upload")
    with serve(workdir / "app.db", workdir / "make-app.log", SRM_APP_PASSWORD=PASSWORD) as app:
        yield app.url


def test_a_signed_in_annotator_uploads_and_imports_a_file(
    protected_app: str, page: Page, tmp_path: Path
) -> None:
    upload = tmp_path / "mine.jsonl"
    pair = {"prompt": "Is rain wet?", "chosen": "Yes, it is water.", "rejected": "No."}
    upload.write_text(json.dumps(pair) + "\n", encoding="utf-8")

    page.goto(protected_app)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stFileUploaderDropzoneInput")).to_have_count(0)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Preference data")).to_be_visible(timeout=120_000)

    page.get_by_text("Import pairs").click()
    with page.expect_response(
        lambda r: "/_stcore/upload_file/" in r.url and r.request.method == "PUT", timeout=60_000
    ) as put:
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(upload)
    assert put.value.status == 204  # the signed-in session's file is taken
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
    page.get_by_role("button", name="Import upload").click()
    expect(page.get_by_text("Imported 1 new pairs into dataset")).to_be_visible(timeout=60_000)
