from __future__ import annotations

import numpy as np
import pytest
import torch

from st_contrast.evaluation.ood import (
    GDADetector,
    LOFDetector,
    MSPDetector,
    OODFeatures,
    classification_metrics,
    evaluate_ood,
    evaluate_ood_features,
    fpr_at_tpr,
    in_domain_threshold,
    ood_metrics,
    ood_tuned_macro_threshold,
    ood_tuned_threshold,
)


def test_metrics_by_hand():
    in_scores = np.array([0.1, 0.2, 0.3, 0.4])
    ood_scores = np.array([0.35, 0.5, 0.6])
    m = ood_metrics(in_scores, ood_scores)
    # AUROC: share of (ood, in) pairs ranked correctly: 0.35 beats 3 of 4, 0.5 and 0.6 beat all 4 -> 11/12
    assert m["auroc"] == pytest.approx(11 / 12)
    # 95% of 4 in-domain scores -> all 4 accepted -> threshold 0.4 -> one OOD score (0.35) accepted
    assert m["fpr95"] == pytest.approx(1 / 3)
    # AUPR-out: ranking by score: 0.6(o) 0.5(o) 0.4(i) 0.35(o) ... -> AP = (1 + 1 + 3/4) / 3
    assert m["aupr_out"] == pytest.approx((1 + 1 + 0.75) / 3)
    # AUPR-in: ranking by -score: 0.1 0.2 0.3 (i,i,i) 0.35(o) 0.4(i) -> AP = (1 + 1 + 1 + 4/5) / 4
    assert m["aupr_in"] == pytest.approx((3 + 0.8) / 4)


def test_metrics_against_sklearn_on_random_scores():
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    in_scores, ood_scores = rng.normal(0, 1, 400), rng.normal(1.5, 1, 300)
    m = ood_metrics(in_scores, ood_scores)
    truth = np.r_[np.zeros(400), np.ones(300)]
    assert m["auroc"] == pytest.approx(roc_auc_score(truth, np.r_[in_scores, ood_scores]))
    # FPR@95TPR with in-domain as the positive class (confidence = -score), via sklearn's ROC curve
    fpr, tpr, _ = roc_curve(1 - truth, -np.r_[in_scores, ood_scores])
    assert m["fpr95"] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)])
    assert fpr_at_tpr(in_scores, ood_scores, 1.0) == pytest.approx((ood_scores <= in_scores.max()).mean())


