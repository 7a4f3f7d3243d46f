"""mCLR's ``--contrastive-gather`` in a real two-process group (gloo on CPU) against one process that holds the
concatenated batch (the gathered reference), and its default (local negatives, as the official code)."""

from __future__ import annotations

import os

import pytest
import torch

from tests.distributed_utils import ddp_average_, run_distributed
from tests.fairseq.translation_utils import build_tiny_transformer, collate_pairs, make_pairs, mclr_criterion

SIZES = (3, 4)  # unequal shards


def _model(task):
    model = build_tiny_transformer(task, dropout=0.0, seed=0).double()
    model.eval()  # the same function in every process
    return model


def _loss_and_grads(task, sample, **kwargs):
    model = _model(task)
    loss, _, log = mclr_criterion(task, contrastive_lambda=0.7, **kwargs)(model, sample)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), log["contrastive_loss"].detach().double(), grads


def _shard(dictionary, rank: int):
    sources, targets = make_pairs(dictionary, batch_size=sum(SIZES), seed=5)
    start = sum(SIZES[:rank])
    return collate_pairs(dictionary, sources[start : start + SIZES[rank]], targets[start : start + SIZES[rank]])


def _worker(rank: int, world_size: int, task, dictionary, out_dir: str, gather: bool) -> None:
    loss, ctr, grads = _loss_and_grads(task, _shard(dictionary, rank), contrastive_gather=gather)
    # fairseq sums the workers' losses (each a sum over its tokens) and averages gradients like DDP
    for value in (loss, ctr):
        torch.distributed.all_reduce(value)
    ddp_average_(grads.values())
    if rank == 0:
        torch.save({"loss": loss, "ctr": ctr, "grads": grads}, os.path.join(out_dir, f"gather{int(gather)}.pt"))


@pytest.mark.slow
def test_gathered_negatives_equal_one_process_on_the_concatenated_batch(task, dictionary, tmp_path):
    for gather in (True, False):
        run_distributed(_worker, task, dictionary, str(tmp_path), gather, world_size=2)
    sources, targets = make_pairs(dictionary, batch_size=sum(SIZES), seed=5)
    ref_loss, ref_ctr, ref_grads = _loss_and_grads(task, collate_pairs(dictionary, sources, targets))

    gathered = torch.load(tmp_path / "gather1.pt", weights_only=True)
    torch.testing.assert_close(gathered["loss"], ref_loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gathered["ctr"], ref_ctr, rtol=1e-10, atol=1e-10)
    assert gathered["grads"].keys() == ref_grads.keys()
    encoder_grads = 0.0
    for name, grad in ref_grads.items():
        torch.testing.assert_close(gathered["grads"][name], grad / 2, rtol=1e-8, atol=1e-10)
        encoder_grads += float(grad.norm()) if name.startswith("encoder.layers") else 0.0
    assert encoder_grads > 1e-3  # the comparison is not between zeros

    # off (the default, as the official code): each worker's negatives are its own batch only, which is smaller
    local = torch.load(tmp_path / "gather0.pt", weights_only=True)
    assert float(local["ctr"]) < float(ref_ctr) - 1e-3
    shards = [_loss_and_grads(task, _shard(dictionary, rank)) for rank in range(2)]
    torch.testing.assert_close(local["ctr"], shards[0][1] + shards[1][1], rtol=1e-10, atol=1e-10)


def test_gather_without_a_process_group_changes_nothing(task, dictionary):
    sample = collate_pairs(dictionary, *make_pairs(dictionary, batch_size=5, seed=6))
    on, on_ctr, on_grads = _loss_and_grads(task, sample, contrastive_gather=True)
    off, off_ctr, off_grads = _loss_and_grads(task, sample)
    assert torch.equal(on, off) and torch.equal(on_ctr, off_ctr)
    assert all(torch.equal(on_grads[n], off_grads[n]) for n in off_grads)
