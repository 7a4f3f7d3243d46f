"""st-contrast losses under sentence-transformers' loss wrappers: MatryoshkaLoss, AdaptiveLayerLoss, Matryoshka2dLoss.

Where sentence-transformers has the same loss (SimCSE is MultipleNegativesRankingLoss with ``scale = 1/τ``; the
cached forms are CachedMultipleNegativesRankingLoss), the wrapped values and gradients must equal the wrapped ST
loss's. The other losses must train under each wrapper (finite loss, non-zero encoder gradients) or refuse with a
sentence that says why.
"""

from __future__ import annotations

import math
import random

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
