"""Assemble BENCHMARKS.md from benchmarks/sections/*.md (see :mod:`benchmarks.harness.report`).

python -m benchmarks.make_report            # rewrite BENCHMARKS.md
python -m benchmarks.make_report --check    # exit 1 if BENCHMARKS.md differs from its sections
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.harness.report import REPORT_PATH, is_up_to_date, write_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that BENCHMARKS.md is up to date")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        if is_up_to_date():
            print(f"{REPORT_PATH.name} is up to date")
            return 0
        print(f"{REPORT_PATH.name} differs from benchmarks/sections: run python -m benchmarks.make_report")
        return 1
    names = write_report()
    print(f"{REPORT_PATH.name}: {len(names)} sections ({', '.join(names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
