"""st_contrast.losses.functional.distributed: all-gather with gradients (one process here; the two-process
run is tests/losses/test_simcse_distributed.py)."""

from __future__ import annotations

import torch

from st_contrast.losses.functional import distributed


def test_single_process_is_the_identity():
    assert not distributed.is_distributed()
    x = torch.randn(3, 4, requires_grad=True)
    assert distributed.all_gather_with_grad(x) is x
    assert distributed.local_offset(3, x.device) == 0


def test_the_maths_sees_a_faked_group_through_the_module(fake_process_group):
    """simcse_loss looks the helpers up on the module at call time, so a faked group reaches it."""
    from st_contrast.losses import functional as F_

    torch.manual_seed(0)
    local = [torch.randn(2, 4) for _ in range(3)]
    other = [torch.randn(3, 4) for _ in range(3)]
    fake_process_group(rank=1, world_size=2, others={0: other[1:]})
    value = F_.simcse_loss(local[0], local[1], temperature=0.5, gather_across_devices=True)
    positives = torch.cat([other[1], local[1]])
    logits = F_.cosine_similarity_matrix(local[0], positives) / 0.5
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(2) + 3)
    torch.testing.assert_close(value, expected)
