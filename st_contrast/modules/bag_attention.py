"""Selective attention over the instances of a bag, and the bag's relation classifier (CIL's bag head).

Owned by :class:`~st_contrast.losses.CILLoss` (it trains with the encoder but scores bags, not sentences, so it
is not part of the SentenceTransformer pipeline); saved and loaded on its own with :meth:`save` / :meth:`load`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from st_contrast.losses._checks import check_int, check_positive_int, check_rate

from ._base import ConfigModule

_LEGACY_WEIGHTS = "bag_classifier.safetensors"  # the weights file of folders saved by st-contrast 0.1


class BagAttentionClassifier(ConfigModule):
    """Selective attention over a bag's instances and a linear relation classifier (Lin et al., 2016).

    In OpenNRE's form (which CIL's code builds on) the query of relation ``r`` is row ``r`` of the
    classifier's weight ``W``: ``a_k = softmax_k(x_k · W_r)``, ``B = Σ_k a_k x_k``, ``logits = W·B + b``.
    Training attends with the gold relation's query; :meth:`predict` scores relation ``r`` with the
    bag representation built from ``r``'s own query, as at test time in OpenNRE and CIL.

    Two details of CIL's official code, off by default: ``detach_query=True`` reads the query from the
    weight's data (``fc.weight.data``), so the classifier weight gets its gradient from the classification
    only, not through the attention; ``dropout`` (official: 0.5) drops elements of the bag vector before the
    classifier during training (the bag vector returned for the contrastive term is the one before dropout).
    """

    config_keys: list[str] = ["embedding_dimension", "num_relations", "detach_query", "dropout"]
    config_file_name: str = "bag_classifier.json"

    def __init__(
        self, embedding_dimension: int, num_relations: int, detach_query: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.embedding_dimension = check_positive_int(embedding_dimension, "embedding_dimension")
        self.num_relations = check_int(num_relations, "num_relations", minimum=2)
        self.detach_query = bool(detach_query)
        self.dropout = check_rate(dropout, "dropout", high_open=True)
        self.classifier = nn.Linear(self.embedding_dimension, self.num_relations)
        self.bag_dropout = nn.Dropout(self.dropout)

    def attention(self, instances: Tensor, relations: Tensor, mask: Tensor | None = None) -> Tensor:
        """Weights ``(B, k)`` of each bag's instances ``(B, k, D)`` under the query of ``relations`` ``(B,)``."""
        weight = self.classifier.weight.detach() if self.detach_query else self.classifier.weight
        queries = weight[relations]  # (B, D)
        scores = torch.einsum("bkd,bd->bk", instances, queries)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), float("-inf"))
        return scores.softmax(dim=1)

    def forward(self, instances: Tensor, relations: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(bag_logits (B, R), bag_representations (B, D))`` with the given relations' queries."""
        weights = self.attention(instances, relations, mask)
        bags = torch.einsum("bk,bkd->bd", weights, instances)
        return self.classifier(self.bag_dropout(bags)), bags

    @torch.no_grad()
    def predict(self, instances: Tensor, mask: Tensor | None = None) -> Tensor:
        """``P(r | bag)`` for every relation ``(B, R)``, each from the bag built with ``r``'s query."""
        weight = self.classifier.weight
        scores = torch.einsum("bkd,rd->bkr", instances, weight)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
        bags = torch.einsum("bkr,bkd->brd", scores.softmax(dim=1), instances)  # one bag vector per query
        probabilities = self.classifier(bags).softmax(dim=-1)  # (B, R query, R class)
        return probabilities.diagonal(dim1=1, dim2=2)

    def save(self, folder: str | os.PathLike, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Save to ``folder``: ``bag_classifier.json`` (the sizes) and ``model.safetensors`` (the weights)."""
        os.makedirs(folder, exist_ok=True)
        super().save(str(folder), *args, safe_serialization=safe_serialization, **kwargs)

    @classmethod
    def load(
        cls, folder: str | os.PathLike, device: str | torch.device | None = None, **kwargs: Any
    ) -> BagAttentionClassifier:
        """Load what :meth:`save` wrote (or a folder saved by st-contrast 0.1: ``bag_classifier.safetensors``)."""
        folder = str(folder)
        legacy = os.path.join(folder, _LEGACY_WEIGHTS)
        if os.path.exists(legacy) and not os.path.exists(os.path.join(folder, "model.safetensors")):
            from safetensors.torch import load_file

            module = cls(**{k: v for k, v in cls.load_config(folder).items() if k in cls.config_keys})
            module.load_state_dict(load_file(legacy))
        else:
            module = super().load(folder, **kwargs)
        return module.to(device) if device is not None else module
