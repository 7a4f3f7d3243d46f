"""Gathering embeddings across processes with gradients, for negatives that span the global batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


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

    When every rank holds the same number of rows (the Trainer's even batches), this is
    sentence-transformers' ``all_gather_with_grad`` (``torch.distributed.nn.all_gather``; tested equal to
    ours, loss and gradients, with two gloo processes). Ours (:class:`_AllGatherWithGrad`) remains for
    uneven batches (a last batch split unevenly, ``model.fit`` without ``drop_last``), which
    ``torch.distributed.nn.all_gather`` cannot gather: it needs the same shape on every rank.
    """
    if not is_distributed():
        return tensor
    sizes = _gather_sizes(tensor.shape[0], tensor.device)
    if len(set(sizes)) == 1:
        from sentence_transformers.util.distributed import all_gather_with_grad as st_all_gather_with_grad

        return st_all_gather_with_grad(tensor)
    return _AllGatherWithGrad.apply(tensor)


def local_offset(local_size: int, device: torch.device) -> int:
    """Index of this rank's first row in a gathered tensor (0 when not distributed)."""
    if not is_distributed():
        return 0
    sizes = _gather_sizes(local_size, device)
    return sum(sizes[: dist.get_rank()])


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def sum_over_processes(value: int, device: torch.device) -> int:
    """``value`` summed over every process (itself when not distributed); no gradient."""
    if not is_distributed():
        return value
    total = torch.tensor([value], device=device, dtype=torch.long)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return int(total.item())
