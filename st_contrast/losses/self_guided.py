"""Self-guided contrastive learning (SG-OPT): BERT's [CLS] vector guided by a frozen copy's hidden layers."""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from st_contrast.modeling import hf_encoder, pooling_modes

from . import functional
from ._base import ContrastiveLoss
from ._checks import (
    check_bool,
    check_no_labels,
    check_non_negative,
    check_positive_int,
    check_temperature,
)
from ._common import for_wrapper, refuse_wrappers

logger = logging.getLogger(__name__)

GuidePooling = Literal["mean", "max", "cls"]
Objective = Literal["sg-opt", "sg"]

_GUIDE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class SelfGuidedProjection(nn.Sequential):
    """SG-OPT's projection head ``GELU(W2·GELU(W1·x + b1) + b2)``, shared by the [CLS] and guide vectors.

    Owned by :class:`SelfGuidedContrastiveLoss` (trained, never saved with the model). Weights start from
    ``N(0, initializer_range²)`` with zero biases, as in the official code.
    """

    def __init__(self, hidden_size: int, projection_dim: int = 4096, init_std: float = 0.02) -> None:
        super().__init__(
            nn.Linear(hidden_size, projection_dim),
            nn.GELU(),
            nn.Linear(projection_dim, projection_dim),
            nn.GELU(),
        )
        for layer in (self[0], self[2]):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)


