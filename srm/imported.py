"""Models read as they are, registered by ``srm init``: an imported reward model (head
``classifier``) and a language model's own likelihood (head ``likelihood``, :mod:`srm.model`).

Nothing of theirs is trained, so their checkpoints copy no weights: they record the model's
Hugging Face name or absolute directory (backbone weights ``reference``, :mod:`srm.checkpoint`)
and load it from there.

An imported reward model is any ``AutoModelForSequenceClassification`` with one output
(``num_labels=1``, as TRL's ``RewardTrainer`` saves them), from a local directory or the local
Hugging Face cache, loaded by the rules backbones load by (:mod:`srm.backbones`: safetensors
only, no pickle files, no code of its own, no encoder-decoder). Its sentence credit is its
prefix rewards, the response head's semantics read off a model someone else trained:

    v_j = the classifier's score of the prompt and sentences 1..j (v_0: the prompt alone)
    r_0 = v_0,  r_j = v_j - v_(j-1),  weights a_j = 1,  score S = v_K

* A decoder classifier (Llama, Qwen2, Mistral, GPT-2, ...) applies its linear ``score`` layer
  to the hidden state of the last token, and that state has seen only the tokens up to it. One
  forward pass over the marker-free text (:func:`srm.model.strip_markers`) therefore gives
  every v_j: the score layer at the last token of each prefix (``PlainBatch.marker_last``).
* An encoder classifier (DeBERTa, BERT, RoBERTa, ...) reads the text in both directions, so
  each prefix is scored as a sequence of its own, with the tokenizer's special tokens: prompt
  and response as a pair, as ``tokenizer(prompt, response)`` builds it (the prompt alone for
  v_0). K + 1 sequences per response of K sentences.

Either way v_j is exactly the classifier's score of that prefix's tokens and S its score of
the whole response, so ``causal`` is True for both: sentence rewards are true prefix rewards.

:class:`ImportedRewardModel` is a class of its own, not a fourth branch inside
:class:`~srm.model.SentenceRewardModel`: it has none of the SRM's parts (no marker embedding,
no value head, no backbone without its head), and keeping it apart leaves the SRM's
``forward`` as the math reads. It has the interface scoring uses (:mod:`srm.score`: ``config``,
``tokenizer``, ``causal``, ``position_limit``, ``score_length``, ``prompt_text``, ``forward``),
and takes the SRM's own rules for the prompt text and the scoring length, so each is written
once. :func:`srm.checkpoint.load` returns one for a checkpoint whose head is ``classifier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from srm import downloads_allowed
from srm.backbones import (
    LM_ARCHITECTURES,
    NAMED_BACKBONES,
    BackboneError,
    backbone_config,
    check_local_files,
    is_causal,
    load_backbone,
    load_tokenizer,
)
from srm.collate import PROMPT, Batch, prefix_ids
from srm.config import ConfigError, ModelConfig
from srm.model import (
    PlainBatch,
    RewardOutput,
    SentenceRewardModel,
    prefix_rewards,
    strip_markers,
)

#: Prefix sequences per forward pass when an encoder re-scores them one by one.
RESCORE_CHUNK = 32
#: A tokenizer's ``model_max_length`` above this means "not set" (transformers uses 1e30).
_UNSET_LENGTH = 1_000_000


class ImportedRewardModel(nn.Module):
    """An imported response-level reward model, read at every sentence end (module docstring).

    >>> model = import_reward_model("path/to/reward-model")
    >>> out = model(batch)  # batch from srm.collate, as for the SRM
    >>> out.values[0, : k + 1]  # v_0..v_K: the classifier's score of each prefix
    """

    # The SRM's rules, not copies: the chat-template prompt, the scoring length, the head.
    prompt_text = SentenceRewardModel.prompt_text
    score_length = SentenceRewardModel.score_length
    head = SentenceRewardModel.head

    def __init__(
        self, classifier: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, config: ModelConfig
    ) -> None:
        super().__init__()
        if config.head != "classifier":
            raise ConfigError(
                f"head: got {config.head!r}; an imported reward model's head is 'classifier'"
            )
        self.config = config
        # Named as the SRM's backbone is, so a checkpoint stores none of it (it refers to it).
        self.backbone = classifier.eval()
        self.tokenizer = tokenizer
        self.causal = True  # every v_j is the classifier's score of that prefix alone
        self.one_pass = reads_in_one_pass(classifier)
        self._single = SpecialTokens.of(tokenizer, pair=False)
        self._pair = SpecialTokens.of(tokenizer, pair=True)
        self.position_limit = reading_limit(classifier, tokenizer, one_pass=self.one_pass)
        for name, length in (
            ("max_length", config.max_length),
            ("score_max_length", config.score_max_length),
        ):
            limit = self.position_limit
            if limit is not None and length is not None and length > limit:
                raise ConfigError(
                    f"{name}: got {length}, but reward model {config.backbone!r} reads only "
                    f"{limit} tokens; use --{name.replace('_', '-')} {limit} or less"
                )

    @classmethod
    def load(cls, config: ModelConfig) -> ImportedRewardModel:
        """The reward model ``config.backbone`` names, read as ``config`` says."""
        classifier, tokenizer = load_classifier(config.backbone)
        return cls(classifier, tokenizer, config)

    def forward(self, batch: Batch) -> RewardOutput:
        plain = strip_markers(batch)
        values = self._one_pass(batch, plain) if self.one_pass else self._rescored(batch, plain)
        mask = batch.marker_mask  # (N, M)
        values = torch.where(mask, values, torch.zeros_like(values))  # (N, M) v_j
        return prefix_rewards(values, mask)

    def _one_pass(self, batch: Batch, plain: PlainBatch) -> torch.Tensor:
        """v_j for a decoder: its score layer at the last token of each prefix (N, M)."""
        base = self.backbone.base_model
        h = base(input_ids=plain.input_ids, attention_mask=plain.attention_mask).last_hidden_state
        rows = torch.arange(h.shape[0], device=h.device).unsqueeze(-1)  # (N, 1)
        values = self.backbone.score(h[rows, plain.marker_last]).squeeze(-1).float()  # (N, M)
        # Text tokens before marker j (the j markers before it are not text). None at all (an
        # empty prompt on a tokenizer without BOS): nothing to score, v = 0.
        m = batch.marker_positions.shape[1]
        steps = torch.arange(m, device=h.device)  # (M,)
        empty = batch.marker_positions - steps == 0  # (N, M)
        return values.masked_fill(empty, 0.0)

    def _rescored(self, batch: Batch, plain: PlainBatch) -> torch.Tensor:
        """v_j for an encoder: each prefix scored as a sequence of its own (N, M)."""
        skip = len(prefix_ids(self.tokenizer))  # the [CLS]/BOS the encoding starts with
        sequences: list[tuple[list[int], list[int]]] = []  # (input ids, token type ids)
        slots: list[tuple[int, int]] = []  # (row, j) of each sequence
        for i in range(plain.input_ids.shape[0]):
            ids = plain.input_ids[i].tolist()
            n_prompt = int((plain.token_sentence[i] == PROMPT).sum())  # prefix + prompt tokens
            prompt = ids[skip:n_prompt]
            for j in range(int(batch.marker_mask[i].sum())):
                end = int(batch.marker_positions[i, j]) - j  # text tokens before marker j
                if j == 0:
                    sequences.append(self._single.around(prompt))
                else:
                    sequences.append(self._pair.around(prompt, ids[n_prompt:end]))
                slots.append((i, j))
        values = torch.zeros(batch.marker_mask.shape, dtype=torch.float32)  # (N, M)
        device = batch.input_ids.device
        order = sorted(range(len(sequences)), key=lambda s: -len(sequences[s][0]))
        for start in range(0, len(order), RESCORE_CHUNK):
            chunk = [s for s in order[start : start + RESCORE_CHUNK] if sequences[s][0]]
            if not chunk:  # only empty sequences (no text, no special tokens): v = 0
                continue
            logits = self._classify([sequences[s] for s in chunk], device)  # (P,)
            for s, value in zip(chunk, logits.tolist(), strict=True):
                values[slots[s]] = value
        return values.to(device)

    def _classify(
        self, sequences: list[tuple[list[int], list[int]]], device: torch.device
    ) -> torch.Tensor:
        """The classifier's one logit for each sequence, right-padded into one batch (P,)."""
        width = max(len(ids) for ids, _ in sequences)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)  # (P, T)
        types = torch.zeros_like(input_ids)  # (P, T)
        attention = torch.zeros_like(input_ids)  # (P, T)
        for row, (ids, type_ids) in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            types[row, : len(ids)] = torch.tensor(type_ids)
            attention[row, : len(ids)] = 1
        inputs = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in self.tokenizer.model_input_names:
            inputs["token_type_ids"] = types
        out = self.backbone(**{k: v.to(device) for k, v in inputs.items()})
        return out.logits[:, 0].float()


