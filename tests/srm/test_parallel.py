"""srm.parallel's metrics file: a run writes only its own lines in ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from srm.config import ConfigError, ModelConfig, TrainConfig
from srm.data import PreferencePair, load_pairs
from srm.train import train


@pytest.fixture(scope="module")
def pairs() -> list[PreferencePair]:
    return load_pairs(Path(__file__).resolve().parents[2] / "data" / "sample_50.jsonl")[:8]


def config(out: Path, **overrides) -> TrainConfig:
    fields = {
        "model": ModelConfig(backbone="tiny", d=16, max_length=64),
        "finetune": "heads",
        "max_steps": 4,
        "batch_size": 2,
        "log_every": 1,
        "device": "cpu",
        "output_dir": str(out),
    }
    return TrainConfig(**(fields | overrides))


def steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["step"] for line in lines]


def test_a_failed_run_never_appends_to_an_earlier_runs_metrics(tmp_path: Path, pairs) -> None:
    """A second run into the same directory starts metrics.jsonl again; failing half-way, it
    leaves its own lines, not the earlier run's with its own after them."""
    run = tmp_path / "run"
    train(config(run), pairs, show_progress=False)
    assert steps(run) == [1, 2, 3, 4]

    def fail_at_step_2(step: int, total: int, metrics: dict) -> None:
        if step == 2:
            raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError, match="went away"):
        train(config(run), pairs, show_progress=False, progress=fail_at_step_2)
    assert steps(run) == [1, 2]


def test_a_resumed_run_keeps_its_lines_up_to_its_checkpoint(tmp_path: Path, pairs) -> None:
    """Resumed from its own checkpoint at step 2, a run that had gone on to step 4 logs steps
    3 and 4 once, not twice."""
    run = tmp_path / "run"
    train(config(run, save_every=2), pairs, show_progress=False)
    assert steps(run) == [1, 2, 3, 4]
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"step": 5, "lo')  # a line cut short by a kill
    checkpoint = run / "checkpoints" / "step-000002"
    train(config(run, save_every=2), pairs, show_progress=False, resume_from=checkpoint)
    assert steps(run) == [1, 2, 3, 4]

    # Resumed into another run's directory, a checkpoint's run starts that file again.
    other = tmp_path / "other"
    train(config(other, max_steps=1), pairs, show_progress=False)
    train(config(other, save_every=2), pairs, show_progress=False, resume_from=checkpoint)
    assert steps(other) == [3, 4]


def test_a_metrics_file_that_is_a_fifo_is_refused(tmp_path: Path, pairs) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "metrics.jsonl")
    # A reader holds the FIFO open, so that srm before this rule (which opened it to append)
    # fails this test instead of blocking it.
    reader = os.open(run / "metrics.jsonl", os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(
            ConfigError,
            match=r"output_dir: .*run/metrics.jsonl: not a regular file or a new path \(it is a "
            r"FIFO\)",
        ):
            train(config(run), pairs, show_progress=False)
    finally:
        os.close(reader)
    assert (run / "metrics.jsonl").is_fifo()
