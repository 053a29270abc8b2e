"""Batch scoring: per-sentence rewards and attention weights for every pair, in one pass.

Each response is one forward pass (chosen and rejected share a batch); the sentence rewards
and weights come out of the same pass as the score, so the display *is* the model:
``prompt_weight * prompt_reward + sum(weight * reward) == score``.

One :class:`~srm.records.PairScores` per pair (``to_json()`` gives the JSON that ``srm score``
writes; see :mod:`srm.records`), each side a :class:`~srm.records.ResponseScores`.
A sentence's ``start``/``end`` are character offsets into the response. Sentences dropped by
truncation are listed with ``reward``/``weight`` ``None`` (they did not take part in the
score); ``n_scored`` of ``n_sentences`` were scored, the last of them on its head only when
``last_cut_short``. Both responses of a pair see the same prompt tokens (one prompt encoding
per pair, :func:`srm.collate.encode_groups`), so ``prompt_reward`` is the same on both sides
and the prompt's share of the margin is ``prompt_reward * (weight_c - weight_r)``: see
:func:`srm.records.margin_split`. Scoring runs at the model's scoring length
(:attr:`SentenceRewardModel.score_length`, ``max_length`` in the record), not its training
length, so whole responses are scored where the backbone allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

# encode_pairs lives in srm.collate; imported from here by older code.
from srm.collate import Encoded, collate, encode_many, encode_pairs, length_grouped_batches
from srm.data import PreferencePair
from srm.model import RewardOutput, SentenceRewardModel
from srm.records import PairScores, ResponseScores, SentenceScore, TokenScore
from srm.segment import Span

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@torch.inference_mode()
def score_pairs(
    model: SentenceRewardModel,
    pairs: Sequence[PreferencePair],
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
    show_progress: bool = False,
    spans: Sequence[Mapping[str, Sequence[Span]] | None] | None = None,
    max_length: int | None = None,
) -> list[PairScores]:
    """Score ``pairs`` (``batch_size`` pairs per forward pass, similar lengths together).

    ``progress(done, total)`` is called after every batch; ``show_progress`` adds a tqdm bar.
    ``spans``, parallel to ``pairs``, can give a response's sentences by hand
    (``{"chosen": [Span, ...]}``; see :func:`srm.segment.merge_spans`/``split_span``).
    ``max_length`` (tokens per sequence) defaults to the model's scoring length. Results come
    back in the order of ``pairs``.
    """
    model.eval()
    device = next(model.parameters()).device
    n = len(pairs)
    length = _scoring_length(model, max_length)
    encoded = encode_pairs(model.tokenizer, model.config, pairs, spans, max_length=length)
    lengths = [max(len(encoded[i]), len(encoded[i + n])) for i in range(n)]
    results: list[PairScores | None] = [None] * n
    done = 0
    with tqdm(total=n, unit="pair", disable=not show_progress, desc="scoring") as bar:
        for batch_pairs in length_grouped_batches(lengths, batch_size):
            items = [encoded[i] for i in batch_pairs] + [encoded[i + n] for i in batch_pairs]
            batch = collate(items, model.tokenizer.pad_token_id or 0).to(device)
            out = model(batch)
            b = len(batch_pairs)
            for row, i in enumerate(batch_pairs):
                pair = pairs[i]
                results[i] = PairScores(
                    id=pair.id,
                    source=pair.source,
                    margin=pair.margin,
                    subset=pair.subset,
                    head=model.config.head,
                    prefix_rewards=bool(model.causal),
                    max_length=length,
                    chosen=response_record(items[row], out, row),
                    rejected=response_record(items[row + b], out, row + b),
                )
            done += b
            bar.update(b)
            if progress is not None:
                progress(done, n)
    return results  # type: ignore[return-value]


@torch.inference_mode()
def score_responses(
    model: SentenceRewardModel,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    spans: Sequence[Sequence[Span] | None] | None = None,
    batch_size: int = 16,
    max_length: int | None = None,
    progress: Progress | None = None,
    show_progress: bool = False,
) -> list[ResponseScores]:
    """Score single responses (not pairs): one record per response, one side of a
    :func:`score_pairs` record. ``spans[i]``, when given, are the sentences of
    ``responses[i]`` (stepwise data comes with its own); ``batch_size`` is in responses."""
    encoded = encode_responses(model, prompts, responses, spans=spans, max_length=max_length)
    return score_encoded(
        model, encoded, batch_size=batch_size, progress=progress, show_progress=show_progress
    )


def encode_responses(
    model: SentenceRewardModel,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    spans: Sequence[Sequence[Span] | None] | None = None,
    max_length: int | None = None,
) -> list[Encoded]:
    """The first half of :func:`score_responses`: segment and tokenize, no model call (the
    reward server does this per request, beside the thread that runs the model)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    cfg = model.config
    return encode_many(
        model.tokenizer,
        [model.prompt_text(prompt) for prompt in prompts],
        responses,
        max_length=_scoring_length(model, max_length),
        prompt_fraction=cfg.prompt_fraction,
        max_sentence_chars=cfg.max_sentence_chars,
        spans=spans,
    )


