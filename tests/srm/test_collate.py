"""Marker insertion, truncation and length-grouped batching."""

from __future__ import annotations

import random

import pytest

from srm.backbones import load_backbone
from srm.collate import (
    MARKER,
    PADDING,
    PROMPT,
    collate,
    encode,
    encode_groups,
    length_grouped_batches,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone("tiny").tokenizer


def tokens(tokenizer, enc) -> list[str]:
    return tokenizer.convert_ids_to_tokens(enc.input_ids)


def test_layout_prompt_marker_then_sentence_marker_pairs(tokenizer) -> None:
    enc = encode(tokenizer, "Hi there?", "Hello. How are you? Fine.", max_length=64)
    assert tokens(tokenizer, enc) == [
        "[CLS]",
        "hi",
        "there",
        "?",
        "[PAD]",
        "hello",
        ".",
        "[PAD]",
        "how",
        "are",
        "you",
        "?",
        "[PAD]",
        "fine",
        ".",
        "[PAD]",
    ]
    assert enc.marker_positions == [4, 7, 12, 15]
    assert enc.token_sentence == [
        PROMPT,
        PROMPT,
        PROMPT,
        PROMPT,
        MARKER,
        1,
        1,
        MARKER,
        2,
        2,
        2,
        2,
        MARKER,
        3,
        3,
        MARKER,
    ]
    assert [s.text for s in enc.spans] == ["Hello. ", "How are you? ", "Fine."]
    assert enc.n_sentences == 3 and not enc.truncated
    assert enc.response_offsets == [
        (0, 5),
        (5, 6),
        (7, 10),
        (11, 14),
        (15, 18),
        (18, 19),
        (20, 24),
        (24, 25),
    ]


def test_truncation_keeps_prompt_tail_and_response_head(tokenizer) -> None:
    prompt = "one two three four five six seven eight nine ten"
    response = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu."
    enc = encode(tokenizer, prompt, response, max_length=16, prompt_fraction=0.25)
    toks = tokens(tokenizer, enc)
    # 14 tokens after [CLS] and marker 0: the prompt's share int(14 * 0.25) = 3, the response
    # 11, of which two whole sentences with their markers use 10; the one token left cannot
    # hold a token and a marker.
    assert len(enc) == 15
    assert enc.truncated and enc.prompt_truncated and not enc.last_cut_short
    assert toks[0] == "[CLS]"
    kept_prompt = toks[1 : enc.marker_positions[0]]
    assert kept_prompt == ["eight", "nine", "ten"]  # the tail
    assert enc.token_sentence[-1] == MARKER  # the last kept token is always a marker
    assert enc.marker_positions[-1] == 14
    assert enc.n_sentences < len(enc.spans)  # later sentences were dropped


@pytest.mark.parametrize("max_length", [8, 9, 12, 17, 23, 31, 40, 64, 200])
@pytest.mark.parametrize("prompt_fraction", [0.1, 0.5, 0.9])
def test_truncation_invariants(tokenizer, max_length, prompt_fraction) -> None:
    prompt = "Tell me about the history of the bicycle in a few sentences, please. " * 3
    response = (
        "The bicycle was invented in the 19th century. Early designs had no pedals. "
        "Pedals came later, in the 1860s. The safety bicycle followed in the 1880s."
    )
    enc = encode(
        tokenizer, prompt, response, max_length=max_length, prompt_fraction=prompt_fraction
    )
    assert len(enc) <= max_length
    assert enc.token_sentence[-1] == MARKER
    assert enc.n_sentences >= 1  # at least one response token and its marker
    assert len(enc.marker_positions) == enc.n_sentences + 1
    assert all(enc.token_sentence[p] == MARKER for p in enc.marker_positions)
    assert enc.token_sentence.count(MARKER) == len(enc.marker_positions)
    n_response_tokens = sum(1 for s in enc.token_sentence if s >= 1)
    assert n_response_tokens == len(enc.response_offsets)
    full = encode(tokenizer, prompt, response, max_length=10_000)
    assert enc.truncated == (len(enc) < len(full))


def test_a_long_prompt_never_crowds_out_a_short_response(tokenizer) -> None:
    enc = encode(tokenizer, "word " * 500, "Yes. No.", max_length=32)
    assert enc.n_sentences == 2
    assert len(enc) == 32
    assert enc.truncated


@pytest.mark.parametrize("max_length", [12, 20, 32, 64, 512])
def test_a_pair_shares_one_prompt_encoding(tokenizer, max_length) -> None:
    prompt = "Tell me about the history of the bicycle in a few sentences, please. " * 4
    short = "Bicycles are old."
    long = "The bicycle was invented in the 19th century. Early designs had no pedals. " * 5
    group = encode_groups(
        tokenizer, [prompt, prompt], [[short, long], [long, short]], max_length=max_length
    )
    for a, b in group:
        assert max(len(a), len(b)) <= max_length
        # Everything up to and including marker 0 is identical on both sides.
        assert a.marker_positions[0] == b.marker_positions[0]
        cut = a.marker_positions[0] + 1
        assert a.input_ids[:cut] == b.input_ids[:cut]
        assert a.prompt_truncated == b.prompt_truncated
    # The order of the two responses does not change what either one gets.
    assert group[0][0].input_ids == group[1][1].input_ids
    assert group[0][1].input_ids == group[1][0].input_ids


def test_the_longest_response_decides_the_prompt_cut(tokenizer) -> None:
    prompt = "one two three four five six seven eight nine ten " * 3
    short, long = "Yes.", "Alpha beta gamma. Delta epsilon zeta. Eta theta iota."
    alone = encode(tokenizer, prompt, short, max_length=24)
    short_enc, long_enc = encode_groups(tokenizer, [prompt], [[short, long]], max_length=24)[0]
    # Alone, the short answer leaves the prompt more room than it gets beside the long one:
    # it cannot buy itself a longer prompt inside a pair.
    assert alone.marker_positions[0] > short_enc.marker_positions[0]
    assert short_enc.marker_positions[0] == long_enc.marker_positions[0]
    assert not short_enc.last_cut_short and short_enc.n_sentences == 1


def test_encode_groups_checks_its_arguments(tokenizer) -> None:
    with pytest.raises(ValueError, match="2 prompts but 1 response groups"):
        encode_groups(tokenizer, ["a", "b"], [["x"]], max_length=32)
    with pytest.raises(ValueError, match="group 0: 1 span lists but 2 responses"):
        encode_groups(tokenizer, ["a"], [["x", "y"]], max_length=32, spans=[[None]])


def test_collate_pads_and_masks(tokenizer) -> None:
    a = encode(tokenizer, "Q?", "One. Two. Three.", max_length=64)
    b = encode(tokenizer, "Q?", "Only.", max_length=64)
    batch = collate([a, b], pad_id=tokenizer.pad_token_id)
    assert batch.input_ids.shape == (2, len(a))
    assert batch.attention_mask[1].tolist() == [1] * len(b) + [0] * (len(a) - len(b))
    assert batch.marker_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.marker_positions[1].tolist() == [*b.marker_positions, 0, 0]
    assert batch.token_sentence[1, len(b) :].eq(PADDING).all()
    assert batch.is_marker.sum().item() == 4 + 2


def test_length_grouped_batches_without_shuffle_sort_by_length() -> None:
    lengths = [5, 50, 10, 40, 20, 30, 1]
    batches = length_grouped_batches(lengths, 3)
    assert batches == [[1, 3, 5], [4, 2, 0], [6]]


def test_length_grouped_batches_shuffled_cover_everything_once_and_are_seeded() -> None:
    lengths = [(i * 37) % 100 for i in range(100)]
    a = length_grouped_batches(lengths, 8, shuffle=True, seed=1, bucket_batches=4)
    b = length_grouped_batches(lengths, 8, shuffle=True, seed=1, bucket_batches=4)
    c = length_grouped_batches(lengths, 8, shuffle=True, seed=2, bucket_batches=4)
    assert a == b and a != c
    assert sorted(i for batch in a for i in batch) == list(range(100))

    def padding(batches: list[list[int]]) -> int:
        return sum(
            max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches
        )

    order = list(range(100))
    random.Random(1).shuffle(order)
    random_batches = [order[i : i + 8] for i in range(0, 100, 8)]
    assert padding(a) < padding(random_batches) / 3


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        length_grouped_batches([1, 2], 0)
