from __future__ import annotations

import pytest
import torch

from st_contrast.losses import CachedSimCSELoss, SimCSELoss
from tests.conftest import echo_features


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _columns(model, sentences, n_columns):
    texts = [sentences[i:] + sentences[:i] for i in range(n_columns)]
    return [model.preprocess(t) for t in texts]


def _run(loss, features, seed=0):
    torch.manual_seed(seed)
    loss.model.zero_grad(set_to_none=True)
    value = loss([dict(f) for f in features], None)
    value.backward()
    return value.detach(), _grads(loss.model)


def _assert_same(reference, cached):
    torch.testing.assert_close(cached[0], reference[0], atol=1e-5, rtol=1e-5)
    assert set(reference[1]) == set(cached[1])
    assert sum(g.abs().sum() for g in reference[1].values()) > 0, "reference gradients must not be zero"
    for name, grad in reference[1].items():
        torch.testing.assert_close(cached[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def _assert_leaf_gradients_match(run_reference, run_cached, leaves):
    """``run_reference()`` and ``run_cached()`` each return a loss over ``leaves``: equal values, and equal
    (non-zero) gradients on every leaf."""
    reference = run_reference()
    reference.backward()
    expected = [leaf.grad.clone() for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    value = run_cached()
    value.backward()
    torch.testing.assert_close(value, reference.detach())
    for leaf, grad in zip(leaves, expected):
        assert grad.abs().sum() > 0
        torch.testing.assert_close(leaf.grad, grad)


@pytest.mark.parametrize("n_columns", [1, 2, 3])
def test_exact_gradients_without_dropout_any_mini_batch(tiny_model, sentences, n_columns):
    tiny_model.eval()
    features = _columns(tiny_model, sentences, n_columns)
    reference = _run(SimCSELoss(tiny_model, hard_negative_weight=0.5), features)
    cached = _run(CachedSimCSELoss(tiny_model, hard_negative_weight=0.5, mini_batch_size=3), features)
    _assert_same(reference, cached)


def test_exact_gradients_with_dropout_when_one_mini_batch_covers_the_batch(tiny_model, sentences):
    """Same seed, same random stream: the dropout views (unsupervised SimCSE) are the same as uncached."""
    tiny_model.train()
    features = _columns(tiny_model, sentences, 1)
    reference = _run(SimCSELoss(tiny_model), features, seed=3)
    cached = _run(CachedSimCSELoss(tiny_model, mini_batch_size=2 * len(sentences)), features, seed=3)
    _assert_same(reference, cached)


def test_dropout_masks_are_replayed_in_the_second_pass(tiny_model, sentences):
    tiny_model.train()
    loss = CachedSimCSELoss(tiny_model, mini_batch_size=3)
    seen = []
    encode = loss._encode

    def recording(features):
        out = encode(features)
        seen.append(out.detach().clone())
        return out

    loss._encode = recording
    value = loss(_columns(tiny_model, sentences, 1), None)
    first_pass = list(seen)
    seen.clear()
    value.backward()
    assert len(first_pass) == len(seen) == 6  # 16 rows in chunks of 3
    for a, b in zip(first_pass, seen):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(
        first_pass[0], tiny_model.eval()(_columns(tiny_model, sentences[:3], 1)[0])["sentence_embedding"]
    ), "dropout must be active, or this test proves nothing"


def test_memory_is_bounded_by_the_mini_batch(tiny_model, sentences, forward_spy):
    loss = CachedSimCSELoss(tiny_model, mini_batch_size=4)
    spy = forward_spy(tiny_model)
    loss(_columns(tiny_model, sentences, 3), None).backward()
    assert spy.sizes and max(spy.sizes) <= 4 and sum(spy.sizes) == 2 * 3 * len(sentences)


def test_upstream_gradient_scales_the_cached_gradients(tiny_model, sentences):
    tiny_model.eval()
    features = _columns(tiny_model, sentences, 2)
    loss = CachedSimCSELoss(tiny_model, mini_batch_size=5)
    _, full = _run(loss, features)
    tiny_model.zero_grad(set_to_none=True)
    (loss([dict(f) for f in features], None) * 0.25).backward()
    for name, grad in _grads(tiny_model).items():
        torch.testing.assert_close(grad, full[name] * 0.25, atol=1e-6, rtol=1e-4)


def test_gather_matches_uncached_with_fake_group(echo_model, fake_process_group):
    torch.manual_seed(0)
    others = {0: [torch.randn(4, 8), torch.randn(4, 8)]}
    leaves = [torch.randn(4, 8, requires_grad=True) for _ in range(2)]

    def run(loss):
        fake_process_group(rank=1, world_size=2, others={0: others[0]})
        return loss(echo_features(*leaves), None)

    _assert_leaf_gradients_match(
        lambda: run(SimCSELoss(echo_model, gather_across_devices=True)),
        lambda: run(CachedSimCSELoss(echo_model, gather_across_devices=True, mini_batch_size=3)),
        leaves,
    )


def test_no_grad_evaluation_returns_the_loss(tiny_model, sentences):
    tiny_model.eval()
    features = _columns(tiny_model, sentences, 2)
    with torch.no_grad():
        cached = CachedSimCSELoss(tiny_model, mini_batch_size=3)([dict(f) for f in features], None)
        plain = SimCSELoss(tiny_model)([dict(f) for f in features], None)
    torch.testing.assert_close(cached, plain, atol=1e-6, rtol=1e-5)


def test_bad_mini_batch_size(echo_model):
    with pytest.raises(ValueError, match="mini_batch_size must be a positive integer"):
        CachedSimCSELoss(echo_model, mini_batch_size=0)


def test_trainer_two_steps_trains_the_mlp_head(tiny_model, sentences, tmp_path):
    from datasets import Dataset

    from tests.training_utils import fit_two_steps, trainer_two_steps

    loss = CachedSimCSELoss(tiny_model, projection="mlp", mini_batch_size=3)
    changed = trainer_two_steps(tiny_model, loss, Dataset.from_dict({"sentence": sentences}), tmp_path)
    assert any(n.startswith("projection_head.") for n in changed) and any(n.startswith("model.") for n in changed)
    from sentence_transformers import InputExample

    changed = fit_two_steps(tiny_model, loss, [InputExample(texts=[s, s]) for s in sentences])
    assert any(n.startswith("model.") for n in changed)
    assert loss.get_config_dict()["mini_batch_size"] == 3 and "gao2021gradcache" in loss.citation


def test_second_pass_reenters_the_callers_autocast(tiny_model, sentences):
    """The Trainer (bf16/fp16) and AMP loops call backward() outside autocast: the re-embedding in the
    backward hook must still run under the first pass's autocast, or its embeddings (and so the gradients)
    are not those the loss was computed from, and it runs in float32 on a GPU."""
    tiny_model.eval()
    loss = CachedSimCSELoss(tiny_model, mini_batch_size=3)
    seen = []
    encode = loss._encode

    def recording(features):
        seen.append((torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return encode(features)

    loss._encode = recording
    features = _columns(tiny_model, sentences, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss([dict(f) for f in features], None)
    value.backward()  # outside autocast, as the Trainer does
    first = [s for s in seen if not s[0]]
    second = [s for s in seen if s[0]]
    assert first and len(second) == len(first)
    assert all(s[1:] == (True, torch.bfloat16) for s in first + second), seen
    assert not torch.is_autocast_enabled("cpu"), "the caller's autocast state must be restored afterwards"


def test_gradients_under_autocast_match_uncached(tiny_model, sentences):
    tiny_model.eval()
    features = _columns(tiny_model, sentences, 1)

    def run(loss):
        tiny_model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss([dict(f) for f in features], None)
        value.backward()
        return value.detach(), _grads(tiny_model)

    reference = run(SimCSELoss(tiny_model))
    cached = run(CachedSimCSELoss(tiny_model, mini_batch_size=2 * len(sentences)))
    torch.testing.assert_close(cached[0], reference[0], atol=1e-6, rtol=1e-6)
    assert sum(g.abs().sum() for g in reference[1].values()) > 0
    for name, grad in reference[1].items():
        torch.testing.assert_close(cached[1][name], grad, atol=1e-6, rtol=1e-5, msg=name)


# ---------------------------------------------------------------------------------------------
# CachedSupConLoss
# ---------------------------------------------------------------------------------------------

SUPCON_LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


@pytest.mark.parametrize(
    ("variant", "n_columns", "dropout_views"),
    [("khosla", 1, False), ("khosla", 1, True), ("khosla", 2, False), ("zeng", 2, False), ("zeng", 1, True)],
)
def test_cached_supcon_exact_gradients_without_dropout_any_mini_batch(
    tiny_model, sentences, variant, n_columns, dropout_views
):
    from st_contrast.losses import CachedSupConLoss, SupConLoss

    tiny_model.eval()
    features = _columns(tiny_model, sentences, n_columns)
    labels = SUPCON_LABELS[: len(sentences)]

    def run(loss):
        tiny_model.zero_grad(set_to_none=True)
        value = loss([dict(f) for f in features], labels)
        value.backward()
        return value.detach(), _grads(tiny_model)

    kwargs = dict(variant=variant, dropout_views=dropout_views, temperature=0.2)
    reference = run(SupConLoss(tiny_model, **kwargs))
    cached_loss = CachedSupConLoss(tiny_model, mini_batch_size=3, **kwargs)
    cached = run(cached_loss)
    _assert_same(reference, cached)
    assert cached_loss.total_anchors == len(sentences) * (2 if dropout_views or n_columns == 2 else 1)


def test_cached_supcon_exact_gradients_with_dropout_views(tiny_model, sentences):
    from st_contrast.losses import CachedSupConLoss, SupConLoss

    tiny_model.train()
    features = _columns(tiny_model, sentences, 1)
    labels = SUPCON_LABELS[: len(sentences)]

    def run(loss):
        torch.manual_seed(5)
        tiny_model.zero_grad(set_to_none=True)
        value = loss([dict(f) for f in features], labels)
        value.backward()
        return value.detach(), _grads(tiny_model)

    reference = run(SupConLoss(tiny_model, dropout_views=True))
    cached = run(CachedSupConLoss(tiny_model, dropout_views=True, mini_batch_size=2 * len(sentences)))
    _assert_same(reference, cached)


def test_cached_supcon_label_errors_come_before_any_encoding(tiny_model, sentences):
    from st_contrast.losses import CachedSupConLoss

    loss = CachedSupConLoss(tiny_model, mini_batch_size=3)
    calls = []
    loss._encode = lambda features: calls.append(1)
    features = [tiny_model.preprocess(sentences)]
    with pytest.raises(ValueError, match="same label"):
        loss(features, torch.zeros(len(sentences), dtype=torch.long))
    with pytest.raises(ValueError, match="label"):
        loss(features, None)
    assert calls == []
    with pytest.raises(ValueError, match="mini_batch_size must be a positive integer"):
        CachedSupConLoss(tiny_model, mini_batch_size=-1)
    with pytest.raises(ValueError, match="1 text column"):
        loss(features * 3, SUPCON_LABELS[: len(sentences)])


def test_cached_supcon_fit_and_trainer_two_steps(tiny_model_mean, sentences, tmp_path):
    from datasets import Dataset
    from sentence_transformers import InputExample

    from st_contrast.losses import CachedSupConLoss
    from tests.training_utils import fit_two_steps, trainer_two_steps

    labels = [0, 1, 2, 3, 0, 1, 2, 3]
    loss = CachedSupConLoss(tiny_model_mean, dropout_views=True, mini_batch_size=3)
    examples = [InputExample(texts=[s], label=y) for s, y in zip(sentences, labels)]
    assert any(n.startswith("model.0.") for n in fit_two_steps(tiny_model_mean, loss, examples))
    dataset = Dataset.from_dict({"sentence": sentences, "label": labels})
    assert any(n.startswith("model.0.") for n in trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path))
    assert loss.get_config_dict()["mini_batch_size"] == 3 and "gao2021gradcache" in loss.citation


# ---------------------------------------------------------------------------------------------
# CachedDeCLUTRLoss
# ---------------------------------------------------------------------------------------------


def _declutr_rows(num_rows=4, num_anchors=2, num_positives=2):
    from st_contrast.data.declutr import DeCLUTRSpanSampler
    from tests.losses.test_declutr import DOCUMENTS

    sampler = DeCLUTRSpanSampler(num_anchors, num_positives, min_span=3, max_span=10, seed=0)
    docs = [DOCUMENTS[i % len(DOCUMENTS)] for i in range(num_rows)]
    return [sample.texts() for sample in sampler.sample_documents(docs)]


@pytest.mark.parametrize("mlm_weight", [0.0, 0.7])
@pytest.mark.parametrize("mini_batch_size", [3, 64])
def test_cached_declutr_exact_gradients_without_dropout(tiny_model_mean, mlm_weight, mini_batch_size):
    """Same seed, same MLM masks: loss, components and every gradient (MLM head included) equal DeCLUTRLoss's."""
    from st_contrast.losses import CachedDeCLUTRLoss, DeCLUTRLoss

    tiny_model_mean.eval()
    rows = _declutr_rows()
    features = [tiny_model_mean.preprocess([row[c] for row in rows]) for c in range(len(rows[0]))]

    def run(loss):
        torch.manual_seed(11)
        loss.zero_grad(set_to_none=True)
        value = loss([dict(f) for f in features], None)
        value.backward()
        grads = {n: p.grad.detach().clone() for n, p in loss.named_parameters() if p.grad is not None}
        return value.detach(), grads

    reference_loss = DeCLUTRLoss(tiny_model_mean, mlm_weight=mlm_weight)
    cached_loss = CachedDeCLUTRLoss(tiny_model_mean, mlm_weight=mlm_weight, mini_batch_size=mini_batch_size)
    if reference_loss.mlm_head is not None:
        cached_loss.mlm_head.load_state_dict(reference_loss.mlm_head.state_dict())
    reference, cached = run(reference_loss), run(cached_loss)
    _assert_same(reference, cached)
    assert (mlm_weight > 0) == any(n.startswith("mlm_head.") for n in cached[1])
    torch.testing.assert_close(
        cached_loss.last_components["contrastive"], reference_loss.last_components["contrastive"], atol=1e-5, rtol=1e-5
    )
    if mlm_weight:
        torch.testing.assert_close(cached_loss.last_components["mlm"], reference_loss.last_components["mlm"])


def test_cached_declutr_errors_and_config(tiny_model_mean):
    from st_contrast.losses import CachedDeCLUTRLoss

    with pytest.raises(ValueError, match="mini_batch_size must be a positive integer"):
        CachedDeCLUTRLoss(tiny_model_mean, mini_batch_size=0)
    loss = CachedDeCLUTRLoss(tiny_model_mean, mini_batch_size=5)
    features = [tiny_model_mean.preprocess(["a b c", "d e f"])] * 3
    with pytest.raises(ValueError, match="expects 6 text columns"):
        loss(features, None)
    assert loss.get_config_dict()["mini_batch_size"] == 5 and "gao2021gradcache" in loss.citation


def test_cached_declutr_trainer_two_steps_trains_encoder_and_mlm_head(tiny_model_mean, tmp_path):
    from st_contrast.data.declutr import DeCLUTRSpanSampler
    from st_contrast.losses import CachedDeCLUTRLoss
    from tests.losses.test_declutr import DOCUMENTS
    from tests.training_utils import trainer_two_steps

    dataset = DeCLUTRSpanSampler(min_span=3, max_span=10, seed=0).dataset(DOCUMENTS + DOCUMENTS[:2])
    loss = CachedDeCLUTRLoss(tiny_model_mean, mini_batch_size=5)
    changed = trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path, batch_size=4)
    assert any(name.startswith("mlm_head.") for name in changed)
    assert any(name.startswith("model.") for name in changed)
    assert set(loss.last_components) == {"contrastive", "mlm"}


def test_cached_declutr_gather_matches_uncached_with_fake_group(echo_model, fake_process_group):
    from st_contrast.losses import CachedDeCLUTRLoss, DeCLUTRLoss

    torch.manual_seed(5)
    others = {0: [torch.randn(4, 8), torch.randn(4, 8)]}  # rank 0's anchors and averaged positives
    cols = [torch.randn(2, 8, requires_grad=True) for _ in range(6)]

    def run(loss):
        fake_process_group(rank=1, world_size=2, others=others)
        return loss(echo_features(*cols), None)

    _assert_leaf_gradients_match(
        lambda: run(DeCLUTRLoss(echo_model, mlm_weight=0.0, gather_across_devices=True)),
        lambda: run(CachedDeCLUTRLoss(echo_model, mlm_weight=0.0, gather_across_devices=True, mini_batch_size=5)),
        cols,
    )


def test_cached_simcse_uses_simcse_compute_with_its_projection_head_and_warning(tiny_model, sentences, caplog):
    """The cached loss calls SimCSELoss.compute_loss_from_embeddings: the projection head trains (exactly, with the
    upstream gradient applied) and the parent's warning about an unused hard_negative_weight is kept."""
    import logging

    tiny_model.eval()
    features = _columns(tiny_model, sentences, 2)

    def run(loss):
        torch.manual_seed(0)
        loss.zero_grad(set_to_none=True)
        value = loss([dict(f) for f in features], None)
        (2.5 * value).backward()  # a non-unit upstream gradient, like loss scaling or accumulation
        return value.detach(), {n: p.grad.clone() for n, p in loss.named_parameters() if p.grad is not None}

    reference_loss = SimCSELoss(tiny_model, projection="mlp", hard_negative_weight=1.0)
    with caplog.at_level(logging.WARNING, logger="st_contrast.losses.simcse"):
        cached_loss = CachedSimCSELoss(tiny_model, projection="mlp", hard_negative_weight=1.0, mini_batch_size=3)
        cached_loss.projection_head.load_state_dict(reference_loss.projection_head.state_dict())
        reference, cached = run(reference_loss), run(cached_loss)
    torch.testing.assert_close(cached[0], reference[0], atol=1e-5, rtol=1e-5)
    assert {n for n in reference[1] if n.startswith("projection_head.")} == {
        "projection_head.dense.weight",
        "projection_head.dense.bias",
    }
    assert set(cached[1]) == set(reference[1])
    for name, grad in reference[1].items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(cached[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)
    warnings = [r for r in caplog.records if "hard_negative_weight has no effect" in r.getMessage()]
    assert len(warnings) == 2, "both the uncached and the cached loss warn once"
