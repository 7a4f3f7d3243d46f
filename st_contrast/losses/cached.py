"""Memory-bounded (GradCache) forms of the in-batch contrastive losses.

:class:`CachedSimCSELoss`, :class:`CachedSupConLoss` and :class:`CachedDeCLUTRLoss` (whose token-level MLM term
is computed per mini-batch in both passes and back-propagated with the cached embedding gradients).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

import torch
from sentence_transformers.base.losses.gradcache import CachedLossMixin, RandContext, _create_minibatch
from sentence_transformers.base.losses.merged_forward import merge_feature_batches
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder
from st_contrast.modules.mlm import mask_tokens

from ._checks import check_class_labels, check_no_labels, check_positive_int
from ._common import merge_features, refuse_wrappers
from ._gradcache import AutocastState, cached_loss, count_rows
from .declutr import DECLUTR_WRAPPER_REASONS, DeCLUTRLoss
from .simcse import _MLP_UNDER_MATRYOSHKA, ProjectionMode, SimCSELoss
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
    """All columns as one flattened batch (GradCache chunks it), or a clear error (CachedDeCLUTRLoss)."""
    merged = merge_features(columns)
    if merged is None:
        raise ValueError(
            f"{loss_name} needs columns with the same kind of features (the same keys); got columns that cannot be "
            "batched together"
        )
    return merged


def _devices(model: nn.Module) -> list[torch.device]:
    return list({p.device for p in model.parameters()})


class _CachedInBatchLoss(CachedLossMixin):
    """sentence-transformers' GradCache (``CachedLossMixin``) with two things it lacks, as a thin layer over it.

    ST's mixin embeds mini-batches, caches the gradient of :meth:`calculate_loss` with respect to the
    embeddings and replays each mini-batch's random state in the second pass (``RandContext``). Because
    we use its ``uses_gradient_cache`` / ``calculate_loss`` contract, ST's wrappers see our cached losses as
    they see ``CachedMultipleNegativesRankingLoss``: ``MatryoshkaLoss`` truncates the cached embeddings
    through ``calculate_loss``, ``AdaptiveLayerLoss`` warns that it cannot wrap a cached loss.

    What this layer adds:

    1. **Autocast replay.** ST's backward hook re-embeds inside ``loss.backward()``, which the Trainer
       (``bf16``/``fp16``) and AMP loops call outside their ``autocast`` block, so its second pass runs in
       float32 while the cached gradients belong to reduced-precision embeddings. Each mini-batch's
       random-state snapshot (:class:`_ReplayState`) also records the autocast settings and re-enters them.
    2. **One forward for all columns.** When sentence-transformers' ``merge_feature_batches`` accepts them
       (it refuses under ``column_merging_disabled()``), all columns, and the two copies of a single column
       whose dropout makes the views, go through the mini-batches as one flattened batch, as the uncached
       loss embeds them; so with one mini-batch covering the batch the dropout masks, loss and gradients
       equal the uncached loss's. ST's mixin embeds column by column.
    """

    uses_gradient_cache = True
    mini_batch_num_tokens = None
    show_progress_bar = False
    _n_columns = 1

    def _encode(self, features: dict[str, Any]) -> Tensor:
        return self.model(features)["sentence_embedding"]

    def embed_minibatch(
        self,
        sentence_feature: dict[str, Tensor],
        begin: int,
        end: int,
        with_grad: bool,
        copy_random_state: bool,
        random_state: RandContext | None = None,
    ) -> tuple[Tensor, RandContext | None]:
        # ST's embed_minibatch, with _ReplayState (random state + autocast) and our _encode
        grad_context = nullcontext if with_grad else torch.no_grad
        chunk = _create_minibatch(sentence_feature, begin, end)
        with random_state if random_state is not None else nullcontext():
            with grad_context():
                state = _ReplayState(*chunk.values()) if copy_random_state else None
                reps = self._encode(chunk)
        return reps, state

    def _forward_columns(self, columns: list[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        self._n_columns = len(columns)
        self._pending_own = None
        merged = merge_feature_batches(columns) if len(columns) > 1 else None
        loss = self.forward_cached([merged] if merged is not None else columns, labels)
        pending, self._pending_own = self._pending_own, None
        if pending is not None:
            own_loss, own = pending

            def own_backward(upstream: Tensor) -> None:
                # the loss's own parameters (SimCSE's train-only head) get their gradient times the upstream one
                torch.autograd.backward(own_loss, upstream.detach().to(own_loss.dtype), inputs=own)

            loss.register_hook(own_backward)
        return loss

    def _own_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the loss itself (not of the model): used inside compute_loss_from_embeddings."""
        model_ids = {id(p) for p in self.model.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in model_ids]

    def _columns_from_reps(self, reps: list[list[Tensor]]) -> list[Tensor]:
        """The per-column embeddings, from either layout of ``forward_cached``'s mini-batches."""
        embeddings = [torch.cat(chunks, dim=0) for chunks in reps]
        if len(embeddings) == 1 and self._n_columns > 1:
            flat = embeddings[0]
            embeddings = list(flat.reshape(self._n_columns, -1, *flat.shape[1:]).unbind(0))
        return embeddings

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        loss = self.compute_loss_from_embeddings(self._columns_from_reps(reps), labels)
        if with_backward:
            own = self._own_parameters()
            if own:
                # ST's mixin scales only the embeddings' replay by the upstream gradient (loss scaling,
                # accumulation): the head's gradient waits for it in _forward_columns' hook, so it is exact too
                leaves = [rep for chunks in reps for rep in chunks if rep.requires_grad]
                torch.autograd.backward(loss, inputs=leaves, retain_graph=True)
                self._pending_own = (loss, own)
            else:
                loss.backward()
            loss = loss.detach()
        return loss


