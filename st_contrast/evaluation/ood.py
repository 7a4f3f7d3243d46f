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
validation OOD inputs instead (its ``estimate_best_threshold``: the threshold that maximises the F1 of the
OOD class); that is available only with ``threshold="ood_tuned"``, and it reads OOD labels, so results with
it are optimistic. ``threshold="ood_tuned_macro"`` maximises the macro-F1 of in-domain vs OOD instead (the
rule this package used before; also optimistic).

Encoders without a classifier head can still be scored with MSP: :class:`LinearProbe` fits a multinomial
logistic regression on the frozen training embeddings (``classifier="fit"``), whose logits stand in for the
head's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from st_contrast.evaluation.sts import report

logger = logging.getLogger(__name__)

DETECTORS = ("lof", "gda", "msp")
ThresholdMode = Literal["in_domain", "ood_tuned", "ood_tuned_macro"]
THRESHOLDS: tuple[str, ...] = ("in_domain", "ood_tuned", "ood_tuned_macro")
ClassifierMode = Literal["auto", "head", "fit"]


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


def features_of(
    model: Any, examples: Sequence[Any], batch_size: int = 64, show_progress_bar: bool = False
) -> OODFeatures:
    """:class:`OODFeatures` of ``(text, label)`` pairs or of plain texts (labels then ``None``)."""
    examples = list(examples)
    if examples and isinstance(examples[0], (tuple, list)):
        texts = [text for text, _ in examples]
        labels = np.asarray([label for _, label in examples], dtype=np.int64)
    else:
        texts, labels = [str(text) for text in examples], None
    embeddings, logits = encode_for_ood(model, texts, batch_size, show_progress_bar)
    return OODFeatures(embeddings, logits, labels)


class LinearProbe:
    """A linear softmax classifier fitted on frozen in-domain training embeddings (for encoders without a head).

    scikit-learn's multinomial ``LogisticRegression`` (L2, ``C``, lbfgs) on the embeddings standardised with the
    training mean and standard deviation; :meth:`logits` are its decision values, which MSP turns into
    probabilities as it does a trained head's logits.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000) -> None:
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")
        self.C = float(C)
        self.max_iter = int(max_iter)
        self._model: Any = None

    def fit(self, train: OODFeatures) -> LinearProbe:
        from sklearn.linear_model import LogisticRegression

        if train.labels is None:
            raise ValueError("the linear probe needs the class labels of the training features")
        if len(np.unique(train.labels)) < 2:
            raise ValueError("the linear probe needs at least 2 classes in the training data")
        x = np.asarray(train.embeddings, dtype=np.float64)
        self._mean, self._scale = x.mean(axis=0), x.std(axis=0) + 1e-12
        self._model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self._model.fit((x - self._mean) / self._scale, train.labels)
        self.classes_ = self._model.classes_
        return self

    def logits(self, features: OODFeatures) -> np.ndarray:
        """``(n, num_labels)`` decision values; columns are the label ids ``0..num_labels-1`` (all must be seen)."""
        if self._model is None:
            raise RuntimeError("call fit() before logits()")
        x = (np.asarray(features.embeddings, dtype=np.float64) - self._mean) / self._scale
        return self._model.decision_function(x)

    def with_logits(self, features: OODFeatures) -> OODFeatures:
        """``features`` with the probe's logits in place of any head's."""
        return OODFeatures(features.embeddings, self.logits(features), features.labels)


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


def head_order(model: Any, label_names: Sequence[str] | None, num_logits: int) -> np.ndarray | None:
    """The head's logit columns in the order of ``label_names`` (``None``: already in that order)."""
    if label_names is None:
        return None
    from st_contrast.modules import find_classifier_head

    head = find_classifier_head(model)
    names = list(head.labels) if head is not None and head.labels else None
    if names is None:
        if num_logits != len(label_names):
            raise ValueError(
                f"the model's classifier head has {num_logits} classes and no class names, but the data has "
                f"{len(label_names)} intents; use the data the head was trained on, or --fit-on-train"
            )
        logger.warning("the classifier head saved no class names; assuming its classes are the data's, in order")
        return None
    missing = [name for name in label_names if name not in names]
    if missing:
        raise ValueError(
            f"the model's classifier head does not know the intent(s) {missing[:5]} of the data (it has "
            f"{len(names)} classes); use the data it was trained on, or --fit-on-train"
        )
    return np.asarray([names.index(name) for name in label_names])


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


