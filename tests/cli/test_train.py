"""``st-contrast train`` (st_contrast/cli/train.py): flags, YAML configs with flag overrides, clear errors."""

from __future__ import annotations

import json

import pytest

from st_contrast.cli import main


@pytest.fixture
def sentence_file(tmp_path, sentences):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(sentences * 2) + "\n", encoding="utf-8")
    return path


def test_train_with_flags_saves_a_model_with_card(tiny_model, tmp_path, sentence_file, capsys):
    model_dir = tmp_path / "base"
    tiny_model.save(str(model_dir))
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "--method",
            "simcse",
            "--model",
            str(model_dir),
            "--train-file",
            str(sentence_file),
            "--output-dir",
            str(out),
            "--batch-size",
            "4",
            "--max-steps",
            "2",
            "--no-eval",
            "--loss-arg",
            "temperature=0.1",
            "--loss-arg",
            'projection="mlp"',
        ]
    )
    assert code == 0
    assert (out / "modules.json").exists() and (out / "README.md").exists()
    summary = json.loads((out / "st_contrast_summary.json").read_text())
    assert summary["steps"] == 2 and summary["config"]["loss"] == {"temperature": 0.1, "projection": "mlp"}
    assert "SimCSELoss" in (out / "README.md").read_text()
    assert "trained 2 steps" in capsys.readouterr().out


def test_train_from_yaml_config_and_flag_override(tiny_model, tmp_path, sentence_file):
    model_dir = tmp_path / "base"
    tiny_model.save(str(model_dir))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: {model_dir}\ntrain_file: {sentence_file}\noutput_dir: {tmp_path / 'out'}\nbatch_size: 4\n"
        "max_steps: 5\neval_sts: false\nloss:\n  temperature: 0.07\n"
    )
    assert main(["train", "--config", str(config), "--max-steps", "1"]) == 0
    summary = json.loads((tmp_path / "out" / "st_contrast_summary.json").read_text())
    assert summary["steps"] == 1 and summary["config"]["loss"]["temperature"] == 0.07


def test_train_config_errors_are_clear(tmp_path, capsys):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"model": "m", "train_file": "f", "output_dir": "o", "batchsize": 3}))
    assert main(["train", "--config", str(config)]) == 2
    assert "unknown setting(s) ['batchsize']; 'batchsize' (did you mean 'batch_size'?)" in capsys.readouterr().err
    assert main(["train", "--model", "m"]) == 2
    assert "missing --train-file, --output-dir" in capsys.readouterr().err
    assert main(["train", "--model", "m", "--train-file", "f", "--output-dir", "o", "--batch-size", "1"]) == 2
    assert "batch_size must be >= 2" in capsys.readouterr().err
