"""st_contrast.evaluation: see DESIGN.md. Public names are imported lazily from their modules."""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module in this package; one line per name (each method's module is the source of truth)
_LAZY: dict[str, str] = {
    "relation_metrics": "relation",
    "evaluate_relation_extraction": "relation",
    "evaluate_ood": "ood",
    "ood_metrics": "ood",
    "load_sts_benchmark": "sts",
    "read_sts_file": "sts",
    "evaluate_sts": "sts",
    "sts_spearman": "sts",
    "STSEvaluator": "sts",
    "alignment_uniformity": "alignment",
    "alignment_loss": "alignment",
    "uniformity_loss": "alignment",
    "rouge_scores": "rouge",
    "corpus_rouge": "rouge",
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
