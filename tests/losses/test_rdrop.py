from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from st_contrast.losses import RDropLoss


def reference_symmetric_kl(logits_p, logits_q, mask=None):
    """½(KL(p‖q) + KL(q‖p)) per row, as loops over classes; rows where mask is False are 0."""
    values = []
    for row in range(logits_p.shape[0]):
        p = torch.softmax(logits_p[row].double(), -1).tolist()
        q = torch.softmax(logits_q[row].double(), -1).tolist()
        kl_pq = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        kl_qp = sum(qi * math.log(qi / pi) for pi, qi in zip(p, q))
        keep = True if mask is None else bool(mask[row])
        values.append(0.5 * (kl_pq + kl_qp) if keep else 0.0)
    return values


@pytest.mark.parametrize("ce_over_passes", ["mean", "sum"])
def test_loss_matches_reference(tiny_model_mean, ce_over_passes):
    torch.manual_seed(1)
    loss = RDropLoss(tiny_model_mean, num_labels=4, alpha=0.7, ce_over_passes=ce_over_passes)
    p = torch.randn(6, 4, requires_grad=True)
    q = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    out = loss.compute_loss_from_logits(p, q, labels)
    ce = F.cross_entropy(p, labels) + F.cross_entropy(q, labels)
    expected_ce = ce / 2 if ce_over_passes == "mean" else ce
    torch.testing.assert_close(out["ce"], expected_ce)
    kl = sum(reference_symmetric_kl(p.detach(), q.detach())) / 6
    torch.testing.assert_close(
        out["rdrop"].double(), torch.tensor(0.7 * kl, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )
    sum(out.values()).backward()
    assert p.grad.abs().sum() > 0 and q.grad.abs().sum() > 0


def test_two_passes_share_one_forward_and_dropout_makes_them_differ(tiny_model_mean, sentences, forward_spy):
    model = tiny_model_mean
    loss = RDropLoss(model, num_labels=3)
    features = model.preprocess(sentences)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    spy = forward_spy(model)
    model.train()
    out = loss([features], labels)
    assert spy.sizes == [16], "both dropout passes must come from one forward over the doubled batch"
    assert out["rdrop"].item() > 0
    sum(out.values()).backward()
    assert model[0].auto_model.get_input_embeddings().weight.grad.abs().sum() > 0
    model.eval()  # no dropout: the two passes agree, the KL vanishes, the CE is the plain CE
    out = loss([features], labels)
    assert out["rdrop"].item() == pytest.approx(0.0, abs=1e-7)
    torch.testing.assert_close(out["ce"], F.cross_entropy(model(dict(features))["logits"], labels))


def test_fit_and_trainer_two_steps(tiny_model_mean, sentences, tmp_path):
    from datasets import Dataset
    from sentence_transformers import InputExample

    from tests.training_utils import fit_two_steps, trainer_two_steps

    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    loss = RDropLoss(tiny_model_mean, num_labels=3, alpha=1.0)
    examples = [InputExample(texts=[s], label=y) for s, y in zip(sentences, labels)]
    changed = fit_two_steps(tiny_model_mean, loss, examples)
    assert any("classifier" in n for n in changed) and any(n.startswith("model.0.") for n in changed)
    dataset = Dataset.from_dict({"sentence": sentences, "label": labels})
    changed = trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path)
    assert any("classifier" in n for n in changed) and any(n.startswith("model.0.") for n in changed)


def test_label_and_argument_errors(tiny_model_mean, sentences):
    features = tiny_model_mean.preprocess(sentences)
    with pytest.raises(ValueError, match="num_labels .* is required"):
        RDropLoss(tiny_model_mean)
    loss = RDropLoss(tiny_model_mean, num_labels=3)
    assert RDropLoss(tiny_model_mean).head is loss.head  # reuses the head
    with pytest.raises(ValueError, match="needs integer class labels"):
        loss([features], None)
    with pytest.raises(ValueError, match="but the batch has label 7"):
        loss([features], torch.tensor([0, 1, 2, 7, 0, 1, 2, 0]))
    with pytest.raises(ValueError, match="expects 1 text column"):
        loss([features, features], torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="ce_over_passes must be"):
        RDropLoss(tiny_model_mean, ce_over_passes="avg")
    with pytest.raises(ValueError, match="alpha must be"):
        RDropLoss(tiny_model_mean, alpha=-1)
    # one class per batch is fine for R-Drop (no contrastive term)
    assert torch.isfinite(sum(loss([features], torch.zeros(8, dtype=torch.long)).values()))


def test_warns_without_dropout(tiny_model_mean, caplog):
    for module in tiny_model_mean.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        config = getattr(module, "config", None)
        if config is not None:
            config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    with caplog.at_level(logging.WARNING):
        RDropLoss(tiny_model_mean, num_labels=3, classifier_dropout=0.0)
    assert "no dropout" in caplog.text


def test_config_and_citation(tiny_model_mean):
    loss = RDropLoss(tiny_model_mean, num_labels=3, alpha=5.0, ce_over_passes="sum")
    assert loss.get_config_dict() == {"num_labels": 3, "alpha": 5.0, "ce_over_passes": "sum"}
    assert "liang2021rdrop" in loss.citation
