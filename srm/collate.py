"""Build model inputs: ``prompt <END> s1 <END> ... sK <END>``, tokenised, with marker positions.

The marker is not a vocabulary token. Its positions hold a placeholder id, and the model swaps
in a learned embedding there (no vocabulary resize, so adapter checkpoints stay small and any
tokenizer works unchanged). Sentences come from :func:`srm.segment.segment`; the response is
tokenised once with character offsets and cut into sentences with
:func:`srm.segment.align_tokens`, so tokenisation across sentence boundaries is the
tokenizer's own.

Marker ``j`` sits right after sentence ``j`` (marker 0 right after the prompt). A sequence
that does not fit ``max_length`` keeps the prompt's *tail* and the response's *head*; a
sentence cut part-way is followed by its marker, so the last kept token is always a marker.
The responses of one pair are encoded as a group (:func:`encode_groups`) with one prompt
encoding: both get the same prompt tokens, so the prompt term is the same on both sides.

    >>> enc = encode(tokenizer, "Hi?", "Hello. Bye.", max_length=64)
    >>> enc.n_sentences, [enc.input_ids[p] for p in enc.marker_positions] == [PAD] * 3
    (2, True)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerFast

from srm.segment import DEFAULT_MAX_CHARS, Span, align_tokens, segment

if TYPE_CHECKING:
    from srm.config import ModelConfig
    from srm.data import PreferencePair

PROMPT = -1  # token_sentence value of prefix and prompt tokens
MARKER = -2  # token_sentence value of marker positions
PADDING = -3  # token_sentence value of padding


@dataclass(frozen=True)
class Encoded:
    """One (prompt, response) sequence, before padding."""

    input_ids: list[int]
    marker_positions: list[int]
    """K+1 positions: marker 0 after the prompt, marker j after sentence j."""
    token_sentence: list[int]
    """Per token: the 1-based sentence index, PROMPT for prefix/prompt tokens, MARKER."""
    spans: list[Span]
    """All of the response's sentences; the first ``n_sentences`` were kept (the last kept
    one possibly cut short by truncation)."""
    response_offsets: list[tuple[int, int]]
    """Character offsets into the response of each kept response token, in order."""
    truncated: bool
    """Anything was cut: the prompt's head, or part of the response."""
    prompt_truncated: bool = False
    """The prompt's head was cut (both responses of a pair lose the same tokens)."""
    last_cut_short: bool = False
    """The last kept sentence was cut part-way (it is scored on its head only)."""

    @property
    def n_sentences(self) -> int:
        return len(self.marker_positions) - 1

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Batch:
    """Padded tensors for N sequences (for pairs: N = 2B, chosen first, then rejected)."""

    input_ids: torch.Tensor  # (N, T)
    attention_mask: torch.Tensor  # (N, T) 1 for real tokens
    is_marker: torch.Tensor  # (N, T) bool
    token_sentence: torch.Tensor  # (N, T) sentence index >= 1, or PROMPT / MARKER / PADDING
    marker_positions: torch.Tensor  # (N, M) token position of marker j (0 where absent)
    marker_mask: torch.Tensor  # (N, M) bool, True for markers that exist

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{k: v.to(device) for k, v in vars(self).items()})

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def prefix_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """The token a sequence starts with: [CLS] for BERT-style, BOS where defined, else none."""
    for token_id in (tokenizer.cls_token_id, tokenizer.bos_token_id):
        if token_id is not None:
            return [token_id]
    return []


def encode(
    tokenizer: PreTrainedTokenizerFast,
    prompt: str,
    response: str,
    *,
    max_length: int,
    prompt_fraction: float = 0.5,
    max_sentence_chars: int = DEFAULT_MAX_CHARS,
) -> Encoded:
    """Encode one (prompt, response); see :func:`encode_groups` for the batched version."""
    return encode_groups(
        tokenizer,
        [prompt],
        [[response]],
        max_length=max_length,
        prompt_fraction=prompt_fraction,
        max_sentence_chars=max_sentence_chars,
    )[0][0]


