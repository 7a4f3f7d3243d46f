"""Logging shared by the criterions: the logging output with an extra loss term, and that term averaged like
fairseq's own losses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fairseq import utils
from fairseq.logging import metrics
from torch import Tensor


def log_extra_loss(logging_outputs: Sequence[dict[str, Any]], key: str, per: str, round_digits: int) -> None:
    """Log ``sum(key) / sum(per)`` in bits (base 2, as fairseq logs its losses), weighted by ``sum(per)``.

    ``per`` is ``"ntokens"`` or ``"nsentences"``; nothing is logged when it sums to zero.
    """
    total = utils.item(sum(log.get(key, 0) for log in logging_outputs))
    count = utils.item(sum(log.get(per, 0) for log in logging_outputs))
    if count > 0:
        metrics.log_scalar(key, total / count / math.log(2), count, round=round_digits)


def logging_output(
    loss: Tensor,
    nll_loss: Tensor,
    extra: dict[str, Tensor],
    ntokens: int,
    nsentences: int,
    sample_size: int,
    accuracy: tuple[Tensor, Tensor] | None = None,
) -> dict[str, Any]:
    """fairseq's label-smoothed-CE logging output plus the criterion's ``extra`` terms; ``accuracy`` is
    ``(n_correct, total)`` when ``--report-accuracy`` is on."""
    output: dict[str, Any] = {
        "loss": loss.data, "nll_loss": nll_loss.data, **{key: value.data for key, value in extra.items()},
        "ntokens": ntokens, "nsentences": nsentences, "sample_size": sample_size,
    }  # fmt: skip
    if accuracy is not None:
        output["n_correct"] = utils.item(accuracy[0].data)
        output["total"] = utils.item(accuracy[1].data)
    return output
