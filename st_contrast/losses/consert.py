"""ConSERT: contrastive sentence representation transfer with embedding-level views (Yan et al., ACL 2021)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from st_contrast.modeling import pooling_modes
from st_contrast.views.embedding import (
    EmbeddingView,
    FeatureCutoff,
    TokenShuffle,
    capture_embedding_output,
    embedding_views,
    embeddings_module,
)

from . import functional
from ._base import ContrastiveLoss
from ._checks import check_no_labels, check_non_negative, check_temperature
from ._common import for_wrapper, merge_features, refuse_wrappers
from .functional import distributed

logger = logging.getLogger(__name__)

PoolingChoice = Literal["model", "mean"]

# float attributes some attention implementations read instead of an nn.Dropout module
_DROPOUT_FLOAT_ATTRIBUTES = ("attention_dropout", "dropout_prob", "dropout_p")


@contextmanager
def dropout_disabled(model: nn.Module) -> Iterator[None]:
    """Set every dropout probability inside ``model`` to 0 for the block, and restore it afterwards.

    Acts on ``nn.Dropout``-like modules (their ``p``; Hugging Face's attention reads its probability
    from them) and on float attributes named ``attention_dropout`` / ``dropout_prob`` / ``dropout_p``.
    Only live modules change: the model's ``config`` (what gets saved) is never touched, the
    ``training`` flags stay as they are (so gradient checkpointing still works), and the previous
    values come back even when the forward raises, so other losses still see dropout.
    """
    saved: list[tuple[nn.Module, str, float]] = []
    try:
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                saved.append((module, "p", module.p))
                module.p = 0.0
            for name in _DROPOUT_FLOAT_ATTRIBUTES:
                value = module.__dict__.get(name)
                if isinstance(value, float) and value > 0.0:
                    saved.append((module, name, value))
                    setattr(module, name, 0.0)
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


class ConSERTLoss(ContrastiveLoss):
    config_keys = ("temperature", "disable_dropout", "contrastive_weight", "pooling", "gather_across_devices")
    CITATION = """
