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
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from srm import checkpoint
from srm.collate import Batch, Encoded, collate, encode_many, encode_pairs
from srm.config import CHECKPOINTS_DIR, HEADS, ConfigError, ModelConfig, TrainConfig
from srm.data import PreferencePair, SentenceLabels
from srm.losses import bradley_terry, pair_metrics, policy_preference, step_label_loss
from srm.model import SentenceRewardModel, boundary_embedding
from srm.parallel import (
    GlobalBatches,
    append_metrics,
    enable_gradient_checkpointing,
    evaluate,
    make_accelerator,
    mean_over_processes,
    start_metrics,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, float]], None]
KEEP_CHECKPOINTS = 2


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why."""


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


#: ModelConfig fields a run started from a checkpoint (``init_from``) may change: how inputs
#: are built, not what the weights are.
INPUT_FIELDS = ("max_length", "score_max_length", "prompt_fraction", "max_sentence_chars")


def build_model(cfg: TrainConfig) -> SentenceRewardModel:
    """A model set up for ``cfg.finetune`` (LoRA adapters, all weights, or heads only): fresh
    heads on the backbone, or the weights of ``cfg.init_from``."""
    if cfg.init_from is not None:
        model = _initial_model(cfg)
    else:
        model = SentenceRewardModel.create(cfg.model, seed=cfg.seed)
    layers = _trained_layers(model, cfg)
    if cfg.finetune == "heads":
        model.backbone.requires_grad_(False)
    elif cfg.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            lora = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=cfg.lora_targets,
                layers_to_transform=layers,
                layers_pattern=_layers_pattern(model.backbone) if layers else None,
            )
            try:
                model.backbone = get_peft_model(model.backbone, lora)
            except ValueError as err:
                raise ConfigError(f"lora_targets: {err}") from err
    return model


def _initial_model(cfg: TrainConfig) -> SentenceRewardModel:
    """The model at ``cfg.init_from``, as a trainable starting point: its LoRA adapters (if
    any) merged into the backbone, every weight trainable again, its input settings replaced
    by the config's; a ``likelihood_feature`` it lacks starts at weight 0."""
    path = Path(cfg.init_from)
    try:
        info = checkpoint.read_info(path)
        if info.model.head != cfg.model.head or info.model.head not in HEADS:
            raise TrainingError(
                f"init_from: {path} is a {info.model.head}-head model; this run trains a "
                f"{cfg.model.head} head (start from a model with the same head)"
            )
        start = info.model.to_dict()
        wanted = cfg.model.to_dict()
        differs = [
            k
            for k in wanted
            if k not in INPUT_FIELDS and k != "likelihood_feature" and start.get(k) != wanted[k]
        ]
        if differs:
            raise TrainingError(
                f"init_from: {path} has a different {', '.join(differs)} "
                f"({', '.join(f'{k}={start.get(k)!r}' for k in differs)}); give the same, or "
                "train from the plain backbone"
            )
        model = checkpoint.load(path)
    except checkpoint.CheckpointError as err:
        raise TrainingError(f"init_from: {err}") from err
    from srm.backbones import PACKAGE_BACKBONES
    from srm.checkpoint import is_peft

    if is_peft(model.backbone):
        model.backbone = model.backbone.merge_and_unload()
    if info.backbone_weights in ("full", "partial", "lora"):
        # Its backbone is no longer the package's: every weight of it is saved from now on,
        # and LoRA, which would save adapters over the package's weights, cannot start here.
        model.backbone_trained = True
        if cfg.finetune == "lora" and info.model.backbone in PACKAGE_BACKBONES:
            raise ConfigError(
                f"init_from: {path} holds trained backbone weights, and LoRA saves only "
                "adapters over the package's; use finetune full or heads"
            )
    model.requires_grad_(True)
    model.config = cfg.model
    if cfg.model.likelihood_feature and not hasattr(model, "likelihood_weight"):
        if not model.has_lm_head:
            raise ConfigError(
                f"likelihood_feature: backbone {cfg.model.backbone!r} has no language-model head"
            )
        model.likelihood_weight = torch.nn.Parameter(torch.zeros(()))
    model.train()
    return model


