"""Sentence-transformers modules added by st-contrast (saved and loaded like any ST module)."""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module in this package; one line per name
_LAZY: dict[str, str] = {
    "ClassifierHead": "classifier",
    "ensure_classifier_head": "classifier",
    "find_classifier_head": "classifier",
    "EntityMarkerPooling": "entity_pooling",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
