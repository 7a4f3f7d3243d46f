"""gather_across_devices=True in a real two-process group (gloo on CPU), against one process on the concatenated batch.

One launch checks several losses, to keep the suite fast:

* the SupCon family through the model (SupConLoss khosla / zeng, CachedSupConLoss, SupConOODLoss): loss and
  DDP-averaged parameter gradients;
* CIL's contrastive term (both negatives rules), SG-OPT and SG on fixed embeddings, with uneven batch sizes
  for SG-OPT (ours gathers those; sentence-transformers' helper needs equal ones): loss and the gradient of
  each row;
* sentence-transformers' ``all_gather_with_grad`` against ours on equal batches: values and gradients.
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.distributed_utils import ddp_average_, run_distributed
from tests.losses.test_simcse_distributed import SENTENCES, _load

LABELS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]


def _model_losses(model):
    from st_contrast.losses import CachedSupConLoss, SupConLoss, SupConOODLoss

    def make(gather: bool):
        return {
            "supcon": SupConLoss(model, gather_across_devices=gather),
            "supcon_zeng": SupConLoss(model, variant="zeng", gather_across_devices=gather),
            "cached_supcon": CachedSupConLoss(model, mini_batch_size=3, gather_across_devices=gather),
            "supcon_ood": SupConOODLoss(model, num_labels=3, rdrop_alpha=0.0, gather_across_devices=gather),
        }

    return make


def _model_run(model, name, loss, rows):
    n = len(SENTENCES)
    columns = [[SENTENCES[(i + shift) % n] for i in rows] for shift in ((0,) if name == "supcon_ood" else (0, 3))]
    features = [model.preprocess(texts) for texts in columns]
    labels = torch.tensor([LABELS[i] for i in rows])
    torch.manual_seed(0)
    value = loss(features, labels)
    if isinstance(value, dict):
        value = sum(value.values())
    model.zero_grad(set_to_none=True)
    loss.zero_grad(set_to_none=True)
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return value.detach(), grads


def _leaves():
    torch.manual_seed(7)
    return {
        "instances": torch.randn(8, 16, dtype=torch.float64),
        "positives": torch.randn(8, 16, dtype=torch.float64),
        "bags": torch.randn(8, 16, dtype=torch.float64),
        "cls": torch.randn(8, 16, dtype=torch.float64),
        "guides": torch.randn(8, 3, 16, dtype=torch.float64),
    }


def _functional_run(name, leaves, rows, gather):
    from st_contrast.losses import functional as F_

    local = {k: v[rows].clone().requires_grad_(True) for k, v in leaves.items()}
    if name.startswith("cil"):
        negatives = "official" if name == "cil_official" else "other_bags"
        value = F_.cil_contrastive_loss(
            local["instances"], local["positives"], local["bags"], 0.1, negatives, gather_across_devices=gather
        )
        used = ("instances", "positives", "bags")
    elif name.startswith("sg_opt"):
        value = F_.sg_opt_loss(local["cls"], local["guides"], 0.05, gather_across_devices=gather)
        used = ("cls", "guides")
    else:
        value = F_.sg_loss(local["cls"], local["guides"][:, 0], 0.05, gather_across_devices=gather)
        used = ("cls", "guides")
    value.backward()
    return value.detach(), {k: local[k].grad.clone() for k in used}


FUNCTIONAL = {"cil_other_bags": 4, "cil_official": 4, "sg_opt": 4, "sg_opt_uneven": 5, "sg": 4}  # rank 0's rows


def _worker(rank: int, world_size: int, model_dir: str, out_dir: str) -> None:
    from sentence_transformers.util.distributed import all_gather_with_grad as st_gather

    from st_contrast.losses.functional import distributed

    results = {}
    model = _load(model_dir)
    per_rank = len(SENTENCES) // world_size
    rows = list(range(rank * per_rank, (rank + 1) * per_rank))
    for name, loss in _model_losses(model)(True).items():
        value, grads = _model_run(model, name, loss, rows)
        ddp_average_([*grads.values(), value])  # what DDP does with the gradients
        results[name] = (value, grads)

    leaves = _leaves()
    for name, split in FUNCTIONAL.items():
        local_rows = list(range(split)) if rank == 0 else list(range(split, 8))
        value, grads = _functional_run(name, leaves, local_rows, gather=True)
        ddp_average_([value])
        results[name] = (value, {k: g / world_size for k, g in grads.items()}, local_rows)

    # sentence-transformers' gather against ours, on equal batches
    x = leaves["cls"][4 * rank : 4 * rank + 4].clone().requires_grad_(True)
    weights = torch.arange(8 * 16, dtype=torch.float64).reshape(8, 16)
    ours = distributed._AllGatherWithGrad.apply(x)
    (ours * weights).sum().backward()
    our_grad = x.grad.clone()
    x.grad = None
    theirs = st_gather(x)
    (theirs * weights).sum().backward()
    results["st_gather"] = (ours.detach(), theirs.detach(), our_grad, x.grad.clone())
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


def _close(actual, expected, what):
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4, msg=what)


@pytest.mark.slow
def test_two_process_gather_equals_one_process_on_the_concatenated_batch(tiny_model, tmp_path):
    model_dir = str(tmp_path / "model")
    tiny_model.save(model_dir)
    run_distributed(_worker, model_dir, str(tmp_path), world_size=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    model = _load(model_dir)
    for name, loss in _model_losses(model)(False).items():
        value, grads = _model_run(model, name, loss, list(range(len(SENTENCES))))
        distributed_value, distributed_grads = ranks[0][name]
        _close(distributed_value, value, name)
        assert set(distributed_grads) == set(grads), name
        assert sum(g.abs().sum() for g in grads.values()) > 0, name
        for key, grad in grads.items():
            _close(distributed_grads[key], grad, f"{name}: {key}")

    leaves = _leaves()
    for name in FUNCTIONAL:
        value, grads = _functional_run(name, leaves, list(range(8)), gather=False)
        _close(ranks[0][name][0], value, name)
        for key, grad in grads.items():
            assert grad.abs().sum() > 0, (name, key)
            for rank in ranks:
                _, rank_grads, local_rows = rank[name]
                _close(rank_grads[key], grad[local_rows], f"{name}: {key}")

    for rank in ranks:
        ours, theirs, our_grad, their_grad = rank["st_gather"]
        torch.testing.assert_close(theirs, ours)
        torch.testing.assert_close(their_grad, our_grad)