@inproceedings{yan2021consert,
    title = "{C}on{SERT}: A Contrastive Framework for Self-Supervised Sentence Representation Transfer",
    author = "Yan, Yuanmeng and Li, Rumei and Wang, Sirui and Zhang, Fuzheng and Wu, Wei and Xu, Weiran",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics",
    year = "2021",
    url = "https://arxiv.org/abs/2105.11741",
}
"""

    def __init__(
        self,
        model: nn.Module,
        view1: EmbeddingView | None = None,
        view2: EmbeddingView | None = None,
        temperature: float = 0.1,
        disable_dropout: bool = True,
        supervised_loss: nn.Module | None = None,
        contrastive_weight: float = 1.0,
        pooling: PoolingChoice = "model",
        joint_contrast: Literal["per_column", "merged"] = "per_column",
        gather_across_devices: bool = False,
        check_inputs: bool = True,
    ) -> None:
        """ConSERT (Yan et al., ACL 2021): NT-Xent between two embedding-level views of every sentence.

        Each sentence is encoded twice in **one** forward pass over the doubled batch: the first copy
        through ``view1``, the second through ``view2`` (views act on the encoder's embedding layer, see
        :mod:`st_contrast.views.embedding`). With ``h_a``, ``h_b`` the L2-normalised sentence vectors of the
        two views and ``I`` the identity, the loss is SimCLR's NT-Xent with the two directions summed:

        ``L_con = CE([h_a·h_bᵀ, h_a·h_aᵀ − ∞·I]/τ, diag) + CE([h_b·h_aᵀ, h_b·h_bᵀ − ∞·I]/τ, diag)``

        (:func:`st_contrast.losses.functional.consert_loss`). The encoder's own dropout is switched off
        while this loss runs (``disable_dropout``), so the views differ only by the augmentations.

        With ``supervised_loss`` (the paper's "joint" setting) the batch is labelled, e.g. NLI pairs: the
        clean sentences go through the supervised loss and every text of the batch gets the two views:
        ``L = L_sup + contrastive_weight · L_con``; the paper uses ``contrastive_weight=0.15`` there.
        ``L_con`` is then one NT-Xent per text column, summed (``joint_contrast="per_column"``: premises
        against premises, hypotheses against hypotheses, as the official ``AdvCLSoftmaxLoss``), or one
        NT-Xent over the views of all columns together (``"merged"``: cross-column negatives, another scale).

        Args:
            model: the SentenceTransformer to train (a BERT- or RoBERTa-like Hugging Face encoder).
            view1: the first view; default ``FeatureCutoff(0.2)`` (the paper's best unsupervised pair).
            view2: the second view; default ``TokenShuffle()``.
            temperature: ``τ``; 0.1 in the paper (the authors later advised 0.05 with lr 2e-5).
            disable_dropout: set the encoder's dropout probabilities to 0 during this loss's forward and
                restore them afterwards (the saved config and other losses keep their dropout).
            supervised_loss: a labelled loss joined with the contrastive one. It must be built on the same
                model and compute its value from embeddings: sentence-transformers' ``SoftmaxLoss`` (NLI
                classification, the paper's choice) or any loss with ``compute_loss_from_embeddings``.
                Required by the :class:`~st_contrast.views.Adversarial` view.
            contrastive_weight: the weight of ``L_con`` (``α``); 1.0 unsupervised, 0.15 in the paper's joint
                setting.
            pooling: ``"model"``: the model's own sentence embedding (what it is evaluated with); ``"mean"``:
                the mean of the last layer over the real tokens, as in the paper, whatever the model's
                pooling. Build the model with mean pooling for the paper's recipe.
            joint_contrast: with ``supervised_loss`` only: ``"per_column"`` (default; the official code, the
                paper does not say) sums one NT-Xent per text column; ``"merged"`` runs one NT-Xent over the
                views of every column together. Unsupervised batches with several columns are always merged.
            gather_across_devices: use the views of every process as negatives (with gradients).
            check_inputs: check each batch for empty texts.

        References:
            - Yan, Li, Wang, Zhang, Wu, Xu. ConSERT: A Contrastive Framework for Self-Supervised Sentence
              Representation Transfer. ACL 2021. https://arxiv.org/abs/2105.11741

        Requirements:
            1. A Hugging Face BERT/RoBERTa-like encoder whose ``embeddings`` module can be hooked.
            2. Batches of at least two sentences.

        Inputs:
            +------------------------------------+--------------------+------------------------------------------+
            | Texts                              | Labels             | Setting                                  |
            +====================================+====================+==========================================+
            | (sentence,)                        | none               | unsupervised (the paper's main setting)  |
            +------------------------------------+--------------------+------------------------------------------+
            | any columns of texts               | none               | unsupervised; every text gets two views  |
            +------------------------------------+--------------------+------------------------------------------+
            | (premise, hypothesis)              | class (NLI label)  | joint, with ``supervised_loss``          |
            +------------------------------------+--------------------+------------------------------------------+

        Relations:
            - ``consert_loss = 2 · nt_xent_loss`` (DeCLUTR's objective), the same candidate set.
            - With two :class:`~st_contrast.views.NoAugmentation` views and dropout left on, the views come from
              dropout alone, as in unsupervised SimCSE (but with same-view negatives and both directions).

        Example:
            ::

                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from st_contrast.data import sentence_dataset
                from st_contrast.losses import ConSERTLoss
                from st_contrast.views import FeatureCutoff, TokenShuffle

                model = SentenceTransformer("path/to/bert")
                loss = ConSERTLoss(model, view1=FeatureCutoff(0.2), view2=TokenShuffle(), temperature=0.1)
                trainer = SentenceTransformerTrainer(model=model, train_dataset=sentence_dataset(sentences), loss=loss)
                trainer.train()
        """
        super().__init__(model, check_inputs)
        self.view1 = FeatureCutoff(0.2) if view1 is None else view1
        self.view2 = TokenShuffle() if view2 is None else view2
        for name, view in (("view1", self.view1), ("view2", self.view2)):
            if not isinstance(view, EmbeddingView):
                raise ValueError(
                    f"{name} must be an embedding-level view from st_contrast.views (FeatureCutoff, TokenShuffle, "
                    f"TokenCutoff, EmbeddingDropout, SpanCutoff, Adversarial, NoAugmentation), got {view!r}"
                )
        self.temperature = check_temperature(temperature)
        self.disable_dropout = bool(disable_dropout)
        self.contrastive_weight = check_non_negative(contrastive_weight, "contrastive_weight")
        if pooling not in ("model", "mean"):
            raise ValueError(
                f"pooling must be 'model' (the model's own pooling) or 'mean' (the paper's), got {pooling!r}"
            )
        self.pooling = pooling
        if joint_contrast not in ("per_column", "merged"):
            raise ValueError(
                f"joint_contrast must be 'per_column' (one NT-Xent per text column, official code) or 'merged' "
                f"(one NT-Xent over every column's views), got {joint_contrast!r}"
            )
        self.joint_contrast = joint_contrast
        self.gather_across_devices = bool(gather_across_devices)
        if supervised_loss is not None:
            _check_supervised_loss(supervised_loss, model)
        elif any(view.needs_gradient for view in (self.view1, self.view2)):
            raise ValueError(
                "the Adversarial view perturbs the embeddings along the gradient of a supervised loss, so it is only "
                "usable with labels: pass supervised_loss= (e.g. sentence-transformers' SoftmaxLoss on NLI pairs)"
            )
        self.supervised_loss = supervised_loss
        # fail now, not at the first batch, when the encoder cannot be hooked
        embeddings_module(model, need_position_ids=any(v.changes_positions for v in (self.view1, self.view2)))
        modes = pooling_modes(model)
        model_pooling = "+".join(modes) if modes else None
        if pooling == "model" and model_pooling is not None and model_pooling != "mean":
            logger.info(
                "ConSERTLoss trains the model's own %r pooling; the paper mean-pools the last layer "
                "(build the model with mean pooling, or pass pooling='mean', for the paper's recipe)",
                model_pooling,
            )

    # -----------------------------------------------------------------------------------------
    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor | dict[str, Tensor]:
        sentence_features = list(sentence_features)
        if not sentence_features:
            raise ValueError("ConSERTLoss needs at least one text column, got none")
        refuse_wrappers(
            self.model,
            "ConSERTLoss",
            {
                "AdaptiveLayerLoss": "its views are built in new feature dicts on every call, and the wrapper hands "
                "the first call's hidden states to the next through the caller's dicts"
            },
        )
        if self.supervised_loss is None:
            check_no_labels(labels, "ConSERTLoss", "to join a supervised loss on labelled data, pass supervised_loss=")
        elif labels is None or (isinstance(labels, Tensor) and labels.numel() == 0):
            raise ValueError(
                "ConSERTLoss with a supervised_loss needs labels (e.g. NLI pairs with a 'label' column), got none"
            )
        self.check_texts(sentence_features)

        if self.supervised_loss is None:
            _check_distinct_columns(sentence_features)
        merged = merge_features(sentence_features) if len(sentence_features) > 1 else dict(sentence_features[0])
        groups = [merged] if merged is not None else [dict(features) for features in sentence_features]
        with dropout_disabled(self.model) if self.disable_dropout else _nothing():
            supervised, gradients = None, [None] * len(groups)
            if self.supervised_loss is not None:
                supervised, gradients = self._supervised(groups, len(sentence_features), labels)
            view_a, view_b = [], []
            for group, gradient in zip(groups, gradients):
                a, b = self._two_views(group, gradient)
                view_a.append(a)
                view_b.append(b)
        view_a, view_b = torch.cat(view_a), torch.cat(view_b)
        if supervised is not None and self.joint_contrast == "per_column" and len(sentence_features) > 1:
            # rows are column after column: one NT-Xent per column, summed (official AdvCLSoftmaxLoss)
            n = len(sentence_features)
            contrastive = sum(
                self.compute_loss_from_embeddings([a, b]) for a, b in zip(view_a.chunk(n), view_b.chunk(n))
            )
        else:
            contrastive = self.compute_loss_from_embeddings([view_a, view_b])
        if supervised is None:
            return contrastive if self.contrastive_weight == 1.0 else self.contrastive_weight * contrastive
        return for_wrapper(
            self.model, {"supervised": supervised, "contrastive": self.contrastive_weight * contrastive}
        )

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        """The (unweighted) NT-Xent of the two views ``[view_a, view_b]``, each ``(N, dim)``."""
        if len(embeddings) != 2:
            raise ValueError(f"ConSERTLoss needs 2 embedding tensors (one per view), got {len(embeddings)}")
        view_a, view_b = embeddings
        if view_a.shape[0] < 2 and not (self.gather_across_devices and distributed.is_distributed()):
            raise ValueError(
                f"ConSERTLoss needs at least 2 sentences per batch (the other sentences are the negatives), got "
                f"{view_a.shape[0]}. Use a larger batch size, or drop_last=True."
            )
        return functional.consert_loss(view_a, view_b, self.temperature, self.gather_across_devices)

    # -----------------------------------------------------------------------------------------
    def _pool(self, output: dict[str, Tensor], attention_mask: Tensor) -> Tensor:
        if self.pooling == "model":
            return output["sentence_embedding"]
        tokens = output["token_embeddings"]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def _two_views(self, features: dict[str, Any], gradient: Tensor | None) -> tuple[Tensor, Tensor]:
        doubled = merge_features([features, features])
        if doubled is None:  # pragma: no cover - identical dicts always merge
            raise ValueError("ConSERTLoss could not repeat the batch for its two views")
        with embedding_views(self.model, doubled, [self.view1, self.view2], gradient=gradient) as view_features:
            output = self.model(view_features)
            embeddings = self._pool(output, view_features["attention_mask"])
        return embeddings.chunk(2, dim=0)

    def _supervised(
        self, groups: list[dict[str, Any]], n_columns: int, labels: Tensor
    ) -> tuple[Tensor, list[Tensor | None]]:
        """The supervised loss on the clean batch, and (for the Adversarial view) its gradient per group."""
        adversarial = any(view.needs_gradient for view in (self.view1, self.view2))
        with torch.enable_grad() if adversarial else _nothing():
            with capture_embedding_output(self.model) if adversarial else _nothing() as captured:
                embeddings = [self.model(dict(group))["sentence_embedding"] for group in groups]
            if len(groups) == 1 and n_columns > 1:
                columns = list(embeddings[0].reshape(n_columns, -1, embeddings[0].shape[-1]).unbind(0))
            else:
                columns = embeddings
            supervised = _supervised_from_embeddings(self.supervised_loss, columns, labels)
            if not adversarial:
                return supervised, [None] * len(groups)
            if not supervised.requires_grad:
                raise ValueError("the Adversarial view needs a supervised loss that depends on trainable embeddings")
            gradients = torch.autograd.grad(supervised, captured, retain_graph=True, allow_unused=True)
        return supervised, [torch.zeros_like(c) if g is None else g.detach() for c, g in zip(captured, gradients)]

    def get_config_dict(self) -> dict[str, Any]:
        supervised = None if self.supervised_loss is None else type(self.supervised_loss).__name__
        return {
            "view1": repr(self.view1),
            "view2": repr(self.view2),
            **super().get_config_dict(),
            "supervised_loss": supervised,
            "joint_contrast": self.joint_contrast,
        }


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _check_distinct_columns(sentence_features: Sequence[dict[str, Any]]) -> None:
    first = sentence_features[0].get("input_ids")
    if len(sentence_features) < 2 or not isinstance(first, Tensor):
        return
    for features in sentence_features[1:]:
        other = features.get("input_ids")
        if isinstance(other, Tensor) and other.shape == first.shape and torch.equal(other, first):
            raise ValueError(
                "ConSERTLoss got identical text columns (e.g. the (s, s) pairs that SimCSE's readers build): every "
                "sentence would be its own negative. ConSERT makes its two views itself: give it one column "
                "(st_contrast.data.sentence_dataset, or InputExample(texts=[s]) for model.fit)"
            )


def _is_softmax_loss(loss: nn.Module) -> bool:
    return all(hasattr(loss, name) for name in ("classifier", "concatenation_sent_rep", "loss_fct"))


def _check_supervised_loss(loss: nn.Module, model: nn.Module) -> None:
    if not isinstance(loss, nn.Module):
        raise ValueError(f"supervised_loss must be a sentence-transformers loss module, got {loss!r}")
    if getattr(loss, "model", model) is not model:
        raise ValueError("supervised_loss must be built on the same model as ConSERTLoss (its .model differs)")
    if not callable(getattr(loss, "compute_loss_from_embeddings", None)) and not _is_softmax_loss(loss):
        raise ValueError(
            f"supervised_loss must compute its value from embeddings: sentence-transformers' SoftmaxLoss, or a loss "
            f"with compute_loss_from_embeddings(embeddings, labels); {type(loss).__name__} has neither"
        )


def _supervised_from_embeddings(loss: nn.Module, columns: list[Tensor], labels: Tensor) -> Tensor:
    compute = getattr(loss, "compute_loss_from_embeddings", None)
    if callable(compute):
        return compute(columns, labels)
    # sentence-transformers' SoftmaxLoss, from its own attributes (it has no compute_loss_from_embeddings)
    if len(columns) != 2:
        raise ValueError(f"SoftmaxLoss classifies sentence pairs: it needs 2 text columns, got {len(columns)}")
    rep_a, rep_b = columns
    parts = []
    if loss.concatenation_sent_rep:
        parts += [rep_a, rep_b]
    if getattr(loss, "concatenation_sent_difference", False):
        parts.append(torch.abs(rep_a - rep_b))
    if getattr(loss, "concatenation_sent_multiplication", False):
        parts.append(rep_a * rep_b)
    logits = loss.classifier(torch.cat(parts, dim=1).to(loss.classifier.weight.dtype))
    if getattr(loss, "num_labels", 0) == 1 or labels.shape != logits.shape:
        labels = labels.view(-1)
    return loss.loss_fct(logits, labels)
