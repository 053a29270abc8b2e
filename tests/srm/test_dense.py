"""Dense rewards for RL: a_j * r_j on the last token of sentence j, the prompt term dropped,
realigned to another tokenizer by character offsets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from srm.backbones import load_tokenizer
from srm.cli import main
from srm.dense import (
    PolicyTokens,
    dense_rewards,
    last_char,
    policy_token_rewards,
    policy_tokens,
    token_bytes,
    token_offsets,
    token_records,
    token_rewards,
)
from srm.records import ResponseScores, SentenceScore
from srm.score import score_responses


def hand_record() -> ResponseScores:
    """'Hi there. ' + 'Bye.' + ' Cut off' (the last left out by truncation)."""
    return ResponseScores(
        score=0.5 * 2.0 + 0.25 * 4.0 + 0.25 * -8.0,
        prompt_reward=2.0,
        prompt_weight=0.5,
        truncated=True,
        n_sentences=3,
        n_scored=2,
        sentences=(
            SentenceScore(text="Hi there. ", start=0, end=10, reward=4.0, weight=0.25),
            SentenceScore(text="Bye.", start=10, end=14, reward=-8.0, weight=0.25),
            SentenceScore(text=" Cut off", start=14, end=22, reward=None, weight=None),
        ),
    )


def test_dense_rewards_are_the_sentence_terms_without_the_prompt() -> None:
    dense = dense_rewards(hand_record())
    assert [(d.start, d.end, d.dense_reward) for d in dense] == [(0, 10, 1.0), (10, 14, -2.0)]
    assert math.fsum(d.dense_reward for d in dense) == hand_record().sentence_term


def test_token_rewards_lie_on_the_last_token_of_each_sentence() -> None:
    record = hand_record()
    # "Hi" " there" "." " Bye" "." " Cut" " off": the space after "there." is glued to "Bye",
    # so the first sentence ends on ".", not on the token holding its trailing space.
    offsets = [(0, 2), (2, 8), (8, 9), (9, 13), (13, 14), (14, 18), (18, 22)]
    assert token_rewards(record, offsets) == [0, 0, 1.0, 0, -2.0, 0, 0]
    # The same tokens after a 5-character prompt, tokenised together.
    shifted = [(0, 5)] + [(s + 5, e + 5) for s, e in offsets]
    assert token_rewards(record, shifted, shift=5) == [0, 0, 0, 1.0, 0, -2.0, 0, 0]
    # One token across a boundary ("." + " Bye." as one): both rewards land on it.
    assert token_rewards(record, [(0, 8), (8, 14)]) == [0, 1.0 - 2.0]


def test_last_char_skips_trailing_white_space() -> None:
    sentence = hand_record().sentences[0]
    assert last_char(sentence, hand_record().text) == 8  # the "." of "Hi there. "


@pytest.mark.parametrize("head", ["sentence", "token"])
def test_model_dense_rewards_realign_to_another_tokenizer(make_model, texts, tiny_gpt2_dir, head):
    """With the tiny model's own scores and a GPT-2 BPE (a different tokenizer): every
    sentence's a_j r_j lies on the policy token that holds its last character, all other tokens
    are zero, and per token they add up to the sentence term of the score."""
    model = make_model(head)
    policy = load_tokenizer(tiny_gpt2_dir)
    records = score_responses(model, [p for p, _ in texts], [r for _, r in texts])
    for record, (_, response) in zip(records, texts, strict=True):
        offsets = token_offsets(policy, response)
        rewards = token_rewards(record, offsets)
        assert len(rewards) == len(offsets)
        expected = [0.0] * len(offsets)
        for s in record.sentences:
            t = next(
                i for i, (a, b) in enumerate(offsets) if a <= last_char(s, response) < b
            )  # the policy token holding the sentence's last character
            assert response[offsets[t][0] : offsets[t][1]].rstrip()[-1] == s.text.rstrip()[-1]
            expected[t] += s.weight * s.reward
        assert rewards == pytest.approx(expected, abs=1e-12)
        assert math.fsum(rewards) == pytest.approx(record.score - record.prompt_term, abs=1e-5)
        assert record.prompt_term != 0 or head == "token"  # the dropped term is not nothing
        assert sum(r != 0 for r in rewards) == len(record.sentences)
        records_ = token_records(record, offsets)
        assert [(t.start, t.end) for t in records_] == offsets


def test_cli_score_dense(tmp_path: Path, sample_path: Path, tiny_model: Path, tiny_gpt2_dir):
    out = tmp_path / "scores.jsonl"
    args = ["score", "--model", str(tiny_model), "--data", str(sample_path), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--dense", "--dense-tokenizer", str(tiny_gpt2_dir)])
    assert result.exit_code == 0, result.output
    policy = load_tokenizer(tiny_gpt2_dir)
    for line in out.read_text().splitlines()[:5]:
        data = json.loads(line)
        for side in ("chosen", "rejected"):
            record = ResponseScores.from_json(data[side])
            assert data[side]["dense"] == [d.to_json() for d in dense_rewards(record)]
            tokens = data[side]["dense_tokens"]
            offsets = token_offsets(policy, record.text)
            assert [(t["start"], t["end"]) for t in tokens] == offsets
            assert [t["reward"] for t in tokens] == token_rewards(record, offsets)
            assert any(t["reward"] != 0 for t in tokens)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dense-tokenizer", "x"], "--dense-tokenizer applies with --dense"),
        (["--dense", "--dense-tokenizer", "/no/such/tokenizer"], "Cannot load a tokenizer"),
    ],
)
def test_cli_score_dense_refusals(
    tmp_path: Path, sample_path: Path, tiny_model: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "scores.jsonl"
    args = ["score", "--model", str(tiny_model), "--data", str(sample_path), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, *extra])
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists()


# ----------------------------------------------------------------- the policy's own tokens
SAMPLED = Path(__file__).parent / "data" / "smollm2_sampled.json"


def test_policy_tokens_read_bytes_and_cut_characters() -> None:
    """北 split across two tokens, then 京 and a full stop: spans in bytes, each character
    complete after the byte that ends it; a response cut inside a character reads U+FFFD."""
    tokens = PolicyTokens.from_pieces([b"\xe5\x8c", b"\x97", b"\xe4\xba\xac.", b""])
    assert tokens.text == "北京."
    assert tokens.byte_spans == ((0, 2), (2, 3), (3, 7), (7, 7))
    assert tokens.char_ends == (3, 6, 7)
    cut = PolicyTokens.from_pieces([b"Hi. ", b"\xe5\x8c"])
    assert cut.text == "Hi. \ufffd" and cut.char_ends[-1] == 6


def test_policy_token_rewards_land_on_the_token_that_ends_each_sentence() -> None:
    """'Hi there.' '\\n' '\\n' (two newline tokens, as a policy may sample them) 'Bye 🙂' with
    the emoji's four bytes across two tokens: the second sentence's reward goes to the token
    holding the emoji's last byte, never to the first half."""
    pieces = [b"Hi", b" there", b".", b"\n", b"\n", b"Bye ", "🙂".encode()[:2], "🙂".encode()[2:]]
    tokens = PolicyTokens.from_pieces(pieces)
    assert tokens.text == "Hi there.\n\nBye 🙂"
    record = ResponseScores(
        score=1.0 - 2.0,
        prompt_reward=0.0,
        prompt_weight=0.0,
        truncated=False,
        n_sentences=2,
        n_scored=2,
        sentences=(
            SentenceScore(text="Hi there.\n\n", start=0, end=11, reward=4.0, weight=0.25),
            SentenceScore(text="Bye 🙂", start=11, end=16, reward=-8.0, weight=0.25),
        ),
    )
    assert policy_token_rewards(record, tokens) == [0, 0, 1.0, 0, 0, 0, 0, -2.0]
    # The same tokens as a client's byte offsets over the text.
    given = PolicyTokens.from_byte_offsets(tokens.text, tokens.byte_spans)
    assert policy_token_rewards(record, given) == [0, 0, 1.0, 0, 0, 0, 0, -2.0]
    with pytest.raises(ValueError, match="UTF-8 bytes"):
        PolicyTokens.from_byte_offsets("Hi", [(0, 3)])


