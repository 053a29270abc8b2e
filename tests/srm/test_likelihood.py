"""Likelihood credit: a language model's own token log-probabilities, per sentence, on
marker-free context (the ``likelihood`` head and the sentence head's ``likelihood_feature``)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from srm.collate import collate, encode_many
from srm.config import ConfigError, ModelConfig, TrainConfig
from srm.model import SentenceRewardModel, strip_markers
from srm.score import score_responses
from srm.segment import Span

PROMPT = "Where is the cat?"
RESPONSE = "The cat is on the mat. It sleeps there. Dogs bark."


def likelihood_model(path, **overrides) -> SentenceRewardModel:
    return SentenceRewardModel.create(
        ModelConfig(backbone=str(path), head="likelihood", max_length=128, **overrides)
    )


def encoded_batch(model, prompts, responses):
    items = encode_many(
        model.tokenizer, [model.prompt_text(p) for p in prompts], responses, max_length=128
    )
    return items, collate(items, model.tokenizer.pad_token_id or 0)


def test_strip_markers_keeps_the_text_and_finds_each_markers_last_token(tiny_llama_dir) -> None:
    model = likelihood_model(tiny_llama_dir)
    items, batch = encoded_batch(model, [PROMPT, "Hi"], [RESPONSE, "Short. Two."])
    plain = strip_markers(batch)
    for row, e in enumerate(items):
        text_ids = [t for t, s in zip(e.input_ids, e.token_sentence, strict=True) if s != -2]
        n = len(text_ids)
        assert plain.input_ids[row, :n].tolist() == text_ids
        assert plain.attention_mask[row].sum().item() == n
        for j, p in enumerate(e.marker_positions):
            # the last text token before marker j, by position in the plain row
            before = sum(1 for s in e.token_sentence[:p] if s != -2) - 1
            assert plain.marker_last[row, j].item() == before


def test_likelihood_head_is_the_lms_own_log_probability_given_everything_before(
    tiny_llama_dir,
) -> None:
    model = likelihood_model(tiny_llama_dir)
    items, batch = encoded_batch(model, [PROMPT], [RESPONSE])
    with torch.no_grad():
        out = model(batch)
    # Reference: the causal LM on the plain ids (no markers), read directly.
    lm = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    e = items[0]
    ids = [t for t, s in zip(e.input_ids, e.token_sentence, strict=True) if s != -2]
    sentence_of = [s for s in e.token_sentence if s != -2]
    with torch.no_grad():
        logp = lm(torch.tensor([ids])).logits[0].log_softmax(-1)
    per_token = [logp[t - 1, ids[t]].item() for t in range(1, len(ids))]
    for j in range(1, e.n_sentences + 1):
        mine = [lp for lp, s in zip(per_token, sentence_of[1:], strict=True) if s == j]
        expected = sum(mine) / len(mine)
        torch.testing.assert_close(out.sentence_rewards[0, j].item(), expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(out.likelihood[0, j].item(), expected, atol=1e-4, rtol=0)
    response = [lp for lp, s in zip(per_token, sentence_of[1:], strict=True) if s >= 1]
    torch.testing.assert_close(
        out.score[0].item(), sum(response) / len(response), atol=1e-4, rtol=0
    )
    # What the app shows is the model: weights times rewards give the score.
    total = (out.weights[0] * out.sentence_rewards[0]).sum().item()
    torch.testing.assert_close(total, out.score[0].item(), atol=1e-5, rtol=0)


def test_likelihood_does_not_depend_on_the_marker_embedding(tiny_llama_dir) -> None:
    model = likelihood_model(tiny_llama_dir)
    _, batch = encoded_batch(model, [PROMPT], [RESPONSE])
    with torch.no_grad():
        before = model(batch).sentence_rewards
        model.marker_embedding.add_(5.0)
        after = model(batch).sentence_rewards
    torch.testing.assert_close(before, after)


def test_likelihood_needs_a_language_model_head() -> None:
    with pytest.raises(ConfigError, match="no language-model head"):
        SentenceRewardModel.create(ModelConfig(backbone="tiny", head="likelihood"))


def test_read_only_heads_cannot_be_trained() -> None:
    with pytest.raises(ConfigError, match="nothing to train"):
        TrainConfig(model=ModelConfig(head="likelihood"))


def test_chat_template_renders_the_prompt_as_a_user_turn(tiny_llama_dir) -> None:
    model = likelihood_model(tiny_llama_dir, chat_template=True)
    assert model.prompt_text(PROMPT) == PROMPT  # the tiny tokenizer has no template
    model.tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    assert model.prompt_text(PROMPT) == f"<|user|>{PROMPT}\n<|assistant|>"
    plain = likelihood_model(tiny_llama_dir)
    plain.tokenizer.chat_template = model.tokenizer.chat_template
    assert plain.prompt_text(PROMPT) == PROMPT  # off unless asked for


def test_scored_records_carry_the_likelihood_and_token_log_probs(tiny_llama_dir) -> None:
    model = likelihood_model(tiny_llama_dir)
    (record,) = score_responses(model, [PROMPT], [RESPONSE])
    assert record.n_scored == len(record.sentences) == 3
    for s in record.sentences:
        assert s.likelihood == pytest.approx(s.reward)
        assert s.reward < 0  # a log-probability
    assert record.tokens is not None and all(t.reward <= 0 for t in record.tokens)
    assert "likelihood" in record.sentences[0].to_json()


def test_likelihood_feature_adds_a_learned_multiple_of_the_likelihood(tiny_llama_dir) -> None:
    config = ModelConfig(backbone=str(tiny_llama_dir), max_length=128, likelihood_feature=True)
    model = SentenceRewardModel.create(config)
    _, batch = encoded_batch(model, [PROMPT], [RESPONSE])
    with torch.no_grad():
        base = model(batch)
        model.likelihood_weight.fill_(2.0)
        fed = model(batch)
    mask = batch.marker_mask[0]
    expected = base.sentence_rewards[0] + 2.0 * base.likelihood[0] * mask
    expected[0] = base.sentence_rewards[0, 0]  # the prompt term takes none
    torch.testing.assert_close(fed.sentence_rewards[0], expected)
    assert base.likelihood[0, 1:].lt(0).all()
    with pytest.raises(ConfigError, match="likelihood_feature"):
        ModelConfig(head="response", likelihood_feature=True)


def test_the_server_returns_each_sentences_likelihood(tiny_llama_dir) -> None:
    from fastapi.testclient import TestClient

    from srm.serve import ServeConfig, create_app

    model = likelihood_model(tiny_llama_dir)
    with TestClient(create_app(model, ServeConfig(), name="lik")) as client:
        response = client.post("/score", json={"prompt": PROMPT, "responses": [RESPONSE]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["head"] == "likelihood"
    sentences = body["responses"][0]["sentences"]
    assert [s["likelihood"] for s in sentences] == [s["reward"] for s in sentences]
    assert all(s["likelihood"] < 0 for s in sentences)


def test_eval_steps_reports_the_likelihood_credit_of_an_lm(tiny_llama_dir, tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from srm.checkpoint import save
    from srm.cli import main
    from srm.evaluate import auroc

    steps = tmp_path / "steps.jsonl"
    rows = [
        {"prompt": "Q1?", "completions": ["Good one.", "Bad one.", "Fine."], "labels": [1, 0, 1]},
        {"prompt": "Q2?", "completions": ["Wrong.", "Right here."], "labels": [0, 1]},
    ]
    steps.write_text(
        "".join(json.dumps(r | {"labels": [bool(x) for x in r["labels"]]}) + "\n" for r in rows)
    )
    model_dir = tmp_path / "lik"
    save(likelihood_model(tiny_llama_dir), model_dir)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main, ["eval", "--model", str(model_dir), "--steps", str(steps), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "likelihood: mean token log-prob" in result.output
    report = json.loads(out.read_text())
    assert report["head"] == "likelihood" and report["default_method"] == "reward"
    # The reward row is the likelihood itself: recompute it from a direct scoring.
    model = likelihood_model(tiny_llama_dir)
    scored = []
    for r in rows:
        text = "\n".join(r["completions"])
        spans, start = [], 0
        for j, c in enumerate(r["completions"]):
            piece = c + ("\n" if j < len(r["completions"]) - 1 else "")
            spans.append(Span(start, start + len(piece), piece))
            start += len(piece)
        (rec,) = score_responses(model, [r["prompt"]], [text], spans=[spans])
        scored += [(s.reward, bool(g)) for s, g in zip(rec.sentences, r["labels"], strict=True)]
    expected = auroc([v for v, _ in scored], [g for _, g in scored])
    assert report["overall"]["metrics"]["reward"]["auroc"] == pytest.approx(expected)


@pytest.mark.parametrize("tied", [True, False])
def test_a_saved_lm_backbone_keeps_its_head_and_likelihood(tiny_llama_dir, tmp_path, tied) -> None:
    """Fully saved weights of a decoder with an LM head load back with that head, tied or not,
    so the likelihood (and the likelihood feature) reads the same numbers after loading."""
    from srm.checkpoint import load, save

    config = ModelConfig(backbone=str(tiny_llama_dir), max_length=128, likelihood_feature=True)
    model = SentenceRewardModel.create(config)
    if not tied:  # a head of its own
        head = model._lm_head[0]
        head.weight = torch.nn.Parameter(head.weight.detach().clone() + 0.5)
    _, batch = encoded_batch(model, [PROMPT], [RESPONSE])
    with torch.no_grad():
        model.likelihood_weight.fill_(1.5)
        before = model(batch)
    save(model, tmp_path / "m")
    again = load(tmp_path / "m")
    with torch.no_grad():
        after = again(batch)
    torch.testing.assert_close(after.likelihood, before.likelihood)
    torch.testing.assert_close(after.sentence_rewards, before.sentence_rewards)
