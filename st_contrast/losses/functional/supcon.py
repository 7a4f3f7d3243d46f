"""Supervised contrastive learning: Khosla et al. (2020)'s SupCon and Zeng et al. (2021)'s grouping."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_temperature
from . import distributed
from .infonce import cosine_similarity_matrix


def _same_label_mask(labels_a: Tensor, labels_b: Tensor) -> Tensor:
    return labels_a.reshape(-1, 1) == labels_b.reshape(1, -1)


def _self_mask(rows: int, columns: int, self_columns: Tensor) -> Tensor:
    mask = torch.zeros(rows, columns, dtype=torch.bool, device=self_columns.device)
    mask[torch.arange(rows, device=self_columns.device), self_columns] = True
    return mask


def _scaled_cosines(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """``cos(a_i, b_j)/τ`` in float32 at least (half precision would overflow ``exp`` at small τ)."""
    similarities = cosine_similarity_matrix(a, b)
    if similarities.dtype not in (torch.float32, torch.float64):
        similarities = similarities.float()
    return similarities / temperature


def supcon_khosla_terms(
    embeddings: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    form: str = "out",
    keys: Tensor | None = None,
    key_labels: Tensor | None = None,
    self_columns: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-anchor SupCon losses (Khosla et al., 2020: eq. 2 ``L_out`` or eq. 3 ``L_in``), and which have a positive.

    Every row of ``embeddings`` (all views stacked along dim 0, ``labels`` repeated to match) is an
    anchor. Its positives are the other rows with the same label; its denominator runs over all other
    rows: ``loss_i = -1/|P(i)| Σ_{p∈P(i)} log( e(z_i, z_p) / Σ_{a≠i} e(z_i, z_a) )`` with
    ``e(a, b) = exp(cos(a, b)/τ)``. That is ``form="out"`` (the mean over positives outside the log, the
    paper's recommended ``L_out``); ``form="in"`` puts it inside:
    ``loss_i = -log( 1/|P(i)| Σ_{p∈P(i)} e(z_i, z_p) / Σ_{a≠i} e(z_i, z_a) )`` (``L_in``, eq. 3).

    Returns ``(per_anchor, has_positive)``: anchors without a positive get a loss of exactly 0 (and no
    gradient) and ``has_positive`` False, so callers can skip and count them. Needs at least 2 rows.

    ``keys``/``key_labels``/``self_columns`` (the rows of every process, and where each anchor sits among
    them) make the anchors' candidates the gathered global batch; by default the candidates are the anchors.
    """
    if form not in ("out", "in"):
        raise ValueError(f"form must be 'out' (L_out, sum outside the log) or 'in' (L_in, inside it), got {form!r}")
    if keys is None:
        keys, key_labels = embeddings, labels
        self_columns = torch.arange(embeddings.shape[0], device=embeddings.device)
    n = keys.shape[0]
    if n < 2:
        raise ValueError(f"SupCon needs at least 2 embeddings (anchor and candidates), got {n}")
    self_mask = _self_mask(embeddings.shape[0], n, self_columns)
    logits = _scaled_cosines(embeddings, keys, temperature)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = _same_label_mask(labels, key_labels) & ~self_mask
    counts = positives.sum(dim=1)
    if form == "in":
        # log of the mean of the positives' probabilities; anchors without a positive give exactly 0
        log_mean = torch.logsumexp(log_prob.masked_fill(~positives, float("-inf")), dim=1)
        log_mean = log_mean - counts.clamp(min=1).to(log_prob.dtype).log()
        per_anchor = -log_mean.masked_fill(counts == 0, 0.0)
        return per_anchor, counts > 0
    summed = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    per_anchor = -summed / counts.clamp(min=1)
    return per_anchor, counts > 0


