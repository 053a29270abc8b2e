"""``srm train`` on two processes (torchrun, gloo on the CPU) against one process with the same
global batch: the same losses and weights up to float rounding, and one writer of the run
directory. Also the flags for large backbones: mixed precision and gradient checkpointing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from srm.checkpoint import load, model_dir, read_info
from srm.cli import main
from srm.config import ConfigError, ModelConfig, TrainConfig
from srm.data import load_pairs
from srm.train import build_model, train

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Largest differences allowed between the two runs' weights and logged numbers. The runs add
#: the same gradients in a different order (DDP averages two halves of the global batch), so
#: they differ by float32 rounding, which Adam's normalised steps carry on where a gradient is
#: tiny (a rare token's embedding row). Measured (pytest -s prints it): 1.8e-5 for the weights
#: (one embedding element; all others below 8e-6) and below 1e-7 for the losses.
WEIGHT_TOLERANCE = 1e-4
TOLERANCE = 1e-5
STEPS = 7
#: Flags both runs share: 48 pairs make 12 global batches of 4, so the 14 micro-batches of 7
#: steps of 2 cross an epoch boundary without a short batch (which two processes would fill up
#: with repeated pairs, and one process would not).
FLAGS = ["--backbone", "tiny", "--max-length", "64", "--device", "cpu", "--finetune", "full"]
FLAGS += ["--lr", "1e-3", "--grad-accum", "2", "--max-steps", str(STEPS), "--log-every", "1"]
FLAGS += ["--save-every", "3", "--eval-every", "3", "--seed", "3"]
LOGGED = ("loss", "accuracy", "margin", "reward_mean")


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir(run) / "model.safetensors")


def metric_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, str]:
    """The same training on one process (batch 4) and on two (batch 2 each): their run
    directories and the two-process command's output."""
    root = tmp_path_factory.mktemp("multiprocess")
    lines = (REPO_ROOT / "data" / "sample_50.jsonl").read_text().splitlines()
    (root / "train.jsonl").write_text("\n".join(lines[:48]) + "\n")
    (root / "eval.jsonl").write_text("\n".join(lines[:7]) + "\n")  # not a multiple of 2
    data = ["--data", str(root / "train.jsonl"), "--eval", str(root / "eval.jsonl")]
    one = CliRunner().invoke(
        main, ["train", *data, *FLAGS, "--batch-size", "4", "--out", str(root / "one")]
    )
    assert one.exit_code == 0, one.output
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "srm.cli", "train", *data, *FLAGS]
    command += ["--batch-size", "2", "--out", str(root / "two")]
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert two.returncode == 0, two.stdout + two.stderr
    return root / "one", root / "two", two.stdout


def test_two_processes_train_as_one_with_the_same_global_batch(runs) -> None:
    one, two, _ = runs
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=WEIGHT_TOLERANCE, rtol=0, msg=key)
    model = ModelConfig(backbone="tiny", max_length=64)
    start = build_model(TrainConfig(model=model, finetune="full", seed=3))
    before = dict(start.named_parameters())
    moved = max((p - before[n]).abs().max() for n, p in load(two).named_parameters())
    assert moved > 10 * WEIGHT_TOLERANCE  # it trained
    print(  # the measured figures (pytest -s shows them)
        "max abs diff: weights",
        max((a[k] - b[k]).abs().max().item() for k in a),
        "losses",
        max(
            abs(r1["loss"] - r2["loss"])
            for r1, r2 in zip(metric_lines(one), metric_lines(two), strict=True)
            if "loss" in r1
        ),
    )
    rows_one = [r for r in metric_lines(one) if "loss" in r]
    rows_two = [r for r in metric_lines(two) if "loss" in r]
    assert [r["step"] for r in rows_two] == list(range(1, STEPS + 1))
    for r1, r2 in zip(rows_one, rows_two, strict=True):
        assert r2["epoch"] == r1["epoch"] and r2["lr"] == r1["lr"]
        for name in LOGGED:  # each the mean over both processes' slices of the global batch
            assert r2[name] == pytest.approx(r1[name], abs=TOLERANCE), (r1["step"], name)
    assert rows_two[-1]["epoch"] > 1  # the run crossed an epoch boundary


