"""Tasks: ``translation_multilingual_contrastive`` (many-to-many translation with language tokens and
aligned augmentation, after mRASP2) and every other module of this folder (imported on import)."""

from __future__ import annotations

from .._registry import import_modules_of
from .translation_multilingual_contrastive import (  # noqa: F401
    TranslationMultilingualContrastiveConfig,
    TranslationMultilingualContrastiveTask,
)

import_modules_of(__name__, __file__)