class _ReplayState(RandContext):
    """ST's ``RandContext`` (CPU/CUDA/MPS random state) that also replays the autocast settings in force when it
    was taken: ST's replay runs under whatever autocast the caller's ``backward()`` has, usually none."""

    def __init__(self, *tensors: Any) -> None:
        super().__init__(*tensors)
        self._autocast = AutocastState(_tensor_devices(tensors))
        self._autocast_context: Any = None

    def __enter__(self) -> None:
        super().__enter__()
        self._autocast_context = self._autocast.replay()
        self._autocast_context.__enter__()

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        try:
            self._autocast_context.__exit__(exc_type, exc_val, exc_tb)
        finally:
            self._autocast_context = None
            super().__exit__(exc_type, exc_val, exc_tb)


def _tensor_devices(tensors: tuple[Any, ...]) -> list[torch.device]:
    return list({t.device for t in tensors if isinstance(t, Tensor)})


class CachedSimCSELoss(_CachedInBatchLoss, SimCSELoss):
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

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = self._check_columns(sentence_features)
        check_no_labels(labels, "CachedSimCSELoss")
        self.check_texts(sentence_features)
        self._check_batch_size(torch.empty(count_rows(sentence_features[0]), 0))
        # one column: two copies of it, whose independent dropout makes the two views (unsupervised SimCSE)
        columns = sentence_features * 2 if len(sentence_features) == 1 else sentence_features
        return self._forward_columns(columns, labels)

    def __setattr__(self, name: str, value: Any) -> None:
        # MatryoshkaLoss installs its truncation by replacing calculate_loss: refuse it here, at the wrapper's
        # construction, when the train-only head would receive truncated embeddings (see SimCSELoss).
        if name == "calculate_loss" and self.projection == "mlp":
            raise ValueError(_MLP_UNDER_MATRYOSHKA.format(name=type(self).__name__))
        super().__setattr__(name, value)


class CachedSupConLoss(_CachedInBatchLoss, SupConLoss):
    config_keys = (*SupConLoss.config_keys, "mini_batch_size")
    CITATION = SupConLoss.CITATION + _GRADCACHE_CITATION

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.1,
        variant: Variant = "khosla",
        dropout_views: bool = False,
        gather_across_devices: bool = False,
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
            gather_across_devices: every process's embeddings and labels as candidates (see :class:`SupConLoss`).
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
            gather_across_devices=gather_across_devices,
            check_inputs=check_inputs,
            form=form,
            no_positive=no_positive,
        )
        self.mini_batch_size = check_positive_int(mini_batch_size, "mini_batch_size")

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = self._check_columns(sentence_features)
        self.check_texts(sentence_features)
        # fail on bad labels before the embedding pass, not after it
        check_class_labels(labels, count_rows(sentence_features[0]), "CachedSupConLoss", need_two_classes=True)
        columns = sentence_features * 2 if len(sentence_features) == 1 and self.dropout_views else sentence_features
        return self._forward_columns(columns, labels)


_MLM_LABELS = "st_contrast_mlm_labels"


class CachedDeCLUTRLoss(DeCLUTRLoss):
    # sentence-transformers' gradient-cache contract (``uses_gradient_cache`` + ``calculate_loss``), so that its
    # wrappers treat this loss as they treat CachedMultipleNegativesRankingLoss. The engine stays ours
    # (_gradcache.cached_loss): ST's CachedLossMixin replays only the embeddings in its second pass, and this loss
    # must also back-propagate each mini-batch's token-level MLM term there.
    uses_gradient_cache = True
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
        refuse_wrappers(self.model, "CachedDeCLUTRLoss", DECLUTR_WRAPPER_REASONS)
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

        def loss_from_embeddings(embeddings: Tensor, with_backward: bool) -> Tensor:
            return self.calculate_loss([[embeddings]], None, with_backward=with_backward)

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

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        """The contrastive term from the cached embeddings (all columns as one flattened batch)."""
        flat = torch.cat([chunk for chunks in reps for chunk in chunks], dim=0)
        loss = self.compute_loss_from_embeddings(list(flat.reshape(self.num_columns, -1, *flat.shape[1:]).unbind(0)))
        if with_backward:
            loss.backward()
            loss = loss.detach()
        return loss
