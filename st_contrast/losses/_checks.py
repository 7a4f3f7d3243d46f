"""The validators every loss uses (and the views and modules beside them): one rule, one wording.

Numbers must be real numbers: a string such as ``"0.15"`` is refused with a message that says so (the
command line turns its settings into numbers before it builds a loss; a library call that passes a string
has a bug worth hearing about). Each error is one full sentence naming the argument, what is allowed and
what was given, e.g. ``ValueError("mlm_weight must be a finite number >= 0, got -1")``.

- numbers: :func:`check_number`, :func:`check_non_negative`, :func:`check_temperature`, :func:`check_rate`;
- integers and flags: :func:`check_int`, :func:`check_positive_int`, :func:`check_bool`;
- batches: :func:`check_class_labels`, :func:`check_no_labels`, :func:`check_single_column`,
  :func:`check_texts` / :func:`check_no_empty_rows`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from st_contrast.modeling import special_token_ids

# ---------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------


def _real(value: Any, name: str, wanted: str) -> float:
    """``value`` as a float when it is a real number (not a bool, not a string); a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, str):
            raise ValueError(f"{name} must be {wanted}, got the string {value!r}; pass a number, not text")
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return float(value)


def check_number(value: float, name: str) -> float:
    """A real number (any sign, infinities allowed), not NaN."""
    number = _real(value, name, "a number")
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, got NaN")
    return number


def check_non_negative(value: float, name: str) -> float:
    """A finite number ``>= 0`` (loss weights, margins, perturbation sizes)."""
    number = _real(value, name, "a number >= 0")
    if not number >= 0 or math.isinf(number):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_temperature(temperature: float, name: str = "temperature") -> float:
    """A finite temperature ``τ > 0``."""
    number = _real(temperature, name, "a positive number")
    if not number > 0 or math.isinf(number):
        raise ValueError(f"{name} must be > 0 and finite, got {temperature!r}")
    return number


def check_rate(
    value: float,
    name: str,
    *,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """A number in ``[0, 1]``; ``low_open`` / ``high_open`` exclude 0 / 1 (``mlm_probability``: both)."""
    interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
    number = _real(value, name, f"a number in {interval}")
    too_low = number <= 0.0 if low_open else number < 0.0
    too_high = number >= 1.0 if high_open else number > 1.0
    if math.isnan(number) or too_low or too_high:
        raise ValueError(f"{name} must be in {interval}{f' ({hint})' if hint else ''}, got {value!r}")
    return number


# ---------------------------------------------------------------------------------------------
# integers and flags
# ---------------------------------------------------------------------------------------------


def check_int(value: int, name: str, minimum: int = 0) -> int:
    """An integer (not a bool, not a float such as ``2.0``) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(value: int | None, name: str, allow_none: bool = False) -> int | None:
    """An integer ``>= 1`` (sizes and counts); ``None`` too when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_bool(value: bool, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------


def check_class_labels(
    labels: Tensor | None,
    batch_size: int,
    loss_name: str,
    num_labels: int | None = None,
    need_two_classes: bool = False,
) -> Tensor:
    """Validate a batch's class labels and return them as a ``long`` tensor; raise a full-sentence error.

    Checks: present, one per example, integer-valued, in ``[0, num_labels)`` when ``num_labels`` is given,
    and (``need_two_classes``) at least two distinct classes, since a batch of one class has no negatives.
    """
    if labels is None or not isinstance(labels, Tensor) or labels.numel() == 0:
        raise ValueError(
            f"{loss_name} needs integer class labels, but the batch has none. Give the dataset a 'label' column "
            "(class ids 0..num_labels-1), or set InputExample(label=...) for model.fit."
        )
    labels = labels.reshape(-1)
    if labels.shape[0] != batch_size:
        raise ValueError(f"{loss_name} got {labels.shape[0]} labels for a batch of {batch_size} examples; need 1 each")
    check_integer_labels(labels, loss_name, "Map class names to ids 0..num_labels-1 first.")
    labels = labels.long()
    if num_labels is not None:
        bad = (labels < 0) | (labels >= num_labels)
        if bool(bad.any()):
            raise ValueError(
                f"{loss_name} was built for num_labels={num_labels} classes (ids 0..{num_labels - 1}), but the batch "
                f"has label {int(labels[bad][0])}. Check the label mapping, or build the loss with more classes."
            )
    if need_two_classes and batch_size > 1 and bool(torch.all(labels == labels[0])):
        raise ValueError(
            f"{loss_name}: all {batch_size} examples of the batch have the same label ({int(labels[0])}), so the "
            "contrastive term has no negatives. Shuffle the training data and use a batch size larger than the "
            "largest run of one class (or sentence-transformers' batch_sampler='group_by_label' with several classes)."
        )
    return labels


def check_integer_labels(labels: Tensor, loss_name: str, hint: str = "") -> None:
    """Refuse floating-point labels that are not whole numbers (class or relation ids)."""
    if labels.is_floating_point() and not bool(torch.all(labels == labels.round())):
        raise ValueError(
            f"{loss_name} needs integer class ids as labels, got non-integer values such as "
            f"{labels[labels != labels.round()][0].item()!r}." + (f" {hint}" if hint else "")
        )


def check_no_labels(labels: Tensor | None, loss_name: str, hint: str = "") -> None:
    """Refuse a label column for a loss that takes none (it is almost always a dataset mistake)."""
    if labels is not None and isinstance(labels, Tensor) and labels.numel() > 0:
        raise ValueError(
            f"{loss_name} does not use labels, but the batch has a label column ({labels.shape[0]} values). "
            "Remove the 'label'/'score' column from the dataset" + (f"; {hint}" if hint else ".")
        )


# ---------------------------------------------------------------------------------------------
# columns and texts
# ---------------------------------------------------------------------------------------------


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
