"""SimCLS's scorer: one encoder for the document and its candidates, cosine of first-token vectors.

Liu & Liu (2021), "SimCLS: A Simple Framework for Contrastive Learning of Abstractive Summarization",
ACL 2021, https://arxiv.org/abs/2106.01890, eq. 2: ``h(D, C) = cos(f(D), f(C))`` where ``f`` is the
encoder's output at the first token (RoBERTa's ``<s>``) and the same encoder reads documents,
candidates and references.

The encoder is

* a pretrained Hugging Face model when the task has ``--pretrained-encoder PATH`` (a local folder:
  roberta-base as in the paper, or any BERT-like encoder, e.g. a sentence-transformers folder such as
  all-MiniLM-L6-v2). Its weights are loaded from the folder when the model is built and then replaced by
  the checkpoint's when one is loaded, so the folder must still exist at inference
  (``st-contrast simcls-rerank --pretrained-encoder NEW_PATH`` if it moved);
* otherwise a fairseq transformer encoder over the task's dictionary, trained from scratch (the
  ``--encoder-*`` options).

``--freeze-layers N`` freezes the embeddings and the bottom ``N`` layers (both kinds of encoder), a
CPU/GPU-memory saving that the paper does not use (it fine-tunes all of RoBERTa).
"""

# No `from __future__ import annotations` here: fairseq builds its CLI from the config dataclass's
# field types at runtime, and string annotations break that (fairseq.dataclass.utils.interpret_dc_type).
import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel
from torch import Tensor, nn

from .._registry import register_model_once

logger = logging.getLogger(__name__)

MODEL_NAME = "simcls_scorer"


@dataclass
class SimCLSScorerConfig(FairseqDataclass):
    encoder_layers: int = field(default=6, metadata={"help": "layers of the fairseq encoder (no pretrained one)"})
    encoder_embed_dim: int = field(default=512, metadata={"help": "width of the fairseq encoder"})
    encoder_ffn_embed_dim: int = field(default=2048, metadata={"help": "feed-forward width of the fairseq encoder"})
    encoder_attention_heads: int = field(default=8, metadata={"help": "attention heads of the fairseq encoder"})
    encoder_normalize_before: bool = field(default=False, metadata={"help": "pre-LayerNorm fairseq encoder"})
    dropout: float = field(
        default=0.1, metadata={"help": "dropout of the fairseq encoder (a pretrained encoder keeps its own)"}
    )
    attention_dropout: float = field(default=0.1, metadata={"help": "attention dropout of the fairseq encoder"})
    freeze_layers: int = field(
        default=0,
        metadata={"help": "freeze the embeddings and this many bottom layers (0: train everything, as the paper)"},
    )


class _FairseqEncoderWrapper(nn.Module):
    """A fairseq ``TransformerEncoderBase``; returns the first position's final state."""

    def __init__(self, cfg: SimCLSScorerConfig, dictionary, max_positions: int):
        super().__init__()
        from fairseq.models.transformer import TransformerConfig, TransformerEncoderBase

        tcfg = TransformerConfig()
        tcfg.dropout = cfg.dropout
        tcfg.attention_dropout = cfg.attention_dropout
        tcfg.max_source_positions = max_positions
        tcfg.encoder.embed_dim = cfg.encoder_embed_dim
        tcfg.encoder.ffn_embed_dim = cfg.encoder_ffn_embed_dim
        tcfg.encoder.layers = cfg.encoder_layers
        tcfg.encoder.attention_heads = cfg.encoder_attention_heads
        tcfg.encoder.normalize_before = cfg.encoder_normalize_before
        embed = nn.Embedding(len(dictionary), cfg.encoder_embed_dim, padding_idx=dictionary.pad())
        nn.init.normal_(embed.weight, mean=0, std=cfg.encoder_embed_dim**-0.5)
        nn.init.constant_(embed.weight[dictionary.pad()], 0)
        self.encoder = TransformerEncoderBase(tcfg, dictionary, embed)
        self.pad = dictionary.pad()

    def forward(self, tokens: Tensor) -> Tensor:
        out = self.encoder(tokens, src_lengths=tokens.ne(self.pad).sum(-1))
        return out["encoder_out"][0][0]  # (time, batch, dim) -> first position

    def freeze(self, layers: int) -> None:
        for module in (self.encoder.embed_tokens, self.encoder.embed_positions, self.encoder.layernorm_embedding):
            if module is not None:
                module.requires_grad_(False)
        _check_freeze(layers, len(self.encoder.layers))
        for layer in list(self.encoder.layers)[:layers]:
            layer.requires_grad_(False)


