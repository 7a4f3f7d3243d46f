"""Sentence-transformers modules added by st-contrast (saved and loaded like any ST module)."""

from __future__ import annotations

from st_contrast._lazy import lazy_exports

# public name -> module in this package; one line per name
_LAZY: dict[str, str] = {
    "ClassifierHead": "classifier",
    "ensure_classifier_head": "classifier",
    "find_classifier_head": "classifier",
    "EntityMarkerPooling": "entity_pooling",
    "BagAttentionClassifier": "bag_attention",
    "MLMHead": "mlm",
    "RTDHead": "rtd",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
