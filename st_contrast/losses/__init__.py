"""sentence-transformers losses for contrastive methods, one method per module.

Imports are lazy so that ``import st_contrast.losses`` stays cheap; ``from st_contrast.losses
import SimCSELoss`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    except ModuleNotFoundError as error:
        if error.name == f"{__name__}.{module}":
            raise AttributeError(f"{name} is not available in this version of st-contrast") from None
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
