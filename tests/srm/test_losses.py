"""Bradley-Terry loss and pair metrics, against hand-computed values."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from srm.losses import bradley_terry, pair_metrics


def nll(x: float) -> float:
    return -math.log(1 / (1 + math.exp(-x)))


def test_bradley_terry_matches_the_formula() -> None:
    c, r = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.5, -1.0])
    expected = (nll(1.0) + nll(-0.5) + nll(0.0)) / 3
    assert_close(bradley_terry(c, r), torch.tensor(expected))


def test_margin_is_subtracted_per_pair() -> None:
    c, r = torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0])
    margin = torch.tensor([1.0, 0.0])
    assert_close(bradley_terry(c, r, margin), torch.tensor((nll(0.0) + nll(0.0)) / 2))


def test_centring_term_is_trls() -> None:
    """c * mean((s_c + s_r)^2), as TRL's center_rewards_coefficient: (3 + 1)^2 and (0 + 2)^2."""
    c, r = torch.tensor([3.0, 0.0]), torch.tensor([1.0, 2.0])
    plain = bradley_terry(c, r)
    centred = bradley_terry(c, r, center_rewards_coefficient=0.01)
    assert_close(centred, plain + 0.01 * (16.0 + 4.0) / 2)


def test_centring_leaves_a_centred_pair_alone() -> None:
    """A pair with s_c = -s_r is centred already: no centring loss, whatever its margin (the
    old s_c^2 + s_r^2 charged it 0.01 * 8 here, pulling the scores together)."""
    c, r = torch.tensor([2.0], requires_grad=True), torch.tensor([-2.0], requires_grad=True)
    centred = bradley_terry(c, r, center_rewards_coefficient=0.01)
    assert_close(centred, bradley_terry(c, r))
    centred.backward()
    assert_close(c.grad + r.grad, torch.tensor([0.0]))  # no pull on the pair's mean


def test_gradient_pushes_scores_apart() -> None:
    c = torch.tensor([0.0], requires_grad=True)
    r = torch.tensor([0.0], requires_grad=True)
    bradley_terry(c, r).backward()
    assert c.grad.item() == -0.5 and r.grad.item() == 0.5


def test_pair_metrics_count_ties_as_wrong() -> None:
    c, r = torch.tensor([1.0, 0.0, 2.0, 1.0]), torch.tensor([0.0, 0.0, 3.0, -1.0])
    m = {name: value.item() for name, value in pair_metrics(c, r).items()}
    assert m["accuracy"] == 0.5
    assert m["margin"] == (1 + 0 - 1 + 2) / 4
    all_rewards = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.0, 0.0, 3.0, -1.0])
    assert m["reward_mean"] == all_rewards.mean().item()
    assert m["reward_std"] == all_rewards.std(unbiased=False).item()
