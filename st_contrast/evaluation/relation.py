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

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from st_contrast.evaluation.sts import report

logger = logging.getLogger(__name__)


def bag_classifier_class() -> type:
    """:class:`BagAttentionClassifier` from ``st_contrast.modules`` (its new home), else ``st_contrast.losses.cil``."""
    try:
        from st_contrast.modules import BagAttentionClassifier
    except (ImportError, AttributeError):
        from st_contrast.modules.bag_attention import BagAttentionClassifier
    return BagAttentionClassifier


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


def fitted_bag_texts(bags: Sequence[Any], model: Any, markers: Sequence[str] | None = None) -> list[list[str]]:
    """The marked sentences of each bag, each cropped just enough to fit the model's ``max_seq_length`` tokens.

    A sentence is first marked whole; when its tokenization (special tokens included) is longer than the model's
    limit, it keeps the most words that fit (:func:`st_contrast.data.relation.mark_entities`'s ``max_words``, which
    always keeps the entities and the markers), so truncation never cuts a marker off. A model without a tokenizer or a
    length limit gets the whole sentences.
    """
    from st_contrast.data.relation import mark_entities

    tokenizer = getattr(model, "tokenizer", None)
    limit = getattr(model, "max_seq_length", None)
    cropped = 0
    texts: list[list[str]] = []
    for bag in bags:
        marked = []
        for instance in bag.instances:
            text = mark_entities(instance, markers)
            if tokenizer is not None and limit and _length(tokenizer, text) > limit:
                cropped += 1
                low, high = 1, len(instance.tokens) - 1  # the most words that fit (binary search)
                while low < high:
                    middle = (low + high + 1) // 2
                    if _length(tokenizer, mark_entities(instance, markers, middle)) <= limit:
                        low = middle
                    else:
                        high = middle - 1
                text = mark_entities(instance, markers, low)
            marked.append(text)
        texts.append(marked)
    if cropped:
        logger.info(f"cropped the context of {cropped} sentence(s) to fit the model's {limit} tokens")
    return texts


def _length(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, verbose=False)["input_ids"])


def _bag_tensors(embeddings: Any, bag_texts: Sequence[Sequence[str]], device: Any, dtype: Any) -> tuple[Any, Any]:
    import torch

    embeddings = embeddings.to(device=device, dtype=dtype)
    k = max(len(texts) for texts in bag_texts)
    instances = embeddings.new_zeros((len(bag_texts), k, embeddings.shape[1]))
    mask = torch.zeros((len(bag_texts), k), dtype=torch.bool, device=device)
    start = 0
    for b, texts in enumerate(bag_texts):
        instances[b, : len(texts)] = embeddings[start : start + len(texts)]
        mask[b, : len(texts)] = True
        start += len(texts)
    return instances, mask


def _encode_bags(model: Any, bag_texts: Sequence[Sequence[str]], batch_size: int, show_progress_bar: bool) -> Any:
    if not bag_texts:
        raise ValueError("no bags to encode")
    if any(len(texts) == 0 for texts in bag_texts):
        raise ValueError("every bag to score needs at least one sentence; got an empty bag")
    flat = [text for texts in bag_texts for text in texts]
    return model.encode(flat, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=show_progress_bar)


def relation_scores(
    model: Any,
    classifier: Any,
    bag_texts: Sequence[Sequence[str]],
    batch_size: int = 64,
    show_progress_bar: bool = False,
):
    """``P(r | bag)`` ``(bags, relations)`` from a relation encoder and a bag classifier (or a ``CILLoss``).

    Every sentence is encoded once (``model.encode``); each bag is scored with selective attention
    using each relation's own query (:meth:`BagAttentionClassifier.predict`).
    """
    classifier = getattr(classifier, "bag_classifier", classifier)
    embeddings = _encode_bags(model, bag_texts, batch_size, show_progress_bar)
    weight = classifier.classifier.weight
    if embeddings.shape[1] != weight.shape[1]:
        raise ValueError(
            f"the model's embeddings have {embeddings.shape[1]} dimensions but the bag classifier expects "
            f"{weight.shape[1]}; use the classifier trained with this encoder"
        )
    instances, mask = _bag_tensors(embeddings, bag_texts, weight.device, weight.dtype)
    was_training = classifier.training
    classifier.eval()
    try:
        return classifier.predict(instances, mask).cpu()
    finally:
        classifier.train(was_training)


