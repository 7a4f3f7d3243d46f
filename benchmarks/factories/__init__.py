"""Training configurations for :mod:`benchmarks.bench_losses`: one ``factory(model) -> (loss, make_batch)`` per name.

``make_batch(sentences) -> (features_list, labels)`` turns the harness's plain sentences into the loss's input.
Built in: ``backbone`` (two encoder passes of the batch, no loss: the floor of a two-view loss), ``mnrl``
(sentence-transformers' MultipleNegativesRankingLoss, scale 20, on (s, s) pairs) and ``simcse`` (SimCSELoss,
one column encoded twice in one pass). Every module of this package adds its own through a module-level
``FACTORIES = {name: factory}``; names must be unique.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache

BUILTIN = ("backbone", "mnrl", "simcse")


class Backbone:
    """Two encoder passes over the batch and a trivial scalar: the cost floor of a two-view loss."""

    def __init__(self, model):
        import torch

        self.model = model
        self._module = torch.nn.ModuleDict({"model": model})

    def parameters(self):
        return self._module.parameters()

    def __call__(self, features, labels):
        first = self.model(dict(features[0]))["sentence_embedding"]
        second = self.model(dict(features[-1]))["sentence_embedding"]
        return first.float().mean() + second.float().mean()


def _pairs(model):
    return lambda sentences: ([model.preprocess(sentences), model.preprocess(sentences)], None)


def backbone(model):
    return Backbone(model), _pairs(model)


def mnrl(model):
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=20.0), _pairs(model)


def simcse(model):
    from st_contrast.losses import SimCSELoss

    return SimCSELoss(model, temperature=0.05), lambda sentences: ([model.preprocess(sentences)], None)


@cache
def load_factories() -> dict[str, Callable]:
    """Every configuration of the factory modules (not the built-ins), by name."""
    factories: dict[str, Callable] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, factory in getattr(module, "FACTORIES", {}).items():
            if name in BUILTIN or name in factories:
                raise ValueError(f"{module.__name__}: benchmark name {name!r} is already taken")
            factories[name] = factory
    return factories


def names() -> list[str]:
    """Every configuration name: the built-ins, then the factories' alphabetically."""
    return list(BUILTIN) + sorted(load_factories())


def get_factory(name: str) -> Callable:
    """The factory of configuration ``name``; ``KeyError`` naming the known ones otherwise."""
    if name in BUILTIN:
        return {"backbone": backbone, "mnrl": mnrl, "simcse": simcse}[name]
    factories = load_factories()
    if name not in factories:
        raise KeyError(f"unknown benchmark configuration {name!r}; known: {names()}")
    return factories[name]
