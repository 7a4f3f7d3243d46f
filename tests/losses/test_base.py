"""st_contrast.losses._base: what every loss shares (self.model, input checks, config keys, citation)."""

from __future__ import annotations

import pytest

import st_contrast.losses as losses
from st_contrast.losses._base import ContrastiveLoss


@pytest.mark.parametrize("name", sorted(n for n in losses.__all__ if n.endswith("Loss")))
def test_every_loss_is_a_contrastive_loss_with_a_citation(name):
    cls = getattr(losses, name)
    assert issubclass(cls, ContrastiveLoss)
    assert "@inproceedings" in cls.CITATION or "@article" in cls.CITATION
    assert cls.config_keys, f"{name} reports no settings"


def test_base_gives_model_config_and_citation(echo_model):
    class Toy(ContrastiveLoss):
        config_keys = ("temperature",)
        CITATION = "@article{toy}"

        def __init__(self, model, temperature=0.1, check_inputs=True):
            super().__init__(model, check_inputs)
            self.temperature = temperature

    toy = Toy(echo_model, 0.3, check_inputs=False)
    assert toy.model is echo_model and dict(toy.named_children())["model"] is echo_model
    assert toy.get_config_dict() == {"temperature": 0.3}
    assert toy.citation == "@article{toy}"
    assert toy.check_inputs is False
    toy.check_texts([{"input_ids": None}])  # checks off: nothing is looked at


def test_config_dicts_of_losses(tiny_model):
    from st_contrast.losses import CachedSimCSELoss, ConSERTLoss, SimCSELoss

    assert SimCSELoss(tiny_model, temperature=0.1).get_config_dict() == {
        "temperature": 0.1,
        "hard_negative_weight": 0.0,
        "gather_across_devices": False,
        "projection": "none",
    }
    cached = CachedSimCSELoss(tiny_model, mini_batch_size=4)
    assert cached.get_config_dict()["mini_batch_size"] == 4 and "gao2021gradcache" in cached.citation
    assert "gao2021simcse" in cached.citation
    consert = ConSERTLoss(tiny_model).get_config_dict()
    assert consert["view1"] == "FeatureCutoff(rate=0.2, seed=None)" and consert["supervised_loss"] is None
    assert consert["temperature"] == 0.1 and consert["pooling"] == "model"


@pytest.mark.slow  # a fresh interpreter that builds a model
def test_no_deprecated_sentence_transformers_import_path(tmp_path):
    """Building the tiny models and every loss that imports ST modules uses ST's current paths (no
    ``sentence_transformers.models``), checked in a fresh interpreter so no earlier import hides a warning."""
    import subprocess
    import sys

    code = f"""
import warnings
warnings.filterwarnings("error", category=DeprecationWarning, message=".*sentence_transformers.*")
warnings.filterwarnings("error", category=FutureWarning, message=".*sentence_transformers.*")
from st_contrast.testing import build_tiny_sentence_transformer
from st_contrast.losses import SimCSELoss, SupConOODLoss
from st_contrast.modules.entity_pooling import build_relation_encoder
model = build_tiny_sentence_transformer({str(tmp_path / "m")!r}, pooling="cls")
SimCSELoss(model, projection="model")
SupConOODLoss(model, num_labels=2)
build_relation_encoder(model)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
