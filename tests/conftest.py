"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

from srm.records import PairScores

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
SAMPLE = DATA_DIR / "sample_50.jsonl"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Tests never touch the user's store or cache, nor reach a model hub. Converted
    backbones (smollm2) go to one cache for the whole session, so they convert once."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SRM_DB_URL", f"sqlite:///{home / 'default.db'}")
    monkeypatch.setenv("SRM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "srm-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # Where jobs run and write: a developer's own set-up (docs/scaling.md) stays out of tests.
    for name in ("SRM_MODELS_DIR", "SRM_SUBMIT_COMMAND"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained sentence-head checkpoint on the random ``tiny`` backbone, saved once."""
    from srm.checkpoint import save
    from srm.config import ModelConfig
    from srm.model import SentenceRewardModel

    path = tmp_path_factory.mktemp("model") / "tiny"
    save(SentenceRewardModel.create(ModelConfig(backbone="tiny", d=16), seed=0), path)
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite store file for one test."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE


def scores_of(pair_id: str, chosen: float, rejected: float) -> PairScores:
    """A model's scores of pair ``pair_id`` with nothing but the two scores (no sentences):
    what the store's queries, the queue and the model comparison read."""

    def side(score: float) -> dict:
        return {
            "score": score,
            "prompt_reward": 0.0,
            "prompt_weight": 1.0,
            "truncated": False,
            "sentences": [],
        }

    return PairScores.from_json({"id": pair_id, "chosen": side(chosen), "rejected": side(rejected)})
