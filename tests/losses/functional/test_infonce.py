"""InfoNCE family (st_contrast.losses.functional.infonce): cosine logits, SimCSE, NT-Xent, ConSERT, CIL."""

from __future__ import annotations

import math

import pytest
import torch

from st_contrast.losses import functional as F_
from tests.losses.test_cil import reference_cil_infonce
from tests.losses.test_declutr import reference_nt_xent


def test_cosine_similarity_matrix():
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    expected = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1)
    torch.testing.assert_close(F_.cosine_similarity_matrix(a, b), expected)


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("tau", [0.05, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nt_xent_matches_loop_reference(n, tau, dtype):
    torch.manual_seed(0)
    a, p = torch.randn(n, 8, dtype=dtype), torch.randn(n, 8, dtype=dtype)
    value = F_.nt_xent_loss(a, p, temperature=tau)
    torch.testing.assert_close(
        value.double(), torch.tensor(reference_nt_xent(a, p, tau), dtype=torch.float64), rtol=1e-4, atol=1e-5
    )


def test_nt_xent_is_simcse_logits_plus_same_side_negatives():
    """Each anchor row is SimCSE's row (a_i vs all p_j) with the other anchors appended as negatives."""
    torch.manual_seed(2)
    tau = 0.1
    a, p = torch.randn(4, 8), torch.randn(4, 8)
    eye = torch.eye(4, dtype=torch.bool)

    def half(q, k):
        same_side = (F_.cosine_similarity_matrix(q, q) / tau).masked_fill(eye, float("-inf"))
        return F_.info_nce(torch.cat([F_.simcse_logits(q, k, temperature=tau), same_side], dim=1), torch.arange(4))

    torch.testing.assert_close(F_.nt_xent_loss(a, p, tau), 0.5 * (half(a, p) + half(p, a)))
    # without same-side negatives the anchor half is exactly SimCSE's loss
    torch.testing.assert_close(
        F_.info_nce(F_.simcse_logits(a, p, temperature=tau), torch.arange(4)), F_.simcse_loss(a, p, temperature=tau)
    )


def test_nt_xent_rejects_mismatched_shapes_and_is_finite_on_identical_views():
    with pytest.raises(ValueError, match="one positive per anchor"):
        F_.nt_xent_loss(torch.randn(3, 4), torch.randn(2, 4))
    z = torch.zeros(4, 8)
    assert torch.isfinite(F_.nt_xent_loss(z, z))


def reference_consert(a, b, tau):
    """ConSERT's NT-Xent as plain loops: for each view, CE over [other view (all), same view (others)]; summed."""

    def cos(x, y):
        return float(torch.dot(x, y) / (x.norm() * y.norm()))

    def direction(q, k):
        n = q.shape[0]
        total = 0.0
        for i in range(n):
            numerator = math.exp(cos(q[i], k[i]) / tau)
            denominator = sum(math.exp(cos(q[i], k[j]) / tau) for j in range(n))
            denominator += sum(math.exp(cos(q[i], q[j]) / tau) for j in range(n) if j != i)
            total += -math.log(numerator / denominator)
        return total / n

    return direction(a, b) + direction(b, a)


def differentiable_reference(a, b, tau):
    def direction(q, k):
        rows = []
        for i in range(q.shape[0]):
            cand = [torch.cosine_similarity(q[i], k[j], dim=0) / tau for j in range(k.shape[0])]
            cand += [torch.cosine_similarity(q[i], q[j], dim=0) / tau for j in range(q.shape[0]) if j != i]
            rows.append(-(cand[i] - torch.logsumexp(torch.stack(cand), dim=0)))
        return torch.stack(rows).mean()

    return direction(a, b) + direction(b, a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [0.1, 0.05, 1.0])
def test_consert_nt_xent_matches_loop_reference(dtype, tau):
    torch.manual_seed(0)
    a, b = torch.randn(5, 8, dtype=dtype), torch.randn(5, 8, dtype=dtype)
    value = F_.consert_loss(a, b, temperature=tau)
    expected = reference_consert(a.double(), b.double(), tau)
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-5)


def test_nt_xent_gradients_match_the_reference():
    torch.manual_seed(1)
    a = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    F_.consert_loss(a, b, 0.1).backward()
    ours = a.grad.clone(), b.grad.clone()
    a.grad = b.grad = None
    differentiable_reference(a, b, 0.1).backward()
    for mine, theirs in zip(ours, (a.grad, b.grad)):
        assert mine.abs().sum() > 0, "gradient must not be all zero"
        torch.testing.assert_close(mine, theirs)


def test_consert_is_twice_nt_xent():
    torch.manual_seed(2)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    torch.testing.assert_close(F_.consert_loss(a, b, 0.1), 2 * F_.nt_xent_loss(a, b, 0.1))


@pytest.mark.parametrize("rule", ["other_bags", "official"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_infonce_matches_loop(rule, dtype):
    torch.manual_seed(0)
    x, x_pos, bags = (torch.randn(5, 8, dtype=dtype) for _ in range(3))
    value = F_.cil_contrastive_loss(x, x_pos, bags, temperature=0.1, negatives=rule)
    expected = reference_cil_infonce(x.double(), x_pos.double(), bags.double(), 0.1, rule)
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-5)


def test_infonce_gradients_match_autograd_of_loop_and_rules_differ():
    torch.manual_seed(1)
    leaves = [torch.randn(4, 6, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    grads = {}
    for rule in ("other_bags", "official"):
        value = F_.cil_contrastive_loss(*leaves, temperature=0.2, negatives=rule)
        grads[rule] = torch.autograd.grad(value, leaves)

        def loop(x, p, b, rule=rule):
            tau = 0.2
            cos = torch.nn.functional.cosine_similarity
            terms = []
            for i in range(x.shape[0]):
                pos = torch.exp(cos(x[i], p[i], dim=0) / tau)
                others = [j for j in range(x.shape[0]) if j != i]
                if rule == "other_bags":
                    neg = sum(torch.exp(cos(x[i], b[j], dim=0) / tau) for j in others)
                else:
                    neg = sum(torch.exp(cos(x[j], b[i], dim=0) / tau) for j in others)
                terms.append(-torch.log(pos / (pos + neg)))
            return torch.stack(terms).mean()

        expected = torch.autograd.grad(loop(*leaves), leaves)
        for ours, ref in zip(grads[rule], expected):
            assert ref.abs().sum() > 0, "gradient must not be all zero"
            torch.testing.assert_close(ours, ref)
    # the two rules are genuinely different objectives
    assert not torch.allclose(grads["other_bags"][2], grads["official"][2])


def test_infonce_needs_two_bags_and_a_known_rule():
    x = torch.randn(1, 4)
    with pytest.raises(ValueError, match="at least 2 bags"):
        F_.cil_contrastive_loss(x, x, x)
    with pytest.raises(ValueError, match="'other_bags' or 'official'"):
        F_.cil_logits(torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 4), negatives="rows")
