"""Registration that survives a second import of the plugin package, and the folder imports that trigger it.

fairseq raises on a duplicate criterion name, and silently keeps the first task or model. A second import
happens when the package is imported by a script and then found again through ``--user-dir`` under
another module name (e.g. a copy of the folder). Registering the same class (same qualified name) again
returns the class already registered; a *different* class under one of our names is an error.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)


def _same_component(existing: type, new: type) -> bool:
    return existing.__qualname__ == new.__qualname__ and (
        existing.__module__.rsplit(".", 1)[-1] == new.__module__.rsplit(".", 1)[-1]
    )


def _guarded(
    kind: str, registered: Callable[[str], type | None], register: Callable, name: str, dataclass
) -> Callable[[T], T]:
    def decorate(cls: T) -> T:
        existing = registered(name)
        if existing is not None:
            if _same_component(existing, cls):
                return existing
            raise ValueError(
                f"fairseq {kind} {name!r} is already registered by {existing.__module__}.{existing.__qualname__}; "
                f"cannot register {cls.__module__}.{cls.__qualname__} under the same name"
            )
        return register(name, dataclass=dataclass)(cls)

    return decorate


def register_criterion_once(name: str, dataclass) -> Callable[[T], T]:
    """fairseq's ``register_criterion``, safe to repeat for the same class."""
    from fairseq.criterions import CRITERION_REGISTRY, register_criterion

    return _guarded("criterion", CRITERION_REGISTRY.get, register_criterion, name, dataclass)


def register_task_once(name: str, dataclass) -> Callable[[T], T]:
    """fairseq's ``register_task``, safe to repeat for the same class."""
    from fairseq.tasks import TASK_REGISTRY, register_task

    return _guarded("task", TASK_REGISTRY.get, register_task, name, dataclass)


def register_model_once(name: str, dataclass) -> Callable[[T], T]:
    """fairseq's ``register_model`` (which also registers the architecture ``name``), safe to repeat."""
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY, register_model

    def registered(key: str) -> type | None:
        return MODEL_REGISTRY.get(key) or ARCH_MODEL_REGISTRY.get(key)

    return _guarded("model", registered, register_model, name, dataclass)


def import_modules_of(package: str, init_file: str) -> None:
    """Import every public module of a plugin folder, so that each new file registers itself.

    ``package`` and ``init_file`` are the folder's ``__name__`` and ``__file__``. fairseq does this for its
    own folders (and, through ``--user-dir``, for our ``tasks/`` and ``models/``), but not when the package
    is imported by a script.
    """
    for file in sorted(os.listdir(os.path.dirname(init_file))):
        if file.endswith(".py") and not file.startswith(("_", ".")):
            importlib.import_module(f"{package}.{file[:-3]}")