def reads_in_one_pass(classifier: PreTrainedModel) -> bool:
    """Whether one forward pass gives every prefix's score: a causal base (checked, not assumed)
    under a linear ``score`` layer applied at every token, as Hugging Face's decoder
    classifiers are built. Anything else is re-scored prefix by prefix."""
    score = getattr(classifier, "score", None)
    return isinstance(score, nn.Linear) and is_causal(classifier.base_model)


def reading_limit(
    classifier: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, *, one_pass: bool
) -> int | None:
    """Tokens a scored sequence may hold: the classifier's positions (and its tokenizer's
    maximum, when set), less what re-scoring adds around a prefix (an encoder's [SEP]s)."""
    limits = [getattr(classifier.config, "max_position_embeddings", None)]
    if tokenizer.model_max_length < _UNSET_LENGTH:
        limits.append(tokenizer.model_max_length)
    known = [int(n) for n in limits if n]
    if not known:
        return None
    added = 0 if one_pass else len(SpecialTokens.of(tokenizer, pair=True).special)
    return min(known) - max(added - len(prefix_ids(tokenizer)), 0)


@dataclass(frozen=True)
class SpecialTokens:
    """Where a tokenizer puts its special tokens around one sequence or a pair, read off its
    own encoding of placeholder text, so any fast tokenizer's template is followed (BERT's
    ``[CLS] a [SEP] b [SEP]``, RoBERTa's ``<s> a </s></s> b </s>``, none at all).

    ``parts`` holds, in order, ``(token id, type id)`` for a special token and
    ``(None, type id)`` where the next sequence's tokens go.
    """

    parts: tuple[tuple[int | None, int], ...]

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerFast, *, pair: bool) -> SpecialTokens:
        enc = tokenizer("a", "b") if pair else tokenizer("a")
        ids = enc["input_ids"]
        types = enc.get("token_type_ids") or [0] * len(ids)
        sequence = enc.sequence_ids()
        parts = []
        for t, (token, type_id, seq) in enumerate(zip(ids, types, sequence, strict=True)):
            if seq is None:
                parts.append((token, type_id))
            elif t == 0 or sequence[t - 1] != seq:  # the first token of a sequence's run
                parts.append((None, type_id))
        return cls(tuple(parts))

    @property
    def special(self) -> list[int]:
        return [token for token, _ in self.parts if token is not None]

    def around(self, *sequences: list[int]) -> tuple[list[int], list[int]]:
        """Input ids and token type ids of ``sequences`` with the special tokens in place.

        >>> SpecialTokens.of(bert_tokenizer, pair=True).around([7, 8], [9])
        ([101, 7, 8, 102, 9, 102], [0, 0, 0, 0, 1, 1])
        """
        given = iter(sequences)
        ids: list[int] = []
        types: list[int] = []
        for token, type_id in self.parts:
            tokens = [token] if token is not None else next(given)
            ids.extend(tokens)
            types.extend([type_id] * len(tokens))
        return ids, types