def encode_many(
    tokenizer: PreTrainedTokenizerFast,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    max_length: int,
    prompt_fraction: float = 0.5,
    max_sentence_chars: int = DEFAULT_MAX_CHARS,
    spans: Sequence[Sequence[Span] | None] | None = None,
) -> list[Encoded]:
    """Encode independent (prompt, response) sequences: each is a group of one (see
    :func:`encode_groups`). For the two sides of a pair use :func:`encode_groups`, so that
    both see the same prompt tokens."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if spans is not None and len(spans) != len(responses):
        raise ValueError(f"{len(spans)} span lists but {len(responses)} responses")
    groups = encode_groups(
        tokenizer,
        prompts,
        [[r] for r in responses],
        max_length=max_length,
        prompt_fraction=prompt_fraction,
        max_sentence_chars=max_sentence_chars,
        spans=None if spans is None else [[s] for s in spans],
    )
    return [group[0] for group in groups]


def encode_groups(
    tokenizer: PreTrainedTokenizerFast,
    prompts: Sequence[str],
    responses: Sequence[Sequence[str]],
    *,
    max_length: int,
    prompt_fraction: float = 0.5,
    max_sentence_chars: int = DEFAULT_MAX_CHARS,
    spans: Sequence[Sequence[Sequence[Span] | None]] | None = None,
) -> list[list[Encoded]]:
    """Encode every response of ``responses[i]`` after ``prompts[i]``, with ONE prompt
    encoding per group: all responses of a group get the same prompt tokens (the same tail
    when the prompt is cut), so the prompt-only prefix, and with it v_0, is the same for
    every response of a pair. How much of the prompt is kept is decided by the group's
    longest response, so a shorter response never buys itself a longer prompt (which would
    let the model read length through truncation).

    ``spans[i][k]``, when given and not ``None``, replaces the automatic segmentation of
    ``responses[i][k]`` (a user's edited sentence boundaries); it must cover the response.
    The tokenizer runs once over all prompts and once over all responses (fast).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} response groups")
    if spans is not None:
        if len(spans) != len(responses):
            raise ValueError(f"{len(spans)} span groups but {len(responses)} response groups")
        for i, (own, group) in enumerate(zip(spans, responses, strict=True)):
            if len(own) != len(group):
                raise ValueError(f"group {i}: {len(own)} span lists but {len(group)} responses")
    flat = [response for group in responses for response in group]
    if not flat:  # the tokenizer refuses an empty batch
        return [[] for _ in responses]
    given = [s for group in spans for s in group] if spans is not None else [None] * len(flat)
    # verbose=False: sequences longer than the model are expected here; truncation comes later.
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False, verbose=False)["input_ids"]
    tokenized = tokenizer(
        flat, add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )
    sentence_tokens = [
        _tokens_per_sentence(
            list(zip(ids, offsets, strict=True)),
            list(own) if own is not None else segment(text, max_chars=max_sentence_chars),
        )
        for ids, offsets, text, own in zip(
            tokenized["input_ids"], tokenized["offset_mapping"], flat, given, strict=True
        )
    ]
    prefix = prefix_ids(tokenizer)
    placeholder = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    budget = max_length - len(prefix) - 1  # room after the prefix and marker 0
    reserve = int(budget * prompt_fraction)  # the prompt's share when both are long
    result: list[list[Encoded]] = []
    start = 0
    for p_ids, group in zip(prompt_ids, responses, strict=True):
        members = sentence_tokens[start : start + len(group)]
        start += len(group)
        # Tokens + markers the longest response needs; the prompt gets its share, or all the
        # room that response leaves (at least one token and a marker stay for the response).
        needed = max((_needed(tokens) for tokens, _ in members), default=0)
        prompt_keep = min(len(p_ids), max(min(reserve, budget - 2), budget - needed))
        head = [*prefix, *p_ids[len(p_ids) - prompt_keep :]]
        result.append(
            [
                _assemble(
                    head,
                    tokens,
                    spans_,
                    placeholder=placeholder,
                    room=budget - prompt_keep,
                    prompt_cut=prompt_keep < len(p_ids),
                )
                for tokens, spans_ in members
            ]
        )
    return result


def prompt_text(tokenizer: PreTrainedTokenizerFast, prompt: str, *, chat_template: bool) -> str:
    """The prompt as a model reads it: rendered with the tokenizer's chat template as a user
    turn, ready for the assistant's response, when ``chat_template`` is on (and the tokenizer
    has one); else unchanged. A leading BOS the template writes is dropped (encoding adds one).
    """
    if not chat_template or not getattr(tokenizer, "chat_template", None):
        return prompt
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer.bos_token_id is not None:
        text = text[len(bos) :]
    return text


