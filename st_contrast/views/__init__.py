"""st_contrast.views: see DESIGN.md. Public names are imported lazily from their modules."""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module in this package; one line per name (each method's module is the source of truth)
_LAZY: dict[str, str] = {
    "WordNetRewriter": "wordnet",
    "WordNetLexicon": "wordnet",
    "load_wordnet": "wordnet",
    "TfidfSubstitution": "tfidf",
    "EmbeddingView": "embedding",
    "NoAugmentation": "embedding",
    "TokenShuffle": "embedding",
    "TokenCutoff": "embedding",
    "FeatureCutoff": "embedding",
    "EmbeddingDropout": "embedding",
    "SpanCutoff": "embedding",
    "Adversarial": "embedding",
    "embedding_views": "embedding",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
