"""``st-contrast fairseq-*``: fairseq's own commands with st-contrast's plugins, without importing fairseq here.

``st-contrast fairseq-user-dir`` prints the directory of the ``fairseq_plugins`` package, for plain
fairseq commands::

    fairseq-train data-bin --user-dir "$(st-contrast fairseq-user-dir)" --task translation_multilingual_contrastive ...

``st-contrast fairseq-train|fairseq-generate|fairseq-validate|fairseq-interactive|fairseq-preprocess ARGS``
run the matching fairseq entry point in a child process with every argument passed through unchanged, plus:

* ``--user-dir <fairseq_plugins>`` appended when the arguments carry no ``--user-dir``. It goes into
  fairseq's own argument list (not just into this process), so the processes fairseq spawns, one per GPU,
  import the plugins too.
* ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the child's environment (unless the caller set it, or forced
  the opposite with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``). torch >= 2.6 loads checkpoints with
  ``weights_only=True``, which rejects the ``argparse.Namespace`` / omegaconf objects that fairseq 0.12
  pickles into every checkpoint, so resuming training and ``fairseq-generate`` would fail. Only load
  checkpoints you trust: this restores torch's pre-2.6 pickle loading for the fairseq process.
  Importing ``fairseq_plugins`` (what ``--user-dir`` does) applies the same default, so plain fairseq
  commands with our ``--user-dir`` work as well.

This module never imports fairseq or torch: the plugin directory is found with
:func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence

PLUGIN_PACKAGE = "fairseq_plugins"
NO_WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
WEIGHTS_ONLY_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"

#: wrapper command -> fairseq_cli module whose ``cli_main`` it runs
FAIRSEQ_COMMANDS: dict[str, str] = {
    "fairseq-train": "fairseq_cli.train",
    "fairseq-generate": "fairseq_cli.generate",
    "fairseq-validate": "fairseq_cli.validate",
    "fairseq-interactive": "fairseq_cli.interactive",
    "fairseq-preprocess": "fairseq_cli.preprocess",
}


def user_dir() -> str:
    """Absolute path of the ``fairseq_plugins`` package directory (fairseq's ``--user-dir``).

    Found without importing the package (importing it would import fairseq).
    """
    spec = importlib.util.find_spec(PLUGIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {PLUGIN_PACKAGE!r} package is not importable; install st-contrast (pip install -e .) first"
        )
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def has_user_dir(args: Sequence[str]) -> bool:
    """Whether fairseq arguments already name a ``--user-dir`` (``--user-dir X`` or ``--user-dir=X``)."""
    return any(arg == "--user-dir" or arg.startswith("--user-dir=") for arg in args)


def fairseq_argv(command: str, args: Sequence[str]) -> list[str]:
    """The child process's argv for a wrapper ``command`` (e.g. ``"fairseq-train"``) and its arguments."""
    if command not in FAIRSEQ_COMMANDS:
        raise ValueError(f"unknown fairseq command {command!r}; known: {', '.join(FAIRSEQ_COMMANDS)}")
    args = list(args)
    if not has_user_dir(args):
        args += ["--user-dir", user_dir()]
    module = FAIRSEQ_COMMANDS[command]
    # Run cli_main directly (not `python -m`) so that argv[0], shown in fairseq's usage, is the command.
    return [sys.executable, "-c", _BOOTSTRAP.format(command=command, module=module), *args]


# After fairseq's cli_main returns (checkpoints written and closed, logs flushed), leave with os._exit:
# on a busy machine the normal interpreter teardown of fairseq-train was seen to abort ("terminate called
# without an active exception", status -6) after a successful run, from a native thread destroyed while
# still joinable. Nothing of fairseq's work happens in that teardown.
_BOOTSTRAP = """\
import logging, os, sys
sys.argv[0] = {command!r}
from {module} import cli_main
try:
    code = cli_main()
except SystemExit as stop:
    code = stop.code
if code is not None and not isinstance(code, int):
    print(code, file=sys.stderr)
    code = 1
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code or 0)
"""


def fairseq_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ``base`` (default ``os.environ``) plus the checkpoint-loading fix."""
    env = dict(os.environ if base is None else base)
    if NO_WEIGHTS_ONLY_ENV not in env and WEIGHTS_ONLY_ENV not in env:
        env[NO_WEIGHTS_ONLY_ENV] = "1"
    return env


def run_fairseq(command: str, args: Sequence[str], exec_: bool = True) -> int:
    """Run a fairseq command with our plugins.

    On POSIX this process is replaced by fairseq's (``os.execve``) unless ``exec_`` is false; otherwise
    fairseq runs as a child and its exit status is returned.
    """
    if importlib.util.find_spec("fairseq") is None:
        raise FileNotFoundError(
            "fairseq is not installed; install it with `pip install --no-deps --no-build-isolation "
            "fairseq-fixed==0.12.3.1` after `pip install st-contrast[fairseq]`"
        )
    argv, env = fairseq_argv(command, args), fairseq_env()
    if os.name == "posix" and exec_:
        # Become the fairseq process: signals (Ctrl-C, a scheduler's SIGTERM) reach fairseq directly and
        # no orphan is left behind.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(argv[0], argv, env)
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:  # the child got the signal too; report the usual status
        return 130


def run_user_dir(args: argparse.Namespace) -> int:
    """The ``fairseq-user-dir`` handler: prints :func:`user_dir`."""
    print(user_dir())
    return 0


def _make_runner(command: str):
    """The handler of one ``fairseq-*`` wrapper: :func:`run_fairseq` with every argument passed through."""

    def _run(args: argparse.Namespace) -> int:
        return run_fairseq(command, list(getattr(args, "extra", None) or []))

    return _run


def add_subcommands(subparsers) -> None:
    """Add ``fairseq-user-dir`` and the ``fairseq-*`` wrappers to an argparse subparsers object.

    The wrappers take no options of their own (``add_help=False``, so ``-h`` reaches fairseq); the caller
    collects their arguments with ``parse_known_args`` and hands them over as ``args.extra`` (the
    ``accepts_extra`` default tells it to).
    """
    parser = subparsers.add_parser(
        "fairseq-user-dir",
        help="print the fairseq --user-dir of st-contrast's plugins (does not import fairseq)",
        description="Print the directory to pass as fairseq's --user-dir.",
    )
    parser.set_defaults(handler=run_user_dir)
    for command, module in FAIRSEQ_COMMANDS.items():
        parser = subparsers.add_parser(
            command,
            add_help=False,
            help=f"run {command} with st-contrast's plugins (--user-dir added when absent)",
            description=f"Runs {module}.cli_main with all arguments passed through.",
        )
        runner = _make_runner(command)
        parser.set_defaults(handler=runner, accepts_extra=True)