def score_encoded(
    model: SentenceRewardModel,
    encoded: Sequence[Encoded],
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
    show_progress: bool = False,
) -> list[ResponseScores]:
    """The second half of :func:`score_responses`: the forward passes, ``batch_size``
    responses each (of similar lengths), and a record per response. ``progress`` is called
    after each pass; an exception it raises stops the scoring there."""
    model.eval()
    device = next(model.parameters()).device
    results: list[ResponseScores | None] = [None] * len(encoded)
    done = 0
    with tqdm(total=len(encoded), unit="response", disable=not show_progress) as bar:
        for ids in length_grouped_batches([len(e) for e in encoded], batch_size):
            items = [encoded[i] for i in ids]
            out = model(collate(items, model.tokenizer.pad_token_id or 0).to(device))
            for row, i in enumerate(ids):
                results[i] = response_record(items[row], out, row)
            done += len(ids)
            bar.update(len(ids))
            if progress is not None:
                progress(done, len(encoded))
    return results  # type: ignore[return-value]


def _scoring_length(model: SentenceRewardModel, max_length: int | None) -> int:
    if max_length is None:
        return model.score_length
    limit = model.position_limit
    if max_length < 8 or (limit is not None and max_length > limit):
        raise ValueError(
            f"max_length: got {max_length}; use 8 to {limit or 'any number of'} tokens for "
            f"backbone {model.config.backbone!r}"
        )
    return max_length


def response_record(encoded: Encoded, out: RewardOutput, row: int) -> ResponseScores:
    """The per-sentence view of one scored response (row ``row`` of ``out``)."""
    k = encoded.n_sentences
    rewards = out.sentence_rewards[row, : k + 1].tolist()
    weights = out.weights[row, : k + 1].tolist()
    likelihood = None if out.likelihood is None else out.likelihood[row, : k + 1].tolist()
    sentences = tuple(
        SentenceScore(
            text=span.text,
            start=span.start,
            end=span.end,
            # Sentences that truncation left out took no part in the score: None, not 0.
            reward=rewards[j] if j <= k else None,
            weight=weights[j] if j <= k else None,
            likelihood=likelihood[j] if likelihood is not None and j <= k else None,
        )
        for j, span in enumerate(encoded.spans, start=1)
    )
    tokens = None
    if out.token_rewards is not None:
        response_positions = [t for t, s in enumerate(encoded.token_sentence) if s >= 1]
        token_rewards = out.token_rewards[row, response_positions].tolist()
        tokens = tuple(
            TokenScore(start=start, end=end, reward=reward)
            for (start, end), reward in zip(encoded.response_offsets, token_rewards, strict=True)
        )
    return ResponseScores(
        score=out.score[row].item(),
        prompt_reward=rewards[0],
        prompt_weight=weights[0],
        truncated=encoded.truncated,
        prompt_truncated=encoded.prompt_truncated,
        n_sentences=len(encoded.spans),
        n_scored=k,
        last_cut_short=encoded.last_cut_short,
        sentences=sentences,
        tokens=tokens,
    )
