"""Supervised contrastive maths (st_contrast.losses.functional.supcon)."""

from __future__ import annotations

import math

import torch

from st_contrast.losses import functional as F_


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def reference_zeng_official(clean, adv, labels, tau):
    """Zeng et al.'s official nt_xent as loops: mean over i of (clean + adversarial anchor terms) / |same label|."""
    n = len(clean)
    y = labels.tolist()
    total = 0.0
    for i in range(n):
        same = [j for j in range(n) if y[j] == y[i]]
        value = 0.0
        for anchor, own, other in ((clean, clean, adv), (adv, adv, clean)):
            denominator = sum(math.exp(_cos(anchor[i], own[k]) / tau) for k in range(n) if k != i)
            denominator += sum(math.exp(_cos(anchor[i], other[k]) / tau) for k in range(n))
            for j in same:
                numerator = math.exp(_cos(anchor[i], other[j]) / tau)
                if j != i:
                    numerator += math.exp(_cos(anchor[i], own[j]) / tau)
                value += math.log(numerator / denominator)
        total += -value / len(same)
    return total / n


def test_zeng_grouping_matches_official_loops():
    torch.manual_seed(1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2])
    clean, adv = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    per_anchor = F_.supcon_zeng_terms(clean, adv, labels, temperature=0.1)
    official = reference_zeng_official(clean, adv, labels, 0.1)
    # the official code sums the two views' terms; ours averages over the 2n anchors (same scale as Khosla's)
    torch.testing.assert_close(2 * per_anchor.mean(), torch.tensor(official, dtype=torch.float64))
