"""``st-contrast evaluate sts`` (st_contrast/cli/evaluate.py)."""

from __future__ import annotations

import json

import pytest

from st_contrast.cli import main


def test_evaluate_sts_json(tiny_model, tmp_path, data_dir, capsys):
    model_dir = tmp_path / "model"
    tiny_model.save(str(model_dir))
    assert main(["evaluate", "sts", "--model", str(model_dir), "--split", "dev", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(scores) == {"dev"} and -100 <= scores["dev"] <= 100


def test_evaluate_unknown_split(tmp_path):
    with pytest.raises(SystemExit, match="unknown split"):
        main(["evaluate", "sts", "--model", str(tmp_path), "--split", "valid"])
