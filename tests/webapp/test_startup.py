"""Start-up: the model loads once per server process, whichever pages and sessions score with
it, and nothing the app is set up with points the browser at another host."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from srm.config import read_config_file
from srm.data import load_pairs
from srm.store import Score, make_sessionmaker, open_store
from tests.webapp.conftest import WEBAPP, rerun


def test_two_sessions_and_pages_load_the_model_once(
    filled_store: str, sample_path, monkeypatch, run_page
) -> None:
    import srm.checkpoint
    from webapp import scoring

    loads: list[str] = []
    real_load = srm.checkpoint.load
    monkeypatch.setattr(srm.checkpoint, "load", lambda path: loads.append(path) or real_load(path))
    # These functions' caches only: earlier tests may have filled them (a pair scored before,
    # by the same tiny model, would come from _compute's cache without loading the model).
    scoring._model.clear()
    scoring._compute.clear()
    pairs = load_pairs(sample_path)
    for pair in pairs[:2]:  # each a new session, as a second browser tab would be
        at = run_page("inspect")
        at.selectbox(key="inspect.dataset").set_value("sample")
        at.selectbox(key="inspect.pair_id").set_value(pair.id)
        rerun(at)
    run_page("annotate")  # another page, whose queue reads the stored scores
    with make_sessionmaker(open_store(filled_store))() as s:
        scored = len(s.scalars(select(Score.id)).all())
    assert scored == 2  # both pairs were scored with the model...
    assert len(loads) == 1  # ...loaded once


def test_the_page_icon_is_a_file_the_app_serves_itself(app_store, monkeypatch, run_page) -> None:
    """A ":material/...:" or emoji icon makes the browser fetch the icon from another host; a
    file is served by the app itself (the browser test records the requests)."""
    import streamlit as st

    configs: list[dict] = []
    real = st.set_page_config
    monkeypatch.setattr(st, "set_page_config", lambda **kw: configs.append(kw) or real(**kw))
    run_page()
    icon = Path(configs[0]["page_icon"])
    assert icon.parent == WEBAPP and icon.read_bytes().startswith(b"\x89PNG")


def test_the_server_config_keeps_the_app_offline() -> None:
    config = read_config_file(WEBAPP.parent / ".streamlit" / "config.toml")
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["address"] == "127.0.0.1"
