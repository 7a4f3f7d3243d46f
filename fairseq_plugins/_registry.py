"""Registration that survives a second import of the plugin package.

fairseq raises on a duplicate criterion name, and silently keeps the first task. A second import
happens when the package is imported by a script and then found again through ``--user-dir`` under
another module name (e.g. a copy of the folder). Registering the same class (same qualified name) again
returns the class already registered; a *different* class under one of our names is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)


def _same_component(existing: type, new: type) -> bool:
    return existing.__qualname__ == new.__qualname__ and (
        existing.__module__.rsplit(".", 1)[-1] == new.__module__.rsplit(".", 1)[-1]
    )


def _guarded(kind: str, registry: dict, register: Callable, name: str, dataclass) -> Callable[[T], T]:
    def decorate(cls: T) -> T:
        existing = registry.get(name)
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
    from fairseq.criterions import CRITERION_REGISTRY, register_criterion

    return _guarded("criterion", CRITERION_REGISTRY, register_criterion, name, dataclass)


def register_task_once(name: str, dataclass) -> Callable[[T], T]:
    from fairseq.tasks import TASK_REGISTRY, register_task

    return _guarded("task", TASK_REGISTRY, register_task, name, dataclass)
