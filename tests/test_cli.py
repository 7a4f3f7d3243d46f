from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from st_contrast.cli import main
from st_contrast.registry import available_methods, load_method


def test_import_is_light():
    code = (
        "import sys, st_contrast, st_contrast.losses, st_contrast.data, st_contrast.evaluation, st_contrast.cli;"
        "heavy = [m for m in ('fairseq', 'nltk', 'datasets') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing st_contrast pulled in {out.stdout.strip()}"


def test_methods_come_from_entry_points(capsys):
    methods = available_methods()
    assert "simcse" in methods and methods["simcse"].target == "st_contrast.losses.simcse:SimCSELoss"
    from st_contrast.losses import SimCSELoss

    assert load_method("simcse") is SimCSELoss
    with pytest.raises(KeyError, match="unknown method 'nope'; known methods: .*simcse"):
        load_method("nope")
    assert main(["methods"]) == 0
    assert "simcse" in capsys.readouterr().out


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
    assert "unknown setting(s) ['batchsize']" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="missing --train-file, --output-dir"):
        main(["train", "--model", "m"])
    assert main(["train", "--model", "m", "--train-file", "f", "--output-dir", "o", "--batch-size", "1"]) == 2
    assert "batch_size must be >= 2" in capsys.readouterr().err


def test_evaluate_sts_json(tiny_model, tmp_path, data_dir, capsys):
    model_dir = tmp_path / "model"
    tiny_model.save(str(model_dir))
    assert main(["evaluate", "sts", "--model", str(model_dir), "--split", "dev", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(scores) == {"dev"} and -100 <= scores["dev"] <= 100


def test_evaluate_unknown_split(tmp_path):
    with pytest.raises(SystemExit, match="unknown split"):
        main(["evaluate", "sts", "--model", str(tmp_path), "--split", "valid"])


@pytest.mark.slow
def test_console_script_runs():
    script = os.path.join(os.path.dirname(sys.executable), "st-contrast")
    out = subprocess.run([script, "methods"], capture_output=True, text=True)
    assert out.returncode == 0 and "simcse" in out.stdout
