"""The shared contrastive maths of st-contrast, as pure functions on embedding tensors, one module per concern.

Every method in the package is "how the views are made" plus one of these objectives. The
sentence-transformers losses, their cached (GradCache) variants and the fairseq criteria all call
into this package, so a fix here fixes every method. Nothing here knows about models or tokenizers.

- :mod:`.distributed`: all-gather with gradients, this rank's offset in a gathered batch;
- :mod:`.infonce`: cosine logits and InfoNCE for SimCSE, NT-Xent (SimCLR / DeCLUTR), ConSERT and CIL;
- :mod:`.supcon`: supervised contrastive learning (Khosla et al.; Zeng et al.'s grouping);
- :mod:`.self_guided`: SG and SG-OPT (Kim, Yoo and Lee);
- :mod:`.cline`: CLINE's sentence contrast and learned loss weights;
- :mod:`.ranking`: SimCLS's margin ranking loss;
- :mod:`.kl`: R-Drop's symmetric KL, with fused kernels for a doubled batch.

Every public name is importable from this package (``from st_contrast.losses.functional import simcse_loss``).

Conventions: embeddings are ``(batch, dim)`` float tensors; ``temperature`` is ``τ`` (so
sentence-transformers' ``scale`` is ``1/τ``); losses are means over anchors unless said otherwise.
"""

from __future__ import annotations

from .._checks import check_temperature
from . import distributed
from .cline import cline_contrast_loss, cline_official_contrast_loss, uncertainty_weighted_terms
from .distributed import all_gather_with_grad, is_distributed, local_offset
from .infonce import (
    cil_contrastive_loss,
    cil_logits,
    consert_loss,
    cosine_similarity_matrix,
    info_nce,
    nt_xent_logits,
    nt_xent_loss,
    simcse_logits,
    simcse_loss,
)
from .kl import paired_label_smoothed_nll_and_kl, paired_symmetric_kl, symmetric_kl, symmetric_kl_from_log_probs
from .ranking import simcls_ranking_loss
from .self_guided import sg_loss, sg_opt_loss
from .supcon import supcon_khosla_terms, supcon_loss, supcon_zeng_terms

__all__ = [
    "all_gather_with_grad",
    "check_temperature",
    "cil_contrastive_loss",
    "cil_logits",
    "cline_contrast_loss",
    "cline_official_contrast_loss",
    "consert_loss",
    "cosine_similarity_matrix",
    "distributed",
    "info_nce",
    "is_distributed",
    "local_offset",
    "nt_xent_logits",
    "nt_xent_loss",
    "paired_label_smoothed_nll_and_kl",
    "paired_symmetric_kl",
    "sg_loss",
    "sg_opt_loss",
    "simcls_ranking_loss",
    "simcse_logits",
    "simcse_loss",
    "supcon_khosla_terms",
    "supcon_loss",
    "supcon_zeng_terms",
    "symmetric_kl",
    "symmetric_kl_from_log_probs",
    "uncertainty_weighted_terms",
]
