"""Helpers shared by the sentence-transformers losses: one forward pass over several text columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def merge_features(features_list: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Concatenate per-column feature dicts into one batch (column-major), or ``None`` if they differ.

    Token tensors are right-padded with zeros to the widest column (the padding carries attention
    mask 0). Non-tensor entries and 0-d tensors must agree across columns.
    """
    first = features_list[0]
    if any(set(features) != set(first) for features in features_list[1:]):
        return None
    merged: dict[str, Any] = {}
    for key, value in first.items():
        values = [features[key] for features in features_list]
        if isinstance(value, Tensor) and value.ndim >= 1 and key != "prompt_length":
            if any(not isinstance(v, Tensor) or v.ndim != value.ndim for v in values):
                return None
            if value.ndim >= 2:
                width = max(v.shape[1] for v in values)
                if any(v.shape[1] != width for v in values):
                    if value.is_floating_point():
                        return None
                    values = [F.pad(v, [0, 0] * (v.ndim - 2) + [0, width - v.shape[1]]) for v in values]
                if any(v.shape[2:] != value.shape[2:] for v in values):
                    return None
            merged[key] = torch.cat(values, dim=0)
        else:
            try:
                same = all((torch.equal(v, value) if isinstance(v, Tensor) else bool(v == value)) for v in values[1:])
            except (RuntimeError, ValueError, TypeError):
                return None
            if not same:
                return None
            merged[key] = value
    return merged


# the stash key of a column's doubled batch (see embed_merged); never passed to the model
_DOUBLED = "st_contrast_doubled"


def merge_columns(features_list: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """sentence-transformers' own column merging (``merge_feature_batches``): ``None`` when the columns differ, and
    under ``column_merging_disabled()`` (wrappers such as ``AdaptiveLayerLoss`` hand state between calls through
    the per-column dicts)."""
    from sentence_transformers.base.losses.merged_forward import merge_feature_batches

    return merge_feature_batches(list(features_list))


def doubled(features: dict[str, Any]) -> dict[str, Any]:
    """One column twice as one batch, whose two halves get independent dropout (two views of each text).

    sentence-transformers has no helper for encoding the same column twice. Under ``column_merging_disabled()``
    the doubled batch is kept in ``features`` (the dict the wrapper hands to every call), so that state a wrapper
    writes into it on the first call (``AdaptiveLayerLoss``'s per-layer outputs, both views) is there on the next.
    """
    merged = merge_columns([features, features])
    if merged is not None:
        return merged
    stashed = features.get(_DOUBLED)
    if stashed is None:
        plain = {key: value for key, value in features.items() if key != _DOUBLED}
        stashed = merge_features([plain, plain])
        if stashed is None:  # pragma: no cover - one column always merges with itself
            raise ValueError("cannot batch a text column with itself")
        features[_DOUBLED] = stashed
    return stashed


def embed_merged(model: nn.Module, features_list: Sequence[dict[str, Any]], repeat: int = 1) -> list[Tensor]:
    """Embed all columns (each ``repeat`` times) in one forward pass; one embedding tensor per copy.

    One pass over the flattened batch is what SimCSE's official code does, and it is faster than one
    pass per column. With ``repeat=2`` and one column, the two copies see independent dropout masks,
    which is how unsupervised SimCSE makes its two views. Columns are merged by sentence-transformers'
    ``merge_feature_batches``; where it refuses (different features, or ``column_merging_disabled()``), each
    column is embedded in its own pass, on the caller's dict itself, as sentence-transformers' losses do.
    """
    if repeat == 2 and len(features_list) == 1:
        embeddings = model(doubled(features_list[0]))["sentence_embedding"]
        return list(embeddings.reshape(2, -1, *embeddings.shape[1:]).unbind(0))
    columns = [features for features in features_list for _ in range(repeat)]
    if len(columns) == 1:
        return [model(columns[0])["sentence_embedding"]]
    merged = merge_columns(columns)
    if merged is None:
        return [model(features)["sentence_embedding"] for features in columns]
    embeddings = model(merged)["sentence_embedding"]
    return list(embeddings.reshape(len(columns), -1, *embeddings.shape[1:]).unbind(0))


def running_wrappers(model: nn.Module) -> list[str]:
    """The sentence-transformers wrappers running this model's loss now: ``"MatryoshkaLoss"`` and/or
    ``"AdaptiveLayerLoss"`` (``Matryoshka2dLoss`` runs both). Each patches the model's ``forward`` (and
    AdaptiveLayerLoss the transformer module's) for the duration of its call."""
    from sentence_transformers.sentence_transformer.losses import adaptive_layer, matryoshka

    model = getattr(model, "module", model)
    found: list[str] = []
    forward = model.__dict__.get("forward")
    while forward is not None:
        if isinstance(forward, matryoshka.ForwardDecorator):
            found.append("MatryoshkaLoss")
        elif isinstance(forward, adaptive_layer.ForwardDecorator):
            found.append("AdaptiveLayerLoss")
        forward = getattr(forward, "fn", None)
    first = model[0] if hasattr(model, "__getitem__") and len(model) else None
    if isinstance(getattr(first, "__dict__", {}).get("forward"), adaptive_layer.TransformerDecorator):
        found.append("AdaptiveLayerLoss")
    return sorted(set(found))


def refuse_wrappers(model: nn.Module, loss_name: str, reasons: dict[str, str]) -> None:
    """Raise a clear error when one of the wrappers in ``reasons`` (wrapper name -> why) runs this loss.

    The wrappers' constructors give the inner loss no hook, so the refusal comes at the first batch.
    ``Matryoshka2dLoss`` runs both wrappers, so it is refused by either.
    """
    for wrapper in running_wrappers(model):
        if wrapper in reasons:
            raise ValueError(
                f"{loss_name} cannot train under {wrapper} (nor Matryoshka2dLoss, which runs it): {reasons[wrapper]}"
            )


def for_wrapper(model: nn.Module, value: Tensor | dict[str, Tensor]) -> Tensor | dict[str, Tensor]:
    """A dict of loss components as their sum while a wrapper runs the loss (its weighted sums take tensors)."""
    if isinstance(value, dict) and running_wrappers(model):
        return sum(value.values())
    return value
