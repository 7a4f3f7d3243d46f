"""``st-contrast train`` (st_contrast/cli/train.py): flags, YAML configs with flag overrides, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

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


# -- one typed path for configs and flags; one-line user errors (issue 16) ---------------------------


@pytest.fixture
def model_dir(tiny_model, tmp_path):
    path = tmp_path / "base"
    tiny_model.save(str(path))
    return path


def _config(tmp_path, model_dir, sentence_file, extra: str) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"model: {model_dir}\ntrain_file: {sentence_file}\noutput_dir: {tmp_path / 'out'}\nbatch_size: 4\n"
        f"max_steps: 2\neval_sts: false\nshow_progress: false\n{extra}",
        encoding="utf-8",
    )
    return str(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("batch_size: eight\n", "batch_size: must be a whole number, got 'eight'"),
        ("max_steps: 2.5\n", "max_steps: must be a whole number, got 2.5"),
        ("eval_sts: 'no'\n", "eval_sts: must be true or false, got 'no'"),
        ("learning_rate: fast\n", "learning_rate: must be a finite number, got 'fast'"),
        ("loss:\n  temprature: 0.05\n", "SimCSELoss has no argument 'temprature'; did you mean 'temperature'?"),
        ("batch_size: [4\n", "YAML syntax error"),
    ],
)
def test_config_values_are_checked_by_their_declared_types(tmp_path, model_dir, sentence_file, capsys, extra, message):
    config = _config(tmp_path, model_dir, sentence_file, extra)
    if extra.startswith("batch_size: ["):  # a syntax error: replace the file with a broken one
        (tmp_path / "run.yaml").write_text("model: x\nbatch_size: [4\n", encoding="utf-8")
    assert main(["train", "--config", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("st-contrast train: error: ") and message in err[0], err
    assert not (tmp_path / "out").exists()  # nothing written for a refused run


def test_yaml_scientific_notation_is_a_float(tmp_path, model_dir, sentence_file):
    """PyYAML reads 3e-5 as a string (YAML 1.1 floats need a dot): the typed path makes it a float."""
    config = _config(tmp_path, model_dir, sentence_file, "learning_rate: 3e-5\nloss:\n  temperature: 5e-2\n")
    assert main(["train", "--config", config, "-q"]) == 0
    summary = json.loads((tmp_path / "out" / "st_contrast_summary.json").read_text())
    assert summary["config"]["learning_rate"] == 3e-5 and summary["config"]["loss"]["temperature"] == 0.05


def test_flag_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, model_dir, sentence_file, capsys):
    base = [
        "train",
        "--model",
        str(model_dir),
        "--train-file",
        str(sentence_file),
        "--output-dir",
        str(tmp_path / "o"),
    ]
    assert main([*base, "--loss-arg", "tempreature=0.05"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'temperature'?" in err and "Traceback" not in err
    assert main([*base, "--batch-size", "eight", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "--batch-size" not in err and "batch_size: must be a whole number" in err
    assert main([*base[:2], str(tmp_path / "nope"), *base[3:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is neither a folder nor a known alias" in err[0]


def test_common_options_after_the_subcommand_and_version(capsys):
    from st_contrast import __version__
    from st_contrast.cli import build_parser

    args = build_parser().parse_args(["methods", "-v", "--json"])
    assert args.verbose is True and args.quiet is False
    args = build_parser().parse_args(["-q", "methods"])
    assert args.quiet is True  # given before the subcommand, not reset by the subcommand's copy
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"st-contrast {__version__}"


def test_every_option_has_help_and_shows_its_default():
    import argparse

    from st_contrast.cli import _subparsers, build_parser

    for sub in _subparsers(build_parser()):
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or not action.option_strings:
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{sub.prog} {action.option_strings}"
            if action.default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
                continue  # nothing to show: the option is unset unless given
            rendered = sub.formatter_class(sub.prog)._get_help_string(action) % {"default": action.default}
            assert str(action.default) in rendered, f"{sub.prog} {action.option_strings} hides its default"


def test_no_deprecation_warnings_from_our_calls(tmp_path, model_dir, sentence_file, recwarn):
    import warnings

    warnings.simplefilter("always")
    config = _config(tmp_path, model_dir, sentence_file, "warmup_ratio: 0.1\n")
    assert main(["train", "--config", config, "-q"]) == 0
    ours = [
        str(w.message)
        for w in recwarn
        if issubclass(w.category, (DeprecationWarning, FutureWarning))
        and ("warmup_ratio" in str(w.message) or "sentence_transformers.models" in str(w.message))
    ]
    assert ours == []


def test_jsonl_rows_with_other_keys_are_refused_with_the_line(tmp_path, model_dir, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text('{"sentence": "a cat"}\n{"sentence": "a dog"}\n{"text": "a bird"}\n', encoding="utf-8")
    code = main(
        ["train", "--model", str(model_dir), "--train-file", str(data), "--train-format", "jsonl"]
        + ["--output-dir", str(tmp_path / "o"), "--batch-size", "2", "--max-steps", "1", "--no-eval", "-q"]
    )
    assert code == 2
    assert "train.jsonl:3" in capsys.readouterr().err


# -- trusted runs: no silent overwrite, resume with the stored settings (issue 15) -------------------


def _run(model_dir, sentence_file, out, *extra: str) -> int:
    return main(
        ["train", "--model", str(model_dir), "--train-file", str(sentence_file), "--output-dir", str(out)]
        + ["--batch-size", "4", "--no-eval", "-q", "--save-steps", "2", *extra]
    )


def test_rerun_into_a_used_folder_is_refused_unless_asked(tmp_path, model_dir, sentence_file, capsys):
    out = tmp_path / "out"
    assert _run(model_dir, sentence_file, out, "--max-steps", "2") == 0
    weights = (out / "model.safetensors").read_bytes()
    assert _run(model_dir, sentence_file, out, "--max-steps", "2") == 2
    assert "is not empty; refusing to overwrite it" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == weights
    # --overwrite with a mistake in the settings loses nothing: the check comes before the folder is cleared
    assert _run(model_dir, sentence_file, out, "--max-steps", "2", "--loss-arg", "tempreature=1", "--overwrite") == 2
    assert (out / "model.safetensors").read_bytes() == weights
    assert _run(model_dir, sentence_file, out, "--max-steps", "2", "--seed", "7", "--overwrite") == 0
    assert json.loads((out / "st_contrast_summary.json").read_text())["config"]["seed"] == 7
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert _run(model_dir, sentence_file, other, "--max-steps", "2", "--overwrite") == 2
    assert "not an st-contrast training folder" in capsys.readouterr().err and (other / "notes.txt").exists()


def test_resume_continues_with_the_stored_settings(tmp_path, model_dir, sentence_file, capsys):
    out = tmp_path / "out"
    assert _run(model_dir, sentence_file, out, "--max-steps", "4", "--logging-steps", "1") == 0
    assert main(["train", "--output-dir", str(out), "--resume", "--max-steps", "6", "-q", "--logging-steps", "1"]) == 0
    summary = json.loads((out / "st_contrast_summary.json").read_text())
    assert summary["steps"] == 6 and [p["to_step"] for p in summary["parts"]] == [4, 6]
    assert summary["parts"][1]["from_step"] == 4
    card = (out / "README.md").read_text()
    # the card's training-log table holds the steps of both parts (the first part's carried over on resume)
    logs = card.split("### Training Logs", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|") for line in logs.splitlines()]
    steps = [int(cells[2]) for cells in rows if len(cells) > 2 and cells[2].strip().isdigit()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert main(["train", "--output-dir", str(out), "--resume", "--batch-size", "8"]) == 2
    assert "batch_size: stored 4, now 8" in capsys.readouterr().err
    assert (
        main(["train", "--output-dir", str(tmp_path / "empty"), "--resume", "--model", "m", "--train-file", "f"]) == 2
    )
    assert "nothing to resume" in capsys.readouterr().err


# -- every method from one command: labelled text, label maps, readers' errors (issue 20) ------------

INTENTS = {
    "weather": ["will it rain today", "is it sunny outside", "how cold is it tonight", "what is the forecast"],
    "music": ["play some jazz music", "put on my playlist", "play the next song", "turn the music up"],
    "alarm": ["wake me up at seven", "set an alarm for noon", "cancel my morning alarm", "alarm at six please"],
}


def _labelled_csv(path, intents, extra_rows=()):
    rows = ["text,label"] + [f"{t},{label}" for label, texts in intents.items() for t in texts] + list(extra_rows)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _train(model_dir, out, *extra: str) -> int:
    return main(
        ["train", "--model", str(model_dir), "--output-dir", str(out), "--batch-size", "4", "--max-steps", "2", "-q"]
        + list(extra)
    )


def test_label_names_are_mapped_saved_with_the_model_and_reused(tmp_path, model_dir, capsys):
    from st_contrast.cli.train import build_model
    from st_contrast.data.labels import load_label_map
    from st_contrast.modules.classifier import find_classifier_head

    train_file = _labelled_csv(tmp_path / "train.csv", INTENTS)
    eval_file = _labelled_csv(tmp_path / "eval.csv", {k: v[:2] for k, v in INTENTS.items()})
    out = tmp_path / "out"
    assert (
        _train(model_dir, out, "--method", "rdrop", "--train-file", str(train_file), "--eval-file", str(eval_file))
        == 0
    )
    printed = capsys.readouterr().out
    assert "classification x100 (eval.csv: 6 examples)" in printed and "classifier head" in printed
    label_map = load_label_map(out)
    assert label_map["label_names"] == ["alarm", "music", "weather"] and label_map["text_column"] == "text"
    summary = json.loads((out / "st_contrast_summary.json").read_text())
    assert summary["config"]["train_format"] == "csv" and summary["evaluation"]["task"] == "classification"
    head = find_classifier_head(build_model(str(out)))  # the saved model loads with its head and names
    assert head is not None and head.labels == ["alarm", "music", "weather"]

    # a later run on data holding only some of the labels keeps the saved ids
    partial = _labelled_csv(tmp_path / "partial.csv", {"weather": INTENTS["weather"], "music": INTENTS["music"]})
    again = tmp_path / "again"
    assert _train(model_dir, again, "--method", "supcon", "--train-file", str(partial), "--label-map", str(out)) == 0
    assert load_label_map(again)["label_names"] == ["alarm", "music", "weather"]
    from st_contrast.cli.train import TrainConfig, prepare_data

    config = TrainConfig(
        model=str(model_dir), train_file=str(partial), output_dir=str(tmp_path / "x"), method="supcon"
    )
    config.label_map = str(out)
    assert sorted(set(prepare_data(config).dataset["label"])) == [1, 2]
    capsys.readouterr()

    # a label outside the map, in training or evaluation data, is a one-line error
    unknown = _labelled_csv(tmp_path / "unknown.csv", {**INTENTS, "timer": ["start a timer", "timer for ten"]})
    assert (
        _train(model_dir, tmp_path / "u", "--method", "rdrop", "--train-file", str(unknown), "--label-map", str(out))
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "label(s) ['timer'] are not in the label map" in err[0]
    assert (
        _train(
            model_dir,
            tmp_path / "v",
            "--method",
            "rdrop",
            "--train-file",
            str(train_file),
            "--eval-file",
            str(unknown),
        )
        == 2
    )
    assert "label(s) ['timer'] were not seen in training" in capsys.readouterr().err


def test_ood_evaluation_from_a_csv_with_a_named_out_of_scope_label(tmp_path, model_dir, capsys):
    oos = ["what is the meaning of life,oos", "how tall is everest,oos", "tell me a joke,oos"]
    train_file = _labelled_csv(tmp_path / "train.csv", INTENTS, oos)
    eval_file = _labelled_csv(tmp_path / "eval.csv", INTENTS, oos)
    out = tmp_path / "out"
    code = _train(
        model_dir, out, "--method", "supcon_ood", "--train-file", str(train_file), "--eval-file", str(eval_file),
        "--ood-label", "oos", "--loss-arg", "adversarial_epsilon=0.05",
    )  # fmt: skip
    assert code == 0
    assert "OOD detection x100 (eval.csv: 6 in-domain, 3 out-of-scope" in capsys.readouterr().out
    summary = json.loads((out / "st_contrast_summary.json").read_text())
    assert "left 3 example(s) labelled 'oos' (out-of-scope) out of training" in summary["data"]
    assert summary["config"]["evaluation"] == "ood" and set(summary["evaluation"]["detectors"]) == {
        "lof",
        "gda",
        "msp",
    }
    assert summary["train_examples"] == 12 and json.loads((out / "label_map.json").read_text())["label_names"] == [
        "alarm",
        "music",
        "weather",
    ]


@pytest.mark.parametrize(
    ("method", "fmt", "content", "message"),
    [
        ("declutr", "wikitext", "just some text\nwith no title\n", "no ' = Title = ' line"),
        ("declutr", "documents", '{"body": "x"}\n', "no text field"),
        ("declutr", "wikitext", " = Title = \n", "none of the 1 articles has any text"),
        ("cil", "fewrel-nyt", '{"P1": [{"tokens": ["a"], "h": ["a"]}]}', "malformed FewRel item"),
        ("rdrop", "csv", "text,topic\nhello there,a\nbye now,b\n", "no label column"),
        ("simcse", "clinc150", "{}", "does not fit method 'simcse'"),
        ("supcon", "clinc150", '{"train": []}', "this is not CLINC150 data_full.json"),
    ],
)
def test_readers_errors_are_one_line_cli_errors(tmp_path, model_dir, capsys, method, fmt, content, message):
    data = tmp_path / ("data.jsonl" if fmt == "documents" else "data.txt")
    data.write_text(content, encoding="utf-8")
    code = _train(model_dir, tmp_path / "o", "--method", method, "--train-file", str(data), "--train-format", fmt)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("st-contrast train: error: ") and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_declutr_from_a_folder_of_documents_with_span_options(tmp_path, model_dir, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    words = "the cat sat on the mat while the dog ran in the park and the bird sang".split()
    for i in range(4):
        (folder / f"doc{i}.txt").write_text(" ".join(words[i:] + words * 5), encoding="utf-8")
    out = tmp_path / "out"
    code = _train(
        model_dir, out, "--method", "declutr", "--train-file", str(folder), "--min-span", "3", "--max-span", "8",
        "--no-eval", "--loss-arg", "num_positives=1",
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "st_contrast_summary.json").read_text())
    assert summary["config"]["train_format"] == "documents" and summary["train_examples"] == 4
    # the loss's num_anchors/num_positives shape the spans: 2 anchors + 2x1 positives
    from st_contrast.cli.train import TrainConfig, prepare_data

    config = TrainConfig(model=str(model_dir), train_file=str(folder), output_dir="x", method="declutr")
    config.loss, config.min_span, config.max_span = {"num_positives": 1}, 3, 8
    assert prepare_data(config).dataset.column_names == ["anchor_0", "anchor_1", "positive_0_0", "positive_1_0"]
    # too long spans for these documents: the error says what to change
    assert _train(model_dir, tmp_path / "o2", "--method", "declutr", "--train-file", str(folder), "--no-eval") == 2
    err = capsys.readouterr().err
    assert "lower --max-span, or pass --on-short skip or shrink" in err


def test_method_options_are_typed_listed_and_misspellings_get_close_matches(tmp_path, model_dir, capsys):
    from st_contrast.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    shown = capsys.readouterr().out
    for heading in ("DeCLUTR spans", "CLINE rewriting", "labelled text", "CIL bags"):
        assert heading in shown
    assert "--replace-ratio" in shown and "(default: 0.5)" in shown
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {model_dir}\ntrain_file: x\noutput_dir: o\nmax_spam: 64\n", encoding="utf-8")
    assert main(["train", "--config", str(config)]) == 2
    assert "'max_spam' (did you mean 'max_span'?)" in capsys.readouterr().err
    assert _train(model_dir, tmp_path / "o", "--train-file", "x", "--replace-ratio", "2") == 2
    assert "replace_ratio must be in (0, 1], got 2.0" in capsys.readouterr().err


def test_one_seed_gives_one_model_even_with_a_loss_head(tmp_path, model_dir, sentence_file):
    """The loss's head is built before the Trainer seeds; train() seeds first, so one --seed is one model."""
    from safetensors.torch import load_file

    torch.manual_seed(1)  # a different global RNG state before each run
    assert _run(model_dir, sentence_file, tmp_path / "a", "--max-steps", "2", "--loss-arg", 'projection="model"') == 0
    torch.manual_seed(2)
    assert _run(model_dir, sentence_file, tmp_path / "b", "--max-steps", "2", "--loss-arg", 'projection="model"') == 0
    a = {
        k: v
        for f in (tmp_path / "a").rglob("*.safetensors")
        if "checkpoint" not in str(f)
        for k, v in load_file(f).items()
    }
    b = {
        k: v
        for f in (tmp_path / "b").rglob("*.safetensors")
        if "checkpoint" not in str(f)
        for k, v in load_file(f).items()
    }
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
