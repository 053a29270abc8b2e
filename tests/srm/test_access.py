"""srm.access: the shared passwords, their roles, and when an exposed app must refuse to serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from srm.access import (
    ADMIN,
    ANNOTATOR,
    Passwords,
    exposure_error,
    is_loopback,
    passwords,
    read_secrets,
)


def test_each_password_signs_in_as_its_role() -> None:
    both = Passwords(annotator="ann-pass", admin="adm-pass")
    assert both.required
    assert both.role("ann-pass") == ANNOTATOR
    assert both.role("adm-pass") == ADMIN
    assert both.role("") is None and both.role("ann-pass ") is None
    assert Passwords(admin="adm-pass").role("ann-pass") is None
    assert not Passwords().required and Passwords().role("") is None


def test_the_environment_wins_over_the_secrets_and_empty_means_unset() -> None:
    env = {"SRM_APP_PASSWORD": "from-env", "SRM_ADMIN_PASSWORD": ""}
    secrets = {"SRM_APP_PASSWORD": "from-file", "SRM_ADMIN_PASSWORD": "admin-file"}
    assert passwords(env, secrets) == Passwords(annotator="from-env", admin="admin-file")
    assert passwords({"SRM_APP_PASSWORD": ""}, {}) == Passwords()


def test_secrets_files_are_read_in_order_and_a_bad_one_is_named(tmp_path: Path) -> None:
    user, project = tmp_path / "user.toml", tmp_path / "project.toml"
    user.write_text('SRM_APP_PASSWORD = "user"\nSRM_ADMIN_PASSWORD = "admin"\n')
    project.write_text('SRM_APP_PASSWORD = "project"\n')
    found = read_secrets([user, project, tmp_path / "missing.toml"])
    assert found == {"SRM_APP_PASSWORD": "project", "SRM_ADMIN_PASSWORD": "admin"}
    project.write_text("SRM_APP_PASSWORD = \n")
    with pytest.raises(ValueError, match="project.toml: not valid TOML"):
        read_secrets([project])


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
        ("", False),  # Streamlit's default: every interface
        (None, False),
    ],
)
def test_loopback_addresses(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_exposed_app_needs_a_password_unless_insecure() -> None:
    refusal = exposure_error("0.0.0.0", Passwords(), insecure=False)
    assert refusal is not None
    assert "SRM_APP_PASSWORD" in refusal and "--insecure" in refusal and "0.0.0.0" in refusal
    assert exposure_error("0.0.0.0", Passwords(annotator="x"), insecure=False) is None
    assert exposure_error("0.0.0.0", Passwords(admin="x"), insecure=False) is None
    assert exposure_error("0.0.0.0", Passwords(), insecure=True) is None
    assert exposure_error("127.0.0.1", Passwords(), insecure=False) is None


def test_accounts_in_the_store_protect_an_exposed_app() -> None:
    assert exposure_error("0.0.0.0", Passwords(), insecure=False, accounts=True) is None
    assert exposure_error("", Passwords(), insecure=False, accounts=False) is not None
