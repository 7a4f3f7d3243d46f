"""st_contrast.modules.classifier: the classification head inside a SentenceTransformer."""

from __future__ import annotations

import pytest
import torch

from st_contrast.modules.classifier import (
    ClassifierHead,
    ensure_classifier_head,
    find_classifier_head,
    logits_from_output,
)


def test_logits_are_a_linear_map_of_the_sentence_embedding():
    head = ClassifierHead(4, 3, dropout=0.0).eval()
    x = torch.randn(2, 4)
    out = head({"sentence_embedding": x})
    torch.testing.assert_close(out["logits"], x @ head.classifier.weight.T + head.classifier.bias)
    assert torch.equal(out["sentence_embedding"], x), "the embedding is left as it is (LOF and GDA read it)"


def test_bad_arguments():
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        ClassifierHead(0, 3)
    with pytest.raises(ValueError, match="num_labels must be an integer >= 2"):
        ClassifierHead(4, 1)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        ClassifierHead(4, 3, dropout=1.0)
    with pytest.raises(ValueError, match="labels names 2 classes but num_labels is 3"):
        ClassifierHead(4, 3, labels=["a", "b"])
    with pytest.raises(ValueError, match="needs classification logits"):
        logits_from_output({"sentence_embedding": torch.zeros(1)}, "SomeLoss")


def test_ensure_appends_once_and_refuses_a_different_size(tiny_model_mean):
    assert find_classifier_head(tiny_model_mean) is None
    with pytest.raises(ValueError, match="num_labels .* is required"):
        ensure_classifier_head(tiny_model_mean, None)
    head = ensure_classifier_head(tiny_model_mean, 3, labels=["a", "b", "c"])
    assert tiny_model_mean[-1] is head and head.in_features == tiny_model_mean.get_embedding_dimension()
    assert ensure_classifier_head(tiny_model_mean, None) is head and ensure_classifier_head(tiny_model_mean, 3) is head
    with pytest.raises(ValueError, match="already has a ClassifierHead with 3 classes"):
        ensure_classifier_head(tiny_model_mean, 4)


def test_save_and_load_round_trip(tmp_path):
    head = ClassifierHead(4, 3, dropout=0.2, labels=["x", "y", "z"])
    head.save(str(tmp_path))
    loaded = ClassifierHead.load(str(tmp_path))
    assert (loaded.num_labels, loaded.dropout, loaded.labels) == (3, 0.2, ["x", "y", "z"])
    torch.testing.assert_close(loaded.classifier.weight, head.classifier.weight)
