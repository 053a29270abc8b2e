"""The SRM's math on tiny random backbones: decomposition, causality, batching, gradients."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from srm.losses import bradley_terry
from srm.model import rope

HEADS = ["sentence", "response", "token"]


@pytest.mark.parametrize("head", HEADS)
def test_weighted_sentence_rewards_add_up_to_the_score(batch_for, make_model, texts, head) -> None:
    model = make_model(head)
    encoded, batch = batch_for(model, texts)  # mixed lengths: rows are padded
    with torch.no_grad():
        out = model(batch)
    assert_close((out.weights * out.sentence_rewards).sum(-1), out.score, atol=1e-6, rtol=0)
    for row, enc in enumerate(encoded):
        k = enc.n_sentences
        assert out.marker_mask[row].sum().item() == k + 1
        # Padding gets nothing: no weight, no reward.
        assert torch.all(out.weights[row, k + 1 :] == 0)
        assert torch.all(out.sentence_rewards[row, k + 1 :] == 0)
        if head != "response":
            assert out.weights[row].sum().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("head", ["sentence", "response"])
def test_sentence_rewards_are_differences_of_prefix_values(
    batch_for, make_model, texts, head
) -> None:
    model = make_model(head)
    encoded, batch = batch_for(model, texts)
    with torch.no_grad():
        out = model(batch)
    for row, enc in enumerate(encoded):
        k = enc.n_sentences
        v, r = out.values[row, : k + 1], out.sentence_rewards[row, : k + 1]
        assert_close(r[0], v[0])
        assert_close(r[1:], v[1:] - v[:-1])
        assert_close(r.sum(), v[k], atol=1e-6, rtol=0)  # telescoping


def test_response_head_score_is_the_last_value(batch_for, make_model, texts) -> None:
    model = make_model("response")
    encoded, batch = batch_for(model, texts)
    with torch.no_grad():
        out = model(batch)
    last = torch.tensor([e.n_sentences for e in encoded])
    assert_close(out.score, out.values[torch.arange(len(encoded)), last])


def test_sentence_head_weights_are_a_softmax_over_real_markers(
    batch_for, make_model, texts
) -> None:
    model = make_model("sentence")
    encoded, batch = batch_for(model, texts)
    with torch.no_grad():
        out = model(batch)
    for row, enc in enumerate(encoded):
        w = out.weights[row, : enc.n_sentences + 1]
        assert torch.all(w > 0)
        assert w.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_token_head_shows_mean_token_reward_per_sentence(batch_for, make_model, texts) -> None:
    model = make_model("token")
    encoded, batch = batch_for(model, texts)
    with torch.no_grad():
        out = model(batch)
    in_response = batch.token_sentence >= 1
    assert torch.all(out.token_rewards[~in_response] == 0)
    row, enc = 3, encoded[3]
    n_tokens = in_response[row].sum()
    assert_close(out.score[row], out.token_rewards[row].sum() / n_tokens)
    for j in range(1, enc.n_sentences + 1):
        tokens = batch.token_sentence[row] == j
        assert_close(out.sentence_rewards[row, j], out.token_rewards[row, tokens].mean())
        assert_close(out.weights[row, j], tokens.sum() / n_tokens)
    assert out.weights[row, 0] == 0 and out.sentence_rewards[row, 0] == 0


@pytest.mark.parametrize("changed", [1, 2, 3])
def test_changing_sentence_j_leaves_earlier_prefix_values_unchanged(
    batch_for, make_model, changed
) -> None:
    model = make_model("sentence")
    sentences = ["The sky is blue.", "Grass is green.", "Snow is white.", "Coal is black."]
    other = list(sentences)
    other[changed - 1] = "Something entirely different and much longer happens here."
    pairs = [("Colours?", " ".join(sentences)), ("Colours?", " ".join(other))]
    encoded, batch = batch_for(model, pairs)
    assert [e.n_sentences for e in encoded] == [4, 4]
    with torch.no_grad():
        out = model(batch)
    assert_close(out.values[0, :changed], out.values[1, :changed], atol=1e-5, rtol=0)
    assert not torch.allclose(out.values[0, changed], out.values[1, changed], atol=1e-4)


@pytest.mark.parametrize("head", HEADS)
def test_scoring_alone_or_in_a_padded_batch_gives_the_same_numbers(
    batch_for, make_model, texts, head
) -> None:
    model = make_model(head)
    _, batch = batch_for(model, texts)
    with torch.no_grad():
        together = model(batch)
        for row, text in enumerate(texts):
            _, single_batch = batch_for(model, [text])
            alone = model(single_batch)
            m = alone.marker_mask.shape[1]
            assert_close(alone.score[0], together.score[row], atol=1e-5, rtol=0)
            assert_close(alone.weights[0], together.weights[row, :m], atol=1e-5, rtol=0)
            assert_close(
                alone.sentence_rewards[0], together.sentence_rewards[row, :m], atol=1e-5, rtol=0
            )


def test_no_fixed_cap_on_the_number_of_sentences(batch_for, make_model) -> None:
    model = make_model("sentence", max_length=512)
    response = " ".join(f"Point {i} is made." for i in range(80))
    encoded, batch = batch_for(model, [("List many points.", response)])
    assert encoded[0].n_sentences == 80
    with torch.no_grad():
        out = model(batch)
    assert out.weights.shape == (1, 81)
    assert out.weights.sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_one_gradient_step_moves_weights_and_raises_the_margin(batch_for, make_model, head) -> None:
    model = make_model(head).train()
    pair = (
        "How do I boil an egg?",
        "Put the egg in boiling water. Wait nine minutes. Cool it in cold water.",
        "Eggs are laid by hens. Some hens are brown.",
    )
    _, batch = batch_for(model, [(pair[0], pair[1]), (pair[0], pair[2])])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    out = model(batch)
    margin_before = (out.score[0] - out.score[1]).item()
    bradley_terry(out.score[:1], out.score[1:]).backward()
    optimizer.step()

    with torch.no_grad():
        after = model(batch)
    assert (after.score[0] - after.score[1]).item() > margin_before
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "value_head.weight" in changed
    assert any(n.startswith("backbone.") for n in changed)
    assert "marker_embedding" in changed
    if head == "sentence":
        assert {"query.weight", "key.weight"} <= set(changed)


def test_rope_depends_only_on_the_offset_and_keeps_norms() -> None:
    q, k = torch.randn(16), torch.randn(16)
    at = lambda x, p: rope(x, torch.tensor(p))  # noqa: E731
    assert_close(at(q, 7) @ at(k, 3), at(q, 14) @ at(k, 10), atol=1e-5, rtol=0)
    assert_close(at(q, 5).norm(), q.norm())
    assert not torch.allclose(at(q, 7) @ at(k, 3), at(q, 7) @ at(k, 5))


def test_without_the_prompt_term_the_sentences_carry_the_whole_score(batch_for, make_model):
    model = make_model(prompt_term=False)
    texts = [("Say hi.", "Hi. How are you? Fine."), ("Say hi.", "")]
    _, batch = batch_for(model, texts)
    with torch.no_grad():
        out = model(batch)
    assert out.weights[0, 0] == 0  # three sentences: a_0 = 0
    assert torch.allclose(out.weights[0].sum(), torch.tensor(1.0))
    assert torch.allclose(out.score[0], (out.weights[0, 1:] * out.sentence_rewards[0, 1:]).sum())
    # An empty response has only the prompt marker: its score is the prompt term, not nan.
    assert out.weights[1, 0] == 1 and torch.isfinite(out.score[1])
    with_prompt = make_model()(batch)
    assert with_prompt.weights[0, 0] > 0