class _HFEncoderWrapper(nn.Module):
    """A Hugging Face encoder (``AutoModel``) from a local folder; returns ``last_hidden_state[:, 0]``."""

    def __init__(self, path: str, pad: int):
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(path, local_files_only=True)
        self.pad = pad
        # a pooler (BERT, RoBERTa) is never used: keep it out of training, so that DDP does not wait for its
        # gradients (its weights stay in the state dict)
        pooler = getattr(self.encoder, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.encoder(input_ids=tokens, attention_mask=tokens.ne(self.pad).long()).last_hidden_state[:, 0]

    def freeze(self, layers: int) -> None:
        self.encoder.get_input_embeddings().requires_grad_(False)
        embeddings = getattr(self.encoder, "embeddings", None)
        if embeddings is not None:
            embeddings.requires_grad_(False)
        stack = _hf_layers(self.encoder)
        if layers > 0 and stack is None:
            raise ValueError(f"cannot find the layers of {type(self.encoder).__name__} to freeze")
        _check_freeze(layers, len(stack or []))
        for layer in list(stack or [])[:layers]:
            layer.requires_grad_(False)


def _check_freeze(layers: int, total: int) -> None:
    if layers >= total:
        raise ValueError(f"--freeze-layers {layers} would freeze all {total} layers of the encoder: nothing to train")


def _hf_layers(model: nn.Module) -> Optional[nn.ModuleList]:  # noqa: UP045
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        module = model
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    return None


@register_model_once(MODEL_NAME, dataclass=SimCLSScorerConfig)
class SimCLSScorer(BaseFairseqModel):
    """Scores candidates (and the reference) by their cosine with the document (see the module docstring)."""

    def __init__(self, encoder: nn.Module, pad: int):
        super().__init__()
        self.encoder = encoder
        self.pad = pad

    @classmethod
    def build_model(cls, cfg: SimCLSScorerConfig, task):
        path = getattr(task.cfg, "pretrained_encoder", None)
        if path:
            encoder = _HFEncoderWrapper(path, task.pad_idx)
            logger.info("simcls_scorer: pretrained encoder %s", path)
        else:
            if getattr(task, "dictionary", None) is None:
                raise ValueError("simcls_scorer needs the task's dictionary or --pretrained-encoder")
            encoder = _FairseqEncoderWrapper(cfg, task.dictionary, int(task.cfg.max_source_positions))
        if cfg.freeze_layers < 0:
            raise ValueError(f"--freeze-layers must be >= 0, got {cfg.freeze_layers}")
        if cfg.freeze_layers > 0:
            encoder.freeze(cfg.freeze_layers)
        return cls(encoder, task.pad_idx)

    def embed(self, tokens: Tensor) -> Tensor:
        """First-token vectors of a ``(n, length)`` batch of right-padded token ids."""
        return self.encoder(tokens)

    def forward(
        self,
        src_tokens: Tensor,
        candidate_tokens: Tensor,
        reference_tokens: Optional[Tensor] = None,  # noqa: UP045
    ) -> dict[str, Optional[Tensor]]:  # noqa: UP045
        """Scores of ``(batch, n, length)`` candidates and of the ``(batch, length)`` references.

        Returns ``candidate_scores`` ``(batch, n)`` (``-inf`` where a document has fewer candidates:
        rows of ``candidate_tokens`` that are all padding), ``candidate_mask`` and ``reference_scores``
        ``(batch,)`` (``None`` without references).
        """
        batch, n, _ = candidate_tokens.shape
        doc = self.embed(src_tokens)
        mask = candidate_tokens.ne(self.pad).any(-1)
        flat = candidate_tokens[mask]  # only real candidates go through the encoder
        flat = flat[:, : int(flat.ne(self.pad).sum(-1).max())]
        cand = self.embed(flat)
        owner = torch.arange(batch, device=doc.device).unsqueeze(1).expand(batch, n)[mask]
        doc_unit = nn.functional.normalize(doc.float(), dim=-1)
        scores_flat = (nn.functional.normalize(cand.float(), dim=-1) * doc_unit[owner]).sum(-1)
        scores = scores_flat.new_full((batch, n), float("-inf")).masked_scatter(mask, scores_flat)
        reference_scores = None
        if reference_tokens is not None:
            ref = nn.functional.normalize(self.embed(reference_tokens).float(), dim=-1)
            reference_scores = (ref * doc_unit).sum(-1)
        return {"candidate_scores": scores, "candidate_mask": mask, "reference_scores": reference_scores}

    def max_positions(self):
        return None
