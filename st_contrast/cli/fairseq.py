"""``st-contrast fairseq-*``: fairseq's own commands with st-contrast's plugins, without importing fairseq here.

``st-contrast fairseq-user-dir`` prints the directory of the ``fairseq_plugins`` package, for plain
fairseq commands::

    fairseq-train data-bin --user-dir "$(st-contrast fairseq-user-dir)" --task translation_multilingual_contrastive ...

``st-contrast fairseq-help KIND NAME`` prints the options of one criterion, task, model/arch, optimizer or learning-
rate scheduler with their defaults and help texts (:func:`component_help`), which fairseq 0.12's ``-h`` does not
show for the chosen criterion.

``st-contrast fairseq-train|fairseq-generate|fairseq-validate|fairseq-interactive|fairseq-preprocess ARGS``
run the matching fairseq entry point in a child process with every argument passed through unchanged, plus:

* ``--required-batch-size-multiple 1`` for ``fairseq-generate`` and ``fairseq-validate`` unless given:
  fairseq-fixed 0.12 silently drops a last batch smaller than that multiple (default 8), e.g. documents of a
  SimCLS candidate run (``--diverse-beam-groups``); the multiple only rounds batch shapes for GPU kernels.
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

Multi-process training on CPUs (gloo): fairseq 0.12 spawns one process per *GPU* and its ``torchrun`` support
divides by the number of GPUs, so ``--distributed-world-size N --cpu`` alone fails. ``st-contrast fairseq-train``
fills the launch in when the arguments carry ``--cpu`` and ask for more than one process
(:func:`cpu_distributed_launch`):

* ``--distributed-world-size N`` (no ``--distributed-init-method``): this process starts the N fairseq processes
  itself, each with ``--distributed-no-spawn --distributed-rank R`` and a ``tcp://127.0.0.1:PORT`` init method
  (``--distributed-port``, or a free port), waits for all of them and stops the others when one fails;
* under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set): the one process is given
  ``--distributed-init-method env://`` with torchrun's rank and world size;

both with ``--distributed-backend gloo`` and ``--ddp-backend legacy_ddp`` unless the arguments name their own.
With GPUs (no ``--cpu``) everything goes to fairseq unchanged: it spawns one process per GPU itself.

This module never imports fairseq or torch: the plugin directory is found with
:func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

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


def option_value(args: Sequence[str], name: str) -> str | None:
    """The value of ``name`` (``--name V`` or ``--name=V``) in fairseq arguments; the last one wins."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def has_user_dir(args: Sequence[str]) -> bool:
    """Whether fairseq arguments already name a ``--user-dir`` (``--user-dir X`` or ``--user-dir=X``)."""
    return any(arg == "--user-dir" or arg.startswith("--user-dir=") for arg in args)


#: commands whose every example must be kept: fairseq-fixed 0.12's batch_by_size drops the last batch when it
#: holds fewer than --required-batch-size-multiple (default 8) examples (of 10 examples, 2 are lost with
#: --max-tokens, 1 with --batch-size 1); the multiple only rounds batch shapes for GPU kernels
KEEP_EVERY_EXAMPLE = ("fairseq-generate", "fairseq-validate")


def fairseq_argv(command: str, args: Sequence[str]) -> list[str]:
    """The child process's argv for a wrapper ``command`` (e.g. ``"fairseq-train"``) and its arguments.

    Adds ``--user-dir`` (when absent) and, for ``fairseq-generate`` / ``fairseq-validate``,
    ``--required-batch-size-multiple 1`` (when absent) so that no example is dropped (see ``KEEP_EVERY_EXAMPLE``).
    """
    if command not in FAIRSEQ_COMMANDS:
        raise ValueError(f"unknown fairseq command {command!r}; known: {', '.join(FAIRSEQ_COMMANDS)}")
    args = list(args)
    if not has_user_dir(args):
        args += ["--user-dir", user_dir()]
    if command in KEEP_EVERY_EXAMPLE and option_value(args, "--required-batch-size-multiple") is None:
        args += ["--required-batch-size-multiple", "1"]
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


TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_distributed_launch(args: Sequence[str], env: Mapping[str, str] | None = None) -> list[list[str]] | None:
    """The fairseq-train arguments of each process of a multi-process CPU (gloo) run, or ``None``.

    ``None`` (leave the launch to fairseq) unless ``args`` hold ``--cpu``, no ``--distributed-init-method``
    and ask for more than one process: ``--distributed-world-size N > 1``, or a ``torchrun`` environment
    (``env``, default ``os.environ``) with ``WORLD_SIZE > 1``. Otherwise returns N argument lists (one per
    rank, to start here) or, under torchrun, one (this process's rank); see the module docstring.
    """
    env = os.environ if env is None else env
    args = list(args)
    if "--cpu" not in args or option_value(args, "--distributed-init-method") is not None:
        return None
    given = option_value(args, "--distributed-world-size")
    world_size = _positive_int(given, "--distributed-world-size") if given is not None else None
    torchrun = all(key in env for key in TORCHRUN_ENV)
    if torchrun:
        env_size = _positive_int(env["WORLD_SIZE"], "WORLD_SIZE")
        if world_size is not None and world_size != env_size:
            raise ValueError(
                f"--distributed-world-size {world_size} differs from torchrun's WORLD_SIZE={env_size}; "
                "leave the flag out under torchrun"
            )
        world_size = env_size
    if world_size is None or world_size == 1:
        return None
    if option_value(args, "--distributed-rank") is not None:
        raise ValueError(
            "--distributed-rank is set by st-contrast's CPU launcher (one process per rank); leave it out, or "
            "give --distributed-init-method to launch each process yourself"
        )
    common = [arg for arg in args if arg != "--distributed-no-spawn"]
    common += ["--distributed-no-spawn", "--distributed-world-size", str(world_size)]
    if option_value(args, "--distributed-backend") is None:
        common += ["--distributed-backend", "gloo"]
    if option_value(args, "--ddp-backend") is None:
        common += ["--ddp-backend", "legacy_ddp"]  # fairseq 0.12's c10d path assumes CUDA devices
    if torchrun:
        return [common + ["--distributed-init-method", "env://", "--distributed-rank", str(int(env["RANK"]))]]
    port = option_value(args, "--distributed-port")
    port_number = int(port) if port is not None and int(port) > 0 else free_port()
    init = ["--distributed-init-method", f"tcp://127.0.0.1:{port_number}"]
    return [common + init + ["--distributed-rank", str(rank)] for rank in range(world_size)]


