"""STS-B dev/test of all-MiniLM-L6-v2 (mean pooling) before and after a short DeCLUTR run on WikiText-2.

Runs ``examples/declutr_wikitext.py`` once per configuration (the paper's MLM weight 1, and MLM off) from the
same starting model and the same sampled spans, evaluates the starting model once, and writes everything
to ``benchmarks/results/quality_declutr_steps<N>.json`` after each run (so partial results survive an
interruption).

    OMP_NUM_THREADS=2 python -m benchmarks.quality_declutr --max-steps 25

Caveat: all-MiniLM-L6-v2 is already contrastively trained (over a billion sentence pairs) and its checkpoint
has no MLM head; these numbers show the method runs end to end on real documents, not the paper's gains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.harness.examples import load_example
from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality_declutr",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--max-steps", type=int, default=25)
    parser.add_argument("--min-span", type=int, default=16)
    parser.add_argument("--max-span", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mlm-weights", default="1.0,0.0", help="comma-separated MLM weights, one run each")
    add_result_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = {k: getattr(args, k) for k in ("max_steps", "min_span", "max_span", "batch_size", "mlm_weights")}
    target = target_from_args(args, "quality_declutr", f"steps{args.max_steps}")
    check_writable(target, config)
    import torch

    from st_contrast.evaluation.sts import evaluate_sts

    example = load_example("declutr_wikitext")
    command = command_line("quality_declutr", argv)
    results: dict = {
        "model": "all-MiniLM-L6-v2 (already contrastively trained; no MLM head in its checkpoint), mean pooling",
        "data": "WikiText-2 valid+test articles (unlabeled/wikitext2_{valid,test}.txt)",
        "threads": torch.get_num_threads(),
        "runs": {},
    }
    start = time.time()
    base = example.load_model("minilm", 256)
    results["before"] = {split: round(100 * evaluate_sts(base, split), 2) for split in ("dev", "test")}
    results["before_eval_wall_s"] = round(time.time() - start, 1)
    target.write(results, config, command)
    print(f"before: {results['before']}", flush=True)
    del base
    for weight in [float(w) for w in args.mlm_weights.split(",")]:
        example_args = [
            "--skip-before",
            "--max-steps",
            str(args.max_steps),
            "--samples-per-document",
            "1",
            "--min-span",
            str(args.min_span),
            "--max-span",
            str(args.max_span),
            "--batch-size",
            str(args.batch_size),
            "--mlm-weight",
            str(weight),
        ]
        run_start = time.time()
        run = example.main(example_args)
        results["runs"][f"mlm_weight={weight:g}"] = {
            "after": run["after"],
            "delta": {s: round(run["after"][s] - results["before"][s], 2) for s in ("dev", "test")},
            "train_steps": run["train_steps"],
            "train_wall_s": run["train_wall_s"],
            "run_wall_s": round(time.time() - run_start, 1),
            "train_loss": run["train_loss"],
            "log": run["log"],
            "rows": run["rows"],
            "sampler": run["sampler"],
            "mlm_head_pretrained": run["mlm_head_pretrained"],
            "example_command": "python examples/declutr_wikitext.py " + " ".join(example_args),
        }
        results["total_wall_s"] = round(time.time() - start, 1)
        target.write(results, config, command)
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))
    for name, run in results["runs"].items():
        print(name, run["after"], run["delta"], f"{run['train_steps']} steps in {run['train_wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