def test_token_bytes_read_a_byte_level_vocabulary(tiny_gpt2_dir) -> None:
    """Ids tokenised piece by piece (as a policy samples them, one token at a time) read back
    as the pieces' bytes; the end-of-sequence token holds none."""
    policy = load_tokenizer(tiny_gpt2_dir)
    pieces = ["Paris is the capital.", "\n", "\n", "北", "🙂", " Done."]
    ids = [i for piece in pieces for i in policy(piece, add_special_tokens=False)["input_ids"]]
    ids.append(policy.eos_token_id)
    tokens = policy_tokens(policy, ids)
    assert tokens.text == "".join(pieces)
    assert b"".join(token_bytes(policy, ids)) == "".join(pieces).encode()
    assert tokens.byte_spans[-1][0] == tokens.byte_spans[-1][1]  # EOS: no text


def sampled() -> list[dict]:
    return json.loads(SAMPLED.read_text())["samples"]


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from srm.backbones import smollm2_path

    return load_tokenizer(smollm2_path())


def test_sampled_ids_get_each_sentence_reward_on_the_token_that_ends_it(
    make_model, smollm2_tokenizer
) -> None:
    """Real SmolLM2 samples (paragraphs, code, emoji, Chinese; recorded by
    scripts/sample_policy_ids.py): the response read off the sampled ids is the decoded text,
    every scored sentence's a_j r_j lies on the sampled token holding the last byte of its last
    character, and the rewards add up to the sentence term. Some samples' ids are not what
    re-tokenising their text gives, which is the case this path exists for."""
    model = make_model("sentence")
    samples = sampled()
    assert not all(s["retokenised_matches"] for s in samples)
    for sample in samples:
        ids = sample["response_ids"]
        tokens = policy_tokens(smollm2_tokenizer, ids)
        assert tokens.text == sample["text"] or "\ufffd" in tokens.text
        assert len(tokens.byte_spans) == len(ids)
        record = score_responses(model, [sample["prompt"]], [tokens.text])[0]
        rewards = policy_token_rewards(record, tokens)
        assert len(rewards) == len(ids)
        data = tokens.text.encode()
        expected = [0.0] * len(ids)
        for s in dense_rewards(record):
            last = tokens.char_ends[last_char(s, tokens.text)] - 1  # the sentence's last byte
            t = next(t for t, (a, b) in enumerate(tokens.byte_spans) if a <= last < b)
            assert data[tokens.byte_spans[t][0] : tokens.byte_spans[t][1]].strip()  # not a space
            expected[t] += s.dense_reward
        assert rewards == pytest.approx(expected, abs=1e-12)
        assert math.fsum(rewards) == pytest.approx(record.sentence_term, abs=1e-5)
