"""Criterions: mCLR (``label_smoothed_cross_entropy_with_contrastive``), R-Drop
(``rdrop_label_smoothed_cross_entropy``) and every other module of this folder (imported on import, as
fairseq does for its own folders, so that a new criterion file registers itself)."""

from __future__ import annotations

from .._registry import import_modules_of
from .label_smoothed_cross_entropy_with_contrastive import (  # noqa: F401
    LabelSmoothedCrossEntropyWithContrastive,
    LabelSmoothedCrossEntropyWithContrastiveConfig,
)
from .rdrop_label_smoothed_cross_entropy import (  # noqa: F401
    RDropLabelSmoothedCrossEntropy,
    RDropLabelSmoothedCrossEntropyConfig,
)

import_modules_of(__name__, __file__)
