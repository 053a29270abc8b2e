"""The sentence-level reward model (SRM, arXiv 2503.04793) and its baselines on one backbone.

Input: ``prompt <END> s1 <END> ... sK <END>`` (see :mod:`srm.collate`); h_j is the backbone's
hidden state at marker j, which (the backbone being causal) has seen the prompt and sentences
1..j only.

* ``head="sentence"``: prefix values v_j = w·h_j + b; sentence rewards r_0 = v_0,
  r_j = v_j - v_(j-1); attention a = softmax_j(q·k_j / sqrt(d)) with
  q = RoPE(Wq h_K + bq, K) and k_j = RoPE(Wk h_j + bk, j) over the *sentence index*;
  score S = sum_j a_j r_j. With ``prompt_term=False`` the attention covers j >= 1 only
  (a_0 = 0): r_0 is the same for both responses of a pair, so all it can add to a margin is
  a_0 differences, a channel through which the score can follow response length.
* ``head="response"``: S = v_K, the standard reward model. Shown as r_j = v_j - v_(j-1) with
  weights 1 (they telescope to v_K).
* ``head="token"``: per-token rewards r_t = w·h_t; S = mean over response tokens. Shown per
  sentence as the mean token reward with weight n_j / n (so the weighted sum is still S).
* ``head="likelihood"``: nothing trained. The backbone's language-model head reads the
  sequence *without* markers; token reward r_t = log p(token t | everything before it), and
  the rest is the token head's: r_j is the sentence's mean token log-probability, a_j = n_j / n,
  S = the response's mean token log-probability (the "endogenous reward" of an LM).
* ``head="classifier"``: an imported response-level reward model (see :mod:`srm.imported`).

``likelihood_feature`` (sentence head, LM backbone) adds ``w_lik * l_j`` to each sentence
reward r_j (j >= 1), ``l_j`` the sentence's mean token log-probability on marker-free context
and ``w_lik`` learned: a channel through which the model can use what the LM already knows.

For every head, ``sum_j weights[j] * sentence_rewards[j] == score`` exactly: what the app
shows *is* the model. Padding never receives attention weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from srm.backbones import Backbone, load_backbone
from srm.collate import PADDING, Batch, prompt_text
from srm.config import ConfigError, ModelConfig

SCORE_LENGTH_CAP = 1024
"""Default scoring length for backbones with more positions: HH-RLHF and UltraFeedback pairs
fit, and attention cost (quadratic in length) stays interactive on a CPU."""


@dataclass
class RewardOutput:
    """Model outputs for N sequences with at most M markers (index 0 = the prompt term)."""

    score: torch.Tensor  # (N,)
    sentence_rewards: torch.Tensor  # (N, M) r_j; 0 where marker_mask is False
    weights: torch.Tensor  # (N, M) a_j; 0 where marker_mask is False
    values: torch.Tensor  # (N, M) prefix values v_j (the token head: 0)
    marker_mask: torch.Tensor  # (N, M) bool
    token_rewards: torch.Tensor | None = None  # (N, T) token head only; 0 off-response
    response_logprob: torch.Tensor | None = None  # (N,) log pi(response), with_logprob only
    likelihood: torch.Tensor | None = None  # (N, M) mean token log-prob per sentence, LM only


@dataclass
class PlainBatch:
    """A :class:`Batch` with its markers taken out: the text as a language model (or an
    imported reward model) reads it. Markers never enter a likelihood: they are not text."""

    input_ids: torch.Tensor  # (N, T') left-aligned, padded
    attention_mask: torch.Tensor  # (N, T')
    token_sentence: torch.Tensor  # (N, T') as in Batch, with no MARKER
    position: torch.Tensor  # (N, T) each original token's index in the plain row (-1: marker)
    marker_last: torch.Tensor  # (N, M) plain index of the last token before marker j


def strip_markers(batch: Batch) -> PlainBatch:
    """The batch without marker positions (see :class:`PlainBatch`).

    >>> plain = strip_markers(batch)  # batch: [CLS] q <END> a b <END>
    >>> plain.input_ids[0].tolist(), plain.marker_last[0].tolist()
    ([101, q, a, b], [1, 3])
    """
    keep = (~batch.is_marker) & batch.attention_mask.bool()  # (N, T)
    counts = keep.long().cumsum(-1)  # (N, T) kept tokens up to and including t
    position = torch.where(keep, counts - 1, torch.full_like(counts, -1))  # (N, T)
    n, width = keep.shape[0], max(int(keep.sum(-1).max().item()), 1)
    pad = batch.input_ids.new_full((n, width), 0)
    rows, cols = keep.nonzero(as_tuple=True)  # (P,), (P,)
    input_ids = pad.clone()
    input_ids[rows, position[rows, cols]] = batch.input_ids[rows, cols]
    attention_mask = torch.zeros_like(pad)
    attention_mask[rows, position[rows, cols]] = 1
    token_sentence = torch.full_like(pad, PADDING)
    token_sentence[rows, position[rows, cols]] = batch.token_sentence[rows, cols]
    marker_last = (counts.gather(1, batch.marker_positions) - 1).clamp(min=0)  # (N, M)
    return PlainBatch(input_ids, attention_mask, token_sentence, position, marker_last)


def token_logprobs(
    h: torch.Tensor, input_ids: torch.Tensor, scored: torch.Tensor, head: nn.Module, chunk: int
) -> torch.Tensor:
    """log p(token t | tokens before t) at every ``scored`` position t >= 1, else 0 (N, T).
    The vocabulary-sized logits are made ``chunk`` positions at a time, so memory stays
    bounded on long batches."""
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=h.device)  # (N, T)
    rows, cols = scored[:, 1:].nonzero(as_tuple=True)  # token cols + 1 is predicted at cols
    for start in range(0, rows.shape[0], chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        logits = head(h[r, c]).float()  # (P, V)
        picked = logits.log_softmax(-1).gather(-1, input_ids[r, c + 1].unsqueeze(-1))  # (P, 1)
        out[r, c + 1] = picked.squeeze(-1)
    return out


def prefix_rewards(values: torch.Tensor, mask: torch.Tensor) -> RewardOutput:
    """Prefix values v_j (N, M) as sentence credit: r_0 = v_0, r_j = v_j - v_(j-1), weights 1,
    score v_K (so sum_j a_j r_j telescopes to the score). The response head's reading, and an
    imported reward model's (:mod:`srm.imported`)."""
    previous = F.pad(values[:, :-1], (1, 0))  # (N, M) v_(j-1), 0 before the prompt term
    rewards = (values - previous) * mask  # (N, M)
    last = mask.sum(-1) - 1  # (N,) index K of the last marker
    score = values.gather(1, last.unsqueeze(-1)).squeeze(-1)  # (N,) v_K
    return RewardOutput(score, rewards, mask.to(rewards.dtype), values, mask)


