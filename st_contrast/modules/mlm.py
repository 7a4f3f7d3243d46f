"""The one masked-language-modelling path, shared by CLINE, DeCLUTR, CachedDeCLUTR and CIL.

1. :func:`mask_tokens`: BERT's masking (``probability`` of the real tokens; 80% [MASK], 10% random, 10% kept),
   never touching special tokens, padding or protected positions (CIL's entity markers and mentions);
2. :meth:`MLMHead.loss`: the head projects **only the masked positions** onto the vocabulary (about 15% of
   the tokens: the same mean, a fraction of the work) and takes their cross-entropy. When nothing could be
   masked in a batch (every token special, padding or protected) the term is a zero that stays connected to
   the graph (zero gradients, never NaN), with a warning the first time for each head.

The head is the BERT/RoBERTa form ``LayerNorm(gelu(W·h)) · Eᵀ + b`` with the decoder tied to the encoder's
input embeddings ``E`` (passed in at call time, so the embedding matrix is registered once, under the
model). When the encoder's checkpoint folder holds pretrained MLM head weights they are loaded. The head is
owned by the loss (trained with it, never saved with the model).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from st_contrast.losses._checks import check_rate
from st_contrast.modeling import hf_encoder, special_token_ids, tokenizer_of

logger = logging.getLogger(__name__)

#: label of the positions that are not predicted (PyTorch's cross-entropy default)
IGNORE_INDEX = -100

# checkpoint prefixes of the MLM head in Hugging Face BERT-like and RoBERTa-like models
_HEAD_PREFIXES = {
    "cls.predictions.transform.dense.": "dense.",
    "cls.predictions.transform.LayerNorm.": "layer_norm.",
    "cls.predictions.bias": "bias",
    "lm_head.dense.": "dense.",
    "lm_head.layer_norm.": "layer_norm.",
    "lm_head.bias": "bias",
}


class MLMHead(nn.Module):
    """Masked-language-model head with its decoder tied to the encoder's input embeddings."""

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float = 1e-12, init_std: float = 0.02):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.normal_(self.dense.weight, std=init_std)
        nn.init.zeros_(self.dense.bias)
        self.loaded_pretrained = False
        self._warned_nothing_masked = False

    @classmethod
    def from_model(cls, model: nn.Module, load_pretrained: bool = True) -> MLMHead:
        """A head sized for ``model``'s encoder, with pretrained head weights when its checkpoint has them."""
        encoder = hf_encoder(model)
        config = encoder.config
        embeddings = encoder.get_input_embeddings()
        head = cls(
            config.hidden_size,
            embeddings.weight.shape[0],
            getattr(config, "layer_norm_eps", 1e-12),
            getattr(config, "initializer_range", 0.02),
        )
        if load_pretrained:
            head.load_pretrained(getattr(config, "_name_or_path", "") or "")
        return head.to(embeddings.weight.device)

    def load_pretrained(self, folder: str) -> bool:
        """Load MLM head weights from a local checkpoint folder; returns whether any were found."""
        state = _read_checkpoint(folder)
        mapped: dict[str, Tensor] = {}
        for key, value in state.items():
            for prefix, target in _HEAD_PREFIXES.items():
                if key.startswith(prefix):
                    mapped[target + key[len(prefix) :] if target.endswith(".") else target] = value
        if not mapped:
            logger.info("no pretrained MLM head weights in %r: the MLM head starts from random weights", folder)
            return False
        if "bias" in mapped and mapped["bias"].shape != self.bias.shape:
            # the vocabulary was resized (e.g. added marker tokens): keep the known part
            bias = self.bias.detach().clone()
            n = min(bias.shape[0], mapped["bias"].shape[0])
            bias[:n] = mapped["bias"][:n]
            mapped["bias"] = bias
        missing, _ = self.load_state_dict(mapped, strict=False)
        self.loaded_pretrained = True
        if missing:
            logger.info("MLM head: %s not in the checkpoint, left at their initial values", missing)
        return True

    def forward(self, hidden_states: Tensor, embedding_weight: Tensor) -> Tensor:
        """Vocabulary logits for ``hidden_states`` (``(..., H)``), decoding with ``embedding_weight`` (``(V, H)``)."""
        hidden = self.layer_norm(F.gelu(self.dense(hidden_states)))
        return F.linear(hidden, embedding_weight, self.bias)

    def loss(
        self,
        token_embeddings: Tensor,
        labels: Tensor,
        embedding_weight: Tensor,
        reduction: str = "mean",
        loss_name: str | None = "MLM",
    ) -> Tensor:
        """Cross-entropy of the masked positions (``labels != -100``), projecting only those onto the vocabulary.

        ``token_embeddings`` is ``(..., H)`` and ``labels`` its leading shape (already-picked ``(N, H)`` rows
        with ``(N,)`` labels work too). ``reduction`` is ``"mean"`` over the masked tokens or ``"sum"``. When
        no position is masked the result is ``0`` connected to the graph (its gradients are zeros), and the
        first such batch logs a warning naming ``loss_name`` (``None``: no warning, for callers that see one
        chunk of a batch at a time).
        """
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        picked = labels != IGNORE_INDEX
        if not bool(picked.any()):
            if loss_name is not None:
                self.warn_nothing_masked(loss_name)
            return self.zero_like_loss(token_embeddings, embedding_weight)
        logits = self(token_embeddings[picked], embedding_weight)
        return F.cross_entropy(logits.float(), labels[picked], reduction=reduction)

    def zero_like_loss(self, token_embeddings: Tensor, embedding_weight: Tensor) -> Tensor:
        """A float32 zero that depends on the inputs and the head's weights, so ``backward`` gives zero gradients."""
        terms = [token_embeddings.sum(), embedding_weight.sum(), *(p.sum() for p in self.parameters())]
        return torch.stack([t.float() for t in terms]).sum() * 0.0

    def warn_nothing_masked(self, loss_name: str) -> None:
        """Log, once for this head, that a batch had no token that could be masked."""
        if not self._warned_nothing_masked:
            logger.warning(
                "%s: no token of this batch could be masked for MLM (every token is special, padding or protected), "
                "so its MLM term is 0. Check that the texts are not empty (later batches like this are not reported).",
                loss_name,
            )
            self._warned_nothing_masked = True


