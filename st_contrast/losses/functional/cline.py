"""CLINE's sentence-level contrast (Wang et al., ACL 2021) and the official code's learned loss weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cline_contrast_loss(anchors: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
    """CLINE's sentence contrast as in the paper (Wang et al., ACL 2021, section 3).

    ``-log( f(x, x_syn) / (f(x, x_syn) + f(x, x_ant)) )`` with ``f(a, b) = exp(a · b)`` (a plain dot
    product: no normalisation, no temperature), averaged over the batch. Written as
    ``softplus(h·h_ant - h·h_syn)``, which is the same value without overflow.
    """
    positive = (anchors * positives).sum(-1)
    negative = (anchors * negatives).sum(-1)
    return F.softplus(negative - positive).mean()


def cline_official_contrast_loss(anchors: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
    """CLINE's sentence contrast as in the official code: binary cross-entropy on ``σ(mean(h ⊙ h'))``.

    Each (original, synonym rewrite) pair is a positive (target 1) and each (original, antonym rewrite)
    pair a negative (target 0); the score is the sigmoid of the *mean* (not the sum) of the
    element-wise product, and the BCE is averaged over all ``2B`` pairs. Computed from the logit
    (``softplus``), so it never takes ``log(0)``.
    """
    positive = (anchors * positives).mean(-1)
    negative = (anchors * negatives).mean(-1)
    return torch.cat([F.softplus(-positive), F.softplus(negative)]).mean()


def uncertainty_weighted_terms(losses: list[Tensor], log_vars: Tensor) -> list[Tensor]:
    """The official CLINE code's learned loss weights: ``exp(-s_i) · L_i + max(s_i, 0)`` per term.

    ``s_i = log_vars[i]`` are trained with the model (initialised at 0). This is the homoscedastic
    uncertainty weighting of Kendall et al. (2018) with the regulariser clamped at 0, as in the
    official code. Returns one weighted term per loss; their sum is the total loss.
    """
    if len(losses) > log_vars.shape[0]:
        raise ValueError(f"got {len(losses)} losses but only {log_vars.shape[0]} log-variances")
    return [torch.exp(-log_vars[i]) * loss + log_vars[i].clamp(min=0) for i, loss in enumerate(losses)]
