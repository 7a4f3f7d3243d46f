"""The ``st-contrast`` command as a whole (st_contrast/cli/__init__.py, __main__.py): light import, the
subcommands on the parser, the console script and ``python -m st_contrast.cli``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from st_contrast.cli import build_parser, main

SUBCOMMANDS = {
    "train", "evaluate", "methods", "fairseq-user-dir", "fairseq-help", "fairseq-train", "fairseq-generate",
    "fairseq-validate", "fairseq-interactive", "fairseq-preprocess", "simcls-build-data", "simcls-rerank",
}  # fmt: skip


def test_import_is_light():
    code = (
        "import sys, st_contrast, st_contrast.losses, st_contrast.data, st_contrast.evaluation, st_contrast.cli;"
        "heavy = [m for m in ('fairseq', 'nltk', 'datasets') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing st_contrast pulled in {out.stdout.strip()}"


def test_the_command_imports_no_framework():
    """``st-contrast --help`` and ``fairseq-user-dir`` stay instant: frameworks are imported on use."""
    code = (
        "import sys, st_contrast.cli;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'fairseq', 'fairseq_plugins', "
        "'sentence_transformers', 'transformers'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_subcommand_is_on_the_parser():
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    assert set(subparsers.choices) == SUBCOMMANDS
    for name, sub in subparsers.choices.items():
        if name == "evaluate":
            (tasks,) = [a for a in sub._actions if a.dest == "task"]
            sub = tasks.choices["sts"]
        assert callable(sub.get_default("handler")), name


def test_unknown_arguments_are_an_error_except_for_the_fairseq_wrappers(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["methods", "--bogus"])
    assert stop.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    args, extra = build_parser().parse_known_args(["fairseq-generate", "--bogus"])
    assert args.accepts_extra and extra == ["--bogus"]


def test_python_m_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "st_contrast.cli", "methods"], capture_output=True, text=True)
    assert out.returncode == 0 and "simcse" in out.stdout, out.stderr[-2000:]
    out = subprocess.run([sys.executable, "-m", "st_contrast.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: st-contrast ")
    assert all(name in out.stdout for name in SUBCOMMANDS)


@pytest.mark.slow
def test_console_script_runs():
    script = os.path.join(os.path.dirname(sys.executable), "st-contrast")
    out = subprocess.run([script, "methods"], capture_output=True, text=True)
    assert out.returncode == 0 and "simcse" in out.stdout