def test_evaluation_is_gathered_from_both_processes(runs) -> None:
    one, two, _ = runs
    evals_one = [r for r in metric_lines(one) if "eval" in r]
    evals_two = [r for r in metric_lines(two) if "eval" in r]
    assert [r["step"] for r in evals_two] == [3, 6, 7]
    for r1, r2 in zip(evals_one, evals_two, strict=True):
        assert r2["eval"]["n"] == 7  # the pair repeated to even out the shards is dropped
        assert r2["eval"]["accuracy"] == r1["eval"]["accuracy"]
        assert r2["eval"]["mean_margin"] == pytest.approx(r1["eval"]["mean_margin"], abs=TOLERANCE)


def test_only_the_main_process_writes_the_run_directory(runs) -> None:
    _, two, output = runs
    # Two writers would append every line twice, or leave two model versions behind.
    lines = metric_lines(two)
    assert len(lines) == STEPS + 3
    assert sorted(p.name for p in two.iterdir() if not p.name.startswith(".model-")) == [
        "checkpoints",
        "metrics.jsonl",
        "model",
    ]
    assert len(list(two.glob(".model-*"))) == 1
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == [
        "step-000003",
        "step-000006",
    ]
    for path in [model_dir(two), *(two / "checkpoints").iterdir()]:
        assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
        assert read_info(path).training["step"] in (3, 6, STEPS)  # whole, readable files
        load_file(path / "model.safetensors")
    assert read_info(two / "checkpoints" / "step-000006").training["resumable"]
    assert output.count("Done: ") == 1 and output.count("Training a ") == 1


@pytest.fixture(scope="module")
def sample():
    return load_pairs(REPO_ROOT / "data" / "sample_50.jsonl")


def small(out: Path, **overrides) -> TrainConfig:
    fields = {
        "model": ModelConfig(backbone="tiny", max_length=64),
        "max_steps": 3,
        "batch_size": 4,
        "lr": 1e-3,
        "log_every": 1,
        "device": "cpu",
        "finetune": "full",
        "output_dir": str(out),
    }
    return TrainConfig(**(fields | overrides))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"mixed_precision": "fp32"}, "mixed_precision: got 'fp32'; choose one of no, fp16, bf16"),
        (
            {"gradient_checkpointing": "yes"},
            "gradient_checkpointing: got 'yes' \\(str\\); expected bool",
        ),
    ],
)
def test_large_backbone_settings_are_checked(tmp_path, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        small(tmp_path, **overrides)


def test_fp16_on_a_cpu_is_refused_before_training(tmp_path, sample) -> None:
    with pytest.raises(ConfigError, match="mixed_precision: fp16 needs a GPU.*use bf16"):
        train(small(tmp_path / "run", mixed_precision="fp16"), sample, show_progress=False)
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(REPO_ROOT / "data" / "sample_50.jsonl"), "--backbone", "tiny"]
        + ["--device", "cpu", "--mixed-precision", "fp16", "--out", str(tmp_path / "cli")],
    )
    assert result.exit_code == 1, result.output
    assert "Error: mixed_precision: fp16 needs a GPU" in result.output


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_gradient_checkpointing_trains_as_without(tmp_path, sample, finetune) -> None:
    """Checkpointing recomputes the same activations: the same steps, the same weights."""
    plain = train(small(tmp_path / "plain", finetune=finetune), sample, show_progress=False)
    cfg = small(tmp_path / "checkpointed", finetune=finetune, gradient_checkpointing=True)
    checkpointed = train(cfg, sample, show_progress=False)
    assert checkpointed.steps == plain.steps == 3
    a, b = weights(tmp_path / "plain"), weights(tmp_path / "checkpointed")
    before = dict(build_model(cfg).named_parameters())
    after = load(tmp_path / "checkpointed").named_parameters()
    assert any(n.startswith("backbone.") and not torch.equal(p, before[n]) for n, p in after)
    for key in a:
        torch.testing.assert_close(b[key], a[key], msg=key)
    assert read_info(tmp_path / "checkpointed").training["config"]["gradient_checkpointing"]


def test_gradient_checkpointing_is_switched_on_in_the_backbone(tmp_path) -> None:
    from srm.parallel import enable_gradient_checkpointing

    for finetune in ("full", "lora"):
        model = build_model(small(tmp_path, finetune=finetune))
        base = model.backbone.get_base_model() if finetune == "lora" else model.backbone
        assert not base.is_gradient_checkpointing
        enable_gradient_checkpointing(model)
        assert base.is_gradient_checkpointing


