"""Out-of-domain (OOD) detection for sentence encoders: LOF, GDA and MSP detectors and their metrics.

As in Zeng et al. (ACL 2021), the detectors are fitted on **in-domain training features only**:

- **LOF** (Breunig et al., 2000): local outlier factor of the sentence embedding among the training
  embeddings (20 neighbours, scikit-learn's ``LocalOutlierFactor(novelty=True)``).
- **GDA** (Xu et al., 2020): a Gaussian per class with one shared covariance; the score is the minimum
  Mahalanobis distance to the class means, the predicted class the nearest mean.
- **MSP** (Hendrycks & Gimpel, 2017): the negative maximum softmax probability of the model's
  :class:`~st_contrast.modules.ClassifierHead`.

Every detector gives a score where **higher means more likely OOD**. Threshold-free metrics: AUROC and
AUPR (OOD as the positive class: ``aupr_out``; in-domain: ``aupr_in``), and FPR at 95% TPR (the share of
OOD inputs accepted when 95% of in-domain test inputs are accepted). Thresholded metrics (OOD F1 and
the macro-F1 over in-domain classes plus OOD) use a threshold chosen **without OOD data**: the score that
keeps ``keep=95%`` of the in-domain validation inputs. The official code tunes the threshold on
validation OOD inputs instead; that is available only with ``threshold="ood_tuned"``, and it reads OOD
labels, so results with it are optimistic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

DETECTORS = ("lof", "gda", "msp")
ThresholdMode = Literal["in_domain", "ood_tuned"]


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


@dataclass
class OODFeatures:
    """Sentence embeddings (``(n, d)``), classifier logits (``(n, C)`` or ``None``) and labels (or ``None``)."""

    embeddings: np.ndarray
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


def encode_for_ood(
    model: Any, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings and, when the model has a classifier head, logits of ``texts`` in one pass (eval mode)."""
    import torch
    from tqdm.auto import trange

    texts = list(texts)
    if not texts:
        raise ValueError("no texts to encode")
    order = np.argsort([-len(text) for text in texts])
    device = getattr(model, "device", None)
    was_training = model.training
    model.eval()
    embeddings, logits = [], []
    try:
        with torch.no_grad():
            for start in trange(0, len(texts), batch_size, disable=not show_progress_bar, desc="Encoding"):
                batch = [texts[i] for i in order[start : start + batch_size]]
                features = model.preprocess(batch)
                if device is not None:
                    features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
                output = model(features)
                embeddings.append(output["sentence_embedding"].float().cpu())
                if isinstance(output.get("logits"), torch.Tensor):
                    logits.append(output["logits"].float().cpu())
    finally:
        model.train(was_training)
    inverse = np.argsort(order)
    emb = torch.cat(embeddings).numpy()[inverse]
    log = torch.cat(logits).numpy()[inverse] if len(logits) == len(embeddings) else None
    return emb, log


def features_of(model: Any, examples: Sequence[Any], batch_size: int = 64) -> OODFeatures:
    """:class:`OODFeatures` of ``(text, label)`` pairs or of plain texts (labels then ``None``)."""
    examples = list(examples)
    if examples and isinstance(examples[0], (tuple, list)):
        texts = [text for text, _ in examples]
        labels = np.asarray([label for _, label in examples], dtype=np.int64)
    else:
        texts, labels = [str(text) for text in examples], None
    embeddings, logits = encode_for_ood(model, texts, batch_size)
    return OODFeatures(embeddings, logits, labels)


# ---------------------------------------------------------------------------------------------
# Detectors (fit on in-domain training features; score: higher = more OOD)
# ---------------------------------------------------------------------------------------------


class LOFDetector:
    """Local outlier factor of an embedding among the in-domain training embeddings."""

    name = "lof"

    def __init__(self, n_neighbors: int = 20) -> None:
        if n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
        self.n_neighbors = n_neighbors
        self._lof: Any = None

    def fit(self, train: OODFeatures) -> LOFDetector:
        from sklearn.neighbors import LocalOutlierFactor

        if len(train) <= self.n_neighbors:
            raise ValueError(f"LOF with {self.n_neighbors} neighbours needs more than that many training examples")
        self._lof = LocalOutlierFactor(n_neighbors=self.n_neighbors, novelty=True)
        self._lof.fit(train.embeddings)
        return self

    def score(self, features: OODFeatures) -> np.ndarray:
        if self._lof is None:
            raise RuntimeError("call fit() before score()")
        return -self._lof.score_samples(features.embeddings)


