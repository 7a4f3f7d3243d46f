"""Criterions: mCLR (``label_smoothed_cross_entropy_with_contrastive``), R-Drop
(``rdrop_label_smoothed_cross_entropy``) and every other module of this folder (imported on import, as
fairseq does for its own folders, so that a new criterion file registers itself)."""

from __future__ import annotations

import importlib
import os

from .label_smoothed_cross_entropy_with_contrastive import (  # noqa: F401
    LabelSmoothedCrossEntropyWithContrastive,
    LabelSmoothedCrossEntropyWithContrastiveConfig,
)
from .rdrop_label_smoothed_cross_entropy import (  # noqa: F401
    RDropLabelSmoothedCrossEntropy,
    RDropLabelSmoothedCrossEntropyConfig,
)

for _file in sorted(os.listdir(os.path.dirname(__file__))):
    if _file.endswith(".py") and not _file.startswith(("_", ".")):
        importlib.import_module(f"{__name__}.{_file[:-3]}")
