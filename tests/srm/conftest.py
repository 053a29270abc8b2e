"""Factories for the tests: tiny random backbones built from configs (no downloads), and
stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pytest
import torch

from srm.collate import Batch, collate, encode_many
from srm.config import ModelConfig
from srm.data import PreferencePair
from srm.model import SentenceRewardModel
from srm.store import import_pairs, list_pairs, make_sessionmaker, open_store
from srm.store.engine import scratch_postgres_database

TEXTS = [
    ("What is the capital of France?", "Paris is the capital. It is in the north."),
    ("Tell me a joke.", "Why did the chicken cross the road? To get to the other side!"),
    ("Say hi.", "Hi."),
    (
        "Explain photosynthesis briefly, please, in a few sentences for a child.",
        "Plants use light to make food. They take in water and carbon dioxide. "
        "They give off oxygen. That is why we need plants. Isn't that neat?",
    ),
]


@pytest.fixture
def make_model() -> Callable[..., SentenceRewardModel]:
    def make(head: str = "sentence", seed: int = 0, **overrides) -> SentenceRewardModel:
        config = ModelConfig(
            **{"backbone": "tiny", "head": head, "d": 16, "max_length": 128, **overrides}
        )
        return SentenceRewardModel.create(config, seed=seed).eval()

    return make


def batch_for(
    model: SentenceRewardModel, texts: Sequence[tuple[str, str]], max_length: int | None = None
) -> tuple[list, Batch]:
    encoded = encode_many(
        model.tokenizer,
        [p for p, _ in texts],
        [r for _, r in texts],
        max_length=max_length or model.config.max_length,
    )
    return encoded, collate(encoded, model.tokenizer.pad_token_id)


@pytest.fixture(name="batch_for")
def batch_for_fixture() -> Callable[..., tuple[list, Batch]]:
    """``batch_for(model, [(prompt, response), ...]) -> (encoded, batch)``."""
    return batch_for


@pytest.fixture
def texts() -> list[tuple[str, str]]:
    return list(TEXTS)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def runs_in_tmp_path(tmp_path, monkeypatch) -> None:
    """Job run directories of non-SQLite stores go to XDG_DATA_HOME: keep them in tmp_path."""
    monkeypatch.delenv("SRM_RUNS_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory):
    """A local directory holding a tiny random GPT-2 and a byte-level BPE tokenizer trained
    here: stands in for "any Hugging Face model saved on disk" (decoder-only, no [CLS])."""
    from transformers import GPT2Config, GPT2Model

    from tests.tiny_models import bpe_tokenizer

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = bpe_tokenizer([p + " " + r for p, r in TEXTS] * 20)
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    GPT2Model(
        GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=256)
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2_dir):
    """A tiny random Llama decoder saved *with* its (tied) LM head, as SmolLM2 is: the
    stand-in for decoders the HaF-RM policy term and the likelihood apply to."""
    from transformers import AutoTokenizer

    from tests.tiny_models import save_tiny_llama

    path = tmp_path_factory.mktemp("tiny-llama")
    return save_tiny_llama(path, AutoTokenizer.from_pretrained(tiny_gpt2_dir))


# ----------------------------------------------------------------------------------- the store
# Store tests run once on SQLite and once on PostgreSQL. The PostgreSQL run needs
# SRM_TEST_PG_URL (a database URL whose role may CREATE DATABASE; .ci/run starts a server and
# sets it): each test gets a brand-new database, dropped afterwards. Without the variable the
# PostgreSQL run is skipped locally, and fails in CI so that a green CI run means it ran.
PG_URL_VARIABLE = "SRM_TEST_PG_URL"


def make_pairs(n: int, prefix: str = "p") -> list[PreferencePair]:
    """``n`` distinct pairs ``p0, p1, ...``; odd ones from "hh", every third with a margin."""
    return [
        PreferencePair(
            id=f"{prefix}{i}",
            prompt=f"Question {i}?",
            chosen=f"A good answer {i}.",
            rejected=f"A bad answer {i}.",
            source="hh" if i % 2 else "pandalm",
            margin=None if i % 3 else float(i),
        )
        for i in range(n)
    ]


@pytest.fixture(name="make_pairs")
def make_pairs_fixture() -> Callable[..., list[PreferencePair]]:
    return make_pairs


def postgres_admin_url() -> str:
    url = os.environ.get(PG_URL_VARIABLE)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_URL_VARIABLE} is not set; .ci/run must start PostgreSQL and set it")
        pytest.skip(f"PostgreSQL store tests need {PG_URL_VARIABLE}=postgresql+psycopg://...")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty store (no schema yet): a SQLite file in ``tmp_path``, or a fresh PostgreSQL
    database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with scratch_postgres_database(postgres_admin_url(), "srm_test") as url:
        yield url


@pytest.fixture
def session_factory(store_url: str):
    """A session factory on a migrated, empty store (both backends)."""
    return make_sessionmaker(open_store(store_url))


@pytest.fixture
def make_store(session_factory) -> Callable[..., dict[str, int]]:
    """``make_store(n=4, dataset="d") -> {external_id: pair_id}``: import ``make_pairs(n)``."""

    def make(n: int = 4, dataset: str = "d") -> dict[str, int]:
        with session_factory.begin() as s:
            import_pairs(s, dataset, make_pairs(n))
        with session_factory() as s:
            return {p.external_id: p.id for p in list_pairs(s, dataset, limit=n)}

    return make
