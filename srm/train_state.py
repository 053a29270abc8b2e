"""What a training run (:mod:`srm.train`) keeps on disk and reads back: its checkpoints (the
final model, or a resumable one with the optimizer's state per parameter name, the RNG state
and the scheduler's ``state_dict()``), resuming from one, and the checks that stop a diverged
run before it saves weights that are not finite. :class:`TrainingError` is what a run raises
when it cannot start or continue.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from srm import checkpoint
from srm.config import CHECKPOINTS_DIR, ConfigError, ModelConfig, TrainConfig
from srm.model import SentenceRewardModel

#: Resumable checkpoints a run keeps in ``checkpoints/`` (older ones are removed).
KEEP_CHECKPOINTS = 2


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why."""


def diverged(what: str, step: int, last_good: Path | None) -> TrainingError:
    """The error that stops a run whose numbers stopped being finite; nothing more is saved,
    so every checkpoint on disk holds finite weights."""
    kept = (
        f"the last good checkpoint is {last_good}"
        if last_good is not None
        else "no checkpoint was written before it (--save-every N keeps one every N steps)"
    )
    return TrainingError(
        f"training diverged after step {step}: {what}. Nothing more was saved; {kept}. Lower "
        "--lr/--head-lr, keep --max-grad-norm on, or check the data's margins"
    )


def check_weights(model: torch.nn.Module, step: int, last_good: Path | None) -> None:
    """Raise :func:`diverged` when a trained weight is inf or nan (the loss can stay finite
    for a step after the weights are spoilt)."""
    bad = next(
        (n for n, p in model.named_parameters() if p.requires_grad and not p.isfinite().all()),
        None,
    )
    if bad is not None:
        raise diverged(f"weight {bad} is not finite", step, last_good)


def save_checkpoint(
    accelerator: Accelerator,
    model: torch.nn.Module,
    cfg: TrainConfig,
    step: int,
    total_steps: int,
    path: Path,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    seconds: float | None = None,
) -> Path:
    """Save the model at ``path``; with ``optimizer`` and ``scheduler``, a resumable checkpoint:
    the optimizer's state per parameter name and the RNG state as tensors beside the weights,
    the scheduler's ``state_dict()`` (plain numbers) in the training record. ``seconds``, the
    run's training time so far, goes in the record too (the recipe table reads it)."""
    resumable = optimizer is not None and scheduler is not None
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        tensors = {}
        training = {
            "config": cfg.to_dict(),
            "step": step,
            "total_steps": total_steps,
            "resumable": resumable,
        }
        if seconds is not None:
            training["seconds"] = round(seconds, 3)
        if resumable:
            tensors["rng.torch"] = torch.get_rng_state()
            names = {id(p): name for name, p in unwrapped.named_parameters()}
            for group in optimizer.param_groups:
                for p in group["params"]:
                    for key, value in optimizer.state.get(p, {}).items():
                        tensors[f"optim.{names[id(p)]}.{key}"] = torch.as_tensor(value)
            training["scheduler"] = scheduler.state_dict()
        checkpoint.save(unwrapped, path, training=training, extra_tensors=tensors)
        if path.parent.name == CHECKPOINTS_DIR:
            for old in sorted(path.parent.glob("step-*"))[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def resume_model(cfg: TrainConfig, path: Path) -> tuple[SentenceRewardModel, dict[str, Any]]:
    """The model of the resumable checkpoint at ``path`` and the state to continue from (for
    :func:`restore_training_state`); refused when it was trained with other settings."""
    try:
        info = checkpoint.read_info(path)
    except checkpoint.CheckpointError as err:
        raise TrainingError(
            f"resume_from: {err}. Resume from one of a run's checkpoints/step-N directories"
        ) from err
    saved = (info.training or {}).get("config")
    if saved is None or not info.training.get("resumable"):
        raise TrainingError(
            f"{path}: not a resumable training checkpoint (no optimizer state); resume from "
            "one of the run's checkpoints/step-N directories"
        )
    differs = [
        key
        for key in (
            "model",
            "finetune",
            "lora_r",
            "lora_alpha",
            "lora_targets",
            "batch_size",
            "grad_accum",
            "seed",
        )
        if _comparable(saved, key) != cfg.to_dict()[key]
    ]
    if differs:
        raise TrainingError(
            f"{path}: the checkpoint was trained with different {', '.join(differs)}; resume with "
            "the same settings (see its config.json)"
        )
    try:
        model = checkpoint.load(path)
        state = {
            "step": info.training["step"],
            "tensors": checkpoint.load_extra_tensors(path),
            # Absent from checkpoints written before the scheduler's state was saved.
            "scheduler": info.training.get("scheduler"),
            "seconds": info.training.get("seconds", 0.0),
        }
    except checkpoint.CheckpointError as err:
        raise TrainingError(f"resume_from: {err}") from err
    if cfg.finetune == "heads":
        model.backbone.requires_grad_(False)
    return model, state


def _comparable(saved: dict[str, Any], key: str) -> Any:
    """A saved config value as this version writes it: a model config saved before a field
    existed gets that field's default (which it was trained with)."""
    value = saved.get(key)
    if key == "model" and isinstance(value, dict):
        try:
            return ModelConfig.from_dict(value).to_dict()
        except ConfigError:
            return value
    return value


def restore_training_state(
    state: dict[str, Any],
    model: SentenceRewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> int:
    """Put the optimizer's state, the scheduler's and the RNG's from :func:`resume_model` back;
    the step to continue from."""
    step = state["step"]
    tensors = state["tensors"]
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith("optim."):
            name, _, slot = key[len("optim.") :].rpartition(".")
            optimizer.state[params[name]][slot] = value.to(params[name].device)
    if state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
        # load_state_dict restores the scheduler only: the optimizer's rates come from it.
        for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True):
            group["lr"] = lr
    else:
        # An older checkpoint: replay the schedule to its step (it is a function of the step
        # alone). torch warns about a scheduler stepped before its optimizer: here that is
        # the point.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"(Detected call of|Seems like) `", UserWarning)
            for _ in range(step):
                scheduler.step()
    torch.set_rng_state(tensors["rng.torch"])
    return step
