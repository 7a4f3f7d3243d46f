"""SupCon, SupCon-OOD and R-Drop for :mod:`benchmarks.bench_losses`.

``make_batch`` gives the harness's sentences one column and integer labels cycling over 8 classes.

* ``supcon``: :class:`SupConLoss` with ``dropout_views=True`` (one forward over the doubled batch, as SimCSE).
* ``supcon-ood-ce``: :class:`SupConOODLoss` with ``scl_weight=0``: the cross-entropy baseline (one pass).
* ``supcon-ood``: CE + SupCon on clean and FGM-adversarial views: a clean pass, the gradient with
  respect to the word embeddings, and an adversarial pass (about 3 forward-backward equivalents).
* ``supcon-ood-rdrop``: the same with ``rdrop_alpha=1`` (the clean pass covers the doubled batch).
* ``rdrop``: :class:`RDropLoss` (one forward over the doubled batch).
* ``cached-supcon``: :class:`CachedSupConLoss` with ``dropout_views=True``, mini-batch 128.

The interleaved step times of all of them against the cross-entropy baseline: ``python -m benchmarks.compare
supcon-ood``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NUM_LABELS = 8


def _labels(n: int):
    import torch

    return torch.arange(n) % NUM_LABELS


def _factory(kind: str, **kwargs: Any) -> Callable:
    def make(model) -> tuple[Any, Callable]:
        from st_contrast.losses import CachedSupConLoss, RDropLoss, SupConLoss, SupConOODLoss

        if kind == "supcon":
            loss = SupConLoss(model, dropout_views=True, **kwargs)
        elif kind == "cached-supcon":
            loss = CachedSupConLoss(model, dropout_views=True, mini_batch_size=128, **kwargs)
        elif kind == "ood":
            loss = SupConOODLoss(model, num_labels=NUM_LABELS, **kwargs)
        else:
            loss = RDropLoss(model, num_labels=NUM_LABELS, **kwargs)

        def make_batch(sentences: list[str]):
            return [model.preprocess(sentences)], _labels(len(sentences))

        return loss, make_batch

    return make


FACTORIES = {
    "supcon": _factory("supcon"),
    "cached-supcon": _factory("cached-supcon"),
    "supcon-ood-ce": _factory("ood", scl_weight=0.0),
    "supcon-ood": _factory("ood"),
    "supcon-ood-rdrop": _factory("ood", rdrop_alpha=1.0),
    "rdrop": _factory("rdrop", alpha=1.0),
}
