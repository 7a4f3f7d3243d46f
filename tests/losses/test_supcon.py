from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from st_contrast.losses import SupConLoss, SupConOODLoss
from st_contrast.losses import functional as F_
from st_contrast.losses.supcon import fgm_perturbation
from tests.conftest import echo_features


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def reference_khosla(views, labels, tau):
    """Khosla et al.'s L_out as loops: every row of the stacked views is an anchor; skip anchors without positive."""
    z = torch.cat(views).double()
    y = labels.repeat(len(views)).tolist()
    losses = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        if not positives:
            continue
        denominator = sum(math.exp(_cos(z[i], z[a]) / tau) for a in range(len(z)) if a != i)
        terms = [math.log(math.exp(_cos(z[i], z[p]) / tau) / denominator) for p in positives]
        losses.append(-sum(terms) / len(positives))
    return sum(losses) / len(losses), len(z) - len(losses)


@pytest.mark.parametrize("views", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_khosla_matches_loop_reference(echo_model, views, dtype):
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    leaves = [torch.randn(6, 8, dtype=dtype, requires_grad=True) for _ in range(views)]
    loss = SupConLoss(echo_model, temperature=0.1)
    value = loss(echo_features(*leaves), labels)
    expected, skipped = reference_khosla([t.detach() for t in leaves], labels, 0.1)
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-5)
    assert loss.skipped_anchors == skipped == (1 if views == 1 else 0)  # label 2 alone in a single view
    value.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in leaves)


def test_zeng_differs_from_khosla_and_needs_two_views(echo_model):
    torch.manual_seed(2)
    labels = torch.tensor([0, 0, 1, 1])
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    zeng = SupConLoss(echo_model, variant="zeng")(echo_features(a, b), labels)
    khosla = SupConLoss(echo_model, variant="khosla")(echo_features(a, b), labels)
    torch.testing.assert_close(zeng, F_.supcon_zeng_terms(a, b, labels, 0.1).mean())
    assert not torch.allclose(zeng, khosla)
    with pytest.raises(ValueError, match="needs 2 views|second text column"):
        SupConLoss(echo_model, variant="zeng")(echo_features(a), labels)


def test_anchors_without_positive_are_skipped_and_counted(echo_model, caplog):
    torch.manual_seed(3)
    z = torch.randn(4, 8)
    labels = torch.tensor([0, 0, 1, 2])
    loss = SupConLoss(echo_model)
    with caplog.at_level(logging.WARNING):
        value = loss(echo_features(z), labels)
    expected, skipped = reference_khosla([z], labels, 0.1)
    assert skipped == 2 and loss.skipped_anchors == 2 and loss.total_anchors == 4
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    assert "skipped" in caplog.text


def test_all_anchors_skipped_gives_zero_with_warning_never_nan(echo_model, caplog):
    z = torch.randn(4, 8, requires_grad=True)
    loss = SupConLoss(echo_model)
    with caplog.at_level(logging.WARNING):
        value = loss(echo_features(z), torch.tensor([0, 1, 2, 3]))
    assert value.item() == 0.0 and torch.isfinite(value)
    value.backward()
    assert z.grad is not None and torch.all(z.grad == 0)
    assert "no anchor of this batch has a positive" in caplog.text
    assert loss.skipped_anchors == 4


def test_never_nan_on_identical_or_zero_embeddings(echo_model):
    labels = torch.tensor([0, 0, 1, 1])
    for z in (torch.zeros(4, 8), torch.ones(4, 8)):
        assert torch.isfinite(SupConLoss(echo_model)(echo_features(z, z), labels))
        assert torch.isfinite(F_.supcon_zeng_terms(z, z, labels).mean())


