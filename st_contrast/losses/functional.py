"""The shared contrastive maths of st-contrast, as pure functions on embedding tensors.

Every method in the package is "how the views are made" plus one of these objectives. The
sentence-transformers losses, their cached (GradCache) variants and the fairseq criteria all call
into this module, so a fix here fixes every method. Nothing here knows about models or tokenizers.

Conventions: embeddings are ``(batch, dim)`` float tensors; ``temperature`` is ``τ`` (so
sentence-transformers' ``scale`` is ``1/τ``); losses are means over anchors unless said otherwise.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def check_temperature(temperature: float) -> float:
    """Validate a temperature, returning it as a float."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"temperature must be > 0 and finite, got {temperature!r}")
    return value


def cosine_similarity_matrix(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``cos(a_i, b_j)`` for every pair: an ``(len(a), len(b))`` matrix.

    Normalising first and taking one matrix product is both faster and more memory-friendly than
    broadcasting ``F.cosine_similarity`` over an ``(n, m, d)`` tensor.
    """
    a = F.normalize(a, p=2, dim=-1, eps=eps)
    b = F.normalize(b, p=2, dim=-1, eps=eps)
    return a @ b.transpose(-2, -1)


# ---------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sends every rank's gradient back to its owner.

    The backward is an all-reduce of the gathered gradient followed by taking the local slice, which
    works on every backend (gloo has no reduce-scatter). With DDP's gradient averaging this gives
    exactly the gradients of a single process that holds the concatenated batch.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        world_size = dist.get_world_size()
        sizes = _gather_sizes(tensor.shape[0], tensor.device)
        ctx.rank = dist.get_rank()
        ctx.sizes = sizes
        max_size = max(sizes)
        if tensor.shape[0] < max_size:
            pad = tensor.new_zeros((max_size - tensor.shape[0], *tensor.shape[1:]))
            padded = torch.cat([tensor, pad], dim=0)
        else:
            padded = tensor.contiguous()
        buffers = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(buffers, padded)
        return torch.cat([buf[:n] for buf, n in zip(buffers, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def _gather_sizes(n: int, device: torch.device) -> list[int]:
    size = torch.tensor([n], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every process along dim 0, keeping gradients for all of it.

    Without an initialised process group (or with one process) it returns ``tensor`` unchanged.
    Ranks may hold different batch sizes. Gradients flowing into another rank's rows are sent back
    to that rank in the backward pass, so negatives from other devices train their own encoder.
    """
    if not is_distributed():
        return tensor
    return _AllGatherWithGrad.apply(tensor)


def local_offset(local_size: int, device: torch.device) -> int:
    """Index of this rank's first row in a gathered tensor (0 when not distributed)."""
    if not is_distributed():
        return 0
    sizes = _gather_sizes(local_size, device)
    return sum(sizes[: dist.get_rank()])


def gather_if(flag: bool, *tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """``all_gather_with_grad`` each tensor when ``flag`` is set (``None`` passes through)."""
    if not flag:
        return tensors
    return tuple(None if t is None else all_gather_with_grad(t) for t in tensors)


# ---------------------------------------------------------------------------------------------
# InfoNCE family
# ---------------------------------------------------------------------------------------------


def info_nce(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of each row of (already scaled) ``logits`` against its positive column."""
    return F.cross_entropy(logits, targets, reduction=reduction)


def simcse_logits(
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor | None = None,
    temperature: float = 0.05,
    hard_negative_weight: float = 0.0,
    anchor_offset: int = 0,
) -> Tensor:
    """SimCSE's logits (Gao et al., 2021, eq. 1 and 5).

    ``[cos(z1_i, z2_j) | cos(z1_i, z3_j)] / τ``: ``B × M`` without hard negatives, ``B × 2M`` with
    them, where ``M`` is the number of candidates (the global batch when gathered) and ``B`` the
    number of anchors. ``hard_negative_weight`` is added to the (scaled) logit of each anchor's own
    hard negative, as in the official code. ``anchor_offset`` is the index of anchor 0 among the
    candidates (non-zero when the candidates were gathered from several processes).
    """
    logits = cosine_similarity_matrix(anchors, positives) / temperature
    if negatives is not None:
        negative_logits = cosine_similarity_matrix(anchors, negatives) / temperature
        if hard_negative_weight:
            rows = torch.arange(anchors.shape[0], device=anchors.device)
            bonus = torch.zeros_like(negative_logits)
            bonus[rows, rows + anchor_offset] = hard_negative_weight
            negative_logits = negative_logits + bonus
        logits = torch.cat([logits, negative_logits], dim=1)
    return logits


def simcse_loss(
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor | None = None,
    temperature: float = 0.05,
    hard_negative_weight: float = 0.0,
    gather_across_devices: bool = False,
) -> Tensor:
    """SimCSE's InfoNCE: each anchor must pick its own positive among all positives (and negatives).

    One direction only (the anchors ``z1`` are the queries); no anchor–anchor negatives. With
    ``gather_across_devices`` the positives and negatives of every process become candidates, and
    the local anchors keep their gradient path (see :func:`all_gather_with_grad`).
    """
    temperature = check_temperature(temperature)
    offset = 0
    if gather_across_devices and is_distributed():
        offset = local_offset(anchors.shape[0], anchors.device)
        positives = all_gather_with_grad(positives)
        if negatives is not None:
            negatives = all_gather_with_grad(negatives)
    logits = simcse_logits(anchors, positives, negatives, temperature, hard_negative_weight, offset)
    targets = torch.arange(anchors.shape[0], device=anchors.device) + offset
    return info_nce(logits, targets)


# ---------------------------------------------------------------------------------------------
# Consistency between two forward passes (R-Drop)
# ---------------------------------------------------------------------------------------------


def symmetric_kl(
    logits_p: Tensor,
    logits_q: Tensor,
    mask: Tensor | None = None,
    reduction: str = "sum",
) -> Tensor:
    """R-Drop's consistency term ``(KL(p‖q) + KL(q‖p)) / 2`` between two softmax distributions.

    ``logits_*`` are ``(..., C)``; the KL is summed over classes, then over positions where ``mask``
    is true (e.g. non-pad target tokens), then reduced over positions by ``reduction``
    (``"sum"``, ``"mean"`` or ``"none"``). Computed in log space so it never gives NaN for
    confident predictions.
    """
    log_p = F.log_softmax(logits_p.float(), dim=-1)
    log_q = F.log_softmax(logits_q.float(), dim=-1)
    kl_pq = (log_p.exp() * (log_p - log_q)).sum(-1)
    kl_qp = (log_q.exp() * (log_q - log_p)).sum(-1)
    per_position = 0.5 * (kl_pq + kl_qp)
    if mask is not None:
        per_position = per_position.masked_fill(~mask.bool(), 0.0)
    if reduction == "none":
        return per_position
    if reduction == "sum":
        return per_position.sum()
    if reduction == "mean":
        count = mask.bool().sum() if mask is not None else torch.tensor(per_position.numel())
        return per_position.sum() / count.clamp(min=1)
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