def test_metric_input_errors():
    with pytest.raises(ValueError, match="at least one in-domain and one OOD"):
        ood_metrics(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        ood_metrics(np.array([np.nan, 1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="keep must be"):
        in_domain_threshold(np.array([1.0]), keep=1.0)


def test_thresholds():
    val_in = np.arange(100, dtype=float)
    cut = in_domain_threshold(val_in, keep=0.95)
    assert (val_in <= cut).mean() == pytest.approx(0.95, abs=0.01)
    for tune in (ood_tuned_threshold, ood_tuned_macro_threshold):
        assert tune(val_in, np.array([150.0, 200.0, 300.0])) == 99.0  # the lowest that separates the two perfectly
    # with overlap, the macro-F1 of in-domain vs OOD: 96 beats 99 (4 OOD caught, 3 in-domain lost)
    assert ood_tuned_macro_threshold(val_in, np.array([96.5, 97.5, 150.0, 200.0])) == 96.0
    with pytest.raises(ValueError, match="needs validation OOD"):
        ood_tuned_threshold(val_in, np.array([]))
    with pytest.raises(ValueError, match="threshold='ood_tuned_macro' needs validation OOD"):
        ood_tuned_macro_threshold(val_in, np.array([]))


def test_ood_tuned_is_the_official_estimate_best_threshold():
    """Issue 17's example: the official rule (best OOD-class F1) gives 0.5 where the macro-F1 rule gives 0.7."""
    val_in = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 2.0, 2.1, 2.2])
    val_ood = np.array([0.55, 1.0, 1.1])
    assert ood_tuned_threshold(val_in, val_ood) == 0.5
    assert ood_tuned_macro_threshold(val_in, val_ood) == 0.7


def _official_sweep(seen, unseen):
    """The official ``estimate_best_threshold``, re-written from its description: sweep the sorted scores, each
    passed score becoming in-domain; keep strict improvements of the OOD-class F1 (the epsilons left out)."""
    items = sorted([(x, 0) for x in seen] + [(x, 1) for x in unseen])
    tp, fp, fn = len(unseen), len(seen), 0

    def f1(tp, fp, fn):
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    best, threshold = f1(tp, fp, fn), None
    for index, (score, is_ood) in enumerate(items):
        fp, tp, fn = (fp - 1, tp, fn) if not is_ood else (fp, tp - 1, fn + 1)
        if index + 1 < len(items) and items[index + 1][0] == score:
            continue  # inside a run of ties no threshold separates them
        if f1(tp, fp, fn) > best:
            best, threshold = f1(tp, fp, fn), score
    return threshold


def test_ood_tuned_matches_the_official_sweep():
    rng = np.random.default_rng(1)
    for _ in range(20):
        val_in, val_ood = rng.normal(0, 1, 40).round(1), rng.normal(1.0, 1, 15).round(1)
        expected = _official_sweep(val_in, val_ood)
        got = ood_tuned_threshold(val_in, val_ood)
        if expected is None:  # nothing beats "everything OOD": a threshold below every score
            assert got < min(val_in.min(), val_ood.min())
        else:
            assert got == expected


def _blobs(seed=0, n_per_class=40, dim=6):
    rng = np.random.default_rng(seed)
    means = np.eye(3, dim) * 6
    x = np.concatenate([rng.normal(m, 1.0, (n_per_class, dim)) for m in means])
    y = np.repeat(np.arange(3), n_per_class)
    return x, y, means, rng


def test_gda_matches_scipy_mahalanobis_and_sklearn_covariance():
    from scipy.spatial.distance import mahalanobis
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, y, _, rng = _blobs()
    gda = GDADetector().fit(OODFeatures(x, labels=y))
    lda = LinearDiscriminantAnalysis(solver="lsqr", store_covariance=True).fit(x, y)
    np.testing.assert_allclose(gda.covariance_, lda.covariance_, rtol=1e-6, atol=1e-9)
    queries = rng.normal(0, 3, (5, x.shape[1]))
    inverse = np.linalg.inv(gda.covariance_)
    expected = np.array([[mahalanobis(q, mu, inverse) ** 2 for mu in gda.means_] for q in queries])
    np.testing.assert_allclose(gda.distances(OODFeatures(queries)), expected, rtol=1e-6)
    np.testing.assert_allclose(gda.score(OODFeatures(queries)), expected.min(1), rtol=1e-6)
    np.testing.assert_array_equal(gda.predict(OODFeatures(x)), lda.predict(x))


def test_lof_matches_sklearn_and_scores_outliers_higher():
    from sklearn.neighbors import LocalOutlierFactor

    x, y, _, rng = _blobs(1)
    lof = LOFDetector(20).fit(OODFeatures(x, labels=y))
    queries = np.concatenate([x[:5] + 0.01, rng.normal(0, 1, (5, x.shape[1])) + 30])
    reference = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(x)
    np.testing.assert_allclose(lof.score(OODFeatures(queries)), -reference.score_samples(queries))
    scores = lof.score(OODFeatures(queries))
    assert scores[5:].min() > scores[:5].max()
    with pytest.raises(ValueError, match="needs more than"):
        LOFDetector(200).fit(OODFeatures(x, labels=y))


def test_msp_scores_and_error_without_logits():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    scores = MSPDetector().fit(OODFeatures(np.zeros((2, 1)))).score(OODFeatures(np.zeros((2, 1)), logits))
    np.testing.assert_allclose(scores, [-np.exp(2) / (np.exp(2) + 2), -1 / 3])
    with pytest.raises(ValueError, match="MSP needs classifier logits"):
        MSPDetector().score(OODFeatures(np.zeros((2, 1))))


def test_classification_metrics_by_hand():
    # 3 in-domain classes; in-domain test: 4 examples, the last one rejected; OOD: 2 examples, one caught
    m = classification_metrics(
        in_labels=np.array([0, 1, 2, 2]),
        in_predictions=np.array([0, 1, 1, 2]),
        in_scores=np.array([0.1, 0.2, 0.3, 0.9]),
        ood_predictions_scores=np.array([0.8, 0.4]),
        threshold=0.5,
        num_labels=3,
    )
    assert m["in_domain_accuracy"] == pytest.approx(3 / 4)
    # OOD class: predicted OOD for {in #4, ood #1}; true OOD {ood #1, ood #2} -> P = 1/2, R = 1/2, F1 = 1/2
    assert m["ood_f1"] == pytest.approx(0.5)
    assert m["ood_recall"] == pytest.approx(0.5) and m["in_domain_kept"] == pytest.approx(0.75)
    # in-domain macro-F1 without rejection: class 0: 1, class 1: P=1/2 R=1 -> 2/3, class 2: P=1 R=1/2 -> 2/3
    assert m["in_domain_macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def _features(x, y, means, rng, logits=True):
    def logit_of(points):
        return -((points[:, None, :] - means[None]) ** 2).sum(-1) if logits else None

    train = OODFeatures(x, logit_of(x), y)
    val_x = np.concatenate([rng.normal(m, 1.0, (20, x.shape[1])) for m in means])
    val = OODFeatures(val_x, logit_of(val_x), np.repeat(np.arange(3), 20))
    test_x = np.concatenate([rng.normal(m, 1.0, (20, x.shape[1])) for m in means])
    test = OODFeatures(test_x, logit_of(test_x), np.repeat(np.arange(3), 20))
    ood_x = rng.normal(0, 1.0, (30, x.shape[1])) + np.r_[0, 0, 0, 0, 12, 12]
    return train, val, test, OODFeatures(ood_x, logit_of(ood_x))


def test_evaluate_features_separates_far_ood():
    x, y, means, rng = _blobs(2)
    train, val, test, ood = _features(x, y, means, rng)
    results = evaluate_ood_features(train, val, test, ood)
    assert set(results) == {"lof", "gda", "msp"}
    for name in ("lof", "gda"):
        assert results[name]["auroc"] > 0.99 and results[name]["fpr95"] < 0.05, (name, results[name])
        assert results[name]["in_domain_accuracy"] > 0.95
        assert 0.85 <= results[name]["in_domain_kept"] <= 1.0
    tuned = evaluate_ood_features(train, val, test, ood, val_ood=ood, threshold="ood_tuned", detectors=["gda"])
    assert tuned["gda"]["threshold"] != results["gda"]["threshold"]
    with pytest.raises(ValueError, match="needs val_ood"):
        evaluate_ood_features(train, val, test, ood, threshold="ood_tuned")
    with pytest.raises(ValueError, match="unknown OOD detector"):
        evaluate_ood_features(train, val, test, ood, detectors=["knn"])
    no_logits = evaluate_ood_features(*_features(x, y, means, rng, logits=False), detectors=["lof", "gda"])
    assert no_logits["lof"]["in_domain_accuracy"] > 0.95  # falls back to the nearest class mean


def test_evaluate_ood_end_to_end_with_a_classifier_model(tiny_model_mean, sentences):
    from st_contrast.losses import SupConOODLoss

    SupConOODLoss(tiny_model_mean, num_labels=2)
    texts = [f"{s} number {i}" for i in range(3) for s in sentences]
    train = [(t, i % 2) for i, t in enumerate(texts)]
    results = evaluate_ood(
        tiny_model_mean, train, train[:8], train[8:16], ["zz qq xx", "purple monkey dishwasher"], lof_neighbors=5
    )
    assert set(results) == {"lof", "gda", "msp"}
    for metrics in results.values():
        assert all(np.isfinite(v) for v in metrics.values())
    assert tiny_model_mean.training, "evaluation must restore the training mode"
    # the features are the model's own embeddings and logits
    from st_contrast.evaluation.ood import encode_for_ood

    embeddings, logits = encode_for_ood(tiny_model_mean, sentences[:3], batch_size=2)
    tiny_model_mean.eval()
    with torch.no_grad():
        expected = tiny_model_mean(tiny_model_mean.preprocess(sentences[:3]))
    np.testing.assert_allclose(embeddings, expected["sentence_embedding"].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, expected["logits"].numpy(), rtol=1e-4, atol=1e-5)


def test_ood_tuned_macro_threshold_matches_a_sklearn_search_with_ties():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        val_in, val_ood = rng.normal(0, 1, 50).round(1), rng.normal(1, 1, 30).round(1)
        scores, truth = np.r_[val_in, val_ood], np.r_[np.zeros(50), np.ones(30)]
        best, best_f1 = None, -1.0
        for candidate in np.unique(scores):
            f1 = f1_score(truth, scores > candidate, average="macro", zero_division=0)
            if f1 > best_f1 + 1e-12:
                best, best_f1 = candidate, f1
        assert ood_tuned_macro_threshold(val_in, val_ood) == best


@pytest.mark.parametrize("method", ["ce_supcon_rdrop", "supcon_then_ce"])
def test_clinc_example_runs_end_to_end(tiny_transformer_dir, data_dir, tmp_path, method):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "clinc_ood.py"
    spec = importlib.util.spec_from_file_location("clinc_ood_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    args = example.build_parser().parse_args(
        [
            "--method",
            method,
            "--model",
            str(tiny_transformer_dir),
            "--data-dir",
            data_dir,
            "--num-intents",
            "5",
            "--max-per-intent",
            "5",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--max-ood-test",
            "20",
            "--cpu",
            "--output-dir",
            str(tmp_path),
            "--save-model",
        ]
    )
    result = example.run_experiment(args)
    assert set(result["metrics"]) == {"lof", "gda", "msp"}
    assert result["subset"] == {
        "num_intents": 5,
        "train_examples": 25,
        "val_examples": 100,
        "test_in_domain": 150,
        "test_ood": 20,
        "subset_seed": 0,
        "max_per_intent": 5,
    }
    assert 0.0 <= result["metrics"]["gda"]["auroc"] <= 1.0
    assert "| msp |" in example.format_table(result)
    from sentence_transformers import SentenceTransformer

    reloaded = SentenceTransformer(str(tmp_path / "model"), device="cpu", trust_remote_code=True)
    assert reloaded[-1].labels is not None and len(reloaded[-1].labels) == 5


def test_linear_probe_gives_msp_logits_to_an_encoder_without_a_head(tiny_model_mean, sentences, capsys):
    from sklearn.linear_model import LogisticRegression

    from st_contrast.evaluation.ood import LinearProbe, features_of

    texts = [f"{s} number {i}" for i in range(3) for s in sentences]
    train = [(t, i % 3) for i, t in enumerate(texts)]
    ood = ["zz qq xx", "purple monkey dishwasher"]
    with pytest.raises(ValueError, match="classifier='head' but the model has no ClassifierHead"):
        evaluate_ood(tiny_model_mean, train, train[:8], train[8:16], ood, lof_neighbors=5, classifier="head")
    assert set(evaluate_ood(tiny_model_mean, train, train[:8], train[8:16], ood, lof_neighbors=5)) == {"lof", "gda"}
    results = evaluate_ood(
        tiny_model_mean, train, train[:8], train[8:16], ood, lof_neighbors=5, classifier="fit", show_progress_bar=True
    )
    assert set(results) == {"lof", "gda", "msp"}
    assert "OOD evaluation, MSP: AUROC " in capsys.readouterr().err
    # the probe is scikit-learn's logistic regression on standardised embeddings
    features = features_of(tiny_model_mean, train)
    x = features.embeddings.astype(np.float64)
    reference = LogisticRegression(max_iter=1000).fit((x - x.mean(0)) / (x.std(0) + 1e-12), features.labels)
    probe = LinearProbe().fit(features)
    np.testing.assert_allclose(
        probe.logits(features), reference.decision_function((x - x.mean(0)) / (x.std(0) + 1e-12)), rtol=1e-6
    )
    # MSP then scores with the probe's logits
    msp = MSPDetector().score(probe.with_logits(features))
    p = np.exp(probe.logits(features))
    np.testing.assert_allclose(msp, -(p / p.sum(1, keepdims=True)).max(1), rtol=1e-6)


def test_tuned_thresholds_in_evaluate_ood_features():
    x, y, _, rng = _blobs(2)
    train, val = OODFeatures(x[:60], labels=y[:60]), OODFeatures(x[60:], labels=y[60:])
    ood = OODFeatures(rng.normal(0, 1, (20, x.shape[1])) * 3)
    results = {
        mode: evaluate_ood_features(train, val, val, ood, val_ood=ood, threshold=mode, detectors=["gda"])["gda"]
        for mode in ("ood_tuned", "ood_tuned_macro")
    }
    gda = GDADetector().fit(train)
    assert results["ood_tuned"]["threshold"] == ood_tuned_threshold(gda.score(val), gda.score(ood))
    assert results["ood_tuned_macro"]["threshold"] == ood_tuned_macro_threshold(gda.score(val), gda.score(ood))
    with pytest.raises(ValueError, match="threshold must be one of in_domain, ood_tuned, ood_tuned_macro"):
        evaluate_ood_features(train, val, val, ood, threshold="best")
