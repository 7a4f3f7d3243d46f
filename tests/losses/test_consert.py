from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from st_contrast.losses import ConSERTLoss, SimCSELoss
from st_contrast.losses import functional as F_
from st_contrast.losses.consert import dropout_disabled
from st_contrast.views import (
    Adversarial,
    EmbeddingDropout,
    FeatureCutoff,
    NoAugmentation,
    SpanCutoff,
    TokenCutoff,
    TokenShuffle,
)
from st_contrast.views.embedding import capture_embedding_output
from tests.losses.functional.test_infonce import reference_consert


def test_gather_across_devices_with_fake_group(fake_process_group):
    """Rank 1 of 2: local rows against the global views, the same as the loop on the whole batch's rows."""
    torch.manual_seed(3)
    a0, b0 = torch.randn(3, 5), torch.randn(3, 5)
    a1 = torch.randn(3, 5, requires_grad=True)
    b1 = torch.randn(3, 5, requires_grad=True)
    fake_process_group(rank=1, world_size=2, others={0: [a0, b0]})
    value = F_.consert_loss(a1, b1, 0.1, gather_across_devices=True)
    a, b = torch.cat([a0, a1]).detach().double(), torch.cat([b0, b1]).detach().double()

    def rows(q, k, indices):
        out = []
        for i in indices:
            logits = [F_.cosine_similarity_matrix(q[i : i + 1], k)[0] / 0.1]
            same = F_.cosine_similarity_matrix(q[i : i + 1], q)[0] / 0.1
            same[i] = float("-inf")
            logits = torch.cat([logits[0], same])
            out.append(-(logits[i] - torch.logsumexp(logits, 0)))
        return torch.stack(out).mean()

    expected = rows(a, b, [3, 4, 5]) + rows(b, a, [3, 4, 5])
    torch.testing.assert_close(value, expected.float())
    value.backward()
    assert a1.grad.abs().sum() > 0 and b1.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------
# the loss on real tiny encoders
# ------------------------------------------------------------------------------------------


def test_defaults_config_and_citation(tiny_model):
    loss = ConSERTLoss(tiny_model)
    assert isinstance(loss.view1, FeatureCutoff) and loss.view1.rate == 0.2
    assert isinstance(loss.view2, TokenShuffle)
    assert loss.get_config_dict() == {
        "view1": "FeatureCutoff(rate=0.2, seed=None)",
        "view2": "TokenShuffle(keep_special_tokens=False, seed=None)",
        "temperature": 0.1,
        "disable_dropout": True,
        "supervised_loss": None,
        "contrastive_weight": 1.0,
        "pooling": "model",
        "joint_contrast": "per_column",
        "gather_across_devices": False,
    }
    assert "yan2021consert" in loss.citation


def test_identity_views_give_the_loss_of_the_plain_embeddings_in_one_forward(tiny_model, sentences, forward_spy):
    """NoAugmentation twice, dropout off: both views equal the plain encoding; the batch runs once, doubled."""
    tiny_model.train()
    loss = ConSERTLoss(tiny_model, view1=NoAugmentation(), view2=NoAugmentation(), temperature=0.1)
    features = tiny_model.preprocess(sentences[:4])
    spy = forward_spy(tiny_model)
    value = loss([features], None)
    assert spy.sizes == [8], "both views come from one forward over the doubled batch"
    tiny_model.eval()
    with torch.no_grad():
        z = tiny_model(dict(features))["sentence_embedding"]
    torch.testing.assert_close(value.detach(), F_.consert_loss(z, z, 0.1))


