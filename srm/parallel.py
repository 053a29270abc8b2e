"""What training needs to run on several processes (``accelerate launch``, ``torchrun``) or with
a large backbone, all through Accelerate: the :class:`~accelerate.Accelerator` a config asks for,
the global batches every process takes its share of, metrics averaged over the processes and
written by the main one, evaluation scored in shards and gathered, and gradient checkpointing
on the backbone.

``batch_size`` is per process. A step's global batch is ``batch_size * processes`` pairs per
micro-batch (times ``grad_accum`` micro-batches), and the data order is a function of that
global batch alone: :class:`GlobalBatches` draws length-grouped global batches, and Accelerate
(``split_batches=True``) hands each process its slice. So two processes with ``batch_size`` 4
see, step for step, the pairs one process sees with ``batch_size`` 8, and DDP's mean of their
gradients is the single process's gradient: the runs agree up to float rounding
(``tests/srm/test_multiprocess.py`` measures it).

    >>> accelerator = make_accelerator(cfg)      # refuses fp16 on a CPU
    >>> sampler = GlobalBatches(lengths, cfg.batch_size * accelerator.num_processes, seed=0)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin
from torch.utils.data import DataLoader

from srm.collate import length_grouped_batches
from srm.config import CHECKPOINTS_DIR, METRICS_FILE, ConfigError, TrainConfig
from srm.data import PreferencePair

log = logging.getLogger(__name__)

#: Eval pairs per forward pass on each process.
EVAL_BATCH_SIZE = 16


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    """The Accelerator for ``cfg``: its device, mixed precision and gradient accumulation.

    Raises :class:`ConfigError` for a choice this machine cannot honour: a GPU that is not
    there, fp16 on a CPU (Accelerate would silently train in fp32), bf16 on a GPU without
    bfloat16; and for ``accelerate launch --mixed_precision`` other than the config's. Under
    ``accelerate launch``/``torchrun`` the launcher's environment says which process this is
    and which device it owns.
    """
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no GPU is visible; use auto or cpu")
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher != cfg.mixed_precision and launcher in ("fp16", "bf16"):
        # The config's value wins in Accelerator(); say so rather than train in another one.
        raise ConfigError(
            f"mixed_precision: accelerate launch asked for {launcher}, the training config "
            f"for {cfg.mixed_precision}; give srm train --mixed-precision {launcher} (the "
            "checkpoint records the config's)"
        )
    device = PartialState(cpu=cfg.device == "cpu").device
    if cfg.mixed_precision == "fp16" and device.type == "cpu":
        raise ConfigError(
            "mixed_precision: fp16 needs a GPU, and this run is on the CPU; use bf16 (which "
            "PyTorch autocasts on CPUs) or no"
        )
    if (
        cfg.mixed_precision == "bf16"
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported()
    ):
        raise ConfigError(
            f"mixed_precision: bf16 needs a GPU with bfloat16 (Ampere or newer), and "
            f"{torch.cuda.get_device_name(device)} has none; use fp16 or no"
        )
    try:
        return Accelerator(
            cpu=cfg.device == "cpu",
            mixed_precision=cfg.mixed_precision,
            # An optimizer step is grad_accum micro-batches even across an epoch's end: the
            # step count is the same on any number of processes (and as before).
            gradient_accumulation_plugin=GradientAccumulationPlugin(
                num_steps=cfg.grad_accum, sync_with_dataloader=False
            ),
            # The loader yields global batches; each process gets its slice of each.
            dataloader_config=DataLoaderConfiguration(split_batches=True),
        )
    except ValueError as err:  # e.g. a second precision in one process: Accelerate's state
        raise ConfigError(f"mixed_precision: {err}") from err


class GlobalBatches:
    """A batch sampler of global batches: ``batch_size`` pair indices each, grouped by length
    (:func:`~srm.collate.length_grouped_batches`) and shuffled with ``seed + epoch``.

    The one short batch of an epoch comes last, where Accelerate's ``split_batches`` looks for
    it: on one process it is a short step, on several Accelerate fills it up with the epoch's
    first pairs so that every process gets a slice of the same size.

    >>> [len(b) for b in GlobalBatches([5, 3, 9, 4, 7], batch_size=2)]
    [2, 2, 1]
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0) -> None:
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.drop_last = False  # read by Accelerate
        # Set by the training loop. (Not a set_epoch method: Accelerate's loaders call that
        # with their own count of iterations, which restarts when a resumed run skips ahead.)
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        batches = length_grouped_batches(
            self.lengths, self.batch_size, shuffle=True, seed=self.seed + self.epoch
        )
        batches.sort(key=lambda batch: len(batch) < self.batch_size)  # stable: order kept
        return iter(batches)


