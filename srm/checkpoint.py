"""Checkpoints: a directory with ``config.json`` and ``model.safetensors``, never pickle.

    checkpoint/
      config.json         format, srm version, ModelConfig, backbone weights kind, causal flag,
                          LoRA settings, training config
      model.safetensors   heads + marker embedding, and the backbone's weights when they are
                          not the named package's: "full" (all of them), "partial" (the
                          ones training changed) or "lora" (adapters)
      backbone/           the backbone's config.json (when weights are "full") and tokenizer
                          files (unless the backbone is a named one, or a reference)

A model nothing was trained on (the read-only heads, registered by ``srm init --likelihood``
and ``--reward-model``, :mod:`srm.imported`) copies none of its weights: its backbone weights
are a "reference", and it is loaded from the Hugging Face name or absolute directory its config
records, wherever the checkpoint is read. Such a checkpoint is a few kB; a model it refers to
that has gone is an error naming it.

``minilm`` and ``smollm2`` checkpoints that train only heads or LoRA adapters stay a few MB,
because the backbone itself comes from an installed package; fully fine-tuning only the top
layers (``train_layers``) stores those layers and nothing of the frozen rest.

Saving never leaves half a model under a name a reader uses. A new directory is written under a
temporary name and renamed into place. Saving into a directory that exists (a training run's,
holding ``metrics.jsonl`` and ``checkpoints/``) moves none of its files: the model is written
to a new hidden directory beside them, then the link ``model`` is pointed at it in one atomic
rename, and only then is the model it replaced removed. At every instant the directory holds
one complete model, the old or the new::

    run/
      metrics.jsonl, checkpoints/    never moved
      model -> .model-3f2a9c01b7e4   the final model (config.json, model.safetensors, ...)

:func:`model_dir` finds the files either way, so ``load("run")`` works, and so do checkpoints
saved flat by older versions (at the top of a run directory too).

Reading what a checkpoint is without its weights (:func:`read_info`, :class:`CheckpointInfo`,
the layout's names) is :mod:`srm.checkpoint_info`'s; they are importable from here too.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from srm import __version__
from srm.backbones import (
    LM_ARCHITECTURES,
    NAMED_BACKBONES,
    PACKAGE_BACKBONES,
    Backbone,
    BackboneError,
    check_local_files,
    is_causal,
    load_backbone,
    load_tokenizer,
)
from srm.checkpoint_info import (
    BACKBONE_DIR,
    CONFIG_FILE,
    FORMAT,
    MODEL_ENTRIES,
    MODEL_LINK,
    VERSION_PREFIX,
    WEIGHTS_FILE,
    CheckpointError,
    CheckpointInfo,
    model_dir,
    read_info,
)
from srm.checkpoint_info import WEIGHT_KINDS as WEIGHT_KINDS  # re-exported: reading is there
from srm.checkpoint_info import default_model_dir as default_model_dir
from srm.config import READ_ONLY_HEADS, ConfigError
from srm.files import FileError, output_target, size_text
from srm.imported import ImportedRewardModel
from srm.model import SentenceRewardModel

log = logging.getLogger(__name__)


def backbone_weights_kind(model: SentenceRewardModel | ImportedRewardModel) -> str:
    """``lora`` for a PEFT-wrapped backbone; for a package backbone (minilm, smollm2) ``none``
    when all of it is frozen and ``partial`` when some of it is (the rest is the package's);
    ``full`` otherwise (all trainable, random ``tiny``, any other backbone, or one whose
    weights were trained before and are no longer the package's). A read-only
    head (nothing trained) on any backbone but a named one: ``reference``."""
    if model.config.head in READ_ONLY_HEADS:
        if model.config.backbone in PACKAGE_BACKBONES:
            return "none"
        if model.config.backbone not in NAMED_BACKBONES:
            return "reference"
    if is_peft(model.backbone):
        return "lora"
    # A model started from a checkpoint whose backbone was trained (train's init_from) no
    # longer has the package's weights in its frozen part: all of them are saved.
    if model.config.backbone in PACKAGE_BACKBONES and not getattr(model, "backbone_trained", False):
        trainable = [p.requires_grad for p in model.backbone.parameters()]
        if not any(trainable):
            return "none"
        if not all(trainable):
            return "partial"
    return "full"


def save(
    model: SentenceRewardModel | ImportedRewardModel,
    path: str | os.PathLike,
    *,
    training: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` as a checkpoint directory at ``path``, or as the current model of the
    directory already there (a run's), replacing its model; see the module docstring."""
    path = Path(path)
    try:
        output_target(path, directory=True)  # never a FIFO, a device or a file: refused
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileError, OSError) as err:
        raise CheckpointError(f"cannot save the model: {err}") from None
    kind = backbone_weights_kind(model)
    tensors = {
        name: t for name, t in model.state_dict().items() if not name.startswith("backbone.")
    }
    lora = None
    if kind == "full":
        tensors.update({f"backbone.{k}": v for k, v in model.backbone.state_dict().items()})
        head = getattr(model, "_lm_head", None)
        if head and head[0].weight is not model.backbone.get_input_embeddings().weight:
            # An LM head of its own (not tied to the embeddings): the likelihood reads it.
            tensors["lm_head.weight"] = head[0].weight
    elif kind == "partial":
        tensors.update(
            {f"backbone.{k}": p for k, p in model.backbone.named_parameters() if p.requires_grad}
        )
    elif kind == "lora":
        from peft import get_peft_model_state_dict

        lora = model.backbone.peft_config["default"].to_dict()
        lora = {k: sorted(v) if isinstance(v, set) else v for k, v in lora.items()}
        adapters = get_peft_model_state_dict(model.backbone)
        tensors.update({f"lora.{k}": v for k, v in adapters.items()})
    for name, tensor in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = tensor
    # Clone so that tied/shared storages never trip safetensors' sharing check.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}

    config = {
        "format": FORMAT,
        "srm_version": __version__,
        "model": model.config.to_dict(),
        "backbone_weights": kind,
        "causal": bool(model.causal),
        "lora": lora,
        "training": _portable_training(training),
    }
    # A new directory is staged beside its final name; an existing one gets a new version
    # inside it (see the module docstring). mkdir, not mkdtemp: the umask's permissions.
    token = secrets.token_hex(6)
    into_existing = path.is_dir()
    if into_existing:
        _check_model_link(path)
        staging = path / f"{VERSION_PREFIX}{token}"
    else:
        staging = path.parent / f".{path.name}.tmp-{token}"
    try:
        staging.mkdir()
    except OSError as err:
        raise _save_failed(path, err, tensors, into_existing) from err
    try:
        save_file(tensors, staging / WEIGHTS_FILE, metadata={"format": "pt", "srm": FORMAT})
        if model.config.backbone not in NAMED_BACKBONES and kind != "reference":
            model.tokenizer.save_pretrained(staging / BACKBONE_DIR)
            if kind == "full":
                _base_model(model.backbone).config.save_pretrained(staging / BACKBONE_DIR)
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        file_mode = staging.stat().st_mode & 0o666  # what the umask allows, as for any file
        for entry in staging.rglob("*"):
            if entry.is_file():
                entry.chmod(file_mode)
        if into_existing:
            _link_model(path, staging)
        else:
            os.replace(staging, path)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, OSError):  # a full disk, most often: say what was kept
            raise _save_failed(path, err, tensors, into_existing) from err
        raise
    if into_existing:
        _remove_replaced_models(path, keep=staging)
    log.info("saved checkpoint %s (%s backbone weights, %d tensors)", path, kind, len(tensors))
    return path


