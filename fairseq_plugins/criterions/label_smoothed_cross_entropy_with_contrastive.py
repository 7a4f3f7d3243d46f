"""mCLR: label-smoothed cross-entropy plus a multilingual contrastive term on encoder sentence vectors.

Pan, Wang, Wu, Li (2021). "Contrastive Learning for Many-to-many Multilingual Neural Machine
Translation" (mRASP2), ACL 2021, https://arxiv.org/abs/2105.09501, eq. (2)-(3)::

    loss = LS-CE + λ · (ntokens / nsentences) · L_ctr
    L_ctr = − Σ_i log softmax_j( cos(e_src_i, e_tgt_j) / τ )[i]

``e`` is the mean of the top encoder states over non-pad positions; the target sentence, with its
language token in front, is encoded by the same encoder. The other sentences of the batch are the
negatives. The ``ntokens/nsentences`` factor puts the per-sentence contrastive sum on the scale of the
per-token cross-entropy sum, since fairseq divides the loss by ``ntokens`` (the sample size).

Logging, as mRASP2's criterion: ``loss`` is the label-smoothed CE alone (per token, bits), the contrastive
term is logged separately as ``contrastive_loss`` (per sentence, bits); the loss that is back-propagated is
the sum above. ``loss`` is fairseq's default ``--best-checkpoint-metric`` (``checkpoint_best.pt``,
``--patience``): the contrastive term depends on the batch size (more negatives, a larger value), so it is
kept out of that metric.

Difference from the official code: mRASP2's criterion runs the encoder on the source a second time to
get ``e_src``. The encoder output of the translation forward is captured (a forward hook on the encoder,
so the forward still goes through DDP) and reused: one extra encoder pass (the target) instead of two.
The values are identical without dropout and equal in expectation with it (the official second pass
draws new dropout masks). The contrastive maths is ``st_contrast.losses.functional``'s.

``--contrastive-gather`` (off by default, as the official code, whose negatives are the local batch's):
under data-parallel training, each worker's sources are contrasted with the targets of *every* worker
(``all_gather_with_grad``: the gradients of the other workers' rows go back to them), and the
``ntokens/nsentences`` factor is that of the global batch, so N workers compute exactly what one process
would on their concatenated batch.
"""

# No `from __future__ import annotations` here: fairseq builds its CLI from the config dataclass's
# field types at runtime, and string annotations break that (fairseq.dataclass.utils.interpret_dc_type).
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from torch import Tensor

from st_contrast.losses.functional import (
    all_gather_with_grad,
    check_temperature,
    cosine_similarity_matrix,
    info_nce,
    is_distributed,
    local_offset,
)

from .._registry import register_criterion_once
from ._logging import log_extra_loss, logging_output


@dataclass
class LabelSmoothedCrossEntropyWithContrastiveConfig(LabelSmoothedCrossEntropyCriterionConfig):
    contrastive_lambda: float = field(
        default=1.0,
        metadata={
            "help": "weight λ of the contrastive term, added as λ·(ntokens/nsentences)·L_ctr "
            "(mRASP2: 1.0; 0 gives plain label_smoothed_cross_entropy)"
        },
    )
    contrastive_temperature: float = field(
        default=0.1,
        metadata={"help": "temperature τ of the contrastive softmax over cos(e_src_i, e_tgt_j)/τ (mRASP2: 0.1)"},
    )
    contrastive_gather: bool = field(
        default=False,
        metadata={
            "help": "under data-parallel training, take the negatives from every worker's batch (gathered, with "
            "gradients back to their worker; ntokens/nsentences of the global batch): N workers then equal one "
            "process on the concatenated batch. Off: local negatives only, as the official mRASP2 code"
        },
    )


def sentence_vectors(encoder_out: dict[str, Any]) -> Tensor:
    """Masked mean of the top encoder states: ``(batch, dim)`` from fairseq's encoder output dict.

    ``encoder_out["encoder_out"][0]`` is ``T x B x C``; ``encoder_padding_mask`` (``B x T``, true at pads)
    may be absent when nothing is padded.
    """
    states = encoder_out["encoder_out"][0].transpose(0, 1)  # B x T x C
    masks = encoder_out.get("encoder_padding_mask") or []
    if len(masks) == 0 or masks[0] is None:
        return states.mean(dim=1)
    keep = (~masks[0]).unsqueeze(-1).to(states.dtype)
    return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def contrastive_loss(src_vectors: Tensor, tgt_vectors: Tensor, temperature: float, offset: int = 0) -> Tensor:
    """``L_ctr`` summed over the sources: InfoNCE of each source against all targets (cosine / τ).

    ``tgt_vectors`` may hold more rows than ``src_vectors`` (the targets of every worker); source ``i``'s
    positive is target ``offset + i``. Half-precision vectors are compared in float32.
    """
    dtype = torch.promote_types(src_vectors.dtype, torch.float32)
    logits = cosine_similarity_matrix(src_vectors.to(dtype), tgt_vectors.to(dtype)) / temperature
    targets = offset + torch.arange(logits.shape[0], device=logits.device)
    return info_nce(logits, targets, reduction="sum")


