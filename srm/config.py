"""Configuration dataclasses, validated on construction and saved in every checkpoint.

Each field's docstring says what it is and why the default is what it is; it is also the help
of the field's ``srm train`` flag and form field (:func:`field_docs`), and a field's choices
are its ``Literal`` annotation. Errors name the field and say what would be accepted.

A config from elsewhere (a TOML recipe, a job's JSON, command-line flags on top) becomes a
:class:`TrainConfig` through one function, :func:`merge_train_config`, which also checks every
value's type against its field's annotation.
"""

from __future__ import annotations

import ast
import functools
import inspect
import ipaddress
import math
import os
import re
import sys
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from srm.segment import DEFAULT_MAX_CHARS

Head = Literal["sentence", "response", "token"]
HEADS: tuple[str, ...] = get_args(Head)
#: Heads that read a model as it is, with nothing to train, registered by ``srm init``:
#: ``likelihood`` (a language model's own token log-probabilities, :mod:`srm.credit`) and
#: ``classifier`` (an imported response-level reward model, read at every sentence end).
READ_ONLY_HEADS: tuple[str, ...] = ("likelihood", "classifier")


class ConfigError(ValueError):
    """An impossible configuration value; the message names the field."""


@dataclass
class ModelConfig:
    """What a reward model is: backbone, head and how its inputs are built."""

    backbone: str = "minilm"
    """A named backbone (``minilm``, ``smollm2``, ``tiny``: ``srm backbones`` lists them), a
    Hugging Face name in the local cache, or a local directory."""
    head: Head = "sentence"
    """``sentence`` (the SRM), ``response`` (value at the last marker) or ``token``
    (mean per-token reward): the baselines share everything else, for fair comparisons.
    (``srm init --likelihood`` and ``--reward-model`` register the untrained heads
    ``likelihood`` and ``classifier``; they are read, never trained.)"""
    d: int = 128
    """Width of the attention query/key maps of the sentence head (the paper's default)."""
    max_length: int = 256
    """Tokens per sequence, markers included. HH responses average 55 words, so 256 keeps
    most pairs whole on CPU; raise it on a GPU."""
    score_max_length: int | None = None
    """Tokens per sequence when scoring (``srm score``/``eval``, the app), independent of the
    training length, so whole responses are scored. Unset: the backbone's positions, at most
    1024 (512 for minilm), and never less than max_length."""
    prompt_fraction: float = 0.5
    """Share of ``max_length`` reserved for the prompt's tail when the pair is too long; the
    response gets the rest (and any room the prompt does not need)."""
    max_sentence_chars: int = DEFAULT_MAX_CHARS
    """Segments longer than this are split at whitespace, so no sentence swamps the others."""
    bidirectional: bool = False
    """Allow a backbone that cannot be made causal (sentence rewards are then not prefix
    rewards). Off by default: the method needs a causal backbone."""
    rope_base: float = 10_000.0
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

    def __post_init__(self) -> None:
        if self.head not in HEADS + READ_ONLY_HEADS:
            raise ConfigError(f"head: got {self.head!r}; choose one of {', '.join(HEADS)}")
        if not isinstance(self.backbone, str) or not self.backbone.strip():
            raise ConfigError("backbone: give a name (minilm, tiny), a model name or a path")
        _whole("d", self.d)
        if self.d < 2 or self.d % 2:
            raise ConfigError(f"d: got {self.d}; use an even number >= 2 (RoPE rotates pairs)")
        _whole("max_length", self.max_length)
        if self.max_length < 8:
            raise ConfigError(f"max_length: got {self.max_length}; use at least 8 tokens")
        if self.score_max_length is not None:
            _whole("score_max_length", self.score_max_length)
            if self.score_max_length < 8:
                raise ConfigError(
                    f"score_max_length: got {self.score_max_length}; use at least 8 tokens, or "
                    "leave it unset for the backbone's length"
                )
        _finite("prompt_fraction", self.prompt_fraction)
        if not 0.0 < self.prompt_fraction < 1.0:
            raise ConfigError(
                f"prompt_fraction: got {self.prompt_fraction}; use a value between 0 and 1"
            )
        _integer("max_sentence_chars", self.max_sentence_chars, 1)
        if not isinstance(self.prompt_term, bool):
            raise ConfigError(f"prompt_term: got {self.prompt_term!r}; give true or false")
        _finite("rope_base", self.rope_base)
        if self.rope_base <= 1.0:
            raise ConfigError(f"rope_base: got {self.rope_base}; use a value above 1")
        for name in ("likelihood_feature", "chat_template"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: got {getattr(self, name)!r}; give true or false")
        if self.likelihood_feature and self.head != "sentence":
            raise ConfigError(
                f"likelihood_feature: the {self.head} head has no sentence rewards to add it to; "
                "use head sentence, or likelihood_feature false"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**_known_fields(cls, data, "model"))


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


@dataclass
class TrainConfig:
    """How a reward model is trained. Saved in every checkpoint, so a run reproduces itself.

    The defaults are a generic starting point (LoRA with PEFT's default targets, one epoch at
    batch 8); the bundled default model's recipe is ``recipes/default.toml``.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    """Backbone, head, d, max_length and segmentation (a ``[model]`` table in TOML)."""
    lr: float = 2e-4
    """Peak learning rate of the backbone's trainable weights (LoRA adapters or all)."""
    head_lr: float = 1e-3
    """Peak learning rate of the new parameters (reward heads, marker embedding): they start
    from scratch, so they move faster than the pretrained backbone."""
    epochs: float = 1.0
    """Passes over the training pairs (fractions allowed); ignored when max_steps is set."""
    max_steps: int | None = None
    """Optimizer steps to run; overrides epochs."""
    batch_size: int = 8
    """Pairs per micro-batch per process (each pair is two sequences); several processes
    (accelerate launch, torchrun) split global batches of batch_size * processes."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (global batch: batch_size * processes * grad_accum)."""
    warmup_ratio: float = 0.05
    """Share of the steps spent warming the learning rate up linearly from 0."""
    scheduler: Scheduler = "cosine"
    """Decay after warm-up: cosine (to 0), linear (to 0) or constant."""
    weight_decay: float = 0.0
    """AdamW weight decay (LoRA and small heads rarely need any)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 turns clipping off)."""
    use_margin: bool = True
    """Subtract a pair's ``margin`` (when the data has one) inside the BT loss."""
    center_rewards_coefficient: float = 0.0
    """Weight of TRL's reward-centring term, c * mean((s_c + s_r)^2): keeps each pair's mean
    reward near zero without shrinking its margin; 0.01 is common."""
    policy_weight: float = 0.0
    """Weight of the HaF-RM policy term (arXiv 2407.04185): DPO's loss on the backbone's own
    LM head beside the BT loss (the authors use 0.2). Needs a backbone with an LM head; 0 is
    off, and costs nothing."""
    policy_beta: float = 0.1
    """DPO's beta in the policy term: how far the policy may move from the frozen start."""
    step_weight: float = 1.0
    """Weight of the sentence-label term when step-labelled responses are given (``srm train
    --steps``, or a dataset's sentence tags): each labelled sentence's reward r_j through a
    sigmoid against its label (good = 1), as TRL's PRMTrainer does per step, beside the BT
    loss."""
    finetune: Finetune = "lora"
    """lora (adapters on the backbone), full (every backbone weight) or heads (backbone frozen)."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lora_targets: list[str] | None = None
    """Module names to adapt; None picks PEFT's default for the architecture (query/value)."""
    train_layers: int | None = None
    """Train only the top N transformer layers (their LoRA adapters, or their weights with
    finetune=full). The lower layers then need no backward pass, so a step is cheaper (about
    2x with a third of the layers); the marker embedding keeps its starting value, since
    training it needs gradients through every layer. None: all layers."""
    disable_dropout: bool = True
    """Turn the backbone's dropout off while training, as TRL does for reward models: the BT
    signal is noisy enough, and scores then depend on the weights alone."""
    seed: int = 0
    """Seed for head initialisation, data order and dropout: CPU runs are bit-reproducible."""
    eval_every: int = 0
    """Evaluate on the eval pairs every N optimizer steps (0: only at the end)."""
    save_every: int = 0
    """Write a resumable checkpoint every N optimizer steps (0: only at the end)."""
    log_every: int = 10
    """Append training metrics to metrics.jsonl every N optimizer steps."""
    max_pairs: int | None = None
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

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        _positive("lr", self.lr)
        _positive("head_lr", self.head_lr)
        _positive("epochs", self.epochs)
        if self.max_steps is not None:
            _whole("max_steps", self.max_steps)
            if self.max_steps < 1:
                raise ConfigError(
                    f"max_steps: got {self.max_steps}; use at least 1 (or leave unset)"
                )
        _integer("batch_size", self.batch_size, 1)
        _integer("grad_accum", self.grad_accum, 1)
        _fraction("warmup_ratio", self.warmup_ratio)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _at_least("weight_decay", self.weight_decay, 0)
        _at_least("max_grad_norm", self.max_grad_norm, 0)
        _at_least("center_rewards_coefficient", self.center_rewards_coefficient, 0)
        _at_least("policy_weight", self.policy_weight, 0)
        _positive("policy_beta", self.policy_beta)
        _at_least("step_weight", self.step_weight, 0)
        if self.model.head in READ_ONLY_HEADS:
            raise ConfigError(
                f"head: {self.model.head!r} reads a model as it is and has nothing to train; "
                f"train one of {', '.join(HEADS)} (the {self.model.head} model is registered "
                "with srm init)"
            )
        _choice("finetune", self.finetune, FINETUNE_MODES)
        if self.policy_weight and self.finetune == "heads":
            raise ConfigError(
                "policy_weight: the policy term trains the backbone's LM, but finetune='heads' "
                "freezes it; use finetune lora or full, or policy_weight 0"
            )
        _integer("lora_r", self.lora_r, 1)
        _positive("lora_alpha", self.lora_alpha)
        _fraction("lora_dropout", self.lora_dropout)
        _integer("seed", self.seed, 0, SEED_MAX)
        if self.lora_targets is not None and (
            not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets)
        ):
            raise ConfigError(
                f"lora_targets: got {self.lora_targets!r}; give module names such as "
                "['query', 'value'], or leave unset for the architecture's default"
            )
        if self.train_layers is not None:
            _integer("train_layers", self.train_layers, 1)
        for name in ("eval_every", "save_every", "log_every"):
            _integer(name, getattr(self, name), 0)
        _choice("device", self.device, DEVICES)
        _choice("mixed_precision", self.mixed_precision, PRECISIONS)
        if not isinstance(self.gradient_checkpointing, bool):
            raise ConfigError(
                f"gradient_checkpointing: got {self.gradient_checkpointing!r}; give true or false"
            )
        if not self.output_dir:
            raise ConfigError("output_dir: give a directory for the run")
        if self.max_pairs is not None:
            _integer("max_pairs", self.max_pairs, 1)
        if self.init_from is not None and (
            not isinstance(self.init_from, str) or not self.init_from.strip()
        ):
            raise ConfigError(
                f"init_from: got {self.init_from!r}; give a model directory, or leave it unset"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**_known_fields(cls, data, "training"))

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
    field names of either dataclass (model fields go into the model), and ``None`` means "not
    given", so the base's value stands: what ``srm train`` passes for its flags.

    Every value must fit its field's annotation, as JSON or TOML gives it (an int for a
    float; never a bool for an int, nor a string for a number: ``lr = "1e-4"`` is a mistake
    to report, not to convert), then the dataclasses validate ranges. A :class:`ConfigError`
    names the field (``model.d``), after ``origin`` when given (a recipe's path).

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
        model_fields = {f.name for f in fields(ModelConfig)}
        for name, value in (overrides or {}).items():
            if value is not None:
                (model if name in model_fields else data)[name] = value
        _check_fields(TrainConfig, data, "training", "")
        _check_fields(ModelConfig, model, "model", "model.")
        return TrainConfig(model=ModelConfig(**model), **data)
    except ConfigError as err:
        if origin is None:
            raise
        raise ConfigError(f"{origin}: {err}") from err


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string under it in the class body) as one line of plain
    text: the help of its ``srm train`` flag and of its form field in the app.

    >>> field_docs(TrainConfig)["lora_r"]
    'LoRA rank.'
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # no source (a frozen build): no help, nothing breaks
        return {}
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            text = " ".join(after.value.value.split())
            docs[node.target.id] = re.sub(r"``(.+?)``", r"\1", text)
    return docs