def _save_failed(
    path: Path, err: OSError, tensors: dict[str, torch.Tensor], into_existing: bool
) -> CheckpointError:
    """The error of a save that failed with ``err``, its partial files removed: what was kept
    (the model already at ``path``; a run's earlier checkpoints), and for a full disk how much
    the weights need."""
    size = size_text(sum(t.numel() * t.element_size() for t in tensors.values()))
    kept = (
        f"the model {path} held before is unchanged"
        if into_existing
        else f"nothing was saved at {path}"
    )
    first = (
        f"cannot save the model at {path}: no space left on the device (its weights are "
        f"{size}); the partial files were removed and {kept}. Free more than {size} on the "
        f"disk holding {path.absolute().parent} (df -h {path.absolute().parent}), then save "
        "again"
        if err.errno in (errno.ENOSPC, errno.EDQUOT)
        else f"cannot save the model at {path} ({err.strerror or err}); the partial files were "
        f"removed and {kept}"
    )
    return CheckpointError(
        f"{first}. A training run keeps the checkpoints it saved before: resume from the newest "
        "(srm train ... --resume-from RUN/checkpoints/step-N)"
    )


def portable_path(path: str) -> str:
    """A path as a checkpoint records it: never absolute, so a checkpoint that is shared (the
    bundled default model) names no directory of the machine it was written on. An absolute
    path under the working directory becomes relative to it, any other its last part:
    ``/home/me/srm/runs/x`` -> ``runs/x`` when run from ``/home/me/srm``, else ``x``."""
    absolute = Path(path)
    if not absolute.is_absolute():
        return path
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.name