def test_label_errors(echo_model):
    loss = SupConLoss(echo_model)
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match="needs integer class labels, but the batch has none"):
        loss(echo_features(z), None)
    with pytest.raises(ValueError, match="all 4 examples of the batch have the same label"):
        loss(echo_features(z), torch.tensor([3, 3, 3, 3]))
    with pytest.raises(ValueError, match="integer class ids"):
        loss(echo_features(z), torch.tensor([0.5, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="got 3 labels for a batch of 4"):
        loss(echo_features(z), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="got 3 text columns"):
        loss(echo_features(z, z, z), torch.tensor([0, 1, 0, 1]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0}, "temperature"),
        ({"variant": "simclr"}, "variant must be"),
    ],
)
def test_supcon_bad_arguments(echo_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SupConLoss(echo_model, **kwargs)


def test_supcon_config_and_citation(echo_model):
    loss = SupConLoss(echo_model, temperature=0.2, variant="zeng", dropout_views=True)
    assert loss.get_config_dict() == {
        "temperature": 0.2,
        "variant": "zeng",
        "dropout_views": True,
        "gather_across_devices": False,
        "form": "out",
        "no_positive": "drop",
    }
    assert "khosla2020supcon" in loss.citation and "zeng2021modeling" in loss.citation


def test_supcon_dropout_views_encode_twice_in_one_pass(tiny_model, sentences, forward_spy):
    tiny_model.train()
    loss = SupConLoss(tiny_model, dropout_views=True)
    features = tiny_model.preprocess(sentences)
    spy = forward_spy(tiny_model)
    loss([features], torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])).backward()
    assert spy.sizes == [2 * len(sentences)]
    assert loss.skipped_anchors == 0


def test_supcon_fit_and_trainer_two_steps(tiny_model_mean, sentences, tmp_path):
    from datasets import Dataset
    from sentence_transformers import InputExample

    from tests.training_utils import fit_two_steps, trainer_two_steps

    labels = [0, 1, 2, 3, 0, 1, 2, 3]  # batches of 4 distinct labels: only the dropout views are positives
    loss = SupConLoss(tiny_model_mean, dropout_views=True)
    examples = [InputExample(texts=[s], label=y) for s, y in zip(sentences, labels)]
    assert any(n.startswith("model.0.") for n in fit_two_steps(tiny_model_mean, loss, examples))
    dataset = Dataset.from_dict({"sentence": sentences, "label": labels})
    assert any(n.startswith("model.0.") for n in trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path))
    assert loss.skipped_anchors == 0


# ---------------------------------------------------------------------------------------------
# FGM and SupConOODLoss
# ---------------------------------------------------------------------------------------------


def test_fgm_perturbation_has_norm_epsilon_per_token_and_follows_the_gradient():
    torch.manual_seed(4)
    gradient = torch.randn(3, 5, 8)
    gradient[1, 4] = 0.0  # e.g. a padding token
    delta = fgm_perturbation(gradient, 0.1)
    norms = delta.norm(dim=-1)
    nonzero = gradient.norm(dim=-1) > 0
    torch.testing.assert_close(norms[nonzero], torch.full_like(norms[nonzero], 0.1))
    assert norms[1, 4] == 0
    cos = F.cosine_similarity(delta[nonzero], gradient[nonzero], dim=-1)
    torch.testing.assert_close(cos, torch.ones_like(cos))


def _labels():
    return torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


def _reference_ood_loss(model, features, labels, epsilon, tau, variant="khosla"):
    """CE + SupCon(clean, adversarial) computed step by step, with the FGM gradient taken independently."""
    embedding = model[0].auto_model.get_input_embeddings()
    captured = {}
    handle = embedding.register_forward_hook(lambda m, i, o: captured.__setitem__("e", o))
    out = model(dict(features))
    handle.remove()
    ce = F.cross_entropy(out["logits"], labels)
    (grad,) = torch.autograd.grad(ce, captured["e"], retain_graph=True)
    delta = epsilon * grad / (grad.norm(dim=-1, keepdim=True) + 1e-10)
    handle = embedding.register_forward_hook(lambda m, i, o: o + delta)
    adv = model(dict(features))["sentence_embedding"]
    handle.remove()
    scl, _ = F_.supcon_loss([out["sentence_embedding"], adv], labels, tau, variant)
    return ce, scl, delta, captured["e"]


