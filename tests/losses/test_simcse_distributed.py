"""SimCSELoss with gather_across_devices=True in a real two-process group (gloo on CPU)."""

from __future__ import annotations

import os

import pytest
import torch

from st_contrast.losses import SimCSELoss
from tests.conftest import SENTENCES as SHARED_SENTENCES
from tests.distributed_utils import ddp_average_, run_distributed

# the shared sentences (a worker process cannot take a fixture) and four more, for 6 rows per rank
SENTENCES = [
    *SHARED_SENTENCES,
    "a woman slices an onion",
    "the train was delayed by an hour",
    "he cooked pasta with basil",
    "students study for their exams",
]


def _load(model_dir: str):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()  # no dropout: both runs must see the same function
    return model


def _loss_and_grads(model, loss: SimCSELoss, columns: list[list[str]]):
    features = [model.preprocess(texts) for texts in columns]
    value = loss(features, None)
    model.zero_grad(set_to_none=True)
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return value.detach(), grads


def _columns(rows: list[int]) -> list[list[str]]:
    n = len(SENTENCES)
    return [[SENTENCES[(i + shift) % n] for i in rows] for shift in (0, 1, 5)]


def _worker(rank: int, world_size: int, model_dir: str, out_dir: str) -> None:
    model = _load(model_dir)
    loss = SimCSELoss(model, hard_negative_weight=1.0, gather_across_devices=True)
    per_rank = len(SENTENCES) // world_size
    rows = list(range(rank * per_rank, (rank + 1) * per_rank))
    value, grads = _loss_and_grads(model, loss, _columns(rows))
    # what DDP does: average the gradients (and, for reporting, the losses) over processes
    ddp_average_([*grads.values(), value])
    if rank == 0:
        torch.save({"loss": value, "grads": grads}, os.path.join(out_dir, "distributed.pt"))


@pytest.mark.slow
def test_two_process_gather_equals_single_process_on_concatenated_batch(tiny_model, tmp_path):
    model_dir = str(tmp_path / "model")
    tiny_model.save(model_dir)
    run_distributed(_worker, model_dir, str(tmp_path), world_size=2)
    distributed = torch.load(tmp_path / "distributed.pt", weights_only=True)

    model = _load(model_dir)
    single_loss, single_grads = _loss_and_grads(
        model, SimCSELoss(model, hard_negative_weight=1.0), _columns(list(range(len(SENTENCES))))
    )
    torch.testing.assert_close(distributed["loss"], single_loss, atol=1e-5, rtol=1e-5)
    assert set(distributed["grads"]) == set(single_grads)
    total = 0.0
    for name, grad in single_grads.items():
        torch.testing.assert_close(distributed["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)
        total += grad.abs().sum().item()
    assert total > 0, "gradients must not all be zero"
