"""Quality benchmark for CLINE: synonym-vs-antonym separation on held-out STS-B sentences, and STS-B test.

Runs ``examples/cline_sts.py`` once per objective (same model, data, steps, learning rate, seed) and merges
each result into ``benchmarks/results/quality_cline_mlm<weight>-lr<lr>[-seed<N>].json`` (keyed by objective,
MLM weight and steps; earlier runs are kept), with the command and wall times.

    OMP_NUM_THREADS=2 ST_CONTRAST_DATA=../shared/data python -m benchmarks.quality_cline --steps 150

The default encoder, all-MiniLM-L6-v2, is already contrastively trained: say so beside every number.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.harness.examples import load_example
from benchmarks.harness.results import (
    add_result_arguments,
    check_writable,
    command_line,
    format_number,
    target_from_args,
)

DEFAULT_SEED = 42


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality_cline", description=__doc__.split("\n")[0])
    parser.add_argument("--objectives", nargs="+", default=["paper", "official"], choices=["paper", "official"])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--mlm-weight", type=float, default=0.1)
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    add_result_arguments(parser)
    return parser


def config_name(args: argparse.Namespace) -> str:
    name = f"mlm{format_number(args.mlm_weight)}-lr{format_number(args.lr)}"
    return name if args.seed == DEFAULT_SEED else f"{name}-seed{args.seed}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    target = target_from_args(args, "quality_cline", config_name(args))
    settings = {k: getattr(args, k) for k in ("steps", "batch_size", "lr", "mlm_weight", "heldout", "seed")}
    keys = {objective: f"{objective}-mlm{args.mlm_weight:g}-steps{args.steps}" for objective in args.objectives}
    for objective, key in keys.items():
        check_writable(target, {"objective": objective, **settings}, key)
    example = load_example("cline_sts")
    command = command_line("quality_cline", argv)
    for objective in args.objectives:
        example_args = [
            "--objective",
            objective,
            "--max-steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--learning-rate",
            str(args.lr),
            "--mlm-weight",
            str(args.mlm_weight),
            "--heldout",
            str(args.heldout),
            "--seed",
            str(args.seed),
            "--output-dir",
            f"outputs/cline-{objective}",
        ]
        result = example.run(example.parser().parse_args(example_args))
        path = target.merge_run(keys[objective], result, {"objective": objective, **settings}, command)
        print(json.dumps({k: result[k] for k in ("objective", "before", "after", "sts_test_change")}, indent=2))
        print(f"results: {path} (run {keys[objective]!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
