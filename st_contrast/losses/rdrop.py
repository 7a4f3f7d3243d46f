"""R-Drop (Liang et al., NeurIPS 2021) for sentence-transformers classifiers: two dropout passes, CE on
both, and the symmetric KL between their predictions. (The fairseq criterion lives in ``fairseq_plugins``.)"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from . import functional
from ._base import ContrastiveLoss
from ._checks import check_class_labels, check_non_negative, check_single_column
from ._common import doubled, for_wrapper, refuse_wrappers

logger = logging.getLogger(__name__)

CEOverPasses = Literal["mean", "sum"]

RDROP_CITATION = """
@inproceedings{liang2021rdrop,
    title = "R-Drop: Regularized Dropout for Neural Networks",
    author = "Liang, Xiaobo and Wu, Lijun and Li, Juntao and Wang, Yue and Meng, Qi and Qin, Tao and Chen, Wei and
              Zhang, Min and Liu, Tie-Yan",
    booktitle = "Advances in Neural Information Processing Systems",
    year = "2021",
    url = "https://arxiv.org/abs/2106.14448",
}
"""


_RDROP_MATRYOSHKA = (
    "R-Drop scores the classifier's logits, which the wrapper does not truncate (it truncates the sentence "
    "embedding after the classifier has read it), so every dimension would train the full embedding"
)


class RDropLoss(ContrastiveLoss):
    config_keys = ("num_labels", "alpha", "ce_over_passes")
    CITATION = RDROP_CITATION

    def __init__(
        self,
        model: nn.Module,
        num_labels: int | None = None,
        alpha: float = 1.0,
        ce_over_passes: CEOverPasses = "mean",
        classifier_dropout: float = 0.1,
        label_names: list[str] | None = None,
        check_inputs: bool = True,
    ) -> None:
        """R-Drop: regularised dropout for a sentence classifier (Liang et al., NeurIPS 2021).

        The batch is encoded twice in one forward pass (two independent dropout masks), giving logits
        ``l1``, ``l2`` from a :class:`~st_contrast.modules.ClassifierHead` (appended to ``model`` when it
        has none, so it is saved with the model). The paper's objective:

        ``loss = ½ (CE(l1, y) + CE(l2, y)) + α · ½ (KL(p1‖p2) + KL(p2‖p1))``

        with the KL summed over classes and averaged over the batch. The official fairseq code sums the
        two cross-entropies instead (``ce_over_passes="sum"``: ``CE1 + CE2 + α·KL_sym``), which halves the
        effective ``α`` relative to the CE. Returns ``{"ce": ..., "rdrop": ...}`` (weighted components, summed
        by the Trainer).

        Args:
            model: the SentenceTransformer to train; it needs active dropout (otherwise the KL is 0).
            num_labels: number of classes; required unless the model already has a ClassifierHead.
            alpha: ``α``, weight of the symmetric KL (the paper uses 0.1–1.0 for GLUE, 5 for IWSLT'14 De→En).
            ce_over_passes: ``"mean"`` (paper) or ``"sum"`` (official code) over the two passes.
            classifier_dropout: dropout before the head's linear layer (used when the head is created).
            label_names: optional class names saved with the head.
            check_inputs: reject empty texts.

        References:
            - Liang et al. R-Drop: Regularized Dropout for Neural Networks. NeurIPS 2021.
              https://arxiv.org/abs/2106.14448

        Requirements:
            1. Integer labels ``0..num_labels-1``.
            2. Dropout in the encoder or the head (``model.train()`` is set by the trainers).

        Inputs:
            +-------------+----------------+----------------------------------+
            | Texts       | Labels         | Notes                            |
            +=============+================+==================================+
            | (sentence,) | class id (int) | each sentence is encoded twice   |
            +-------------+----------------+----------------------------------+

        Relations:
            - :class:`SupConOODLoss` takes ``rdrop_alpha`` to add the same term to its cross-entropy.
            - :func:`st_contrast.losses.functional.symmetric_kl` is the shared KL (also used by fairseq).

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers import SentenceTransformerTrainer
                from st_contrast.losses import RDropLoss

                train = Dataset.from_dict({"sentence": texts, "label": class_ids})
                loss = RDropLoss(model, num_labels=150, alpha=1.0)
                SentenceTransformerTrainer(model=model, train_dataset=train, loss=loss).train()
        """
        super().__init__(model, check_inputs)
        from st_contrast.modules.classifier import ensure_classifier_head

        self.alpha = check_non_negative(alpha, "alpha")
        if ce_over_passes not in ("mean", "sum"):
            raise ValueError(f"ce_over_passes must be 'mean' (paper) or 'sum' (official code), got {ce_over_passes!r}")
        self.ce_over_passes = ce_over_passes
        self.head = ensure_classifier_head(model, num_labels, dropout=classifier_dropout, labels=label_names)
        self.num_labels = self.head.num_labels
        if self.alpha > 0 and not any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()):
            if not _has_config_dropout(model):
                logger.warning("RDropLoss: the model has no dropout, so both passes agree and the KL term is always 0")

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        features = check_single_column(self, sentence_features, "RDropLoss")
        batch_size = features["input_ids"].shape[0]
        labels = check_class_labels(labels, batch_size, "RDropLoss", self.num_labels)
        from st_contrast.modules.classifier import logits_from_output

        refuse_wrappers(self.model, "RDropLoss", {"MatryoshkaLoss": _RDROP_MATRYOSHKA})
        output = self.model(doubled(features))
        logits = logits_from_output(output, "RDropLoss").reshape(2, batch_size, -1)
        return for_wrapper(self.model, self.compute_loss_from_logits(logits[0], logits[1], labels.to(logits.device)))

    def compute_loss_from_logits(self, logits_p: Tensor, logits_q: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The loss from the two passes' logits ``(batch, num_labels)``."""
        ce = F.cross_entropy(logits_p, labels) + F.cross_entropy(logits_q, labels)
        if self.ce_over_passes == "mean":
            ce = ce / 2
        kl = functional.symmetric_kl(logits_p, logits_q, reduction="mean")
        return {"ce": ce, "rdrop": self.alpha * kl}


def _has_config_dropout(model: nn.Module) -> bool:
    for module in model.modules():
        config = getattr(module, "config", None)
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout"):
            value = getattr(config, key, None)
            if isinstance(value, float) and value > 0:
                return True
    return False