class SelfGuidedContrastiveLoss(ContrastiveLoss):
    config_keys = (
        "temperature",
        "regularization_weight",
        "projection_dim",
        "guide_pooling",
        "guide_layers",
        "objective",
        "freeze_embeddings",
        "guide_dropout",
        "gather_across_devices",
    )
    CITATION = """
@inproceedings{kim2021selfguided,
    title = "Self-Guided Contrastive Learning for {BERT} Sentence Representations",
    author = "Kim, Taeuk and Yoo, Kang Min and Lee, Sang-goo",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics and the
                 11th International Joint Conference on Natural Language Processing (Volume 1: Long Papers)",
    year = "2021",
    pages = "2528--2540",
    url = "https://arxiv.org/abs/2106.07345",
}
"""

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.01,
        regularization_weight: float = 0.1,
        projection_dim: int = 4096,
        guide_pooling: GuidePooling = "mean",
        guide_layers: Sequence[int] | None = None,
        objective: Objective = "sg-opt",
        freeze_embeddings: bool = True,
        guide_dropout: bool = False,
        gather_across_devices: bool = False,
    ) -> None:
        """Self-guided contrastive learning (Kim, Yoo and Lee, ACL 2021): SG-OPT and its plain SG variant.

        When the loss is built it takes a frozen copy of the model's Hugging Face encoder (``BERT_F``, the
        *guide*). At each step the guide encodes the batch once, without autograd, and every one of its
        hidden states (the embedding output and each layer, or the chosen ``guide_layers``) is pooled over
        the sentence's tokens into a guide vector ``h_ik``. The trained model (``BERT_T``) gives its [CLS]
        vector ``c_i`` (first token of the last layer, from one normal forward of the model). Both go
        through one projection head ``g`` owned by the loss, ``Linear(H, P) → GELU → Linear(P, P) → GELU``,
        and the [CLS] vector must recognise its own sentence's guide vectors among those of the batch.

        ``objective="sg-opt"`` (the paper's final method, eq. in sec. 3.2) has one logit row per sentence
        ``i`` and guide layer ``k``, with ``z = g(·)``:

        ``ℓ_ik = -log( e(c_i, h_ik) / (e(c_i, h_ik) + Σ_{m≠i} Σ_n e(c_i, h_mn)) )``, ``e(a, b) = exp(cos(z_a, z_b)/τ)``

        averaged over the ``B·L`` rows. ``objective="sg"`` is the paper's basic form (sec. 3.1): one guide
        layer sampled per sentence and SimCLR's NT-Xent over the ``2B`` views (see
        :func:`st_contrast.losses.functional.sg_loss`). Both add the regulariser
        ``λ·Σ ||θ_T − θ_F||²`` over the trained encoder's trainable parameters, ``θ_F`` being the guide's.

        The loss returns ``{"contrastive": ..., "regularization": λ·Σ||θ_T − θ_F||²}``; sentence-transformers'
        Trainer (and ``model.fit``, which runs on it) sums the two and logs each.

        Args:
            model: the SentenceTransformer to train; its first module must wrap a Hugging Face encoder
                (BERT, RoBERTa, ...). Use [CLS] pooling to encode with what is trained.
            temperature: ``τ``; the paper uses 0.01.
            regularization_weight: ``λ`` of the regulariser (paper 0.1); 0 turns it off.
            projection_dim: ``P``, the width of both layers of the projection head (paper 4096).
            guide_pooling: how each guide hidden state is pooled over the tokens with attention mask 1
                ([CLS] and [SEP] included, as in the official code): ``"mean"`` (official default),
                ``"max"`` (studied in the paper) or ``"cls"`` (the first token).
            guide_layers: indices into the guide's hidden states (0 = embedding output, ``num_layers`` =
                last layer; negative indices count from the end). ``None`` uses all ``num_layers + 1``.
            objective: ``"sg-opt"`` (default) or ``"sg"``.
            freeze_embeddings: set ``requires_grad=False`` on the trained encoder's embedding layer
                (word, position and token type embeddings and their LayerNorm), as the paper does. This
                changes ``model`` and is not undone when training ends; ``requires_grad`` is not saved,
                so a model saved and loaded again is fully trainable.
            guide_dropout: leave dropout on in the guide. The official code does this by accident (its
                guide is a child of the loss, so ``loss.train()`` puts it back in train mode); the paper
                describes a frozen copy, so the default keeps the guide in eval mode.
            gather_across_devices: in multi-process training (DDP), the negatives (other sentences' guide
                vectors; for ``"sg"`` all other views) come from every process, with gradients to their owners;
                loss and gradients equal one process on the concatenated batch (tested with two processes, SG-OPT).

        References:
            - Kim, Yoo, Lee. Self-Guided Contrastive Learning for BERT Sentence Representations. ACL 2021.
              https://arxiv.org/abs/2106.07345
            - Official code: https://github.com/galsang/SG-BERT

        Requirements:
            1. A SentenceTransformer over a Hugging Face encoder (the guide is a copy of that encoder).
            2. Batches of at least two sentences (the other sentences are the negatives); paper: 16.
            3. Memory for a second copy of the encoder (the guide) and the ``P × P`` projection head.

        Inputs:
            +------------+--------+--------------------------------------------------------------+
            | Texts      | Labels | Notes                                                        |
            +============+========+==============================================================+
            | (sentence) | none   | unlabeled sentences; the guide and [CLS] see the same tokens |
            +------------+--------+--------------------------------------------------------------+

        Relations:
            - :class:`st_contrast.losses.SimCSELoss` also needs no labels but makes its second view with
              dropout; here the second views are the frozen copy's hidden layers.

        Example:
            ::

                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from st_contrast.data import sentence_dataset
                from st_contrast.losses import SelfGuidedContrastiveLoss

                model = SentenceTransformer("path/to/bert-with-cls-pooling")
                loss = SelfGuidedContrastiveLoss(model)
                trainer = SentenceTransformerTrainer(model=model, train_dataset=sentence_dataset(sentences), loss=loss)
                trainer.train()
        """
        super().__init__(model)
        try:
            encoder = hf_encoder(model)
        except ValueError:
            raise ValueError(
                "SelfGuidedContrastiveLoss needs a SentenceTransformer over a Hugging Face encoder (its first module "
                f"a Transformer with an `auto_model`), because the guide is a frozen copy of that encoder; got "
                f"{type(model).__name__}."
            ) from None
        self.temperature = check_temperature(temperature)
        self.regularization_weight = check_non_negative(regularization_weight, "regularization_weight")
        self.projection_dim = check_positive_int(projection_dim, "projection_dim")
        if guide_pooling not in ("mean", "max", "cls"):
            raise ValueError(f"guide_pooling must be 'mean', 'max' or 'cls', got {guide_pooling!r}")
        self.guide_pooling = guide_pooling
        if objective not in ("sg-opt", "sg"):
            raise ValueError(f"objective must be 'sg-opt' or 'sg', got {objective!r}")
        self.objective = objective
        self.freeze_embeddings = check_bool(freeze_embeddings, "freeze_embeddings")
        self.guide_dropout = check_bool(guide_dropout, "guide_dropout")
        self.gather_across_devices = check_bool(gather_across_devices, "gather_across_devices")
        num_hidden_states = _num_hidden_layers(encoder) + 1
        self.guide_layers: list[int] | None = _check_layers(guide_layers, num_hidden_states)

        # The guide is a plain attribute, not a registered submodule: it is not in loss.parameters(), not in
        # any state_dict, never moved by .to() (forward moves it lazily) and never under self.model.
        guide = copy.deepcopy(encoder)
        guide.requires_grad_(False)
        guide.train(self.guide_dropout)
        object.__setattr__(self, "_guide", guide)
        self._guide_parameters = dict(guide.named_parameters())
        forward_parameters = inspect.signature(guide.forward).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in forward_parameters.values())
        self._guide_inputs = tuple(key for key in _GUIDE_INPUTS if accepts_any or key in forward_parameters)

        if self.freeze_embeddings:
            embeddings = getattr(encoder, "embeddings", None)
            if not isinstance(embeddings, nn.Module):
                embeddings = encoder.get_input_embeddings()
            embeddings.requires_grad_(False)

        config = encoder.config
        self.projection_head = SelfGuidedProjection(
            int(config.hidden_size), projection_dim, float(getattr(config, "initializer_range", 0.02) or 0.02)
        )
        reference = next(encoder.parameters())
        self.projection_head.to(reference.device)
        _warn_if_not_cls_pooling(model)

    @property
    def guide(self) -> nn.Module:
        """The frozen copy of the encoder (``BERT_F``); not a submodule of the loss or of the model."""
        return self._guide

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        sentence_features = list(sentence_features)
        if len(sentence_features) != 1:
            raise ValueError(
                "SelfGuidedContrastiveLoss expects 1 text column (sentence), got "
                f"{len(sentence_features)} columns. Keep only the sentence column in the dataset (for model.fit: "
                "InputExample(texts=[sentence]))."
            )
        check_no_labels(labels, "SelfGuidedContrastiveLoss")
        features = sentence_features[0]
        self.check_texts(sentence_features)
        size = features["input_ids"].shape[0]
        if size < 2:
            raise ValueError(
                "SelfGuidedContrastiveLoss needs at least 2 sentences per batch (the other sentences are the "
                f"negatives), got a batch of {size}. Use a larger batch size, or drop_last=True so the last batch "
                "is not a single sentence."
            )
        refuse_wrappers(
            self.model,
            "SelfGuidedContrastiveLoss",
            {"MatryoshkaLoss": "it contrasts the [CLS] token embedding, which the wrapper does not truncate"},
        )
        encoder = hf_encoder(self.model)
        self._follow(encoder)
        guide_embeddings = self.guide_embeddings(features)
        # the caller's dict itself: AdaptiveLayerLoss hands its cached layers between calls through it
        output = self.model(features)
        cls_embeddings = _first_token(output)
        components = {
            "contrastive": self.compute_loss_from_embeddings(cls_embeddings, guide_embeddings),
            "regularization": self.regularization(encoder),
        }
        return for_wrapper(self.model, components)

    def compute_loss_from_embeddings(self, cls_embeddings: Tensor, guide_embeddings: Tensor) -> Tensor:
        """The contrastive term from [CLS] vectors ``(B, H)`` and pooled guide vectors ``(B, L, H)``."""
        if self.objective == "sg":
            # one guide layer per sentence, sampled uniformly (the paper's SG)
            batch, layers = guide_embeddings.shape[:2]
            picks = torch.randint(layers, (batch,)).to(guide_embeddings.device)
            guide_embeddings = guide_embeddings[torch.arange(batch, device=guide_embeddings.device), picks]
            projected = self.projection_head(torch.cat([cls_embeddings, guide_embeddings.to(cls_embeddings.dtype)]))
            return functional.sg_loss(
                projected[:batch], projected[batch:], self.temperature, self.gather_across_devices
            )
        batch, layers, hidden = guide_embeddings.shape
        flat = guide_embeddings.reshape(batch * layers, hidden).to(cls_embeddings.dtype)
        projected = self.projection_head(torch.cat([cls_embeddings, flat]))
        return functional.sg_opt_loss(
            projected[:batch], projected[batch:].view(batch, layers, -1), self.temperature, self.gather_across_devices
        )

    @torch.no_grad()
    def guide_embeddings(self, features: dict[str, Tensor]) -> Tensor:
        """Pooled guide vectors ``(B, L, H)``: one inference pass of the frozen copy, all hidden states kept."""
        guide = self._guide
        if guide.training != self.guide_dropout:
            guide.train(self.guide_dropout)
        inputs = {key: features[key] for key in self._guide_inputs if key in features}
        hidden_states = guide(**inputs, output_hidden_states=True, return_dict=True).hidden_states
        chosen = self.guide_layers if self.guide_layers is not None else range(len(hidden_states))
        stacked = torch.stack([hidden_states[k] for k in chosen], dim=1)  # (B, L, T, H)
        mask = features["attention_mask"].to(stacked.device)
        if self.guide_pooling == "cls":
            first = mask.int().argmax(dim=1)
            return stacked[torch.arange(stacked.shape[0], device=stacked.device), :, first]
        weights = mask[:, None, :, None].to(stacked.dtype)
        if self.guide_pooling == "mean":
            return (stacked * weights).sum(dim=2) / weights.sum(dim=2).clamp(min=1)
        return stacked.masked_fill(weights == 0, torch.finfo(stacked.dtype).min).amax(dim=2)

    def regularization(self, encoder: nn.Module | None = None) -> Tensor:
        """``λ·Σ ||θ_T − θ_F||²`` over the trained encoder's parameters that require grad (0 when ``λ`` is 0)."""
        if encoder is None:
            encoder = hf_encoder(self.model)
        reference = next(encoder.parameters())
        if not self.regularization_weight:
            return reference.new_zeros(())
        terms = [
            (parameter - self._guide_parameters[name]).pow(2).sum()
            for name, parameter in encoder.named_parameters()
            if parameter.requires_grad
        ]
        if not terms:
            return reference.new_zeros(())
        return self.regularization_weight * torch.stack(terms).sum()

    def _follow(self, encoder: nn.Module) -> None:
        """Move the guide (and the head) to the trained encoder's device and dtype, e.g. after the Trainer moved it."""
        reference = next(encoder.parameters())
        guide_parameter = next(iter(self._guide_parameters.values()))
        if guide_parameter.device != reference.device or guide_parameter.dtype != reference.dtype:
            self._guide.to(device=reference.device, dtype=reference.dtype)
            self._guide_parameters = dict(self._guide.named_parameters())
        head_parameter = self.projection_head[0].weight
        if head_parameter.device != reference.device:
            self.projection_head.to(reference.device)


