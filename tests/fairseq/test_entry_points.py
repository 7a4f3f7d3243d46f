"""The entry-point group fairseq.plugins (fairseq_plugins/_entry_points.py, and our own entry in pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest


def test_entry_point_plugins_are_loaded_and_their_errors_reraised(plugins, monkeypatch):
    from fairseq_plugins import _entry_points

    group = _entry_points.GROUP
    own = EntryPoint("st_contrast", "fairseq_plugins", group)
    good = EntryPoint("good", "json", group)
    monkeypatch.setattr(_entry_points, "_loaded", {})
    monkeypatch.setattr(_entry_points, "entry_points", lambda group: [own, good])
    loaded = _entry_points.load_entry_point_plugins()
    assert list(loaded) == ["good"]  # our own entry is the package being imported: skipped

    broken = EntryPoint("broken", "st_contrast_no_such_module_xyz", group)
    monkeypatch.setattr(_entry_points, "entry_points", lambda group: [broken])
    with pytest.raises(ImportError, match="'broken'") as info:
        _entry_points.load_entry_point_plugins()
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_our_entry_point_is_installed():
    from importlib.metadata import entry_points

    values = {e.name: e.value for e in entry_points(group="fairseq.plugins")}
    assert values.get("st_contrast") == "fairseq_plugins"
