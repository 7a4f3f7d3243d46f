"""Helpers shared by the sentence-transformers losses: merged forwards and input checks."""

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


def embed_merged(model: nn.Module, features_list: Sequence[dict[str, Any]], repeat: int = 1) -> list[Tensor]:
    """Embed all columns (each ``repeat`` times) in one forward pass; one embedding tensor per copy.

    One pass over the flattened batch is what SimCSE's official code does, and it is faster than one
    pass per column. With ``repeat=2`` and one column, the two copies see independent dropout masks,
    which is how unsupervised SimCSE makes its two views.
    """
    columns = [features for features in features_list for _ in range(repeat)]
    if len(columns) == 1:
        return [model(columns[0])["sentence_embedding"]]
    merged = merge_features(columns)
    if merged is None:
        return [model(dict(features))["sentence_embedding"] for features in columns]
    embeddings = model(merged)["sentence_embedding"]
    return list(embeddings.reshape(len(columns), -1, *embeddings.shape[1:]).unbind(0))


def special_token_ids(model: nn.Module) -> list[int]:
    """Ids of the tokens that carry no text ([CLS], [SEP], padding, ...); the unknown token is text."""
    tokenizer = getattr(model, "tokenizer", None)
    ids = getattr(tokenizer, "all_special_ids", None)
    unk = getattr(tokenizer, "unk_token_id", None)
    return [i for i in ids if i != unk] if ids else []


def check_no_empty_rows(features_list: Sequence[dict[str, Any]], special_ids: Sequence[int], loss_name: str) -> None:
    """Raise a ``ValueError`` naming the column and rows whose text is empty (only special tokens).

    All columns are checked on the device and their verdicts read back together, so the check waits for
    the device once per batch, not once per column.
    """
    if not special_ids:
        return
    checked: list[tuple[int, Tensor]] = []
    for column, features in enumerate(features_list):
        input_ids = features.get("input_ids")
        mask = features.get("attention_mask")
        if not isinstance(input_ids, Tensor) or not isinstance(mask, Tensor) or input_ids.ndim != 2:
            continue
        special = _special_tensor(tuple(special_ids), input_ids.device)
        real = mask.bool() & ~torch.isin(input_ids, special)
        checked.append((column, ~real.any(dim=1)))
    if not checked:
        return
    verdicts = torch.stack([empty.any() for _, empty in checked]).tolist()
    for (column, empty), has_empty in zip(checked, verdicts):
        if has_empty:
            rows = empty.nonzero().flatten().tolist()
            raise ValueError(
                f"{loss_name}: input column {column} holds {len(rows)} empty text(s) (rows {rows[:10]} of the "
                "batch). Empty strings give meaningless embeddings; remove them from the training data first."
            )


_SPECIAL_TENSORS: dict[tuple[tuple[int, ...], torch.device], Tensor] = {}


def _special_tensor(special_ids: tuple[int, ...], device: torch.device) -> Tensor:
    """The special-token ids as a tensor on ``device``, made once (a host-to-device copy per step is a wait)."""
    key = (special_ids, device)
    tensor = _SPECIAL_TENSORS.get(key)
    if tensor is None:
        tensor = _SPECIAL_TENSORS[key] = torch.tensor(list(special_ids), device=device)
    return tensor


def check_texts(loss: nn.Module, features_list: Sequence[dict[str, Any]], loss_name: str) -> None:
    """:func:`check_no_empty_rows` for a loss, unless its ``check_inputs`` is off; the special-token ids of
    ``loss.model`` are looked up once and cached on the loss as ``_special_ids``."""
    if not getattr(loss, "check_inputs", True):
        return
    special = getattr(loss, "_special_ids", None)
    if special is None:
        special = special_token_ids(loss.model)
        loss._special_ids = special
    check_no_empty_rows(features_list, special, loss_name)


def check_single_column(
    loss: nn.Module, sentence_features: Sequence[dict[str, Any]], loss_name: str
) -> dict[str, Any]:
    """The one text column of a classification loss (with :func:`check_texts` applied), or a clear error."""
    sentence_features = list(sentence_features)
    if len(sentence_features) != 1:
        raise ValueError(
            f"{loss_name} expects 1 text column (sentence) and a label column, got {len(sentence_features)} text "
            "columns. Drop the extra columns from the dataset."
        )
    check_texts(loss, sentence_features, loss_name)
    return sentence_features[0]


def check_no_labels(labels: Tensor | None, loss_name: str, hint: str = "") -> None:
    if labels is not None and isinstance(labels, Tensor) and labels.numel() > 0:
        raise ValueError(
            f"{loss_name} does not use labels, but the batch has a label column ({labels.shape[0]} values). "
            "Remove the 'label'/'score' column from the dataset" + (f"; {hint}" if hint else ".")
        )
