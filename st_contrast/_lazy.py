"""Lazy public names for st_contrast's subpackages (keeps ``import st_contrast.X`` cheap)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str], namespace: dict[str, Any]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps a public name to its module in the package.

    A name is imported from its module on first access and then cached in ``namespace`` (the package's
    globals), so later accesses cost nothing. A listed module that does not exist (a name announced for a
    later version) reads as a missing attribute, not an import error from deep inside.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            value = getattr(importlib.import_module(f".{module}", package), name)
        except ModuleNotFoundError as error:
            if error.name == f"{package}.{module}":
                raise AttributeError(f"{name} is not available in this version of st-contrast") from None
            raise
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
