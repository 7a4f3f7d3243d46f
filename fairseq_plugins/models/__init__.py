"""Models: ``simcls_scorer`` (SimCLS, Liu & Liu, ACL 2021: one encoder, cosine of first-token vectors)."""

from __future__ import annotations

from .simcls_scorer import SimCLSScorer, SimCLSScorerConfig  # noqa: F401
