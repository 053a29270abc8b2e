"""Training on tiny backbones: the loss falls, resume is exact, bad configs name the field."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from srm.checkpoint import load, model_dir, read_info
from srm.cli import main
from srm.config import ConfigError, ModelConfig, TrainConfig
from srm.data import PreferencePair, load_pairs
from srm.train import TrainingError, build_model, train

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample(request) -> list[PreferencePair]:
    return load_pairs(Path(__file__).resolve().parents[2] / "data" / "sample_50.jsonl")


def config(out: Path, **overrides) -> TrainConfig:
    fields = {
        "model": ModelConfig(backbone="tiny", max_length=96),
        "max_steps": 30,
        "batch_size": 4,
        "lr": 1e-3,
        "log_every": 5,
        "device": "cpu",
        "output_dir": str(out),
    }
    return TrainConfig(**(fields | overrides))


def model_tensors(path: Path) -> dict[str, torch.Tensor]:
    return {
        k: v
        for k, v in load_file(model_dir(path) / "model.safetensors").items()
        if not k.startswith("extra.")
    }


def metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_thirty_steps_lower_the_loss_and_change_the_weights(tmp_path, sample) -> None:
    cfg = config(tmp_path / "run", finetune="full")
    before = {n: p.detach().clone() for n, p in build_model(cfg).named_parameters()}
    result = train(cfg, sample, show_progress=False)
    assert (result.steps, result.total_steps, result.interrupted) == (30, 30, False)
    rows = [r for r in metrics(tmp_path / "run") if "loss" in r]
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    first, last = rows[0]["loss"], sum(r["loss"] for r in rows[-2:]) / 2
    assert last < first
    trained = load(tmp_path / "run")
    changed = [n for n, p in trained.named_parameters() if not torch.equal(p, before[n])]
    assert "value_head.weight" in changed and "query.weight" in changed
    assert any(n.startswith("backbone.encoder") for n in changed)
    info = read_info(tmp_path / "run")
    # The checkpoint carries its recipe; the run directory by name, not as a machine path.
    assert info.training["config"] == cfg.to_dict() | {"output_dir": "run"}
    assert info.training["step"] == 30


def test_resume_reproduces_the_uninterrupted_run(tmp_path, sample) -> None:
    full = config(tmp_path / "full", save_every=10)
    train(full, sample, show_progress=False)
    mid = tmp_path / "full" / "checkpoints" / "step-000010"
    assert mid.is_dir()
    resumed = config(tmp_path / "resumed", save_every=10)
    result = train(resumed, sample, show_progress=False, resume_from=mid)
    assert result.steps == 30
    a, b = model_tensors(tmp_path / "full"), model_tensors(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # The resumed run logs from where it started.
    assert [r["step"] for r in metrics(tmp_path / "resumed")] == [15, 20, 25, 30]


def test_resume_from_a_checkpoint_without_the_schedulers_state(tmp_path, sample) -> None:
    """Checkpoints written before the scheduler's state_dict was saved (runs under way when
    it changed) still resume exactly: the schedule is replayed to the checkpoint's step."""
    full = config(tmp_path / "full", save_every=10, grad_accum=2, max_steps=20)
    train(full, sample, show_progress=False)
    mid = tmp_path / "full" / "checkpoints" / "step-000010"
    config_file = model_dir(mid) / "config.json"
    record = json.loads(config_file.read_text())
    assert record["training"]["scheduler"]["last_epoch"] == 10  # the new format has it
    del record["training"]["scheduler"]  # ... the old one had not
    config_file.write_text(json.dumps(record))
    resumed = config(tmp_path / "resumed", save_every=10, grad_accum=2, max_steps=20)
    result = train(resumed, sample, show_progress=False, resume_from=mid)
    assert result.steps == 20
    a, b = model_tensors(tmp_path / "full"), model_tensors(tmp_path / "resumed")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lr = {r["step"]: r["lr"] for r in metrics(tmp_path / "full") if "lr" in r}
    assert [(r["step"], r["lr"]) for r in metrics(tmp_path / "resumed")] == [
        (15, lr[15]),
        (20, lr[20]),
    ]