@pytest.mark.parametrize("variant", ["khosla", "zeng"])
def test_ood_loss_matches_step_by_step_reference(tiny_model_mean, sentences, variant):
    model = tiny_model_mean
    loss = SupConOODLoss(model, num_labels=3, variant=variant, scl_weight=0.5, ce_weight=2.0)
    model.eval()  # no dropout: both computations see the same network
    features = model.preprocess(sentences)
    labels = _labels()
    ce, scl, delta, _ = _reference_ood_loss(model, features, labels, 0.1, 0.1, variant)
    components = loss([features], labels)
    assert set(components) == {"ce", "supcon"}
    torch.testing.assert_close(components["ce"], 2.0 * ce)
    torch.testing.assert_close(components["supcon"], 0.5 * scl)
    # the perturbation: norm ε on every real token, aligned with the CE gradient
    mask = features["attention_mask"].bool()
    torch.testing.assert_close(delta.norm(dim=-1)[mask], torch.full((int(mask.sum()),), 0.1))
    sum(components.values()).backward()
    grad = model[0].auto_model.get_input_embeddings().weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert loss.head.classifier.weight.grad.abs().sum() > 0


def test_adversarial_view_uses_the_perturbed_word_embeddings(tiny_model_mean, sentences):
    model = tiny_model_mean
    loss = SupConOODLoss(model, num_labels=3, adversarial_epsilon=0.25)
    model.eval()
    features = model.preprocess(sentences)
    outputs = []
    embedding = model[0].auto_model.get_input_embeddings()
    # registered before the loss's hooks, so it sees the clean lookup; the loss adds δ after it
    handle = embedding.register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
    perturbed = []
    post = model[0].auto_model.embeddings.register_forward_hook(lambda m, i, o: perturbed.append(o.detach()))
    loss([features], _labels())
    handle.remove()
    post.remove()
    assert len(outputs) == 2, "one clean and one adversarial pass"
    torch.testing.assert_close(outputs[0], outputs[1])  # same lookup...
    assert not torch.allclose(perturbed[0], perturbed[1])  # ...but the adversarial pass adds δ afterwards


def test_stages_and_passes(tiny_model_mean, sentences, forward_spy):
    model = tiny_model_mean
    model.train()
    features = model.preprocess(sentences)
    labels = _labels()
    spy = forward_spy(model)
    loss = SupConOODLoss(model, num_labels=3)
    assert set(loss([features], labels)) == {"ce", "supcon"} and spy.sizes == [8, 8]
    spy.clear()
    loss.set_stage("classification")
    assert set(loss([features], labels)) == {"ce"} and spy.sizes == [8]
    spy.clear()
    loss.set_stage("contrastive")
    out = loss([features], labels)
    assert set(out) == {"supcon"} and spy.sizes == [8, 8]
    out["supcon"].backward()
    assert loss.head.classifier.weight.grad is None, "stage 1 must not train the classifier"
    spy.clear()
    rdrop = SupConOODLoss(model, num_labels=None, rdrop_alpha=2.0)  # reuses the head
    assert rdrop.head is loss.head
    out = rdrop([features], labels)
    assert set(out) == {"ce", "supcon", "rdrop"} and spy.sizes == [16, 8], "R-Drop's two passes share one forward"
    assert out["rdrop"].item() > 0
    with pytest.raises(ValueError, match="stage must be one of"):
        loss.set_stage("pretrain")


