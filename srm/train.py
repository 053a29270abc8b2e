"""Training: an explicit Bradley-Terry loop on Hugging Face Accelerate.

The same code runs on a laptop CPU, one GPU, or many GPUs and nodes (``accelerate launch -m
srm.cli train ...``). One optimizer step reads ``grad_accum`` micro-batches of ``batch_size``
pairs per process; chosen and rejected responses of a micro-batch go through the backbone
together.

Step-labelled responses (``train_steps``: a TRL stepwise file, or annotators' sentence tags)
add a sentence-label term, ``step_weight`` times the mean binary cross-entropy of
sigmoid(r_j + c) against each labelled sentence's label (good = 1), the form TRL's
PRMTrainer trains per step; c, the model's ``label_offset``, is the labels' base rate, learned
(a sentence reward, a difference of prefix values, has no bias of its own) and read by no
score. Pairs and labelled responses mix in the same batches; either may be empty.

    >>> result = train(TrainConfig(model=ModelConfig(backbone="tiny"), max_steps=30,
    ...                            output_dir="runs/smoke"), load_pairs("data/sample_50.jsonl"))
    >>> result.output_dir   # a checkpoint directory: srm score --model runs/smoke

A run directory holds the final model (``config.json``, ``model.safetensors``), one JSON line
of metrics per logging step (``metrics.jsonl``) and resumable checkpoints
(``checkpoints/step-000100``). Checkpoints carry the optimizer state and the RNG state as
safetensors, and the step and the scheduler's ``state_dict()`` in their training record, so
``resume_from`` continues exactly where a run stopped: on CPU with the same seed, a resumed run
ends with the same weights as an uninterrupted one. (Checkpoints from before the scheduler's
state was saved resume too: the schedule is replayed to their step.) Ctrl-C writes a
resumable checkpoint before stopping, and so does a ``stop()`` that says yes (the CLI passes
SIGTERM's, see :mod:`srm.sigterm`). The final model itself carries no optimizer state, to stay
small.

This module is the loop (:func:`train`, a :class:`_Run` stepped through); the model it trains
and the policy term's reference are built in :mod:`srm.train_model`, the micro-batches made in
:mod:`srm.train_data`, and checkpoints saved, resumed from and checked in :mod:`srm.train_state`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from srm.collate import Batch
from srm.config import CHECKPOINTS_DIR, ConfigError, TrainConfig
from srm.data import PreferencePair, SentenceLabels
from srm.losses import bradley_terry, pair_metrics, policy_preference, step_label_loss
from srm.model import RewardOutput, SentenceRewardModel
from srm.parallel import (
    append_metrics,
    enable_gradient_checkpointing,
    evaluate,
    make_accelerator,
    mean_over_processes,
    start_metrics,
)
from srm.train_data import MicroBatches, credit_on_steps
from srm.train_model import INPUT_FIELDS, build_model, freeze_below, policy_reference
from srm.train_state import (
    TrainingError,
    check_weights,
    diverged,
    restore_training_state,
    resume_model,
    save_checkpoint,
)

# Re-exported: callers import the run's error, the model builder and the input fields from here.
__all__ = [
    "INPUT_FIELDS",
    "Progress",
    "TrainResult",
    "TrainingError",
    "build_model",
    "metrics_text",
    "train",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, float]], None]


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    total_steps: int
    seconds: float
    pairs_seen: int
    interrupted: bool = False
    responses_seen: int = 0
    """Step-labelled responses read (each counted once per time it was read)."""
    pair_ids: list[str] = field(default_factory=list)
    """The ids of the pairs the run trained on (a sample of them with ``max_pairs``)."""
    train_metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, Any] | None = None
    checkpoint: Path | None = None
    """The last checkpoint written: the final model, or the resumable one Ctrl-C wrote."""

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_seen / self.seconds if self.seconds > 0 else 0.0


def train(
    cfg: TrainConfig,
    train_pairs: Sequence[PreferencePair],
    eval_pairs: Sequence[PreferencePair] | None = None,
    *,
    progress: Progress | None = None,
    resume_from: str | Path | None = None,
    show_progress: bool = True,
    stop: Callable[[], bool] | None = None,
    train_steps: Sequence[SentenceLabels] = (),
    eval_steps: Sequence[SentenceLabels] = (),
) -> TrainResult:
    """Train a reward model on ``train_pairs`` and/or the step-labelled responses
    ``train_steps`` (see the module docstring). ``eval_steps``, held-out labelled responses,
    are scored at the end: how well the sentence rewards find the bad sentences
    (:func:`srm.evaluate.credit_report`, in ``eval_metrics["credit"]``). Held out by prompt,
    never by sentence: a held-out response whose prompt is also a training response's is
    refused, since its sentences' neighbours were learned.

    ``stop()`` is asked before every micro-batch; once it says True, training stops as Ctrl-C
    stops it: a resumable checkpoint at the last whole step, and ``result.interrupted``.
    ``progress(step, total, metrics)`` is called after every step, on the main process only;
    a KeyboardInterrupt it raises (a job's cancel) stops training the same way. Under
    ``torchrun``/``accelerate launch`` every process calls this function with the same
    arguments; see :mod:`srm.parallel` for what each does.
    """
    train_pairs, train_steps = _checked_inputs(cfg, train_pairs, train_steps, eval_steps)
    run = _Run(cfg, train_pairs, train_steps, resume_from, stop)
    bar = tqdm(
        total=run.total_steps,
        initial=run.step,
        unit="step",
        desc="training",
        disable=not (show_progress and run.accelerator.is_local_main_process),
    )
    try:
        while run.step < run.total_steps:
            if run.should_stop():
                raise KeyboardInterrupt  # Ctrl-C's way out: a resumable checkpoint
            if not run.micro_batch():
                continue  # the step's gradients are still accumulating
            run.end_step(bar)
            if eval_pairs and run.due(cfg.eval_every):
                run.evaluate(eval_pairs)
            if run.due(cfg.save_every):
                run.save_good()
            if progress is not None and run.accelerator.is_main_process:
                run.report(progress)
        if run.should_stop():  # asked during the last step: stop as during any other
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        run.interrupt()
    finally:
        bar.close()

    seconds = time.perf_counter() - run.start
    if not run.interrupted:
        run.check_weights()
        if eval_pairs:
            run.evaluate(eval_pairs)
        if eval_steps and run.accelerator.is_main_process:
            run.evaluate_credit(eval_steps)
        run.save_final()
    return run.result(seconds)


def _checked_inputs(
    cfg: TrainConfig,
    train_pairs: Sequence[PreferencePair],
    train_steps: Sequence[SentenceLabels],
    eval_steps: Sequence[SentenceLabels],
) -> tuple[Sequence[PreferencePair], list[SentenceLabels]]:
    """What the run trains on: the pairs (a sample of ``max_pairs`` of them) and the labelled
    responses; refused when that is nothing, or when the held-out responses share a prompt
    with the training ones."""
    train_steps = [s for s in train_steps if s.labelled]
    if cfg.max_pairs is not None and len(train_pairs) > cfg.max_pairs:
        train_pairs = random.Random(cfg.seed).sample(list(train_pairs), cfg.max_pairs)
    if not train_pairs and not train_steps:
        raise TrainingError(
            "nothing to train on: give at least one preference pair or a step-labelled response"
        )
    shared = {s.prompt for s in train_steps} & {s.prompt for s in eval_steps}
    if shared:
        raise TrainingError(
            f"eval steps: {len(shared)} held-out prompts are also in the training steps; "
            "hold labelled responses out by prompt, never by sentence (srm.audit.assign_folds "
            "splits by prompt)"
        )
    if train_steps and not cfg.step_weight:
        raise ConfigError(
            "step_weight: step-labelled responses were given but step_weight is 0; raise it "
            "(1 is the default) or leave the steps out"
        )
    return train_pairs, train_steps


def _starting_model(
    cfg: TrainConfig, resume_from: str | Path | None, labelled: bool
) -> tuple[SentenceRewardModel, dict[str, Any]]:
    """The model to train, built (see :func:`build_model`) or resumed, with the state a resumed
    run continues from (else empty), in training mode; ``labelled``: it learns a label offset
    for the step-labelled responses."""
    state: dict[str, Any] = {}
    if resume_from is not None:
        model, state = resume_model(cfg, Path(resume_from))
    else:
        model = build_model(cfg)
    freeze_below(model, cfg)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if cfg.policy_weight > 0 and not model.has_lm_head:
        raise ConfigError(
            f"policy_weight: backbone {cfg.model.backbone!r} has no language-model head; the "
            "HaF-RM policy term needs a decoder saved with one (e.g. smollm2), or policy_weight 0"
        )
    model.train()
    if cfg.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    if labelled and not hasattr(model, "label_offset"):
        # The labels' base rate (most sentences bad, say): r_j = v_j - v_(j-1) has no bias of
        # its own, so without this the term spends its first hundred steps learning one.
        # Only the loss reads it; no score or credit does.
        model.label_offset = torch.nn.Parameter(torch.zeros(()))
    return model, state


def _optimizer(model: SentenceRewardModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable weights: the backbone's at ``lr``, the heads' at ``head_lr``."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    backbone_params = [p for n, p in named if n.startswith("backbone.")]
    head_params = [p for n, p in named if not n.startswith("backbone.")]
    return torch.optim.AdamW(
        [
            {"params": backbone_params, "lr": cfg.lr},
            {"params": head_params, "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )


class _Run:
    """One run of :func:`train`: what set-up made (the prepared model, optimizer, scheduler and
    micro-batches) and where the run stands (step, metrics window, checkpoints), with the
    steps the loop takes."""

    def __init__(
        self,
        cfg: TrainConfig,
        pairs: Sequence[PreferencePair],
        steps: Sequence[SentenceLabels],
        resume_from: str | Path | None,
        stop: Callable[[], bool] | None,
    ) -> None:
        self.cfg, self.pairs, self.stop = cfg, pairs, stop
        self.accelerator = accelerator = make_accelerator(cfg)
        self.out_dir = Path(cfg.output_dir)
        set_seed(cfg.seed)
        model, self.state = _starting_model(cfg, resume_from, labelled=bool(steps))
        self.policy = cfg.policy_weight > 0
        optimizer = _optimizer(model, cfg)
        self.batches = MicroBatches(accelerator, model, cfg, pairs, steps)
        self.total_steps = cfg.max_steps or max(
            1, math.ceil(cfg.epochs * self.batches.per_epoch / cfg.grad_accum)
        )
        self.scheduler = get_scheduler(
            "constant_with_warmup" if cfg.scheduler == "constant" else cfg.scheduler,
            optimizer,
            num_warmup_steps=int(cfg.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
        )
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        unwrapped = accelerator.unwrap_model(self.model)
        self.reference = policy_reference(unwrapped, cfg) if self.policy else None
        self.step = 0
        if self.state:
            self.step = restore_training_state(
                self.state, unwrapped, self.optimizer, self.scheduler
            )
            log.info("resumed at step %d", self.step)
        if accelerator.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        # metrics.jsonl this run's own: it never appends to another run's lines.
        start_metrics(accelerator, self.out_dir, resume_from, self.step)
        n = len(pairs)
        self.metric_keys = (
            (["bt_loss", "policy_loss"] if self.policy and n else [])
            + (["step_loss", "step_accuracy"] if steps else [])
            + (["accuracy", "margin", "reward_mean", "reward_std"] if n else [])
        )
        self.micro = self.step * cfg.grad_accum
        self.micro_batches = self.batches.starting_at(self.micro)
        self.cancelled = False  # a progress callback raised KeyboardInterrupt
        self.window: list[dict[str, torch.Tensor]] = []
        self.step_loss: torch.Tensor | None = None  # the loss summed over this step's micro-batches
        self.last_metrics: dict[str, float] = {}
        self.eval_metrics: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None
        # The newest checkpoint known to hold finite weights: where a diverged run can go back to.
        self.last_good = Path(resume_from) if resume_from is not None else None
        self.pairs_seen = self.responses_seen = 0
        self.interrupted = False
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Training time of the whole run, over every resume."""
        return self.state.get("seconds", 0.0) + time.perf_counter() - self.start

    def should_stop(self) -> bool:
        """Whether to stop before the next micro-batch: asked by ``stop()`` or a progress
        callback on any process. Several processes agree (one all-reduce), so they all stop at
        the same micro-batch and meet at the checkpoint."""
        world = self.accelerator.num_processes
        if (self.stop is not None and self.stop()) or self.cancelled:
            if world == 1:
                return True
            self.accelerator.set_trigger()
        return world > 1 and self.accelerator.check_trigger()

    def due(self, every: int | None) -> bool:
        """Whether this step is one of every ``every`` (never the last: the end has its own)."""
        return bool(every) and self.step % every == 0 and self.step < self.total_steps

    def micro_batch(self) -> bool:
        """Forward and backward through the next micro-batch, and on the last of a step the
        optimizer's update; whether a step was completed."""
        accelerator = self.accelerator
        batch, margin, labels = next(self.micro_batches)  # on the device already
        with accelerator.accumulate(self.model), accelerator.autocast():
            out = self.model(batch, with_logprob=self.policy and len(margin) > 0)
            loss, parts = self.loss(batch, out, margin, labels)
            accelerator.backward(loss)
            step_loss = self.step_loss
            self.step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
            # accumulate() sets sync_gradients on the last micro-batch of an optimizer step:
            # only then are the summed gradients clipped and applied. (Accelerate's wrapped
            # optimizer would skip a step in between too, but the loop says it here.)
            if accelerator.sync_gradients:
                self.update()
        b = len(margin)
        self.micro += 1
        self.pairs_seen += b * accelerator.num_processes
        self.responses_seen += len(labels) * accelerator.num_processes
        # Tensors until the next metrics line: converting them here would sync every
        # micro-batch. Every row has every key (NaN where a batch had no pair or no
        # labelled response), so the lines average what each batch had.
        self.window.append(
            {"loss": loss.detach()}
            | dict.fromkeys(self.metric_keys, torch.tensor(float("nan"), device=loss.device))
            | parts
            | (pair_metrics(out.score[:b], out.score[b : 2 * b]) if b else {})
        )
        return accelerator.sync_gradients

    def loss(
        self, batch: Batch, out: RewardOutput, margin: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A micro-batch's loss: Bradley-Terry on its pairs, plus the policy term and the
        sentence-label term where they apply; and those terms apart, for the metrics."""
        cfg = self.cfg
        b = len(margin)
        s_chosen, s_rejected = out.score[:b], out.score[b : 2 * b]  # (B,), (B,)
        margin = margin if self.batches.has_margin else None
        loss = out.score.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        if b:
            loss = bradley_terry(s_chosen, s_rejected, margin, cfg.center_rewards_coefficient)
        if b and self.reference is not None:
            logp, ref = out.response_logprob, self.reference(batch)  # (2B,), (2B,)
            term = policy_preference(
                logp[:b], logp[b : 2 * b], ref[:b], ref[b : 2 * b], cfg.policy_beta
            )
            parts = {"bt_loss": loss.detach(), "policy_loss": term.detach()}
            loss = loss + cfg.policy_weight * term
        if len(labels):
            rewards = out.sentence_rewards[2 * b :]  # (S, M)
            offset = self.accelerator.unwrap_model(self.model).label_offset
            term, accuracy = step_label_loss(rewards + offset, labels)
            parts |= {"step_loss": term.detach(), "step_accuracy": accuracy}
            loss = loss + cfg.step_weight * term
        return loss, parts

    def update(self) -> None:
        """The optimizer's step on the summed gradients, clipped; refused once the step's loss
        is not finite."""
        # The one device sync per step, before the step can spoil the weights; summed over
        # processes, so that all of them stop if one diverged.
        step_loss = self.accelerator.reduce(self.step_loss, "sum")
        if not torch.isfinite(step_loss):
            raise diverged(f"the loss is {step_loss.item()}", self.step, self.last_good)
        self.step_loss = None
        if self.cfg.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()

    def end_step(self, bar: tqdm) -> None:
        """After a step's update: the schedule moves on, and every ``log_every`` steps (and at
        the last) the window's metrics go to the bar and to ``metrics.jsonl``."""
        self.scheduler.step()
        self.step += 1
        bar.update(1)
        if self.step % max(self.cfg.log_every, 1) != 0 and self.step != self.total_steps:
            return
        self.last_metrics = mean_over_processes(self.accelerator, self.window) | {
            "lr": self.scheduler.get_last_lr()[0],
            "epoch": self.micro / self.batches.per_epoch,
        }
        self.window = []
        shown = {"loss": f"{self.last_metrics['loss']:.4f}"}
        if "accuracy" in self.last_metrics:
            shown["acc"] = f"{self.last_metrics['accuracy']:.2f}"
        if "step_accuracy" in self.last_metrics:
            shown["step_acc"] = f"{self.last_metrics['step_accuracy']:.2f}"
        bar.set_postfix(**shown)
        append_metrics(self.accelerator, self.out_dir, {"step": self.step, **self.last_metrics})

    def report(self, progress: Progress) -> None:
        """``progress`` told of the step; a KeyboardInterrupt it raises (a cancel) stops the
        run with the other processes, at the next check."""
        try:
            progress(self.step, self.total_steps, self.last_metrics)
        except KeyboardInterrupt:
            self.cancelled = True

    def evaluate(self, eval_pairs: Sequence[PreferencePair]) -> None:
        """The held-out pairs scored (on every process, in shards; see :mod:`srm.parallel`)."""
        self.eval_metrics = evaluate(
            self.accelerator, self.model, eval_pairs, self.out_dir, self.step
        )

    def evaluate_credit(self, eval_steps: Sequence[SentenceLabels]) -> None:
        """The sentence rewards' credit on the held-out labelled responses (main process)."""
        credit = credit_on_steps(self.accelerator.unwrap_model(self.model), eval_steps)
        self.eval_metrics = (self.eval_metrics or {}) | {"credit": credit}
        append_metrics(
            self.accelerator, self.out_dir, {"step": self.step, "eval": {"credit": credit}}
        )
        self.model.train()

    def check_weights(self) -> None:
        """Stop the run (:func:`srm.train_state.diverged`) if a trained weight is not finite."""
        check_weights(self.model, self.step, self.last_good)

    def save_good(self) -> None:
        """A resumable checkpoint of weights checked finite: the newest good one."""
        self.check_weights()  # a bad save would rotate out a good one
        self.last_checkpoint = self.last_good = self.save(resumable=True)

    def save_final(self) -> None:
        """The final model, lean (no optimizer state): resumable ones live in checkpoints/."""
        self.last_checkpoint = self.save(resumable=False)

    def save(self, *, resumable: bool) -> Path:
        """The model at this step: a resumable checkpoint in ``checkpoints/``, else the run's
        final model in its output directory."""
        path = (
            self.out_dir / CHECKPOINTS_DIR / f"step-{self.step:06d}" if resumable else self.out_dir
        )
        return save_checkpoint(
            self.accelerator,
            self.model,
            self.cfg,
            self.step,
            self.total_steps,
            path,
            optimizer=self.optimizer if resumable else None,
            scheduler=self.scheduler if resumable else None,
            seconds=self.elapsed(),
        )

    def interrupt(self) -> None:
        """Ctrl-C, ``stop()`` or a cancel: a resumable checkpoint at the last whole step."""
        self.interrupted = True
        log.warning("interrupted at step %d; writing a resumable checkpoint", self.step)
        self.optimizer.zero_grad()  # a half-accumulated step is dropped: the checkpoint is at step
        self.last_checkpoint = self.save(resumable=True)

    def result(self, seconds: float) -> TrainResult:
        return TrainResult(
            output_dir=self.out_dir,
            steps=self.step,
            total_steps=self.total_steps,
            seconds=seconds,
            pairs_seen=self.pairs_seen,
            responses_seen=self.responses_seen,
            pair_ids=[p.id for p in self.pairs],
            interrupted=self.interrupted,
            train_metrics=self.last_metrics,
            eval_metrics=self.eval_metrics,
            checkpoint=self.last_checkpoint,
        )


def metrics_text(metrics: dict[str, float]) -> str:
    """A metrics line for people: ``loss 0.6931 · acc 0.50 · step acc 0.71`` (what a run had:
    pair accuracy with pairs, sentence-label accuracy with labelled responses)."""
    parts = [f"loss {metrics['loss']:.4f}"] if "loss" in metrics else []
    if "accuracy" in metrics:
        parts.append(f"acc {metrics['accuracy']:.2f}")
    if "step_accuracy" in metrics:
        parts.append(f"step acc {metrics['step_accuracy']:.2f}")
    return " · ".join(parts)
