from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from st_contrast.data.relation import Bag, RelationInstance, group_bags, relation_ids
from st_contrast.evaluation.relation import (
    evaluate_relation_extraction,
    precision_recall_curve,
    relation_metrics,
    relation_scores,
)


def reference_metrics(scores, labels, na_id, top_n):
    """OpenNRE's held-out protocol written as loops."""
    pairs = []
    for b in range(scores.shape[0]):
        for r in range(scores.shape[1]):
            if r != na_id:
                pairs.append((scores[b, r], labels[b] == r))
    pairs.sort(key=lambda p: -p[0])
    facts = sum(1 for label in labels if label != na_id)
    precision, recall, hits = [], [], 0
    for k, (_, correct) in enumerate(pairs, start=1):
        hits += correct
        precision.append(hits / k)
        recall.append(hits / facts)
    auc = sum((recall[i] - recall[i - 1]) * (precision[i] + precision[i - 1]) / 2 for i in range(1, len(pairs)))
    predicted = gold = correct = 0
    for b in range(scores.shape[0]):
        prediction = int(np.argmax(scores[b]))
        predicted += prediction != na_id
        gold += labels[b] != na_id
        correct += prediction == labels[b] and labels[b] != na_id
    p, r = correct / max(predicted, 1), correct / max(gold, 1)
    out = {"pr_auc": auc, "micro_f1": 2 * p * r / (p + r) if p + r else 0.0}
    for n in top_n:
        out[f"p@{n}"] = precision[min(n, len(precision)) - 1]
    return out


@pytest.mark.parametrize("na_id", [None, 0])
def test_metrics_match_loop_reference(na_id):
    rng = np.random.default_rng(0)
    scores = rng.random((40, 5))
    labels = rng.integers(0, 5, size=40)
    ours = relation_metrics(scores, labels, na_id=na_id, top_n=(10, 30, 1000))
    expected = reference_metrics(scores, labels, na_id, (10, 30, 1000))
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value), key


def test_pr_auc_agrees_with_sklearn_auc():
    from sklearn.metrics import auc

    rng = np.random.default_rng(1)
    scores, labels = rng.random((30, 4)), rng.integers(0, 4, size=30)
    precision, recall = precision_recall_curve(scores, labels, na_id=0)
    assert relation_metrics(scores, labels, na_id=0)["pr_auc"] == pytest.approx(auc(recall, precision))