def test_scl_weight_zero_is_the_ce_baseline(tiny_model_mean, sentences):
    model = tiny_model_mean
    model.eval()
    features = model.preprocess(sentences)
    labels = _labels()
    out = SupConOODLoss(model, num_labels=3, scl_weight=0.0)([features], labels)
    assert set(out) == {"ce"}
    logits = model(dict(features))["logits"]
    torch.testing.assert_close(out["ce"], F.cross_entropy(logits, labels))
    # a single-class batch is fine for CE alone, but not for the contrastive term
    SupConOODLoss(model, num_labels=3, scl_weight=0.0)([features], torch.zeros(8, dtype=torch.long))


def test_ood_label_errors(tiny_model_mean, sentences):
    loss = SupConOODLoss(tiny_model_mean, num_labels=3)
    features = tiny_model_mean.preprocess(sentences)
    with pytest.raises(ValueError, match="needs integer class labels"):
        loss([features], None)
    with pytest.raises(ValueError, match=r"num_labels=3 classes \(ids 0..2\), but the batch has label 3"):
        loss([features], torch.tensor([0, 1, 2, 3, 0, 1, 2, 0]))
    with pytest.raises(ValueError, match="label -1"):
        loss([features], torch.tensor([0, 1, 2, -1, 0, 1, 2, 0]))
    with pytest.raises(ValueError, match="have the same label"):
        loss([features], torch.full((8,), 2))
    with pytest.raises(ValueError, match="expects 1 text column"):
        loss([features, features], _labels())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scl_weight": 0.0, "ce_weight": 0.0}, "nothing to train"),
        ({"ce_weight": -1.0}, "ce_weight must be"),
        ({"adversarial_epsilon": float("nan")}, "adversarial_epsilon must be"),
        ({"rdrop_alpha": "x"}, "rdrop_alpha must be"),
        ({"temperature": -0.1}, "temperature"),
        ({"stage": "two_stage"}, "stage must be one of"),
        ({"num_labels": 1}, "num_labels must be an integer >= 2"),
    ],
)
def test_ood_bad_arguments(tiny_model_mean, kwargs, match):
    kwargs = {"num_labels": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        SupConOODLoss(tiny_model_mean, **kwargs)


def test_head_mismatch_and_missing_num_labels(tiny_model_mean):
    with pytest.raises(ValueError, match="num_labels .* is required"):
        SupConOODLoss(tiny_model_mean, num_labels=None)
    SupConOODLoss(tiny_model_mean, num_labels=3)
    with pytest.raises(ValueError, match="already has a ClassifierHead with 3 classes"):
        SupConOODLoss(tiny_model_mean, num_labels=4)


def test_classifier_head_is_saved_and_loaded_with_the_model(tiny_model_mean, sentences, tmp_path):
    from sentence_transformers import SentenceTransformer

    from st_contrast.modules import ClassifierHead

    SupConOODLoss(tiny_model_mean, num_labels=3, label_names=["a", "b", "c"])
    with torch.no_grad():
        tiny_model_mean[-1].classifier.bias.copy_(torch.tensor([0.5, -0.25, 0.0]))
    tiny_model_mean.save(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu", trust_remote_code=True)
    assert isinstance(reloaded[-1], ClassifierHead) and reloaded[-1].labels == ["a", "b", "c"]
    expected = tiny_model_mean.encode(sentences, output_value="logits", convert_to_tensor=False)
    logits = reloaded.encode(sentences, output_value="logits", convert_to_tensor=False)
    torch.testing.assert_close(torch.stack(logits), torch.stack(expected))
    torch.testing.assert_close(reloaded.encode(sentences), tiny_model_mean.encode(sentences))
    assert reloaded.get_embedding_dimension() == tiny_model_mean[0].get_embedding_dimension()


def test_fit_two_steps_trains_encoder_and_head(tiny_model_mean, sentences):
    from sentence_transformers import InputExample

    from tests.training_utils import fit_two_steps

    loss = SupConOODLoss(tiny_model_mean, num_labels=3, rdrop_alpha=1.0)
    examples = [InputExample(texts=[s], label=int(y)) for s, y in zip(sentences, _labels())]
    changed = fit_two_steps(tiny_model_mean, loss, examples)
    assert any("classifier" in name for name in changed), changed
    assert any("word_embeddings" in name for name in changed), changed


def test_trainer_two_steps_joint_then_two_stage(tiny_model_mean, sentences, tmp_path):
    from datasets import Dataset

    from tests.training_utils import trainer_two_steps

    dataset = Dataset.from_dict({"sentence": sentences, "label": _labels().tolist()})
    loss = SupConOODLoss(tiny_model_mean, num_labels=3, variant="zeng")
    changed = trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path / "joint")
    assert any("classifier" in n for n in changed) and any(n.startswith("model.0.") for n in changed)
    loss.set_stage("contrastive")
    changed = trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path / "stage1")
    assert not any("classifier" in n for n in changed) and any(n.startswith("model.0.") for n in changed)
    loss.set_stage("classification")
    changed = trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path / "stage2")
    assert any("classifier" in n for n in changed)


