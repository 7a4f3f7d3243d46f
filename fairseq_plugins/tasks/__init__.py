"""Tasks: ``translation_multilingual_contrastive`` (many-to-many translation with language tokens and
aligned augmentation, after mRASP2) and every other module of this folder (imported on import)."""

from __future__ import annotations

import importlib
import os

from .translation_multilingual_contrastive import (  # noqa: F401
    TranslationMultilingualContrastiveConfig,
    TranslationMultilingualContrastiveTask,
)

for _file in sorted(os.listdir(os.path.dirname(__file__))):
    if _file.endswith(".py") and not _file.startswith(("_", ".")):
        importlib.import_module(f"{__name__}.{_file[:-3]}")
