"""Models: ``simcls_scorer`` (SimCLS, Liu & Liu, ACL 2021: one encoder, cosine of first-token vectors) and every
other module of this folder (imported on import)."""

from __future__ import annotations

from .._registry import import_modules_of
from .simcls_scorer import SimCLSScorer, SimCLSScorerConfig  # noqa: F401

import_modules_of(__name__, __file__)