def run_processes(argvs: Sequence[Sequence[str]], env: Mapping[str, str]) -> int:
    """Run the processes of one distributed job and wait for all of them.

    SIGINT and SIGTERM are passed on to every process. When one exits with an error the others are
    terminated (they would wait for it forever in the next collective); the first error status is returned.
    """
    procs = [subprocess.Popen(list(argv), env=dict(env)) for argv in argvs]

    def forward(signum, frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        pending = list(procs)
        while pending:
            for proc in list(pending):
                try:
                    code = proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    continue
                pending.remove(proc)
                if code != 0 and status == 0:
                    status = code if code > 0 else 128 - code
                    for other in pending:
                        other.terminate()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def run_fairseq(command: str, args: Sequence[str], exec_: bool = True) -> int:
    """Run a fairseq command with our plugins.

    On POSIX this process is replaced by fairseq's (``os.execve``) unless ``exec_`` is false; otherwise
    fairseq runs as a child and its exit status is returned. ``fairseq-train`` on CPUs with more than one
    process starts (or, under torchrun, completes) the distributed launch (:func:`cpu_distributed_launch`).
    """
    if importlib.util.find_spec("fairseq") is None:
        raise FileNotFoundError(
            "fairseq is not installed; install it with `pip install --no-deps --no-build-isolation "
            "fairseq-fixed==0.12.3.1` after `pip install st-contrast[fairseq]`"
        )
    if command == "fairseq-train":
        launch = cpu_distributed_launch(args)
        if launch is not None and len(launch) > 1:
            return run_processes([fairseq_argv(command, a) for a in launch], fairseq_env())
        if launch is not None:
            args = launch[0]
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


HELP_KINDS = ("criterion", "task", "arch", "model", "optimizer", "lr_scheduler")


def _component(kind: str, name: str) -> type:
    """The class fairseq registered as ``name`` for ``kind`` (our plugins and fairseq's own)."""
    import fairseq_plugins  # noqa: F401  (registers ours)

    if kind == "task":
        from fairseq.tasks import TASK_REGISTRY as registry
    elif kind == "model":
        from fairseq.models import MODEL_REGISTRY as registry
    elif kind == "arch":
        from fairseq.models import ARCH_MODEL_REGISTRY as registry
    else:
        import fairseq.criterions  # noqa: F401  (fill fairseq's registries)
        import fairseq.optim  # noqa: F401
        import fairseq.optim.lr_scheduler  # noqa: F401
        from fairseq.registry import REGISTRIES

        registry = REGISTRIES[kind]["registry"]
    if name not in registry:
        import difflib

        close = difflib.get_close_matches(name, list(registry), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(registry))}"
        raise ValueError(f"no fairseq {kind} named {name!r}{hint}")
    return registry[name]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown; lines never broken inside a flag such as ``--pretrained-encoder``."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def component_help(kind: str, name: str) -> str:
    """The options (flags, defaults, help texts) of a fairseq component, e.g. ``("criterion", "simcls_ranking")``.

    fairseq 0.12's ``-h`` prints its help before it adds the options of the chosen criterion (and of some tasks
    and models), so ``fairseq-train --criterion X -h`` does not show them; this builds them from the
    component's config dataclass (or its ``add_args``), as fairseq does when it parses them.
    """
    if kind not in HELP_KINDS:
        raise ValueError(f"unknown component kind {kind!r}; choose one of {', '.join(HELP_KINDS)}")
    from fairseq.dataclass.utils import gen_parser_from_dataclass

    cls = _component(kind, name)
    flag = "--" + kind.replace("_", "-")
    parser = argparse.ArgumentParser(
        prog=f"{flag} {name}",
        usage=argparse.SUPPRESS,
        add_help=False,
        formatter_class=_HelpFormatter,
    )
    group = parser.add_argument_group(f"options of {flag} {name}")
    dataclass = getattr(cls, "__dataclass", None)
    if dataclass is not None:
        gen_parser_from_dataclass(group, dataclass())
    elif hasattr(cls, "add_args"):
        cls.add_args(group)
    text = parser.format_help().strip()
    if not group._group_actions:
        text += "\n  (no options of its own)"
    doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    header = f"{flag} {name}: {cls.__module__}.{cls.__qualname__}" + (f"\n{doc}" if doc else "")
    return f"{header}\n\n{text}\n"


def run_help(args: argparse.Namespace) -> int:
    """The ``fairseq-help`` handler: prints :func:`component_help`."""
    sys.stdout.write(component_help(args.kind, args.name))
    return 0


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
    parser = subparsers.add_parser(
        "fairseq-help",
        help="print the options and help texts of a fairseq criterion, task, model or arch (ours included)",
        description="Print the options of one fairseq component with their defaults and help texts. fairseq 0.12's "
        "-h prints its help before adding the chosen criterion's options, so `fairseq-train --criterion NAME -h` "
        "does not show them. Example: st-contrast fairseq-help criterion simcls_ranking",
    )
    parser.add_argument("kind", choices=HELP_KINDS, help="what NAME is")
    parser.add_argument("name", help="the registered name, e.g. simcls_ranking")
    parser.set_defaults(handler=run_help)
    for command, module in FAIRSEQ_COMMANDS.items():
        parser = subparsers.add_parser(
            command,
            add_help=False,
            help=f"run {command} with st-contrast's plugins (--user-dir added when absent)",
            description=f"Runs {module}.cli_main with all arguments passed through.",
        )
        runner = _make_runner(command)
        parser.set_defaults(handler=runner, accepts_extra=True)