def supcon_zeng_terms(
    clean: Tensor,
    adversarial: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    all_clean: Tensor | None = None,
    all_adversarial: Tensor | None = None,
    all_labels: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """Per-anchor SupCon losses with the grouping of Zeng et al. (2021)'s official code; shape ``(2n,)``.

    Rows ``0..n-1`` are the clean anchors, rows ``n..2n-1`` the adversarial ones. For the clean anchor
    ``i`` and a same-label example ``j ≠ i``, the clean and adversarial views of ``j`` share one log
    term: ``log( (e(c_i, c_j) + e(c_i, a_j)) / D_i )``; the anchor's own adversarial view gives
    ``log( e(c_i, a_i) / D_i )``. ``D_i = Σ_{k≠i} e(c_i, c_k) + Σ_k e(c_i, a_k)`` as in Khosla's form.
    The sum of the terms is divided by the number of same-label examples (the anchor included), and
    the adversarial anchors are treated symmetrically. Every anchor has a positive (its other view).

    The official code returns the mean over ``i`` of the clean plus the adversarial term, i.e. twice
    ``per_anchor.mean()`` of this function (tested); this form keeps the scale of :func:`supcon_khosla_terms`.

    ``all_clean``/``all_adversarial``/``all_labels`` (every process's rows; this process's start at ``offset``)
    make the candidates the gathered global batch; by default they are the local rows.
    """
    n = clean.shape[0]
    if adversarial.shape[0] != n or labels.shape[0] != n:
        raise ValueError(
            f"clean ({n}), adversarial ({adversarial.shape[0]}) and labels ({labels.shape[0]}) "
            "must have the same length"
        )
    if all_clean is None:
        all_clean, all_adversarial, all_labels, offset = clean, adversarial, labels, 0
    rows = torch.arange(n, device=clean.device) + offset
    eye = _self_mask(n, all_clean.shape[0], rows)
    same = _same_label_mask(labels, all_labels)
    s_cc = _scaled_cosines(clean, all_clean, temperature).masked_fill(eye, float("-inf"))
    s_aa = _scaled_cosines(adversarial, all_adversarial, temperature).masked_fill(eye, float("-inf"))
    s_ca = _scaled_cosines(clean, all_adversarial, temperature)
    s_ac = _scaled_cosines(adversarial, all_clean, temperature)
    counts = same.sum(dim=1).to(s_ca.dtype)
    per_view = []
    for same_view, cross in ((s_cc, s_ca), (s_aa, s_ac)):
        denominator = torch.logsumexp(torch.cat([same_view, cross], dim=1), dim=1, keepdim=True)
        numerator = torch.logaddexp(same_view, cross)
        terms = (numerator - denominator).masked_fill(~same, 0.0).sum(dim=1)
        per_view.append(-terms / counts)
    return torch.cat(per_view)


def supcon_loss(
    embeddings: Tensor | list[Tensor],
    labels: Tensor,
    temperature: float = 0.1,
    variant: str = "khosla",
    form: str = "out",
    no_positive: str = "drop",
    gather_across_devices: bool = False,
) -> tuple[Tensor, int]:
    """Supervised contrastive loss, averaged over the anchors that have a positive (``no_positive="drop"``).

    ``embeddings`` is one ``(n, d)`` tensor (one view) or a list of views of the same ``n`` examples
    (``labels`` has length ``n``). ``variant="khosla"`` stacks the views and treats every row as an
    anchor (:func:`supcon_khosla_terms`); ``variant="zeng"`` needs exactly two views, clean then
    adversarial (:func:`supcon_zeng_terms`). ``form`` (``"out"``: ``L_out``, ``"in"``: ``L_in``) picks
    Khosla et al.'s eq. 2 or eq. 3 for ``variant="khosla"``; the Zeng grouping exists only as ``"out"``.

    Returns ``(loss, skipped)``, ``skipped`` being the number of anchors without any positive. With
    ``no_positive="drop"`` (ours) they are left out of the mean; with ``no_positive="zero"`` (the official
    SupCon repository, HobbitLong/SupContrast) they stay in it as zero terms, so the loss is the sum over
    the anchors with a positive divided by *all* anchors. When every anchor is skipped the loss is a zero
    that is still connected to the graph (so ``backward`` works and gives zero gradients), never NaN.

    With ``gather_across_devices`` (in a process group) every process's views and labels are candidates (positives
    and negatives) for the local anchors, and the local loss is ``W · Σ_local / kept_global`` (with
    ``no_positive="zero"``: ``W · Σ_local / anchors_global``): with DDP averaging the gradients over the ``W``
    processes, loss and gradients are those of one process holding the concatenated batch, whatever the batch
    sizes (tested with two gloo processes). ``skipped`` counts the local anchors.
    """
    temperature = check_temperature(temperature)
    if form not in ("out", "in"):
        raise ValueError(f"form must be 'out' (L_out, sum outside the log) or 'in' (L_in, inside it), got {form!r}")
    if no_positive not in ("drop", "zero"):
        raise ValueError(
            f"no_positive must be 'drop' (left out of the mean) or 'zero' (zero terms), got {no_positive!r}"
        )
    views = [embeddings] if isinstance(embeddings, Tensor) else list(embeddings)
    gather = gather_across_devices and distributed.is_distributed()
    if variant == "zeng":
        if form != "out":
            raise ValueError("variant='zeng' is defined with the sum outside the log only: use form='out'")
        if len(views) != 2:
            raise ValueError(
                f"variant='zeng' groups a clean and an adversarial view: it needs 2 views, got {len(views)}"
            )
    elif variant != "khosla":
        raise ValueError(f"variant must be 'khosla' or 'zeng', got {variant!r}")
    if not gather:
        if variant == "zeng":
            return supcon_zeng_terms(views[0], views[1], labels, temperature).mean(), 0
        stacked = torch.cat(views, dim=0)
        per_anchor, has_positive = supcon_khosla_terms(stacked, labels.repeat(len(views)), temperature, form)
        kept = int(has_positive.sum())
        skipped = per_anchor.shape[0] - kept
        if kept == 0:
            return stacked.sum() * 0.0, skipped
        return per_anchor.sum() / (per_anchor.shape[0] if no_positive == "zero" else kept), skipped
    n = labels.shape[0]
    offset = distributed.local_offset(n, labels.device)
    gathered = [distributed.all_gather_with_grad(view) for view in views]
    all_labels = distributed.all_gather_with_grad(labels)
    total = all_labels.shape[0]
    world = distributed.world_size()
    if variant == "zeng":
        per_anchor = supcon_zeng_terms(
            views[0], views[1], labels, temperature, gathered[0], gathered[1], all_labels, offset
        )
        return per_anchor.sum() * world / (2 * total), 0
    rows = torch.arange(n, device=labels.device) + offset
    self_columns = torch.cat([rows + v * total for v in range(len(views))])
    per_anchor, has_positive = supcon_khosla_terms(
        torch.cat(views, dim=0), labels.repeat(len(views)), temperature, form,
        keys=torch.cat(gathered, dim=0), key_labels=all_labels.repeat(len(views)), self_columns=self_columns,
    )  # fmt: skip
    kept_local = int(has_positive.sum())
    kept = distributed.sum_over_processes(kept_local, labels.device)
    if kept == 0:
        return torch.cat(views, dim=0).sum() * 0.0, per_anchor.shape[0] - kept_local
    denominator = total * len(views) if no_positive == "zero" else kept
    return per_anchor.sum() * world / denominator, per_anchor.shape[0] - kept_local