def encode_pairs(
    tokenizer: PreTrainedTokenizerFast,
    cfg: ModelConfig,
    pairs: Sequence[PreferencePair],
    spans: Sequence[Mapping[str, Sequence[Span]] | None] | None = None,
    *,
    max_length: int | None = None,
) -> list[Encoded]:
    """Encode chosen responses then rejected ones, as a model with config ``cfg`` and
    ``tokenizer`` reads them: item i and i + len(pairs) form pair i, and share one prompt
    encoding (identical prompt tokens).

    ``spans[i]`` may map ``"chosen"``/``"rejected"`` to sentence spans that replace the
    automatic segmentation of that response (see :func:`srm.score.score_pairs`). ``max_length``
    defaults to the training length, ``cfg.max_length``. Prompts go through
    :func:`prompt_text` (the chat template, if ``cfg.chat_template`` is on).

    >>> encoded = encode_pairs(model.tokenizer, model.config, pairs)  # 2 * len(pairs) items
    """
    given = list(spans) if spans is not None else [None] * len(pairs)
    groups = encode_groups(
        tokenizer,
        [prompt_text(tokenizer, p.prompt, chat_template=cfg.chat_template) for p in pairs],
        [(p.chosen, p.rejected) for p in pairs],
        max_length=max_length or cfg.max_length,
        prompt_fraction=cfg.prompt_fraction,
        max_sentence_chars=cfg.max_sentence_chars,
        spans=[((s or {}).get("chosen"), (s or {}).get("rejected")) for s in given],
    )
    return [chosen for chosen, _ in groups] + [rejected for _, rejected in groups]


_Token = tuple[int, tuple[int, int]]  # (token id, character offsets in the response)


def _needed(sentence_tokens: list[list[_Token]]) -> int:
    return sum(len(t) for t in sentence_tokens) + len(sentence_tokens)  # tokens + markers


def _assemble(
    head: list[int],
    sentence_tokens: list[list[_Token]],
    spans: list[Span],
    *,
    placeholder: int,
    room: int,
    prompt_cut: bool,
) -> Encoded:
    """``head <END>`` then the response's head in ``room`` tokens: whole sentences, then part
    of one, each followed by its marker."""
    response: list[int] = []
    response_sentence: list[int] = []
    kept_offsets: list[tuple[int, int]] = []
    cut_short = False
    for j, tokens in enumerate(sentence_tokens, start=1):
        left = room - len(response)
        if left < 2:  # no room for a token and its marker
            break
        take = tokens[: left - 1]
        response.extend(token_id for token_id, _ in take)
        kept_offsets.extend(offset for _, offset in take)
        response.append(placeholder)
        response_sentence.extend([j] * len(take) + [MARKER])
        if len(take) < len(tokens):
            cut_short = True
            break

    ids = [*head, placeholder, *response]
    token_sentence = [PROMPT] * len(head) + [MARKER] + response_sentence
    markers = [i for i, s in enumerate(token_sentence) if s == MARKER]
    n_kept = len(markers) - 1
    return Encoded(
        ids,
        markers,
        token_sentence,
        spans,
        kept_offsets,
        truncated=prompt_cut or cut_short or n_kept < len(spans),
        prompt_truncated=prompt_cut,
        last_cut_short=cut_short,
    )


def _tokens_per_sentence(
    tokens: list[_Token], spans: list[Span]
) -> tuple[list[list[_Token]], list[Span]]:
    """Group a response's (id, offset) tokens by sentence (returned with the spans). A token
    the aligner cannot place (one that covers only whitespace, say) joins the sentence of the
    token before it."""
    groups: list[list[_Token]] = [[] for _ in spans]
    current = 0
    for token, index in zip(tokens, align_tokens(spans, [o for _, o in tokens]), strict=True):
        if index >= 0:
            current = index
        if groups:
            groups[current].append(token)
    return groups, spans


def collate(encoded: Sequence[Encoded], pad_id: int) -> Batch:
    """Right-pad a list of encoded sequences into a :class:`Batch`."""
    n = len(encoded)
    width = max(len(e) for e in encoded)
    n_markers = max(len(e.marker_positions) for e in encoded)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    token_sentence = torch.full((n, width), PADDING, dtype=torch.long)
    marker_positions = torch.zeros((n, n_markers), dtype=torch.long)
    marker_mask = torch.zeros((n, n_markers), dtype=torch.bool)
    for i, e in enumerate(encoded):
        t, m = len(e), len(e.marker_positions)
        input_ids[i, :t] = torch.tensor(e.input_ids)
        attention_mask[i, :t] = 1
        token_sentence[i, :t] = torch.tensor(e.token_sentence)
        marker_positions[i, :m] = torch.tensor(e.marker_positions)
        marker_mask[i, :m] = True
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        is_marker=token_sentence == MARKER,
        token_sentence=token_sentence,
        marker_positions=marker_positions,
        marker_mask=marker_mask,
    )


def length_grouped_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    bucket_batches: int = 50,
) -> list[list[int]]:
    """Batches of indices whose sequences have similar lengths, to avoid padding waste.

    Without shuffling, indices are sorted by length (longest first) and cut into batches:
    best for scoring. With shuffling, indices are shuffled, grouped into buckets of
    ``bucket_batches`` batches, sorted by length within each bucket, cut, and the batches
    shuffled: training still sees a random order while padding stays low.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = list(range(len(lengths)))
    if not shuffle:
        order.sort(key=lambda i: -lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(order)
    bucket = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