def test_mean_pooling_option_pools_the_last_layer(tiny_model, sentences):
    tiny_model.eval()
    loss = ConSERTLoss(tiny_model, view1=NoAugmentation(), view2=NoAugmentation(), pooling="mean")
    features = tiny_model.preprocess(sentences[:4])
    value = loss([features], None)
    with torch.no_grad():
        out = tiny_model(dict(features))
        mask = features["attention_mask"].unsqueeze(-1).float()
        mean = (out["token_embeddings"] * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(value.detach(), F_.consert_loss(mean, mean, 0.1))


def test_span_keep_view_in_the_loss_is_the_official_span_augmentation(tiny_model_mean, sentences):
    """Official ConSERT: ids outside the span -> [PAD] (id 0), every position still attended and mean-pooled."""
    model = tiny_model_mean
    model.eval()
    loss = ConSERTLoss(model, view1=SpanCutoff(0.5, mode="keep", seed=11), view2=NoAugmentation(), pooling="mean")
    features = model.preprocess(sentences[:4])
    value = loss([features], None)
    mask = features["attention_mask"]
    kept = SpanCutoff(0.5, mode="keep", seed=11).kept_span(mask)
    with torch.no_grad():
        plain = model(dict(features))["sentence_embedding"]
        cut = model({**features, "input_ids": features["input_ids"].masked_fill(mask.bool() & ~kept, 0)})
        m = mask.unsqueeze(-1).float()
        span_view = (cut["token_embeddings"] * m).sum(1) / m.sum(1)  # mean over *all* real positions
    assert not torch.allclose(span_view, plain)
    torch.testing.assert_close(value.detach(), F_.consert_loss(span_view, plain, 0.1))


@pytest.mark.parametrize(
    "views",
    [
        (FeatureCutoff(0.2), TokenShuffle()),
        (TokenCutoff(0.2), EmbeddingDropout(0.2)),
        (SpanCutoff(0.3), SpanCutoff(0.3, mode="keep")),
    ],
    ids=["feature+shuffle", "token+dropout", "span"],
)
@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_views_train_both_families(tiny_model, tiny_roberta, sentences, views, family):
    model = tiny_model if family == "bert" else tiny_roberta
    loss = ConSERTLoss(model, view1=views[0], view2=views[1])
    value = loss([model.preprocess(sentences)], None)
    assert torch.isfinite(value) and value.item() > 0
    value.backward()
    grad = model[0].auto_model.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def _dropout_ps(model):
    return [m.p for m in model.modules() if isinstance(m, nn.Dropout)]


def test_dropout_is_off_only_during_the_loss_and_does_not_leak(tiny_model, sentences, tmp_path):
    tiny_model.train()
    before = _dropout_ps(tiny_model)
    assert any(p > 0 for p in before)
    seen = []
    dropout = next(m for m in tiny_model.modules() if isinstance(m, nn.Dropout))
    handle = dropout.register_forward_pre_hook(lambda module, args: seen.append(module.p))
    loss = ConSERTLoss(tiny_model)
    loss([tiny_model.preprocess(sentences[:4])], None).backward()
    handle.remove()
    assert seen and all(p == 0.0 for p in seen), "dropout must be off inside the loss"
    assert _dropout_ps(tiny_model) == before, "and restored afterwards"
    assert tiny_model.training
    # another loss still sees dropout: two encodings of the same batch differ
    features = tiny_model.preprocess(sentences[:4])
    first = tiny_model(dict(features))["sentence_embedding"]
    second = tiny_model(dict(features))["sentence_embedding"]
    assert not torch.allclose(first, second)
    SimCSELoss(tiny_model)([features], None)  # runs with its dropout views
    # the saved config keeps the original probabilities
    tiny_model.save(str(tmp_path / "saved"))
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["hidden_dropout_prob"] == 0.1 and config["attention_probs_dropout_prob"] == 0.1


def test_dropout_is_restored_when_the_forward_raises(tiny_model):
    before = _dropout_ps(tiny_model)
    with pytest.raises(RuntimeError, match="boom"):
        with dropout_disabled(tiny_model):
            assert all(p == 0.0 for p in _dropout_ps(tiny_model))
            raise RuntimeError("boom")
    assert _dropout_ps(tiny_model) == before


def test_disable_dropout_false_keeps_dropout(tiny_model, sentences):
    tiny_model.train()
    seen = []
    dropout = next(m for m in tiny_model.modules() if isinstance(m, nn.Dropout))
    handle = dropout.register_forward_pre_hook(lambda module, args: seen.append(module.p))
    ConSERTLoss(tiny_model, disable_dropout=False)([tiny_model.preprocess(sentences[:4])], None)
    handle.remove()
    assert seen and all(p == 0.1 for p in seen)


# ------------------------------------------------------------------------------------------
# joint setting: supervised loss and the adversarial view
# ------------------------------------------------------------------------------------------


def _softmax_loss(model):
    from sentence_transformers.sentence_transformer.losses import SoftmaxLoss

    torch.manual_seed(0)
    return SoftmaxLoss(model, model.get_embedding_dimension(), num_labels=3)


def test_joint_setting_adds_the_supervised_loss(tiny_model, sentences):
    tiny_model.train()
    softmax = _softmax_loss(tiny_model)
    loss = ConSERTLoss(
        tiny_model,
        NoAugmentation(),
        NoAugmentation(),
        supervised_loss=softmax,
        contrastive_weight=0.15,
        joint_contrast="merged",
    )
    premises, hypotheses = tiny_model.preprocess(sentences[:3]), tiny_model.preprocess(sentences[3:6])
    labels = torch.tensor([0, 1, 2])
    out = loss([premises, hypotheses], labels)
    assert set(out) == {"supervised", "contrastive"}
    with dropout_disabled(tiny_model), torch.no_grad():
        expected_sup = softmax([dict(premises), dict(hypotheses)], labels)
        z = torch.cat([tiny_model(dict(f))["sentence_embedding"] for f in (premises, hypotheses)])
    torch.testing.assert_close(out["supervised"].detach(), expected_sup)
    torch.testing.assert_close(out["contrastive"].detach(), 0.15 * F_.consert_loss(z, z, 0.1))
    sum(out.values()).backward()
    assert softmax.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("joint_contrast", ["per_column", "merged"])
def test_joint_contrast_per_column_and_merged_match_loop_references(tiny_model, sentences, joint_contrast):
    """per_column (default, official AdvCLSoftmaxLoss): NT-Xent(premises) + NT-Xent(hypotheses);
    merged: one NT-Xent over the 2B views, with cross-column negatives."""
    tiny_model.eval()
    softmax = _softmax_loss(tiny_model)
    kwargs = {} if joint_contrast == "per_column" else {"joint_contrast": "merged"}
    loss = ConSERTLoss(
        tiny_model, FeatureCutoff(0.25, seed=1), TokenCutoff(0.3, seed=2), supervised_loss=softmax, **kwargs
    )
    assert loss.joint_contrast == joint_contrast and loss.get_config_dict()["joint_contrast"] == joint_contrast
    premises, hypotheses = tiny_model.preprocess(sentences[:4]), tiny_model.preprocess(sentences[4:8])
    out = loss([premises, hypotheses], torch.tensor([0, 1, 2, 0]))

    # the same views by hand: column after column in one merged batch, view 1 on the first copy
    from st_contrast.losses._common import merge_features
    from st_contrast.views import embedding_views

    merged = merge_features([premises, hypotheses])
    doubled = merge_features([merged, merged])
    with torch.no_grad(), dropout_disabled(tiny_model):
        views = [FeatureCutoff(0.25, seed=1), TokenCutoff(0.3, seed=2)]
        with embedding_views(tiny_model, doubled, views) as view_features:
            z = tiny_model(view_features)["sentence_embedding"].double()
    a, b = z[:8], z[8:]
    if joint_contrast == "per_column":
        expected = reference_consert(a[:4], b[:4], 0.1) + reference_consert(a[4:], b[4:], 0.1)
    else:
        expected = reference_consert(a, b, 0.1)
    other = reference_consert(a, b, 0.1) if joint_contrast == "per_column" else None
    torch.testing.assert_close(out["contrastive"].detach().double(), torch.tensor(expected, dtype=torch.float64))
    if other is not None:
        assert abs(other - expected) > 1e-3, "the two forms differ on these embeddings"


def test_adversarial_view_adds_the_fgm_perturbation_of_the_supervised_gradient(tiny_model, sentences):
    tiny_model.train()
    softmax = _softmax_loss(tiny_model)
    loss = ConSERTLoss(
        tiny_model, Adversarial(0.5), NoAugmentation(), supervised_loss=softmax, joint_contrast="merged"
    )
    premises, hypotheses = tiny_model.preprocess(sentences[:3]), tiny_model.preprocess(sentences[3:6])
    labels = torch.tensor([0, 1, 2])
    out = loss([premises, hypotheses], labels)

    # by hand: clean forward, gradient of the supervised loss w.r.t. the embedding output, perturbed forward
    from st_contrast.losses._common import merge_features

    merged = merge_features([premises, hypotheses])
    embeddings = tiny_model[0].auto_model.embeddings
    with dropout_disabled(tiny_model):
        with capture_embedding_output(tiny_model) as captured:
            clean = tiny_model(dict(merged))["sentence_embedding"]
        a, b = clean[:3], clean[3:]
        logits = softmax.classifier(torch.cat([a, b, (a - b).abs()], dim=1))
        supervised = torch.nn.functional.cross_entropy(logits, labels)
        (gradient,) = torch.autograd.grad(supervised, captured)
        noise = 0.5 * gradient / (gradient.norm(dim=-1, keepdim=True) + 1e-10)
        noise = noise * merged["attention_mask"].unsqueeze(-1)
        handle = embeddings.register_forward_hook(lambda module, args, output: output + noise)
        adversarial = tiny_model(dict(merged))["sentence_embedding"]
        handle.remove()
    torch.testing.assert_close(out["supervised"].detach(), supervised.detach())
    expected = F_.consert_loss(adversarial.detach(), clean.detach(), 0.1)
    torch.testing.assert_close(out["contrastive"].detach(), expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(adversarial, clean), "the perturbation must change the encoding"


def test_adversarial_needs_a_supervised_loss(tiny_model):
    with pytest.raises(ValueError, match="only usable with labels: pass supervised_loss="):
        ConSERTLoss(tiny_model, view1=Adversarial(0.1))


def test_labels_without_supervised_loss_and_the_reverse(tiny_model, sentences):
    features = tiny_model.preprocess(sentences[:4])
    with pytest.raises(ValueError, match="does not use labels"):
        ConSERTLoss(tiny_model)([features], torch.tensor([0, 1, 2, 0]))
    loss = ConSERTLoss(tiny_model, supervised_loss=_softmax_loss(tiny_model))
    with pytest.raises(ValueError, match="needs labels"):
        loss([features, features], None)


def test_supervised_loss_must_share_the_model_and_work_from_embeddings(tiny_model, tiny_model_mean):
    with pytest.raises(ValueError, match="same model"):
        ConSERTLoss(tiny_model, supervised_loss=_softmax_loss(tiny_model_mean))

    class Opaque(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

    with pytest.raises(ValueError, match="compute its value from embeddings"):
        ConSERTLoss(tiny_model, supervised_loss=Opaque(tiny_model))


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0, -0.1, float("nan")])
def test_bad_temperature(tiny_model, temperature):
    with pytest.raises(ValueError, match="temperature"):
        ConSERTLoss(tiny_model, temperature=temperature)


def test_bad_arguments(tiny_model):
    with pytest.raises(ValueError, match="view1 must be an embedding-level view"):
        ConSERTLoss(tiny_model, view1="cutoff")
    with pytest.raises(ValueError, match="contrastive_weight must be a finite number >= 0"):
        ConSERTLoss(tiny_model, contrastive_weight=-1)
    with pytest.raises(ValueError, match="pooling must be 'model'"):
        ConSERTLoss(tiny_model, pooling="cls")
    with pytest.raises(ValueError, match="joint_contrast must be 'per_column'"):
        ConSERTLoss(tiny_model, joint_contrast="columns")
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        ConSERTLoss(tiny_model, view1=FeatureCutoff(1.0))


def test_unhookable_model_is_rejected_when_the_loss_is_built(echo_model):
    with pytest.raises(ValueError, match="embedding-level views need a Hugging Face encoder"):
        ConSERTLoss(echo_model)


def test_duplicated_columns_are_rejected(tiny_model, sentences):
    """(s, s) pairs built for SimCSE would make every sentence its own negative here."""
    features = tiny_model.preprocess(sentences[:4])
    with pytest.raises(ValueError, match="identical text columns"):
        ConSERTLoss(tiny_model)([features, dict(features)], None)


def test_batch_of_one_and_empty_text(tiny_model):
    loss = ConSERTLoss(tiny_model)
    with pytest.raises(ValueError, match="at least 2 sentences"):
        loss([tiny_model.preprocess(["just one"])], None)
    with pytest.raises(ValueError, match=r"empty text\(s\) \(rows \[1\]"):
        loss([tiny_model.preprocess(["a sentence", "", "another"])], None)


# ------------------------------------------------------------------------------------------
# two real optimiser steps through both entry points
# ------------------------------------------------------------------------------------------


def test_fit_two_steps(tiny_model, sentences):
    from sentence_transformers import InputExample

    from tests.training_utils import fit_two_steps

    loss = ConSERTLoss(tiny_model)
    changed = fit_two_steps(tiny_model, loss, [InputExample(texts=[s]) for s in sentences])
    assert any(name.startswith("model.") and "encoder.layer" in name for name in changed)
    assert _dropout_ps(tiny_model) and all(p == 0.1 for p in _dropout_ps(tiny_model))


def test_trainer_two_steps_unsupervised_and_joint(tiny_roberta, sentences, tmp_path):
    from datasets import Dataset

    from tests.training_utils import trainer_two_steps

    loss = ConSERTLoss(tiny_roberta, view1=FeatureCutoff(0.2), view2=TokenShuffle())
    changed = trainer_two_steps(tiny_roberta, loss, Dataset.from_dict({"sentence": sentences}), tmp_path / "u")
    assert any(name.startswith("model.") for name in changed)

    softmax = _softmax_loss(tiny_roberta)
    joint = ConSERTLoss(
        tiny_roberta, Adversarial(0.1), TokenShuffle(), supervised_loss=softmax, contrastive_weight=0.15
    )
    dataset = Dataset.from_dict(
        {"premise": sentences, "hypothesis": sentences[1:] + sentences[:1], "label": [0, 1, 2, 0, 1, 2, 0, 1]}
    )
    changed = trainer_two_steps(tiny_roberta, joint, dataset, tmp_path / "j")
    assert any(name.startswith("supervised_loss.classifier") for name in changed), "the NLI classifier trains"
    assert any(name.startswith("model.") for name in changed)


def test_docs_give_the_official_training_settings_next_to_ours():
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "methods" / "consert.md").read_text(encoding="utf-8")
    section = page.split("### The official code's training settings, next to ours", 1)[1].split("\n### ", 1)[0]
    for fact in (
        "correct_bias=False",
        "| eps | 1e-6 | 1e-6 | 1e-8 |",
        "`cl_rate` 0.15",
        "**on**",
        "1.0 when `--adv_training`",
    ):
        assert fact in section, fact
    assert 'joint_contrast="per_column"' in page and "every real position stays attended and pooled" in page
