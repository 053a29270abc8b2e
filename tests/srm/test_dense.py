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
from srm.dense import dense_rewards, last_char, token_offsets, token_records, token_rewards
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
