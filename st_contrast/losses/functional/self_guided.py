"""Self-guided contrastive learning (Kim, Yoo and Lee, ACL 2021): the SG and SG-OPT objectives."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_temperature
from . import distributed
from .infonce import cosine_similarity_matrix, info_nce


def _float32_cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    # τ = 0.01 multiplies similarity errors by 100: keep the similarities in float32 (or float64) even under autocast
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    with torch.autocast(device_type=a.device.type, enabled=False):
        return cosine_similarity_matrix(a.to(dtype), b.to(dtype))


def sg_opt_loss(
    cls_embeddings: Tensor, guide_embeddings: Tensor, temperature: float = 0.01, gather_across_devices: bool = False
) -> Tensor:
    """SG-OPT (Kim, Yoo and Lee, ACL 2021, sec. 3.2): [CLS] vectors against every layer of the frozen guide.

    ``cls_embeddings`` (``c``) is ``(B, D)``; ``guide_embeddings`` (``h``) is ``(B, L, D)``, one vector per
    sentence and guide layer. There is one logit row per pair ``(i, k)``: the positive ``cos(c_i, h_ik)``
    followed by the negatives ``cos(c_i, h_mn)`` for every other sentence ``m ≠ i`` and every layer ``n``,
    all divided by ``τ``, with target 0. The row cross-entropies are summed and divided by ``B·L``. Only the
    [CLS]→guide direction is used: there are no [CLS]–[CLS] or guide–guide negatives.

    The ``(B·L) × (1 + (B−1)·L)`` logit matrix is never built: the negatives of row ``(i, k)`` depend on
    ``i`` only, so their log-sum-exp is taken once per sentence from one ``B × B·L`` similarity matrix.
    Similarities are computed in float32 (``τ`` is small). A batch of one has no negatives and gives 0.

    With ``gather_across_devices`` (in a process group) the negatives are every process's guide vectors, with
    gradients to their owners, and the local loss is ``W · Σ_local / (B_global·L)``: with DDP's averaging, loss
    and gradients equal one process on the concatenated batch (tested with two gloo processes).
    """
    temperature = check_temperature(temperature)
    if cls_embeddings.ndim != 2 or guide_embeddings.ndim != 3 or guide_embeddings.shape[0] != cls_embeddings.shape[0]:
        raise ValueError(
            "sg_opt_loss expects cls_embeddings of shape (B, D) and guide_embeddings of shape (B, L, D), got "
            f"{tuple(cls_embeddings.shape)} and {tuple(guide_embeddings.shape)}"
        )
    batch, layers = guide_embeddings.shape[:2]
    offset, total, all_guides = 0, batch, guide_embeddings
    gather = gather_across_devices and distributed.is_distributed()
    if gather:
        offset = distributed.local_offset(batch, cls_embeddings.device)
        all_guides = distributed.all_gather_with_grad(guide_embeddings)
        total = all_guides.shape[0]
    flat_guides = all_guides.reshape(total * layers, -1)
    logits = (_float32_cosine_matrix(cls_embeddings, flat_guides) / temperature).view(batch, total, layers)
    rows = torch.arange(batch, device=logits.device)
    positives = logits[rows, rows + offset]  # (B, L): cos(c_i, h_ik) / τ
    own = torch.zeros(batch, total, 1, dtype=torch.bool, device=logits.device)
    own[rows, rows + offset] = True
    negatives = logits.masked_fill(own, float("-inf")).flatten(1).logsumexp(dim=1, keepdim=True)  # (B, 1)
    terms = torch.logaddexp(positives, negatives) - positives
    if gather:
        return terms.sum() * distributed.world_size() / (total * layers)
    return terms.mean()


def sg_loss(
    cls_embeddings: Tensor, guide_embeddings: Tensor, temperature: float = 0.01, gather_across_devices: bool = False
) -> Tensor:
    """SG (Kim, Yoo and Lee, ACL 2021, sec. 3.1): NT-Xent between [CLS] vectors and one guide vector each.

    ``cls_embeddings`` ``c`` and ``guide_embeddings`` ``h`` are ``(B, D)`` (``h_i`` pooled from one layer
    sampled per sentence). Over the ``2B`` views ``{c_1..c_B, h_1..h_B}``, each view's positive is its
    partner (``c_i`` ↔ ``h_i``) and its negatives are all the other ``2B − 2`` views, so [CLS]–[CLS] and
    guide–guide negatives are included; the ``2B`` cross-entropies of ``cos/τ`` logits are averaged.
    Similarities are computed in float32.

    With ``gather_across_devices`` every process's views are negatives for the local ones (as in
    :func:`sg_opt_loss`: equal to one process on the concatenated batch after DDP's averaging).
    """
    temperature = check_temperature(temperature)
    if cls_embeddings.ndim != 2 or cls_embeddings.shape != guide_embeddings.shape:
        raise ValueError(
            "sg_loss expects cls_embeddings and guide_embeddings of the same shape (B, D), got "
            f"{tuple(cls_embeddings.shape)} and {tuple(guide_embeddings.shape)}"
        )
    batch = cls_embeddings.shape[0]
    views = torch.cat([cls_embeddings, guide_embeddings], dim=0)
    if not (gather_across_devices and distributed.is_distributed()):
        logits = _float32_cosine_matrix(views, views) / temperature
        logits = logits.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=logits.device), float("-inf"))
        targets = (torch.arange(2 * batch, device=logits.device) + batch) % (2 * batch)
        return info_nce(logits, targets)
    offset = distributed.local_offset(batch, views.device)
    all_cls = distributed.all_gather_with_grad(cls_embeddings)
    all_guides = distributed.all_gather_with_grad(guide_embeddings)
    total = all_cls.shape[0]
    logits = _float32_cosine_matrix(views, torch.cat([all_cls, all_guides], dim=0)) / temperature
    rows = torch.arange(batch, device=views.device) + offset
    self_columns = torch.cat([rows, rows + total])
    is_self = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    is_self[torch.arange(2 * batch, device=views.device), self_columns] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    targets = torch.cat([rows + total, rows])
    return info_nce(logits, targets, reduction="sum") * distributed.world_size() / (2 * total)
