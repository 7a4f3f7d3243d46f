"""mCLR: label-smoothed cross-entropy plus a multilingual contrastive term on encoder sentence vectors.

Pan, Wang, Wu, Li (2021). "Contrastive Learning for Many-to-many Multilingual Neural Machine
Translation" (mRASP2), ACL 2021, https://arxiv.org/abs/2105.09501, eq. (2)-(3)::

    loss = LS-CE + λ · (ntokens / nsentences) · L_ctr
    L_ctr = − Σ_i log softmax_j( cos(e_src_i, e_tgt_j) / τ )[i]

``e`` is the mean of the top encoder states over non-pad positions; the target sentence, with its
language token in front, is encoded by the same encoder. The other sentences of the batch are the
negatives. The ``ntokens/nsentences`` factor puts the per-sentence contrastive sum on the scale of the
per-token cross-entropy sum, since fairseq divides the loss by ``ntokens`` (the sample size).

Difference from the official code: mRASP2's criterion runs the encoder on the source a second time to
get ``e_src``. The encoder output of the translation forward is captured (a forward hook on the encoder,
so the forward still goes through DDP) and reused: one extra encoder pass (the target) instead of two,
with identical values. The contrastive maths is ``st_contrast.losses.functional``'s.
"""

# No `from __future__ import annotations` here: fairseq builds its CLI from the config dataclass's
# field types at runtime, and string annotations break that (fairseq.dataclass.utils.interpret_dc_type).
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from torch import Tensor

from st_contrast.losses.functional import check_temperature, cosine_similarity_matrix, info_nce

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


def contrastive_loss(src_vectors: Tensor, tgt_vectors: Tensor, temperature: float) -> Tensor:
    """``L_ctr`` summed over the batch: InfoNCE of each source against all targets (cosine / τ)."""
    logits = cosine_similarity_matrix(src_vectors.float(), tgt_vectors.float()) / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return info_nce(logits, targets, reduction="sum")


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
    ) -> None:
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        contrastive_lambda = float(contrastive_lambda)
        if not contrastive_lambda >= 0 or math.isinf(contrastive_lambda):
            raise ValueError(f"contrastive_lambda must be >= 0 and finite, got {contrastive_lambda!r}")
        self.contrastive_lambda = contrastive_lambda
        self.contrastive_temperature = check_temperature(contrastive_temperature)
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
        if self.contrastive_lambda > 0:
            if len(captured) != 1:
                raise RuntimeError(
                    f"expected the model's forward to call its encoder once, saw {len(captured)} calls; "
                    "label_smoothed_cross_entropy_with_contrastive supports encoder-decoder models"
                )
            tgt_tokens, tgt_lengths = self.target_tokens_for_encoder(sample)
            tgt_out = encoder(tgt_tokens, src_lengths=tgt_lengths)
            ctr = contrastive_loss(
                sentence_vectors(captured[0]), sentence_vectors(tgt_out), self.contrastive_temperature
            )
            loss = loss + self.contrastive_lambda * (ntokens / nsentences) * ctr.to(loss.dtype)

        accuracy = self.compute_accuracy(model, net_output, sample) if self.report_accuracy else None
        log = logging_output(loss, nll_loss, {"contrastive_loss": ctr}, ntokens, nsentences, sample_size, accuracy)
        return loss, sample_size, log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        log_extra_loss(logging_outputs, "contrastive_loss", per="nsentences", round_digits=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