def _first_token(output: dict[str, Any]) -> Tensor:
    """The last layer's first real token ([CLS]) of each sentence, from a SentenceTransformer forward."""
    tokens = output["token_embeddings"]
    if "cu_seq_lens_q" in output and tokens.ndim == 3 and tokens.shape[0] == 1:
        # flash-attention unpadding keeps the sequences concatenated: the starts are the offsets
        return tokens[0, output["cu_seq_lens_q"][:-1].long()]
    mask = output.get("attention_mask")
    if mask is None or bool(mask[:, 0].all()):
        return tokens[:, 0]
    first = mask.int().argmax(dim=1)  # left padding
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), first]


def _num_hidden_layers(encoder: nn.Module) -> int:
    layers = getattr(encoder.config, "num_hidden_layers", None)
    if not isinstance(layers, int) or layers <= 0:
        raise ValueError(
            f"SelfGuidedContrastiveLoss could not read the number of layers of {type(encoder).__name__} "
            "(config.num_hidden_layers); the guide needs it to pick its hidden states."
        )
    return layers


def _check_layers(guide_layers: Sequence[int] | None, num_hidden_states: int) -> list[int] | None:
    if guide_layers is None:
        return None
    if isinstance(guide_layers, (str, bytes)) or not isinstance(guide_layers, Sequence):
        raise ValueError(f"guide_layers must be None or a list of layer indices, got {guide_layers!r}")
    layers = list(guide_layers)
    if not layers:
        raise ValueError("guide_layers must name at least one layer, got an empty list")
    normalised = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise ValueError(f"guide_layers must hold integers, got {layer!r} in {layers!r}")
        if not -num_hidden_states <= layer < num_hidden_states:
            raise ValueError(
                f"guide_layers index {layer} is out of range: the encoder has {num_hidden_states} hidden states "
                f"(0 = embedding output, {num_hidden_states - 1} = last layer; negative indices count from the end)"
            )
        normalised.append(layer % num_hidden_states)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"guide_layers must not repeat a layer, got {layers!r}")
    return normalised


def _warn_if_not_cls_pooling(model: nn.Module) -> None:
    modes = pooling_modes(model)
    if modes is not None and modes != ("cls",):
        logger.warning(
            "SelfGuidedContrastiveLoss trains the [CLS] vector, but the model pools with %r: the embeddings it "
            "produces are not the ones trained. Use Pooling(..., pooling_mode='cls') as in the paper.",
            modes[0] if len(modes) == 1 else modes,
        )
