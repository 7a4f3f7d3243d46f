"""The shared contrastive maths of st-contrast, as pure functions on embedding tensors.

Every method in the package is "how the views are made" plus one of these objectives. The
sentence-transformers losses, their cached (GradCache) variants and the fairseq criteria all call
into this module, so a fix here fixes every method. Nothing here knows about models or tokenizers.

Conventions: embeddings are ``(batch, dim)`` float tensors; ``temperature`` is ``τ`` (so
sentence-transformers' ``scale`` is ``1/τ``); losses are means over anchors unless said otherwise.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def check_temperature(temperature: float) -> float:
    """Validate a temperature, returning it as a float."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"temperature must be > 0 and finite, got {temperature!r}")
    return value


def cosine_similarity_matrix(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``cos(a_i, b_j)`` for every pair: an ``(len(a), len(b))`` matrix.

    Normalising first and taking one matrix product is both faster and more memory-friendly than
    broadcasting ``F.cosine_similarity`` over an ``(n, m, d)`` tensor.
    """
    a = F.normalize(a, p=2, dim=-1, eps=eps)
    b = F.normalize(b, p=2, dim=-1, eps=eps)
    return a @ b.transpose(-2, -1)


# ---------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sends every rank's gradient back to its owner.

    The backward is an all-reduce of the gathered gradient followed by taking the local slice, which
    works on every backend (gloo has no reduce-scatter). With DDP's gradient averaging this gives
    exactly the gradients of a single process that holds the concatenated batch.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        world_size = dist.get_world_size()
        sizes = _gather_sizes(tensor.shape[0], tensor.device)
        ctx.rank = dist.get_rank()
        ctx.sizes = sizes
        max_size = max(sizes)
        if tensor.shape[0] < max_size:
            pad = tensor.new_zeros((max_size - tensor.shape[0], *tensor.shape[1:]))
            padded = torch.cat([tensor, pad], dim=0)
        else:
            padded = tensor.contiguous()
        buffers = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(buffers, padded)
        return torch.cat([buf[:n] for buf, n in zip(buffers, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def _gather_sizes(n: int, device: torch.device) -> list[int]:
    size = torch.tensor([n], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every process along dim 0, keeping gradients for all of it.

    Without an initialised process group (or with one process) it returns ``tensor`` unchanged.
    Ranks may hold different batch sizes. Gradients flowing into another rank's rows are sent back
    to that rank in the backward pass, so negatives from other devices train their own encoder.
    """
    if not is_distributed():
        return tensor
    return _AllGatherWithGrad.apply(tensor)


def local_offset(local_size: int, device: torch.device) -> int:
    """Index of this rank's first row in a gathered tensor (0 when not distributed)."""
    if not is_distributed():
        return 0
    sizes = _gather_sizes(local_size, device)
    return sum(sizes[: dist.get_rank()])


def gather_if(flag: bool, *tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """``all_gather_with_grad`` each tensor when ``flag`` is set (``None`` passes through)."""
    if not flag:
        return tensors
    return tuple(None if t is None else all_gather_with_grad(t) for t in tensors)


# ---------------------------------------------------------------------------------------------
# InfoNCE family
# ---------------------------------------------------------------------------------------------


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
    the local anchors keep their gradient path (see :func:`all_gather_with_grad`).
    """
    temperature = check_temperature(temperature)
    offset = 0
    if gather_across_devices and is_distributed():
        offset = local_offset(anchors.shape[0], anchors.device)
        positives = all_gather_with_grad(positives)
        if negatives is not None:
            negatives = all_gather_with_grad(negatives)
    logits = simcse_logits(anchors, positives, negatives, temperature, hard_negative_weight, offset)
    targets = torch.arange(anchors.shape[0], device=anchors.device) + offset
    return info_nce(logits, targets)


# ---------------------------------------------------------------------------------------------
# Consistency between two forward passes (R-Drop)
# ---------------------------------------------------------------------------------------------


def symmetric_kl(
    logits_p: Tensor,
    logits_q: Tensor,
    mask: Tensor | None = None,
    reduction: str = "sum",
) -> Tensor:
    """R-Drop's consistency term ``(KL(p‖q) + KL(q‖p)) / 2`` between two softmax distributions.

    ``logits_*`` are ``(..., C)``; the KL is summed over classes, then over positions where ``mask``
    is true (e.g. non-pad target tokens), then reduced over positions by ``reduction``
    (``"sum"``, ``"mean"`` or ``"none"``). Computed in log space so it never gives NaN for
    confident predictions.
    """
    log_p = F.log_softmax(logits_p.float(), dim=-1)
    log_q = F.log_softmax(logits_q.float(), dim=-1)
    return symmetric_kl_from_log_probs(log_p, log_q, mask, reduction)


# ---------------------------------------------------------------------------------------------
# Self-guided contrastive learning (Kim, Yoo and Lee, ACL 2021): SG and SG-OPT
# ---------------------------------------------------------------------------------------------


def _float32_cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    # τ = 0.01 multiplies similarity errors by 100: keep the similarities in float32 (or float64) even under autocast
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    with torch.autocast(device_type=a.device.type, enabled=False):
        return cosine_similarity_matrix(a.to(dtype), b.to(dtype))


def sg_opt_loss(cls_embeddings: Tensor, guide_embeddings: Tensor, temperature: float = 0.01) -> Tensor:
    """SG-OPT (Kim, Yoo and Lee, ACL 2021, sec. 3.2): [CLS] vectors against every layer of the frozen guide.

    ``cls_embeddings`` (``c``) is ``(B, D)``; ``guide_embeddings`` (``h``) is ``(B, L, D)``, one vector per
    sentence and guide layer. There is one logit row per pair ``(i, k)``: the positive ``cos(c_i, h_ik)``
    followed by the negatives ``cos(c_i, h_mn)`` for every other sentence ``m ≠ i`` and every layer ``n``,
    all divided by ``τ``, with target 0. The row cross-entropies are summed and divided by ``B·L``. Only the
    [CLS]→guide direction is used: there are no [CLS]–[CLS] or guide–guide negatives.

    The ``(B·L) × (1 + (B−1)·L)`` logit matrix is never built: the negatives of row ``(i, k)`` depend on
    ``i`` only, so their log-sum-exp is taken once per sentence from one ``B × B·L`` similarity matrix.
    Similarities are computed in float32 (``τ`` is small). A batch of one has no negatives and gives 0.
    """
    temperature = check_temperature(temperature)
    if cls_embeddings.ndim != 2 or guide_embeddings.ndim != 3 or guide_embeddings.shape[0] != cls_embeddings.shape[0]:
        raise ValueError(
            "sg_opt_loss expects cls_embeddings of shape (B, D) and guide_embeddings of shape (B, L, D), got "
            f"{tuple(cls_embeddings.shape)} and {tuple(guide_embeddings.shape)}"
        )
    batch, layers = guide_embeddings.shape[:2]
    flat_guides = guide_embeddings.reshape(batch * layers, -1)
    logits = (_float32_cosine_matrix(cls_embeddings, flat_guides) / temperature).view(batch, batch, layers)
    rows = torch.arange(batch, device=logits.device)
    positives = logits[rows, rows]  # (B, L): cos(c_i, h_ik) / τ
    own = torch.eye(batch, dtype=torch.bool, device=logits.device).unsqueeze(-1)
    negatives = logits.masked_fill(own, float("-inf")).flatten(1).logsumexp(dim=1, keepdim=True)  # (B, 1)
    return (torch.logaddexp(positives, negatives) - positives).mean()


def sg_loss(cls_embeddings: Tensor, guide_embeddings: Tensor, temperature: float = 0.01) -> Tensor:
    """SG (Kim, Yoo and Lee, ACL 2021, sec. 3.1): NT-Xent between [CLS] vectors and one guide vector each.

    ``cls_embeddings`` ``c`` and ``guide_embeddings`` ``h`` are ``(B, D)`` (``h_i`` pooled from one layer
    sampled per sentence). Over the ``2B`` views ``{c_1..c_B, h_1..h_B}``, each view's positive is its
    partner (``c_i`` ↔ ``h_i``) and its negatives are all the other ``2B − 2`` views, so [CLS]–[CLS] and
    guide–guide negatives are included; the ``2B`` cross-entropies of ``cos/τ`` logits are averaged.
    Similarities are computed in float32.
    """
    temperature = check_temperature(temperature)
    if cls_embeddings.ndim != 2 or cls_embeddings.shape != guide_embeddings.shape:
        raise ValueError(
            "sg_loss expects cls_embeddings and guide_embeddings of the same shape (B, D), got "
            f"{tuple(cls_embeddings.shape)} and {tuple(guide_embeddings.shape)}"
        )
    batch = cls_embeddings.shape[0]
    views = torch.cat([cls_embeddings, guide_embeddings], dim=0)
    logits = _float32_cosine_matrix(views, views) / temperature
    logits = logits.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=logits.device), float("-inf"))
    targets = (torch.arange(2 * batch, device=logits.device) + batch) % (2 * batch)
    return info_nce(logits, targets)


# ---------------------------------------------------------------------------------------------
# NT-Xent (SimCLR / DeCLUTR): symmetric InfoNCE over [anchors; positives]
# ---------------------------------------------------------------------------------------------


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
    and gradients of one process holding the concatenated batch (see :func:`all_gather_with_grad`).
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
    if gather_across_devices and is_distributed():
        offset = local_offset(n, anchors.device)
        all_anchors = all_gather_with_grad(anchors)
        all_positives = all_gather_with_grad(positives)
    total = all_anchors.shape[0]
    rows = torch.arange(n, device=anchors.device) + offset
    queries = torch.cat([anchors, positives], dim=0)
    keys = torch.cat([all_anchors, all_positives], dim=0)
    self_columns = torch.cat([rows, rows + total])
    targets = torch.cat([rows + total, rows])
    return info_nce(nt_xent_logits(queries, keys, temperature, self_columns), targets)


# ---------------------------------------------------------------------------------------------
# Supervised contrastive learning (SupCon; Khosla et al. 2020, and Zeng et al. 2021's grouping)
# ---------------------------------------------------------------------------------------------


def _same_label_mask(labels_a: Tensor, labels_b: Tensor) -> Tensor:
    return labels_a.reshape(-1, 1) == labels_b.reshape(1, -1)


def _scaled_cosines(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """``cos(a_i, b_j)/τ`` in float32 at least (half precision would overflow ``exp`` at small τ)."""
    similarities = cosine_similarity_matrix(a, b)
    if similarities.dtype not in (torch.float32, torch.float64):
        similarities = similarities.float()
    return similarities / temperature


def supcon_khosla_terms(embeddings: Tensor, labels: Tensor, temperature: float = 0.1) -> tuple[Tensor, Tensor]:
    """Per-anchor SupCon losses ("L_out" of Khosla et al., 2020, eq. 2) and which anchors have a positive.

    Every row of ``embeddings`` (all views stacked along dim 0, ``labels`` repeated to match) is an
    anchor. Its positives are the other rows with the same label; its denominator runs over all other
    rows: ``loss_i = -1/|P(i)| Σ_{p∈P(i)} log( e(z_i, z_p) / Σ_{a≠i} e(z_i, z_a) )`` with
    ``e(a, b) = exp(cos(a, b)/τ)``.

    Returns ``(per_anchor, has_positive)``: anchors without a positive get a loss of exactly 0 (and no
    gradient) and ``has_positive`` False, so callers can skip and count them. Needs at least 2 rows.
    """
    n = embeddings.shape[0]
    if n < 2:
        raise ValueError(f"SupCon needs at least 2 embeddings (anchor and candidates), got {n}")
    self_mask = torch.eye(n, dtype=torch.bool, device=embeddings.device)
    logits = _scaled_cosines(embeddings, embeddings, temperature)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = _same_label_mask(labels, labels) & ~self_mask
    counts = positives.sum(dim=1)
    summed = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    per_anchor = -summed / counts.clamp(min=1)
    return per_anchor, counts > 0


def supcon_zeng_terms(clean: Tensor, adversarial: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Per-anchor SupCon losses with the grouping of Zeng et al. (2021)'s official code; shape ``(2n,)``.

    Rows ``0..n-1`` are the clean anchors, rows ``n..2n-1`` the adversarial ones. For the clean anchor
    ``i`` and a same-label example ``j ≠ i``, the clean and adversarial views of ``j`` share one log
    term: ``log( (e(c_i, c_j) + e(c_i, a_j)) / D_i )``; the anchor's own adversarial view gives
    ``log( e(c_i, a_i) / D_i )``. ``D_i = Σ_{k≠i} e(c_i, c_k) + Σ_k e(c_i, a_k)`` as in Khosla's form.
    The sum of the terms is divided by the number of same-label examples (the anchor included), and
    the adversarial anchors are treated symmetrically. Every anchor has a positive (its other view).

    The official code returns the mean over ``i`` of the clean plus the adversarial term, i.e. twice
    ``per_anchor.mean()`` of this function (tested); this form keeps the scale of :func:`supcon_khosla_terms`.
    """
    n = clean.shape[0]
    if adversarial.shape[0] != n or labels.shape[0] != n:
        raise ValueError(
            f"clean ({n}), adversarial ({adversarial.shape[0]}) and labels ({labels.shape[0]}) "
            "must have the same length"
        )
    eye = torch.eye(n, dtype=torch.bool, device=clean.device)
    same = _same_label_mask(labels, labels)
    s_cc = _scaled_cosines(clean, clean, temperature).masked_fill(eye, float("-inf"))
    s_aa = _scaled_cosines(adversarial, adversarial, temperature).masked_fill(eye, float("-inf"))
    s_ca = _scaled_cosines(clean, adversarial, temperature)
    counts = same.sum(dim=1).to(s_ca.dtype)
    per_view = []
    for same_view, cross in ((s_cc, s_ca), (s_aa, s_ca.transpose(0, 1))):
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
) -> tuple[Tensor, int]:
    """Supervised contrastive loss, averaged over the anchors that have a positive.

    ``embeddings`` is one ``(n, d)`` tensor (one view) or a list of views of the same ``n`` examples
    (``labels`` has length ``n``). ``variant="khosla"`` stacks the views and treats every row as an
    anchor (:func:`supcon_khosla_terms`); ``variant="zeng"`` needs exactly two views, clean then
    adversarial (:func:`supcon_zeng_terms`).

    Returns ``(loss, skipped)``, ``skipped`` being the number of anchors without any positive. They
    are left out of the mean; when every anchor is skipped the loss is a zero that is still connected
    to the graph (so ``backward`` works and gives zero gradients), never NaN.
    """
    temperature = check_temperature(temperature)
    views = [embeddings] if isinstance(embeddings, Tensor) else list(embeddings)
    if variant == "zeng":
        if len(views) != 2:
            raise ValueError(
                f"variant='zeng' groups a clean and an adversarial view: it needs 2 views, got {len(views)}"
            )
        return supcon_zeng_terms(views[0], views[1], labels, temperature).mean(), 0
    if variant != "khosla":
        raise ValueError(f"variant must be 'khosla' or 'zeng', got {variant!r}")
    stacked = torch.cat(views, dim=0)
    per_anchor, has_positive = supcon_khosla_terms(stacked, labels.repeat(len(views)), temperature)
    kept = int(has_positive.sum())
    skipped = per_anchor.shape[0] - kept
    if kept == 0:
        return stacked.sum() * 0.0, skipped
    return per_anchor.sum() / kept, skipped


# ---------------------------------------------------------------------------------------------
# ConSERT (Yan et al. 2021): NT-Xent with the two directions summed
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# CIL: instance vs. augmented instance, with the other bags as negatives (Chen et al., ACL 2021)
# ---------------------------------------------------------------------------------------------


def cil_ramp(step: int, warmup_steps: int) -> float:
    """CIL's weight ramp ``α(t) = 2 / (1 + exp(-2p)) - 1`` with ``p = t / (2·warmup_steps)`` (1 without warmup)."""
    import math

    if warmup_steps <= 0:
        return 1.0
    p = float(step) / (2.0 * float(warmup_steps))
    return 2.0 / (1.0 + math.exp(-2.0 * p)) - 1.0


def cil_logits(
    instances: Tensor,
    positives: Tensor,
    bags: Tensor,
    temperature: float = 0.05,
    negatives: str = "other_bags",
) -> Tensor:
    """CIL's InfoNCE logits: column 0 the positive, then one column per negative (``-inf`` where none).

    Row ``i`` is instance ``x_i`` of bag ``i`` (the bag's anchor); ``positives[i]`` its augmented copy;
    ``bags`` the ``B`` bag representations. With ``e(a, b) = exp(cos(a, b)/τ)``:

    * ``"other_bags"`` (the paper): ``loss_i = -log e(x_i, x*_i) / (e(x_i, x*_i) + Σ_{j≠i} e(x_i, B_j))``,
      negatives summed along the bag axis of the instance × bag similarity matrix.
    * ``"official"``: the official code's axis, the same matrix summed along the instance axis:
      ``Σ_{j≠i} e(x_j, B_i)``, the other bags' instances against bag ``i``.
    """
    if negatives not in ("other_bags", "official"):
        raise ValueError(f"negatives must be 'other_bags' or 'official', got {negatives!r}")
    if not (instances.shape == positives.shape and instances.shape[0] == bags.shape[0]):
        raise ValueError(
            "cil_logits needs one anchor instance, one positive and one bag per row, got shapes "
            f"{tuple(instances.shape)}, {tuple(positives.shape)} and {tuple(bags.shape)}"
        )
    positive = F.cosine_similarity(instances, positives, dim=-1, eps=1e-8).unsqueeze(1) / temperature
    similarity = cosine_similarity_matrix(instances, bags) / temperature
    if negatives == "official":
        similarity = similarity.transpose(0, 1)
    own = torch.eye(bags.shape[0], dtype=torch.bool, device=bags.device)
    similarity = similarity.masked_fill(own, float("-inf"))
    return torch.cat([positive, similarity], dim=1)


def cil_contrastive_loss(
    instances: Tensor,
    positives: Tensor,
    bags: Tensor,
    temperature: float = 0.05,
    negatives: str = "other_bags",
) -> Tensor:
    """Mean InfoNCE of :func:`cil_logits` (target: column 0). Needs at least two bags (one negative)."""
    temperature = check_temperature(temperature)
    if bags.shape[0] < 2:
        raise ValueError(f"CIL's contrastive loss needs at least 2 bags per batch (negatives), got {bags.shape[0]}")
    logits = cil_logits(instances, positives, bags, temperature, negatives)
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return info_nce(logits, targets)


# ---------------------------------------------------------------------------------------------
# CLINE: sentence-level contrast between a synonym rewrite and an antonym rewrite
# ---------------------------------------------------------------------------------------------


def cline_contrast_loss(anchors: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
    """CLINE's sentence contrast as in the paper (Wang et al., ACL 2021, section 3).

    ``-log( f(x, x_syn) / (f(x, x_syn) + f(x, x_ant)) )`` with ``f(a, b) = exp(a · b)`` (a plain dot
    product: no normalisation, no temperature), averaged over the batch. Written as
    ``softplus(h·h_ant - h·h_syn)``, which is the same value without overflow.
    """
    positive = (anchors * positives).sum(-1)
    negative = (anchors * negatives).sum(-1)
    return F.softplus(negative - positive).mean()


def cline_official_contrast_loss(anchors: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
    """CLINE's sentence contrast as in the official code: binary cross-entropy on ``σ(mean(h ⊙ h'))``.

    Each (original, synonym rewrite) pair is a positive (target 1) and each (original, antonym rewrite)
    pair a negative (target 0); the score is the sigmoid of the *mean* (not the sum) of the
    element-wise product, and the BCE is averaged over all ``2B`` pairs. Computed from the logit
    (``softplus``), so it never takes ``log(0)``.
    """
    positive = (anchors * positives).mean(-1)
    negative = (anchors * negatives).mean(-1)
    return torch.cat([F.softplus(-positive), F.softplus(negative)]).mean()


def uncertainty_weighted_terms(losses: list[Tensor], log_vars: Tensor) -> list[Tensor]:
    """The official CLINE code's learned loss weights: ``exp(-s_i) · L_i + max(s_i, 0)`` per term.

    ``s_i = log_vars[i]`` are trained with the model (initialised at 0). This is the homoscedastic
    uncertainty weighting of Kendall et al. (2018) with the regulariser clamped at 0, as in the
    official code. Returns one weighted term per loss; their sum is the total loss.
    """
    if len(losses) > log_vars.shape[0]:
        raise ValueError(f"got {len(losses)} losses but only {log_vars.shape[0]} log-variances")
    return [torch.exp(-log_vars[i]) * loss + log_vars[i].clamp(min=0) for i, loss in enumerate(losses)]


# ---------------------------------------------------------------------------------------------
# SimCLS: ranking of summary candidates (Liu & Liu, ACL 2021)
# ---------------------------------------------------------------------------------------------


def simcls_ranking_loss(
    candidate_scores: Tensor,
    reference_scores: Tensor | None = None,
    margin: float = 0.01,
    reference_margin: float = 0.0,
    candidate_weight: float = 1.0,
    reference_weight: float = 1.0,
    candidate_mask: Tensor | None = None,
    pair_reduction: str = "sum",
) -> Tensor:
    """SimCLS's margin ranking loss, one value per document: a ``(batch,)`` tensor.

    ``candidate_scores[b, k]`` is the scorer's ``h(D_b, C_k)`` for candidates already sorted from the best
    (``k = 0``) to the worst by their ROUGE against the reference. With ``λ = margin``, per document::

        candidate_weight · Σ_{j<k} max(0, h(C_k) − h(C_j) + λ·(k − j))
          + reference_weight · Σ_k max(0, h(C_k) − h(S) + reference_margin)

    (Liu & Liu 2021, "SimCLS: A Simple Framework for Contrastive Learning of Abstractive Summarization",
    ACL 2021, eq. 3): every better candidate must outscore every worse one by ``λ`` per rank of
    distance, and the reference ``S`` (scores ``reference_scores[b]``; ``None`` drops the term) must
    outscore every candidate.

    Args:
        candidate_scores: ``(batch, n)`` scores of candidates sorted best first.
        reference_scores: ``(batch,)`` scores of the references, or ``None``.
        margin: ``λ``, the margin per rank gap (0.01 in the paper); ``>= 0``.
        reference_margin: margin between the reference and every candidate (0 in the paper).
        candidate_weight, reference_weight: weights of the two sums (1 and 1 in the paper).
        candidate_mask: ``(batch, n)`` bool, ``False`` for padding when documents have fewer than ``n``
            candidates (the valid ones first). Pairs that touch padding count for nothing.
        pair_reduction: ``"sum"`` (the paper: sums over pairs and candidates) or ``"mean_per_gap"`` (the
            official code: the hinge is averaged over the pairs of each rank gap, the averages summed over
            gaps, and the reference term averaged over candidates; equal to the official loss at its batch
            size of one document).
    """
    if candidate_scores.dim() != 2:
        raise ValueError(f"candidate_scores must be (batch, candidates), got shape {tuple(candidate_scores.shape)}")
    if pair_reduction not in ("sum", "mean_per_gap"):
        raise ValueError(f"pair_reduction must be 'sum' or 'mean_per_gap', got {pair_reduction!r}")
    if not margin >= 0 or not reference_weight >= 0 or not candidate_weight >= 0:
        raise ValueError(
            f"margin and the weights must be >= 0, got margin={margin}, candidate_weight={candidate_weight}, "
            f"reference_weight={reference_weight}"
        )
    batch, n = candidate_scores.shape
    if candidate_mask is None:
        valid = torch.ones_like(candidate_scores, dtype=torch.bool)
    else:
        if candidate_mask.shape != candidate_scores.shape:
            raise ValueError(
                f"candidate_mask has shape {tuple(candidate_mask.shape)}, expected {tuple(candidate_scores.shape)}"
            )
        valid = candidate_mask.to(torch.bool)
    scores = candidate_scores.float().masked_fill(~valid, 0.0)  # padding may hold -inf
    rank = torch.arange(n, device=scores.device)
    gap = rank.view(1, n) - rank.view(n, 1)  # gap[j, k] = k - j
    # hinge[b, j, k] = max(0, s_k - s_j + λ (k - j)) for the better j and the worse k
    hinge = (scores.unsqueeze(1) - scores.unsqueeze(2) + margin * gap.to(scores.dtype)).clamp(min=0)
    pairs = (gap > 0).unsqueeze(0) & valid.unsqueeze(1) & valid.unsqueeze(2)
    hinge = torch.where(pairs, hinge, torch.zeros_like(hinge))
    if pair_reduction == "sum":
        candidate_term = hinge.sum(dim=(1, 2))
    else:
        gap_index = gap.clamp(min=0).reshape(-1).expand(batch, -1)
        per_gap = scores.new_zeros(batch, n).scatter_add_(1, gap_index, hinge.reshape(batch, -1))
        counts = scores.new_zeros(batch, n).scatter_add_(1, gap_index, pairs.reshape(batch, -1).to(scores.dtype))
        candidate_term = (per_gap[:, 1:] / counts[:, 1:].clamp(min=1)).sum(dim=1)
    loss = candidate_weight * candidate_term
    if reference_scores is not None:
        if reference_scores.shape != (batch,):
            raise ValueError(f"reference_scores must have shape ({batch},), got {tuple(reference_scores.shape)}")
        reference_hinge = (scores - reference_scores.float().unsqueeze(1) + reference_margin).clamp(min=0)
        reference_hinge = torch.where(valid, reference_hinge, torch.zeros_like(reference_hinge))
        reference_term = reference_hinge.sum(dim=1)
        if pair_reduction == "mean_per_gap":
            reference_term = reference_term / valid.sum(dim=1).clamp(min=1)
        loss = loss + reference_weight * reference_term
    return loss


def select_best_candidate(candidate_scores: Tensor, candidate_mask: Tensor | None = None) -> Tensor:
    """Index of the highest-scoring candidate per row (SimCLS's choice at test time), skipping padding."""
    if candidate_mask is not None:
        candidate_scores = candidate_scores.masked_fill(~candidate_mask.to(torch.bool), float("-inf"))
    return candidate_scores.argmax(dim=-1)


def symmetric_kl_from_log_probs(
    log_p: Tensor,
    log_q: Tensor,
    mask: Tensor | None = None,
    reduction: str = "sum",
) -> Tensor:
    """:func:`symmetric_kl` for inputs that already are log-probabilities (normalised over the last dim).

    Uses ``KL(p‖q) + KL(q‖p) = Σ_c (p_c − q_c)(log p_c − log q_c)``: no second normalisation. Same masking
    and ``reduction`` as :func:`symmetric_kl`; equal to it on normalised inputs. When both halves are
    already one tensor (a doubled batch), :func:`paired_symmetric_kl` avoids stacking them.
    """
    if log_p.shape != log_q.shape:
        raise ValueError(
            f"log_p and log_q must have the same shape, got {tuple(log_p.shape)} and {tuple(log_q.shape)}"
        )
    return paired_symmetric_kl(torch.stack([log_p, log_q]), mask, reduction)


def paired_symmetric_kl(
    log_pq: Tensor, mask: Tensor | None = None, reduction: str = "sum", block_rows: int | None = None
) -> Tensor:
    """``(KL(p‖q) + KL(q‖p)) / 2`` per position for ``log_pq = stack([log p, log q])`` of shape ``(2, ..., C)``.

    R-Drop's consistency term for a model that ran the batch twice in one pass: ``log_pq`` can be a view
    of its ``(2B, T, C)`` output log-probabilities (``lprobs.view(2, B, T, C)``), with no copy. The
    gradient is written in closed form, ``∂/∂log p = ½(p·(log p − log q) + p − q)`` and
    ``∂/∂log q = −½(q·(log p − log q) + p − q)``, into one tensor shaped like ``log_pq``: a few passes over
    the vocabulary-sized input instead of the dozen of a generic autograd graph (which also fills a zeroed
    gradient for each half). Only ``log_pq`` is kept for the backward (``p`` and ``q`` are recomputed).

    On the CPU the positions are processed in blocks of ``block_rows`` (default: about half a million
    values per block), so that each block's temporaries stay in cache instead of streaming the whole
    ``(2, positions, C)`` tensor through memory once per operation (about 3x faster forward+backward at
    Multi30k's 5,925 types; ``benchmarks/bench_rdrop_kl.py``). Elsewhere the default is one block.
    ``mask`` (shaped like ``log_pq[0]`` without the last dim) and ``reduction`` as in :func:`symmetric_kl`.
    """
    if log_pq.ndim < 2 or log_pq.shape[0] != 2:
        raise ValueError(f"log_pq must be shaped (2, ..., C), got {tuple(log_pq.shape)}")
    per_position = _PairedSymmetricKL.apply(log_pq.float(), _block_rows(log_pq, block_rows))
    if mask is not None:
        per_position = per_position.masked_fill(~mask.bool(), 0.0)
    if reduction == "none":
        return per_position
    if reduction == "sum":
        return per_position.sum()
    if reduction == "mean":
        count = mask.bool().sum() if mask is not None else torch.tensor(per_position.numel())
        return per_position.sum() / count.clamp(min=1)
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


def paired_label_smoothed_nll_and_kl(
    log_pq: Tensor,
    target: Tensor,
    epsilon: float,
    ignore_index: int | None = None,
    block_rows: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """R-Drop's whole token-level objective on a doubled batch's log-probabilities, in one fused pass.

    Returns ``(loss, nll_loss, kl)``: ``loss`` and ``nll_loss`` are fairseq's ``label_smoothed_nll_loss``
    (``eps_i = epsilon / (C − 1)``, summed) over both halves of ``log_pq`` (shape ``(2, ..., C)``) against
    the same ``target`` (shape ``log_pq.shape[1:-1]``), and ``kl`` is
    ``paired_symmetric_kl(log_pq, target != ignore_index, "sum")``. Positions whose target is
    ``ignore_index`` count in none of them. The values equal the separate computations; the point is the
    gradient: one tensor written block by block (see :func:`paired_symmetric_kl`), where autograd would
    add three vocabulary-sized gradients (the gather's zero-filled scatter, the smoothing sum's and the KL's)
    in separate passes over memory.
    """
    if log_pq.ndim < 2 or log_pq.shape[0] != 2:
        raise ValueError(f"log_pq must be shaped (2, ..., C), got {tuple(log_pq.shape)}")
    if tuple(target.shape) != tuple(log_pq.shape[1:-1]):
        raise ValueError(
            f"target must be shaped like log_pq without its first and last dims, {tuple(log_pq.shape[1:-1])}; "
            f"got {tuple(target.shape)}"
        )
    classes = log_pq.shape[-1]
    if classes < 2:
        raise ValueError(f"label smoothing needs at least 2 classes, got {classes}")
    block_rows = _block_rows(log_pq, block_rows)
    target = target.reshape(-1)
    keep = target.ne(ignore_index) if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    nll, smooth, kl = _PairedSmoothedNLLAndKL.apply(log_pq.float(), target, keep, block_rows)
    eps_i = epsilon / (classes - 1)
    loss = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    return loss, nll, kl


def _block_rows(log_pq: Tensor, block_rows: int | None) -> int:
    if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1):
        raise ValueError(f"block_rows must be a positive integer or None, got {block_rows!r}")
    if block_rows is None:
        return max(1, _KL_BLOCK_VALUES // max(1, log_pq.shape[-1])) if log_pq.device.type == "cpu" else 0
    return block_rows


class _PairedSmoothedNLLAndKL(torch.autograd.Function):
    """Summed NLL, summed smoothing term (−Σ log-probs) and masked symmetric KL; one gradient tensor."""

    @staticmethod
    def forward(ctx, log_pq: Tensor, target: Tensor, keep: Tensor, block_rows: int):
        flat = log_pq.reshape(2, -1, log_pq.shape[-1])
        rows = flat.shape[1]
        kl_rows, row_sums = flat.new_empty(rows), flat.new_empty(2, rows)
        _kl_rows(flat, block_rows, kl_rows, row_sums)
        picked = flat.gather(2, target.view(1, -1, 1).expand(2, -1, 1)).squeeze(-1)
        zero = flat.new_zeros(())
        nll = -torch.where(keep, picked, zero).sum()
        smooth = -torch.where(keep, row_sums, zero).sum()
        kl = 0.5 * torch.where(keep, kl_rows, zero).sum()
        ctx.save_for_backward(log_pq, target, keep)
        ctx.block_rows = block_rows
        return nll, smooth, kl

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_nll: Tensor, grad_smooth: Tensor, grad_kl: Tensor):
        log_pq, target, keep = ctx.saved_tensors
        flat = log_pq.reshape(2, -1, log_pq.shape[-1])
        weight = keep.to(flat.dtype)
        kl_scale = (0.5 * grad_kl * weight).unsqueeze(1)
        smooth_shift = (grad_smooth * weight).unsqueeze(1)
        out = _kl_gradient(flat, ctx.block_rows, kl_scale, smooth_shift)
        picked = (-grad_nll * weight).view(1, -1, 1).expand(2, -1, 1)
        out.scatter_add_(2, target.view(1, -1, 1).expand(2, -1, 1), picked)
        return out.reshape(log_pq.shape), None, None, None


_KL_BLOCK_VALUES = 1 << 19  # values per half per block on the CPU (2 MiB of float32)


def _row_blocks(rows: int, block_rows: int) -> list[tuple[int, int]]:
    step = block_rows if block_rows > 0 else max(rows, 1)
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def _kl_rows(flat: Tensor, block_rows: int, out: Tensor, row_sums: Tensor | None = None) -> Tensor:
    """``out[r] = Σ_c (p − q)(log p − log q)`` for ``flat = (2, rows, C)`` log-probabilities, block by block;
    ``row_sums[h, r] = Σ_c flat[h, r, c]`` too when given (read while the block is in cache)."""
    for start, end in _row_blocks(flat.shape[1], block_rows):
        log_p, log_q = flat[0, start:end], flat[1, start:end]
        p_minus_q = log_p.exp().sub_(log_q.exp())
        torch.linalg.vecdot(p_minus_q, log_p - log_q, out=out[start:end])
        if row_sums is not None:
            torch.sum(flat[:, start:end], dim=-1, out=row_sums[:, start:end])
    return out


def _kl_gradient(flat: Tensor, block_rows: int, scale: Tensor, shift: Tensor | None = None) -> Tensor:
    """``scale · ∂/∂flat Σ_c (p − q)(log p − log q)``, minus ``shift`` on both halves (``scale``, ``shift``:
    ``(rows, 1)``), written block by block into one tensor shaped like ``flat``."""
    out = torch.empty_like(flat)
    for start, end in _row_blocks(flat.shape[1], block_rows):
        log_p, log_q = flat[0, start:end], flat[1, start:end]
        p, q = log_p.exp(), log_q.exp()
        log_ratio = log_p - log_q
        p_minus_q = p - q
        first = torch.addcmul(p_minus_q, p, log_ratio, out=out[0, start:end]).mul_(scale[start:end])
        second = torch.addcmul(p_minus_q, q, log_ratio, out=out[1, start:end]).mul_(-scale[start:end])
        if shift is not None:
            first.sub_(shift[start:end])
            second.sub_(shift[start:end])
    return out


class _PairedSymmetricKL(torch.autograd.Function):
    """Per-position ``½ Σ_c (p_c − q_c)(log p_c − log q_c)`` with a closed-form backward, block by block."""

    @staticmethod
    def forward(ctx, log_pq: Tensor, block_rows: int) -> Tensor:
        flat = log_pq.reshape(2, -1, log_pq.shape[-1])
        out = _kl_rows(flat, block_rows, flat.new_empty(flat.shape[1]))
        ctx.save_for_backward(log_pq)
        ctx.block_rows = block_rows
        return out.mul_(0.5).reshape(log_pq.shape[1:-1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (log_pq,) = ctx.saved_tensors
        flat = log_pq.reshape(2, -1, log_pq.shape[-1])
        out = _kl_gradient(flat, ctx.block_rows, 0.5 * grad.reshape(-1, 1))
        return out.reshape(log_pq.shape), None
