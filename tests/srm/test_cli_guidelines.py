"""``srm guidelines``: replace the store's guidelines from a file, lock and unlock them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from srm.cli import main
from srm.store import GUIDELINES, GUIDELINES_LOCKED, get_setting, make_sessionmaker, open_store


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def settings(db_url: str) -> tuple[str | None, bool | None]:
    with make_sessionmaker(open_store(db_url))() as s:
        return get_setting(s, GUIDELINES), get_setting(s, GUIDELINES_LOCKED)


def test_guidelines_are_set_locked_and_unlocked(db_url: str, tmp_path: Path) -> None:
    result = invoke("guidelines", "--db", db_url)
    assert "docs/guidelines.md (none set); open: an admin may edit them." in result.output
    assert settings(db_url) == (None, None)  # showing writes nothing

    rules = tmp_path / "rules.md"
    rules.write_text("### Label well\n\nPrefer the honest answer.\n", encoding="utf-8")
    result = invoke("guidelines", "--db", db_url, "--set", str(rules), "--lock")
    assert f"Guidelines replaced with {rules} (42 characters)." in result.output
    assert "42 characters in the store; locked: the app cannot edit them." in result.output
    assert settings(db_url) == (rules.read_text(encoding="utf-8"), True)

    result = invoke("guidelines", "--db", db_url, "--unlock")
    assert "open: an admin may edit them" in result.output
    assert settings(db_url) == (rules.read_text(encoding="utf-8"), False)


def test_a_missing_guidelines_file_is_refused(db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["guidelines", "--db", db_url, "--set", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
