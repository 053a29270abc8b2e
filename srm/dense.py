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

Re-tokenising text is approximate: a policy samples ids that its tokenizer would not give for
the decoded text (``\\n\\n`` as two tokens, a character split across tokens). With the ids
the policy sampled, :class:`PolicyTokens` reads the response off the ids themselves, each
token's place in it in *bytes*, and :func:`policy_token_rewards` gives one reward per sampled
id (a token holding part of a character is fine: the sentence's reward goes to the token
holding the last byte of its last character)::

    tokens = policy_tokens(policy_tokenizer, response_ids)
    record = score_responses(model, [prompt], [tokens.text])[0]
    rewards = policy_token_rewards(record, tokens)   # len(rewards) == len(response_ids)

Sentences that truncation left out took no part in the score: they get no dense reward.
"""

from __future__ import annotations

import codecs
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
    sentences ending in the same token both land on it: the rewards add up. With offsets from
    re-tokenising text this is approximate (see :func:`policy_token_rewards`).
    """
    text = record.text
    return _placed(record, len(offsets), lambda c: token_index(offsets, shift + last_char(c, text)))


def _placed(record: ResponseScores, n: int, token_of) -> list[float]:
    rewards = [0.0] * n
    for sentence in dense_rewards(record):
        t = token_of(sentence)
        if t is not None:
            rewards[t] += sentence.dense_reward
    return rewards


# ----------------------------------------------------------------- the policy's own tokens
@dataclass(frozen=True)
class PolicyTokens:
    """A response as the policy's tokens spell it: the text, each token's ``[start, end)`` in
    the text's UTF-8 bytes, and after which byte each character of the text is complete.

    Built from the tokens' bytes (:meth:`from_pieces`, :func:`policy_tokens`) the text is their
    bytes read as UTF-8, a cut character (a response stopped inside one) read as U+FFFD; built
    from a client's byte offsets (:meth:`from_byte_offsets`) it is the text given.
    """

    text: str
    byte_spans: tuple[tuple[int, int], ...]
    char_ends: tuple[int, ...]
    """``char_ends[c]``: the byte offset just past character ``c`` of ``text``."""

    @classmethod
    def from_pieces(cls, pieces: Sequence[bytes]) -> PolicyTokens:
        """From each token's bytes, in order (a special token's are ``b""``).

        >>> PolicyTokens.from_pieces([b"\\xe5\\x8c", b"\\x97."]).byte_spans  # 北 split in two
        ((0, 2), (2, 5))
        """
        spans, at = [], 0
        for piece in pieces:
            spans.append((at, at + len(piece)))
            at += len(piece)
        data = b"".join(pieces)
        # Byte by byte, so that each character is known to end at the byte completing it.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        chars, ends = [], []
        for i in range(len(data)):
            out = decoder.decode(data[i : i + 1])
            chars.append(out)
            ends.extend([i + 1] * len(out))
        out = decoder.decode(b"", final=True)
        chars.append(out)
        ends.extend([len(data)] * len(out))
        return cls("".join(chars), tuple(spans), tuple(ends))

    @classmethod
    def from_byte_offsets(cls, text: str, spans: Sequence[Sequence[int]]) -> PolicyTokens:
        """From ``text`` and each token's ``[start, end)`` in its UTF-8 bytes; ``ValueError``
        saying what is wrong with a span."""
        size = len(text.encode("utf-8"))
        checked = []
        for t, span in enumerate(spans):
            if len(span) != 2 or not 0 <= span[0] <= span[1] <= size:
                raise ValueError(
                    f"token {t}: byte offsets {list(span)} are not [start, end] with "
                    f"0 <= start <= end <= {size}, the response's length in UTF-8 bytes"
                )
            checked.append((int(span[0]), int(span[1])))
        ends, at = [], 0
        for ch in text:
            at += len(ch.encode("utf-8"))
            ends.append(at)
        return cls(text, tuple(checked), tuple(ends))


def policy_token_rewards(record: ResponseScores, tokens: PolicyTokens) -> list[float]:
    """One dense reward per policy token: sentence j's ``a_j * r_j`` on the token holding the
    last byte of its last character that is not white space (the token that ends it), zero
    elsewhere. ``record`` scores ``tokens.text``, or its beginning (an end-of-sequence text
    stripped off)."""
    if not tokens.text.startswith(record.text):
        raise ValueError("the record scores another text than the tokens spell; score tokens.text")

    def token_of(sentence: DenseReward) -> int | None:
        last_byte = tokens.char_ends[last_char(sentence, tokens.text)] - 1
        return token_index(tokens.byte_spans, last_byte)

    return _placed(record, len(tokens.byte_spans), token_of)


def policy_tokens(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> PolicyTokens:
    """The response the policy sampled as ``ids``, read off the ids (nothing re-tokenised):
    :meth:`PolicyTokens.from_pieces` of :func:`token_bytes`. Special tokens (EOS, padding)
    hold no text."""
    return PolicyTokens.from_pieces(token_bytes(tokenizer, ids))


def token_bytes(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> list[bytes]:
    """Each token's bytes: read from a byte-level BPE vocabulary (GPT-2, Llama 3, Qwen,
    SmolLM) or a SentencePiece one with byte fallback (Llama 2, Mistral, Gemma); ``b""`` for a
    special token, an added token's own text. ``ValueError`` for other tokenizers: send byte
    offsets instead."""
    kind = _vocabulary_kind(tokenizer)
    special = set(tokenizer.all_special_ids)
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    pieces = []
    for i, token in zip(ids, tokenizer.convert_ids_to_tokens(list(ids)), strict=True):
        if i in special:
            pieces.append(b"")
        elif i in added:
            pieces.append(added[i].encode("utf-8"))
        elif token is None:
            raise ValueError(f"token id {i} is not in the policy tokenizer's vocabulary")
        elif kind == "byte_level":
            table = _byte_level_table()
            pieces.append(bytes(table[ch] for ch in token))
        elif (byte := _BYTE_FALLBACK.fullmatch(token)) is not None:
            pieces.append(bytes([int(byte.group(1), 16)]))
        else:
            pieces.append(token.replace("\u2581", " ").encode("utf-8"))
    return pieces


_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _vocabulary_kind(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = json.loads(backend.to_str()).get("decoder") if backend is not None else None
    found = json.dumps(decoder)
    if '"ByteLevel"' in found:
        return "byte_level"
    if '"ByteFallback"' in found or '"Metaspace"' in found:
        return "sentencepiece"
    raise ValueError(
        f"cannot read token bytes off tokenizer {tokenizer.name_or_path!r} (neither byte-level "
        "BPE nor SentencePiece): send each token's byte offsets instead"
    )


@functools.cache
def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character to byte: printable bytes stand for themselves,
    the others for the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


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
