"""mCLR and R-Drop criterions against naive references on a tiny in-memory transformer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from .conftest import make_sample


def _ls_ce(task, label_smoothing=0.1):
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    return LabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=label_smoothing)


def _mclr(task, **kwargs):
    from fairseq_plugins.criterions import LabelSmoothedCrossEntropyWithContrastive

    kwargs.setdefault("contrastive_lambda", 1.0)
    kwargs.setdefault("contrastive_temperature", 0.1)
    return LabelSmoothedCrossEntropyWithContrastive(task, sentence_avg=False, label_smoothing=0.1, **kwargs)


def _rdrop(task, **kwargs):
    from fairseq_plugins.criterions import RDropLabelSmoothedCrossEntropy

    return RDropLabelSmoothedCrossEntropy(task, sentence_avg=False, label_smoothing=0.1, **kwargs)


def _grad_norm(params) -> float:
    return sum(float(p.grad.norm()) for p in params if p.grad is not None)


# ---------------------------------------------------------------------------------------------
# mCLR
# ---------------------------------------------------------------------------------------------


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
    criterion = _mclr(task, contrastive_lambda=0.7, contrastive_temperature=0.1)
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
    ours, ours_size, ours_log = _mclr(task, contrastive_lambda=0.0)(model, sample)
    torch.manual_seed(11)
    ref, ref_size, ref_log = _ls_ce(task)(model, sample)
    assert torch.equal(ours, ref)
    assert torch.equal(ours_log["nll_loss"], ref_log["nll_loss"])
    assert ours_size == ref_size
    assert float(ours_log["contrastive_loss"]) == 0.0


def test_mclr_contrastive_gradient_reaches_encoder_only(make_model, task, dictionary):
    model = make_model(dropout=0.0)
    model.eval()
    sample = make_sample(dictionary, batch_size=4, seed=2)
    with_ctr, _, _ = _mclr(task, contrastive_lambda=1.0)(model, sample)
    without, _, _ = _mclr(task, contrastive_lambda=0.0)(model, sample)
    (with_ctr - without).backward()  # the gradient of the contrastive term alone
    encoder_layers = [p for n, p in model.encoder.named_parameters() if "layers" in n]
    decoder_only = [p for n, p in model.decoder.named_parameters() if "embed_tokens" not in n]
    assert _grad_norm(encoder_layers) > 1e-6
    assert _grad_norm(decoder_only) < 1e-9


def test_mclr_runs_the_encoder_twice_not_three_times(make_model, task, dictionary):
    model = make_model()
    model.train()
    calls = []
    handle = model.encoder.register_forward_hook(lambda m, a, o: calls.append(1))
    loss, _, _ = _mclr(task)(model, make_sample(dictionary))
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
        _mclr(task, contrastive_lambda=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        _mclr(task, contrastive_temperature=0.0)


# ---------------------------------------------------------------------------------------------
# R-Drop
# ---------------------------------------------------------------------------------------------


def test_rdrop_alpha_zero_equals_label_smoothed_ce(make_model, task, dictionary):
    model = make_model(dropout=0.3)
    model.train()
    sample = make_sample(dictionary, seed=3)
    torch.manual_seed(5)
    ours, size, log = _rdrop(task, rdrop_alpha=0.0)(model, sample)
    torch.manual_seed(5)
    ref, ref_size, _ = _ls_ce(task)(model, sample)
    assert torch.equal(ours, ref) and size == ref_size


@pytest.mark.parametrize("summed", [False, True])
def test_rdrop_without_dropout_is_ce_up_to_the_documented_averaging(make_model, task, dictionary, summed):
    model = make_model(dropout=0.0)
    model.train()
    sample = make_sample(dictionary, seed=4)
    ours, _, log = _rdrop(task, rdrop_alpha=5.0, rdrop_summed_ce=summed)(model, sample)
    ref, _, ref_log = _ls_ce(task)(model, sample)
    torch.testing.assert_close(ours, ref * (2.0 if summed else 1.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log["nll_loss"], ref_log["nll_loss"], rtol=1e-5, atol=1e-5)
    assert float(log["rdrop_kl_loss"]) < 1e-6


def _reference_rdrop(model, sample, pad, alpha, eps, summed, seed):
    """Two copies in one forward (same RNG draw as the criterion), KL with explicit loops over tokens."""
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

    net_input = {k: torch.cat([v, v]) for k, v in sample["net_input"].items()}
    torch.manual_seed(seed)
    lprobs = model.get_normalized_probs(model(**net_input), log_probs=True)
    b = sample["target"].size(0)
    target = sample["target"]
    ce = []
    for half in (lprobs[:b], lprobs[b:]):
        loss, _ = label_smoothed_nll_loss(half.reshape(-1, half.size(-1)), target.reshape(-1), eps, ignore_index=pad)
        ce.append(loss)
    kl = 0.0
    for i in range(b):
        for t in range(target.size(1)):
            if target[i, t] == pad:
                continue
            lp, lq = lprobs[i, t], lprobs[b + i, t]
            kl = kl + 0.5 * ((lp.exp() * (lp - lq)).sum() + (lq.exp() * (lq - lp)).sum())
    ce_total = ce[0] + ce[1] if summed else 0.5 * (ce[0] + ce[1])
    return ce_total + alpha * kl, kl


@pytest.mark.parametrize("summed", [False, True])
def test_rdrop_matches_reference_and_kl_is_positive(make_model, task, dictionary, summed):
    import copy

    model = make_model(dropout=0.3)
    model.train()
    twin = copy.deepcopy(model)
    sample = make_sample(dictionary, seed=6)
    torch.manual_seed(21)
    loss, size, log = _rdrop(task, rdrop_alpha=2.0, rdrop_summed_ce=summed)(model, sample)
    expected, expected_kl = _reference_rdrop(twin, sample, dictionary.pad(), 2.0, 0.1, summed, seed=21)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(log["rdrop_kl_loss"], expected_kl.detach(), rtol=1e-4, atol=1e-5)
    assert float(expected_kl.detach()) > 1e-4  # dropout made the two copies differ
    assert size == sample["ntokens"]
    loss.backward()
    expected.backward()  # the fused gradient (CE + KL in one pass) equals autograd through the loops
    for (name, ours), theirs in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert _grad_norm(model.parameters()) > 0


def test_rdrop_eval_mode_is_plain_ce_and_validation(make_model, task, dictionary):
    model = make_model(dropout=0.3)
    model.eval()
    sample = make_sample(dictionary, seed=7)
    ours, _, _ = _rdrop(task, rdrop_alpha=5.0, rdrop_summed_ce=True)(model, sample)
    ref, _, _ = _ls_ce(task)(model, sample)
    torch.testing.assert_close(ours, ref)
    with pytest.raises(ValueError, match="rdrop_alpha"):
        _rdrop(task, rdrop_alpha=-0.5)


def test_symmetric_kl_from_log_probs_equals_symmetric_kl():
    from st_contrast.losses.functional import symmetric_kl, symmetric_kl_from_log_probs

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, 50, generator=g) * 3, torch.randn(3, 4, 50, generator=g) * 3
    mask = torch.rand(3, 4, generator=g) > 0.3
    for reduction in ("sum", "mean", "none"):
        torch.testing.assert_close(
            symmetric_kl_from_log_probs(a.log_softmax(-1), b.log_softmax(-1), mask, reduction),
            symmetric_kl(a, b, mask, reduction),
        )
    with pytest.raises(ValueError, match="reduction"):
        symmetric_kl_from_log_probs(a, b, reduction="max")


def test_report_accuracy_counts_match_fairseq_without_dropout(make_model, task, dictionary):
    """--report-accuracy: n_correct/total as fairseq's LS-CE counts them (R-Drop: of the first copy, which equals
    the only copy when there is no dropout)."""
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    model = make_model(dropout=0.0)
    model.train()
    sample = make_sample(dictionary, seed=4)
    reference = LabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1, report_accuracy=True)
    _, _, expected = reference(model, sample)
    assert expected["total"] > 0
    for criterion in (_mclr(task, report_accuracy=True), _rdrop(task, rdrop_alpha=1.0, report_accuracy=True)):
        _, _, log = criterion(model, sample)
        assert (log["n_correct"], log["total"]) == (expected["n_correct"], expected["total"]), type(criterion)
        assert {"loss", "nll_loss", "ntokens", "nsentences", "sample_size"} <= set(log)
