from __future__ import annotations

import math

import pytest
import torch

from st_contrast.losses import functional as F_


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


def test_cosine_similarity_matrix():
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    expected = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1)
    torch.testing.assert_close(F_.cosine_similarity_matrix(a, b), expected)
