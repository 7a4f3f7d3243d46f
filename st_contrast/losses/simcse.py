"""SimCSE: contrastive learning of sentence embeddings from dropout views or NLI triplets."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

from torch import Tensor, nn

from st_contrast.modeling import embedding_dimension, initializer_range, model_device

from . import functional
from ._base import ContrastiveLoss
from ._checks import check_no_labels, check_number, check_temperature
from ._common import embed_merged
from .functional import distributed

logger = logging.getLogger(__name__)

ProjectionMode = Literal["none", "mlp", "model"]


class SimCSEProjection(nn.Module):
    """SimCSE's MLP over the pooled vector: ``tanh(W·h + b)`` with ``W`` of shape ``(H, H)``.

    Owned by :class:`SimCSELoss` when ``projection="mlp"`` (trained, never saved with the model).
    """

    def __init__(self, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        nn.init.normal_(self.dense.weight, std=init_std)
        nn.init.zeros_(self.dense.bias)
        self.activation = nn.Tanh()

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.activation(self.dense(embeddings))


class SimCSELoss(ContrastiveLoss):
    config_keys = ("temperature", "hard_negative_weight", "gather_across_devices", "projection")
    CITATION = """
@inproceedings{gao2021simcse,
    title = "{S}im{CSE}: Simple Contrastive Learning of Sentence Embeddings",
    author = "Gao, Tianyu and Yao, Xingcheng and Chen, Danqi",
    booktitle = "Proceedings of the 2021 Conference on Empirical Methods in Natural Language Processing",
    year = "2021",
    url = "https://arxiv.org/abs/2104.08821",
}
"""

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.05,
        hard_negative_weight: float = 0.0,
        gather_across_devices: bool = False,
        projection: ProjectionMode = "none",
        check_inputs: bool = True,
    ) -> None:
        """SimCSE (Gao, Yao and Chen, EMNLP 2021): InfoNCE with in-batch negatives over cosine similarities.

        Unsupervised SimCSE encodes every sentence twice; the two dropout masks make the two views, and
        the other sentences of the batch are the negatives. Supervised SimCSE uses NLI (premise,
        entailment, contradiction) triplets; each premise's own contradiction can get a logit bonus
        (``hard_negative_weight``). The objective, for anchors ``z1``, positives ``z2`` and negatives ``z3``:

        ``loss_i = -log( e(z1_i, z2_i) / (Σ_j e(z1_i, z2_j) + Σ_j e(z1_i, z3_j)·exp(w·[i=j])) )``
        with ``e(a, b) = exp(cos(a, b)/τ)``.

        All columns are embedded in one forward pass over the flattened batch, as in the official code.

        Args:
            model: the SentenceTransformer to train.
            temperature: ``τ``; the paper uses 0.05 (sentence-transformers' ``scale=20``).
            hard_negative_weight: ``w``, added to the scaled logit of each anchor's own hard negative
                (the paper's ablation found 0 best for its main results; 1 and more are tried in it).
            gather_across_devices: gather positives and negatives from every process (with gradients)
                so that negatives span the global batch, as the official multi-GPU code does.
            projection: ``"none"``; ``"mlp"``: the unsupervised recipe's train-only Linear+Tanh head, owned
                by the loss and dropped at test time (``cls_before_pooler``); ``"model"``: the supervised
                recipe's head, appended to ``model`` as a ``Dense`` module so it is saved and used at test
                time (skipped if the model already ends with one).
            check_inputs: check each batch for empty texts (a cheap tensor test); turn off only if profiling
                shows it matters.

        References:
            - Gao, Yao, Chen. SimCSE: Simple Contrastive Learning of Sentence Embeddings. EMNLP 2021.
              https://arxiv.org/abs/2104.08821

        Requirements:
            1. Batches of at least two examples (in-batch negatives).
            2. For the paper's recipe, [CLS] pooling and max length 32.

        Inputs:
            +---------------------------------------+--------+-----------------------------------------------+
            | Texts                                 | Labels | Recipe                                        |
            +=======================================+========+===============================================+
            | (sentence,)                           | none   | unsupervised: each sentence encoded twice     |
            +---------------------------------------+--------+-----------------------------------------------+
            | (anchor, positive) pairs              | none   | unsupervised as (s, s) pairs, or paraphrases  |
            +---------------------------------------+--------+-----------------------------------------------+
            | (anchor, positive, negative) triplets | none   | supervised NLI (premise, entail, contradict)  |
            +---------------------------------------+--------+-----------------------------------------------+

        Relations:
            - With ``hard_negative_weight=0`` and ``projection="none"`` this equals sentence-transformers'
              :class:`MultipleNegativesRankingLoss` with ``scale=1/temperature`` (tested).
            - :class:`st_contrast.losses.CachedSimCSELoss` is the memory-bounded (GradCache) form.

        Example:
            ::

                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from st_contrast.data import sentence_dataset
                from st_contrast.losses import SimCSELoss

                model = SentenceTransformer("path/to/bert")
                loss = SimCSELoss(model, temperature=0.05, projection="mlp")
                trainer = SentenceTransformerTrainer(model=model, train_dataset=sentence_dataset(sentences), loss=loss)
                trainer.train()
        """
        super().__init__(model, check_inputs)
        self.temperature = check_temperature(temperature)
        self.hard_negative_weight = check_number(hard_negative_weight, "hard_negative_weight")
        self.gather_across_devices = bool(gather_across_devices)
        if projection not in ("none", "mlp", "model"):
            raise ValueError(f"projection must be 'none', 'mlp' or 'model', got {projection!r}")
        self.projection = projection
        self.projection_head: SimCSEProjection | None = None
        if projection != "none":
            dim = embedding_dimension(model)
            if dim is None:
                raise ValueError("projection needs the model's embedding dimension, but the model does not report one")
            init_std = initializer_range(model)
            if projection == "mlp":
                self.projection_head = SimCSEProjection(dim, init_std)
                device = model_device(model)
                if device is not None:
                    self.projection_head.to(device)
            else:
                _append_dense_head(model, dim, init_std)
        self._warned_unused_weight = False

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = self._check_columns(sentence_features)
        check_no_labels(
            labels,
            "SimCSELoss",
            "for NLI data, build (premise, entailment, contradiction) triplets with st_contrast.data.nli_triplets",
        )
        self.check_texts(sentence_features)
        repeat = 2 if len(sentence_features) == 1 else 1
        embeddings = embed_merged(self.model, sentence_features, repeat=repeat)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def _check_columns(self, sentence_features: Iterable[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        sentence_features = list(sentence_features)
        if not 1 <= len(sentence_features) <= 3:
            raise ValueError(
                f"{type(self).__name__} expects 1 text column (sentence), 2 (anchor, positive) or 3 (anchor, "
                f"positive, negative), got {len(sentence_features)} columns. Drop the extra columns from the dataset."
            )
        return sentence_features

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The loss from already computed embeddings ``[anchors, positives(, negatives)]``."""
        if len(embeddings) not in (2, 3):
            raise ValueError(f"SimCSELoss needs 2 or 3 embedding tensors, got {len(embeddings)}")
        if self.projection_head is not None:
            width = self.projection_head.dense.in_features
            if embeddings[0].shape[-1] != width:
                raise ValueError(
                    _MLP_UNDER_MATRYOSHKA.format(name=type(self).__name__)
                    + f" (got {embeddings[0].shape[-1]}-wide embeddings, the head takes {width})"
                )
            embeddings = [self.projection_head(embedding) for embedding in embeddings]
        anchors, positives = embeddings[0], embeddings[1]
        negatives = embeddings[2] if len(embeddings) == 3 else None
        if negatives is None and self.hard_negative_weight and not self._warned_unused_weight:
            logger.warning("SimCSELoss: hard_negative_weight has no effect without a negative column")
            self._warned_unused_weight = True
        self._check_batch_size(anchors)
        return functional.simcse_loss(
            anchors,
            positives,
            negatives,
            temperature=self.temperature,
            hard_negative_weight=self.hard_negative_weight,
            gather_across_devices=self.gather_across_devices,
        )

    def _check_batch_size(self, anchors: Tensor) -> None:
        size = anchors.shape[0]
        if size >= 2 or (self.gather_across_devices and distributed.is_distributed()):
            return
        raise ValueError(
            f"SimCSELoss needs at least 2 examples per batch (the other examples are the negatives), got a batch of "
            f"{size}. Use a larger batch size, or drop_last=True so the last batch is not a single example."
        )


_MLP_UNDER_MATRYOSHKA = (
    "{name}(projection='mlp') cannot train under MatryoshkaLoss or Matryoshka2dLoss: they truncate the embeddings, "
    "and the train-only MLP head takes full-width ones; use projection='model' (the head becomes part of the model, "
    "so its output is what is truncated) or projection='none'"
)


def _append_dense_head(model: nn.Module, dim: int, init_std: float) -> None:
    from sentence_transformers.base.modules import Dense

    last = list(model.children())[-1] if len(list(model.children())) else None
    if isinstance(last, Dense) and isinstance(getattr(last, "activation_function", None), nn.Tanh):
        return
    if not hasattr(model, "append"):
        raise ValueError("projection='model' needs a SentenceTransformer (a model that modules can be appended to)")
    head = Dense(dim, dim, activation_function=nn.Tanh())
    nn.init.normal_(head.linear.weight, std=init_std)
    nn.init.zeros_(head.linear.bias)
    device = model_device(model)
    model.append(head.to(device) if device is not None else head)