def test_a_checkpoint_from_before_a_model_field_existed_resumes(tmp_path, sample) -> None:
    """A model config saved before a field was added (prompt_term) was trained with that
    field's default: resuming it with today's config is the same recipe, not a different one.
    The run's training time adds up over the resume."""
    train(config(tmp_path / "a", max_steps=4, save_every=2), sample, show_progress=False)
    mid = tmp_path / "a" / "checkpoints" / "step-000002"
    config_file = model_dir(mid) / "config.json"
    record = json.loads(config_file.read_text())
    del record["model"]["prompt_term"], record["training"]["config"]["model"]["prompt_term"]
    record["training"]["seconds"] = 1000.0
    config_file.write_text(json.dumps(record))
    result = train(
        config(tmp_path / "a", max_steps=4), sample, show_progress=False, resume_from=mid
    )
    assert result.steps == 4
    seconds = read_info(tmp_path / "a").training["seconds"]
    assert 1000.0 < seconds < 1000.0 + result.seconds + 1
    with pytest.raises(TrainingError, match="different model"):
        train(
            config(
                tmp_path / "b",
                max_steps=4,
                model=ModelConfig(backbone="tiny", max_length=96, prompt_term=False),
            ),
            sample,
            resume_from=mid,
        )


def test_resume_refuses_a_different_recipe(tmp_path, sample) -> None:
    train(config(tmp_path / "a", max_steps=2, save_every=1), sample, show_progress=False)
    with pytest.raises(TrainingError, match="different batch_size"):
        train(
            config(tmp_path / "b", batch_size=2),
            sample,
            resume_from=tmp_path / "a" / "checkpoints" / "step-000001",
        )


def test_the_final_model_is_lean_and_not_resumable(tmp_path, sample) -> None:
    train(config(tmp_path / "a", max_steps=2), sample, show_progress=False)
    final = model_dir(tmp_path / "a") / "model.safetensors"
    assert not any(k.startswith("extra.") for k in load_file(final))
    with pytest.raises(TrainingError, match="not a resumable training checkpoint"):
        train(config(tmp_path / "b"), sample, resume_from=tmp_path / "a")


def test_lora_run_saves_only_adapters_and_heads(tmp_path, sample) -> None:
    train(config(tmp_path / "run", max_steps=3, finetune="lora"), sample, show_progress=False)
    info = read_info(tmp_path / "run")
    assert info.backbone_weights == "lora"
    keys = model_tensors(tmp_path / "run").keys()
    assert any(k.startswith("lora.") for k in keys)
    assert not any(k.startswith("backbone.") for k in keys)


def test_heads_only_run_freezes_the_backbone(tmp_path, sample) -> None:
    cfg = config(tmp_path / "run", max_steps=3, finetune="heads")
    before = {n: p.detach().clone() for n, p in build_model(cfg).named_parameters()}
    train(cfg, sample, show_progress=False)
    trained = load(tmp_path / "run")
    for name, p in trained.named_parameters():
        if name.startswith("backbone."):
            assert torch.equal(p, before[name]), name
    assert not torch.equal(trained.value_head.weight, before["value_head.weight"])