def global_counts(ntokens: int, nsentences: int, device: torch.device) -> tuple[float, float]:
    """``(ntokens, nsentences)`` summed over the data-parallel workers (unchanged when not distributed)."""
    if not is_distributed():
        return float(ntokens), float(nsentences)
    counts = torch.tensor([float(ntokens), float(nsentences)], dtype=torch.float64, device=device)
    dist.all_reduce(counts)
    return float(counts[0]), float(counts[1])


@register_criterion_once(
    "label_smoothed_cross_entropy_with_contrastive", dataclass=LabelSmoothedCrossEntropyWithContrastiveConfig
)
class LabelSmoothedCrossEntropyWithContrastive(LabelSmoothedCrossEntropyCriterion):
    """Label-smoothed CE + mCLR's contrastive term (see the module docstring).

    Requires an encoder-decoder model with ``model.encoder`` (e.g. ``transformer``). With the task
    ``translation_multilingual_contrastive`` the decoder starts with the target-language token, which
    is then put in front of the target for its encoder pass; with other tasks the target is encoded as is.
    """

    def __init__(
        self,
        task,
        sentence_avg: bool,
        label_smoothing: float,
        ignore_prefix_size: int = 0,
        report_accuracy: bool = False,
        contrastive_lambda: float = 1.0,
        contrastive_temperature: float = 0.1,
        contrastive_gather: bool = False,
    ) -> None:
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        contrastive_lambda = float(contrastive_lambda)
        if not contrastive_lambda >= 0 or math.isinf(contrastive_lambda):
            raise ValueError(f"contrastive_lambda must be >= 0 and finite, got {contrastive_lambda!r}")
        self.contrastive_lambda = contrastive_lambda
        self.contrastive_temperature = check_temperature(contrastive_temperature)
        self.contrastive_gather = bool(contrastive_gather)
        self.eos_idx = task.target_dictionary.eos()

    def target_tokens_for_encoder(self, sample: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """The target sentence as encoder input: language token (the decoder's first input) + target."""
        target = sample["target"]
        first = sample["net_input"]["prev_output_tokens"][:, :1]
        if bool((first != self.eos_idx).all()) and bool((first != self.padding_idx).all()):
            target = torch.cat([first, target], dim=1)
        lengths = target.ne(self.padding_idx).sum(dim=1)
        return target, lengths

    def forward(self, model, sample, reduce: bool = True):
        encoder = getattr(model, "encoder", None)
        if encoder is None:
            raise TypeError("label_smoothed_cross_entropy_with_contrastive needs an encoder-decoder model")
        captured: list[dict[str, Any]] = []
        handle = None
        if self.contrastive_lambda > 0:
            handle = encoder.register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            net_output = model(**sample["net_input"])
        finally:
            if handle is not None:
                handle.remove()
        loss, nll_loss = self.compute_loss(model, net_output, sample, reduce=reduce)
        nsentences = sample["target"].size(0)
        ntokens = sample["ntokens"]
        sample_size = nsentences if self.sentence_avg else ntokens

        ctr = loss.new_zeros(())
        total = loss
        if self.contrastive_lambda > 0:
            if len(captured) != 1:
                raise RuntimeError(
                    f"expected the model's forward to call its encoder once, saw {len(captured)} calls; "
                    "label_smoothed_cross_entropy_with_contrastive supports encoder-decoder models"
                )
            tgt_tokens, tgt_lengths = self.target_tokens_for_encoder(sample)
            tgt_out = encoder(tgt_tokens, src_lengths=tgt_lengths)
            src_vectors, tgt_vectors = sentence_vectors(captured[0]), sentence_vectors(tgt_out)
            offset, scale_tokens, scale_sentences = 0, float(ntokens), float(nsentences)
            if self.contrastive_gather and is_distributed():
                offset = local_offset(tgt_vectors.shape[0], tgt_vectors.device)
                tgt_vectors = all_gather_with_grad(tgt_vectors)
                scale_tokens, scale_sentences = global_counts(ntokens, nsentences, tgt_vectors.device)
            ctr = contrastive_loss(src_vectors, tgt_vectors, self.contrastive_temperature, offset)
            total = loss + self.contrastive_lambda * (scale_tokens / scale_sentences) * ctr.to(loss.dtype)

        accuracy = self.compute_accuracy(model, net_output, sample) if self.report_accuracy else None
        # `loss` is logged as label-smoothed CE alone (as mRASP2): the checkpoint metric must not depend on
        # the batch size, which the contrastive term does; `total` is what is optimised
        log = logging_output(loss, nll_loss, {"contrastive_loss": ctr}, ntokens, nsentences, sample_size, accuracy)
        return total, sample_size, log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        log_extra_loss(logging_outputs, "contrastive_loss", per="nsentences", round_digits=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