def test_perfect_and_hand_computed_scores():
    labels = np.array([1, 2, 0, 1])
    perfect = np.eye(3)[labels]
    metrics = relation_metrics(perfect, labels, na_id=0, top_n=(1, 2, 3))
    assert metrics["micro_f1"] == 1.0 and metrics["p@1"] == 1.0 and metrics["p@3"] == 1.0
    # one non-NA bag predicted NA, one NA bag predicted relation 2
    scores = np.array([[0.1, 0.8, 0.1], [0.6, 0.1, 0.3], [0.2, 0.1, 0.7], [0.1, 0.7, 0.2]])
    metrics = relation_metrics(scores, labels, na_id=0)
    # correct: bags 0 and 3; predicted non-NA: bags 0, 2, 3; gold non-NA: bags 0, 1, 3
    assert metrics["micro_precision"] == pytest.approx(2 / 3) and metrics["micro_recall"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(0.5)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="scores must be"):
        relation_metrics(np.zeros((3, 2)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="labels must be relation ids"):
        relation_metrics(np.zeros((2, 2)), np.array([0, 2]))


@pytest.fixture(scope="module")
def _encoder(tiny_transformer_dir):
    from st_contrast.modules.entity_pooling import build_relation_encoder

    return build_relation_encoder(str(tiny_transformer_dir), max_seq_length=64, device="cpu")


def test_end_to_end_scores_from_an_encoder_and_a_loss(_encoder):
    from st_contrast.losses import CILLoss

    model = copy.deepcopy(_encoder)
    instances = [
        RelationInstance(("paris", "is", "in", "france"), (0, 1), (3, 4), "in", uid="0"),
        RelationInstance(("rome", "lies", "in", "italy"), (0, 1), (3, 4), "in", uid="1"),
        RelationInstance(("anna", "works", "for", "acme"), (0, 1), (3, 4), "works_for", uid="2"),
        RelationInstance(("bob", "met", "carl", "today"), (0, 1), (2, 3), "none", uid="3"),
    ]
    rel2id = relation_ids(instances, na="none")
    loss = CILLoss(model, num_relations=len(rel2id), mlm_weight=0.0)
    bags = [
        Bag(("a",), "in", instances[:2]),
        Bag(("b",), "works_for", [instances[2]]),
        Bag(("c",), "none", [instances[3]]),
    ]
    from st_contrast.data.relation import bag_texts

    scores = relation_scores(model, loss, bag_texts(bags))
    assert scores.shape == (3, 3) and bool(((scores >= 0) & (scores <= 1)).all())
    # the same scores by hand: one-sentence bags are softmax(W x + b)
    x = model.encode(bag_texts(bags)[1], convert_to_tensor=True).clone()
    with torch.no_grad():
        torch.testing.assert_close(scores[1], torch.softmax(loss.bag_classifier.classifier(x[0]), dim=0))
    metrics = evaluate_relation_extraction(model, loss, bags, rel2id, na="none", top_n=(1,))
    assert metrics["num_bags"] == 3 and 0.0 <= metrics["pr_auc"] <= 1.0 and "p@1" in metrics
    with pytest.raises(ValueError, match="unknown relation 'other'"):
        evaluate_relation_extraction(model, loss, [Bag(("d",), "other", [instances[0]])], rel2id)
    with pytest.raises(ValueError, match="empty bag"):
        relation_scores(model, loss, [[]])


def _long_instance(relation="in", uid="long", n=40):
    context = "the cat sat on the mat a man is playing a guitar".split()
    words = tuple(context[i % len(context)] for i in range(n - 3)) + ("paris", "in", "france")
    return RelationInstance(words, (n - 3, n - 2), (n - 1, n), relation, uid=uid)


def test_max_words_default_fits_the_model_so_markers_survive(_encoder):
    """Issue 19: the default crops each sentence to the encoder's max_seq_length, not to a fixed 64 words."""
    from st_contrast.data.relation import bag_texts
    from st_contrast.evaluation.relation import fitted_bag_texts
    from st_contrast.losses import CILLoss
    from st_contrast.modules.entity_pooling import ENTITY_MARKERS

    model = copy.deepcopy(_encoder)
    model.max_seq_length = 24
    bags = [Bag(("a",), "in", [_long_instance()]), Bag(("b",), "none", [_long_instance("none", "b", 30)])]
    rel2id = relation_ids(bags, na="none")
    loss = CILLoss(model, num_relations=len(rel2id), mlm_weight=0.0)
    texts = fitted_bag_texts(bags, model)
    for (text,) in texts:
        assert all(marker in text for marker in ENTITY_MARKERS)
        assert len(model.tokenizer(text)["input_ids"]) <= 24
    assert "[E1] paris [/E1] in [E2] france [/E2]" in texts[0][0]
    assert len(texts[0][0].split()) > 10  # cropped only as far as needed, not to the entities alone
    metrics = evaluate_relation_extraction(model, loss, bags, rel2id, na="none", top_n=(1,))
    assert metrics["num_bags"] == 2
    with pytest.raises(ValueError, match="marker"):  # the old fixed cropping lets truncation cut the markers
        relation_scores(model, loss, bag_texts(bags, max_words=64))


class _WordModel:
    """Embeds a text as counts of a few words (separable relations), for fitting tests."""

    words = ("in", "at", "paris", "rome", "anna", "bob")

    def encode(self, texts, convert_to_tensor=True, **kwargs):
        return torch.tensor([[float(t.split().count(w)) for w in self.words] for t in texts])


def test_fit_bag_classifier_is_a_seeded_probe():
    from st_contrast.data.relation import bag_texts
    from st_contrast.evaluation.relation import fit_bag_classifier

    model = _WordModel()
    names = [("paris", "france"), ("rome", "italy"), ("anna", "acme"), ("bob", "carl")]
    relations = ["in", "in", "works_for", "works_for"]
    instances = [
        RelationInstance((h, "is", "in" if r == "in" else "at", t), (0, 1), (3, 4), r, uid=str(i))
        for i, ((h, t), r) in enumerate(zip(names, relations))
    ]
    bags = group_bags(instances)
    rel2id = relation_ids(instances)
    state = torch.random.get_rng_state()
    first = fit_bag_classifier(model, bags, rel2id, epochs=200, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state), "the global random state is left alone"
    second = fit_bag_classifier(model, bags, rel2id, epochs=200, seed=3)
    torch.testing.assert_close(first.classifier.weight, second.classifier.weight, rtol=0, atol=0)
    scores = relation_scores(model, first, bag_texts(bags))
    assert (scores.argmax(1).numpy() == [rel2id[b.relation] for b in bags]).all()  # it fits its training bags
    assert float(scores.max(1).values.min()) > 0.9
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit_bag_classifier(model, bags, rel2id, epochs=0)