def _trained_layers(model: SentenceRewardModel, cfg: TrainConfig) -> list[int] | None:
    """Indices of the top ``cfg.train_layers`` layers (None: all)."""
    if cfg.train_layers is None:
        return None
    total = getattr(model.backbone.config, "num_hidden_layers", None)
    if total is None or cfg.train_layers > total:
        raise ConfigError(
            f"train_layers: got {cfg.train_layers}, but backbone {cfg.model.backbone!r} has "
            f"{total or 'no numbered'} layers"
        )
    return list(range(total - cfg.train_layers, total))


def _layers_pattern(backbone: torch.nn.Module) -> str | None:
    """The name of the backbone's list of layers (``layers`` in Llama, ``layer`` in BERT), for
    PEFT's ``layers_to_transform``."""
    for name, _ in backbone.named_modules():
        found = re.search(r"(?:^|\.)([A-Za-z_]+)\.\d+$", name)
        if found:
            return found.group(1)
    return None


def _freeze_below(model: SentenceRewardModel, cfg: TrainConfig) -> None:
    """With ``train_layers``: no gradient below the top layers, so no backward pass there.
    LoRA places adapters in the top layers only (see build_model); full fine-tuning freezes
    the embeddings and lower layers here; the marker embedding is frozen in both cases."""
    layers = _trained_layers(model, cfg)
    if layers is None:
        return
    model.marker_embedding.requires_grad_(False)
    if cfg.finetune != "full":
        return
    for name, param in model.backbone.named_parameters():
        index = re.search(r"\.(\d+)\.", f".{name}")
        if index is None:  # embeddings (frozen), final norm (trained)
            param.requires_grad_("embed" not in name)
        else:
            param.requires_grad_(int(index.group(1)) in layers)


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
    accelerator = make_accelerator(cfg)
    out_dir = Path(cfg.output_dir)
    set_seed(cfg.seed)

    state: dict[str, Any] = {}
    if resume_from is not None:
        model, state = _resume_model(cfg, Path(resume_from))
    else:
        model = build_model(cfg)
    _freeze_below(model, cfg)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    policy = cfg.policy_weight > 0
    if policy and not model.has_lm_head:
        raise ConfigError(
            f"policy_weight: backbone {cfg.model.backbone!r} has no language-model head; the "
            "HaF-RM policy term needs a decoder saved with one (e.g. smollm2), or policy_weight 0"
        )
    model.train()
    if cfg.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    if train_steps and not hasattr(model, "label_offset"):
        # The labels' base rate (most sentences bad, say): r_j = v_j - v_(j-1) has no bias of
        # its own, so without this the term spends its first hundred steps learning one.
        # Only the loss reads it; no score or credit does.
        model.label_offset = torch.nn.Parameter(torch.zeros(()))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    backbone_params = [p for n, p in named if n.startswith("backbone.")]
    head_params = [p for n, p in named if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [
            {"params": backbone_params, "lr": cfg.lr},
            {"params": head_params, "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )

    # Tokenise once; each epoch reorders indices into length-grouped global batches, and the
    # prepared loader gives this process its slice of each (see srm.parallel). Indices below
    # n are pairs (two sequences each), the rest step-labelled responses (one each).
    encoded = encode_pairs(model.tokenizer, model.config, train_pairs) if train_pairs else []
    n = len(train_pairs)
    steps_encoded = _encode_steps(model, train_steps)
    step_labels = [_label_row(s, e) for s, e in zip(train_steps, steps_encoded, strict=True)]
    lengths = [max(len(encoded[i]), len(encoded[i + n])) for i in range(n)]
    lengths += [len(e) for e in steps_encoded]
    margins = torch.tensor([p.margin or 0.0 for p in train_pairs])
    has_margin = cfg.use_margin and any(p.margin is not None for p in train_pairs)
    world = accelerator.num_processes
    pad_id = model.tokenizer.pad_token_id or 0

    def collate_items(ids: list[int]) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        pair_ids = [i for i in ids if i < n]
        step_ids = [i - n for i in ids if i >= n]
        items: list[Encoded] = [encoded[i] for i in pair_ids] + [encoded[i + n] for i in pair_ids]
        items += [steps_encoded[i] for i in step_ids]
        batch = collate(items, pad_id)
        labels = torch.full((len(step_ids), batch.marker_mask.shape[1]), -1.0)  # (S, M)
        for row, i in enumerate(step_ids):
            labels[row, : len(step_labels[i])] = step_labels[i]
        # 2B + S sequences, (B,) margins, (S, M) labels (-1: none)
        return batch, margins[pair_ids], labels

    sampler = GlobalBatches(lengths, cfg.batch_size * world, seed=cfg.seed)
    # A generator of its own: making an iterator would otherwise draw from torch's global RNG,
    # which resumable checkpoints save.
    loader = accelerator.prepare(
        DataLoader(
            range(len(lengths)),
            batch_sampler=sampler,
            collate_fn=collate_items,
            generator=torch.Generator(),
        )
    )
    micro_per_epoch = len(loader)  # global batches: the same on every process
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * micro_per_epoch / cfg.grad_accum))
    scheduler = get_scheduler(
        "constant_with_warmup" if cfg.scheduler == "constant" else cfg.scheduler,
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    reference = _policy_reference(accelerator.unwrap_model(model), cfg) if policy else None
    step = 0
    if state:
        step = _restore_training_state(state, accelerator.unwrap_model(model), optimizer, scheduler)

    def micro_batches(start: int) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
        """This process's micro-batches from micro-batch ``start`` of the run on, epoch after
        epoch (a resumed run skips the ones its epoch had done)."""
        epoch, position = divmod(start, micro_per_epoch)
        while True:
            sampler.epoch = epoch
            yield from accelerator.skip_first_batches(loader, position) if position else loader
            epoch, position = epoch + 1, 0

    def should_stop() -> bool:
        """Whether to stop before the next micro-batch: asked by ``stop()`` or a progress
        callback on any process. Several processes agree (one all-reduce), so they all stop at
        the same micro-batch and meet at the checkpoint."""
        if (stop is not None and stop()) or cancelled:
            if world == 1:
                return True
            accelerator.set_trigger()
        return world > 1 and accelerator.check_trigger()

    def save_resumable() -> Path:
        path = out_dir / CHECKPOINTS_DIR / f"step-{step:06d}"
        return _save_checkpoint(
            accelerator,
            model,
            cfg,
            step,
            total_steps,
            path,
            optimizer=optimizer,
            scheduler=scheduler,
            seconds=elapsed(),
        )

    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
    start_metrics(accelerator, out_dir, resume_from, step)  # never another run's lines
    metric_keys = (
        (["bt_loss", "policy_loss"] if policy and n else [])
        + (["step_loss", "step_accuracy"] if train_steps else [])
        + (["accuracy", "margin", "reward_mean", "reward_std"] if n else [])
    )
    micro = step * cfg.grad_accum
    batches = micro_batches(micro)
    cancelled = False  # a progress callback raised KeyboardInterrupt
    window: list[dict[str, torch.Tensor]] = []
    step_loss: torch.Tensor | None = None  # the loss summed over this step's micro-batches
    last_metrics: dict[str, float] = {}
    eval_metrics = None
    last_checkpoint = None
    # The newest checkpoint known to hold finite weights: where a diverged run can go back to.
    last_good = Path(resume_from) if resume_from is not None else None
    pairs_seen = responses_seen = 0
    start = time.perf_counter()
    interrupted = False

    def elapsed() -> float:
        """Training time of the whole run, over every resume."""
        return state.get("seconds", 0.0) + time.perf_counter() - start

    bar = tqdm(
        total=total_steps,
        initial=step,
        unit="step",
        desc="training",
        disable=not (show_progress and accelerator.is_local_main_process),
    )
    try:
        while step < total_steps:
            if should_stop():
                raise KeyboardInterrupt  # Ctrl-C's way out: a resumable checkpoint
            batch, margin, labels = next(batches)  # on the device already
            with accelerator.accumulate(model), accelerator.autocast():
                out = model(batch, with_logprob=policy and len(margin) > 0)
                b = len(margin)
                s_chosen, s_rejected = out.score[:b], out.score[b : 2 * b]  # (B,), (B,)
                margin = margin if has_margin else None
                loss = out.score.new_zeros(())
                parts: dict[str, torch.Tensor] = {}
                if b:
                    loss = bradley_terry(
                        s_chosen, s_rejected, margin, cfg.center_rewards_coefficient
                    )
                if b and reference is not None:
                    logp, ref = out.response_logprob, reference(batch)  # (2B,), (2B,)
                    term = policy_preference(
                        logp[:b], logp[b : 2 * b], ref[:b], ref[b : 2 * b], cfg.policy_beta
                    )
                    parts = {"bt_loss": loss.detach(), "policy_loss": term.detach()}
                    loss = loss + cfg.policy_weight * term
                if len(labels):
                    rewards = out.sentence_rewards[2 * b :]  # (S, M)
                    offset = accelerator.unwrap_model(model).label_offset
                    term, accuracy = step_label_loss(rewards + offset, labels)
                    parts |= {"step_loss": term.detach(), "step_accuracy": accuracy}
                    loss = loss + cfg.step_weight * term
                accelerator.backward(loss)
                step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
                # accumulate() sets sync_gradients on the last micro-batch of an optimizer step:
                # only then are the summed gradients clipped and applied. (Accelerate's wrapped
                # optimizer would skip a step in between too, but the loop says it here.)
                if accelerator.sync_gradients:
                    # The one device sync per step, before the step can spoil the weights;
                    # summed over processes, so that all of them stop if one diverged.
                    step_loss = accelerator.reduce(step_loss, "sum")
                    if not torch.isfinite(step_loss):
                        raise _diverged(f"the loss is {step_loss.item()}", step, last_good)
                    step_loss = None
                    if cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
            micro += 1
            pairs_seen += b * world
            responses_seen += len(labels) * world
            # Tensors until the next metrics line: converting them here would sync every
            # micro-batch. Every row has every key (NaN where a batch had no pair or no
            # labelled response), so the lines average what each batch had.
            window.append(
                {"loss": loss.detach()}
                | dict.fromkeys(metric_keys, torch.tensor(float("nan"), device=loss.device))
                | parts
                | (pair_metrics(s_chosen, s_rejected) if b else {})
            )
            if not accelerator.sync_gradients:
                continue

            scheduler.step()
            step += 1
            bar.update(1)
            if step % max(cfg.log_every, 1) == 0 or step == total_steps:
                last_metrics = mean_over_processes(accelerator, window) | {
                    "lr": scheduler.get_last_lr()[0],
                    "epoch": micro / micro_per_epoch,
                }
                window = []
                shown = {"loss": f"{last_metrics['loss']:.4f}"}
                if "accuracy" in last_metrics:
                    shown["acc"] = f"{last_metrics['accuracy']:.2f}"
                if "step_accuracy" in last_metrics:
                    shown["step_acc"] = f"{last_metrics['step_accuracy']:.2f}"
                bar.set_postfix(**shown)
                append_metrics(accelerator, out_dir, {"step": step, **last_metrics})
            if eval_pairs and cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                eval_metrics = evaluate(accelerator, model, eval_pairs, out_dir, step)
            if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
                _check_weights(model, step, last_good)  # a bad save would rotate out a good one
                last_checkpoint = last_good = save_resumable()
            if progress is not None and accelerator.is_main_process:
                try:
                    progress(step, total_steps, last_metrics)
                except KeyboardInterrupt:  # a cancel: stop with the others, at the next check
                    cancelled = True
        if should_stop():  # asked during the last step: stop as during any other
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted at step %d; writing a resumable checkpoint", step)
        optimizer.zero_grad()  # a half-accumulated step is dropped; the checkpoint is at `step`
        last_checkpoint = save_resumable()
    finally:
        bar.close()

    seconds = time.perf_counter() - start
    if not interrupted:
        _check_weights(model, step, last_good)
        if eval_pairs:
            eval_metrics = evaluate(accelerator, model, eval_pairs, out_dir, step)
        if eval_steps and accelerator.is_main_process:
            credit = _credit_on_steps(accelerator.unwrap_model(model), eval_steps)
            eval_metrics = (eval_metrics or {}) | {"credit": credit}
            append_metrics(accelerator, out_dir, {"step": step, "eval": {"credit": credit}})
            model.train()
        # The final model is lean (no optimizer state): resumable ones live in checkpoints/.
        last_checkpoint = _save_checkpoint(
            accelerator, model, cfg, step, total_steps, out_dir, seconds=elapsed()
        )
    return TrainResult(
        output_dir=out_dir,
        steps=step,
        total_steps=total_steps,
        seconds=seconds,
        pairs_seen=pairs_seen,
        responses_seen=responses_seen,
        pair_ids=[p.id for p in train_pairs],
        interrupted=interrupted,
        train_metrics=last_metrics,
        eval_metrics=eval_metrics,
        checkpoint=last_checkpoint,
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


def _credit_on_steps(model: SentenceRewardModel, steps: Sequence[SentenceLabels]) -> dict[str, Any]:
    """AUROC and pointing of the model's sentence rewards on held-out labelled responses
    (the report's ``overall`` metrics and counts, :func:`srm.evaluate.credit_report`)."""
    from srm.evaluate import credit_report
    from srm.score import score_responses

    scored = score_responses(
        model,
        [s.prompt for s in steps],
        [s.response for s in steps],
        spans=[list(s.spans) for s in steps],
    )
    report = credit_report(
        [{"labels": list(s.labels), "record": r} for s, r in zip(steps, scored, strict=True)],
        head=model.config.head,
        prefix_rewards=bool(model.causal),
    )
    overall = report["overall"]
    return {
        "responses": overall["responses"],
        "eligible": overall["eligible"],
        "metrics": overall["metrics"],
    }


def _encode_steps(model: SentenceRewardModel, steps: Sequence[SentenceLabels]) -> list[Encoded]:
    """Each labelled response encoded as one sequence with its own sentence boundaries, at
    the training length (a sentence the length leaves out takes no part in the loss)."""
    if not steps:
        return []
    cfg = model.config
    return encode_many(
        model.tokenizer,
        [model.prompt_text(s.prompt) for s in steps],
        [s.response for s in steps],
        max_length=cfg.max_length,
        prompt_fraction=cfg.prompt_fraction,
        max_sentence_chars=cfg.max_sentence_chars,
        spans=[list(s.spans) for s in steps],
    )


def _label_row(steps: SentenceLabels, encoded: Encoded) -> torch.Tensor:
    """The labels of one encoded response by marker index (M,): index 0 (the prompt) and
    unlabelled or unscored sentences -1, a good sentence 1, a bad one 0."""
    row = torch.full((encoded.n_sentences + 1,), -1.0)
    for j, label in enumerate(steps.labels[: encoded.n_sentences], start=1):
        if label is not None:
            row[j] = float(label)
    return row


def _policy_reference(
    model: SentenceRewardModel, cfg: TrainConfig
) -> Callable[[Batch], torch.Tensor]:
    """log pi_ref(response) for the policy term: the frozen starting model, i.e. the backbone
    with its LoRA adapters disabled (or, after full fine-tuning starts, a frozen copy of the
    base backbone), fed the marker embedding's starting value."""
    from srm.backbones import load_backbone
    from srm.checkpoint import is_peft

    if is_peft(model.backbone):
        frozen, head, disable = None, None, model.backbone.disable_adapter
        base = model.backbone
    else:
        start = load_backbone(cfg.model.backbone, bidirectional=cfg.model.bidirectional)
        start.model.requires_grad_(False)
        device = next(model.parameters()).device
        frozen, head, disable = start.model.to(device), start.lm_head, contextlib.nullcontext
        base = start.model
    marker = boundary_embedding(base, model.tokenizer).to(model.marker_embedding.device)

    @torch.no_grad()
    def reference(batch: Batch) -> torch.Tensor:
        with disable():
            h = model.hidden_states(batch, backbone=frozen, marker_embedding=marker)
            return model.response_logprob(h, batch, head=head)

    return reference


def _diverged(what: str, step: int, last_good: Path | None) -> TrainingError:
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


def _check_weights(model: torch.nn.Module, step: int, last_good: Path | None) -> None:
    """Raise :func:`_diverged` when a trained weight is inf or nan (the loss can stay finite
    for a step after the weights are spoilt)."""
    bad = next(
        (n for n, p in model.named_parameters() if p.requires_grad and not p.isfinite().all()),
        None,
    )
    if bad is not None:
        raise _diverged(f"weight {bad} is not finite", step, last_good)


def _save_checkpoint(
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


def _resume_model(cfg: TrainConfig, path: Path) -> tuple[SentenceRewardModel, dict[str, Any]]:
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


def _restore_training_state(
    state: dict[str, Any],
    model: SentenceRewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> int:
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
    log.info("resumed at step %d", step)
    return step
