"""st-contrast losses under sentence-transformers' loss wrappers: MatryoshkaLoss, AdaptiveLayerLoss, Matryoshka2dLoss.

Where sentence-transformers has the same loss (SimCSE is MultipleNegativesRankingLoss with ``scale = 1/τ``; the
cached forms are CachedMultipleNegativesRankingLoss), the wrapped values and gradients must equal the wrapped ST
loss's. The other losses must train under each wrapper (finite loss, non-zero encoder gradients) or refuse with a
sentence that says why.
"""

from __future__ import annotations

import math
import random
import warnings

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

from st_contrast.losses import CachedSimCSELoss, CachedSupConLoss, SimCSELoss, SupConLoss

TAU = 0.05
DIMS = [32, 16]


def _wrap(kind: str, model, loss):
    if kind == "matryoshka":
        return st_losses.MatryoshkaLoss(model, loss, DIMS)
    if kind == "adaptive":
        return st_losses.AdaptiveLayerLoss(model, loss)
    return st_losses.Matryoshka2dLoss(model, loss, DIMS)


def _run(model, loss, features, labels=None, seed=0):
    """Loss value and the encoder's gradients, same seeds for every run (AdaptiveLayerLoss samples its layers with
    Python's ``random``)."""
    random.seed(seed)
    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    value = loss([dict(f) for f in features], labels)
    if isinstance(value, dict):
        value = sum(value.values())
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return value.detach(), grads


