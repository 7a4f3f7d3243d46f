"""``st-contrast methods`` (st_contrast/cli/methods.py): the losses of the st_contrast.losses entry points."""

from __future__ import annotations

import json

import pytest

from st_contrast.cli import main
from st_contrast.registry import available_methods, load_method


def test_methods_come_from_entry_points(capsys):
    methods = available_methods()
    assert "simcse" in methods and methods["simcse"].target == "st_contrast.losses.simcse:SimCSELoss"
    from st_contrast.losses import SimCSELoss

    assert load_method("simcse") is SimCSELoss
    with pytest.raises(KeyError, match="unknown method 'nope'; known methods: .*simcse"):
        load_method("nope")
    assert main(["methods"]) == 0
    assert "simcse" in capsys.readouterr().out


def test_methods_json(capsys):
    assert main(["methods", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["simcse"]["target"] == "st_contrast.losses.simcse:SimCSELoss"


def test_third_party_entry_point_is_listed(tmp_path, monkeypatch):
    """A distribution that advertises a loss in the group shows up without any registration code."""
    dist_info = tmp_path / "thirdparty_loss-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-loss\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[st_contrast.losses]\nmy_loss = thirdparty_mod:MyLoss\n")
    (tmp_path / "thirdparty_mod.py").write_text("class MyLoss:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    methods = available_methods()
    assert methods["my_loss"].distribution == "thirdparty-loss"
    assert load_method("my_loss").__name__ == "MyLoss"
