"""The ``st-contrast`` command: train, evaluate, list methods, and launch fairseq with our plugins."""

# The parser's description is this module's docstring (``st-contrast --help``). One module per group of
# subcommands, each with ``add_subcommands(subparsers)``: train.py (``train``; also TrainConfig / train for
# scripts), evaluate.py (``evaluate sts``), methods.py (``methods``), fairseq.py (``fairseq-user-dir`` and
# the ``fairseq-*`` wrappers), simcls.py (``simcls-build-data``, ``simcls-rerank``). None of them imports
# fairseq, torch or sentence-transformers at import time: ``st-contrast --help`` and
# ``st-contrast fairseq-user-dir`` stay instant.

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from st_contrast.cli import evaluate, fairseq, methods, simcls, train

# What a handler raises for a mistake in the user's request (a setting, a path, a file's content): printed as
# one line with exit status 2. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, NotADirectoryError, IsADirectoryError, PermissionError)


def _version() -> str:
    from st_contrast import __version__

    return __version__


def _common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """-v / -q / --debug, accepted before and after the subcommand (``suppress``: the subcommands' copies,
    whose unset defaults must not hide a value given before the subcommand)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("-v", "--verbose", action="store_true", default=default or False, help="log at INFO level")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default or False,
        help="warnings and errors only, no progress bars",
    )
    parser.add_argument(
        "--debug", action="store_true", default=default or False, help="show the traceback of an error"
    )


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.append(sub)
                found.extend(_subparsers(sub))
    return found


def build_parser() -> argparse.ArgumentParser:
    """The ``st-contrast`` parser with every subcommand; each sets ``handler`` (and maybe ``accepts_extra``)."""
    parser = argparse.ArgumentParser(prog="st-contrast", description=__doc__)
    parser.add_argument("--version", action="version", version=f"st-contrast {_version()}")
    _common_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (train, evaluate, methods, fairseq, simcls):
        module.add_subcommands(subparsers)
    for sub in _subparsers(parser):
        if sub.get_default("accepts_extra"):
            continue  # the fairseq-* wrappers hand every unknown option to fairseq
        if sub.get_default("handler") is not None:
            _common_options(sub, suppress=True)
        if sub.prog.split()[-1] != "train":  # train writes its config defaults into each help text itself
            sub.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.INFO if args.verbose else logging.WARNING
    if args.quiet:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``st-contrast`` with ``argv`` (default: the process's arguments); returns the exit status.

    A subcommand that ``accepts_extra`` (the ``fairseq-*`` wrappers) gets the arguments it does not know
    as ``args.extra``; for the others they are an error. A user error from a handler (``ValueError``,
    ``FileNotFoundError``, ``KeyError``, ...) is printed as one line, ``st-contrast COMMAND: error: ...``,
    with status 2 (``--debug`` adds the traceback); Ctrl-C outside training is status 130 without one.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(args)
    if getattr(args, "accepts_extra", False):
        args.extra = extra
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        text = " ".join(str(message).split()) or type(error).__name__
        print(f"st-contrast {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(f"st-contrast {args.command}: interrupted", file=sys.stderr)
        return 130
