"""R-Drop for sequence-to-sequence models: two dropout samples of one batch, kept consistent.

Liang, Wu, Li, Wang, Meng, Qin, Chen, Zhang, Liu (2021). "R-Drop: Regularized Dropout for Neural
Networks", NeurIPS 2021, https://arxiv.org/abs/2106.14448, eq. (3)::

    loss = ½ (CE(p) + CE(q)) + α · ½ (KL(p‖q) + KL(q‖p))

``p`` and ``q`` are the output distributions of the same batch under two dropout masks. The batch is
duplicated inside one forward (one ``2B`` batch, not two passes), the CE terms are fairseq's
label-smoothed CE summed over non-pad tokens and the KL is summed over non-pad target positions, so the
loss keeps fairseq's "sum over tokens, divided by ``ntokens``" scale. Both are computed by one fused
function (``st_contrast.losses.functional.paired_label_smoothed_nll_and_kl``) on a view of the doubled
batch's log-probabilities, which writes their joint gradient in one blocked pass: R-Drop's cost beyond
the doubled batch is then a small part of an update.

Paper vs official code: the paper (and this criterion by default) averages the two CE terms; the
official fairseq code sums them (``--rdrop-summed-ce``), which is ``2 x`` the paper's loss with
``α/2``. Adam's update does not change when the loss is multiplied by a constant (up to its ``eps``, and
without gradient clipping, which the official scripts do not use), so official ``α = 5`` equals averaged
``α = 2.5`` at the *same* learning rate (with SGD it would need twice the learning rate). Label smoothing is
fairseq's (``eps/(V-1)`` on every class but the target); the official code's own criterion puts ``eps/V`` on
every class, the target included.

With ``α = 0`` or in evaluation (no dropout, so ``p = q``) the batch is not duplicated and the loss is
plain label-smoothed CE, so validation losses compare directly with ``label_smoothed_cross_entropy``.
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

from st_contrast.losses.functional import paired_label_smoothed_nll_and_kl

from .._registry import register_criterion_once
from ._logging import log_extra_loss, logging_output


@dataclass
class RDropLabelSmoothedCrossEntropyConfig(LabelSmoothedCrossEntropyCriterionConfig):
    rdrop_alpha: float = field(
        default=5.0,
        metadata={"help": "weight α of the symmetric KL between the two dropout samples (0 disables R-Drop)"},
    )
    rdrop_summed_ce: bool = field(
        default=False,
        metadata={
            "help": "official-code form: sum the CE of the two copies instead of the paper's average "
            "(doubles the CE weight relative to α)"
        },
    )


def duplicate_net_input(net_input: dict[str, Any]) -> dict[str, Any]:
    """Every tensor of ``net_input`` repeated along the batch dimension: ``[x; x]``."""
    return {
        key: torch.cat([value, value], dim=0) if torch.is_tensor(value) else value for key, value in net_input.items()
    }


@register_criterion_once("rdrop_label_smoothed_cross_entropy", dataclass=RDropLabelSmoothedCrossEntropyConfig)
class RDropLabelSmoothedCrossEntropy(LabelSmoothedCrossEntropyCriterion):
    """Label-smoothed CE on two dropout copies of the batch plus α · symmetric KL (see module docstring)."""

    def __init__(
        self,
        task,
        sentence_avg: bool,
        label_smoothing: float,
        ignore_prefix_size: int = 0,
        report_accuracy: bool = False,
        rdrop_alpha: float = 5.0,
        rdrop_summed_ce: bool = False,
    ) -> None:
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        rdrop_alpha = float(rdrop_alpha)
        if not rdrop_alpha >= 0 or math.isinf(rdrop_alpha):
            raise ValueError(f"rdrop_alpha must be >= 0 and finite, got {rdrop_alpha!r}")
        self.rdrop_alpha = rdrop_alpha
        self.rdrop_summed_ce = bool(rdrop_summed_ce)

    def _lprobs_and_target(self, model, net_output, target: Tensor) -> tuple[Tensor, Tensor]:
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        if self.ignore_prefix_size > 0:
            lprobs = lprobs[:, self.ignore_prefix_size :, :]
            target = target[:, self.ignore_prefix_size :]
        return lprobs, target

    def forward(self, model, sample, reduce: bool = True):
        target = sample["target"]
        nsentences = target.size(0)
        ntokens = sample["ntokens"]
        sample_size = nsentences if self.sentence_avg else ntokens
        use_rdrop = self.rdrop_alpha > 0 and model.training
        if not use_rdrop:
            net_output = model(**sample["net_input"])
            loss, nll_loss = self.compute_loss(model, net_output, sample, reduce=reduce)
            kl = loss.new_zeros(())
        else:
            if not reduce:
                raise ValueError("rdrop_label_smoothed_cross_entropy needs reduce=True while training")
            net_output = model(**duplicate_net_input(sample["net_input"]))
            lprobs, tgt = self._lprobs_and_target(model, net_output, target)
            # one view of both copies' log-probabilities (no copy): fairseq's label-smoothed NLL summed over both
            # copies and the KL over non-pad positions, fused so that their gradients are written in one pass
            pair = lprobs.reshape(2, -1, lprobs.size(-1))
            ce, nll, kl = paired_label_smoothed_nll_and_kl(pair, tgt.reshape(-1), self.eps, self.padding_idx)
            if not self.rdrop_summed_ce:
                ce = 0.5 * ce
            loss = ce + self.rdrop_alpha * kl.to(ce.dtype)
            nll_loss = 0.5 * nll  # logged per copy, comparable with label_smoothed_cross_entropy

        accuracy = None
        if self.report_accuracy:
            if use_rdrop:  # accuracy of the first copy
                lprobs, tgt = self._lprobs_and_target(model, net_output, target)
                lprobs, mask = lprobs[:nsentences].reshape(-1, lprobs.size(-1)), tgt.reshape(-1).ne(self.padding_idx)
                n_correct = lprobs.argmax(1).masked_select(mask).eq(tgt.reshape(-1).masked_select(mask)).sum()
                accuracy = (n_correct, mask.sum())
            else:
                accuracy = self.compute_accuracy(model, net_output, sample)
        log = logging_output(loss, nll_loss, {"rdrop_kl_loss": kl}, ntokens, nsentences, sample_size, accuracy)
        return loss, sample_size, log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        log_extra_loss(logging_outputs, "rdrop_kl_loss", per="ntokens", round_digits=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