def _read_checkpoint(folder: str) -> dict[str, Tensor]:
    if not folder or not os.path.isdir(folder):
        return {}
    safetensors_file = os.path.join(folder, "model.safetensors")
    if os.path.exists(safetensors_file):
        from safetensors.torch import load_file

        return load_file(safetensors_file)
    bin_file = os.path.join(folder, "pytorch_model.bin")
    if os.path.exists(bin_file):
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    return {}


def mask_tokens(
    input_ids: Tensor,
    attention_mask: Tensor,
    mask_token_id: int,
    vocab_size: int,
    special_ids: list[int] | tuple[int, ...],
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    protected: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's masking: pick ``probability`` of the real tokens; 80% → [MASK], 10% → random, 10% kept.

    Returns ``(masked_input_ids, labels)`` with labels ``-100`` where nothing is predicted. Special
    tokens, padding and positions in ``protected`` (e.g. entity markers) are never picked. At least
    one token per batch is picked when any can be; when none can, every label is ``-100`` and
    :meth:`MLMHead.loss` gives 0.
    """
    check_rate(probability, "mlm_probability", low_open=True, high_open=True)
    device = input_ids.device
    candidates = attention_mask.bool()
    if special_ids:
        candidates &= ~torch.isin(input_ids, torch.tensor(list(special_ids), device=device))
    if protected is not None:
        candidates &= ~protected.bool()
    draws = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    chosen = (draws < probability) & candidates
    if not bool(chosen.any()) and bool(candidates.any()):
        first = candidates.flatten().nonzero()[0]
        chosen.view(-1)[first] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    action = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    masked = input_ids.clone()
    masked[chosen & (action < 0.8)] = mask_token_id
    random_positions = chosen & (action >= 0.8) & (action < 0.9)
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator, device="cpu").to(device)
    masked[random_positions] = random_tokens[random_positions]
    return masked, labels


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the predicted (label != -100) positions of full-vocabulary ``logits``.

    :meth:`MLMHead.loss` is the cheaper path (it projects only the masked positions); this one is for logits
    that already exist.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def tokenizer_ids(model: nn.Module) -> dict[str, Any]:
    """mask id, vocabulary size and the ids of special (non-text) tokens of ``model``'s tokenizer."""
    tokenizer = tokenizer_of(model)
    if tokenizer is None or tokenizer.mask_token_id is None:
        raise ValueError("MLM needs a tokenizer with a mask token ([MASK] / <mask>)")
    return {
        "mask_token_id": int(tokenizer.mask_token_id),
        "vocab_size": int(hf_encoder(model).get_input_embeddings().weight.shape[0]),
        "special_ids": special_token_ids(tokenizer),
    }
