"""``st-contrast methods``: the losses found through the ``st_contrast.losses`` entry points."""

from __future__ import annotations

import argparse
import json


def add_subcommands(subparsers) -> None:
    """Add ``methods`` to an argparse subparsers object."""
    parser = subparsers.add_parser("methods", help="list the losses found through the st_contrast.losses entry points")
    parser.add_argument("--json", action="store_true", help="print the methods as one JSON object")
    parser.set_defaults(handler=run_methods)


def run_methods(args: argparse.Namespace) -> int:
    """The ``methods`` handler: one line per method (name, target, distribution), or JSON; 1 when none is found."""
    from st_contrast.registry import available_methods

    methods = available_methods()
    if args.json:
        print(json.dumps({name: {"target": m.target, "distribution": m.distribution} for name, m in methods.items()}))
        return 0
    if not methods:
        print("no methods found: is st-contrast installed (pip install -e .)?")
        return 1
    width = max(len(name) for name in methods)
    for name, entry in methods.items():
        print(f"{name:<{width}}  {entry.target}  ({entry.distribution or 'unknown distribution'})")
    return 0