def field_choices(cls: type, name: str) -> tuple[Any, ...] | None:
    """The values a ``Literal``-annotated field accepts, or None for any other field."""
    hint = typing.get_type_hints(cls)[name]
    return get_args(hint) if typing.get_origin(hint) is Literal else None


def _check_fields(cls: type, data: Mapping[str, Any], what: str, prefix: str) -> None:
    """Refuse a key that is no field of ``cls``, and a value that does not fit its field's
    annotation (see :func:`_fits`), naming the field."""
    _known_fields(cls, dict(data), what)
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if name != "model" and not _fits(value, hints[name]):
            raise ConfigError(
                f"{prefix}{name}: got {value!r} ({type(value).__name__}); "
                f"expected {_type_text(hints[name])}"
            )


def _type_text(hint: Any) -> str:
    """``float``, ``int | None``, ``one of cosine, linear, constant``."""
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(str(arg) for arg in get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON or TOML value fits a field's annotation (an int for a float, never a
    bool for an int). A ``Literal`` checks the type only: the dataclass names the choices."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is Literal:
        return any(_fits(value, type(arg)) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _known_fields(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    """``data`` if every key is a field of ``cls``; else an error listing the known ones."""
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown {what} config field(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return data


def _finite(name: str, value: Any) -> None:
    """A real number (not a bool, a string, inf or nan): training with inf or nan in a
    setting runs, and writes a model whose weights are all nan."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: got {value!r} ({type(value).__name__}); give a number")
    if not math.isfinite(value):
        raise ConfigError(f"{name}: got {value}; give a finite number")


def _positive(name: str, value: float) -> None:
    _finite(name, value)
    if not value > 0:
        raise ConfigError(f"{name}: got {value}; use a positive number")


@dataclass
class ServeConfig:
    """How ``srm serve`` batches and what it accepts (each field is a flag of the command;
    see :mod:`srm.serve`)."""

    max_batch: int = 16
    """Responses per forward pass: requests waiting together share one."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for others to join it, in milliseconds."""
    batching: bool = True
    """Score requests that arrive together in one forward pass; off, one request at a time."""
    max_items: int = 8192
    """Responses (queries) per request; a request with more is refused (413). Large requests
    are scored max_batch at a time (OpenRLHF 0.5.8-0.9.0 send a whole rollout batch at once)."""
    max_queue: int = 64
    """Requests being prepared, waiting or scored at once; one more is answered 503 with
    Retry-After at once, rather than waiting behind work it cannot finish in time."""
    allow_clients: list[str] | None = None
    """Client addresses or networks (10.0.0.0/8, ::1) served without a token: OpenRLHF sends
    no headers. With --token, a listed client needs none; without, only listed clients are
    served."""
    max_chars: int = 100_000
    """Characters per prompt, query or response; a longer one is refused (413)."""
    max_body_mb: float = 32.0
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
    timeout_s: float = 120.0
    """Seconds a request may take, its body read and its scoring included; a slower one gets a
    503 and its scoring stops, so one huge request cannot hold the others for long."""
    header_timeout_s: float = 10.0
    """Seconds a client has to send a request's headers, after it connects or after the
    previous answer on its connection; a slower connection is closed (slow clients)."""
    keep_alive_s: float = 5.0
    """Seconds an idle kept-alive connection stays open (uvicorn's timeout_keep_alive)."""
    max_connections: int | None = None
    """Open connections at most (each holds a file descriptor). Unset: the process's descriptor
    limit (ulimit -n) less 256, kept for the model's files and connections being accepted.
    Beyond it a new connection replaces the one that has waited longest without sending a
    request, else gets a 503."""

    def __post_init__(self) -> None:
        _integer("max_batch", self.max_batch, 1)
        _integer("max_items", self.max_items, 1)
        _integer("max_queue", self.max_queue, 1)
        for network in self.allow_clients or []:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(
                    f"allow_clients: {network!r} is not an address or network; give addresses "
                    "such as 10.0.0.5 or networks such as 10.0.0.0/8, comma-separated"
                ) from None
        _integer("max_chars", self.max_chars, 1)
        if self.max_connections is not None:
            _integer("max_connections", self.max_connections, 1)
        for name in ("timeout_s", "header_timeout_s", "keep_alive_s"):
            _finite(name, getattr(self, name))
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: got {getattr(self, name)}; use a positive number")
        _finite("max_wait_ms", self.max_wait_ms)
        if not 0 <= self.max_wait_ms <= 10_000:
            raise ConfigError(f"max_wait_ms: got {self.max_wait_ms}; use 0 to 10000 ms")
        _finite("max_body_mb", self.max_body_mb)
        if not self.max_body_mb > 0:
            raise ConfigError(f"max_body_mb: got {self.max_body_mb}; use a positive size")
        if self.strip is not None and any(not suffix for suffix in self.strip):
            raise ConfigError("strip: an empty suffix; give the texts to remove, comma-separated")


def _at_least(name: str, value: float, low: float) -> None:
    _finite(name, value)
    if value < low:
        raise ConfigError(f"{name}: got {value}; use {low} or more")


def _fraction(name: str, value: float) -> None:
    _finite(name, value)
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name}: got {value}; use a value in [0, 1)")


def _whole(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: got {value!r} ({type(value).__name__}); give a whole number")


def _integer(name: str, value: Any, low: int, high: int | None = None) -> None:
    """A whole number in [low, high]."""
    _whole(name, value)
    if value < low or (high is not None and value > high):
        bound = f"a whole number from {low} to {high}" if high is not None else f"{low} or more"
        raise ConfigError(f"{name}: got {value}; use {bound}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: got {value!r}; choose one of {', '.join(choices)}")
