"""st_contrast.modules.rtd: CLINE's replaced-token-detection head."""

from __future__ import annotations

import pytest
import torch

from st_contrast.modules.rtd import RTDHead


@pytest.mark.parametrize("num_labels", [1, 3])
def test_one_logit_per_token_or_one_per_class(num_labels):
    head = RTDHead(8, num_labels)
    tokens = torch.randn(2, 5, 8)
    logits = head(tokens)
    assert logits.shape == ((2, 5) if num_labels == 1 else (2, 5, 3))
    hidden = head.layer_norm(torch.nn.functional.gelu(head.dense(tokens)))
    expected = head.decoder(hidden)
    torch.testing.assert_close(logits, expected.squeeze(-1) if num_labels == 1 else expected)


def test_sized_for_the_model_and_refuses_no_labels(tiny_model):
    head = RTDHead.from_model(tiny_model, num_labels=3)
    assert head.dense.in_features == tiny_model[0].auto_model.config.hidden_size
    with pytest.raises(ValueError, match="num_labels must be >= 1"):
        RTDHead(8, 0)
