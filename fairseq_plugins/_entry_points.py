"""Loading of the modules advertised in the entry-point group ``fairseq.plugins``."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points

GROUP = "fairseq.plugins"
logger = logging.getLogger(__name__)

_loaded: dict[str, object] = {}


def _is_self(entry: EntryPoint) -> bool:
    module = entry.value.partition(":")[0].strip()
    return module == __package__ or module.startswith(f"{__package__}.")


def load_entry_point_plugins() -> dict[str, object]:
    """Import every module of the ``fairseq.plugins`` group once; returns them by entry-point name.

    Our own entry (``st_contrast = "fairseq_plugins"``) is skipped: it is the package being imported.
    A plugin that fails to import raises ``ImportError`` naming the entry point, chained to the cause,
    rather than leaving fairseq with a half-registered set of components.
    """
    for entry in entry_points(group=GROUP):
        if entry.name in _loaded or _is_self(entry):
            continue
        try:
            _loaded[entry.name] = entry.load()
        except Exception as error:
            raise ImportError(
                f"fairseq plugin {entry.name!r} ({entry.value}), advertised in the entry-point group {GROUP!r}, "
                f"failed to import: {error}"
            ) from error
        logger.info("loaded fairseq plugin %s (%s)", entry.name, entry.value)
    return dict(_loaded)
