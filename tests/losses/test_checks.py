"""The shared validators: one rule and one wording each, used by every loss, view and module."""

from __future__ import annotations

import math

import pytest
import torch

from st_contrast.losses import _checks
from st_contrast.losses._checks import (
    check_bool,
    check_class_labels,
    check_int,
    check_no_labels,
    check_non_negative,
    check_number,
    check_positive_int,
    check_rate,
    check_temperature,
)


def test_non_negative_accepts_numbers_and_refuses_the_rest():
    assert check_non_negative(0, "w") == 0.0 and isinstance(check_non_negative(2, "w"), float)
    for bad in (-1, -1e-9, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^w must be a finite number >= 0, got"):
            check_non_negative(bad, "w")
    for bad in (None, [1.0], True):
        with pytest.raises(ValueError, match=r"^w must be a number >= 0, got"):
            check_non_negative(bad, "w")


def test_strings_are_refused_with_a_message_that_says_so():
    # the command line converts its settings to numbers; the library refuses text (no silent float("0.15"))
    with pytest.raises(ValueError, match=r"mlm_probability must be a number in \(0, 1\), got the string '0.15'"):
        check_rate("0.15", "mlm_probability", low_open=True, high_open=True)
    with pytest.raises(ValueError, match="temperature must be a positive number, got the string '0.05'"):
        check_temperature("0.05")
    with pytest.raises(ValueError, match="w must be a number >= 0, got the string '1'"):
        check_non_negative("1", "w")


def test_rates_respect_open_and_closed_ends():
    assert check_rate(0, "r") == 0.0 and check_rate(1, "r") == 1.0
    assert check_rate(0.5, "r", low_open=True, high_open=True) == 0.5
    for value, kwargs, interval in [
        (0.0, {"low_open": True}, r"\(0, 1\]"),
        (1.0, {"high_open": True}, r"\[0, 1\)"),
        (-0.1, {}, r"\[0, 1\]"),
        (1.1, {}, r"\[0, 1\]"),
        (float("nan"), {}, r"\[0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=rf"^r must be in {interval}, got"):
            check_rate(value, "r", **kwargs)
    with pytest.raises(ValueError, match=r"r must be in \[0, 1\) \(the share cut\), got 1.0"):
        check_rate(1.0, "r", high_open=True, hint="the share cut")


def test_temperature_and_number():
    assert check_temperature(0.05) == 0.05
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature must be > 0 and finite"):
            check_temperature(bad)
    assert check_number(-3, "x") == -3.0 and check_number(math.inf, "x") == math.inf
    with pytest.raises(ValueError, match="x must be a number, got NaN"):
        check_number(float("nan"), "x")


def test_integers_and_flags():
    assert check_int(0, "n") == 0 and check_int(3, "n", minimum=2) == 3
    for bad in (1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"^n must be an integer >= 2, got"):
            check_int(bad, "n", minimum=2)
    assert check_positive_int(1, "k") == 1 and check_positive_int(None, "k", allow_none=True) is None
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        check_positive_int(0, "k")
    with pytest.raises(ValueError, match="k must be a positive integer or None, got 2.5"):
        check_positive_int(2.5, "k", allow_none=True)
    assert check_bool(False, "flag") is False
    with pytest.raises(ValueError, match="flag must be True or False, got 1"):
        check_bool(1, "flag")


def test_class_labels():
    labels = check_class_labels(torch.tensor([0.0, 1.0, 1.0]), 3, "L", num_labels=2, need_two_classes=True)
    assert labels.dtype == torch.long and labels.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="L needs integer class labels, but the batch has none"):
        check_class_labels(None, 3, "L")
    with pytest.raises(ValueError, match="L got 2 labels for a batch of 3 examples"):
        check_class_labels(torch.tensor([0, 1]), 3, "L")
    with pytest.raises(ValueError, match="non-integer values such as 0.5"):
        check_class_labels(torch.tensor([0.5, 1.0]), 2, "L")
    with pytest.raises(ValueError, match=r"num_labels=2 classes \(ids 0..1\), but the batch has label 2"):
        check_class_labels(torch.tensor([0, 2]), 2, "L", num_labels=2)
    with pytest.raises(ValueError, match="all 2 examples of the batch have the same label"):
        check_class_labels(torch.tensor([1, 1]), 2, "L", need_two_classes=True)
    check_no_labels(None, "L")
    check_no_labels(torch.tensor([]), "L")
    with pytest.raises(ValueError, match="L does not use labels.*; use triplets"):
        check_no_labels(torch.tensor([1]), "L", "use triplets")


def test_empty_rows_are_named():
    features = [
        {"input_ids": torch.tensor([[1, 5, 2], [1, 2, 0]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}
    ]
    with pytest.raises(ValueError, match=r"L: input column 0 holds 1 empty text\(s\) \(rows \[1\]"):
        _checks.check_no_empty_rows(features, [0, 1, 2], "L")
    _checks.check_no_empty_rows(features, [], "L")  # nothing known to be special: nothing to check


def test_one_wording_for_the_same_rule_across_losses(tiny_model):
    # the two former copies of `_non_negative` (argument orders swapped) and the disagreeing mlm_probability
    # checks are one rule now: the same message from every loss that has the argument
    from st_contrast.losses import CLINELoss, DeCLUTRLoss, RDropLoss

    messages = set()
    for build in (
        lambda: CLINELoss(tiny_model, mlm_probability="0.15"),
        lambda: DeCLUTRLoss(tiny_model, mlm_probability="0.15"),
    ):
        with pytest.raises(ValueError) as error:
            build()
        messages.add(str(error.value))
    assert messages == {"mlm_probability must be a number in (0, 1), got the string '0.15'; pass a number, not text"}
    with pytest.raises(ValueError, match=r"^alpha must be a finite number >= 0, got -1$"):
        RDropLoss(tiny_model, num_labels=2, alpha=-1)