def _portable_training(training: dict[str, Any] | None) -> dict[str, Any] | None:
    """The training record with its run directory (``config.output_dir``, the one path a
    :class:`~srm.config.TrainConfig` holds) made :func:`portable_path`. A backbone named by a
    local directory stays as given: a LoRA or partial checkpoint needs it to load."""
    config = (training or {}).get("config")
    if not isinstance(config, dict) or not isinstance(config.get("output_dir"), str):
        return training
    return {**training, "config": {**config, "output_dir": portable_path(config["output_dir"])}}


def load(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> SentenceRewardModel | ImportedRewardModel:
    """Load a checkpoint written by :func:`save`, in eval mode on ``device``: an
    :class:`~srm.imported.ImportedRewardModel` for the ``classifier`` head, else a
    :class:`~srm.model.SentenceRewardModel`.

    A damaged checkpoint (unreadable weights, settings they do not fit) raises
    :class:`CheckpointError` saying which file is wrong, never a library's traceback."""
    info = read_info(path)
    weights = info.path / WEIGHTS_FILE
    tensors = _read_weights(weights)
    if info.backbone_weights == "reference":
        _check_reference(info)
    if info.model.head == "classifier":
        return _load_imported(info, tensors).to(device).eval()
    backbone = _load_backbone(info)
    try:
        model = SentenceRewardModel(backbone, info.model)
    except ConfigError as err:
        raise CheckpointError(f"{info.path / CONFIG_FILE}: field 'model': {err}") from err
    if info.backbone_weights == "lora":
        from peft import LoraConfig, get_peft_model

        try:
            lora_config = LoraConfig(**{k: v for k, v in info.lora.items() if _is_lora_arg(k)})
            model.backbone = get_peft_model(model.backbone, lora_config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{info.path / CONFIG_FILE}: field 'lora': {err}") from err
    own = {
        k: v
        for k, v in tensors.items()
        if not k.startswith(("lora.", "extra.", "backbone.", "lm_head."))
    }
    if "label_offset" in own:  # trained on sentence labels: their base rate (srm.train)
        model.label_offset = torch.nn.Parameter(own["label_offset"].clone())
    missing = set(_own_state(model)) - set(own)
    unexpected = set(own) - set(_own_state(model))
    if missing or unexpected:
        raise CheckpointError(
            f"{info.path}: weights do not match a {info.model.head} head "
            f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})"
        )
    try:
        if info.backbone_weights == "lora":
            from peft import set_peft_model_state_dict

            adapters = {k[len("lora.") :]: v for k, v in tensors.items() if k.startswith("lora.")}
            set_peft_model_state_dict(model.backbone, adapters)
        prefix = "backbone."
        stored = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if info.backbone_weights == "full":
            model.backbone.load_state_dict(stored)
            if "lm_head.weight" in tensors and model.has_lm_head:  # a head of its own
                weight = tensors["lm_head.weight"]
                model._lm_head[0].weight = torch.nn.Parameter(weight, requires_grad=False)
        elif info.backbone_weights == "partial":
            # Over the package's weights; every stored tensor must name one of them.
            unknown = model.backbone.load_state_dict(stored, strict=False).unexpected_keys
            if unknown or not stored:
                raise CheckpointError(
                    f"{weights}: the backbone weights do not fit {info.model.backbone!r} "
                    f"(unexpected {sorted(unknown)[:3]}{' ...' if len(unknown) > 3 else ''}"
                    f"{', none stored' if not stored else ''})"
                )
        model.load_state_dict(own, strict=False)
        # A package backbone saved whole was trained: saving it again must keep all of it,
        # even if a later run freezes some (see backbone_weights_kind).
        model.backbone_trained = (
            info.backbone_weights == "full" and info.model.backbone in PACKAGE_BACKBONES
        )
    except RuntimeError as err:  # missing keys or other shapes
        detail = str(err).strip().splitlines()
        raise CheckpointError(
            f"{weights}: the weights do not fit the model {CONFIG_FILE} describes "
            f"({' '.join(line.strip() for line in detail[:2])})"
        ) from err
    return model.to(device).eval()


