"""st_contrast.registry: losses found through the ``st_contrast.losses`` entry-point group."""

from __future__ import annotations

import importlib

import pytest

from st_contrast.registry import GROUP, MethodEntry, available_methods, load_method


def test_every_advertised_loss_loads_to_a_class_of_ours():
    methods = available_methods()
    assert list(methods) == sorted(methods)
    for name, entry in methods.items():
        if entry.distribution not in ("st-contrast", "st_contrast"):
            continue
        module, _, attribute = entry.target.partition(":")
        assert entry.load() is getattr(importlib.import_module(module), attribute), name


def test_a_module_only_entry_point_loads_the_module_itself():
    # before: __import__("pkg.mod") returned the top-level package `pkg`
    entry = MethodEntry("functional", "st_contrast.losses.functional", None)
    assert entry.load() is importlib.import_module("st_contrast.losses.functional")
    assert MethodEntry("simcse", "st_contrast.losses.simcse:SimCSELoss", None).load().__name__ == "SimCSELoss"


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown method 'nope'; known methods: .*simcse"):
        load_method("nope")
    assert GROUP == "st_contrast.losses"
