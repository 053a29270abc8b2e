"""Dense rewards for RL: each sentence's term in the score, a_j * r_j, on the sentence's last
token and zero elsewhere, as the SRM authors hand them to PPO (the prompt marker's term,
a_0 * r_0, is dropped: no policy token produced it).

The model's own sentence records are enough: :func:`dense_rewards` reads the terms off a
:class:`~srm.records.ResponseScores` by character span, which does not depend on any
tokenizer. A policy whose tokenizer differs from the reward model's gets one reward per *its*
token with :func:`token_rewards`: the offsets of its tokens in the response decide which
token holds the last character of each sentence::

    record = score_responses(model, [prompt], [response])[0]
    offsets = token_offsets(load_tokenizer("path/to/policy"), response)
    rewards = token_rewards(record, offsets)   # len(rewards) == len(offsets)

Sentences that truncation left out took no part in the score: they get no dense reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from srm.records import DenseReward, ResponseScores, SentenceScore, TokenScore

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Offsets = Sequence[tuple[int, int]]


def dense_rewards(record: ResponseScores) -> list[DenseReward]:
    """``a_j * r_j`` for each scored sentence j of ``record``, with its character span.

    They add up to ``record.sentence_term`` (the score less the prompt's term).
    """
    return [
        DenseReward(start=s.start, end=s.end, dense_reward=s.weight * s.reward)  # type: ignore[operator]
        for s in record.sentences
        if s.scored
    ]


def last_char(sentence: SentenceScore | DenseReward, text: str) -> int:
    """The offset of a sentence's last character that is not white space (sentences tile the
    response, so they carry the spaces and newlines after them, which a tokenizer may glue
    to the next word): where the sentence ends for its reward."""
    stripped = text[sentence.start : sentence.end].rstrip()
    return sentence.start + max(len(stripped), 1) - 1


def token_offsets(tokenizer: PreTrainedTokenizerBase, text: str) -> list[tuple[int, int]]:
    """Character offsets of ``tokenizer``'s tokens of ``text`` (no special tokens added)."""
    if not tokenizer.is_fast:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} is not a fast tokenizer; dense token rewards "
            "need character offsets (save a tokenizer.json with the tokenizers library)"
        )
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [tuple(pair) for pair in encoding["offset_mapping"]]  # type: ignore[misc]


def token_index(offsets: Offsets, char: int) -> int | None:
    """The token holding character ``char``: the last token that starts at or before it
    (a token covering it is that token; tokens with no characters are skipped). ``None`` when
    no token starts at or before it."""
    found = None
    for t, (start, end) in enumerate(offsets):
        if end > start and start <= char:
            found = t
    return found


def token_rewards(record: ResponseScores, offsets: Offsets, *, shift: int = 0) -> list[float]:
    """One dense reward per token given by ``offsets``: sentence j's ``a_j * r_j`` on the
    token holding its last character (:func:`last_char`), zero elsewhere.

    ``offsets`` index the text the tokens came from; ``shift`` is where the response starts in
    it (the prompt's length, when the policy tokenised prompt and response together). Two
    sentences ending in the same token both land on it: the rewards add up.
    """
    text = record.text
    rewards = [0.0] * len(offsets)
    for sentence in dense_rewards(record):
        t = token_index(offsets, shift + last_char(sentence, text))
        if t is not None:
            rewards[t] += sentence.dense_reward
    return rewards


def token_records(record: ResponseScores, offsets: Offsets, *, shift: int = 0) -> list[TokenScore]:
    """:func:`token_rewards` with each token's offsets, as ``srm score --dense-tokenizer``
    writes them."""
    rewards = token_rewards(record, offsets, shift=shift)
    return [
        TokenScore(start=start, end=end, reward=reward)
        for (start, end), reward in zip(offsets, rewards, strict=True)
    ]


def with_dense(
    side: ResponseScores, data: dict, tokenizer: PreTrainedTokenizerBase | None = None
) -> dict:
    """``data`` (``side.to_json()``) with ``"dense"``: ``[{start, end, dense_reward}]``, and
    with ``"dense_tokens"``: ``[{start, end, reward}]`` per token of ``tokenizer`` when one is
    given, as ``srm score --dense`` writes each side of a record."""
    data["dense"] = [d.to_json() for d in dense_rewards(side)]
    if tokenizer is not None:
        offsets = token_offsets(tokenizer, side.text)
        data["dense_tokens"] = [t.to_json() for t in token_records(side, offsets)]
    return data