def mean_over_processes(
    accelerator: Accelerator, rows: list[dict[str, torch.Tensor]]
) -> dict[str, float]:
    """Each metric's mean over the micro-batches since the last line and over the processes
    (equal slices of the same global batches), as floats: one all-reduce and one copy to the
    host (and so one device sync) per metrics line."""
    if not rows:
        return {}
    keys = list(rows[0])
    table = torch.stack([torch.stack([row[k].float() for k in keys]) for row in rows])  # (N, K)
    table = accelerator.reduce(table, "mean")  # (N, K), the same on every process
    means = table.to("cpu", torch.float64).nanmean(dim=0)  # (K,): NaN = not in that batch
    return {k: v for k, v in zip(keys, means.tolist(), strict=True) if math.isfinite(v)}


def start_metrics(
    accelerator: Accelerator, out_dir: Path, resume_from: str | os.PathLike[str] | None, step: int
) -> None:
    """Make ``out_dir/metrics.jsonl`` this run's own before its first line, so that a run never
    appends to another run's lines (a run that fails half-way included).

    A run started afresh, or resumed from another directory's checkpoint, into a directory
    that holds an earlier run's ``metrics.jsonl`` starts the file again (the earlier run's
    model, if any, is the one this run replaces). A run resumed from one of this directory's
    own checkpoints keeps the lines up to ``step``, the checkpoint's: a run that went on past
    its checkpoint and then died logged steps it will log again. The file must be a regular
    file or absent (:func:`srm.files.output_target`): a FIFO there would block the first
    write. Every process checks; the main one writes.
    """
    from srm.files import FileError, output_target, write_atomically

    path = out_dir / METRICS_FILE
    try:
        target = output_target(path)
    except FileError as err:
        raise ConfigError(f"output_dir: {err}") from None
    if not accelerator.is_main_process or not target.exists():
        return
    own = resume_from is not None and _is_inside(Path(resume_from), out_dir / CHECKPOINTS_DIR)
    kept = [line for line in _metrics_lines(target) if _step(line) <= step] if own else []
    if not own:
        log.warning("%s: a new run; the earlier run's metrics there are replaced", path)
    write_atomically(path, kept)


def _is_inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _metrics_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        yield from (line if line.endswith("\n") else line + "\n" for line in fh)


def _step(line: str) -> float:
    """A metrics line's step; a line cut short (a killed run) counts as past every step."""
    try:
        step = json.loads(line)["step"]
    except (ValueError, TypeError, KeyError):
        return math.inf
    return step if isinstance(step, int) else math.inf


def append_metrics(accelerator: Accelerator, out_dir: Path, record: dict[str, Any]) -> None:
    """One line of ``metrics.jsonl``, written by the main process only (after
    :func:`start_metrics`)."""
    if accelerator.is_main_process:
        with (out_dir / METRICS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def evaluate(
    accelerator: Accelerator,
    model: torch.nn.Module,
    pairs: Sequence[PreferencePair],
    out_dir: Path,
    step: int,
) -> dict[str, Any]:
    """Evaluate on ``pairs`` at ``step`` (:func:`evaluate_sharded`), log the report as a line
    of ``metrics.jsonl`` and put the model back in training mode."""
    report = evaluate_sharded(accelerator, model, pairs)
    append_metrics(accelerator, out_dir, {"step": step, "eval": report})
    if accelerator.is_main_process:
        log.info("step %d: eval accuracy %.4f", step, report["accuracy"])
    model.train()
    return report


def evaluate_sharded(
    accelerator: Accelerator, model: torch.nn.Module, pairs: Sequence[PreferencePair]
) -> dict[str, Any]:
    """The eval report (:func:`srm.evaluate.summarize`'s ``overall``) of ``pairs``: each process
    scores its share, ``gather_for_metrics`` collects the scores in order (dropping the pairs
    Accelerate repeated to even the last batch), and every process gets the same report."""
    from srm.evaluate import summarize
    from srm.score import score_pairs

    unwrapped = accelerator.unwrap_model(model)
    loader = accelerator.prepare(
        DataLoader(
            range(len(pairs)),
            batch_size=EVAL_BATCH_SIZE * accelerator.num_processes,
            collate_fn=list,
        )
    )
    records = []
    with torch.no_grad():
        for ids in loader:
            scored = score_pairs(unwrapped, [pairs[i] for i in ids], batch_size=EVAL_BATCH_SIZE)
            records.extend(accelerator.gather_for_metrics(scored, use_gather_object=True))
    return summarize(records)["overall"]


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute the backbone's activations in the backward pass instead of keeping them: a
    fraction of the memory for one more forward pass per step (the way a 7B backbone trains on
    one GPU). ``model`` is a :class:`~srm.model.SentenceRewardModel`, its backbone plain or LoRA."""
    backbone = model.backbone
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"gradient_checkpointing: the backbone ({type(base).__name__}) does not support it; "
            "leave it off"
        )
    # Non-reentrant checkpointing needs no input that requires grad (LoRA's frozen embeddings)
    # and works under DDP.
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # its name since transformers 5
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
