"""What the losses, views and modules need to know about a model: its encoder, device, sizes, pooling, tokens.

One place for the small lookups that every method makes on a SentenceTransformer (or a bare Hugging Face
encoder), so each rule is written once: where the Hugging Face encoder is, which device and embedding size
the model has, how it pools, and which token ids carry no text.
"""

from __future__ import annotations

from torch import nn


def special_token_ids(model: nn.Module) -> list[int]:
    """Ids of the tokens that carry no text ([CLS], [SEP], padding, ...); the unknown token is text."""
    tokenizer = getattr(model, "tokenizer", None)
    ids = getattr(tokenizer, "all_special_ids", None)
    unk = getattr(tokenizer, "unk_token_id", None)
    return [i for i in ids if i != unk] if ids else []
