"""Configuration models, validated on construction and saved in every checkpoint.

Each config is a pydantic model with one validation style: a field's annotation is its type
(strict: an int for a float, never a bool for an int, nor a string for a number), its
``Field`` bounds are its range (:func:`field_bounds`: the Train form reads its limits there),
and the few rules between fields are validators. Each field's docstring says what it is and
why the default is what it is; it is also the help of the field's ``srm train`` flag and form
field (:func:`field_docs`), and a field's choices are its ``Literal`` annotation. Errors are
:class:`ConfigError`, one line per problem, naming the field and what would be accepted.

A config from elsewhere (a TOML recipe, a job's JSON, command-line flags on top) becomes a
:class:`TrainConfig` through one function, :func:`merge_train_config`.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from srm.config_checks import Bounds, ConfigError, error_text, field_bounds
from srm.segment import DEFAULT_MAX_CHARS

__all__ = ["Bounds", "ConfigError", "field_bounds"]  # re-exported: the checks' words are there

Head = Literal["sentence", "response", "token"]
HEADS: tuple[str, ...] = get_args(Head)
#: Heads that read a model as it is, with nothing to train, registered by ``srm init``:
#: ``likelihood`` (a language model's own token log-probabilities, :mod:`srm.credit`) and
#: ``classifier`` (an imported response-level reward model, read at every sentence end).
READ_ONLY_HEADS: tuple[str, ...] = ("likelihood", "classifier")


class Config(BaseModel):
    """What the configs share: strict types, no unknown field, no inf or nan, the field
    docstrings as descriptions, and a :class:`ConfigError` (never pydantic's own error) from
    construction and from :meth:`from_dict`. Mutable, as a run adjusts its own copy."""

    model_config = ConfigDict(
        strict=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )
    #: What the config is called in an unknown-field error (``unknown model config field``).
    what: ClassVar[str] = "a"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(error_text(err, type(self), data)) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes``, checked as construction is (what ``dataclasses.replace``
        was for the configs): ``recipe.replace(max_steps=3, model=recipe.model.replace(...))``."""
        return type(self)(**{**dict(self), **changes})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """The config of a JSON or TOML table (a checkpoint's, a job's): as construction."""
        return cls(**data)


class ModelConfig(Config):
    """What a reward model is: backbone, head and how its inputs are built."""

    what: ClassVar[str] = "model"

    backbone: str = "minilm"
    """A named backbone (``minilm``, ``smollm2``, ``tiny``: ``srm backbones`` lists them), a
    Hugging Face name in the local cache, or a local directory."""
    head: Head = "sentence"
    """``sentence`` (the SRM), ``response`` (value at the last marker) or ``token``
    (mean per-token reward): the baselines share everything else, for fair comparisons.
    (``srm init --likelihood`` and ``--reward-model`` register the untrained heads
    ``likelihood`` and ``classifier``; they are read, never trained.)"""
    d: int = Field(128, ge=2)
    """Width of the attention query/key maps of the sentence head (the paper's default)."""
    max_length: int = Field(256, ge=8)
    """Tokens per sequence, markers included. HH responses average 55 words, so 256 keeps
    most pairs whole on CPU; raise it on a GPU."""
    score_max_length: int | None = Field(None, ge=8)
    """Tokens per sequence when scoring (``srm score``/``eval``, the app), independent of the
    training length, so whole responses are scored. Unset: the backbone's positions, at most
    1024 (512 for minilm), and never less than max_length."""
    prompt_fraction: float = Field(0.5, gt=0, lt=1)
    """Share of ``max_length`` reserved for the prompt's tail when the pair is too long; the
    response gets the rest (and any room the prompt does not need)."""
    max_sentence_chars: int = Field(DEFAULT_MAX_CHARS, ge=1)
    """Segments longer than this are split at whitespace, so no sentence swamps the others."""
    bidirectional: bool = False
    """Allow a backbone that cannot be made causal (sentence rewards are then not prefix
    rewards). Off by default: the method needs a causal backbone."""
    rope_base: float = Field(10_000.0, gt=1)
    """Base of the rotary embedding over the sentence index in the sentence head."""
    prompt_term: bool = True
    """Sentence head: include the prompt term a_0 r_0 in the attention-weighted sum, as the
    paper does. False attends over the sentences only (a_0 = 0): v_0 is the same for both
    responses of a pair, so the prompt term can only move a margin through a_0, which the
    attention can make follow response length."""

    likelihood_feature: bool = False
    """Sentence head on a backbone with a language-model head (smollm2): add a learned weight
    times the sentence's mean token log-probability (its likelihood credit, read on
    marker-free context) to each sentence reward r_j. Off: the SRM as published."""
    chat_template: bool = False
    """Render the prompt with the backbone's chat template (as a user turn, the response
    being the assistant's) before encoding. What an instruct LM's likelihood and most
    imported reward models expect; ``srm init`` turns it on for them when the tokenizer has
    a template."""

    @field_validator("head", mode="wrap")
    @classmethod
    def _read_only_head(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """A trainable head (the annotation), or one that ``srm init`` registers."""
        return value if value in READ_ONLY_HEADS else handler(value)

    @field_validator("backbone")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give a name (minilm, tiny), a model name or a path")
        return value

    @field_validator("d")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"got {value}; use an even number (RoPE rotates pairs)")
        return value

    @model_validator(mode="after")
    def _feature_needs_sentences(self) -> ModelConfig:
        if self.likelihood_feature and self.head != "sentence":
            raise ValueError(
                f"likelihood_feature: the {self.head} head has no sentence rewards to add it to; "
                "use head sentence, or likelihood_feature false"
            )
        return self


#: A run directory (``TrainConfig.output_dir``) holds the final model, one JSON line of
#: metrics per logging step in this file, and resumable checkpoints under CHECKPOINTS_DIR.
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"

Finetune = Literal["lora", "full", "heads"]
Scheduler = Literal["cosine", "linear", "constant"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["no", "fp16", "bf16"]
FINETUNE_MODES: tuple[str, ...] = get_args(Finetune)
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: The largest seed: NumPy's and Accelerate's set_seed take 0 to 2**32 - 1.
SEED_MAX = 2**32 - 1


class TrainConfig(Config):
    """How a reward model is trained. Saved in every checkpoint, so a run reproduces itself.

    The defaults are a generic starting point (LoRA with PEFT's default targets, one epoch at
    batch 8); the bundled default model's recipe is ``recipes/default.toml``.
    """

    what: ClassVar[str] = "training"

    model: ModelConfig = Field(default_factory=ModelConfig)
    """Backbone, head, d, max_length and segmentation (a ``[model]`` table in TOML)."""
    lr: float = Field(2e-4, gt=0)
    """Peak learning rate of the backbone's trainable weights (LoRA adapters or all)."""
    head_lr: float = Field(1e-3, gt=0)
    """Peak learning rate of the new parameters (reward heads, marker embedding): they start
    from scratch, so they move faster than the pretrained backbone."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the training pairs (fractions allowed); ignored when max_steps is set."""
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps to run; overrides epochs."""
    batch_size: int = Field(8, ge=1)
    """Pairs per micro-batch per process (each pair is two sequences); several processes
    (accelerate launch, torchrun) split global batches of batch_size * processes."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches per optimizer step (global batch: batch_size * processes * grad_accum)."""
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    """Share of the steps spent warming the learning rate up linearly from 0."""
    scheduler: Scheduler = "cosine"
    """Decay after warm-up: cosine (to 0), linear (to 0) or constant."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay (LoRA and small heads rarely need any)."""
    max_grad_norm: float = Field(1.0, ge=0)
    """Gradient clipping norm (0 turns clipping off)."""
    use_margin: bool = True
    """Subtract a pair's ``margin`` (when the data has one) inside the BT loss."""
    center_rewards_coefficient: float = Field(0.0, ge=0)
    """Weight of TRL's reward-centring term, c * mean((s_c + s_r)^2): keeps each pair's mean
    reward near zero without shrinking its margin; 0.01 is common."""
    policy_weight: float = Field(0.0, ge=0)
    """Weight of the HaF-RM policy term (arXiv 2407.04185): DPO's loss on the backbone's own
    LM head beside the BT loss (the authors use 0.2). Needs a backbone with an LM head; 0 is
    off, and costs nothing."""
    policy_beta: float = Field(0.1, gt=0)
    """DPO's beta in the policy term: how far the policy may move from the frozen start."""
    step_weight: float = Field(1.0, ge=0)
    """Weight of the sentence-label term when step-labelled responses are given (``srm train
    --steps``, or a dataset's sentence tags): each labelled sentence's reward r_j through a
    sigmoid against its label (good = 1), as TRL's PRMTrainer does per step, beside the BT
    loss."""
    finetune: Finetune = "lora"
    """lora (adapters on the backbone), full (every backbone weight) or heads (backbone frozen)."""
    lora_r: int = Field(8, ge=1)
    """LoRA rank."""
    lora_alpha: int = Field(16, gt=0)
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA branch."""
    lora_targets: list[str] | None = None
    """Module names to adapt; None picks PEFT's default for the architecture (query/value)."""
    train_layers: int | None = Field(None, ge=1)
    """Train only the top N transformer layers (their LoRA adapters, or their weights with
    finetune=full). The lower layers then need no backward pass, so a step is cheaper (about
    2x with a third of the layers); the marker embedding keeps its starting value, since
    training it needs gradients through every layer. None: all layers."""
    disable_dropout: bool = True
    """Turn the backbone's dropout off while training, as TRL does for reward models: the BT
    signal is noisy enough, and scores then depend on the weights alone."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Seed for head initialisation, data order and dropout: CPU runs are bit-reproducible."""
    eval_every: int = Field(0, ge=0)
    """Evaluate on the eval pairs every N optimizer steps (0: only at the end)."""
    save_every: int = Field(0, ge=0)
    """Write a resumable checkpoint every N optimizer steps (0: only at the end)."""
    log_every: int = Field(10, ge=0)
    """Append training metrics to metrics.jsonl every N optimizer steps."""
    max_pairs: int | None = Field(None, ge=1)
    """Train on a seeded random sample of this many of the given pairs (all when unset): a
    way to balance a large pair file against a few hundred step-labelled responses, which
    share the batches with the pairs."""
    init_from: str | None = None
    """Start from this checkpoint's weights (a model directory, such as the active model's)
    instead of a fresh model: a new run, with a fresh optimizer and schedule, that continues
    what that model knew. Its backbone, head and d must be the config's; lengths and
    segmentation may differ. None: new heads on the plain backbone."""
    output_dir: str = "runs/srm"
    """The run directory: the final model, metrics.jsonl and checkpoints/."""
    device: Device = "auto"
    """auto (CUDA when available), cpu or cuda; `accelerate launch` picks devices itself."""
    mixed_precision: Precision = "no"
    """no, fp16 (a GPU) or bf16 (a GPU with bfloat16, Ampere or newer; CPUs autocast it too):
    Accelerate's autocast runs the forward pass in 16 bits; weights keep their own dtype."""
    gradient_checkpointing: bool = False
    """Recompute the backbone's activations in the backward pass instead of storing them: far
    less memory for one more forward pass per step, what a 7B backbone needs on one GPU."""

    @field_validator("lora_targets")
    @classmethod
    def _module_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not all(value)):
            raise ValueError(
                f"got {value!r}; give module names such as ['query', 'value'], or leave unset "
                "for the architecture's default"
            )
        return value

    @field_validator("output_dir")
    @classmethod
    def _a_directory(cls, value: str) -> str:
        if not value:
            raise ValueError("give a directory for the run")
        return value

    @field_validator("init_from")
    @classmethod
    def _a_model(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(f"got {value!r}; give a model directory, or leave it unset")
        return value

    @model_validator(mode="after")
    def _trainable(self) -> TrainConfig:
        if self.model.head in READ_ONLY_HEADS:
            raise ValueError(
                f"model.head: {self.model.head!r} reads a model as it is and has nothing to "
                f"train; train one of {', '.join(HEADS)} (the {self.model.head} model is "
                "registered with srm init)"
            )
        if self.policy_weight and self.finetune == "heads":
            raise ValueError(
                "policy_weight: the policy term trains the backbone's LM, but finetune='heads' "
                "freezes it; use finetune lora or full, or policy_weight 0"
            )
        return self

    def to_toml(self) -> str:
        """The config as a TOML recipe that :meth:`from_toml` reads back equal: training
        fields at the top level, model fields in ``[model]``, unset (None) fields left out,
        as TOML has no null and None is their default."""
        import tomli_w

        from srm import __version__

        def given(data: dict[str, Any]) -> dict[str, Any]:
            return {
                k: given(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None
            }

        header = f"# An srm train recipe (srm-studio {__version__}): srm train --config FILE\n"
        return header + tomli_w.dumps(given(self.to_dict()))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a TOML recipe: training fields at the top level, model fields in ``[model]``;
        errors are prefixed with the file's path."""
        return merge_train_config(read_config_file(path), origin=path)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file's tables as a dict (not checked yet: see :func:`merge_train_config`). Read
    as every input file is (:func:`srm.files.read_input_text`): a FIFO or a device is refused
    before it is opened, and the read stops at ``$SRM_MAX_INPUT_MB``."""
    from srm.files import FileError, read_input_text

    path = Path(path)
    try:
        text = read_input_text(path, expected="a TOML file")
    except FileError as err:
        raise ConfigError(str(err)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: cannot read the config ({err})") from err


def merge_train_config(
    base: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    origin: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """The :class:`TrainConfig` of ``base`` with ``overrides`` on top, every value checked.

    ``base`` is nested as ``TrainConfig.to_dict()`` gives it, model fields under ``"model"``:
    a TOML recipe (:func:`read_config_file`) or a job's stored config. ``overrides`` is flat,
    field names of either config (model fields go into the model), and ``None`` means "not
    given", so the base's value stands: what ``srm train`` passes for its flags.

    Every value must fit its field's annotation, as JSON or TOML gives it (an int for a
    float; never a bool for an int, nor a string for a number: ``lr = "1e-4"`` is a mistake
    to report, not to convert), and its range. A :class:`ConfigError` names the field
    (``model.d``), after ``origin`` when given (a recipe's path).

    >>> merge_train_config({"lr": 1e-3, "model": {"head": "token"}}, {"max_length": 64})
    TrainConfig(model=ModelConfig(backbone='minilm', head='token', d=128, max_length=64, ...
    """
    try:
        data = dict(base or {})
        model = data.pop("model", {})
        if not isinstance(model, Mapping):
            raise ConfigError(
                f"model: got {model!r}; give a table of model fields (backbone, head, ...)"
            )
        model = dict(model)
        for name, value in (overrides or {}).items():
            if value is not None:
                (model if name in ModelConfig.model_fields else data)[name] = value
        return TrainConfig(model=model, **data)
    except ConfigError as err:
        if origin is None:
            raise
        raise ConfigError(f"{origin}: {err}") from err


@functools.cache
def field_docs(cls: type[Config]) -> dict[str, str]:
    """Each field's docstring (the string under it in the class body) as one line of plain
    text: the help of its ``srm train`` flag and of its form field in the app.

    >>> field_docs(TrainConfig)["lora_r"]
    'LoRA rank.'
    """
    return {
        name: re.sub(r"``(.+?)``", r"\1", " ".join(info.description.split()))
        for name, info in cls.model_fields.items()
        if info.description  # none without the source (a frozen build): no help, no failure
    }


def field_choices(cls: type[Config], name: str) -> tuple[Any, ...] | None:
    """The values a ``Literal``-annotated field accepts, or None for any other field."""
    hint = cls.model_fields[name].annotation
    return get_args(hint) if typing.get_origin(hint) is Literal else None


class ScoreConfig(Config):
    """How a score job scores a dataset: its stored config (``srm score --dataset`` and the
    app's score jobs)."""

    what: ClassVar[str] = "score"

    batch_size: int = Field(16, ge=1)
    """Pairs per forward pass (each pair is two sequences)."""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N."""


class ServeConfig(Config):
    """How ``srm serve`` batches and what it accepts (each field is a flag of the command;
    see :mod:`srm.serve`)."""

    what: ClassVar[str] = "serve"

    max_batch: int = Field(16, ge=1)
    """Responses per forward pass: requests waiting together share one."""
    max_wait_ms: float = Field(5.0, ge=0, le=10_000)
    """How long the first request of a batch waits for others to join it, in milliseconds."""
    batching: bool = True
    """Score requests that arrive together in one forward pass; off, one request at a time."""
    max_items: int = Field(8192, ge=1)
    """Responses (queries) per request; a request with more is refused (413). Large requests
    are scored max_batch at a time (OpenRLHF 0.5.8-0.9.0 send a whole rollout batch at once)."""
    max_queue: int = Field(64, ge=1)
    """Requests being prepared, waiting or scored at once; one more is answered 503 with
    Retry-After at once, rather than waiting behind work it cannot finish in time."""
    allow_clients: list[str] | None = None
    """Client addresses or networks (10.0.0.0/8, ::1) served without a token: OpenRLHF sends
    no headers. With --token, a listed client needs none; without, only listed clients are
    served."""
    max_chars: int = Field(100_000, ge=1)
    """Characters per prompt, query or response; a longer one is refused (413)."""
    max_body_mb: float = Field(32.0, gt=0)
    """Request body size in megabytes; a larger body is refused (413) before it is read."""
    strip: list[str] | None = None
    """Suffixes removed from the end of each response before scoring (OpenRLHF sends the
    decoded sequence, its EOS text included). Unset: the end-of-turn texts of the common chat
    templates (<|im_end|>, <|eot_id|>, </s>, ...) and the --dense-tokenizer's EOS and pad
    texts; a list replaces them ('' strips nothing)."""
    render_prompts: bool = True
    """Read a prompt in a known chat template (ChatML, Llama 3, Mistral) back into its turns
    and score it as the transcript the model was trained on, not as markup."""
    dense_tokenizer: str | None = None
    """A tokenizer, the policy's (a local directory or a cached Hugging Face name): /get_reward
    adds token_rewards, one dense reward per token of it over each query."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds a request may take, its body read and its scoring included; a slower one gets a
    503 and its scoring stops, so one huge request cannot hold the others for long."""
    header_timeout_s: float = Field(10.0, gt=0)
    """Seconds a client has to send a request's headers, after it connects or after the
    previous answer on its connection; a slower connection is closed (slow clients)."""
    keep_alive_s: float = Field(5.0, gt=0)
    """Seconds an idle kept-alive connection stays open (uvicorn's timeout_keep_alive)."""
    max_connections: int | None = Field(None, ge=1)
    """Open connections at most (each holds a file descriptor). Unset: the process's descriptor
    limit (ulimit -n) less 256, kept for the model's files and connections being accepted.
    Beyond it a new connection replaces the one that has waited longest without sending a
    request, else gets a 503."""
    workers: int = Field(1, ge=1)
    """Server processes on the one port, each with its own copy of the model and its own
    max_queue; on CPU each gets an equal share of the cores."""

    @field_validator("allow_clients")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        for network in value or []:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"{network!r} is not an address or network; give addresses such as "
                    "10.0.0.5 or networks such as 10.0.0.0/8, comma-separated"
                ) from None
        return value

    @field_validator("strip")
    @classmethod
    def _no_empty_suffix(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(value):
            raise ValueError("an empty suffix; give the texts to remove, comma-separated")
        return value
