"""The examples in ``examples/`` are scripts, not a package: the quality experiments load them from their files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def load_example(stem: str) -> ModuleType:
    """``examples/<stem>.py`` as a module (loaded once per process, under the name ``examples.<stem>``)."""
    name = f"examples.{stem}"
    if name in sys.modules:
        return sys.modules[name]
    path = EXAMPLES_DIR / f"{stem}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no example {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
