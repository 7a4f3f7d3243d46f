"""R-Drop's symmetric KL and its fused kernels (st_contrast.losses.functional.kl)."""

from __future__ import annotations

import math

import pytest
import torch

from st_contrast.losses import functional as F_
from tests.losses.test_rdrop import reference_symmetric_kl


def test_symmetric_kl_against_loop():
    torch.manual_seed(0)
    p_logits, q_logits = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    total = 0.0
    for i in range(3):
        for t in range(4):
            if not mask[i, t]:
                continue
            p = torch.softmax(p_logits[i, t], -1).tolist()
            q = torch.softmax(q_logits[i, t], -1).tolist()
            kl_pq = sum(a * math.log(a / b) for a, b in zip(p, q))
            kl_qp = sum(b * math.log(b / a) for a, b in zip(p, q))
            total += 0.5 * (kl_pq + kl_qp)
    torch.testing.assert_close(F_.symmetric_kl(p_logits, q_logits, mask), torch.tensor(total), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        F_.symmetric_kl(p_logits, q_logits, mask, reduction="mean"), torch.tensor(total / int(mask.sum()))
    )
    assert F_.symmetric_kl(p_logits, p_logits).abs() < 1e-6
    with pytest.raises(ValueError, match="reduction"):
        F_.symmetric_kl(p_logits, q_logits, reduction="avg")


def test_symmetric_kl_is_finite_for_confident_predictions():
    big = torch.tensor([[1000.0, -1000.0]])
    value = F_.symmetric_kl(big, -big)
    assert torch.isfinite(value) and value > 100


@pytest.mark.parametrize("block_rows", [None, 2, 4, 10**9])
def test_paired_symmetric_kl_closed_form_gradient_matches_autograd(block_rows):
    """The hand-written backward of the fused R-Drop KL against autograd through the formula, in float64,
    in one block and in blocks of rows (15 positions: blocks of 2 and 4 leave a partial last block)."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    mask = torch.rand(3, 5) > 0.3
    upstream = torch.randn(())

    def reference(log_pq):
        p, q = log_pq[0].exp(), log_pq[1].exp()
        per = 0.5 * ((p * (log_pq[0] - log_pq[1])).sum(-1) + (q * (log_pq[1] - log_pq[0])).sum(-1))
        return (per * mask).sum()

    fused_input = logits.log_softmax(-1).detach().requires_grad_(True)
    ref_input = fused_input.detach().clone().requires_grad_(True)
    fused = F_.paired_symmetric_kl(fused_input, mask, reduction="sum", block_rows=block_rows)
    ref = reference(ref_input)
    (fused * upstream).backward()
    (ref * upstream).backward()
    # paired_symmetric_kl computes in float32: compare at float32 precision
    torch.testing.assert_close(fused.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused_input.grad, ref_input.grad, rtol=1e-4, atol=1e-6)
    assert fused_input.grad[:, ~mask].abs().max() == 0, "masked positions must get no gradient"
    assert fused_input.grad[:, mask].abs().sum() > 0


@pytest.mark.parametrize("block_rows", [None, 2, 4, 10**9])
@pytest.mark.parametrize("ignore_index", [1, None])
def test_paired_label_smoothed_nll_and_kl_matches_the_formulas(block_rows, ignore_index):
    """R-Drop's fused objective against loops written from the formulas (fairseq's label-smoothed NLL on both
    copies, the masked symmetric KL), values and gradients under arbitrary upstream weights, in float64."""
    torch.manual_seed(0)
    classes, eps = 7, 0.1
    log_pq = torch.randn(2, 3, 5, classes, dtype=torch.float64).log_softmax(-1)
    target = torch.randint(0, classes, (3, 5))
    target[0, 3:] = 1  # padding when ignore_index is 1
    fused_input = log_pq.clone().requires_grad_(True)
    ref_input = log_pq.clone().requires_grad_(True)
    loss, nll, kl = F_.paired_label_smoothed_nll_and_kl(fused_input, target, eps, ignore_index, block_rows)

    ref_nll = ref_smooth = ref_kl = torch.zeros((), dtype=torch.float64)
    for b in range(3):
        for t in range(5):
            if ignore_index is not None and target[b, t] == ignore_index:
                continue
            for h in range(2):
                ref_nll = ref_nll - ref_input[h, b, t, target[b, t]]
                ref_smooth = ref_smooth - ref_input[h, b, t].sum()
            lp, lq = ref_input[0, b, t], ref_input[1, b, t]
            ref_kl = ref_kl + 0.5 * ((lp.exp() * (lp - lq)).sum() + (lq.exp() * (lq - lp)).sum())
    eps_i = eps / (classes - 1)
    ref_loss = (1 - eps - eps_i) * ref_nll + eps_i * ref_smooth
    for got, want in ((loss, ref_loss), (nll, ref_nll), (kl, ref_kl)):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    weights = torch.randn(3, dtype=torch.float64)
    (weights[0] * loss + weights[1] * kl + weights[2] * nll).backward()
    (weights[0] * ref_loss + weights[1] * ref_kl + weights[2] * ref_nll).backward()
    torch.testing.assert_close(fused_input.grad, ref_input.grad, rtol=1e-4, atol=1e-6)
    if ignore_index is not None:
        assert fused_input.grad[:, 0, 3:].abs().max() == 0, "padded positions must get no gradient"


def test_paired_label_smoothed_nll_and_kl_errors():
    with pytest.raises(ValueError, match=r"shaped \(2, \.\.\., C\)"):
        F_.paired_label_smoothed_nll_and_kl(torch.zeros(3, 4, 5), torch.zeros(4, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="target must be shaped like log_pq"):
        F_.paired_label_smoothed_nll_and_kl(torch.zeros(2, 4, 5), torch.zeros(3, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        F_.paired_label_smoothed_nll_and_kl(torch.zeros(2, 4, 1), torch.zeros(4, dtype=torch.long), 0.1)


def test_paired_symmetric_kl_input_shape_errors():
    with pytest.raises(ValueError, match=r"shaped \(2, \.\.\., C\)"):
        F_.paired_symmetric_kl(torch.zeros(3, 4, 5))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="block_rows must be a positive integer"):
            F_.paired_symmetric_kl(torch.zeros(2, 4, 5), block_rows=bad)
    with pytest.raises(ValueError, match="same shape"):
        F_.symmetric_kl_from_log_probs(torch.zeros(2, 3), torch.zeros(2, 4))


def test_symmetric_kl_matches_loops_with_mask():
    torch.manual_seed(0)
    p, q = torch.randn(5, 4), torch.randn(5, 4)
    mask = torch.tensor([True, False, True, True, False])
    expected = reference_symmetric_kl(p, q, mask)
    none = F_.symmetric_kl(p, q, mask, reduction="none")
    torch.testing.assert_close(none.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    summed = F_.symmetric_kl(p, q, mask, reduction="sum").item()
    mean = F_.symmetric_kl(p, q, mask, reduction="mean").item()
    assert summed == pytest.approx(sum(expected), rel=1e-5, abs=1e-6)
    assert mean == pytest.approx(sum(expected) / 3, rel=1e-5, abs=1e-6)
