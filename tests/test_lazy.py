"""st_contrast._lazy: the one lazy-export helper every package uses."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from st_contrast._lazy import lazy_exports

PACKAGES = [
    "st_contrast.losses",
    "st_contrast.modules",
    "st_contrast.views",
    "st_contrast.data",
    "st_contrast.evaluation",
]


def test_names_resolve_once_and_are_cached():
    namespace: dict = {}
    getattr_, dir_ = lazy_exports("st_contrast", {"hf_encoder": "modeling", "later": "not_written_yet"}, namespace)
    from st_contrast.modeling import hf_encoder

    assert getattr_("hf_encoder") is hf_encoder and namespace["hf_encoder"] is hf_encoder
    assert {"hf_encoder", "later"} <= set(dir_())
    with pytest.raises(AttributeError, match="later is not available in this version"):
        getattr_("later")
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        getattr_("nothing")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_uses_it_and_every_listed_name_exists(package):
    module = importlib.import_module(package)
    assert module.__getattr__.__module__ == "st_contrast._lazy"
    for name in module._LAZY:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_importing_a_package_imports_none_of_its_modules():
    code = (
        "import sys, st_contrast.losses, st_contrast.views, st_contrast.modules; "
        "print(sorted(m for m in sys.modules if m.startswith('st_contrast.') and m.count('.') > 1))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
