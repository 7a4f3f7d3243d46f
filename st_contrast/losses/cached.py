"""Memory-bounded (GradCache) forms of the in-batch contrastive losses.

:class:`CachedSimCSELoss`, :class:`CachedSupConLoss` and :class:`CachedDeCLUTRLoss` (whose token-level MLM term
is computed per mini-batch in both passes and back-propagated with the cached embedding gradients).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder
from st_contrast.modules.mlm import mask_tokens

from ._checks import check_class_labels, check_no_labels, check_positive_int
from ._common import merge_features
from ._gradcache import cached_loss, count_rows
from .declutr import DeCLUTRLoss
from .simcse import ProjectionMode, SimCSELoss
from .supcon import Form, NoPositive, SupConLoss, Variant

_GRADCACHE_CITATION = """
@inproceedings{gao2021gradcache,
    title = "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup",
    author = "Gao, Luyu and Zhang, Yunyi and Han, Jiawei and Callan, Jamie",
    booktitle = "Proceedings of the 6th Workshop on Representation Learning for NLP",
    year = "2021",
    url = "https://arxiv.org/abs/2101.06983",
}
"""


def _merged(columns: list[dict[str, Any]], loss_name: str) -> dict[str, Any]:
    """All columns as one flattened batch (GradCache chunks it), or a clear error."""
    merged = merge_features(columns)
    if merged is None:
        raise ValueError(
            f"{loss_name} needs columns with the same kind of features (the same keys); got columns that cannot be "
            "batched together"
        )
    return merged


def _devices(model: nn.Module) -> list[torch.device]:
    return list({p.device for p in model.parameters()})


class CachedSimCSELoss(SimCSELoss):
    config_keys = (*SimCSELoss.config_keys, "mini_batch_size")
    CITATION = SimCSELoss.CITATION + _GRADCACHE_CITATION

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.05,
        hard_negative_weight: float = 0.0,
        gather_across_devices: bool = False,
        projection: ProjectionMode = "none",
        mini_batch_size: int = 64,
        check_inputs: bool = True,
    ) -> None:
        """:class:`SimCSELoss` with GradCache: the same loss and gradients, activation memory of one mini-batch.

        Contrastive losses improve with more in-batch negatives, and activation memory caps the batch.
        GradCache (Gao, Zhang, Han and Callan, 2021) embeds the batch in mini-batches without autograd,
        takes the gradient of the loss with respect to the embeddings, then re-embeds each mini-batch with
        autograd and back-propagates its slice of that gradient. Each mini-batch's random state is
        replayed, so dropout (the views of unsupervised SimCSE) is the same in both passes and the
        gradients are exact, not approximate. The cost is one extra forward pass without autograd.

        Args:
            model: the SentenceTransformer to train.
            temperature: ``τ`` (0.05 in the paper).
            hard_negative_weight: logit bonus of each anchor's own hard negative.
            gather_across_devices: negatives from every process (see :class:`SimCSELoss`).
            projection: ``"none"``, ``"mlp"`` (train-only head, owned by the loss) or ``"model"``.
            mini_batch_size: rows embedded at once; it bounds activation memory. All columns are embedded
                as one flattened batch (``2B`` rows for a single column, ``3B`` for triplets), chunked by
                this size. It does not change the loss, only memory and speed.
            check_inputs: check each batch for empty texts.

        References:
            - Gao, Yao, Chen. SimCSE. EMNLP 2021. https://arxiv.org/abs/2104.08821
            - Gao, Zhang, Han, Callan. Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup.
              RepL4NLP 2021. https://arxiv.org/abs/2101.06983

        Inputs:
            +---------------------------------------+--------+
            | Texts                                 | Labels |
            +=======================================+========+
            | (sentence,)                           | none   |
            +---------------------------------------+--------+
            | (anchor, positive) pairs              | none   |
            +---------------------------------------+--------+
            | (anchor, positive, negative) triplets | none   |
            +---------------------------------------+--------+

        Relations:
            - Gives the loss and gradients of :class:`SimCSELoss` on the same batch (tested, dropout included
              when the mini-batch covers the batch, and with dropout off for any mini-batch size).
        """
        super().__init__(
            model,
            temperature=temperature,
            hard_negative_weight=hard_negative_weight,
            gather_across_devices=gather_across_devices,
            projection=projection,
            check_inputs=check_inputs,
        )
        self.mini_batch_size = check_positive_int(mini_batch_size, "mini_batch_size")

    def _encode(self, features: dict[str, Any]) -> Tensor:
        return self.model(features)["sentence_embedding"]

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = self._check_columns(sentence_features)
        check_no_labels(labels, "CachedSimCSELoss")
        self.check_texts(sentence_features)
        columns = sentence_features * 2 if len(sentence_features) == 1 else sentence_features
        merged = _merged(columns, "CachedSimCSELoss")
        n_columns = len(columns)
        batch = count_rows(merged) // n_columns

        def loss_from_embeddings(embeddings: Tensor) -> Tensor:
            # SimCSELoss's own maths: its projection head, batch-size check and warnings included
            return self.compute_loss_from_embeddings(
                list(embeddings.reshape(n_columns, batch, *embeddings.shape[1:]).unbind(0))
            )

        head = [] if self.projection_head is None else list(self.projection_head.parameters())
        devices = _devices(self.model)
        return cached_loss(
            loss_from_embeddings, self._encode, merged, self.mini_batch_size, devices, loss_parameters=head
        )


class CachedSupConLoss(SupConLoss):
    config_keys = (*SupConLoss.config_keys, "mini_batch_size")
    CITATION = SupConLoss.CITATION + _GRADCACHE_CITATION

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.1,
        variant: Variant = "khosla",
        dropout_views: bool = False,
        mini_batch_size: int = 64,
        check_inputs: bool = True,
        form: Form = "out",
        no_positive: NoPositive = "drop",
    ) -> None:
        """:class:`SupConLoss` with GradCache: the same loss and gradients, activation memory of one mini-batch.

        Supervised contrastive learning gets more positives per anchor, and more negatives, from larger
        batches. As in :class:`CachedSimCSELoss`, the batch is embedded mini-batch by mini-batch without
        autograd, the loss's gradient with respect to the embeddings is cached, and each mini-batch is
        re-embedded with autograd during ``loss.backward()`` under its replayed random state (so the dropout
        views of ``dropout_views=True`` are the same in both passes) and the first pass's autocast.

        Args:
            model: the SentenceTransformer to train.
            temperature: ``τ`` (0.1).
            variant: ``"khosla"`` or ``"zeng"`` (see :class:`SupConLoss`).
            dropout_views: encode a single text column twice, as :class:`SupConLoss` does.
            mini_batch_size: rows embedded at once; all views are embedded as one flattened batch chunked by
                this size. It changes memory and speed, not the loss.
            check_inputs: check each batch for empty texts.
            form, no_positive: as :class:`SupConLoss` (``L_out``/``L_in``; anchors without a positive).

        References:
            - Khosla et al. Supervised Contrastive Learning. NeurIPS 2020. https://arxiv.org/abs/2004.11362
            - Gao, Zhang, Han, Callan. Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup.
              RepL4NLP 2021. https://arxiv.org/abs/2101.06983

        Inputs: as :class:`SupConLoss` (one text column, or two views, and an integer class label).

        Relations:
            - Gives the loss and gradients of :class:`SupConLoss` on the same batch (tested with dropout off
              for any mini-batch size, and with dropout when one mini-batch covers the batch).
        """
        super().__init__(
            model,
            temperature=temperature,
            variant=variant,
            dropout_views=dropout_views,
            check_inputs=check_inputs,
            form=form,
            no_positive=no_positive,
        )
        self.mini_batch_size = check_positive_int(mini_batch_size, "mini_batch_size")

    def _encode(self, features: dict[str, Any]) -> Tensor:
        return self.model(features)["sentence_embedding"]

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = self._check_columns(sentence_features)
        self.check_texts(sentence_features)
        columns = sentence_features * 2 if len(sentence_features) == 1 and self.dropout_views else sentence_features
        merged = _merged(columns, "CachedSupConLoss")
        n_columns = len(columns)
        batch = count_rows(merged) // n_columns
        # fail on bad labels before the embedding pass, not after it
        check_class_labels(labels, batch, "CachedSupConLoss", need_two_classes=True)

        def loss_from_embeddings(embeddings: Tensor) -> Tensor:
            views = list(embeddings.reshape(n_columns, batch, *embeddings.shape[1:]).unbind(0))
            return self.compute_loss_from_embeddings(views, labels)

        devices = _devices(self.model)
        return cached_loss(loss_from_embeddings, self._encode, merged, self.mini_batch_size, devices)


_MLM_LABELS = "st_contrast_mlm_labels"


class CachedDeCLUTRLoss(DeCLUTRLoss):
    config_keys = (*DeCLUTRLoss.config_keys, "mini_batch_size")
    CITATION = DeCLUTRLoss.CITATION + _GRADCACHE_CITATION

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
        mini_batch_size: int = 64,
        check_inputs: bool = True,
    ) -> None:
        """:class:`DeCLUTRLoss` with GradCache: the same loss and gradients, activation memory of one mini-batch.

        All anchor and positive spans are embedded as one flattened batch, chunked by ``mini_batch_size``.
        The anchors are masked for MLM once, before the first pass; each mini-batch's summed MLM loss is
        computed in both passes (the first gives the loss value, the second back-propagates it together with
        the mini-batch's slice of the cached embedding gradient), so MLM needs no more memory than the
        contrastive term. Random state and autocast are replayed as in :class:`CachedSimCSELoss`.

        Args:
            model, num_anchors, num_positives, temperature, mlm_weight, mlm_probability, gather_across_devices,
            load_pretrained_mlm_head, check_inputs: as :class:`DeCLUTRLoss`.
            mini_batch_size: rows embedded at once. It changes memory and speed, not the loss.

        The per-term values of the last batch are in :attr:`last_components` (``return_components`` is not
        offered: the cached loss is one tensor whose backward does the second pass).

        References:
            - Giorgi, Nitski, Wang, Bader. DeCLUTR. ACL 2021. https://arxiv.org/abs/2006.03659
            - Gao, Zhang, Han, Callan. Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup.
              RepL4NLP 2021. https://arxiv.org/abs/2101.06983

        Relations:
            - Gives the loss and gradients of :class:`DeCLUTRLoss` on the same batch and seed (tested with
              dropout off, with and without MLM, for any mini-batch size).
        """
        super().__init__(
            model,
            num_anchors=num_anchors,
            num_positives=num_positives,
            temperature=temperature,
            mlm_weight=mlm_weight,
            mlm_probability=mlm_probability,
            gather_across_devices=gather_across_devices,
            load_pretrained_mlm_head=load_pretrained_mlm_head,
            return_components=False,
            check_inputs=check_inputs,
        )
        self.mini_batch_size = check_positive_int(mini_batch_size, "mini_batch_size")

    def _encode(self, features: dict[str, Any]) -> Tensor | tuple[Tensor, Tensor]:
        features = dict(features)
        mlm_labels = features.pop(_MLM_LABELS, None)
        output = self.model(features)
        embedding = output["sentence_embedding"]
        if mlm_labels is None:
            return embedding
        weight = hf_encoder(self.model).get_input_embeddings().weight
        # a chunk of positives has nothing masked: its summed term is a connected 0 (the batch is checked in forward)
        return embedding, self.mlm_head.loss(output["token_embeddings"], mlm_labels, weight, "sum", loss_name=None)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = self._check_columns(sentence_features)
        check_no_labels(labels, "CachedDeCLUTRLoss")
        self.check_texts(sentence_features)
        anchors = _merged(sentence_features[: self.num_anchors], "CachedDeCLUTRLoss")
        merged = _merged([anchors, *sentence_features[self.num_anchors :]], "CachedDeCLUTRLoss")
        anchor_rows = count_rows(anchors)
        aux_weight = 0.0
        if self.mlm_head is not None:
            ids = self._mlm_ids
            masked, anchor_labels = mask_tokens(
                anchors["input_ids"], anchors["attention_mask"], ids["mask_token_id"], ids["vocab_size"],
                ids["special_ids"], self.mlm_probability,
            )  # fmt: skip
            input_ids = merged["input_ids"].clone()
            input_ids[:anchor_rows, : masked.shape[1]] = masked
            mlm_labels = torch.full_like(input_ids, -100)
            mlm_labels[:anchor_rows, : anchor_labels.shape[1]] = anchor_labels
            merged = {**merged, "input_ids": input_ids, _MLM_LABELS: mlm_labels}
            # the MLM loss is the mean over the batch's masked tokens: each mini-batch adds its sum / count
            count = anchor_labels.ne(-100).sum()
            if not bool(count):
                self.mlm_head.warn_nothing_masked("CachedDeCLUTRLoss")
            aux_weight = self.mlm_weight / count.clamp(min=1)
        batch = anchor_rows // self.num_anchors
        n_columns = self.num_columns

        def loss_from_embeddings(embeddings: Tensor) -> Tensor:
            columns = list(embeddings.reshape(n_columns, batch, *embeddings.shape[1:]).unbind(0))
            return self.compute_loss_from_embeddings(columns)

        devices = _devices(self.model)
        parts: dict[str, Tensor] = {}
        value = cached_loss(
            loss_from_embeddings, self._encode, merged, self.mini_batch_size, devices, aux_weight=aux_weight,
            parts=parts,
        )  # fmt: skip
        self.last_components = {"contrastive": parts["embedding"]}
        if "aux" in parts:
            self.last_components["mlm"] = parts["aux"]
        return value
