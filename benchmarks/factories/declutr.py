"""DeCLUTR for :mod:`benchmarks.bench_losses`: ``FACTORIES = {"declutr": ..., "declutr-no-mlm": ...,
"cached-declutr": ...}`` (the last is :class:`CachedDeCLUTRLoss`, mini-batch 128).

The harness hands ``make_batch`` ``B`` sentences; they are joined into ``max(1, B // 3)`` documents, each cut into
2 anchors x 2 positives (spans up to ``max_seq_length − 2`` words), so a step encodes ``2B`` sequences like
SimCSE's two views of ``B`` sentences. The comparison with SimCSE at equal tokens per step is
``python -m benchmarks.compare declutr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _documents(sentences: list[str], count: int, min_words: int) -> list[str]:
    """``count`` documents of at least ``min_words`` words, each a run of consecutive (cycled) sentences."""
    documents = []
    for d in range(count):
        words: list[str] = []
        i = d
        while len(words) < min_words:
            words.extend(sentences[i % len(sentences)].split())
            i += 1
        documents.append(" ".join(words))
    return documents


def declutr(model, cached: bool = False, **kwargs) -> tuple[Any, Callable]:
    from st_contrast.data.declutr import DeCLUTRSpanSampler
    from st_contrast.losses import CachedDeCLUTRLoss, DeCLUTRLoss

    loss = CachedDeCLUTRLoss(model, mini_batch_size=128, **kwargs) if cached else DeCLUTRLoss(model, **kwargs)
    max_span = max(2, int(getattr(model, "max_seq_length", 32)) - 2)
    sampler = DeCLUTRSpanSampler(min_span=max(1, max_span // 4), max_span=max_span, seed=0)

    def make_batch(sentences: list[str]):
        documents = _documents(sentences, max(1, len(sentences) // 3), sampler.min_document_length)
        columns = sampler.columns(documents)
        return [model.preprocess(texts) for texts in columns.values()], None

    return loss, make_batch


def declutr_no_mlm(model) -> tuple[Any, Callable]:
    return declutr(model, mlm_weight=0.0)


def cached_declutr(model) -> tuple[Any, Callable]:
    return declutr(model, cached=True)


FACTORIES: dict[str, Callable] = {
    "declutr": declutr,
    "declutr-no-mlm": declutr_no_mlm,
    "cached-declutr": cached_declutr,
}
