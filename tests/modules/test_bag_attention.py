"""st_contrast.modules.bag_attention: selective attention over a bag's instances and the relation classifier."""

from __future__ import annotations

import json
import os

import pytest
import torch

from st_contrast.modules.bag_attention import BagAttentionClassifier


def test_attention_sums_to_one_per_bag_and_predict_is_a_probability():
    torch.manual_seed(0)
    classifier = BagAttentionClassifier(6, 4)
    instances = torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    weights = classifier.attention(instances, torch.tensor([0, 3, 1]), mask)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert bool((weights[~mask] == 0).all()) and bool((weights[mask] > 0).all())
    scores = classifier.predict(instances, mask)
    assert scores.shape == (3, 4) and bool(((scores >= 0) & (scores <= 1)).all())
    # a one-sentence bag is classified by that sentence alone, whatever the query
    single = torch.softmax(classifier.classifier(instances[2, 0]), dim=0)
    torch.testing.assert_close(scores[2], single)


def test_bag_classifier_save_load_round_trip(tmp_path):
    classifier = BagAttentionClassifier(6, 4)
    classifier.save(tmp_path)
    loaded = BagAttentionClassifier.load(tmp_path)
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(classifier.predict(x), loaded.predict(x))


def test_save_writes_a_config_and_safetensors_and_old_folders_still_load(tmp_path):
    from safetensors.torch import save_file

    classifier = BagAttentionClassifier(6, 4)
    classifier.save(tmp_path / "new")
    assert sorted(os.listdir(tmp_path / "new")) == ["bag_classifier.json", "model.safetensors"]
    with open(tmp_path / "new" / "bag_classifier.json", encoding="utf-8") as handle:
        assert json.load(handle) == {
            "embedding_dimension": 6,
            "num_relations": 4,
            "detach_query": False,
            "dropout": 0.0,
        }
    # the layout st-contrast 0.1 wrote: the same JSON, weights in bag_classifier.safetensors
    old = tmp_path / "old"
    old.mkdir()
    (old / "bag_classifier.json").write_text(json.dumps({"embedding_dimension": 6, "num_relations": 4}))
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(old / "bag_classifier.safetensors"))
    loaded = BagAttentionClassifier.load(old, device="cpu")
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(classifier.predict(x), loaded.predict(x))


def test_bad_sizes():
    with pytest.raises(ValueError, match="num_relations must be an integer >= 2"):
        BagAttentionClassifier(6, 1)
    with pytest.raises(ValueError, match="embedding_dimension must be a positive integer"):
        BagAttentionClassifier(0, 3)