def fit_bag_classifier(
    model: Any,
    bags: Sequence[Any],
    relation_to_id: dict[str, int],
    batch_size: int = 64,
    epochs: int = 300,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    max_words: int | None | Literal["auto"] = "auto",
    show_progress_bar: bool = False,
) -> Any:
    """A :class:`BagAttentionClassifier` fitted on the frozen embeddings of training ``bags`` (for encoders
    trained without one).

    The sentences are encoded once; the classifier (selective attention with each bag's gold relation as the
    query, then the linear layer, as in training) is fitted with full-batch Adam on the bag cross-entropy,
    ``epochs`` steps, seeded (without touching the global random state). It is a linear probe of the encoder:
    its scores measure how well relations can be read off the frozen features.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import trange

    from st_contrast.data.relation import bag_texts as marked
    from st_contrast.data.relation import relation_id

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    texts = fitted_bag_texts(bags, model) if max_words == "auto" else marked(bags, max_words)
    embeddings = _encode_bags(model, texts, batch_size, show_progress_bar).detach().float().cpu()
    labels = torch.tensor([relation_id(relation_to_id, bag.relation) for bag in bags])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = bag_classifier_class()(embeddings.shape[1], len(relation_to_id))
    instances, mask = _bag_tensors(embeddings, texts, "cpu", torch.float32)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=learning_rate, weight_decay=weight_decay)
    classifier.train()
    for _ in trange(epochs, desc="Fitting the bag classifier", disable=not show_progress_bar):
        optimizer.zero_grad()
        logits, _ = classifier(instances, labels, mask)
        F.cross_entropy(logits, labels).backward()
        optimizer.step()
    classifier.eval()
    return classifier


def evaluate_relation_extraction(
    model: Any,
    classifier: Any,
    bags: Sequence[Any],
    relation_to_id: dict[str, int],
    na: str | None = None,
    batch_size: int = 64,
    max_words: int | None | Literal["auto"] = "auto",
    top_n: Sequence[int] = (100, 200),
    show_progress_bar: bool = False,
) -> dict[str, float]:
    """Score held-out ``bags`` (:class:`st_contrast.data.relation.Bag`) and return :func:`relation_metrics`.

    Args:
        model: the relation encoder.
        classifier: a ``BagAttentionClassifier`` or the ``CILLoss`` that trained it.
        bags: the test bags (natural entity-pair bags; never pseudo-bags, whose grouping reveals the label).
        relation_to_id: the mapping used in training.
        na: the "no relation" label (``"Other"`` for SemEval-2010), or ``None``.
        batch_size: encoding batch size.
        max_words: context cropping of :func:`st_contrast.data.relation.mark_entities`: ``"auto"`` (default)
            crops each sentence just enough to fit the model's ``max_seq_length`` tokens with its markers
            (:func:`fitted_bag_texts`); an integer keeps at most that many words; ``None`` never crops.
        top_n: the ``N`` of ``p@N``.
        show_progress_bar: show the encoding progress bar and print one line of metrics to stderr.
    """
    from st_contrast.data.relation import bag_texts, relation_id

    labels = np.asarray([relation_id(relation_to_id, bag.relation) for bag in bags], dtype=np.int64)
    na_id = relation_id(relation_to_id, na) if na is not None else None
    texts = fitted_bag_texts(bags, model) if max_words == "auto" else bag_texts(bags, max_words)
    scores = relation_scores(model, classifier, texts, batch_size, show_progress_bar)
    results = relation_metrics(scores.numpy(), labels, na_id, top_n)
    results["num_bags"] = float(len(bags))
    shown = ", ".join(f"{key} {100 * results[key]:.2f}" for key in ("pr_auc", *(f"p@{n}" for n in top_n), "micro_f1"))
    report(f"Relation extraction on {len(bags)} bags: {shown}", show_progress_bar)
    return results