def test_ood_config_and_citation(tiny_model_mean):
    loss = SupConOODLoss(tiny_model_mean, num_labels=3, rdrop_alpha=0.5)
    assert loss.get_config_dict() == {
        "num_labels": 3,
        "temperature": 0.1,
        "scl_weight": 1.0,
        "ce_weight": 1.0,
        "adversarial_epsilon": 0.1,
        "rdrop_alpha": 0.5,
        "variant": "khosla",
        "stage": "joint",
        "gather_across_devices": False,
        "form": "out",
        "no_positive": "drop",
    }
    assert "zeng2021modeling" in loss.citation and "liang2021rdrop" in loss.citation


# ---------------------------------------------------------------------------------------------
# Khosla et al.'s L_in, and the official repository's zero terms for anchors without a positive
# ---------------------------------------------------------------------------------------------


def reference_khosla_forms(views, labels, tau, form, no_positive):
    """Khosla et al.'s eq. 2 (L_out) and eq. 3 (L_in) as loops; anchors without a positive dropped or zero terms."""
    z = torch.cat(views).double()
    y = labels.repeat(len(views)).tolist()
    losses = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        if not positives:
            if no_positive == "zero":
                losses.append(0.0)
            continue
        denominator = sum(math.exp(_cos(z[i], z[a]) / tau) for a in range(len(z)) if a != i)
        probabilities = [math.exp(_cos(z[i], z[p]) / tau) / denominator for p in positives]
        if form == "out":
            losses.append(-sum(math.log(q) for q in probabilities) / len(positives))
        else:
            losses.append(-math.log(sum(probabilities) / len(positives)))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("form", ["out", "in"])
@pytest.mark.parametrize("no_positive", ["drop", "zero"])
@pytest.mark.parametrize("views", [1, 2])
def test_khosla_forms_and_no_positive_match_loops(echo_model, form, no_positive, views):
    torch.manual_seed(3)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])  # 2 and 3 have no positive in a single view
    leaves = [torch.randn(7, 8, dtype=torch.float64, requires_grad=True) for _ in range(views)]
    loss = SupConLoss(echo_model, temperature=0.1, form=form, no_positive=no_positive)
    value = loss(echo_features(*leaves), labels)
    expected = reference_khosla_forms([t.detach() for t in leaves], labels, 0.1, form, no_positive)
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64))
    assert loss.skipped_anchors == (2 if views == 1 else 0)
    # gradients equal the autograd of the loop written in torch
    (grad,) = torch.autograd.grad(value, leaves[0])
    detached = [t.detach().clone().requires_grad_(True) for t in leaves]
    z = torch.cat(detached)
    y = labels.repeat(views).tolist()
    terms = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        if not positives:
            if no_positive == "zero":
                terms.append(z.sum() * 0.0)
            continue
        sims = torch.stack([F.cosine_similarity(z[i], z[a], dim=0) / 0.1 for a in range(len(z)) if a != i])
        log_denominator = torch.logsumexp(sims, dim=0)
        log_q = torch.stack([F.cosine_similarity(z[i], z[p], dim=0) / 0.1 for p in positives]) - log_denominator
        terms.append(-log_q.mean() if form == "out" else -(torch.logsumexp(log_q, 0) - math.log(len(positives))))
    (expected_grad,) = torch.autograd.grad(torch.stack(terms).mean(), detached[0])
    assert expected_grad.abs().sum() > 0
    torch.testing.assert_close(grad, expected_grad)