def _assert_same(expected, actual):
    torch.testing.assert_close(actual[0], expected[0], atol=1e-5, rtol=1e-5)
    assert set(actual[1]) == set(expected[1])
    assert sum(g.abs().sum() for g in expected[1].values()) > 0, "gradients must not all be zero"
    for name, grad in expected[1].items():
        torch.testing.assert_close(actual[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def _pairs(model, sentences):
    return [model.preprocess(sentences), model.preprocess(sentences[1:] + sentences[:1])]


@pytest.mark.parametrize("kind", ["matryoshka", "adaptive", "2d"])
def test_simcse_under_each_wrapper_equals_the_wrapped_mnrl(tiny_model, sentences, kind):
    tiny_model.eval()  # no dropout: the two runs must see the same function
    features = _pairs(tiny_model, sentences)
    expected = _run(
        tiny_model, _wrap(kind, tiny_model, st_losses.MultipleNegativesRankingLoss(tiny_model, 1 / TAU)), features
    )
    actual = _run(tiny_model, _wrap(kind, tiny_model, SimCSELoss(tiny_model, temperature=TAU)), features)
    _assert_same(expected, actual)


def test_unsupervised_simcse_under_adaptive_layer_loss_keeps_two_dropout_views(tiny_model, sentences):
    """One column, two dropout views (the KeyError 'all_layer_embeddings' of issue 19): at every layer the loss
    sees two different views, the two halves of one doubled forward, not one pass twice."""
    tiny_model.train()
    features = [tiny_model.preprocess(sentences)]
    inner = SimCSELoss(tiny_model, temperature=TAU)
    seen = []
    compute = inner.compute_loss_from_embeddings

    def spy(embeddings, labels=None):
        seen.append(not torch.allclose(embeddings[0], embeddings[1]))
        return compute(embeddings, labels)

    inner.compute_loss_from_embeddings = spy
    loss = st_losses.AdaptiveLayerLoss(tiny_model, inner, n_layers_per_step=-1)
    value, grads = _run(tiny_model, loss, features, seed=4)
    layers = tiny_model[0].auto_model.config.num_hidden_layers + 1  # the embedding layer's output counts
    assert seen == [True] * layers, seen
    assert math.isfinite(value.item()) and sum(g.abs().sum() for g in grads.values()) > 0


def test_cached_simcse_under_matryoshka_equals_the_wrapped_cached_mnrl(tiny_model, sentences):
    tiny_model.eval()
    features = _pairs(tiny_model, sentences)
    reference = st_losses.CachedMultipleNegativesRankingLoss(tiny_model, 1 / TAU, mini_batch_size=3)
    expected = _run(tiny_model, _wrap("matryoshka", tiny_model, reference), features)
    actual = _run(
        tiny_model, _wrap("matryoshka", tiny_model, CachedSimCSELoss(tiny_model, TAU, mini_batch_size=3)), features
    )
    _assert_same(expected, actual)


def test_cached_simcse_under_matryoshka_equals_uncached(tiny_model, sentences):
    """The backward crash of issue 19: MatryoshkaLoss(CachedSimCSELoss) trains, with MatryoshkaLoss(SimCSELoss)'s
    gradients."""
    tiny_model.eval()
    features = [tiny_model.preprocess(sentences)]
    expected = _run(tiny_model, _wrap("matryoshka", tiny_model, SimCSELoss(tiny_model)), features)
    actual = _run(
        tiny_model, _wrap("matryoshka", tiny_model, CachedSimCSELoss(tiny_model, mini_batch_size=3)), features
    )
    _assert_same(expected, actual)


def test_cached_supcon_under_matryoshka_equals_uncached(tiny_model, sentences):
    tiny_model.eval()
    features = _pairs(tiny_model, sentences)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    expected = _run(tiny_model, _wrap("matryoshka", tiny_model, SupConLoss(tiny_model)), features, labels)
    cached = CachedSupConLoss(tiny_model, mini_batch_size=3)
    actual = _run(tiny_model, _wrap("matryoshka", tiny_model, cached), features, labels)
    _assert_same(expected, actual)


@pytest.mark.parametrize("cached", [False, True])
def test_cached_losses_warn_under_adaptive_layer_loss_as_cached_mnrl_does(tiny_model, cached):
    st_loss = st_losses.CachedMultipleNegativesRankingLoss(tiny_model)
    with pytest.warns(
        UserWarning, match="AdaptiveLayerLoss is not compatible with CachedMultipleNegativesRankingLoss"
    ):
        st_losses.AdaptiveLayerLoss(tiny_model, st_loss)
    loss = CachedSimCSELoss(tiny_model) if cached else CachedSupConLoss(tiny_model)
    with pytest.warns(UserWarning, match=f"AdaptiveLayerLoss is not compatible with {type(loss).__name__}"):
        st_losses.AdaptiveLayerLoss(tiny_model, loss)


def test_mlp_projection_refuses_matryoshka_and_works_under_adaptive_layers(tiny_model, sentences):
    features = _pairs(tiny_model, sentences)
    with pytest.raises(ValueError, match=r"projection='mlp'\) cannot train under MatryoshkaLoss.*train-only MLP head"):
        st_losses.MatryoshkaLoss(tiny_model, CachedSimCSELoss(tiny_model, projection="mlp"), DIMS)
    wrapped = st_losses.MatryoshkaLoss(tiny_model, SimCSELoss(tiny_model, projection="mlp"), DIMS)
    with pytest.raises(ValueError, match=r"cannot train under MatryoshkaLoss.*16-wide embeddings, the head takes 32"):
        wrapped([dict(f) for f in features], None)
    value, grads = _run(
        tiny_model, st_losses.AdaptiveLayerLoss(tiny_model, SimCSELoss(tiny_model, projection="mlp")), features
    )
    assert math.isfinite(value.item()) and grads


# ---------------------------------------------------------------------------------------------
# every other loss under each wrapper: trains (finite loss, non-zero encoder gradients) or refuses clearly
# ---------------------------------------------------------------------------------------------

LABELS = [0, 1, 2, 0, 1, 2, 0, 1]


def _declutr_columns(model):
    from tests.losses.test_cached import _declutr_rows

    rows = _declutr_rows()
    return [model.preprocess([row[c] for row in rows]) for c in range(len(rows[0]))]


def _cil_case(tiny_transformer_dir):
    from st_contrast.data.relation import cil_dataset
    from st_contrast.losses import CILLoss
    from st_contrast.modules.entity_pooling import build_relation_encoder
    from tests.losses.test_cil import _rows

    model = build_relation_encoder(str(tiny_transformer_dir), max_seq_length=64, device="cpu")
    bags, rel2id, view = _rows()
    dataset = cil_dataset(bags, rel2id, 2, augment=view, max_words=12)
    columns = [c for c in dataset.column_names if c != "label"]
    features = [model.preprocess(dataset[c]) for c in columns]
    return model, CILLoss(model, num_relations=len(rel2id), warmup_steps=0), features, torch.tensor(dataset["label"])


def _case(name, tiny_model, tiny_model_mean, tiny_transformer_dir, sentences):
    """(model, loss, features, labels) for one loss on a small batch."""
    from st_contrast import losses as ours
    from tests.losses.test_cline import ANTONYM, ORIGINAL, SYNONYM

    labels = torch.tensor(LABELS)
    one = [tiny_model.preprocess(sentences)]
    if name == "SelfGuidedContrastiveLoss":
        return tiny_model, ours.SelfGuidedContrastiveLoss(tiny_model, projection_dim=32), one, None
    if name == "ConSERTLoss":
        return tiny_model, ours.ConSERTLoss(tiny_model), one, None
    if name == "CLINELoss":
        columns = [tiny_model.preprocess(c) for c in (ORIGINAL, SYNONYM, ANTONYM)]
        return tiny_model, ours.CLINELoss(tiny_model), columns, None
    if name in ("DeCLUTRLoss", "CachedDeCLUTRLoss"):
        kwargs = {"mini_batch_size": 5} if name.startswith("Cached") else {}
        return tiny_model_mean, getattr(ours, name)(tiny_model_mean, **kwargs), _declutr_columns(tiny_model_mean), None
    if name == "SupConLoss":
        return tiny_model, ours.SupConLoss(tiny_model, dropout_views=True), one, labels
    if name == "SupConOODLoss":
        return (
            tiny_model_mean,
            ours.SupConOODLoss(tiny_model_mean, num_labels=3, rdrop_alpha=1.0),
            [tiny_model_mean.preprocess(sentences)],
            labels,
        )
    if name == "RDropLoss":
        return (
            tiny_model_mean,
            ours.RDropLoss(tiny_model_mean, num_labels=3),
            [tiny_model_mean.preprocess(sentences)],
            labels,
        )
    if name == "CILLoss":
        return _cil_case(tiny_transformer_dir)
    raise AssertionError(name)


OTHER_LOSSES = [
    "SelfGuidedContrastiveLoss",
    "ConSERTLoss",
    "CLINELoss",
    "DeCLUTRLoss",
    "CachedDeCLUTRLoss",
    "SupConLoss",
    "SupConOODLoss",
    "RDropLoss",
    "CILLoss",
]


# loss -> {wrapper: what the refusal says}; Matryoshka2dLoss runs both wrappers, so it is refused by either
REFUSED = {
    "SelfGuidedContrastiveLoss": {"matryoshka": "does not truncate"},
    "ConSERTLoss": {"adaptive": "views are built in new feature dicts"},
    "CLINELoss": {"adaptive": "masks and replaces tokens anew"},
    "DeCLUTRLoss": {"adaptive": "masks the anchors anew"},
    "CachedDeCLUTRLoss": {"adaptive": "masks the anchors anew"},
    "SupConOODLoss": {"matryoshka": "classifier reads the sentence embedding", "adaptive": "adversarial view"},
    "RDropLoss": {"matryoshka": "logits, which the wrapper does not truncate"},
    "CILLoss": {"matryoshka": "bag-attention classifier takes full-width embeddings"},
}
_WRAPPER_NAMES = {"matryoshka": "MatryoshkaLoss", "adaptive": "AdaptiveLayerLoss"}


@pytest.mark.parametrize("kind", ["matryoshka", "adaptive", "2d"])
@pytest.mark.parametrize("name", OTHER_LOSSES)
def test_every_loss_trains_under_each_wrapper_or_refuses(
    name, kind, tiny_model, tiny_model_mean, tiny_transformer_dir, sentences
):
    model, inner, features, labels = _case(name, tiny_model, tiny_model_mean, tiny_transformer_dir, sentences)
    dims = [model.get_embedding_dimension(), model.get_embedding_dimension() // 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AdaptiveLayerLoss warns about cached losses (tested above)
        wrapped = {
            "matryoshka": lambda: st_losses.MatryoshkaLoss(model, inner, dims),
            "adaptive": lambda: st_losses.AdaptiveLayerLoss(model, inner),
            "2d": lambda: st_losses.Matryoshka2dLoss(model, inner, dims),
        }[kind]()
    model.train()
    refusals = REFUSED.get(name, {})
    refused = [k for k in refusals if kind in (k, "2d")]
    if refused:
        pattern = "|".join(rf"{name} cannot train under {_WRAPPER_NAMES[k]} .*{refusals[k]}" for k in refused)
        with pytest.raises(ValueError, match=pattern):
            wrapped([dict(f) for f in features], labels)
        return
    value, grads = _run(model, wrapped, features, labels)
    assert math.isfinite(value.item())
    assert any(n.startswith("0.") and g.abs().sum() > 0 for n, g in grads.items())


@pytest.mark.parametrize("case", ["matryoshka-cached-simcse", "adaptive-simcse", "2d-supcon"])
def test_trainer_two_steps_under_wrappers(tiny_model, sentences, tmp_path, case):
    """The issue-19 crashes, through the Trainer: two optimiser steps that change the encoder."""
    from datasets import Dataset

    from tests.training_utils import trainer_two_steps

    if case == "matryoshka-cached-simcse":
        loss = st_losses.MatryoshkaLoss(tiny_model, CachedSimCSELoss(tiny_model, mini_batch_size=3), DIMS)
        dataset = Dataset.from_dict({"sentence": sentences})
    elif case == "adaptive-simcse":
        loss = st_losses.AdaptiveLayerLoss(tiny_model, SimCSELoss(tiny_model))
        dataset = Dataset.from_dict({"sentence": sentences})
    else:
        loss = st_losses.Matryoshka2dLoss(tiny_model, SupConLoss(tiny_model, dropout_views=True), DIMS)
        dataset = Dataset.from_dict({"sentence": sentences, "label": LABELS})
    changed = trainer_two_steps(tiny_model, loss, dataset, tmp_path)
    assert any(name.startswith("model.0.") for name in changed), changed


@pytest.mark.parametrize("cached", [False, True])
def test_column_merging_follows_sentence_transformers_switch(tiny_model, sentences, cached):
    """One forward over both columns normally; one per column under ST's column_merging_disabled()."""
    from sentence_transformers.base.losses import column_merging_disabled

    loss = CachedSimCSELoss(tiny_model, mini_batch_size=64) if cached else SimCSELoss(tiny_model)
    sizes = []
    forward = tiny_model.forward

    def spy(features, **kwargs):
        sizes.append(features["input_ids"].shape[0])
        return forward(features, **kwargs)

    tiny_model.forward = spy
    features = _pairs(tiny_model, sentences)
    loss([dict(f) for f in features], None).backward()
    assert sizes == [2 * len(sentences)] * (2 if cached else 1)  # the cached loss embeds twice (GradCache)
    sizes.clear()
    with column_merging_disabled():
        loss([dict(f) for f in features], None).backward()
    assert sizes == [len(sentences)] * (4 if cached else 2)
