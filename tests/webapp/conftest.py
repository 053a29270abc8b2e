"""Fixtures for the app's tests: a store with the sample pairs and a tiny random model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from srm.data import PreferencePair, load_pairs
from srm.store import import_pairs, make_sessionmaker, open_store

APP = str(Path(__file__).resolve().parents[2] / "webapp" / "streamlit_app.py")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from srm.checkpoint import save
    from srm.config import ModelConfig
    from srm.model import SentenceRewardModel

    path = tmp_path_factory.mktemp("model") / "tiny"
    save(SentenceRewardModel.create(ModelConfig(backbone="tiny", d=16), seed=0), path)
    return path


@pytest.fixture
def app_store(db_url: str, monkeypatch, tiny_model: Path) -> str:
    """An empty store and the tiny model as the app's default model."""
    monkeypatch.setenv("SRM_DB_URL", db_url)
    monkeypatch.setenv("SRM_MODEL", str(tiny_model))
    monkeypatch.delenv("SRM_DEMO", raising=False)
    return db_url


@pytest.fixture
def filled_store(app_store: str, sample_path: Path) -> str:
    """The store with the 50 sample pairs as dataset ``sample``."""
    fill(app_store, load_pairs(sample_path))
    return app_store


def fill(db_url: str, pairs: list[PreferencePair], dataset: str = "sample") -> None:
    with make_sessionmaker(open_store(db_url)).begin() as s:
        import_pairs(s, dataset, pairs)


@pytest.fixture
def run_page():
    """``run_page("inspect")``: the app run on that page (the default page without one),
    failing the test on any exception the script raised."""

    def run(page: str | None = None, *, timeout: float = 90) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=timeout)
        if page is not None:
            at.switch_page(f"app_pages/{page}.py")
        return rerun(at)

    return run


def rerun(at: AppTest) -> AppTest:
    """Run the script again (after widget changes) and fail on any exception."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
