"""CLINE's contrast and learned loss weights (st_contrast.losses.functional.cline)."""

from __future__ import annotations

import math

import pytest
import torch

from st_contrast.losses import functional as F_


def test_uncertainty_weighted_terms_function():
    losses = [torch.tensor(2.0), torch.tensor(3.0)]
    log_vars = torch.tensor([0.5, -1.0, 9.0])
    terms = F_.uncertainty_weighted_terms(losses, log_vars)
    torch.testing.assert_close(torch.stack(terms), torch.tensor([math.exp(-0.5) * 2 + 0.5, math.exp(1.0) * 3]))
    with pytest.raises(ValueError, match="log-variances"):
        F_.uncertainty_weighted_terms(losses * 2, log_vars)
