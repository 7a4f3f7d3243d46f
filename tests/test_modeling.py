"""st_contrast.modeling: the one place for encoder, device, size, pooling and token lookups on a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from st_contrast.modeling import (
    embedding_dimension,
    hf_encoder,
    initializer_range,
    model_device,
    pooling_modes,
    special_token_ids,
    tokenizer_of,
)


def test_lookups_on_a_sentence_transformer(tiny_model, tiny_model_mean):
    encoder = hf_encoder(tiny_model)
    assert encoder is tiny_model[0].auto_model
    assert hf_encoder(encoder) is encoder  # a bare Hugging Face model is its own encoder
    assert model_device(tiny_model) == torch.device("cpu")
    assert embedding_dimension(tiny_model) == encoder.config.hidden_size
    assert initializer_range(tiny_model) == encoder.config.initializer_range
    assert pooling_modes(tiny_model) == ("cls",) and pooling_modes(tiny_model_mean) == ("mean",)
    tokenizer = tokenizer_of(tiny_model)
    special = special_token_ids(tiny_model)
    assert special == special_token_ids(tokenizer)
    assert tokenizer.cls_token_id in special and tokenizer.pad_token_id in special
    assert tokenizer.unk_token_id not in special  # the unknown token stands for text


def test_lookups_on_a_model_without_them():
    plain = nn.Sequential()
    assert model_device(plain) is None
    assert embedding_dimension(plain) is None
    assert initializer_range(plain) == 0.02
    assert pooling_modes(plain) is None
    assert tokenizer_of(plain) is None and special_token_ids(plain) == []
    with pytest.raises(ValueError, match="replaced-token detection needs the model's tokenizer"):
        tokenizer_of(plain, "replaced-token detection")
    with pytest.raises(ValueError, match="needs a Hugging Face encoder.*got Sequential"):
        hf_encoder(plain)
