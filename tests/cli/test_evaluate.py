"""``st-contrast evaluate sts`` (st_contrast/cli/evaluate.py)."""

from __future__ import annotations

import json

from st_contrast.cli import main


def test_evaluate_sts_json(tiny_model, tmp_path, data_dir, capsys):
    model_dir = tmp_path / "model"
    tiny_model.save(str(model_dir))
    assert main(["evaluate", "sts", "--model", str(model_dir), "--split", "dev", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(scores) == {"dev"} and -100 <= scores["dev"] <= 100


def test_evaluate_unknown_split(tmp_path, capsys):
    assert main(["evaluate", "sts", "--model", str(tmp_path), "--split", "valid"]) == 2
    err = capsys.readouterr().err
    assert "st-contrast evaluate: error: unknown split(s) ['valid']; choose from train, dev, test" in err
    assert "Traceback" not in err


def test_evaluate_misspelt_model_is_one_line(tmp_path, capsys):
    assert main(["evaluate", "sts", "--model", str(tmp_path / "no-such-model"), "--split", "dev"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is neither a folder nor a known alias" in err[0]
