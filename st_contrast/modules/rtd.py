"""Replaced-token detection head (CLINE): which tokens of a rewrite were replaced."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder


class RTDHead(nn.Module):
    """Replaced-token-detection head: ``W_o · LayerNorm(gelu(W·h)) + b`` on every token (CLINE).

    ``num_labels=1`` gives one logit per token (replaced or not, the CLINE paper's binary detection);
    ``num_labels=3`` gives the official code's three classes (original / replaced in the synonym rewrite /
    replaced in the antonym rewrite). The structure is the official code's token-error head, shaped like
    the MLM head but with a small output layer.
    """

    def __init__(self, hidden_size: int, num_labels: int = 1, layer_norm_eps: float = 1e-12, init_std: float = 0.02):
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.num_labels = num_labels
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.decoder = nn.Linear(hidden_size, num_labels)
        for linear in (self.dense, self.decoder):
            nn.init.normal_(linear.weight, std=init_std)
            nn.init.zeros_(linear.bias)

    @classmethod
    def from_model(cls, model: nn.Module, num_labels: int = 1) -> RTDHead:
        """A head sized for ``model``'s encoder, on the encoder's device."""
        encoder = hf_encoder(model)
        config = encoder.config
        head = cls(
            config.hidden_size,
            num_labels,
            getattr(config, "layer_norm_eps", 1e-12),
            getattr(config, "initializer_range", 0.02),
        )
        return head.to(encoder.get_input_embeddings().weight.device)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """``(..., num_labels)`` logits (``(...,)`` squeezed when ``num_labels == 1``)."""
        logits = self.decoder(self.layer_norm(F.gelu(self.dense(hidden_states))))
        return logits.squeeze(-1) if self.num_labels == 1 else logits
