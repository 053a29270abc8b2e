"""The model a training run trains (:mod:`srm.train`): fresh heads on the backbone or the
weights of ``init_from``, set up for ``finetune`` (LoRA adapters, all weights, or heads only),
with ``train_layers`` the layers below the top ones frozen; and, for the HaF-RM policy term,
the frozen reference it is measured against.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

import torch

from srm import checkpoint
from srm.collate import Batch
from srm.config import HEADS, ConfigError, TrainConfig
from srm.model import SentenceRewardModel, boundary_embedding
from srm.train_state import TrainingError

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


def freeze_below(model: SentenceRewardModel, cfg: TrainConfig) -> None:
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


def policy_reference(
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
