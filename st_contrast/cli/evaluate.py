"""``st-contrast evaluate``: score a sentence encoder (``evaluate sts``: STS Benchmark Spearman x100)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from st_contrast.cli.train import build_model


def add_subcommands(subparsers) -> None:
    """Add ``evaluate`` (with its task ``sts``) to an argparse subparsers object."""
    parser = subparsers.add_parser("evaluate", help="evaluate a sentence encoder")
    tasks = parser.add_subparsers(dest="task", required=True)
    sts = tasks.add_parser(
        "sts",
        help="STS Benchmark: Spearman x100 of cosine similarity vs gold scores",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sts.add_argument("--model", required=True, help="model folder, or 'minilm'")
    sts.add_argument("--split", default="dev,test", help="comma-separated splits of train, dev, test")
    sts.add_argument("--pooling", help="rebuild the model with this pooling before evaluating")
    sts.add_argument("--max-seq-length", type=int, help="truncate texts to this many tokens (default: the model's)")
    sts.add_argument("--batch-size", type=int, default=64, help="texts encoded at once")
    sts.add_argument("--data-dir", help="data folder (default: $ST_CONTRAST_DATA, then the cache)")
    sts.add_argument("--download", action="store_true", help="download STS-B into the cache if it is not found")
    sts.add_argument("--json", action="store_true", help="print the scores as JSON")
    sts.set_defaults(handler=run_evaluate_sts)


def run_evaluate_sts(args: argparse.Namespace) -> int:
    """The ``evaluate sts`` handler: prints ``STS-B SPLIT: SCORE`` per split, or one JSON object."""
    from st_contrast.evaluation.sts import evaluate_sts

    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "dev", "test")]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; choose from train, dev, test")
    model = build_model(args.model, args.pooling, args.max_seq_length)
    progress = not getattr(args, "quiet", False)
    kwargs: dict[str, Any] = {"data_dir": args.data_dir, "batch_size": args.batch_size, "show_progress_bar": progress}
    if args.download:
        kwargs["download"] = True
    scores = {}
    for split in splits:
        if progress:
            print(f"STS-B {split}: encoding sentence pairs", file=sys.stderr, flush=True)
        scores[split] = evaluate_sts(model, split, **kwargs)
    if args.json:
        print(json.dumps(scores))
    else:
        for split, score in scores.items():
            print(f"STS-B {split}: {score:.2f}")
    return 0
