"""STS-B dev/test of all-MiniLM-L6-v2 (mean pooling) before and after a short DeCLUTR run on WikiText-2.

Runs ``examples/declutr_wikitext.py`` once per configuration (the paper's MLM weight 1, and MLM off) from the
same starting model and the same sampled spans, evaluates the starting model once, and writes everything
to ``benchmarks/results/declutr_quality.json`` after each run (so partial results survive an interruption).

    OMP_NUM_THREADS=2 python benchmarks/quality_declutr.py --max-steps 25

Caveat: all-MiniLM-L6-v2 is already contrastively trained (over a billion sentence pairs) and its checkpoint
has no MLM head; these numbers show the method runs end to end on real documents, not the paper's gains.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=25)
    parser.add_argument("--min-span", type=int, default=16)
    parser.add_argument("--max-span", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mlm-weights", default="1.0,0.0", help="comma-separated MLM weights, one run each")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "declutr_quality.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "examples"))
    import torch
    from declutr_wikitext import load_model
    from declutr_wikitext import main as run_example

    from st_contrast.evaluation.sts import evaluate_sts

    command = "OMP_NUM_THREADS={} python benchmarks/quality_declutr.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), " ".join(argv if argv is not None else sys.argv[1:])
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": "all-MiniLM-L6-v2 (already contrastively trained; no MLM head in its checkpoint), mean pooling",
        "data": "WikiText-2 valid+test articles (unlabeled/wikitext2_{valid,test}.txt)",
        "threads": torch.get_num_threads(),
        "runs": {},
    }
    start = time.time()
    base = load_model("minilm", 256)
    results["before"] = {split: round(100 * evaluate_sts(base, split), 2) for split in ("dev", "test")}
    results["before_eval_wall_s"] = round(time.time() - start, 1)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
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
        run = run_example(example_args)
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
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))
    for name, run in results["runs"].items():
        print(name, run["after"], run["delta"], f"{run['train_steps']} steps in {run['train_wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
