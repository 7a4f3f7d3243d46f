"""The InfoNCE family on embedding matrices: SimCSE, NT-Xent (SimCLR / DeCLUTR), ConSERT and CIL's logits.

Every function here is a cross-entropy over cosine-similarity logits divided by a temperature ``τ``; they
differ in which rows are queries and which columns are candidates. Gathering across processes goes through
:mod:`st_contrast.losses.functional.distributed` (looked up at call time, so tests can fake a process group).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_temperature
from . import distributed


def cosine_similarity_matrix(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``cos(a_i, b_j)`` for every pair: an ``(len(a), len(b))`` matrix.

    Normalising first and taking one matrix product is both faster and more memory-friendly than
    broadcasting ``F.cosine_similarity`` over an ``(n, m, d)`` tensor.
    """
    a = F.normalize(a, p=2, dim=-1, eps=eps)
    b = F.normalize(b, p=2, dim=-1, eps=eps)
    return a @ b.transpose(-2, -1)


def info_nce(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of each row of (already scaled) ``logits`` against its positive column."""
    return F.cross_entropy(logits, targets, reduction=reduction)


def simcse_logits(
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor | None = None,
    temperature: float = 0.05,
    hard_negative_weight: float = 0.0,
    anchor_offset: int = 0,
) -> Tensor:
    """SimCSE's logits (Gao et al., 2021, eq. 1 and 5).

    ``[cos(z1_i, z2_j) | cos(z1_i, z3_j)] / τ``: ``B × M`` without hard negatives, ``B × 2M`` with
    them, where ``M`` is the number of candidates (the global batch when gathered) and ``B`` the
    number of anchors. ``hard_negative_weight`` is added to the (scaled) logit of each anchor's own
    hard negative, as in the official code. ``anchor_offset`` is the index of anchor 0 among the
    candidates (non-zero when the candidates were gathered from several processes).
    """
    logits = cosine_similarity_matrix(anchors, positives) / temperature
    if negatives is not None:
        negative_logits = cosine_similarity_matrix(anchors, negatives) / temperature
        if hard_negative_weight:
            rows = torch.arange(anchors.shape[0], device=anchors.device)
            bonus = torch.zeros_like(negative_logits)
            bonus[rows, rows + anchor_offset] = hard_negative_weight
            negative_logits = negative_logits + bonus
        logits = torch.cat([logits, negative_logits], dim=1)
    return logits


def simcse_loss(
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor | None = None,
    temperature: float = 0.05,
    hard_negative_weight: float = 0.0,
    gather_across_devices: bool = False,
) -> Tensor:
    """SimCSE's InfoNCE: each anchor must pick its own positive among all positives (and negatives).

    One direction only (the anchors ``z1`` are the queries); no anchor–anchor negatives. With
    ``gather_across_devices`` the positives and negatives of every process become candidates, and
    the local anchors keep their gradient path (see :func:`.distributed.all_gather_with_grad`).
    """
    temperature = check_temperature(temperature)
    offset = 0
    if gather_across_devices and distributed.is_distributed():
        offset = distributed.local_offset(anchors.shape[0], anchors.device)
        positives = distributed.all_gather_with_grad(positives)
        if negatives is not None:
            negatives = distributed.all_gather_with_grad(negatives)
    logits = simcse_logits(anchors, positives, negatives, temperature, hard_negative_weight, offset)
    targets = torch.arange(anchors.shape[0], device=anchors.device) + offset
    return info_nce(logits, targets)


def nt_xent_logits(queries: Tensor, keys: Tensor, temperature: float, self_columns: Tensor) -> Tensor:
    """``cos(q_i, k_j)/τ`` with each query's own column (``self_columns[i]``) set to ``-inf``."""
    logits = cosine_similarity_matrix(queries, keys) / temperature
    rows = torch.arange(queries.shape[0], device=queries.device)
    is_self = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    is_self[rows, self_columns] = True
    return logits.masked_fill(is_self, float("-inf"))


def nt_xent_loss(
    anchors: Tensor,
    positives: Tensor,
    temperature: float = 0.05,
    gather_across_devices: bool = False,
) -> Tensor:
    """NT-Xent (Chen et al. 2020, SimCLR; used by DeCLUTR, Giorgi et al. 2021, eq. 1) over ``2N`` views.

    The ``2N`` rows ``[anchors; positives]`` are all queries. Row ``i``'s positive is its partner
    (anchor ``i`` <-> positive ``i``); every other row, anchor or positive, is a negative; its own
    row is excluded. ``loss = mean over the 2N rows of -log(e(i, partner) / Σ_{k≠i} e(i, k))`` with
    ``e(a, b) = exp(cos(a, b)/τ)``. This is SimCSE's InfoNCE made symmetric and with anchor-anchor
    (and positive-positive) negatives added.

    With ``gather_across_devices`` the anchors and positives of every process become candidates and
    each process computes the rows of its own ``2n`` local views (local mean). With DDP averaging the
    parameter gradients over ``W`` processes of equal batch size, this reproduces exactly the loss
    and gradients of one process holding the concatenated batch (see :func:`.distributed.all_gather_with_grad`).
    """
    temperature = check_temperature(temperature)
    if anchors.shape != positives.shape:
        raise ValueError(
            f"nt_xent_loss needs one positive per anchor: got anchors {tuple(anchors.shape)} and positives "
            f"{tuple(positives.shape)}"
        )
    n = anchors.shape[0]
    offset = 0
    all_anchors, all_positives = anchors, positives
    if gather_across_devices and distributed.is_distributed():
        offset = distributed.local_offset(n, anchors.device)
        all_anchors = distributed.all_gather_with_grad(anchors)
        all_positives = distributed.all_gather_with_grad(positives)
    total = all_anchors.shape[0]
    rows = torch.arange(n, device=anchors.device) + offset
    queries = torch.cat([anchors, positives], dim=0)
    keys = torch.cat([all_anchors, all_positives], dim=0)
    self_columns = torch.cat([rows, rows + total])
    targets = torch.cat([rows + total, rows])
    return info_nce(nt_xent_logits(queries, keys, temperature, self_columns), targets)


def consert_loss(
    view_a: Tensor,
    view_b: Tensor,
    temperature: float = 0.1,
    gather_across_devices: bool = False,
) -> Tensor:
    """ConSERT's NT-Xent: ``CE([h_a·h_bᵀ, h_a·h_aᵀ − ∞·I]/τ) + CE([h_b·h_aᵀ, h_b·h_bᵀ − ∞·I]/τ)``.

    ``h`` are the L2-normalised views; each CE is a mean over the ``N`` sentences with targets on the
    diagonal of the cross-view block, and the two directions are **summed** (official code), so the
    value is exactly ``2 ·`` :func:`nt_xent_loss` (same candidates: the other view of every sentence
    and the same view of the other sentences), which this calls, gathering included.
    """
    return 2.0 * nt_xent_loss(view_a, view_b, temperature=temperature, gather_across_devices=gather_across_devices)


def cil_logits(
    instances: Tensor,
    positives: Tensor,
    bags: Tensor,
    temperature: float = 0.05,
    negatives: str = "other_bags",
    candidates: tuple[Tensor, Tensor, int] | None = None,
) -> Tensor:
    """CIL's InfoNCE logits: column 0 the positive, then one column per negative (``-inf`` where none).

    Row ``i`` is instance ``x_i`` of bag ``i`` (the bag's anchor); ``positives[i]`` its augmented copy;
    ``bags`` the ``B`` bag representations. With ``e(a, b) = exp(cos(a, b)/τ)``:

    * ``"other_bags"`` (the paper): ``loss_i = -log e(x_i, x*_i) / (e(x_i, x*_i) + Σ_{j≠i} e(x_i, B_j))``,
      negatives summed along the bag axis of the instance × bag similarity matrix.
    * ``"official"``: the official code's axis, the same matrix summed along the instance axis:
      ``Σ_{j≠i} e(x_j, B_i)``, the other bags' instances against bag ``i``.

    ``candidates = (all_instances, all_bags, offset)``, the rows of every process (this one's start at
    ``offset``), makes the negatives those of the global batch; by default they are the local rows.
    """
    if negatives not in ("other_bags", "official"):
        raise ValueError(f"negatives must be 'other_bags' or 'official', got {negatives!r}")
    if not (instances.shape == positives.shape and instances.shape[0] == bags.shape[0]):
        raise ValueError(
            "cil_logits needs one anchor instance, one positive and one bag per row, got shapes "
            f"{tuple(instances.shape)}, {tuple(positives.shape)} and {tuple(bags.shape)}"
        )
    all_instances, all_bags, offset = candidates if candidates is not None else (instances, bags, 0)
    positive = F.cosine_similarity(instances, positives, dim=-1, eps=1e-8).unsqueeze(1) / temperature
    if negatives == "official":  # local bag i against every instance x_j
        similarity = cosine_similarity_matrix(bags, all_instances) / temperature
    else:  # local instance i against every bag B_j
        similarity = cosine_similarity_matrix(instances, all_bags) / temperature
    rows = torch.arange(bags.shape[0], device=bags.device)
    own = torch.zeros(similarity.shape, dtype=torch.bool, device=bags.device)
    own[rows, rows + offset] = True
    similarity = similarity.masked_fill(own, float("-inf"))
    return torch.cat([positive, similarity], dim=1)


def cil_contrastive_loss(
    instances: Tensor,
    positives: Tensor,
    bags: Tensor,
    temperature: float = 0.05,
    negatives: str = "other_bags",
    gather_across_devices: bool = False,
) -> Tensor:
    """Mean InfoNCE of :func:`cil_logits` (target: column 0). Needs at least two bags (one negative).

    With ``gather_across_devices`` (in a process group) the negatives are every process's bags (or instances,
    for ``"official"``), with gradients to their owners, and the local loss is ``W · Σ_local / B_global``:
    with DDP's averaging, loss and gradients equal one process on the concatenated batch (tested).
    """
    temperature = check_temperature(temperature)
    if not (gather_across_devices and distributed.is_distributed()):
        if bags.shape[0] < 2:
            raise ValueError(
                f"CIL's contrastive loss needs at least 2 bags per batch (negatives), got {bags.shape[0]}"
            )
        logits = cil_logits(instances, positives, bags, temperature, negatives)
        targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return info_nce(logits, targets)
    offset = distributed.local_offset(bags.shape[0], bags.device)
    all_instances = distributed.all_gather_with_grad(instances)
    all_bags = distributed.all_gather_with_grad(bags)
    total = all_bags.shape[0]
    logits = cil_logits(instances, positives, bags, temperature, negatives, (all_instances, all_bags, offset))
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    per_row = F.cross_entropy(logits, targets, reduction="sum")
    return per_row * distributed.world_size() / total
