"""Relation extraction metrics: PR-AUC over non-NA predictions, P@N, micro-F1 (OpenNRE's protocol).

Held-out evaluation of distantly supervised relation extraction scores every (bag, relation) pair for
the relations other than "no relation" (NA): a pair is correct when the bag's label is that relation.
Sorting all pairs by score gives the precision–recall curve, with recall counted against the number of
bags whose label is not NA. ``pr_auc`` is the area under that curve (trapezoids between its points, as
``sklearn.metrics.auc`` in OpenNRE), ``p@N`` the precision of the ``N`` best-scored pairs.

``micro_f1`` is the F1 of the arg-max decision of each bag over the non-NA relations (a bag predicted NA
is no prediction); ``max_f1`` is OpenNRE's figure, the best F1 along the precision–recall curve.
Without an NA class (``na_id=None``, e.g. FewRel's NYT set) every relation counts and micro-F1 equals
accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_arrays(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64)
    labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels, dtype=np.int64)
    if scores.ndim != 2 or labels.ndim != 1 or scores.shape[0] != labels.shape[0]:
        raise ValueError(
            f"scores must be (bags, relations) and labels (bags,), got shapes {scores.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must be relation ids in [0, {scores.shape[1]}), got values outside that range")
    return scores, labels


def precision_recall_curve(scores: Any, labels: Any, na_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each of the (bag, non-NA relation) pairs, best score first."""
    scores, labels = _as_arrays(scores, labels)
    relations = [r for r in range(scores.shape[1]) if r != na_id]
    pair_scores = scores[:, relations].reshape(-1)
    correct = (labels[:, None] == np.asarray(relations)[None, :]).reshape(-1)
    order = np.argsort(-pair_scores, kind="stable")
    hits = np.cumsum(correct[order])
    facts = int(np.sum(labels != na_id)) if na_id is not None else labels.shape[0]
    precision = hits / np.arange(1, len(hits) + 1)
    recall = hits / max(facts, 1)
    return precision, recall


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def relation_metrics(
    scores: Any,
    labels: Any,
    na_id: int | None = None,
    top_n: Sequence[int] = (100, 200),
) -> dict[str, float]:
    """``pr_auc``, ``p@N`` for each ``N``, ``micro_f1`` (with its precision and recall), ``max_f1``, ``accuracy``.

    Args:
        scores: ``(bags, relations)`` scores (e.g. probabilities).
        labels: ``(bags,)`` gold relation ids.
        na_id: id of the "no relation" class, or ``None`` when there is none.
        top_n: the ``N`` of the ``p@N`` entries (capped at the number of pairs).
    """
    scores, labels = _as_arrays(scores, labels)
    precision, recall = precision_recall_curve(scores, labels, na_id)
    results: dict[str, float] = {"pr_auc": _trapezoid(recall, precision)}
    for n in top_n:
        if n < 1:
            raise ValueError(f"top_n values must be >= 1, got {n}")
        results[f"p@{n}"] = float(precision[min(n, len(precision)) - 1]) if len(precision) else 0.0
    f1_curve = 2 * precision * recall / np.maximum(precision + recall, 1e-20)
    results["max_f1"] = float(f1_curve.max()) if len(f1_curve) else 0.0
    predictions = scores.argmax(axis=1)
    predicted = predictions != na_id if na_id is not None else np.ones_like(predictions, dtype=bool)
    gold = labels != na_id if na_id is not None else np.ones_like(labels, dtype=bool)
    correct = int(np.sum(predicted & gold & (predictions == labels)))
    micro_p = correct / max(int(predicted.sum()), 1)
    micro_r = correct / max(int(gold.sum()), 1)
    results["micro_precision"] = micro_p
    results["micro_recall"] = micro_r
    results["micro_f1"] = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r > 0 else 0.0
    results["accuracy"] = float(np.mean(predictions == labels)) if len(labels) else 0.0
    return results


def relation_scores(model: Any, classifier: Any, bag_texts: Sequence[Sequence[str]], batch_size: int = 64):
    """``P(r | bag)`` ``(bags, relations)`` from a relation encoder and a bag classifier (or a ``CILLoss``).

    Every sentence is encoded once (``model.encode``); each bag is scored with selective attention
    using each relation's own query (:meth:`BagAttentionClassifier.predict`).
    """
    import torch

    classifier = getattr(classifier, "bag_classifier", classifier)
    if any(len(texts) == 0 for texts in bag_texts):
        raise ValueError("every bag to score needs at least one sentence; got an empty bag")
    flat = [text for texts in bag_texts for text in texts]
    embeddings = model.encode(flat, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
    device = classifier.classifier.weight.device
    embeddings = embeddings.to(device=device, dtype=classifier.classifier.weight.dtype)
    k = max(len(texts) for texts in bag_texts)
    instances = embeddings.new_zeros((len(bag_texts), k, embeddings.shape[1]))
    mask = torch.zeros((len(bag_texts), k), dtype=torch.bool, device=device)
    start = 0
    for b, texts in enumerate(bag_texts):
        instances[b, : len(texts)] = embeddings[start : start + len(texts)]
        mask[b, : len(texts)] = True
        start += len(texts)
    was_training = classifier.training
    classifier.eval()
    try:
        return classifier.predict(instances, mask).cpu()
    finally:
        classifier.train(was_training)


def evaluate_relation_extraction(
    model: Any,
    classifier: Any,
    bags: Sequence[Any],
    relation_to_id: dict[str, int],
    na: str | None = None,
    batch_size: int = 64,
    max_words: int | None = 64,
    top_n: Sequence[int] = (100, 200),
) -> dict[str, float]:
    """Score held-out ``bags`` (:class:`st_contrast.data.relation.Bag`) and return :func:`relation_metrics`.

    Args:
        model: the relation encoder.
        classifier: a ``BagAttentionClassifier`` or the ``CILLoss`` that trained it.
        bags: the test bags (natural entity-pair bags; never pseudo-bags, whose grouping reveals the label).
        relation_to_id: the mapping used in training.
        na: the "no relation" label (``"Other"`` for SemEval-2010), or ``None``.
        batch_size: encoding batch size.
        max_words: context cropping of :func:`st_contrast.data.relation.mark_entities`.
        top_n: the ``N`` of ``p@N``.
    """
    from st_contrast.data.relation import bag_texts, relation_id

    labels = np.asarray([relation_id(relation_to_id, bag.relation) for bag in bags], dtype=np.int64)
    na_id = relation_id(relation_to_id, na) if na is not None else None
    scores = relation_scores(model, classifier, bag_texts(bags, max_words), batch_size)
    results = relation_metrics(scores.numpy(), labels, na_id, top_n)
    results["num_bags"] = float(len(bags))
    return results
