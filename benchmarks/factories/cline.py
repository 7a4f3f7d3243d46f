"""CLINE for :mod:`benchmarks.bench_losses`: ``FACTORIES = {"cline": ..., "cline-official": ...}``.

Each batch is the WordNet rewrite of the harness's sentences into (original, synonym, antonym) triples (made
once, outside the timed region; sentences the rewriter skips are replaced by the next rewritable ones). The
interleaved step-time comparison with SimCSE is ``python -m benchmarks.compare cline``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REWRITER = None


def _triples(sentences: list[str]) -> tuple[list[str], list[str], list[str]]:
    global _REWRITER
    from st_contrast.views.wordnet import WordNetRewriter

    if _REWRITER is None:
        _REWRITER = WordNetRewriter(seed=0)
    rewrites = _REWRITER.rewrite_all(sentences).rewrites
    if not rewrites:
        raise ValueError("none of the benchmark sentences could be rewritten")
    rows = [rewrites[i % len(rewrites)] for i in range(len(sentences))]
    return [r.original for r in rows], [r.synonym for r in rows], [r.antonym for r in rows]


def factory(objective: str) -> Callable:
    def make(model) -> tuple[Any, Callable]:
        from st_contrast.losses import CLINELoss

        loss = CLINELoss(model, objective=objective)

        def make_batch(sentences: list[str]):
            return [model.preprocess(column) for column in _triples(sentences)], None

        return loss, make_batch

    return make


FACTORIES: dict[str, Callable] = {"cline": factory("paper"), "cline-official": factory("official")}
