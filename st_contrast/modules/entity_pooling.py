"""Entity-marker pooling: a relation instance's vector from the hidden states of its entity markers.

Relation encoders in the style of Baldini Soares et al. (2019) and CIL (Chen et al., ACL 2021) wrap the
head and tail mentions in marker tokens (``[E1] head [/E1] ... [E2] tail [/E2]``) and represent the
instance by the concatenation of the hidden states at the two start markers, passed through a
``Linear(2H, 2H)`` layer. :class:`EntityMarkerPooling` is that layer as a sentence-transformers module
(saved and loaded with the model like ``Pooling`` or ``Dense``); :func:`build_relation_encoder` adds the
marker tokens to the tokenizer, resizes the embedding matrix and assembles the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from st_contrast.losses._checks import check_positive_int

from ._base import ConfigModule

#: head start, head end, tail start, tail end
ENTITY_MARKERS: tuple[str, str, str, str] = ("[E1]", "[/E1]", "[E2]", "[/E2]")


class EntityMarkerPooling(ConfigModule):
    """``Linear(2H, 2H)([h_[E1] ; h_[E2]])``: the instance vector from the two entity start markers.

    Args:
        embedding_dimension: ``H``, the encoder's hidden size (the output has ``2H`` dimensions).
        marker_ids: token ids of the four markers, in the order of :data:`ENTITY_MARKERS`
            (head start, head end, tail start, tail end).
        markers: the marker strings (kept in the saved config so the tokenizer can be checked).
        bias: whether the linear layer has a bias.

    Every input must contain both start markers; a row without one (an unmarked sentence, or a marker
    cut off by ``max_seq_length``) raises a ``ValueError`` naming the rows.
    """

    config_keys: list[str] = ["embedding_dimension", "marker_ids", "markers", "bias"]

    def __init__(
        self,
        embedding_dimension: int,
        marker_ids: Sequence[int],
        markers: Sequence[str] = ENTITY_MARKERS,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int(embedding_dimension, "embedding_dimension")
        if len(marker_ids) != 4 or len(markers) != 4:
            raise ValueError(
                "EntityMarkerPooling needs 4 marker ids and 4 marker strings (head start, head end, tail start, "
                f"tail end), got {len(marker_ids)} ids and {len(markers)} strings"
            )
        if len(set(int(i) for i in marker_ids)) != 4:
            raise ValueError(f"the 4 entity marker ids must be distinct, got {list(marker_ids)}")
        self.embedding_dimension = int(embedding_dimension)
        self.marker_ids = [int(i) for i in marker_ids]
        self.markers = [str(m) for m in markers]
        self.bias = bool(bias)
        self.linear = nn.Linear(2 * self.embedding_dimension, 2 * self.embedding_dimension, bias=self.bias)

    @property
    def head_marker_id(self) -> int:
        return self.marker_ids[0]

    @property
    def tail_marker_id(self) -> int:
        return self.marker_ids[2]

    def marker_positions(self, input_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Index of the first head-start and tail-start marker in each row; raises if a row lacks one."""
        head = input_ids == self.head_marker_id
        tail = input_ids == self.tail_marker_id
        missing = ~(head.any(dim=1) & tail.any(dim=1))
        if bool(missing.any()):
            rows = missing.nonzero().flatten().tolist()
            raise ValueError(
                f"EntityMarkerPooling: {len(rows)} input(s) (rows {rows[:10]} of the batch) lack the head marker "
                f"{self.markers[0]!r} or the tail marker {self.markers[2]!r}. Mark both entities in every text "
                "(st_contrast.data.relation.mark_entities does it), and keep them within max_seq_length "
                "(mark_entities(..., max_words=N) crops the context around the entities)."
            )
        # argmax returns the first maximal index
        return head.int().argmax(dim=1), tail.int().argmax(dim=1)

    def forward(self, features: dict[str, Tensor], **kwargs: Any) -> dict[str, Tensor]:
        token_embeddings = features["token_embeddings"]
        head, tail = self.marker_positions(features["input_ids"])
        rows = torch.arange(token_embeddings.shape[0], device=token_embeddings.device)
        pair = torch.cat([token_embeddings[rows, head], token_embeddings[rows, tail]], dim=-1)
        features["sentence_embedding"] = self.linear(pair)
        return features

    def get_embedding_dimension(self) -> int:
        return 2 * self.embedding_dimension

    def get_sentence_embedding_dimension(self) -> int:
        return self.get_embedding_dimension()

    def get_config_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.config_keys}

    def __repr__(self) -> str:
        return (
            f"EntityMarkerPooling(embedding_dimension={self.embedding_dimension}, markers={self.markers}, "
            f"marker_ids={self.marker_ids})"
        )


