"""What a checkpoint directory says about itself, read without loading a weight: the layout's
names, :class:`CheckpointInfo` (``config.json`` checked field by field, as a pydantic model
like the configs it holds), and where the default model lives. Saving and loading are
:mod:`srm.checkpoint`'s, which re-exports all of this."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from srm.backbones import pickle_files
from srm.config import ConfigError, ModelConfig
from srm.files import FileError, read_input_text

FORMAT = "srm-checkpoint/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BACKBONE_DIR = "backbone"
MODEL_ENTRIES = frozenset({CONFIG_FILE, WEIGHTS_FILE, BACKBONE_DIR})
#: In a directory saved into more than once: the link to its current model...
MODEL_LINK = "model"
#: ... and the prefix of the hidden directories holding model versions.
VERSION_PREFIX = ".model-"
WeightKind = Literal["none", "full", "partial", "lora", "reference"]
#: What ``model.safetensors`` holds of the backbone: nothing (a named package's), all of it,
#: the parameters that were trained (over a named package's backbone), LoRA adapters, or
#: nothing because the model is loaded as it is from where ``model.backbone`` says.
WEIGHT_KINDS: tuple[str, ...] = get_args(WeightKind)
#: How a refusal names what a field of ``config.json`` should be.
EXPECTED = {
    "model": "a table of model settings",
    "backbone_weights": "a string",
    "causal": "true or false",
    "training": "a table",
    "lora": "a table of LoRA settings",
    "srm_version": "a string",
}


class CheckpointError(ValueError):
    """A directory that is not a loadable checkpoint; the message says why."""


class CheckpointInfo(BaseModel):
    """What ``config.json`` says about a checkpoint, without loading its weights: the same
    strict checks as the configs (:mod:`srm.config`), so a damaged file is named field by
    field. ``lora`` is the LoRA settings of ``lora`` weights, else None."""

    model_config = ConfigDict(strict=True, extra="ignore")

    path: Path
    model: ModelConfig
    backbone_weights: WeightKind
    causal: bool
    training: dict[str, Any] | None = None
    lora: dict[str, Any] | None = None
    srm_version: str = "?"

    @model_validator(mode="after")
    def _lora_settings(self) -> CheckpointInfo:
        if self.backbone_weights != "lora":
            self.lora = None
        elif self.lora is None:
            raise ValueError("field 'lora': expected a table of LoRA settings, got None")
        return self


def default_model_dir() -> Path | None:
    """The model used when none is named: ``$SRM_MODEL``, else the bundled
    ``data/models/default`` of the source tree (None when neither exists)."""
    env = os.environ.get("SRM_MODEL")
    if env:
        return Path(env)
    bundled = Path(__file__).resolve().parents[1] / "data" / "models" / "default"
    return bundled if (bundled / CONFIG_FILE).is_file() else None


def model_dir(path: str | os.PathLike) -> Path:
    """The directory holding a checkpoint's files: ``path`` itself, or the model its
    ``model`` link points at (a run directory, or any directory saved into more than once)."""
    path = Path(path)
    if (path / MODEL_LINK / CONFIG_FILE).is_file():
        return (path / MODEL_LINK).resolve()  # one version, even if the link moves on meanwhile
    return path


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """Read and check ``config.json``; refuse directories holding pickle-based files.

    Every way a directory can fail to be a checkpoint (missing or damaged files, a field
    missing or of the wrong kind) raises :class:`CheckpointError` naming the file and field.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory (no such directory)")
    unsafe = pickle_files(path)
    if unsafe:
        raise CheckpointError(
            f"{path}: refusing to load a checkpoint that contains pickle-based files "
            f"({', '.join(unsafe)}); they can run arbitrary code. SRM checkpoints hold "
            "safetensors only: re-save the model with srm."
        )
    path = model_dir(path)
    config_path, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_path.is_file() or not (weights.exists() or weights.is_symlink()):
        raise CheckpointError(
            f"{path}: not an SRM checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    if not weights.is_file():
        link = f" (a link to {os.readlink(weights)})" if weights.is_symlink() else ""
        raise CheckpointError(
            f"{weights}: not a regular file{link}; the checkpoint is damaged: save it again"
        )
    try:
        config = json.loads(read_input_text(config_path, expected="a checkpoint's config.json"))
    except FileError as err:  # not UTF-8, or over the input size limit
        raise CheckpointError(f"{err}; the checkpoint is damaged: save it again") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{config_path}: invalid JSON ({err})") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object, got {config!r:.40}")
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"{config_path}: format {config.get('format')!r} is not {FORMAT!r}; "
            "this checkpoint was not written by a compatible srm"
        )
    try:
        return CheckpointInfo.model_validate({**config, "path": path})
    except ValidationError as err:
        raise CheckpointError(f"{config_path}: {_problem(err, config)}") from None


def _problem(err: ValidationError, config: dict[str, Any]) -> str:
    """The first of pydantic's errors about ``config.json`` in this module's words."""
    error = err.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    cause = error.get("ctx", {}).get("error")
    if error["type"] == "missing":
        return f"missing field {name!r}; the checkpoint is damaged: save it again"
    if cause is not None:  # the model config's refusal, or a rule of CheckpointInfo's
        return f"field 'model': {cause}" if isinstance(cause, ConfigError) else str(cause)
    value = config.get(name)
    if error["type"] == "literal_error":
        return f"field {name!r}: got {value!r}; expected one of {', '.join(WEIGHT_KINDS)}"
    return f"field {name!r}: expected {EXPECTED[name]}, got {value!r:.40}"
