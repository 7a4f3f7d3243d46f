"""Logging shared by the criterions: an extra loss term averaged like fairseq's own losses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fairseq import utils
from fairseq.logging import metrics


def log_extra_loss(logging_outputs: Sequence[dict[str, Any]], key: str, per: str, round_digits: int) -> None:
    """Log ``sum(key) / sum(per)`` in bits (base 2, as fairseq logs its losses), weighted by ``sum(per)``.

    ``per`` is ``"ntokens"`` or ``"nsentences"``; nothing is logged when it sums to zero.
    """
    total = utils.item(sum(log.get(key, 0) for log in logging_outputs))
    count = utils.item(sum(log.get(per, 0) for log in logging_outputs))
    if count > 0:
        metrics.log_scalar(key, total / count / math.log(2), count, round=round_digits)
