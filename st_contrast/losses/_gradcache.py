"""GradCache (Gao et al., 2021) with a per-mini-batch auxiliary term, for CachedDeCLUTRLoss.

CachedSimCSELoss and CachedSupConLoss run on sentence-transformers' own ``CachedLossMixin`` (see cached.py).
This engine remains for what that mixin lacks: a scalar term per mini-batch (DeCLUTR's token-level MLM loss)
that the second pass must back-propagate together with the cached embedding gradients; ST's backward hook
replays the embeddings only. Its loss function follows ST's ``calculate_loss(..., with_backward=True)`` contract,
so ST's wrappers (``MatryoshkaLoss``) can decorate it. Its random state also replays autocast, as cached.py's does.

1. Embed the batch mini-batch by mini-batch without autograd, remembering each mini-batch's random
   state (so dropout can be replayed).
2. Compute the loss on the (detached) embeddings and its gradient with respect to them: the cache.
3. During the caller's ``loss.backward()``, re-embed each mini-batch with autograd under its replayed
   random state and the first pass's autocast settings, and back-propagate the cached gradient slice
   through it.

Activation memory is that of one mini-batch; the extra work is one forward pass without autograd. The
re-forward happens inside a backward hook on the returned loss, so ``loss.backward()`` in the Trainer,
``model.fit`` or a plain loop does the whole job, with its upstream gradient (gradient accumulation,
AMP loss scaling) applied to the cached gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor

Encode = Callable[[dict[str, Any]], "Tensor | tuple[Tensor, Tensor]"]


def count_rows(features: dict[str, Any]) -> int:
    for key in ("input_ids", "attention_mask", "embedding"):
        value = features.get(key)
        if isinstance(value, Tensor) and value.ndim >= 1:
            return int(value.shape[0])
    for value in features.values():
        if isinstance(value, Tensor) and value.ndim >= 1:
            return int(value.shape[0])
    raise ValueError("cannot tell the batch size of these features: no tensor with a batch dimension")


def slice_rows(features: dict[str, Any], start: int, end: int, rows: int, width: int) -> dict[str, Any]:
    """Rows ``start:end`` of every per-row tensor, token-level tensors trimmed to ``width`` columns (the chunk's
    longest text, from :func:`chunk_widths`; no trimming when it is 0 or the full width)."""
    chunk: dict[str, Any] = {}
    for key, value in features.items():
        if isinstance(value, Tensor) and value.ndim >= 1 and value.shape[0] == rows and key != "prompt_length":
            chunk[key] = value[start:end]
        else:
            chunk[key] = value
    mask = chunk.get("attention_mask")
    if isinstance(mask, Tensor) and mask.ndim == 2 and 0 < width < mask.shape[1]:
        for key, value in list(chunk.items()):
            token_level = isinstance(value, Tensor) and value.ndim >= 2 and value.shape[:2] == mask.shape
            if token_level and key != "embedding":
                chunk[key] = value[:, :width]
    return chunk


def chunk_widths(features: dict[str, Any], ranges: list[tuple[int, int]]) -> list[int]:
    """The padded width each chunk can be trimmed to, read from the attention mask in one device transfer.

    A chunk is trimmed only when the mask is right-padded (its last column all zeros in that chunk); the
    width is then its longest row. Otherwise (left padding, or no padding) it keeps the full width.
    """
    mask = features.get("attention_mask")
    if not isinstance(mask, Tensor) or mask.ndim != 2 or mask.shape[1] == 0:
        return [0 for _ in ranges]
    full = mask.shape[1]
    lengths = mask.sum(dim=1)
    last = mask[:, -1].ne(0)
    # one reduction per chunk, then a single copy to the host: one wait for the device per batch
    summary = torch.stack(
        [torch.stack([lengths[start:end].max(), last[start:end].any().to(lengths.dtype)]) for start, end in ranges]
    ).tolist()
    return [full if padded_last else int(longest) for longest, padded_last in summary]


class AutocastState:
    """The autocast (mixed precision) settings in force during the first pass, to re-enter in the second.

    The second pass runs inside ``loss.backward()``, which callers (the Trainer with ``bf16=True``/``fp16=True``,
    a plain AMP loop) run outside their ``autocast`` block. Without restoring it, the re-embedding would run in
    float32 while the cached gradients came from reduced-precision embeddings: slower, and not the gradient
    of the loss that was computed (torch.utils.checkpoint restores autocast for the same reason).
    """

    def __init__(self, devices: list[torch.device]) -> None:
        types = sorted({"cpu", *(d.type for d in devices)})
        self.states = [(kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind)) for kind in types]
        self.cache_enabled = torch.is_autocast_cache_enabled()

    @contextmanager
    def replay(self):
        with ExitStack() as stack:
            for kind, enabled, dtype in self.states:
                stack.enter_context(
                    torch.autocast(device_type=kind, dtype=dtype, enabled=enabled, cache_enabled=self.cache_enabled)
                )
            yield


class RandomState:
    """CPU and (when used) CUDA random states, to replay dropout masks exactly."""

    def __init__(self, devices: list[torch.device]) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = [(d, torch.cuda.get_rng_state(d)) for d in devices if d.type == "cuda"]

    @contextmanager
    def replay(self):
        cuda_devices = [d for d, _ in self.cuda]
        with torch.random.fork_rng(devices=cuda_devices, enabled=True):
            torch.set_rng_state(self.cpu)
            for device, state in self.cuda:
                torch.cuda.set_rng_state(state, device)
            yield


def chunk_ranges(rows: int, mini_batch_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + mini_batch_size, rows)) for start in range(0, rows, mini_batch_size)]


def _split(output: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    if isinstance(output, tuple):
        return output[0], output[1]
    return output, None


def embed_without_grad(
    encode: Encode, features: dict[str, Any], mini_batch_size: int, devices: list[torch.device]
) -> tuple[Tensor, Tensor | None, list[RandomState], list[tuple[int, int]], list[int]]:
    """Step 1: all embeddings (no autograd), the summed auxiliary term (or ``None``), the random state before
    each mini-batch, the chunks and their widths."""
    rows = count_rows(features)
    ranges = chunk_ranges(rows, mini_batch_size)
    widths = chunk_widths(features, ranges)
    states, outputs, aux_terms = [], [], []
    with torch.no_grad():
        for (start, end), width in zip(ranges, widths):
            states.append(RandomState(devices))
            embedding, aux = _split(encode(slice_rows(features, start, end, rows, width)))
            outputs.append(embedding)
            if aux is not None:
                aux_terms.append(aux.float())
    aux_total = torch.stack(aux_terms).sum() if aux_terms else None
    return torch.cat(outputs, dim=0), aux_total, states, ranges, widths


def cached_loss(
    loss_fn: Callable[[Tensor, bool], Tensor],
    encode: Encode,
    features: dict[str, Any],
    mini_batch_size: int,
    devices: list[torch.device],
    aux_weight: float = 1.0,
    parts: dict[str, Tensor] | None = None,
) -> Tensor:
    """Steps 1-3 in one call: the loss value, whose backward re-embeds and back-propagates by mini-batch.

    ``loss_fn(embeddings, with_backward)`` maps the full ``(rows, dim)`` embedding matrix to a scalar loss;
    with ``with_backward=True`` it also back-propagates it to ``embeddings`` and returns the detached value
    (sentence-transformers' ``calculate_loss`` contract, so that ``MatryoshkaLoss``'s decorator of it works).
    ``encode`` returns a mini-batch's embeddings, or ``(embeddings, aux)`` where ``aux`` is a scalar that adds up
    over mini-batches (e.g. a summed token-level MLM loss): the loss is then ``loss_fn(E) + aux_weight · Σ aux``,
    and the second pass back-propagates each mini-batch's ``aux`` with it. The returned tensor is a leaf
    that carries the loss value; its backward hook does step 3. Without autograd (evaluation) the loss is
    computed from the step-1 outputs only. ``parts``, when given, receives the detached ``"embedding"``
    (``loss_fn``'s) and ``"aux"`` (weighted) terms.
    """
    embeddings, aux_total, states, ranges, widths = embed_without_grad(encode, features, mini_batch_size, devices)
    aux_value = aux_weight * aux_total if aux_total is not None else None
    if not torch.is_grad_enabled():
        value = loss_fn(embeddings, False)
        _record(parts, value, aux_value)
        return value + aux_value.to(value.dtype) if aux_value is not None else value
    autocast = AutocastState(devices)
    embeddings = embeddings.detach().requires_grad_(True)
    with torch.enable_grad():
        value = loss_fn(embeddings, True).detach()
    cache = embeddings.grad if embeddings.grad is not None else torch.zeros_like(embeddings)
    _record(parts, value, aux_value)
    total = value.detach() + aux_value.to(value.dtype) if aux_value is not None else value.detach()
    result = total.requires_grad_(True)
    rows = count_rows(features)

    def replay_backward(upstream: Tensor) -> None:
        scale = upstream.detach()
        with torch.enable_grad(), autocast.replay():
            for (start, end), state, width in zip(ranges, states, widths):
                with state.replay():
                    chunk, aux = _split(encode(slice_rows(features, start, end, rows, width)))
                outputs, grads = [chunk], [cache[start:end].to(chunk.dtype) * scale.to(chunk.dtype)]
                if aux is not None:
                    outputs.append(aux)
                    grads.append((aux_weight * scale).to(aux.dtype).reshape(aux.shape))
                torch.autograd.backward(outputs, grads)

    result.register_hook(replay_backward)
    return result


def _record(parts: dict[str, Tensor] | None, value: Tensor, aux_value: Tensor | None) -> None:
    if parts is not None:
        parts["embedding"] = value.detach()
        if aux_value is not None:
            parts["aux"] = aux_value.detach()
