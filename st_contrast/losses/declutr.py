"""DeCLUTR: contrastive learning between spans of one document, plus masked language modelling."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder, pooling_modes
from st_contrast.modules.mlm import MLMHead, mask_tokens, tokenizer_ids

from . import functional
from ._base import ContrastiveLoss
from ._checks import check_int, check_no_labels, check_non_negative, check_rate, check_temperature
from ._common import embed_merged, for_wrapper, merge_features, refuse_wrappers
from .functional import distributed

logger = logging.getLogger(__name__)


DECLUTR_WRAPPER_REASONS = {
    "AdaptiveLayerLoss": "it masks the anchors anew (in new feature dicts) on every call, and the wrapper hands the "
    "first call's hidden states to the next through the caller's dicts"
}


class DeCLUTRLoss(ContrastiveLoss):
    config_keys = (
        "num_anchors",
        "num_positives",
        "temperature",
        "mlm_weight",
        "mlm_probability",
        "gather_across_devices",
    )
    CITATION = """
@inproceedings{giorgi-etal-2021-declutr,
    title = "{D}e{CLUTR}: Deep Contrastive Learning for Unsupervised Textual Representations",
    author = "Giorgi, John and Nitski, Osvald and Wang, Bo and Bader, Gary",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics and the 11th
        International Joint Conference on Natural Language Processing (Volume 1: Long Papers)",
    year = "2021",
    pages = "879--895",
    url = "https://aclanthology.org/2021.acl-long.72",
}
"""

    def __init__(
        self,
        model: nn.Module,
        num_anchors: int = 2,
        num_positives: int = 2,
        temperature: float = 0.05,
        mlm_weight: float = 1.0,
        mlm_probability: float = 0.15,
        gather_across_devices: bool = False,
        load_pretrained_mlm_head: bool = True,
        return_components: bool = False,
        check_inputs: bool = True,
    ) -> None:
        """DeCLUTR (Giorgi, Nitski, Wang and Bader, ACL 2021): spans of one document are each other's positives.

        Each training row holds ``A`` anchor spans of one document and ``P`` positive spans near each anchor
        (see :class:`st_contrast.data.declutr.DeCLUTRSpanSampler`). The anchors are masked for MLM (15% of
        their tokens, BERT's 80/10/10) and embedded *in the same forward pass* that gives the MLM logits; the
        positives are embedded unmasked and the ``P`` positive embeddings of an anchor are averaged. Over the
        ``2N`` views ``[anchors; averaged positives]`` (``N = batch·A``) the NT-Xent objective

        ``L_contrastive = (1/2N) Σ_i −log( e(i, partner(i)) / Σ_{k≠i} e(i, k) )``, ``e(a, b) = exp(cos(a, b)/τ)``,

        makes each anchor pick its own averaged positive (and vice versa) among all other views; the other
        anchors of the same document are among the (hard) negatives. The total is
        ``L_contrastive + mlm_weight · L_MLM``. The NT-Xent is :func:`st_contrast.losses.functional.nt_xent_loss`;
        the MLM head is :class:`st_contrast.modules.mlm.MLMHead` (tied to the input embeddings, initialised
        from the checkpoint's pretrained MLM head when it has one), owned by this loss and never saved with the
        model.

        Args:
            model: the SentenceTransformer to train; the paper uses mean pooling.
            num_anchors: ``A``, anchors per document (the paper's 2); must match the dataset's columns.
            num_positives: ``P``, positives per anchor (the paper's 2).
            temperature: ``τ`` of the NT-Xent (the paper's 0.05).
            mlm_weight: weight of the MLM loss (the paper's 1.0). 0 turns MLM off: anchors are then not masked
                and no MLM head is built (the model then needs no Hugging Face encoder).
            mlm_probability: share of the anchors' real tokens picked for MLM (the paper's 0.15).
            gather_across_devices: gather anchors and averaged positives from every process (with gradients), so
                the negatives span the global batch, as the official multi-GPU code does.
            load_pretrained_mlm_head: start the MLM head from the checkpoint's MLM head weights when present.
            return_components: return ``{"contrastive": ..., "mlm": mlm_weight·L_MLM}`` instead of their sum; the
                ``SentenceTransformerTrainer`` logs each and sums them. ``model.fit`` needs a single tensor, so leave
                this off there (the last components, detached, are always in :attr:`last_components`).
            check_inputs: check each batch for empty texts (a cheap tensor test).

        References:
            - Giorgi, Nitski, Wang, Bader. DeCLUTR: Deep Contrastive Learning for Unsupervised Textual
              Representations. ACL 2021. https://arxiv.org/abs/2006.03659
            - Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning of Visual
              Representations (SimCLR, the NT-Xent loss). ICML 2020.

        Requirements:
            1. Long documents cut into spans by :class:`~st_contrast.data.declutr.DeCLUTRSpanSampler` (a document
               needs ``A·max_span·2`` tokens; it can shrink spans for shorter ones).
            2. Mean pooling (the paper's); ``max_seq_length`` at least ``max_span`` plus the special tokens, or
               spans are truncated.
            3. With MLM on, a Hugging Face encoder whose tokenizer has a mask token.

        Inputs:
            +----------------------------------------------------------------------------+--------+
            | Texts                                                                      | Labels |
            +============================================================================+========+
            | ``A·(1+P)`` columns: the ``A`` anchors, then the ``P`` positives of anchor | none   |
            | 0, then those of anchor 1, ... (column ``A + a·P + p`` is positive ``p``   |        |
            | of anchor ``a``)                                                           |        |
            +----------------------------------------------------------------------------+--------+
            | ``A = P = 2``: (anchor_0, anchor_1, positive_0_0, positive_0_1,            | none   |
            | positive_1_0, positive_1_1)                                                |        |
            +----------------------------------------------------------------------------+--------+

            :class:`~st_contrast.data.declutr.DeCLUTRSpanSampler` builds these columns (``.dataset`` for the
            Trainer, ``.input_examples`` for ``model.fit``); :func:`~st_contrast.data.declutr.declutr_column_names`
            gives their names.

        Relations:
            - The NT-Xent is SimCSE's InfoNCE made symmetric with anchor–anchor negatives added: it equals the mean
              of sentence-transformers' ``MultipleNegativesRankingLoss`` with
              ``directions=("query_to_doc", "query_to_query")`` applied to (anchors, positives) and to
              (positives, anchors) (tested).
            - With ``A = P = 1`` and ``mlm_weight=0`` this is SimCLR's NT-Xent on (span, nearby span) pairs.

        Example:
            ::

                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from st_contrast.data.declutr import DeCLUTRSpanSampler, read_wikitext_articles
                from st_contrast.losses import DeCLUTRLoss

                model = SentenceTransformer("path/to/roberta-with-mean-pooling")
                sampler = DeCLUTRSpanSampler(min_span=16, max_span=128, on_short="skip", seed=0)
                dataset = sampler.dataset(read_wikitext_articles("wikitext2_valid.txt"))
                loss = DeCLUTRLoss(model)
                trainer = SentenceTransformerTrainer(model=model, train_dataset=dataset, loss=loss)
                trainer.train()
        """
        super().__init__(model, check_inputs)
        self.num_anchors = check_int(num_anchors, "num_anchors", minimum=1)
        self.num_positives = check_int(num_positives, "num_positives", minimum=1)
        self.temperature = check_temperature(temperature)
        self.mlm_weight = check_non_negative(mlm_weight, "mlm_weight")
        self.mlm_probability = check_rate(mlm_probability, "mlm_probability", low_open=True, high_open=True)
        self.gather_across_devices = bool(gather_across_devices)
        self.return_components = bool(return_components)
        self.mlm_head: MLMHead | None = None
        self._mlm_ids: dict[str, Any] | None = None
        if self.mlm_weight > 0:
            self.mlm_head = MLMHead.from_model(model, load_pretrained=load_pretrained_mlm_head)
            self._mlm_ids = tokenizer_ids(model)
        self.last_components: dict[str, Tensor] = {}
        _warn_if_not_mean_pooling(model)

    @property
    def num_columns(self) -> int:
        return self.num_anchors * (1 + self.num_positives)

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor | dict[str, Tensor]:
        sentence_features = self._check_columns(sentence_features)
        check_no_labels(labels, "DeCLUTRLoss")
        refuse_wrappers(self.model, type(self).__name__, DECLUTR_WRAPPER_REASONS)
        self.check_texts(sentence_features)
        anchor_features = sentence_features[: self.num_anchors]
        positive_features = sentence_features[self.num_anchors :]
        anchors, mlm = self._embed_anchors(anchor_features)
        positives = embed_merged(self.model, positive_features)
        contrastive = self.compute_loss_from_embeddings(anchors + positives, labels)
        components = {"contrastive": contrastive}
        if mlm is not None:
            components["mlm"] = self.mlm_weight * mlm
        self.last_components = {name: value.detach() for name, value in components.items()}
        if self.return_components:
            return for_wrapper(self.model, components)
        return contrastive + components["mlm"] if mlm is not None else contrastive

    def _check_columns(self, sentence_features: Iterable[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        sentence_features = list(sentence_features)
        if len(sentence_features) != self.num_columns:
            raise ValueError(
                f"{type(self).__name__}(num_anchors={self.num_anchors}, num_positives={self.num_positives}) expects "
                f"{self.num_columns} text columns (anchor_0..anchor_{self.num_anchors - 1}, then the positives of "
                f"each anchor in turn), got {len(sentence_features)}. Build the dataset with a DeCLUTRSpanSampler of "
                "the same num_anchors and num_positives."
            )
        return sentence_features

    def _embed_anchors(self, features_list: list[dict[str, Tensor]]) -> tuple[list[Tensor], Tensor | None]:
        """Embed the anchor columns in one forward pass; with MLM on, mask them first and score the MLM there."""
        if self.mlm_head is None:
            return embed_merged(self.model, features_list), None
        merged = merge_features(features_list) if len(features_list) > 1 else dict(features_list[0])
        groups = [merged] if merged is not None else [dict(features) for features in features_list]
        embeddings, hidden, targets = [], [], []
        ids = self._mlm_ids
        for features in groups:
            features = dict(features)
            masked, mlm_labels = mask_tokens(
                features["input_ids"],
                features["attention_mask"],
                ids["mask_token_id"],
                ids["vocab_size"],
                ids["special_ids"],
                self.mlm_probability,
            )
            features["input_ids"] = masked
            output = self.model(features)
            embeddings.append(output["sentence_embedding"])
            picked = mlm_labels != -100
            # only the picked positions go through the vocabulary projection
            hidden.append(output["token_embeddings"][picked])
            targets.append(mlm_labels[picked])
        weight = hf_encoder(self.model).get_input_embeddings().weight
        mlm = self.mlm_head.loss(torch.cat(hidden), torch.cat(targets), weight, loss_name=type(self).__name__)
        if merged is not None:
            anchors = list(embeddings[0].reshape(len(features_list), -1, *embeddings[0].shape[1:]).unbind(0))
        else:
            anchors = embeddings
        return anchors, mlm

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The NT-Xent from per-column embeddings ``[anchor_0, .., anchor_{A-1}, positive_0_0, ..]`` (no MLM)."""
        if len(embeddings) != self.num_columns:
            raise ValueError(f"DeCLUTRLoss needs {self.num_columns} embedding tensors, got {len(embeddings)}")
        anchors = torch.cat(embeddings[: self.num_anchors], dim=0)  # (A·B, d), anchor-major
        positives = torch.stack(embeddings[self.num_anchors :], dim=0)  # (A·P, B, d)
        batch, dim = positives.shape[1], positives.shape[2]
        positives = positives.reshape(self.num_anchors, self.num_positives, batch, dim).mean(dim=1)
        positives = positives.reshape(self.num_anchors * batch, dim)
        if anchors.shape[0] < 2 and not (self.gather_across_devices and distributed.is_distributed()):
            raise ValueError(
                "DeCLUTRLoss needs at least 2 anchors per batch (the other views are the negatives), got 1. Use "
                "num_anchors >= 2 or a batch size >= 2."
            )
        return functional.nt_xent_loss(anchors, positives, self.temperature, self.gather_across_devices)


def _warn_if_not_mean_pooling(model: nn.Module) -> None:
    modes = pooling_modes(model)
    if modes is not None and modes != ("mean",):
        logger.warning(
            "DeCLUTRLoss: the model pools with %s; the paper (and its results) use mean pooling", "+".join(modes)
        )
