"""Quality benchmark for CLINE: synonym-vs-antonym separation on held-out STS-B sentences, and STS-B test.

Runs ``examples/cline_sts.py`` once per objective (same model, data, steps, learning rate, seed) and merges
each result into ``benchmarks/results/quality_cline.json`` (keyed by objective and weights; earlier entries
are kept), with the command and wall times.

    OMP_NUM_THREADS=2 ST_CONTRAST_DATA=../shared/data python benchmarks/quality_cline.py --steps 150

The default encoder, all-MiniLM-L6-v2, is already contrastively trained: say so beside every number.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quality_cline.json"


def _example():
    spec = importlib.util.spec_from_file_location("cline_sts", ROOT / "examples" / "cline_sts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    example = _example()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objectives", nargs="+", default=["paper", "official"], choices=["paper", "official"])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--mlm-weight", type=float, default=0.1)
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    output = Path(args.output)
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
        result["command"] = "OMP_NUM_THREADS={} python benchmarks/quality_cline.py {}".format(
            os.environ.get("OMP_NUM_THREADS", "?"), " ".join(argv if argv is not None else sys.argv[1:])
        )
        result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        existing = json.loads(output.read_text()) if output.exists() else {}
        existing[f"{objective}-mlm{args.mlm_weight:g}-steps{args.steps}"] = result
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")
        print(json.dumps({k: result[k] for k in ("objective", "before", "after", "sts_test_change")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
