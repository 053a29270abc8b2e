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
from srm.collate import Batch
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

    def hidden_states(
        self,
        batch: Batch,
        *,
        backbone: nn.Module | None = None,
        marker_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Backbone states with the marker embedding swapped in at marker positions.
        ``backbone``/``marker_embedding`` replace the model's own (the policy's reference)."""
        backbone = self.backbone if backbone is None else backbone
        marker = self.marker_embedding if marker_embedding is None else marker_embedding
        inputs = backbone.get_input_embeddings()(batch.input_ids)  # (N, T, H)
        marker = marker.to(inputs.dtype).expand_as(inputs)
        inputs = torch.where(batch.is_marker.unsqueeze(-1), marker, inputs)
        out = backbone(inputs_embeds=inputs, attention_mask=batch.attention_mask)
        return out.last_hidden_state  # (N, T, H)

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
        h = self.hidden_states(batch)  # (N, T, H)
        out = self._heads(h, batch)
        if with_logprob:
            out.response_logprob = self.response_logprob(h, batch)
        return out

    def _heads(self, h: torch.Tensor, batch: Batch) -> RewardOutput:
        mask = batch.marker_mask  # (N, M)
        rows = torch.arange(h.shape[0], device=h.device).unsqueeze(-1)  # (N, 1)
        h_markers = h[rows, batch.marker_positions]  # (N, M, H)
        last = mask.sum(-1) - 1  # (N,) index K of the last marker

        if self.head == "token":
            return self._token_head(h, batch, mask)

        values = self.value_head(h_markers).squeeze(-1).float() * mask  # (N, M)
        previous = F.pad(values[:, :-1], (1, 0))  # (N, M) v_(j-1), 0 before the prompt term
        rewards = (values - previous) * mask  # (N, M) r_0 = v_0, r_j = v_j - v_(j-1)

        if self.head == "response":
            score = values.gather(1, last.unsqueeze(-1)).squeeze(-1)  # (N,) v_K
            return RewardOutput(score, rewards, mask.to(rewards.dtype), values, mask)

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
        n_tokens = in_response.sum(-1).clamp(min=1)  # (N,)
        score = token_rewards.sum(-1) / n_tokens  # (N,)
        # Per sentence: mean token reward, weighted by the sentence's share of tokens.
        m = mask.shape[1]
        sentence = batch.token_sentence.clamp(min=0)  # (N, T) prompt/markers/padding -> 0
        sums = torch.zeros(h.shape[0], m, device=h.device).scatter_add(
            1, sentence, token_rewards
        )  # (N, M)
        counts = torch.zeros(h.shape[0], m, device=h.device).scatter_add(
            1, sentence, in_response
        )  # (N, M)
        sums[:, 0] = 0.0  # index 0 collected the excluded tokens (each adding 0)
        counts[:, 0] = 0.0
        rewards = sums / counts.clamp(min=1)  # (N, M)
        weights = counts / n_tokens.unsqueeze(-1)  # (N, M)
        values = torch.zeros_like(rewards)
        return RewardOutput(score, rewards, weights, values, mask, token_rewards)


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