class GDADetector:
    """Gaussian discriminant analysis: class means, one shared covariance, minimum Mahalanobis distance.

    The shared covariance is the pooled within-class (maximum-likelihood) covariance; its pseudo-inverse
    is used (eigenvalues below ``rcond · max`` dropped), plus ``shrinkage · mean eigenvalue`` on the diagonal
    when ``shrinkage > 0``. The distance is the squared Mahalanobis distance.
    """

    name = "gda"

    def __init__(self, shrinkage: float = 0.0, rcond: float = 1e-10) -> None:
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
        self.shrinkage = shrinkage
        self.rcond = rcond
        self.classes_: np.ndarray | None = None
        self.means_: np.ndarray | None = None
        self.covariance_: np.ndarray | None = None
        self._whiten: np.ndarray | None = None

    def fit(self, train: OODFeatures) -> GDADetector:
        if train.labels is None:
            raise ValueError("GDA needs the class labels of the training features")
        x = np.asarray(train.embeddings, dtype=np.float64)
        y = np.asarray(train.labels)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 1:
            raise ValueError("GDA needs at least one class")
        self.means_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_])
        centred = x - self.means_[np.searchsorted(self.classes_, y)]
        covariance = centred.T @ centred / x.shape[0]
        if self.shrinkage:
            mu = np.trace(covariance) / covariance.shape[0]
            covariance = (1 - self.shrinkage) * covariance + self.shrinkage * mu * np.eye(covariance.shape[0])
        self.covariance_ = covariance
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        keep = eigenvalues > self.rcond * max(float(eigenvalues.max()), 0.0)
        self._whiten = eigenvectors[:, keep] / np.sqrt(eigenvalues[keep])
        return self

    def distances(self, features: OODFeatures) -> np.ndarray:
        """Squared Mahalanobis distances ``(n, num_classes)`` to every class mean."""
        if self._whiten is None or self.means_ is None:
            raise RuntimeError("call fit() before scoring")
        z = np.asarray(features.embeddings, dtype=np.float64) @ self._whiten
        m = self.means_ @ self._whiten
        return (z**2).sum(1)[:, None] - 2 * z @ m.T + (m**2).sum(1)[None, :]

    def score(self, features: OODFeatures) -> np.ndarray:
        return self.distances(features).min(axis=1)

    def predict(self, features: OODFeatures) -> np.ndarray:
        assert self.classes_ is not None
        return self.classes_[self.distances(features).argmin(axis=1)]


class MSPDetector:
    """Negative maximum softmax probability of the classifier head's logits."""

    name = "msp"

    def fit(self, train: OODFeatures) -> MSPDetector:
        return self

    def score(self, features: OODFeatures) -> np.ndarray:
        if features.logits is None:
            raise ValueError(
                "MSP needs classifier logits, but the model has no ClassifierHead (train it with SupConOODLoss or "
                "RDropLoss, or leave 'msp' out of detectors)"
            )
        logits = features.logits - features.logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return -probabilities.max(axis=1)


