"""SG-OPT for :mod:`benchmarks.bench_losses`: ``FACTORIES = {"sg-opt": ...}`` with the paper's defaults (τ 0.01,
λ 0.1, projection 4096, mean-pooled guide layers, frozen embeddings); one text column. The interleaved step-time
comparison with SimCSE is ``python -m benchmarks.compare sg-opt``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def sg_opt(model, **kwargs) -> tuple[Any, Callable]:
    from st_contrast.losses import SelfGuidedContrastiveLoss

    loss = SelfGuidedContrastiveLoss(model, **kwargs)
    return loss, lambda sentences: ([model.preprocess(sentences)], None)


FACTORIES: dict[str, Callable] = {"sg-opt": sg_opt}