def add_marker_tokens(transformer: nn.Module, markers: Sequence[str] = ENTITY_MARKERS) -> list[int]:
    """Add ``markers`` to a ``Transformer`` module's tokenizer as special tokens and resize its embeddings.

    Markers already in the vocabulary keep their ids. Returns the marker ids in order.
    """
    tokenizer = getattr(transformer, "tokenizer", None)
    auto_model = getattr(transformer, "auto_model", None)
    if tokenizer is None or auto_model is None:
        raise ValueError(
            "adding entity markers needs a sentence-transformers Transformer module (with a tokenizer and an "
            f"auto_model), got {type(transformer).__name__}"
        )
    tokenizer.add_tokens(list(markers), special_tokens=True)
    embeddings = auto_model.get_input_embeddings()
    if len(tokenizer) > embeddings.weight.shape[0]:
        auto_model.resize_token_embeddings(len(tokenizer))
    ids = [int(tokenizer.convert_tokens_to_ids(marker)) for marker in markers]
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ValueError(f"the tokenizer maps an entity marker to its unknown token: {dict(zip(markers, ids))}")
    return ids


def build_relation_encoder(
    model_name_or_path: str | os.PathLike | nn.Module,
    markers: Sequence[str] = ENTITY_MARKERS,
    max_seq_length: int | None = 128,
    device: str | None = None,
):
    """A SentenceTransformer ``[Transformer, EntityMarkerPooling]`` whose tokenizer knows the entity markers.

    Args:
        model_name_or_path: a Hugging Face checkpoint folder or name, or an existing SentenceTransformer
            (its first module, the Transformer, is reused with its weights; its pooling is replaced).
        markers: head start, head end, tail start, tail end marker strings.
        max_seq_length: truncation length of the Transformer (``None`` keeps the model's own).
        device: where to put the model (sentence-transformers' default when ``None``).

    Returns:
        A SentenceTransformer whose ``sentence_embedding`` is the ``2H``-dimensional instance vector. The marker
        tokens and the resized embedding matrix are saved with ``model.save(...)`` and come back on loading.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer

    if isinstance(model_name_or_path, nn.Module):
        first = next(iter(model_name_or_path.children()), None) if hasattr(model_name_or_path, "children") else None
        if first is None or getattr(first, "auto_model", None) is None:
            raise ValueError(
                "build_relation_encoder needs a SentenceTransformer whose first module is a Transformer, got "
                f"{type(model_name_or_path).__name__}"
            )
        transformer = first
        if max_seq_length is not None:
            transformer.max_seq_length = int(max_seq_length)
    else:
        transformer = Transformer(str(model_name_or_path), max_seq_length=max_seq_length)
    ids = add_marker_tokens(transformer, markers)
    pooling = EntityMarkerPooling(transformer.get_embedding_dimension(), ids, markers)
    weight = transformer.auto_model.get_input_embeddings().weight
    pooling.to(device=weight.device, dtype=weight.dtype)
    if device is None and isinstance(model_name_or_path, nn.Module):
        device = str(weight.device)
    return SentenceTransformer(modules=[transformer, pooling], device=device)


def find_entity_pooling(model: nn.Module) -> EntityMarkerPooling:
    """The :class:`EntityMarkerPooling` module of ``model``; a ``ValueError`` saying how to build one otherwise."""
    for module in model.modules():
        if isinstance(module, EntityMarkerPooling):
            return module
    raise ValueError(
        f"this model ({type(model).__name__}) has no EntityMarkerPooling module. Build the relation encoder with "
        "st_contrast.modules.entity_pooling.build_relation_encoder(path_or_model), which adds the entity marker "
        "tokens and the marker pooling."
    )


def load_relation_encoder(path: str | os.PathLike, device: str | None = None, **kwargs: Any):
    """Load a relation encoder saved with ``model.save(path)``.

    sentence-transformers 6 imports module classes outside its own namespace (here
    ``st_contrast.modules.entity_pooling.EntityMarkerPooling``) only with ``trust_remote_code=True``;
    this passes it. Only load folders you trust: the flag also lets a folder's own modeling code run.
    """
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device, trust_remote_code=True, **kwargs)
