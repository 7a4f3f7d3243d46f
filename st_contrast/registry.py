"""Discovery of contrastive losses through the entry-point group ``st_contrast.losses``.

st-contrast advertises its own losses there (pyproject.toml); a third-party package can add its own::

    [project.entry-points."st_contrast.losses"]
    my_method = "my_package.losses:MyLoss"

and ``st-contrast methods`` / ``st-contrast train --method my_method`` find it without importing
anything until it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

GROUP = "st_contrast.losses"


@dataclass(frozen=True)
class MethodEntry:
    name: str
    target: str  # "module:attribute"
    distribution: str | None

    def load(self):
        """The advertised object: ``module:attribute`` gives the attribute, a bare ``module`` the module itself."""
        return EntryPoint(self.name, self.target, GROUP).load()


def available_methods() -> dict[str, MethodEntry]:
    """Every loss advertised in the ``st_contrast.losses`` entry-point group, by name."""
    methods: dict[str, MethodEntry] = {}
    for entry in entry_points(group=GROUP):
        dist = getattr(getattr(entry, "dist", None), "name", None)
        methods.setdefault(entry.name, MethodEntry(entry.name, entry.value, dist))
    return dict(sorted(methods.items()))


def load_method(name: str):
    """The loss class advertised as ``name``; a ``KeyError`` listing the known names otherwise."""
    methods = available_methods()
    if name not in methods:
        known = ", ".join(methods) or "none (is st-contrast installed, e.g. `pip install -e .`?)"
        raise KeyError(f"unknown method {name!r}; known methods: {known}")
    return methods[name].load()
