"""SG and SG-OPT objectives (st_contrast.losses.functional.self_guided) against loop references."""

from __future__ import annotations

import pytest
import torch

from st_contrast.losses import functional as F_
from tests.losses.test_self_guided import _compare_with_grads, _leaves, reference_sg, reference_sg_opt


@pytest.mark.parametrize("batch,layers", [(2, 1), (3, 4), (5, 3)])
@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0])
def test_sg_opt_matches_loop_reference(batch, layers, tau):
    c, h = _leaves((batch, 6), (batch, layers, 6))
    _compare_with_grads(F_.sg_opt_loss(c, h, tau), reference_sg_opt(c, h, tau), [c, h])


@pytest.mark.parametrize("batch", [2, 4])
@pytest.mark.parametrize("tau", [0.01, 0.5])
def test_sg_matches_loop_reference(batch, tau):
    c, h = _leaves((batch, 6), (batch, 6), seed=batch)
    _compare_with_grads(F_.sg_loss(c, h, tau), reference_sg(c, h, tau), [c, h])


def test_sg_opt_float32_under_autocast_matches_reference():
    c, h = _leaves((4, 8), (4, 3, 8), seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = F_.sg_opt_loss(c.float(), h.float(), 0.01)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), reference_sg_opt(c, h, 0.01), rtol=1e-4, atol=1e-4)


def test_functional_shape_errors():
    with pytest.raises(ValueError, match=r"\(B, L, D\)"):
        F_.sg_opt_loss(torch.randn(3, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match="same shape"):
        F_.sg_loss(torch.randn(3, 4), torch.randn(2, 4))
