"""What the losses, views and modules need to know about a model: its encoder, device, sizes, pooling, tokens.

One place for the small lookups that every method makes on a SentenceTransformer (or a bare Hugging Face
encoder), so each rule is written once: where the Hugging Face encoder is, which device and embedding size
the model has, how it pools, its tokenizer and which token ids carry no text.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def hf_encoder(model: nn.Module) -> nn.Module:
    """The Hugging Face ``PreTrainedModel`` inside a SentenceTransformer (its first module's ``auto_model``).

    A bare Hugging Face model (with ``get_input_embeddings`` and a ``config``) is returned as it is.
    """
    if hasattr(model, "get_input_embeddings") and hasattr(model, "config"):
        return model
    for module in model.modules():
        auto_model = getattr(module, "auto_model", None)
        if auto_model is not None and hasattr(auto_model, "get_input_embeddings"):
            return auto_model
    raise ValueError(
        "this loss needs a Hugging Face encoder (a SentenceTransformer whose first module is a Transformer "
        f"with an `auto_model`), got {type(model).__name__}"
    )


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter; ``None`` for a model without parameters."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return None


def embedding_dimension(model: nn.Module) -> int | None:
    """The sentence-embedding size the model reports (sentence-transformers' ``get_embedding_dimension``)."""
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        getter = getattr(model, name, None)
        if callable(getter):
            dim = getter()
            if dim:
                return int(dim)
    return None


def initializer_range(model: nn.Module, default: float = 0.02) -> float:
    """The standard deviation the model's config uses to initialise weights (``initializer_range``)."""
    for module in model.modules():
        value = getattr(getattr(module, "config", None), "initializer_range", None)
        if isinstance(value, float) and value > 0:
            return value
    return default


def pooling_modes(model: nn.Module) -> tuple[str, ...] | None:
    """The pooling mode(s) of the model's first pooling module (``("mean",)``, ``("cls",)``, ...), or ``None``."""
    for module in model.modules():
        mode = getattr(module, "pooling_mode", None)
        if mode is None:
            continue
        return (mode,) if isinstance(mode, str) else tuple(mode)
    return None


def tokenizer_of(model: nn.Module, purpose: str | None = None) -> Any:
    """The model's tokenizer (``model.tokenizer``); ``None`` without one, or a clear error when ``purpose`` is
    given (what needs it, e.g. ``"replaced-token detection"``)."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None and purpose is not None:
        raise ValueError(
            f"{purpose} needs the model's tokenizer (model.tokenizer), but {type(model).__name__} has none"
        )
    return tokenizer


def special_token_ids(model_or_tokenizer: Any) -> list[int]:
    """Ids of the tokens that carry no text ([CLS], [SEP], padding, ...); the unknown token is text.

    Takes a model (its ``tokenizer`` is used) or a tokenizer; ``[]`` when there is none.
    """
    tokenizer = getattr(model_or_tokenizer, "tokenizer", None)
    if tokenizer is None and hasattr(model_or_tokenizer, "all_special_ids"):
        tokenizer = model_or_tokenizer
    ids = getattr(tokenizer, "all_special_ids", None)
    unk = getattr(tokenizer, "unk_token_id", None)
    return [i for i in ids if i != unk] if ids else []