def make_detector(name: str, lof_neighbors: int = 20, gda_shrinkage: float = 0.0) -> Any:
    if name == "lof":
        return LOFDetector(lof_neighbors)
    if name == "gda":
        return GDADetector(gda_shrinkage)
    if name == "msp":
        return MSPDetector()
    raise ValueError(f"unknown OOD detector {name!r}; choose from {DETECTORS}")


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def ood_metrics(in_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> dict[str, float]:
    """AUROC, AUPR (OOD positive and in-domain positive) and FPR at ``tpr`` from OOD scores (higher = OOD).

    FPR@95TPR: with in-domain inputs as positives (accepted when their score is low), the share of OOD
    inputs accepted at the lowest threshold that accepts at least ``tpr`` of the in-domain inputs.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    in_scores = np.asarray(in_scores, dtype=np.float64).ravel()
    ood_scores = np.asarray(ood_scores, dtype=np.float64).ravel()
    if in_scores.size == 0 or ood_scores.size == 0:
        raise ValueError("ood_metrics needs at least one in-domain and one OOD score")
    if not (np.isfinite(in_scores).all() and np.isfinite(ood_scores).all()):
        raise ValueError("OOD scores must be finite")
    scores = np.concatenate([in_scores, ood_scores])
    is_ood = np.concatenate([np.zeros(in_scores.size), np.ones(ood_scores.size)])
    return {
        "auroc": float(roc_auc_score(is_ood, scores)),
        "aupr_out": float(average_precision_score(is_ood, scores)),
        "aupr_in": float(average_precision_score(1 - is_ood, -scores)),
        "fpr95": fpr_at_tpr(in_scores, ood_scores, tpr),
    }


def fpr_at_tpr(in_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> float:
    """Share of OOD scores ``<= t``, for the smallest ``t`` among the in-domain scores accepting ``>= tpr`` of them."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    ordered = np.sort(np.asarray(in_scores, dtype=np.float64).ravel())
    k = int(np.ceil(tpr * ordered.size - 1e-9))
    threshold = ordered[max(k, 1) - 1]
    return float((np.asarray(ood_scores) <= threshold).mean())


def in_domain_threshold(val_in_scores: np.ndarray, keep: float = 0.95) -> float:
    """The score below which ``keep`` of the in-domain validation inputs fall (no OOD data used)."""
    if not 0 < keep < 1:
        raise ValueError(f"keep must be in (0, 1), got {keep}")
    return float(np.quantile(np.asarray(val_in_scores, dtype=np.float64), keep))


def ood_tuned_threshold(val_in_scores: np.ndarray, val_ood_scores: np.ndarray) -> float:
    """The threshold maximising the macro-F1 of in-domain vs OOD on validation data (official, uses OOD labels).

    Candidates are the validation scores (an input is OOD when its score is above the threshold); ties go to
    the lowest candidate.
    """
    val_in = np.sort(np.asarray(val_in_scores, dtype=np.float64).ravel())
    val_ood = np.sort(np.asarray(val_ood_scores, dtype=np.float64).ravel())
    if val_ood.size == 0 or val_in.size == 0:
        raise ValueError("threshold='ood_tuned' needs validation OOD inputs (val_ood) and in-domain ones")
    candidates = np.unique(np.concatenate([val_in, val_ood]))
    in_kept = np.searchsorted(val_in, candidates, side="right")  # in-domain with score <= t: correct
    ood_missed = np.searchsorted(val_ood, candidates, side="right")  # OOD with score <= t: missed
    in_lost, ood_caught = val_in.size - in_kept, val_ood.size - ood_missed

    def f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
        denominator = 2 * tp + fp + fn
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)

    macro = (f1(ood_caught, in_lost, ood_missed) + f1(in_kept, ood_missed, in_lost)) / 2
    return float(candidates[int(np.argmax(macro))])


def classification_metrics(
    in_labels: np.ndarray,
    in_predictions: np.ndarray,
    in_scores: np.ndarray,
    ood_predictions_scores: np.ndarray,
    threshold: float,
    num_labels: int,
) -> dict[str, float]:
    """In-domain accuracy and macro-F1 (no rejection), and, with rejection at ``threshold``: the F1 of the OOD
    class, the macro-F1 over the in-domain classes and the macro-F1 over all classes plus OOD."""
    from sklearn.metrics import accuracy_score, f1_score

    in_labels = np.asarray(in_labels)
    in_predictions = np.asarray(in_predictions)
    ood_label = num_labels
    rejected_in = np.where(np.asarray(in_scores) > threshold, ood_label, in_predictions)
    ood_scores = np.asarray(ood_predictions_scores)
    predictions = np.concatenate([rejected_in, np.where(ood_scores > threshold, ood_label, -1)])
    truth = np.concatenate([in_labels, np.full(ood_scores.size, ood_label)])
    in_classes = list(range(num_labels))
    return {
        "in_domain_accuracy": float(accuracy_score(in_labels, in_predictions)),
        "in_domain_macro_f1": float(
            f1_score(in_labels, in_predictions, labels=in_classes, average="macro", zero_division=0)
        ),
        "ood_f1": float(f1_score(truth == ood_label, predictions == ood_label, zero_division=0)),
        "in_domain_macro_f1_with_rejection": float(
            f1_score(truth, predictions, labels=in_classes, average="macro", zero_division=0)
        ),
        "all_macro_f1": float(
            f1_score(truth, predictions, labels=in_classes + [ood_label], average="macro", zero_division=0)
        ),
        "ood_recall": float((ood_scores > threshold).mean()),
        "in_domain_kept": float((np.asarray(in_scores) <= threshold).mean()),
    }


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------


