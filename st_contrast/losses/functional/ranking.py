"""SimCLS's margin ranking loss over summary candidates (Liu & Liu, ACL 2021)."""

from __future__ import annotations

import torch
from torch import Tensor


def simcls_ranking_loss(
    candidate_scores: Tensor,
    reference_scores: Tensor | None = None,
    margin: float = 0.01,
    reference_margin: float = 0.0,
    candidate_weight: float = 1.0,
    reference_weight: float = 1.0,
    candidate_mask: Tensor | None = None,
    pair_reduction: str = "sum",
) -> Tensor:
    """SimCLS's margin ranking loss, one value per document: a ``(batch,)`` tensor.

    ``candidate_scores[b, k]`` is the scorer's ``h(D_b, C_k)`` for candidates already sorted from the best
    (``k = 0``) to the worst by their ROUGE against the reference. With ``λ = margin``, per document::

        candidate_weight · Σ_{j<k} max(0, h(C_k) − h(C_j) + λ·(k − j))
          + reference_weight · Σ_k max(0, h(C_k) − h(S) + reference_margin)

    (Liu & Liu 2021, "SimCLS: A Simple Framework for Contrastive Learning of Abstractive Summarization",
    ACL 2021, eq. 3): every better candidate must outscore every worse one by ``λ`` per rank of
    distance, and the reference ``S`` (scores ``reference_scores[b]``; ``None`` drops the term) must
    outscore every candidate.

    Args:
        candidate_scores: ``(batch, n)`` scores of candidates sorted best first.
        reference_scores: ``(batch,)`` scores of the references, or ``None``.
        margin: ``λ``, the margin per rank gap (0.01 in the paper); ``>= 0``.
        reference_margin: margin between the reference and every candidate (0 in the paper).
        candidate_weight, reference_weight: weights of the two sums (1 and 1 in the paper).
        candidate_mask: ``(batch, n)`` bool, ``False`` for padding when documents have fewer than ``n``
            candidates (the valid ones first). Pairs that touch padding count for nothing.
        pair_reduction: ``"sum"`` (the paper: sums over pairs and candidates) or ``"mean_per_gap"`` (the
            official code: the hinge is averaged over the pairs of each rank gap, the averages summed over
            gaps, and the reference term averaged over candidates; equal to the official loss at its batch
            size of one document).
    """
    if candidate_scores.dim() != 2:
        raise ValueError(f"candidate_scores must be (batch, candidates), got shape {tuple(candidate_scores.shape)}")
    if pair_reduction not in ("sum", "mean_per_gap"):
        raise ValueError(f"pair_reduction must be 'sum' or 'mean_per_gap', got {pair_reduction!r}")
    if not margin >= 0 or not reference_weight >= 0 or not candidate_weight >= 0:
        raise ValueError(
            f"margin and the weights must be >= 0, got margin={margin}, candidate_weight={candidate_weight}, "
            f"reference_weight={reference_weight}"
        )
    batch, n = candidate_scores.shape
    if candidate_mask is None:
        valid = torch.ones_like(candidate_scores, dtype=torch.bool)
    else:
        if candidate_mask.shape != candidate_scores.shape:
            raise ValueError(
                f"candidate_mask has shape {tuple(candidate_mask.shape)}, expected {tuple(candidate_scores.shape)}"
            )
        valid = candidate_mask.to(torch.bool)
    scores = candidate_scores.float().masked_fill(~valid, 0.0)  # padding may hold -inf
    rank = torch.arange(n, device=scores.device)
    gap = rank.view(1, n) - rank.view(n, 1)  # gap[j, k] = k - j
    # hinge[b, j, k] = max(0, s_k - s_j + λ (k - j)) for the better j and the worse k
    hinge = (scores.unsqueeze(1) - scores.unsqueeze(2) + margin * gap.to(scores.dtype)).clamp(min=0)
    pairs = (gap > 0).unsqueeze(0) & valid.unsqueeze(1) & valid.unsqueeze(2)
    hinge = torch.where(pairs, hinge, torch.zeros_like(hinge))
    if pair_reduction == "sum":
        candidate_term = hinge.sum(dim=(1, 2))
    else:
        gap_index = gap.clamp(min=0).reshape(-1).expand(batch, -1)
        per_gap = scores.new_zeros(batch, n).scatter_add_(1, gap_index, hinge.reshape(batch, -1))
        counts = scores.new_zeros(batch, n).scatter_add_(1, gap_index, pairs.reshape(batch, -1).to(scores.dtype))
        candidate_term = (per_gap[:, 1:] / counts[:, 1:].clamp(min=1)).sum(dim=1)
    loss = candidate_weight * candidate_term
    if reference_scores is not None:
        if reference_scores.shape != (batch,):
            raise ValueError(f"reference_scores must have shape ({batch},), got {tuple(reference_scores.shape)}")
        reference_hinge = (scores - reference_scores.float().unsqueeze(1) + reference_margin).clamp(min=0)
        reference_hinge = torch.where(valid, reference_hinge, torch.zeros_like(reference_hinge))
        reference_term = reference_hinge.sum(dim=1)
        if pair_reduction == "mean_per_gap":
            reference_term = reference_term / valid.sum(dim=1).clamp(min=1)
        loss = loss + reference_weight * reference_term
    return loss
