"""GradCache losses for :mod:`benchmarks.bench_losses`: ours and sentence-transformers' CachedMNRL, mini-batch 128."""

from __future__ import annotations

MINI_BATCH = 128


def cached_simcse(model):
    from st_contrast.losses import CachedSimCSELoss

    loss = CachedSimCSELoss(model, temperature=0.05, mini_batch_size=MINI_BATCH)
    return loss, lambda sentences: ([model.preprocess(sentences)], None)


def cached_mnrl(model):
    from sentence_transformers.losses import CachedMultipleNegativesRankingLoss

    loss = CachedMultipleNegativesRankingLoss(model, scale=20.0, mini_batch_size=MINI_BATCH)
    return loss, lambda sentences: ([model.preprocess(sentences), model.preprocess(sentences)], None)


FACTORIES = {"cached-simcse": cached_simcse, "cached-mnrl": cached_mnrl}
