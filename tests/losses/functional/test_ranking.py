"""SimCLS's ranking loss against plain loops (the choice of a candidate from scores is tested with its criterion, in
tests/fairseq/criterions/test_simcls_ranking.py)."""

from __future__ import annotations

import pytest
import torch

from st_contrast.losses.functional import simcls_ranking_loss


def loop_loss(scores, reference, margin, reference_margin=0.0, cand_w=1.0, ref_w=1.0, lengths=None):
    """The paper's eq. 3 written as loops over all pairs j < k of each document."""
    out = []
    for b, row in enumerate(scores):
        n = len(row) if lengths is None else lengths[b]
        total = torch.zeros(())
        for j in range(n):
            for k in range(j + 1, n):
                total = total + cand_w * torch.clamp(row[k] - row[j] + margin * (k - j), min=0)
        if reference is not None:
            for k in range(n):
                total = total + ref_w * torch.clamp(row[k] - reference[b] + reference_margin, min=0)
        out.append(total)
    return torch.stack(out)


def official_loop(scores, reference, margin, reference_margin=0.0, ref_w=1.0):
    """The official code's form for one document: torch's MarginRankingLoss, a mean per rank gap."""
    total = torch.zeros(())
    n = scores.size(1)
    for gap in range(1, n):
        pos, neg = scores[:, :-gap].reshape(-1), scores[:, gap:].reshape(-1)
        total = total + torch.nn.MarginRankingLoss(margin * gap)(pos, neg, torch.ones_like(pos))
    pos = reference.unsqueeze(-1).expand_as(scores).reshape(-1)
    total = total + ref_w * torch.nn.MarginRankingLoss(reference_margin)(pos, scores.reshape(-1), torch.ones_like(pos))
    return total


def test_sum_matches_the_loop_with_gradients():
    torch.manual_seed(0)
    scores = (0.05 * torch.randn(3, 6)).requires_grad_()
    reference = (0.05 * torch.randn(3)).requires_grad_()
    got = simcls_ranking_loss(scores, reference, margin=0.01, reference_margin=0.02, reference_weight=0.5)
    want = loop_loss(scores, reference, 0.01, 0.02, ref_w=0.5)
    torch.testing.assert_close(got, want)
    g_got = torch.autograd.grad(got.sum(), (scores, reference))
    g_want = torch.autograd.grad(want.sum(), (scores, reference))
    assert all(g.abs().sum() > 0 for g in g_want)  # a broken loss cannot pass with all-zero gradients
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b)


def test_margins_grow_with_the_rank_gap():
    # all candidates scored alike: every pair j<k violates its margin by exactly λ·(k−j)
    n, lam = 5, 0.01
    loss = simcls_ranking_loss(torch.zeros(1, n), None, margin=lam)
    assert loss.item() == pytest.approx(lam * sum(k - j for j in range(n) for k in range(j + 1, n)))
    # scores falling by more than λ per rank (and the reference on top) satisfy every margin
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    assert simcls_ranking_loss(scores, torch.tensor([0.95]), margin=lam).item() == 0.0
    # ... but not a margin of 0.06 between ranks 0 and 2 (gap 0.2 < 2·0.11)
    assert simcls_ranking_loss(scores, None, margin=0.11).item() > 0


def test_padding_is_ignored_even_with_inf_scores():
    torch.manual_seed(1)
    scores = torch.randn(2, 5) * 0.1
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    padded = scores.masked_fill(~mask, float("-inf")).requires_grad_()
    reference = torch.randn(2) * 0.1
    got = simcls_ranking_loss(padded, reference, candidate_mask=mask)
    want = loop_loss(scores, reference, 0.01, lengths=[5, 3])
    torch.testing.assert_close(got, want)
    (grad,) = torch.autograd.grad(got.sum(), padded)
    assert torch.isfinite(grad).all() and (grad[1, 3:] == 0).all() and grad[1, :3].abs().sum() > 0


def test_mean_per_gap_is_the_official_code_for_one_document():
    torch.manual_seed(2)
    scores, reference = torch.randn(1, 7) * 0.1, torch.randn(1) * 0.1
    got = simcls_ranking_loss(scores, reference, margin=0.01, pair_reduction="mean_per_gap")
    torch.testing.assert_close(got[0], official_loop(scores, reference, 0.01))
    # per document: a padded batch gives each document its own official value
    batch = torch.stack([scores[0], torch.cat([scores[0, :4], torch.full((3,), float("-inf"))])])
    mask = torch.isfinite(batch)
    got = simcls_ranking_loss(batch, reference.repeat(2), pair_reduction="mean_per_gap", candidate_mask=mask)
    torch.testing.assert_close(got[1], official_loop(scores[:, :4], reference, 0.01))


def test_weights_and_no_reference():
    torch.manual_seed(3)
    scores, reference = torch.randn(2, 4), torch.randn(2)
    both = simcls_ranking_loss(scores, reference, candidate_weight=2.0, reference_weight=3.0)
    cand = simcls_ranking_loss(scores, None)
    ref_only = simcls_ranking_loss(scores, reference, candidate_weight=0.0)
    torch.testing.assert_close(both, 2 * cand + 3 * ref_only)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(pair_reduction="mean"), "pair_reduction"),
        (dict(margin=-0.1), "margin"),
        (dict(reference_weight=-1.0), "weights"),
        (dict(candidate_mask=torch.ones(2, 3, dtype=torch.bool)), "candidate_mask"),
        (dict(reference_scores=torch.zeros(3)), "reference_scores"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simcls_ranking_loss(torch.zeros(2, 4), **kwargs)
    with pytest.raises(ValueError, match="batch, candidates"):
        simcls_ranking_loss(torch.zeros(4))
