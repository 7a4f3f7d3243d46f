"""sentence-transformers losses for contrastive methods, one method per module.

Imports are lazy so that ``import st_contrast.losses`` stays cheap; ``from st_contrast.losses
import SimCSELoss`` works as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from st_contrast._lazy import lazy_exports

# public name -> module (relative to this package). Each method's module is the source of truth.
_LAZY: dict[str, str] = {
    "SimCSELoss": "simcse",
    "SimCSEProjection": "simcse",
    "SelfGuidedContrastiveLoss": "self_guided",
    "ConSERTLoss": "consert",
    "CLINELoss": "cline",
    "DeCLUTRLoss": "declutr",
    "SupConLoss": "supcon",
    "SupConOODLoss": "supcon",
    "RDropLoss": "rdrop",
    "CILLoss": "cil",
    "CachedSimCSELoss": "cached",
    "CachedSupConLoss": "cached",
    "CachedDeCLUTRLoss": "cached",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .simcse import SimCSELoss, SimCSEProjection  # noqa: F401


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
