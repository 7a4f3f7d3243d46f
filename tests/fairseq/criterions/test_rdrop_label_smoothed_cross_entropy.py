"""rdrop_label_smoothed_cross_entropy (R-Drop) against a naive reference on a tiny in-memory transformer."""

from __future__ import annotations

import pytest
import torch

from tests.fairseq.translation_utils import grad_norm, label_smoothed_ce, make_sample, rdrop_criterion


def test_rdrop_alpha_zero_equals_label_smoothed_ce(make_model, task, dictionary):
    model = make_model(dropout=0.3)
    model.train()
    sample = make_sample(dictionary, seed=3)
    torch.manual_seed(5)
    ours, size, log = rdrop_criterion(task, rdrop_alpha=0.0)(model, sample)
    torch.manual_seed(5)
    ref, ref_size, _ = label_smoothed_ce(task)(model, sample)
    assert torch.equal(ours, ref) and size == ref_size


@pytest.mark.parametrize("summed", [False, True])
def test_rdrop_without_dropout_is_ce_up_to_the_documented_averaging(make_model, task, dictionary, summed):
    model = make_model(dropout=0.0)
    model.train()
    sample = make_sample(dictionary, seed=4)
    ours, _, log = rdrop_criterion(task, rdrop_alpha=5.0, rdrop_summed_ce=summed)(model, sample)
    ref, _, ref_log = label_smoothed_ce(task)(model, sample)
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
    loss, size, log = rdrop_criterion(task, rdrop_alpha=2.0, rdrop_summed_ce=summed)(model, sample)
    expected, expected_kl = _reference_rdrop(twin, sample, dictionary.pad(), 2.0, 0.1, summed, seed=21)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(log["rdrop_kl_loss"], expected_kl.detach(), rtol=1e-4, atol=1e-5)
    assert float(expected_kl.detach()) > 1e-4  # dropout made the two copies differ
    assert size == sample["ntokens"]
    loss.backward()
    expected.backward()  # the fused gradient (CE + KL in one pass) equals autograd through the loops
    for (name, ours), theirs in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert grad_norm(model.parameters()) > 0


def test_rdrop_eval_mode_is_plain_ce_and_validation(make_model, task, dictionary):
    model = make_model(dropout=0.3)
    model.eval()
    sample = make_sample(dictionary, seed=7)
    ours, _, _ = rdrop_criterion(task, rdrop_alpha=5.0, rdrop_summed_ce=True)(model, sample)
    ref, _, _ = label_smoothed_ce(task)(model, sample)
    torch.testing.assert_close(ours, ref)
    with pytest.raises(ValueError, match="rdrop_alpha"):
        rdrop_criterion(task, rdrop_alpha=-0.5)


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


def test_official_alpha_5_equals_averaged_alpha_2_5_at_the_same_adam_learning_rate(make_model, task, dictionary):
    """Summed CE with α (official) is exactly 2x averaged CE with α/2, and Adam's step does not see a constant
    factor on the loss: the same learning rate gives the same update (not twice the learning rate, as for SGD)."""
    sample = make_sample(dictionary, seed=6)
    losses, params = [], []
    for summed, alpha in ((True, 5.0), (False, 2.5)):
        model = make_model(dropout=0.3).double()
        model.train()
        # eps ~ 0: Adam's eps (1e-8) is negligible against real gradients but would blur near-zero ones here
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-200)
        torch.manual_seed(7)  # the same dropout masks in both runs
        loss, _, log = rdrop_criterion(task, rdrop_alpha=alpha, rdrop_summed_ce=summed)(model, sample)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        assert float(log["rdrop_kl_loss"]) > 1e-4  # dropout made the copies differ: the KL term is in play
    torch.testing.assert_close(losses[0], 2 * losses[1], rtol=1e-12, atol=1e-12)
    moved = params[1] - torch.cat([p.detach().flatten() for p in make_model(dropout=0.3).double().parameters()])
    assert float(moved.abs().max()) > 1e-4
    torch.testing.assert_close(params[0], params[1], rtol=0, atol=1e-9)
