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
from collections.abc import Sequence

from st_contrast.cli import evaluate, fairseq, methods, simcls, train


def build_parser() -> argparse.ArgumentParser:
    """The ``st-contrast`` parser with every subcommand; each sets ``handler`` (and maybe ``accepts_extra``)."""
    parser = argparse.ArgumentParser(prog="st-contrast", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (train, evaluate, methods, fairseq, simcls):
        module.add_subcommands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``st-contrast`` with ``argv`` (default: the process's arguments); returns the exit status.

    A subcommand that ``accepts_extra`` (the ``fairseq-*`` wrappers) gets the arguments it does not know
    as ``args.extra``; for the others they are an error. ``ValueError``, ``FileNotFoundError`` and
    ``KeyError`` from a handler are printed as ``st-contrast COMMAND: error: ...`` with status 2.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if getattr(args, "accepts_extra", False):
        args.extra = extra
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"st-contrast {args.command}: error: {message}", file=sys.stderr)
        return 2
