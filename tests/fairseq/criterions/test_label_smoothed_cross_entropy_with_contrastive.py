"""label_smoothed_cross_entropy_with_contrastive (mCLR) against a naive reference on a tiny in-memory transformer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.fairseq.translation_utils import grad_norm, label_smoothed_ce, make_sample, mclr_criterion


def _reference_mclr(model, sample, pad, lam, tau, eps):
    """Naive mCLR: each sentence encoded alone (no padding), loops for the means and the softmax."""
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

    net_output = model(**sample["net_input"])
    lprobs = model.get_normalized_probs(net_output, log_probs=True)
    ls, _ = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), sample["target"].view(-1), eps, ignore_index=pad)

    def encode_alone(tokens):
        tokens = tokens[tokens.ne(pad)].unsqueeze(0)
        out = model.encoder(tokens, src_lengths=torch.tensor([tokens.size(1)]))
        states = out["encoder_out"][0][:, 0, :]  # T x C
        return sum(states[t] for t in range(states.size(0))) / states.size(0)

    batch = sample["target"].size(0)
    src = [encode_alone(sample["net_input"]["src_tokens"][i]) for i in range(batch)]
    langtok = sample["net_input"]["prev_output_tokens"][:, 0]
    tgt = [encode_alone(torch.cat([langtok[i : i + 1], sample["target"][i]])) for i in range(batch)]
    ctr = 0.0
    for i in range(batch):
        sims = [F.cosine_similarity(src[i], tgt[j], dim=0) / tau for j in range(batch)]
        ctr = ctr - (sims[i] - torch.logsumexp(torch.stack(sims), dim=0))
    return ls + lam * sample["ntokens"] / batch * ctr, ctr


def test_mclr_matches_naive_reference(make_model, task, dictionary):
    model = make_model(dropout=0.0)
    model.eval()
    sample = make_sample(dictionary, batch_size=5)
    criterion = mclr_criterion(task, contrastive_lambda=0.7, contrastive_temperature=0.1)
    loss, sample_size, log = criterion(model, sample)
    expected, expected_ctr = _reference_mclr(model, sample, dictionary.pad(), 0.7, 0.1, 0.1)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(log["contrastive_loss"], expected_ctr.detach(), rtol=1e-4, atol=1e-4)
    assert sample_size == sample["ntokens"]
    assert float(log["contrastive_loss"]) > 0


def test_mclr_lambda_zero_equals_fairseq_label_smoothed_ce_exactly(make_model, task, dictionary):
    model = make_model(dropout=0.3)
    model.train()
    sample = make_sample(dictionary, batch_size=4, seed=1)
    torch.manual_seed(11)
    ours, ours_size, ours_log = mclr_criterion(task, contrastive_lambda=0.0)(model, sample)
    torch.manual_seed(11)
    ref, ref_size, ref_log = label_smoothed_ce(task)(model, sample)
    assert torch.equal(ours, ref)
    assert torch.equal(ours_log["nll_loss"], ref_log["nll_loss"])
    assert ours_size == ref_size
    assert float(ours_log["contrastive_loss"]) == 0.0


def test_mclr_contrastive_gradient_reaches_encoder_only(make_model, task, dictionary):
    model = make_model(dropout=0.0)
    model.eval()
    sample = make_sample(dictionary, batch_size=4, seed=2)
    with_ctr, _, _ = mclr_criterion(task, contrastive_lambda=1.0)(model, sample)
    without, _, _ = mclr_criterion(task, contrastive_lambda=0.0)(model, sample)
    (with_ctr - without).backward()  # the gradient of the contrastive term alone
    encoder_layers = [p for n, p in model.encoder.named_parameters() if "layers" in n]
    decoder_only = [p for n, p in model.decoder.named_parameters() if "embed_tokens" not in n]
    assert grad_norm(encoder_layers) > 1e-6
    assert grad_norm(decoder_only) < 1e-9


def test_mclr_runs_the_encoder_twice_not_three_times(make_model, task, dictionary):
    model = make_model()
    model.train()
    calls = []
    handle = model.encoder.register_forward_hook(lambda m, a, o: calls.append(1))
    loss, _, _ = mclr_criterion(task)(model, make_sample(dictionary))
    handle.remove()
    loss.backward()
    assert len(calls) == 2  # source (shared with the translation forward) + target


def test_mclr_logging_and_validation(task):
    from fairseq.logging import metrics

    from fairseq_plugins.criterions import LabelSmoothedCrossEntropyWithContrastive as C

    with metrics.aggregate() as agg:
        C.reduce_metrics(
            [
                {
                    "loss": 10.0,
                    "nll_loss": 8.0,
                    "contrastive_loss": 6.0,
                    "ntokens": 10,
                    "nsentences": 2,
                    "sample_size": 10,
                },
                {
                    "loss": 10.0,
                    "nll_loss": 8.0,
                    "contrastive_loss": 2.0,
                    "ntokens": 10,
                    "nsentences": 2,
                    "sample_size": 10,
                },
            ]
        )
        values = agg.get_smoothed_values()
    assert values["contrastive_loss"] == pytest.approx(8.0 / 4 / math.log(2), abs=1e-3)
    assert C.logging_outputs_can_be_summed()
    with pytest.raises(ValueError, match="contrastive_lambda"):
        mclr_criterion(task, contrastive_lambda=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        mclr_criterion(task, contrastive_temperature=0.0)


def test_mclr_logs_label_smoothed_ce_as_loss_and_the_contrastive_term_apart(make_model, task, dictionary):
    from fairseq.logging import metrics

    from fairseq_plugins.criterions import LabelSmoothedCrossEntropyWithContrastive as C

    model = make_model(dropout=0.0)
    model.eval()  # validation
    sample = make_sample(dictionary, batch_size=5, seed=4)
    total, _, log = mclr_criterion(task, contrastive_lambda=0.7)(model, sample)
    ls, _, ls_log = label_smoothed_ce(task)(model, sample)
    _, expected_ctr = _reference_mclr(model, sample, dictionary.pad(), 0.7, 0.1, 0.1)
    # `loss` (fairseq's default checkpoint metric) is label-smoothed CE; the optimised total adds the term
    torch.testing.assert_close(log["loss"], ls_log["loss"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(log["contrastive_loss"], expected_ctr.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(total, ls + 0.7 * sample["ntokens"] / 5 * expected_ctr, rtol=1e-4, atol=1e-4)
    assert float(log["contrastive_loss"]) > 0 and float(total.detach()) > float(log["loss"]) + 1
    with metrics.aggregate() as ours:
        C.reduce_metrics([log])
    with metrics.aggregate() as plain:
        type(label_smoothed_ce(task)).reduce_metrics([ls_log])
    ours, plain = ours.get_smoothed_values(), plain.get_smoothed_values()
    assert ours["loss"] == pytest.approx(plain["loss"], abs=1e-3)
    assert ours["contrastive_loss"] == pytest.approx(float(expected_ctr) / 5 / math.log(2), abs=1e-3)
