"""st_contrast.views: see DESIGN.md. Public names are imported lazily from their modules."""

from __future__ import annotations

from st_contrast._lazy import lazy_exports

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
    "TokenAligner": "alignment",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