def load_extra_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors stored beside the model under ``extra.`` (training state, for instance)."""
    tensors = _read_weights(model_dir(path) / WEIGHTS_FILE)
    return {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}


def _read_weights(weights: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``weights``, every floating-point one finite: a model saved with NaN or
    inf weights (a diverged run, a damaged file) is refused here, by name, rather than loaded
    to fail later with every score NaN, or resumed from as if it were good."""
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"{weights}: not a readable safetensors file ({err}); the checkpoint is damaged "
            "or cut short: save it again, or resume from an earlier checkpoint"
        ) from err
    spoilt = [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if spoilt:
        shown = ", ".join(sorted(spoilt)[:3]) + (
            f" and {len(spoilt) - 3} more" if len(spoilt) > 3 else ""
        )
        raise CheckpointError(
            f"{weights}: tensor {shown} holds NaN or infinite values, so the model cannot "
            "score; it is not a good checkpoint. Load or resume from an earlier one (a run "
            "keeps its checkpoints in RUN/checkpoints/step-N), or train again"
        )
    return tensors


def _check_reference(info: CheckpointInfo) -> None:
    """Refuse a reference checkpoint whose model directory has gone, naming it (a Hugging Face
    name is looked for in the cache when loaded, with its own message)."""
    name = info.model.backbone
    if Path(name).is_absolute() and not Path(name).is_dir():
        raise CheckpointError(
            f"{info.path}: the model it refers to, {name}, is gone (no such directory); "
            "its weights were never copied into the checkpoint. Put the model back there, or "
            "register it again from where it is now (srm init --reward-model or --likelihood)."
        )


def _load_imported(info: CheckpointInfo, tensors: dict[str, torch.Tensor]) -> ImportedRewardModel:
    """The reward model a ``classifier`` checkpoint refers to (it holds no weights)."""
    if info.backbone_weights != "reference" or tensors:
        raise CheckpointError(
            f"{info.path}: a classifier checkpoint holds no weights and refers to its reward "
            f"model (backbone weights 'reference'), but this one has {info.backbone_weights!r} "
            f"and {len(tensors)} tensors; register the model again with srm init --reward-model"
        )
    try:
        return ImportedRewardModel.load(info.model)
    except BackboneError as err:
        raise CheckpointError(
            f"{info.path}: the checkpoint needs its reward model {info.model.backbone!r}: {err}"
        ) from err
    except ConfigError as err:
        raise CheckpointError(f"{info.path / CONFIG_FILE}: field 'model': {err}") from err


def _load_backbone(info: CheckpointInfo) -> Backbone:
    name = info.model.backbone
    backbone_dir = info.path / BACKBONE_DIR
    own_files = backbone_dir.is_dir()
    try:
        if own_files:
            check_local_files(backbone_dir)
        if info.backbone_weights == "full" and name not in NAMED_BACKBONES:
            # Self-contained: architecture and tokenizer from the checkpoint, weights below.
            config = AutoConfig.from_pretrained(
                backbone_dir, local_files_only=True, trust_remote_code=False
            )
            lm_head = None
            if any(a.endswith(LM_ARCHITECTURES) for a in config.architectures or []):
                # A decoder saved with its language-model head: rebuilt with it (tied to the
                # embeddings below, or loaded from lm_head.weight), as the likelihood needs.
                causal_lm = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
                model, lm_head = causal_lm.base_model.eval(), causal_lm.get_output_embeddings()
            else:
                model = AutoModel.from_config(config, trust_remote_code=False).eval()
            return Backbone(name, model, load_tokenizer(backbone_dir), is_causal(model), lm_head)
    except (BackboneError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{info.path}: cannot load its backbone from {BACKBONE_DIR}/: {err}"
        ) from err
    try:
        backbone = load_backbone(name, bidirectional=info.model.bidirectional)
        if own_files:
            backbone.tokenizer = load_tokenizer(backbone_dir)
    except BackboneError as err:
        raise CheckpointError(
            f"{info.path}: the checkpoint needs its backbone {name!r} locally: {err}"
        ) from err
    return backbone


def _own_state(model: SentenceRewardModel) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}