def test_l_in_differs_from_l_out_and_is_a_lower_bound(echo_model):
    # Jensen: -log(mean q) <= -mean(log q), equal only with one positive per anchor
    torch.manual_seed(4)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    z = torch.randn(6, 8, dtype=torch.float64)
    out = SupConLoss(echo_model, form="out")(echo_features(z), labels)
    inside = SupConLoss(echo_model, form="in")(echo_features(z), labels)
    assert inside < out - 1e-6
    pairs = torch.tensor([0, 0, 1, 1, 2, 2])  # one positive each: the two forms coincide
    torch.testing.assert_close(
        SupConLoss(echo_model, form="in")(echo_features(z), pairs),
        SupConLoss(echo_model, form="out")(echo_features(z), pairs),
    )


def test_no_positive_zero_scales_by_all_anchors(echo_model):
    torch.manual_seed(5)
    labels = torch.tensor([0, 1, 0, 2, 1, 3])  # 2 of 6 anchors without a positive
    z = torch.randn(6, 8, dtype=torch.float64)
    dropped = SupConLoss(echo_model)(echo_features(z), labels)
    zero = SupConLoss(echo_model, no_positive="zero")(echo_features(z), labels)
    torch.testing.assert_close(zero, dropped * 4 / 6)
    # every anchor without a positive: still a connected zero, never NaN
    value = SupConLoss(echo_model, no_positive="zero")(echo_features(z), torch.arange(6))
    assert value.item() == 0.0 and value.requires_grad


def test_ood_loss_passes_form_through(tiny_model_mean, sentences):
    model = tiny_model_mean
    model.eval()
    features = model.preprocess(sentences)
    labels = _labels()
    values = {}
    for form in ("out", "in"):
        torch.manual_seed(0)
        loss = SupConOODLoss(model, num_labels=3, form=form, ce_weight=0.0, adversarial_epsilon=0.0)
        values[form] = loss([features], labels)["supcon"].item()
    assert values["in"] < values["out"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"form": "inside"}, "form must be 'out'"),
        ({"form": "in", "variant": "zeng"}, "variant='khosla' only"),
        ({"no_positive": "skip"}, "no_positive must be 'drop'"),
    ],
)
def test_form_and_no_positive_bad_arguments(echo_model, tiny_model_mean, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SupConLoss(echo_model, **kwargs)
    with pytest.raises(ValueError, match=match):
        SupConOODLoss(tiny_model_mean, num_labels=3, **kwargs)


def test_functional_form_and_no_positive_errors():
    z, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="form must be 'out'"):
        F_.supcon_loss(z, y, form="inside")
    with pytest.raises(ValueError, match="no_positive must be 'drop'"):
        F_.supcon_loss(z, y, no_positive="skip")
    with pytest.raises(ValueError, match="use form='out'"):
        F_.supcon_loss([z, z], y, variant="zeng", form="in")
    with pytest.raises(ValueError, match="form must be 'out'"):
        F_.supcon_khosla_terms(z, y, form="both")


def test_cached_supcon_passes_form_and_no_positive(tiny_model, sentences):
    from st_contrast.losses import CachedSupConLoss

    loss = CachedSupConLoss(tiny_model, form="in", no_positive="zero", mini_batch_size=2)
    assert (loss.form, loss.no_positive) == ("in", "zero")
    assert loss.get_config_dict()["form"] == "in" and loss.get_config_dict()["no_positive"] == "zero"