def test_eval_pairs_are_scored_at_the_end(tmp_path, sample) -> None:
    result = train(
        config(tmp_path / "run", max_steps=4, eval_every=2), sample, sample[:8], show_progress=False
    )
    evals = [r for r in metrics(tmp_path / "run") if "eval" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert result.eval_metrics == evals[-1]["eval"]
    assert result.eval_metrics["n"] == 8


def test_progress_callback(tmp_path, sample) -> None:
    seen = []
    train(
        config(tmp_path / "run", max_steps=4, log_every=2),
        sample,
        show_progress=False,
        progress=lambda step, total, m: seen.append((step, total, sorted(m))),
    )
    assert [(s, t) for s, t, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert "loss" in seen[1][2] and "accuracy" in seen[1][2]


def test_gradient_accumulation_counts_optimizer_steps(tmp_path, sample) -> None:
    result = train(config(tmp_path / "run", max_steps=3, grad_accum=2), sample, show_progress=False)
    assert result.steps == 3
    assert result.pairs_seen == 3 * 2 * 4


def test_ctrl_c_writes_a_resumable_checkpoint(tmp_path, sample) -> None:
    def interrupt(step, total, metrics):
        if step == 3:
            raise KeyboardInterrupt

    result = train(config(tmp_path / "run"), sample, show_progress=False, progress=interrupt)
    assert result.interrupted and result.steps == 3
    assert result.checkpoint == tmp_path / "run" / "checkpoints" / "step-000003"
    assert read_info(result.checkpoint).training["step"] == 3
    resumed = train(
        config(tmp_path / "run"), sample, show_progress=False, resume_from=result.checkpoint
    )
    assert resumed.steps == 30


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"lr": 0.0}, "lr: got 0.0; use a positive number"),
        ({"batch_size": 0}, "batch_size: got 0; use 1 or more"),
        ({"finetune": "qlora"}, "finetune: got 'qlora'; choose one of lora, full, heads"),
        ({"warmup_ratio": 1.5}, r"warmup_ratio: got 1.5; use a value in \[0, 1\)"),
        ({"max_steps": 0}, "max_steps: got 0; use 1 or more"),
        ({"scheduler": "step"}, "scheduler: got 'step'"),
        ({"lora_targets": []}, "lora_targets: got \\[\\]"),
        ({"mixed_precision": "fp8"}, "mixed_precision: got 'fp8'"),
    ],
)
def test_impossible_values_name_the_field(tmp_path, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, **overrides)


def test_unknown_lora_target_names_the_field(tmp_path, sample) -> None:
    with pytest.raises(ConfigError, match="lora_targets"):
        train(config(tmp_path / "r", lora_targets=["no_such_module"]), sample)


def test_toml_config_and_cli_override(tmp_path, sample_path) -> None:
    toml = tmp_path / "recipe.toml"
    toml.write_text(
        'max_steps = 3\nbatch_size = 4\nlr = 0.001\ndevice = "cpu"\nfinetune = "heads"\n'
        '[model]\nbackbone = "tiny"\nhead = "response"\nmax_length = 64\n'
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--config",
            str(toml),
            "--data",
            str(sample_path),
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--head",
            "token",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Done: 2 steps" in result.output
    saved = read_info(out).training["config"]
    assert saved["max_steps"] == 2 and saved["batch_size"] == 4 and saved["finetune"] == "heads"
    assert saved["model"]["head"] == "token" and saved["model"]["max_length"] == 64


def test_cli_reports_a_bad_config_file(tmp_path, sample_path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("batch_size = -1\n")
    result = CliRunner().invoke(
        main, ["train", "--config", str(toml), "--data", str(sample_path), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "bad.toml: batch_size: got -1" in result.output


def test_resume_from_a_directory_that_is_no_checkpoint(tmp_path, sample_path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "config.json").write_text("{}")
    (tmp_path / "notes" / "model.safetensors").write_text("not weights")
    for target, message in [
        (tmp_path / "notes", r"config.json: format None is not 'srm-checkpoint/1'"),
        (sample_path, "not a checkpoint directory"),
    ]:
        with pytest.raises(TrainingError, match=f"resume_from: .*{message}"):
            train(config(tmp_path / "run"), load_pairs(sample_path), resume_from=target)
        result = CliRunner().invoke(
            main,
            ["train", "--data", str(sample_path), "--out", str(tmp_path / "run")]
            + ["--backbone", "tiny", "--resume-from", str(target)],
        )
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)  # a message, not a traceback
        assert "Error: resume_from: " in result.output


def test_sigterm_stops_srm_train_with_a_resumable_checkpoint(tmp_path, sample_path) -> None:
    """Schedulers and ``kill`` send SIGTERM: it stops training as Ctrl-C does, exit code 143."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "srm.cli", "train", "--data", str(sample_path)]
    command += ["--out", str(out), "--backbone", "tiny", "--max-length", "64", "--device", "cpu"]
    command += ["--finetune", "heads", "--batch-size", "2", "--max-steps", "1000000"]
    command += ["--log-every", "1"]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").stat().st_size:
            assert process.poll() is None and time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, output
    (checkpoint,) = (out / "checkpoints").glob("step-*")
    assert read_info(checkpoint).training["resumable"]
    assert f"--resume-from {checkpoint}" in output
