"""Views made at the embedding layer of Hugging Face encoders (ConSERT, Yan et al., ACL 2021).

A view changes one forward pass of the encoder without touching the text: it permutes the position
ids of the real tokens (:class:`TokenShuffle`), zeroes rows, columns, elements or a span of the
embedding output (:class:`TokenCutoff`, :class:`FeatureCutoff`, :class:`EmbeddingDropout`,
:class:`SpanCutoff`), or adds an adversarial perturbation computed from the gradient of a supervised
loss (:class:`Adversarial`). "Embedding output" is what the encoder's ``embeddings`` module returns
(word + position + token-type embeddings after LayerNorm and dropout), i.e. the input of the first
transformer layer, which is where the official ConSERT code applies its augmentations.

Views are applied with :func:`embedding_views`, a context manager that installs hooks on
``hf_encoder(model).embeddings`` for the forward passes inside the ``with`` block and always removes
them. Several views can share one forward: view ``k`` acts on the ``k``-th equal block of rows, so a
batch of ``B`` sentences repeated twice gets both of ConSERT's views in a single pass::

    with embedding_views(model, features, [FeatureCutoff(0.2), TokenShuffle()]) as view_features:
        embeddings = model(view_features)["sentence_embedding"]   # rows [:B] view 1, [B:] view 2

Every random view takes a ``seed``: with one, it draws from its own CPU generator (reproducible on
any device); without, it draws from torch's global generator on the data's device.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from st_contrast.losses._checks import check_rate, check_temperature
from st_contrast.modeling import hf_encoder

__all__ = [
    "EmbeddingView",
    "NoAugmentation",
    "TokenShuffle",
    "TokenCutoff",
    "FeatureCutoff",
    "EmbeddingDropout",
    "SpanCutoff",
    "Adversarial",
    "embedding_views",
    "embeddings_module",
]


def _check_rate(rate: float, name: str) -> float:
    return check_rate(rate, f"{name} rate", high_open=True, hint="the fraction that is cut off")


class EmbeddingView:
    """Base class of the embedding-level views. Subclasses override one or more of the three steps.

    - :meth:`attention_mask`: a new attention mask for the rows of this view (``None``: unchanged);
      applied to the features before the forward, so pooling sees it too.
    - :meth:`position_ids`: new position ids for the rows (``None``: unchanged).
    - :meth:`embeddings`: the new embedding output for the rows.

    All three receive only this view's block of rows; padding (attention mask 0) is never changed.
    """

    #: the view needs the gradient of a supervised loss with respect to the embedding output
    needs_gradient: bool = False
    #: the view changes position ids (needs an embeddings module that takes ``position_ids``)
    changes_positions: bool = False
    #: the view changes the attention mask
    changes_attention_mask: bool = False

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self._generator: torch.Generator | None = None
        if seed is not None:
            self._generator = torch.Generator(device="cpu")
            self._generator.manual_seed(seed)

    # -- random draws ---------------------------------------------------------------------------
    def _rand(self, shape: Sequence[int], device: torch.device) -> Tensor:
        if self._generator is None:
            return torch.rand(tuple(shape), device=device)
        return torch.rand(tuple(shape), generator=self._generator).to(device)

    # -- the three steps ------------------------------------------------------------------------
    def attention_mask(self, attention_mask: Tensor) -> Tensor | None:
        return None

    def position_ids(self, position_ids: Tensor, attention_mask: Tensor) -> Tensor | None:
        return None

    def embeddings(self, embedding_output: Tensor, attention_mask: Tensor, gradient: Tensor | None = None) -> Tensor:
        return embedding_output

    # -- description ----------------------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        return False

    def get_config_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config_dict().items())
        return f"{type(self).__name__}({args})"


class NoAugmentation(EmbeddingView):
    """The identity view: the sentence as it is (with dropout switched off, a deterministic encoding)."""

    @property
    def is_identity(self) -> bool:
        return True

    def get_config_dict(self) -> dict[str, Any]:
        return {}


class TokenShuffle(EmbeddingView):
    """Shuffle the order of the real tokens by permuting their position ids (ConSERT's token shuffle).

    The position ids of the real tokens (attention mask 1, [CLS] and [SEP] included, as in the
    official code) are randomly permuted among themselves; padding keeps its position ids. Works for
    BERT-like encoders (positions ``0..n-1``) and RoBERTa-like ones (positions start at
    ``padding_idx + 1``), because the permutation is applied to the ids the encoder would use.

    Args:
        keep_special_tokens: keep the first and the last real token ([CLS] and [SEP]) in place and
            shuffle only the tokens between them.
        seed: seed of the view's own random generator.
    """

    changes_positions = True

    def __init__(self, keep_special_tokens: bool = False, seed: int | None = None) -> None:
        super().__init__(seed)
        self.keep_special_tokens = bool(keep_special_tokens)

    def position_ids(self, position_ids: Tensor, attention_mask: Tensor) -> Tensor:
        real = attention_mask.bool()
        movable = real.clone()
        if self.keep_special_tokens:
            rank = real.long().cumsum(dim=1) - 1
            count = real.sum(dim=1, keepdim=True)
            movable &= (rank != 0) & (rank != count - 1)
        length = real.shape[1]
        steps = torch.arange(length, device=real.device).expand_as(real)
        # ascending positions of the movable tokens first, then the others in order
        order = torch.argsort((~movable).to(torch.int8), dim=1, stable=True)
        # a random order of the movable tokens first, then the others in order
        keys = torch.where(movable, self._rand(real.shape, real.device), 2.0 + steps.float())
        shuffled = torch.argsort(keys, dim=1)
        position_ids = position_ids.expand(real.shape[0], -1) if position_ids.shape[0] == 1 else position_ids
        new = position_ids.clone()
        new.scatter_(1, order, position_ids.gather(1, shuffled))
        return new

    def get_config_dict(self) -> dict[str, Any]:
        return {"keep_special_tokens": self.keep_special_tokens, "seed": self.seed}


def _smallest_k(keys: Tensor, counts: Tensor) -> Tensor:
    """Boolean mask of the ``counts[i]`` smallest entries of each row of ``keys`` (``inf`` never chosen)."""
    ordered, _ = keys.sort(dim=1)
    index = (counts - 1).clamp(min=0).unsqueeze(1)
    threshold = ordered.gather(1, index)
    return (keys <= threshold) & (counts > 0).unsqueeze(1) & torch.isfinite(keys)


def _cut_counts(sizes: Tensor, rate: float) -> Tensor:
    # int(n * rate) as in the official code (floor of a positive float)
    return torch.floor(sizes.double() * rate).long()


class TokenCutoff(EmbeddingView):
    """Zero whole token rows of the embedding output: ``int(n · rate)`` of the ``n`` real tokens of each sentence.

    [CLS] and [SEP] are candidates like any other real token (official code); padding is never touched.
    """

    def __init__(self, rate: float = 0.1, seed: int | None = None) -> None:
        super().__init__(seed)
        self.rate = _check_rate(rate, "TokenCutoff")

    @property
    def is_identity(self) -> bool:
        return self.rate == 0.0

    def cutoff_mask(self, attention_mask: Tensor) -> Tensor:
        """``(batch, length)`` mask of the token rows to zero."""
        real = attention_mask.bool()
        keys = self._rand(real.shape, real.device).masked_fill(~real, float("inf"))
        return _smallest_k(keys, _cut_counts(real.sum(dim=1), self.rate))

    def embeddings(self, embedding_output: Tensor, attention_mask: Tensor, gradient: Tensor | None = None) -> Tensor:
        if self.rate == 0.0:
            return embedding_output
        return embedding_output.masked_fill(self.cutoff_mask(attention_mask).unsqueeze(-1), 0.0)

    def get_config_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed}


class FeatureCutoff(EmbeddingView):
    """Zero the same ``int(H · rate)`` feature columns for every real token of a sentence.

    Each sentence draws its own columns; padding is never touched.
    """

    def __init__(self, rate: float = 0.2, seed: int | None = None) -> None:
        super().__init__(seed)
        self.rate = _check_rate(rate, "FeatureCutoff")

    @property
    def is_identity(self) -> bool:
        return self.rate == 0.0

    def cutoff_columns(self, batch_size: int, hidden_size: int, device: torch.device) -> Tensor:
        """``(batch, hidden)`` mask of the feature columns to zero, one row per sentence."""
        keys = self._rand((batch_size, hidden_size), device)
        counts = torch.full((batch_size,), int(hidden_size * self.rate), device=device, dtype=torch.long)
        return _smallest_k(keys, counts)

    def embeddings(self, embedding_output: Tensor, attention_mask: Tensor, gradient: Tensor | None = None) -> Tensor:
        if self.rate == 0.0:
            return embedding_output
        batch, _, hidden = embedding_output.shape
        columns = self.cutoff_columns(batch, hidden, embedding_output.device)
        cut = columns.unsqueeze(1) & attention_mask.bool().unsqueeze(-1)
        return embedding_output.masked_fill(cut, 0.0)

    def get_config_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed}


class EmbeddingDropout(EmbeddingView):
    """Zero ``int(n · H · rate)`` random elements of the real tokens' embedding output (ConSERT's "dropout").

    Unlike ``nn.Dropout`` the count is exact per sentence and the kept values are not rescaled by
    ``1/(1 - rate)``: the paper and the official code set dropped values to zero and nothing else.
    """

    def __init__(self, rate: float = 0.1, seed: int | None = None) -> None:
        super().__init__(seed)
        self.rate = _check_rate(rate, "EmbeddingDropout")

    @property
    def is_identity(self) -> bool:
        return self.rate == 0.0

    def cutoff_mask(self, attention_mask: Tensor, hidden_size: int) -> Tensor:
        """``(batch, length, hidden)`` mask of the elements to zero."""
        real = attention_mask.bool().unsqueeze(-1).expand(-1, -1, hidden_size)
        batch = real.shape[0]
        keys = self._rand(real.shape, real.device).masked_fill(~real, float("inf")).reshape(batch, -1)
        counts = _cut_counts(real.reshape(batch, -1).sum(dim=1), self.rate)
        return _smallest_k(keys, counts).reshape(real.shape)

    def embeddings(self, embedding_output: Tensor, attention_mask: Tensor, gradient: Tensor | None = None) -> Tensor:
        if self.rate == 0.0:
            return embedding_output
        return embedding_output.masked_fill(self.cutoff_mask(attention_mask, embedding_output.shape[-1]), 0.0)

    def get_config_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed}


class SpanCutoff(EmbeddingView):
    """Cut a contiguous span of tokens.

    ``mode="zero"`` (the paper, after Shen et al.'s cutoff): zero the embedding rows of a random
    contiguous span of ``int(n · rate)`` real tokens. ``mode="keep"`` (the official code's "span"
    augmentation): keep a random contiguous span of ``max(int(n · (1 - rate)), 1)`` real tokens and
    remove the others through the attention mask (pooling then also sees only the span).
    """

    def __init__(self, rate: float = 0.1, mode: Literal["zero", "keep"] = "zero", seed: int | None = None) -> None:
        super().__init__(seed)
        self.rate = _check_rate(rate, "SpanCutoff")
        if mode not in ("zero", "keep"):
            raise ValueError(f"SpanCutoff mode must be 'zero' (paper) or 'keep' (official code), got {mode!r}")
        self.mode = mode
        self.changes_attention_mask = mode == "keep"

    @property
    def is_identity(self) -> bool:
        return self.rate == 0.0

    def span_mask(self, attention_mask: Tensor, span_lengths: Tensor) -> Tensor:
        """``(batch, length)`` mask of a random contiguous span of ``span_lengths[i]`` real tokens per row."""
        real = attention_mask.bool()
        rank = real.long().cumsum(dim=1) - 1
        count = real.sum(dim=1)
        room = (count - span_lengths + 1).clamp(min=1)
        starts = torch.floor(self._rand((real.shape[0],), real.device) * room).long()
        starts = torch.minimum(starts, (count - span_lengths).clamp(min=0))
        return real & (rank >= starts.unsqueeze(1)) & (rank < (starts + span_lengths).unsqueeze(1))

    def attention_mask(self, attention_mask: Tensor) -> Tensor | None:
        if self.mode != "keep" or self.rate == 0.0:
            return None
        count = attention_mask.bool().sum(dim=1)
        keep = torch.maximum(_cut_counts(count, 1.0 - self.rate), torch.ones_like(count)).minimum(count)
        return (self.span_mask(attention_mask, keep) & attention_mask.bool()).to(attention_mask.dtype)

    def embeddings(self, embedding_output: Tensor, attention_mask: Tensor, gradient: Tensor | None = None) -> Tensor:
        if self.mode != "zero" or self.rate == 0.0:
            return embedding_output
        lengths = _cut_counts(attention_mask.bool().sum(dim=1), self.rate)
        return embedding_output.masked_fill(self.span_mask(attention_mask, lengths).unsqueeze(-1), 0.0)

    def get_config_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "mode": self.mode, "seed": self.seed}


class Adversarial(EmbeddingView):
    """Add an adversarial perturbation ``ε · g / ‖g‖₂`` to the embedding output (FGM / FGV).

    ``g`` is the gradient of a supervised loss with respect to the clean embedding output, so this
    view only exists with labels: :class:`~st_contrast.losses.ConSERTLoss` needs a ``supervised_loss``
    to use it. The perturbation is treated as a constant (no gradient flows through it).

    Args:
        epsilon: the norm ``ε`` of the perturbation.
        normalize: ``"token"`` (official code): ``g`` is normalised per token over the hidden
            dimension; ``"sentence"``: over all real tokens of a sentence (FGM as in Miyato et al.);
            ``"none"``: ``ε · g``.
    """

    needs_gradient = True

    def __init__(self, epsilon: float = 0.01, normalize: Literal["token", "sentence", "none"] = "token") -> None:
        super().__init__(None)
        # a positive finite size, the same rule as a temperature
        self.epsilon = check_temperature(epsilon, "Adversarial epsilon")
        if normalize not in ("token", "sentence", "none"):
            raise ValueError(f"Adversarial normalize must be 'token', 'sentence' or 'none', got {normalize!r}")
        self.normalize = normalize

    def perturbation(self, gradient: Tensor, attention_mask: Tensor) -> Tensor:
        """``ε · g / ‖g‖`` at the real tokens, zero at padding."""
        gradient = gradient.detach().masked_fill(~attention_mask.bool().unsqueeze(-1), 0.0)
        if self.normalize == "token":
            gradient = gradient / (gradient.norm(p=2, dim=-1, keepdim=True) + 1e-10)
        elif self.normalize == "sentence":
            gradient = gradient / (gradient.flatten(1).norm(p=2, dim=1).view(-1, 1, 1) + 1e-10)
        return self.epsilon * gradient

    def embeddings(self, embedding_output: Tensor, attention_mask: Tensor, gradient: Tensor | None = None) -> Tensor:
        if gradient is None:
            raise ValueError(
                "the Adversarial view needs the gradient of a supervised loss with respect to the embedding "
                "output; use it through ConSERTLoss(..., supervised_loss=...) with labelled data"
            )
        if gradient.shape != embedding_output.shape:
            raise ValueError(
                f"Adversarial: the gradient has shape {tuple(gradient.shape)} but the embedding output has "
                f"shape {tuple(embedding_output.shape)}; both must come from the same batch"
            )
        return embedding_output + self.perturbation(gradient, attention_mask).to(embedding_output.dtype)

    def get_config_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "normalize": self.normalize}


# ---------------------------------------------------------------------------------------------
# Applying views during a forward pass
# ---------------------------------------------------------------------------------------------


def embeddings_module(model: nn.Module, need_position_ids: bool = False) -> nn.Module:
    """The ``embeddings`` module of the Hugging Face encoder inside ``model``, or a ``ValueError`` saying why not."""
    try:
        encoder = hf_encoder(model)
    except ValueError as error:
        raise ValueError(f"embedding-level views need a Hugging Face encoder: {error}") from None
    embeddings = getattr(encoder, "embeddings", None)
    if not isinstance(embeddings, nn.Module):
        raise ValueError(
            f"embedding-level views need an encoder with an `embeddings` module (BERT, RoBERTa and their "
            f"relatives), but {type(encoder).__name__} has none that can be hooked"
        )
    if need_position_ids and "position_ids" not in inspect.signature(embeddings.forward).parameters:
        raise ValueError(
            f"TokenShuffle needs an embeddings module that takes `position_ids`, but "
            f"{type(embeddings).__name__}.forward does not (its positions cannot be permuted)"
        )
    return embeddings


def _default_position_ids(embeddings: nn.Module, input_ids: Tensor | None, shape: torch.Size, device) -> Tensor:
    create = getattr(embeddings, "create_position_ids_from_input_ids", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if input_ids is not None and callable(create) and padding_idx is not None:
        return create(input_ids, padding_idx)  # RoBERTa family: padding_idx + 1, + 2, ...
    buffer = getattr(embeddings, "position_ids", None)
    if isinstance(buffer, Tensor) and buffer.shape[-1] >= shape[1]:
        return buffer[..., : shape[1]].reshape(1, -1).expand(shape[0], -1).to(device)
    return torch.arange(shape[1], device=device).expand(shape[0], -1)


@contextmanager
def embedding_views(
    model: nn.Module,
    features: Mapping[str, Any],
    views: Sequence[EmbeddingView],
    gradient: Tensor | None = None,
) -> Iterator[dict[str, Any]]:
    """Apply ``views[k]`` to the ``k``-th of ``len(views)`` equal blocks of rows during the forwards in the block.

    Yields the features to pass to ``model`` (a copy; the attention mask changes only for views that
    change it). Hooks are installed on ``hf_encoder(model).embeddings`` and removed on exit, also when
    the forward raises. Every forward of the embeddings module inside the block must be over the
    batch of ``features``.

    Args:
        model: a SentenceTransformer (or Hugging Face encoder) over a BERT- or RoBERTa-like model.
        features: the tokenized batch (``input_ids``, ``attention_mask``, ...), ``len(views) · B`` rows.
        views: one view per block of rows.
        gradient: for :class:`Adversarial` views, the gradient of the supervised loss with respect to
            the clean embedding output of the same batch (``(rows, length, hidden)``).
    """
    views = list(views)
    if not views or not all(isinstance(view, EmbeddingView) for view in views):
        raise ValueError(f"views must be a non-empty list of EmbeddingView objects, got {views!r}")
    attention_mask = features.get("attention_mask")
    if not isinstance(attention_mask, Tensor) or attention_mask.ndim != 2:
        raise ValueError("embedding-level views need an `attention_mask` of shape (batch, length) in the features")
    rows = attention_mask.shape[0]
    if rows % len(views):
        raise ValueError(f"{rows} rows cannot be split into {len(views)} equal blocks, one per view")
    block = rows // len(views)
    if any(view.needs_gradient for view in views) and gradient is None:
        raise ValueError(
            "the Adversarial view needs the gradient of a supervised loss (it is only usable with labels): "
            "use it through ConSERTLoss(..., supervised_loss=...)"
        )
    embeddings = embeddings_module(model, need_position_ids=any(view.changes_positions for view in views))

    features = dict(features)
    if any(view.changes_attention_mask for view in views):
        parts = []
        for k, view in enumerate(views):
            part = attention_mask[k * block : (k + 1) * block]
            new = view.attention_mask(part)
            parts.append(part if new is None else new)
        attention_mask = torch.cat(parts, dim=0)
        features["attention_mask"] = attention_mask

    active = [k for k, view in enumerate(views) if not view.is_identity]
    handles = []
    signature = inspect.signature(embeddings.forward)

    def check_rows(n: int) -> None:
        if n != rows:
            raise ValueError(
                f"embedding_views was set up for a batch of {rows} rows but the encoder ran on {n}; run the "
                "model once on the yielded features inside the `with` block"
            )

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = signature.bind_partial(*args, **kwargs)
        input_ids = bound.arguments.get("input_ids")
        inputs_embeds = bound.arguments.get("inputs_embeds")
        reference = input_ids if input_ids is not None else inputs_embeds
        check_rows(reference.shape[0])
        shape = reference.shape[:2]
        position_ids = bound.arguments.get("position_ids")
        if position_ids is None:
            position_ids = _default_position_ids(module, input_ids, shape, reference.device)
        position_ids = position_ids.expand(shape[0], -1) if position_ids.shape[0] == 1 else position_ids
        parts = []
        for k, view in enumerate(views):
            part = position_ids[k * block : (k + 1) * block]
            mask = attention_mask[k * block : (k + 1) * block]
            new = view.position_ids(part, mask) if view.changes_positions else None
            parts.append(part if new is None else new)
        bound.arguments["position_ids"] = torch.cat(parts, dim=0)
        return bound.args, bound.kwargs

    def forward_hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        check_rows(output.shape[0])
        parts = []
        for k, view in enumerate(views):
            part = output[k * block : (k + 1) * block]
            if k in active:
                block_gradient = None
                if gradient is not None and view.needs_gradient:
                    # one gradient per block of rows, or one for the whole batch
                    block_gradient = gradient if gradient.shape[0] == block else gradient[k * block : (k + 1) * block]
                part = view.embeddings(part, attention_mask[k * block : (k + 1) * block], block_gradient)
            parts.append(part)
        return torch.cat(parts, dim=0)

    try:
        if any(view.changes_positions and not view.is_identity for view in views):
            handles.append(embeddings.register_forward_pre_hook(pre_hook, with_kwargs=True))
        if active:
            handles.append(embeddings.register_forward_hook(forward_hook))
        yield features
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_embedding_output(model: nn.Module) -> Iterator[list[Tensor]]:
    """Record the embedding output of every forward inside the block (to take gradients with respect to it)."""
    embeddings = embeddings_module(model)
    captured: list[Tensor] = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if not output.requires_grad and torch.is_grad_enabled():
            output = output.detach().requires_grad_()  # frozen embeddings: still differentiate with respect to them
        captured.append(output)
        return output

    handle = embeddings.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()
