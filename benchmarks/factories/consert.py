"""ConSERT for :mod:`benchmarks.bench_losses`: ``FACTORIES = {"consert": ...}``, the paper's unsupervised setting
(feature cutoff 0.2 + token shuffle, τ 0.1, dropout off), one text column. The interleaved step-time comparison
with SimCSE is ``python -m benchmarks.compare consert``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def consert(model, **kwargs) -> tuple[Any, Callable]:
    from st_contrast.losses import ConSERTLoss
    from st_contrast.views import FeatureCutoff, TokenShuffle

    kwargs.setdefault("view1", FeatureCutoff(0.2))
    kwargs.setdefault("view2", TokenShuffle())
    loss = ConSERTLoss(model, **kwargs)
    return loss, lambda sentences: ([model.preprocess(sentences)], None)


FACTORIES: dict[str, Callable] = {"consert": consert}
