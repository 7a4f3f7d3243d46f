"""``st-contrast fairseq-user-dir`` and the ``fairseq-*`` wrappers (st_contrast/cli/fairseq.py), without fairseq.

The runs through fairseq itself are in tests/fairseq/test_end_to_end.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_user_dir_is_printed_without_importing_fairseq_or_torch():
    code = (
        "import sys, io, contextlib\n"
        "from st_contrast.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = main(['fairseq-user-dir'])\n"
        "assert rc == 0\n"
        "print(buf.getvalue().strip())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fairseq', 'fairseq_plugins', 'torch')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    path, modules = out.stdout.strip().splitlines()
    assert modules == "[]"
    assert os.path.isfile(os.path.join(path, "__init__.py")) and os.path.basename(path) == "fairseq_plugins"


def test_cli_subcommands_are_wired():
    import argparse

    from st_contrast.cli import build_parser, fairseq

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    fairseq.add_subcommands(sub)
    # alone, and on the st-contrast parser (whose own -h must not take the wrapper's)
    for parser in (parser, build_parser()):
        args, extra = parser.parse_known_args(["fairseq-train", "data-bin", "--task", "x", "-h", "--lr=0.1"])
        assert args.accepts_extra and extra == ["data-bin", "--task", "x", "-h", "--lr=0.1"]
        args, extra = parser.parse_known_args(["fairseq-user-dir"])
        assert extra == [] and args.handler is fairseq.run_user_dir


def test_wrapper_argv_and_environment():
    from st_contrast.cli.fairseq import fairseq_argv, fairseq_env, user_dir

    argv = fairseq_argv("fairseq-generate", ["data-bin", "--path", "x.pt"])
    assert argv[0] == sys.executable and "fairseq_cli.generate" in argv[2]
    assert argv[3:] == ["data-bin", "--path", "x.pt", "--user-dir", user_dir()]
    assert fairseq_argv("fairseq-train", ["d", "--user-dir=/mine"])[3:] == ["d", "--user-dir=/mine"]
    assert fairseq_argv("fairseq-train", ["d", "--user-dir", "/mine"])[3:] == ["d", "--user-dir", "/mine"]
    with pytest.raises(ValueError, match="unknown fairseq command"):
        fairseq_argv("fairseq-foo", [])
    assert fairseq_env({})["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"
    assert fairseq_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "0"})["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "0"
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in fairseq_env({"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"})
