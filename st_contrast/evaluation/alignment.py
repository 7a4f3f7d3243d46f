"""Alignment and uniformity (Wang and Isola 2020), as SimCSE uses them to analyse sentence embeddings.

On L2-normalised embeddings ``f``:

- alignment ``= E_{(x, x+) ~ p_pos} ||f(x) - f(x+)||^alpha`` (``alpha = 2``): lower means positive pairs are closer;
- uniformity ``= log E_{x, y ~ p_data} exp(-t ||f(x) - f(y)||^2)`` (``t = 2``): lower means the embeddings
  spread more evenly over the sphere.

SimCSE (footnote 3) takes STS-B pairs with a score higher than 4 as ``p_pos`` and all STS-B sentences as
``p_data``. As in Wang and Isola's reference code, the uniformity expectation runs over distinct pairs of
sentences ``x != y`` (``torch.pdist``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def alignment_loss(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    """Mean ``||x_i - y_i||_2^alpha`` over rows: the alignment of positive pairs ``(x_i, y_i)``.

    Args:
        x: ``(N, D)`` embeddings (normalise them first for the metric of the papers).
        y: ``(N, D)`` embeddings of the positives of ``x``.
        alpha: the exponent (2 in Wang and Isola and in SimCSE).

    Returns:
        A scalar tensor.
    """
    if x.shape != y.shape or x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(
            f"x and y must be non-empty (N, D) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}."
        )
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}.")
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()


def uniformity_loss(x: Tensor, t: float = 2.0, block_size: int = 4096) -> Tensor:
    """``log`` of the mean of ``exp(-t ||x_i - x_j||^2)`` over distinct pairs ``i < j``.

    Computed blockwise with a log-sum-exp, so memory stays ``O(block_size x N)`` and large ``t`` cannot
    underflow to ``log 0``. The squared distances are computed exactly (not as ``2 - 2 cos``), so the
    inputs need not be normalised.

    Args:
        x: ``(N, D)`` embeddings, ``N >= 2`` (normalise them first for the metric of the papers).
        t: the temperature (2 in Wang and Isola and in SimCSE).
        block_size: rows handled at a time.

    Returns:
        A scalar tensor (``<= 0``; ``-4 t`` ... ``0`` for normalised embeddings).
    """
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be an (N, D) tensor with N >= 2, got shape {tuple(x.shape)}.")
    if t <= 0:
        raise ValueError(f"t must be > 0, got {t}.")
    n = x.shape[0]
    partial: list[Tensor] = []
    columns = torch.arange(n, device=x.device)
    for start in range(0, n - 1, block_size):
        rows = x[start : start + block_size]
        squared = torch.cdist(rows, x).pow(2)
        row_index = torch.arange(start, start + rows.shape[0], device=x.device)
        upper = columns.unsqueeze(0) > row_index.unsqueeze(1)
        logits = (-t * squared).masked_fill(~upper, float("-inf"))
        partial.append(torch.logsumexp(logits.flatten(), dim=0))
    return torch.logsumexp(torch.stack(partial), dim=0) - math.log(n * (n - 1) / 2)


def alignment_uniformity(
    model: SentenceTransformer,
    pairs: Sequence[tuple[str, str, float]],
    positive_threshold: float = 4.0,
    batch_size: int = 64,
    alpha: float = 2.0,
    t: float = 2.0,
    show_progress_bar: bool = False,
) -> dict[str, float]:
    """SimCSE's alignment and uniformity of a model on scored sentence pairs (e.g. STS-B dev).

    Every distinct sentence is encoded once and L2-normalised. Alignment averages over the positive
    pairs (score strictly higher than ``positive_threshold``, as in SimCSE: "pairs with a score higher
    than 4"); uniformity over all distinct pairs of distinct sentences of ``pairs``.

    Args:
        model: the SentenceTransformer to analyse.
        pairs: ``(sentence1, sentence2, score)`` triples, e.g. ``load_sts_benchmark("dev")``.
        positive_threshold: pairs scored above this are positives (4.0 on STS-B's 0-5 scale).
        batch_size: encoding batch size.
        alpha: alignment exponent.
        t: uniformity temperature.
        show_progress_bar: show the encoding progress bar.

    Returns:
        ``{"alignment": ..., "uniformity": ..., "positive_pairs": ..., "sentences": ...}`` (lower alignment and
        lower uniformity are better).

    Raises:
        ValueError: no pair above the threshold, or fewer than two distinct sentences.

    Example:
        ::

            from st_contrast.evaluation import alignment_uniformity, load_sts_benchmark

            print(alignment_uniformity(model, load_sts_benchmark("dev")))
    """
    positives = [(a, b) for a, b, score in pairs if score > positive_threshold]
    if not positives:
        raise ValueError(
            f"No pair has a score higher than positive_threshold={positive_threshold}; alignment is undefined."
        )
    index: dict[str, int] = {}
    for sentence1, sentence2, _ in pairs:
        index.setdefault(sentence1, len(index))
        index.setdefault(sentence2, len(index))
    if len(index) < 2:
        raise ValueError(f"Uniformity needs at least 2 distinct sentences, got {len(index)}.")
    embeddings = model.encode(
        list(index),
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        convert_to_tensor=True,
        normalize_embeddings=True,
    ).float()
    first = torch.tensor([index[a] for a, _ in positives], device=embeddings.device)
    second = torch.tensor([index[b] for _, b in positives], device=embeddings.device)
    with torch.no_grad():
        alignment = alignment_loss(embeddings[first], embeddings[second], alpha=alpha)
        uniformity = uniformity_loss(embeddings, t=t)
    return {
        "alignment": float(alignment),
        "uniformity": float(uniformity),
        "positive_pairs": len(positives),
        "sentences": len(index),
    }