def _validation_counts(
    val_in_scores: np.ndarray, val_ood_scores: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (every distinct validation score, plus one below them all: everything OOD) and, at
    each, the in-domain inputs kept / lost and the OOD inputs missed / caught (OOD: score above the threshold)."""
    val_in = np.sort(np.asarray(val_in_scores, dtype=np.float64).ravel())
    val_ood = np.sort(np.asarray(val_ood_scores, dtype=np.float64).ravel())
    if val_ood.size == 0 or val_in.size == 0:
        raise ValueError(f"threshold={mode!r} needs validation OOD inputs (val_ood) and in-domain ones")
    if not (np.isfinite(val_in).all() and np.isfinite(val_ood).all()):
        raise ValueError("OOD scores must be finite")
    distinct = np.unique(np.concatenate([val_in, val_ood]))
    lowest = distinct[0] - max(1.0, abs(distinct[0]))  # below every score: every input is OOD
    candidates = np.concatenate([[lowest], distinct])
    in_kept = np.searchsorted(val_in, candidates, side="right")
    ood_missed = np.searchsorted(val_ood, candidates, side="right")
    return candidates, in_kept, val_in.size - in_kept, ood_missed, val_ood.size - ood_missed


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def ood_tuned_threshold(val_in_scores: np.ndarray, val_ood_scores: np.ndarray) -> float:
    """The official code's ``estimate_best_threshold``: the threshold maximising the F1 of the OOD class.

    On validation data *with OOD labels* (so optimistic): an input is OOD when its score is above the threshold;
    the candidates are the distinct validation scores and one below them all (every input OOD, the official
    starting point); ties go to the lowest candidate, as the official sweep keeps only strict improvements.
    Example: in-domain ``[.1 .2 .3 .4 .5 .6 .7 2 2.1 2.2]`` vs OOD ``[.55 1 1.1]`` gives 0.5 (OOD F1 6/11),
    where the macro-F1 rule (:func:`ood_tuned_macro_threshold`) gives 0.7.
    """
    candidates, _, in_lost, ood_missed, ood_caught = _validation_counts(val_in_scores, val_ood_scores, "ood_tuned")
    return float(candidates[int(np.argmax(_f1(ood_caught, in_lost, ood_missed)))])


def ood_tuned_macro_threshold(val_in_scores: np.ndarray, val_ood_scores: np.ndarray) -> float:
    """The threshold maximising the macro-F1 of in-domain vs OOD on validation data (uses OOD labels).

    Candidates are the distinct validation scores (an input is OOD when its score is above the threshold) and
    one below them all; ties go to the lowest candidate. Not the official rule (see :func:`ood_tuned_threshold`).
    """
    candidates, in_kept, in_lost, ood_missed, ood_caught = _validation_counts(
        val_in_scores, val_ood_scores, "ood_tuned_macro"
    )
    macro = (_f1(ood_caught, in_lost, ood_missed) + _f1(in_kept, ood_missed, in_lost)) / 2
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
    logits are present (LOF falls back to the nearest class mean otherwise). ``threshold``: ``"in_domain"``
    (no OOD data), ``"ood_tuned"`` (the official rule, :func:`ood_tuned_threshold`) or ``"ood_tuned_macro"``
    (:func:`ood_tuned_macro_threshold`); both tuned rules need ``val_ood``.
    """
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {', '.join(THRESHOLDS)}, got {threshold!r}")
    if threshold != "in_domain" and val_ood is None:
        raise ValueError(f"threshold={threshold!r} needs val_ood (validation OOD inputs)")
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
            tune = ood_tuned_threshold if threshold == "ood_tuned" else ood_tuned_macro_threshold
            cut = tune(val_scores, detector.score(val_ood))
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
    classifier: ClassifierMode = "auto",
    show_progress_bar: bool = False,
    label_names: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Encode the splits with ``model`` and evaluate LOF, GDA and MSP (MSP only with classifier logits).

    Args:
        model: a SentenceTransformer (with a :class:`~st_contrast.modules.ClassifierHead` for MSP).
        train: in-domain ``(text, label_id)`` pairs the detectors are fitted on.
        val: in-domain validation pairs (the threshold keeps ``keep`` of them).
        test: in-domain test pairs.
        test_ood: OOD test texts.
        val_ood: OOD validation texts, only read with ``threshold="ood_tuned"``.
        detectors: subset of ``("lof", "gda", "msp")``; default all that apply.
        threshold: ``"in_domain"`` (no OOD data), ``"ood_tuned"`` (official: best OOD F1 on validation OOD,
            optimistic) or ``"ood_tuned_macro"`` (best in-domain-vs-OOD macro-F1; optimistic).
        keep: share of in-domain validation inputs kept by the ``"in_domain"`` threshold.
        lof_neighbors: LOF's neighbours (20 in the paper).
        gda_shrinkage: optional covariance shrinkage for GDA (0 in the paper).
        batch_size: encoding batch size.
        num_labels: number of in-domain classes (default: inferred from the labels).
        classifier: where MSP's logits and LOF's class predictions come from: ``"head"`` the model's
            :class:`~st_contrast.modules.ClassifierHead` (an error without one), ``"fit"`` a :class:`LinearProbe`
            fitted on the frozen training embeddings, ``"auto"`` the head when there is one, else none (LOF and
            GDA only; predictions from GDA's nearest mean).
        show_progress_bar: show the encoding progress bars and print one line per detector to stderr.
        label_names: the names of the label ids ``0..n-1`` of the data; when the model's head saved its own
            class names (``ClassifierHead.labels``), its logits are put in this order (a name it lacks is an error).

    Returns:
        ``{detector: {"auroc", "aupr_out", "aupr_in", "fpr95", "in_domain_accuracy", "in_domain_macro_f1",
        "ood_f1", "in_domain_macro_f1_with_rejection", "all_macro_f1", "ood_recall", "in_domain_kept",
        "threshold"}}``.
    """
    if classifier not in ("auto", "head", "fit"):
        raise ValueError(f"classifier must be 'auto', 'head' or 'fit', got {classifier!r}")
    encode = functools.partial(features_of, model, batch_size=batch_size, show_progress_bar=show_progress_bar)
    train_f = encode(train)
    if classifier == "head" and train_f.logits is None:
        raise ValueError(
            "classifier='head' but the model has no ClassifierHead (train it with SupConOODLoss or RDropLoss, or "
            "use classifier='fit' to fit a linear probe on the frozen training embeddings)"
        )
    val_f, test_f, test_ood_f = encode(val), encode(test), encode(test_ood)
    val_ood_f = encode(val_ood) if threshold != "in_domain" and val_ood else None
    if classifier != "fit" and train_f.logits is not None:
        order = head_order(model, label_names, train_f.logits.shape[1])
        if order is not None:
            train_f, val_f, test_f, test_ood_f = (
                OODFeatures(f.embeddings, f.logits[:, order], f.labels) for f in (train_f, val_f, test_f, test_ood_f)
            )
            if val_ood_f is not None:
                val_ood_f = OODFeatures(val_ood_f.embeddings, val_ood_f.logits[:, order], val_ood_f.labels)
    if classifier == "fit":
        probe = LinearProbe().fit(train_f)
        train_f, val_f, test_f, test_ood_f = (probe.with_logits(f) for f in (train_f, val_f, test_f, test_ood_f))
        val_ood_f = probe.with_logits(val_ood_f) if val_ood_f is not None else None
    if detectors is None:
        detectors = DETECTORS if train_f.logits is not None else ("lof", "gda")
    results = evaluate_ood_features(
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
    for name, metrics in results.items():
        report(
            f"OOD evaluation, {name.upper()}: AUROC {100 * metrics['auroc']:.2f}, "
            f"FPR@95TPR {100 * metrics['fpr95']:.2f}, "
            f"in-domain accuracy {100 * metrics['in_domain_accuracy']:.2f}, OOD F1 {100 * metrics['ood_f1']:.2f} "
            f"(threshold {threshold})",
            show_progress_bar,
        )
    return results


def load_intent_files(
    train: str,
    val: str,
    test: str,
    format: str | None = None,  # noqa: A002 - the flag's name
    text_column: str = "text",
    label_column: str = "label",
    oos_label: str = "oos",
    encoding: str = "utf-8",
) -> Any:
    """Intent data with out-of-scope queries from three csv / tsv / jsonl files of ``text,label`` rows.

    Rows whose label is ``oos_label`` are the out-of-scope queries of their split (those of ``train`` are not used
    by the detectors, which are fitted on in-domain data only); the other labels are intent names, mapped to ids
    in sorted order. Files are read with :func:`st_contrast.data.read_records` (its validation and error rules);
    a validation or test intent that ``train`` lacks is an error.

    Returns:
        A :class:`st_contrast.data.clinc.ClincData` (as :func:`st_contrast.data.load_clinc150` gives).
    """
    from st_contrast.data.clinc import ClincData
    from st_contrast.data.reading import DataFormatError
    from st_contrast.data.records import read_records

    splits: dict[str, list[tuple[int, str, str]]] = {}
    for split, path in (("train", train), ("val", val), ("test", test)):
        kind = format or _format_of(path)
        records = read_records(
            path, kind, columns=[text_column, label_column], label_column=label_column, label_type="name",
            encoding=encoding,
        )  # fmt: skip
        names = records.label_names or []
        splits[split] = [(index, row[text_column], names[row[label_column]]) for index, row in enumerate(records)]
        splits[split + "_path"] = str(records.path)  # type: ignore[assignment]
    intents = sorted({label for _, _, label in splits["train"]} - {oos_label})
    if len(intents) < 2:
        raise DataFormatError(
            splits["train_path"], f"fewer than 2 intents besides {oos_label!r}; expected labelled in-domain queries"
        )
    ids = {name: i for i, name in enumerate(intents)}
    data = ClincData(label_names=intents, train=[], val=[], test=[], oos_train=[], oos_val=[], oos_test=[])
    for split in ("train", "val", "test"):
        for index, text, label in splits[split]:
            if label == oos_label:
                getattr(data, f"oos_{split}").append(text)
            elif label in ids:
                getattr(data, split).append((text, ids[label]))
            else:
                raise DataFormatError(
                    splits[split + "_path"],
                    f"record {index + 1}: the intent {label!r} does not occur in the training file; expected the "
                    f"training intents or the out-of-scope label {oos_label!r}",
                )
    if not data.oos_test:
        raise DataFormatError(
            splits["test_path"], f"no out-of-scope query (label {oos_label!r}); expected some to detect"
        )
    return data


def _format_of(path: str) -> str:
    suffixes = [s.lower() for s in str(path).split("/")[-1].split(".")[1:]]
    for kind in ("jsonl", "csv", "tsv"):
        if kind in suffixes:
            return kind
    raise ValueError(f"cannot tell the format of {path!r} from its name; pass --format csv, tsv or jsonl")