def load_classifier(name_or_path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A reward model and its tokenizer: ``AutoModelForSequenceClassification`` with one
    output, from a local directory or the local Hugging Face cache, by the backbones' rules
    (safetensors only, no pickle files, no code of its own, no encoder-decoder). Raises
    :class:`~srm.backbones.BackboneError` saying what to give instead."""
    if Path(name_or_path).is_dir():
        check_local_files(Path(name_or_path))
    config = backbone_config(name_or_path)
    architectures = list(config.architectures or [])
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        kind = ", ".join(architectures) or "no architecture recorded"
        hint = ""
        if any(a.endswith(LM_ARCHITECTURES) for a in architectures):
            hint = " It is a language model: read its likelihood with srm init --likelihood."
        raise BackboneError(
            f"{name_or_path!r} is not a reward model ({kind}): give a sequence classifier with "
            "one output (an AutoModelForSequenceClassification saved with num_labels=1, as "
            f"TRL's RewardTrainer saves them).{hint}"
        )
    if config.num_labels != 1:
        raise BackboneError(
            f"{name_or_path!r} is a classifier with {config.num_labels} labels, not a reward "
            "model: a reward model has one output. Give one saved with num_labels=1 (TRL's "
            "RewardTrainer saves them so), or train one with srm train."
        )
    try:
        classifier, loading = AutoModelForSequenceClassification.from_pretrained(
            name_or_path,
            config=config,
            local_files_only=not downloads_allowed(),
            trust_remote_code=False,
            use_safetensors=True,
            output_loading_info=True,
        )
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"Cannot load the weights of reward model {name_or_path!r}: {err}. SRM Studio loads "
            "safetensors weights only (save_pretrained writes model.safetensors)."
        ) from err
    missing = sorted(loading.get("missing_keys") or [])
    if missing:
        raise BackboneError(
            f"{name_or_path!r}: its weights lack {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}, which would start random: its scores would "
            "mean nothing. Give a reward model saved whole with save_pretrained."
        )
    return classifier.eval(), load_tokenizer(name_or_path)


def import_reward_model(
    name_or_path: str,
    *,
    chat_template: bool | None = None,
    max_length: int | None = None,
    score_max_length: int | None = None,
) -> ImportedRewardModel:
    """An imported reward model, ready to score and to save (what ``srm init --reward-model``
    registers). ``chat_template`` None: on when its tokenizer has a template."""
    name = recorded_name(name_or_path)
    classifier, tokenizer = load_classifier(name)
    limit = reading_limit(classifier, tokenizer, one_pass=reads_in_one_pass(classifier))
    config = read_only_config(
        name,
        "classifier",
        tokenizer,
        limit,
        chat_template=chat_template,
        max_length=max_length,
        score_max_length=score_max_length,
    )
    return ImportedRewardModel(classifier, tokenizer, config)


def likelihood_model(
    backbone: str,
    *,
    chat_template: bool | None = None,
    max_length: int | None = None,
    score_max_length: int | None = None,
) -> SentenceRewardModel:
    """A language model's likelihood as a reward model (head ``likelihood``; what ``srm init
    --likelihood`` registers): ``smollm2``, or a causal LM directory or cached name saved with
    its LM head. ``chat_template`` None: on when its tokenizer has a template."""
    name = recorded_name(backbone)
    loaded = load_backbone(name)
    loaded.model.requires_grad_(False)
    limit = getattr(loaded.model.config, "max_position_embeddings", None)
    config = read_only_config(
        name,
        "likelihood",
        loaded.tokenizer,
        limit,
        chat_template=chat_template,
        max_length=max_length,
        score_max_length=score_max_length,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the unused value head: the same checkpoint every time
        return SentenceRewardModel(loaded, config).eval()


def read_only_config(
    name: str,
    head: str,
    tokenizer: PreTrainedTokenizerFast,
    limit: int | None,
    *,
    chat_template: bool | None,
    max_length: int | None,
    score_max_length: int | None,
) -> ModelConfig:
    """The config of a read-only model: its training length (which only sets the least it
    scores) the default, or the model's positions when fewer; the chat template on when the
    tokenizer has one, unless told."""
    if max_length is None:
        default = ModelConfig.model_fields["max_length"].default
        max_length = min(default, limit or default)
    if chat_template is None:
        chat_template = bool(getattr(tokenizer, "chat_template", None))
    return ModelConfig(
        backbone=name,
        head=head,
        max_length=max_length,
        score_max_length=score_max_length,
        chat_template=chat_template,
    )


def recorded_name(name_or_path: str) -> str:
    """What a reference checkpoint records: a named backbone (smollm2) or a Hugging Face name
    as given, a local directory as its absolute path (loaded from there, whatever the working
    directory), as the loaders read them (a name first)."""
    path = Path(name_or_path).expanduser()
    if name_or_path in NAMED_BACKBONES or not path.is_dir():
        return name_or_path
    return str(path.resolve())
