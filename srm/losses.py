"""Losses and metrics for pairwise reward modelling. Pure functions on score tensors.

>>> loss = bradley_terry(torch.tensor([1.0]), torch.tensor([0.0]))
>>> round(loss.item(), 4)   # -log sigmoid(1)
0.3133
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def bradley_terry(
    s_chosen: torch.Tensor,
    s_rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """Mean Bradley-Terry loss, ``-log sigmoid(s_c - s_r - margin)``, as in TRL.

    ``margin`` (B,) asks for a gap of at least that size (0 where a pair has none). The
    centring term ``c * mean((s_c + s_r)^2)`` (TRL's ``center_rewards_coefficient``) keeps
    each pair's mean reward near zero, which BT alone leaves free (it only sees differences).
    It does not touch the margin: ``s_c^2 + s_r^2`` would be ``((s_c + s_r)^2 + (s_c -
    s_r)^2) / 2``, and so also pull the two scores of a pair together.
    """
    diff = s_chosen - s_rejected  # (B,)
    if margin is not None:
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((s_chosen + s_rejected) ** 2).mean()
    return loss


def step_label_loss(
    sentence_rewards: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sentence-label term and its accuracy: mean binary cross-entropy of
    ``sigmoid(r_j)`` against each labelled sentence's label, as TRL's PRMTrainer trains each
    step, and the share of labelled sentences whose reward has the label's sign.

    ``sentence_rewards`` (S, M) are r_j by marker index; ``labels`` (S, M) hold 1 (good),
    0 (bad) or -1 (no label: the prompt term, untagged or unscored sentences). With no
    label at all the loss is 0 (still connected to the graph) and the accuracy NaN.

    >>> loss, acc = step_label_loss(torch.tensor([[0.0, 2.0, -2.0]]), torch.tensor([[-1, 1, 0.]]))
    >>> round(loss.item(), 4), acc.item()   # -log sigmoid(2) on both sentences
    (0.1269, 1.0)
    """
    labelled = labels >= 0  # (S, M)
    if not labelled.any():
        return sentence_rewards.sum() * 0.0, torch.tensor(float("nan"))
    logits = sentence_rewards[labelled].float()  # (L,)
    target = labels[labelled].to(logits.dtype)  # (L,)
    loss = F.binary_cross_entropy_with_logits(logits, target)
    accuracy = ((logits > 0) == (target > 0.5)).float().mean().detach()
    return loss, accuracy


def policy_preference(
    logp_chosen: torch.Tensor,
    logp_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """The HaF-RM policy term (arXiv 2407.04185): DPO's loss on the backbone's own LM,
    ``-log sigmoid(beta * ((lp_c - ref_c) - (lp_r - ref_r)))``, averaged. ``lp`` are summed
    response log-probabilities (B,) under the model being trained, ``ref`` under the frozen
    starting model.

    >>> zero = torch.zeros(1)
    >>> round(policy_preference(zero, zero, zero, zero).item(), 4)   # log 2: no preference yet
    0.6931
    """
    logits = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))  # (B,)
    return -F.logsigmoid(logits).mean()


@torch.no_grad()
def pair_metrics(s_chosen: torch.Tensor, s_rejected: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy (a tie counts as wrong), mean margin, and the mean/std of all rewards, as
    0-dim tensors on the scores' device: reading one (``float(m["accuracy"])``) waits for the
    device, so a training loop reads them only when it logs."""
    diff = (s_chosen - s_rejected).float()  # (B,)
    rewards = torch.cat([s_chosen, s_rejected]).float()  # (2B,)
    return {
        "accuracy": (diff > 0).float().mean(),
        "margin": diff.mean(),
        "reward_mean": rewards.mean(),
        "reward_std": rewards.std(unbiased=False),
    }
