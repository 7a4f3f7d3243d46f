"""st_contrast.evaluation: see DESIGN.md. Public names are imported lazily from their modules."""

from __future__ import annotations

from st_contrast._lazy import lazy_exports

# public name -> module in this package; one line per name (each method's module is the source of truth)
_LAZY: dict[str, str] = {
    "relation_metrics": "relation",
    "evaluate_relation_extraction": "relation",
    "fit_bag_classifier": "relation",
    "fitted_bag_texts": "relation",
    "evaluate_ood": "ood",
    "ood_metrics": "ood",
    "LinearProbe": "ood",
    "load_intent_files": "ood",
    "ood_tuned_threshold": "ood",
    "ood_tuned_macro_threshold": "ood",
    "load_sts_benchmark": "sts",
    "read_sts_file": "sts",
    "evaluate_sts": "sts",
    "sts_spearman": "sts",
    "STSEvaluator": "sts",
    "evaluate_sts_suite": "sts_suite",
    "sts_suite_scores": "sts_suite",
    "STSSuiteEvaluator": "sts_suite",
    "STSSuiteResult": "sts_suite",
    "load_sts_suite": "sts_suite",
    "alignment_uniformity": "alignment",
    "alignment_loss": "alignment",
    "uniformity_loss": "alignment",
    "rouge_scores": "rouge",
    "corpus_rouge": "rouge",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