def test_bf16_on_a_cpu_trains_through_the_cli(tmp_path) -> None:
    """A fresh process: Accelerate keeps one precision per process."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "srm.cli", "train", *FLAGS[:8], "--max-steps", "2"]
    command += ["--data", str(REPO_ROOT / "data" / "sample_50.jsonl"), "--batch-size", "2"]
    command += ["--mixed-precision", "bf16", "--gradient-checkpointing", "--out", str(out)]
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    saved = read_info(out).training["config"]
    assert saved["mixed_precision"] == "bf16" and saved["gradient_checkpointing"] is True
    assert all(torch.isfinite(t).all() for t in weights(out).values())


def test_sigterm_to_one_process_stops_them_all_at_one_checkpoint(tmp_path) -> None:
    """A signal that reaches one process of two: both stop at the same micro-batch (no
    deadlock in a collective the other never joins) and the main one writes the checkpoint."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "srm.cli", "train", *FLAGS[:6], "--finetune", "heads"]
    command += ["--data", str(REPO_ROOT / "data" / "sample_50.jsonl"), "--batch-size", "2"]
    command += ["--max-steps", "1000000", "--log-every", "1", "--out", str(out)]
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").stat().st_size:
            assert launcher.poll() is None and time.monotonic() < deadline, "never started"
            time.sleep(0.2)
        (second,) = [
            p for p in psutil.Process(launcher.pid).children() if p.environ().get("RANK") == "1"
        ]
        second.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            for child in psutil.Process(launcher.pid).children():
                child.kill()
            launcher.kill()
    (checkpoint,) = (out / "checkpoints").glob("step-*")
    info = read_info(checkpoint)
    assert info.training["resumable"]
    assert f"--resume-from {checkpoint}" in output  # the main process reported it
    # The checkpoint is at the last step both processes finished: the last one logged.
    assert info.training["step"] == metric_lines(out)[-1]["step"]


def test_a_train_job_runs_on_two_processes_and_the_main_one_records_it(tmp_path) -> None:
    """``torchrun ... srm jobs run N``: one job row, one model and one set of scores, all
    written by the main process; the other trained beside it and wrote nothing."""
    from sqlalchemy import func, select

    from srm.jobs import create_train_job
    from srm.store import Model, Score, TrainingJob, import_pairs, make_sessionmaker, open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    sessions = make_sessionmaker(open_store(url))
    pairs = load_pairs(REPO_ROOT / "data" / "sample_50.jsonl")[:8]
    config = {"model": {"backbone": "tiny", "max_length": 64}, "finetune": "heads"}
    config |= {"max_steps": 3, "batch_size": 2, "device": "cpu", "log_every": 1}
    with sessions.begin() as s:
        import_pairs(s, "sample", pairs)
        job_id = create_train_job(s, dataset="sample", config=config).id
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "srm.cli", "jobs", "run", str(job_id), "--db", url]
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(f"Job {job_id} succeeded") == 1
    with sessions() as s:
        job = s.get(TrainingJob, job_id)
        assert job.status == "succeeded"
        (model,) = s.scalars(select(Model)).all()
        assert model.id == job.model_id and model.metrics["steps"] == 3
        assert s.scalar(select(func.count()).select_from(Score)) == len(pairs)
        run = Path(job.config["output_dir"])
    assert [r["step"] for r in metric_lines(run)] == [1, 2, 3]  # one writer


def test_a_launchers_other_precision_is_an_error_not_ignored(tmp_path, sample, monkeypatch):
    """accelerate launch --mixed_precision bf16 sets ACCELERATE_MIXED_PRECISION, which the
    config's own value would silently override."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(ConfigError, match="accelerate launch asked for bf16.*--mixed-precision"):
        train(small(tmp_path / "run"), sample, show_progress=False)


def test_the_7b_gpu_recipe_reads_as_documented() -> None:
    """Not run here (no GPU, no network): its settings at least are valid and as described."""
    cfg = TrainConfig.from_toml(REPO_ROOT / "recipes" / "qwen2.5-7b-lora-gpu.toml")
    assert (cfg.mixed_precision, cfg.gradient_checkpointing, cfg.finetune) == ("bf16", True, "lora")
    assert cfg.device == "cuda" and cfg.model.backbone == "Qwen/Qwen2.5-7B"
    text = (REPO_ROOT / "recipes" / "qwen2.5-7b-lora-gpu.toml").read_text()
    assert "NOT RUN" in text and "accelerate launch" in text and "torchrun" in text