def rope(x: torch.Tensor, position: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotary position embedding of ``x`` (..., d) at integer ``position`` (...).

    Rotating q by K and k by j makes q·k depend on the offset K - j: the attention knows how
    far back a sentence is, for any number of sentences.
    """
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)  # (d/2,)
    angle = position.to(torch.float32).unsqueeze(-1) * freqs  # (..., d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SentenceRewardModel(nn.Module):
    """A backbone plus one of three reward heads; see the module docstring for the math."""

    def __init__(self, backbone: Backbone, config: ModelConfig) -> None:
        super().__init__()
        limit = getattr(backbone.model.config, "max_position_embeddings", None)
        for name, length in (
            ("max_length", config.max_length),
            ("score_max_length", config.score_max_length),
        ):
            if limit is not None and length is not None and length > limit:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{name}: got {length}, but backbone {config.backbone!r} has only {limit} "
                    f"positions; use {flag} {limit} or less"
                )
        self.position_limit: int | None = limit
        self.config = config
        self.backbone = backbone.model
        self.tokenizer = backbone.tokenizer
        self.causal = backbone.causal
        # The LM head is kept out of the module's parameters: it is the backbone's (tied to the
        # input embeddings in small LMs), used only by the HaF-RM policy term, never saved here.
        self._lm_head = [backbone.lm_head] if backbone.lm_head is not None else []
        hidden = backbone.hidden_size
        # The learned <END> embedding starts at the separator/end token's embedding: a token
        # the backbone already reads as a boundary, so an untrained model gets sensible inputs.
        self.marker_embedding = nn.Parameter(_boundary_embedding(backbone).detach().clone())
        self.value_head = nn.Linear(hidden, 1)
        if config.head == "sentence":
            self.query = nn.Linear(hidden, config.d)
            self.key = nn.Linear(hidden, config.d)
        if (config.head == "likelihood" or config.likelihood_feature) and not self._lm_head:
            raise ConfigError(
                f"head {config.head!r}: backbone {config.backbone!r} has no language-model head, "
                "so it has no likelihood to read; use a decoder saved with one (smollm2, or any "
                "causal LM such as a *ForCausalLM directory)"
            )
        if config.likelihood_feature:
            # Starts at 0: the untrained model is the SRM as published; training decides how
            # much of the LM's likelihood a sentence's reward takes.
            self.likelihood_weight = nn.Parameter(torch.zeros(()))

    @classmethod
    def create(cls, config: ModelConfig, *, seed: int = 0) -> SentenceRewardModel:
        """A new model: the configured backbone plus freshly initialised heads (seeded)."""
        backbone = load_backbone(config.backbone, bidirectional=config.bidirectional, seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(backbone, config)

    @property
    def head(self) -> str:
        return self.config.head

    @property
    def score_length(self) -> int:
        """Tokens per sequence when scoring: ``config.score_max_length``, else as many as the
        backbone has positions (at most ``SCORE_LENGTH_CAP``), never fewer than the training
        length. Scoring sees whole responses even when training used short ones."""
        if self.config.score_max_length is not None:
            return self.config.score_max_length
        room = min(self.position_limit or SCORE_LENGTH_CAP, SCORE_LENGTH_CAP)
        return max(self.config.max_length, room)

    @property
    def has_lm_head(self) -> bool:
        """Whether the backbone came with a language-model head (the policy term needs one)."""
        return bool(self._lm_head)

    def prompt_text(self, prompt: str) -> str:
        """The prompt as the model reads it: rendered with the backbone's chat template as a
        user turn, ready for the assistant's response, when ``config.chat_template`` is on;
        else unchanged. A leading BOS the template writes is dropped (encoding adds one)."""
        return prompt_text(self.tokenizer, prompt, chat_template=self.config.chat_template)

    def sentence_likelihood(
        self, batch: Batch, plain: PlainBatch | None = None, *, chunk: int = 2048
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per response token, log p(token | prompt and the response before it) in the batch's
        own layout (N, T), 0 off the response; and per sentence its mean (N, M), index 0
        (the prompt) 0. Read on marker-free context: markers are not text, and an LM never
        saw them (measured in ``bench/credit_labels.py``)."""
        plain = strip_markers(batch) if plain is None else plain
        out = self.backbone(input_ids=plain.input_ids, attention_mask=plain.attention_mask)
        scored = plain.token_sentence >= 1  # (N, T') response tokens
        lp = token_logprobs(
            out.last_hidden_state, plain.input_ids, scored, self._lm_head[0], chunk
        )  # (N, T')
        kept = plain.position >= 0  # (N, T)
        token_lp = torch.zeros(batch.input_ids.shape, dtype=lp.dtype, device=lp.device)
        rows, cols = kept.nonzero(as_tuple=True)
        token_lp[rows, cols] = lp[rows, plain.position[rows, cols]]
        token_lp = token_lp * (batch.token_sentence >= 1)  # (N, T)
        means, _ = _per_sentence_means(token_lp, batch)  # (N, M)
        return token_lp, means

    def hidden_states(
        self,
        batch: Batch,
        *,
        backbone: nn.Module | None = None,
        marker_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Backbone states with the marker embedding swapped in at marker positions.
        ``backbone``/``marker_embedding`` replace the model's own (the policy's reference)."""
        return self.backbone_output(
            batch, backbone=backbone, marker_embedding=marker_embedding
        ).last_hidden_state  # (N, T, H)

    def backbone_output(
        self,
        batch: Batch,
        *,
        backbone: nn.Module | None = None,
        marker_embedding: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> Any:
        """The backbone's output on ``batch`` with the marker embedding swapped in at marker
        positions; with ``output_attentions``, run with eager attention (SDPA and flash
        kernels return no weights) and with the per-layer weights in ``.attentions``."""
        backbone = self.backbone if backbone is None else backbone
        marker = self.marker_embedding if marker_embedding is None else marker_embedding
        inputs = backbone.get_input_embeddings()(batch.input_ids)  # (N, T, H)
        marker = marker.to(inputs.dtype).expand_as(inputs)
        inputs = torch.where(batch.is_marker.unsqueeze(-1), marker, inputs)
        if not output_attentions:
            return backbone(inputs_embeds=inputs, attention_mask=batch.attention_mask)
        before = getattr(backbone.config, "_attn_implementation", None)
        if before not in (None, "eager"):
            backbone.set_attn_implementation("eager")
        try:
            return backbone(
                inputs_embeds=inputs, attention_mask=batch.attention_mask, output_attentions=True
            )
        finally:
            if before not in (None, "eager"):
                backbone.set_attn_implementation(before)

    def response_logprob(
        self, h: torch.Tensor, batch: Batch, *, head: nn.Module | None = None
    ) -> torch.Tensor:
        """log pi(response | prompt) per sequence (N,): the LM head's log-probabilities of the
        response tokens, summed. Markers are inputs, never targets. For the HaF-RM term;
        ``head`` replaces the backbone's LM head (the reference model's)."""
        if head is None and not self._lm_head:
            raise ConfigError(
                f"policy_weight: backbone {self.config.backbone!r} has no language-model head; "
                "the policy term needs a decoder saved with one (e.g. smollm2)"
            )
        head = (head if head is not None else self._lm_head[0]).to(h.device)
        targets = batch.input_ids[:, 1:]  # (N, T-1) token t+1 is predicted at position t
        scored = batch.token_sentence[:, 1:] >= 1  # (N, T-1) response tokens only
        rows, cols = scored.nonzero(as_tuple=True)  # (P,), (P,)
        logits = head(h[rows, cols])  # (P, V): only where a response token comes next
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp16 -> fp32
        picked = logits.log_softmax(-1).gather(-1, targets[rows, cols].unsqueeze(-1))  # (P, 1)
        total = torch.zeros(h.shape[0], dtype=picked.dtype, device=h.device)  # (N,)
        return total.index_add(0, rows, picked.squeeze(-1))

    def forward(self, batch: Batch, *, with_logprob: bool = False) -> RewardOutput:
        if self.head == "likelihood":
            token_lp, means = self.sentence_likelihood(batch)
            out = self._token_aggregate(token_lp, batch, batch.marker_mask)
            out.likelihood = means
            return out
        h = self.hidden_states(batch)  # (N, T, H)
        likelihood = None
        if self.config.likelihood_feature:
            with torch.no_grad():  # a feature of the text, read by the backbone as it is
                likelihood = self.sentence_likelihood(batch)[1]  # (N, M)
        out = self._heads(h, batch, likelihood)
        out.likelihood = likelihood
        if with_logprob:
            out.response_logprob = self.response_logprob(h, batch)
        return out

    def _heads(
        self, h: torch.Tensor, batch: Batch, likelihood: torch.Tensor | None = None
    ) -> RewardOutput:
        mask = batch.marker_mask  # (N, M)
        rows = torch.arange(h.shape[0], device=h.device).unsqueeze(-1)  # (N, 1)
        h_markers = h[rows, batch.marker_positions]  # (N, M, H)
        last = mask.sum(-1) - 1  # (N,) index K of the last marker

        if self.head == "token":
            return self._token_head(h, batch, mask)

        values = self.value_head(h_markers).squeeze(-1).float() * mask  # (N, M)
        if self.head == "response":
            return prefix_rewards(values, mask)
        rewards = prefix_rewards(values, mask).sentence_rewards  # (N, M)
        if likelihood is not None:  # r_j += w_lik * l_j for the sentences (not the prompt)
            rewards = rewards + self.likelihood_weight * F.pad(likelihood[:, 1:], (1, 0)) * mask

        n, m = mask.shape
        h_last = h_markers[torch.arange(n, device=h.device), last]  # (N, H)
        q = rope(self.query(h_last), last, self.config.rope_base)  # (N, d)
        positions = torch.arange(m, device=h.device).expand(n, m)  # (N, M)
        k = rope(self.key(h_markers), positions, self.config.rope_base)  # (N, M, d)
        logits = torch.einsum("nd,nmd->nm", q, k).float() / math.sqrt(self.config.d)  # (N, M)
        attend = mask.clone()  # (N, M)
        if not self.config.prompt_term:  # sentences only (the prompt term, if no sentence)
            attend[:, 0] &= last == 0
        weights = logits.masked_fill(~attend, float("-inf")).softmax(-1)  # (N, M)
        score = (weights * rewards).sum(-1)  # (N,)
        return RewardOutput(score, rewards, weights, values, mask)

    def _token_head(self, h: torch.Tensor, batch: Batch, mask: torch.Tensor) -> RewardOutput:
        in_response = (batch.token_sentence >= 1).to(torch.float32)  # (N, T), markers excluded
        token_rewards = self.value_head(h).squeeze(-1).float() * in_response  # (N, T)
        return self._token_aggregate(token_rewards, batch, mask)

    @staticmethod
    def _token_aggregate(
        token_rewards: torch.Tensor, batch: Batch, mask: torch.Tensor
    ) -> RewardOutput:
        """Score = mean token reward over the response; per sentence the mean token reward,
        weighted by the sentence's share of the response's tokens (so sum a_j r_j = S)."""
        rewards, counts = _per_sentence_means(token_rewards, batch)  # (N, M), (N, M)
        n_tokens = counts.sum(-1).clamp(min=1)  # (N,)
        score = token_rewards.sum(-1) / n_tokens  # (N,)
        weights = counts / n_tokens.unsqueeze(-1)  # (N, M)
        values = torch.zeros_like(rewards)
        return RewardOutput(score, rewards, weights, values, mask, token_rewards)


def _per_sentence_means(
    token_values: torch.Tensor, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``token_values`` (N, T) over each sentence's tokens, and the token counts, both
    (N, M); index 0 (the prompt term) is 0 in both. Off-response values must be 0."""
    in_response = (batch.token_sentence >= 1).to(token_values.dtype)  # (N, T)
    n, m = batch.marker_mask.shape
    sentence = batch.token_sentence.clamp(min=0)  # (N, T) prompt/markers/padding -> 0
    zeros = torch.zeros(n, m, dtype=token_values.dtype, device=token_values.device)
    sums = zeros.scatter_add(1, sentence, token_values * in_response)  # (N, M)
    counts = zeros.scatter_add(1, sentence, in_response)  # (N, M)
    sums[:, 0] = 0.0  # index 0 collected the excluded tokens (each adding 0)
    counts[:, 0] = 0.0
    return sums / counts.clamp(min=1), counts


def _boundary_embedding(backbone: Backbone) -> torch.Tensor:
    return boundary_embedding(backbone.model, backbone.tokenizer)


def boundary_embedding(model: nn.Module, tok: Any) -> torch.Tensor:
    """The marker embedding's starting value: the separator's (else the end token's) input
    embedding, else a random vector of the embeddings' scale."""
    weight = model.get_input_embeddings().weight  # (V, H)
    for token_id in (tok.sep_token_id, tok.eos_token_id):
        if token_id is not None and token_id < weight.shape[0]:
            return weight[token_id].float()
    return torch.randn(weight.shape[1]) * weight.std().item()