def is_peft(module: torch.nn.Module) -> bool:
    return hasattr(module, "peft_config") and hasattr(module, "get_base_model")


def _base_model(module: torch.nn.Module) -> torch.nn.Module:
    return module.get_base_model() if is_peft(module) else module


def _is_lora_arg(key: str) -> bool:
    from dataclasses import fields

    from peft import LoraConfig

    return key in {f.name for f in fields(LoraConfig) if f.init}


def _check_model_link(directory: Path) -> None:
    """Refuse to save into a directory whose ``model`` entry is not a model srm saved there:
    it would be replaced, and it may be the user's own."""
    link = directory / MODEL_LINK
    if (link.exists() or link.is_symlink()) and not _holds_checkpoint(link):
        raise CheckpointError(
            f"{link}: already exists and is not a model saved by srm; the model of "
            f"{directory} would replace it. Move it away, or save somewhere else."
        )


def _holds_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint directory written by srm (its config.json says so)."""
    try:
        return json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))["format"] == FORMAT
    except (OSError, ValueError, TypeError, KeyError):
        return False


def _link_model(directory: Path, version: Path) -> None:
    """Point ``directory/model`` at ``version`` (a complete model inside ``directory``) with
    one atomic rename of a new link over the old one: readers see the old model or the new."""
    link = directory / MODEL_LINK
    staged_link = directory / f"{version.name}.link"
    os.symlink(version.name, staged_link)  # relative: the run directory can move
    if link.is_dir() and not link.is_symlink():
        # A run copied without its links: the one case with a moment between two models.
        os.replace(link, directory / f"{version.name}.old")
    os.replace(staged_link, link)


def _remove_replaced_models(directory: Path, keep: Path) -> None:
    """After :func:`_link_model`: remove older model versions (and what a crashed save left),
    and a model an older srm saved at the top of ``directory``. Nothing else is touched."""
    stale = [p for p in directory.iterdir() if p.name.startswith(VERSION_PREFIX) and p != keep]
    if _holds_checkpoint(directory):
        stale += [directory / name for name in MODEL_ENTRIES]
    for entry in stale:
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
