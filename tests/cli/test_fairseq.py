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
    # generation and validation keep every example (fairseq-fixed drops a last batch below the multiple)
    assert argv[3:] == ["data-bin", "--path", "x.pt", "--user-dir", user_dir(), "--required-batch-size-multiple", "1"]
    assert fairseq_argv("fairseq-validate", ["d"])[-2:] == ["--required-batch-size-multiple", "1"]
    assert fairseq_argv("fairseq-generate", ["d", "--required-batch-size-multiple=8"])[-1] == user_dir()
    assert "--required-batch-size-multiple" not in fairseq_argv("fairseq-train", ["d"])
    assert fairseq_argv("fairseq-train", ["d", "--user-dir=/mine"])[3:] == ["d", "--user-dir=/mine"]
    assert fairseq_argv("fairseq-train", ["d", "--user-dir", "/mine"])[3:] == ["d", "--user-dir", "/mine"]
    with pytest.raises(ValueError, match="unknown fairseq command"):
        fairseq_argv("fairseq-foo", [])
    assert fairseq_env({})["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"
    assert fairseq_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "0"})["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "0"
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in fairseq_env({"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"})


def test_cpu_distributed_launch_fills_in_the_flags_for_each_rank():
    from st_contrast.cli.fairseq import cpu_distributed_launch, option_value

    base = ["data-bin", "--task", "translation", "--cpu"]
    launch = cpu_distributed_launch([*base, "--distributed-world-size", "3"], env={})
    assert len(launch) == 3
    inits = {option_value(argv, "--distributed-init-method") for argv in launch}
    assert len(inits) == 1 and inits.pop().startswith("tcp://127.0.0.1:")
    for rank, argv in enumerate(launch):
        assert argv[:4] == base and argv.count("--distributed-no-spawn") == 1
        assert option_value(argv, "--distributed-rank") == str(rank)
        assert option_value(argv, "--distributed-world-size") == "3"
        assert option_value(argv, "--distributed-backend") == "gloo"
        assert option_value(argv, "--ddp-backend") == "legacy_ddp"
    # the user's own choices are kept; --distributed-port fixes the port
    own = cpu_distributed_launch(
        [*base, "--distributed-world-size=2", "--ddp-backend", "c10d", "--distributed-port", "29511"], env={}
    )
    assert [option_value(a, "--ddp-backend") for a in own] == ["c10d", "c10d"]
    assert option_value(own[1], "--distributed-init-method") == "tcp://127.0.0.1:29511"
    # nothing to fill in: one process, GPUs (fairseq spawns per GPU), or a launch the user wrote
    assert cpu_distributed_launch(base, env={}) is None
    assert cpu_distributed_launch([*base, "--distributed-world-size", "1"], env={}) is None
    assert cpu_distributed_launch(["data-bin", "--distributed-world-size", "2"], env={}) is None
    manual = [
        *base,
        "--distributed-world-size",
        "2",
        "--distributed-init-method",
        "tcp://h:1",
        "--distributed-rank",
        "1",
    ]
    assert cpu_distributed_launch(manual, env={}) is None
    with pytest.raises(ValueError, match="--distributed-rank is set by"):
        cpu_distributed_launch([*base, "--distributed-world-size", "2", "--distributed-rank", "0"], env={})
    with pytest.raises(ValueError, match="must be an integer"):
        cpu_distributed_launch([*base, "--distributed-world-size", "two"], env={})


def test_cpu_distributed_launch_under_torchrun():
    from st_contrast.cli.fairseq import cpu_distributed_launch, option_value

    env = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "LOCAL_RANK": "1"}
    (argv,) = cpu_distributed_launch(["data-bin", "--cpu"], env=env)
    assert option_value(argv, "--distributed-init-method") == "env://"
    assert option_value(argv, "--distributed-rank") == "1" and option_value(argv, "--distributed-world-size") == "2"
    assert "--distributed-no-spawn" in argv and option_value(argv, "--distributed-backend") == "gloo"
    with pytest.raises(ValueError, match="differs from torchrun's WORLD_SIZE=2"):
        cpu_distributed_launch(["data-bin", "--cpu", "--distributed-world-size", "4"], env=env)
    assert cpu_distributed_launch(["data-bin", "--cpu"], env={**env, "WORLD_SIZE": "1"}) is None


def test_run_processes_stops_the_others_when_one_fails(tmp_path):
    from st_contrast.cli.fairseq import run_processes

    marker = tmp_path / "finished"
    sleeper = [sys.executable, "-c", f"import time; time.sleep(120); open({str(marker)!r}, 'w')"]
    failing = [sys.executable, "-c", "import sys, time; time.sleep(0.5); sys.exit(3)"]
    assert run_processes([sleeper, failing], dict(os.environ)) == 3
    assert not marker.exists()
    assert run_processes([[sys.executable, "-c", "pass"]] * 2, dict(os.environ)) == 0