def evaluate_ood_features(
    train: OODFeatures,
    val: OODFeatures,
    test: OODFeatures,
    test_ood: OODFeatures,
    val_ood: OODFeatures | None = None,
    detectors: Sequence[str] = DETECTORS,
    threshold: ThresholdMode = "in_domain",
    keep: float = 0.95,
    lof_neighbors: int = 20,
    gda_shrinkage: float = 0.0,
    num_labels: int | None = None,
) -> dict[str, dict[str, float]]:
    """Fit each detector on ``train`` (in-domain, labelled) and report its metrics on ``test`` vs ``test_ood``.

    Class predictions: GDA uses its nearest class mean; LOF and MSP use the classifier's argmax when
    logits are present (LOF falls back to the nearest class mean otherwise).
    """
    if threshold not in ("in_domain", "ood_tuned"):
        raise ValueError(f"threshold must be 'in_domain' or 'ood_tuned', got {threshold!r}")
    if threshold == "ood_tuned" and val_ood is None:
        raise ValueError("threshold='ood_tuned' needs val_ood (validation OOD inputs)")
    if train.labels is None or test.labels is None:
        raise ValueError("train and test must carry in-domain labels")
    unknown = [name for name in detectors if name not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown OOD detector(s) {unknown}; choose from {DETECTORS}")
    if num_labels is None:
        num_labels = int(max(train.labels.max(), test.labels.max())) + 1
    if test.logits is not None:
        classifier_predictions = test.logits.argmax(axis=1)
    else:
        classifier_predictions = GDADetector(gda_shrinkage).fit(train).predict(test)
    results: dict[str, dict[str, float]] = {}
    for name in detectors:
        detector = make_detector(name, lof_neighbors, gda_shrinkage).fit(train)
        in_scores, ood_scores = detector.score(test), detector.score(test_ood)
        val_scores = detector.score(val)
        if threshold == "in_domain":
            cut = in_domain_threshold(val_scores, keep)
        else:
            assert val_ood is not None
            cut = ood_tuned_threshold(val_scores, detector.score(val_ood))
        predictions = detector.predict(test) if name == "gda" else classifier_predictions
        metrics = ood_metrics(in_scores, ood_scores)
        metrics.update(classification_metrics(test.labels, predictions, in_scores, ood_scores, cut, num_labels))
        metrics["threshold"] = cut
        results[name] = metrics
    return results


def evaluate_ood(
    model: Any,
    train: Sequence[tuple[str, int]],
    val: Sequence[tuple[str, int]],
    test: Sequence[tuple[str, int]],
    test_ood: Sequence[str],
    val_ood: Sequence[str] | None = None,
    detectors: Sequence[str] | None = None,
    threshold: ThresholdMode = "in_domain",
    keep: float = 0.95,
    lof_neighbors: int = 20,
    gda_shrinkage: float = 0.0,
    batch_size: int = 64,
    num_labels: int | None = None,
) -> dict[str, dict[str, float]]:
    """Encode the splits with ``model`` and evaluate LOF, GDA and MSP (MSP only if the model has a classifier head).

    Args:
        model: a SentenceTransformer (with a :class:`~st_contrast.modules.ClassifierHead` for MSP).
        train: in-domain ``(text, label_id)`` pairs the detectors are fitted on.
        val: in-domain validation pairs (the threshold keeps ``keep`` of them).
        test: in-domain test pairs.
        test_ood: OOD test texts.
        val_ood: OOD validation texts, only read with ``threshold="ood_tuned"``.
        detectors: subset of ``("lof", "gda", "msp")``; default all that apply.
        threshold: ``"in_domain"`` (no OOD data) or ``"ood_tuned"`` (official, optimistic).
        keep: share of in-domain validation inputs kept by the ``"in_domain"`` threshold.
        lof_neighbors: LOF's neighbours (20 in the paper).
        gda_shrinkage: optional covariance shrinkage for GDA (0 in the paper).
        batch_size: encoding batch size.
        num_labels: number of in-domain classes (default: inferred from the labels).

    Returns:
        ``{detector: {"auroc", "aupr_out", "aupr_in", "fpr95", "in_domain_accuracy", "in_domain_macro_f1",
        "ood_f1", "in_domain_macro_f1_with_rejection", "all_macro_f1", "ood_recall", "in_domain_kept",
        "threshold"}}``.
    """
    train_f = features_of(model, train, batch_size)
    if detectors is None:
        detectors = DETECTORS if train_f.logits is not None else ("lof", "gda")
    val_f = features_of(model, val, batch_size)
    test_f = features_of(model, test, batch_size)
    test_ood_f = features_of(model, test_ood, batch_size)
    val_ood_f = features_of(model, val_ood, batch_size) if threshold == "ood_tuned" and val_ood else None
    return evaluate_ood_features(
        train_f,
        val_f,
        test_f,
        test_ood_f,
        val_ood_f,
        detectors=detectors,
        threshold=threshold,
        keep=keep,
        lof_neighbors=lof_neighbors,
        gda_shrinkage=gda_shrinkage,
        num_labels=num_labels,
    )
