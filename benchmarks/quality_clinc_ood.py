"""Quality benchmark: does supervised contrastive learning improve OOD intent detection over CE alone?

Runs ``examples/clinc_ood.py``'s experiment for each method on the same CLINC150 subset and merges the
results into ``benchmarks/results/quality_clinc_ood_<N>-intents.json`` (``all-intents`` without
``--num-intents``; several processes may write into it, it is locked while updated), keyed ``<method>/seed<N>``.
Zeng et al. (ACL 2021) claim that adding SupCon to CE improves OOD detection (LOF, GDA, MSP)::

    python -m benchmarks.quality_clinc_ood --methods pretrained ce ce_supcon ce_supcon_rdrop \\
        --num-intents 10 --max-per-intent 20 --epochs 2 --max-ood-test 200

Defaults start from all-MiniLM-L6-v2 (mean pooling), which is already contrastively trained: its
numbers are not comparable with the paper's (BERT-base / GloVe + BiLSTM on all 150 intents).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks.harness.examples import load_example
from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args

CAVEAT = (
    "Encoder: all-MiniLM-L6-v2 (already contrastively trained), mean pooling, CPU; a small CLINC150 subset "
    "and a few optimisation steps. Not comparable with the paper's numbers."
)


def summarize(output: Path) -> str:
    """Markdown table of the runs in ``output``: per method and detector, mean (min-max) over seeds."""
    runs = json.loads(output.read_text())["runs"]
    by_method: dict[str, list[dict]] = {}
    for key, run in runs.items():
        by_method.setdefault(key.split("/")[0], []).append(run)
    order = ["pretrained", "ce", "ce_supcon", "ce_supcon_rdrop", "supcon_then_ce"]
    rows = [
        "| method | seeds | detector | AUROC | FPR95 | AUPR-out | in-domain acc | OOD F1 | train s (each) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(values: list[float]) -> str:
        values = [100 * v for v in values]
        mean = sum(values) / len(values)
        return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ({min(values):.1f}-{max(values):.1f})"

    for method in sorted(by_method, key=lambda m: order.index(m) if m in order else len(order)):
        group = sorted(by_method[method], key=lambda run: run["config"]["seed"])
        seeds = ",".join(str(run["config"]["seed"]) for run in group)
        times = ", ".join(f"{run['train_seconds']:.0f}" for run in group)
        for detector in group[0]["metrics"]:
            metrics = [run["metrics"][detector] for run in group]
            rows.append(
                f"| {method} | {seeds} | {detector} | "
                + " | ".join(
                    cell([m[k] for m in metrics])
                    for k in ("auroc", "fpr95", "aupr_out", "in_domain_accuracy", "ood_f1")
                )
                + f" | {times} |"
            )
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = load_example("clinc_ood").build_parser()
    parser.prog = "python -m benchmarks.quality_clinc_ood"
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--methods", nargs="+", default=["pretrained", "ce", "ce_supcon", "ce_supcon_rdrop"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summarize", action="store_true", help="print the table of the result file and exit")
    add_result_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    subset = f"{args.num_intents}-intents" if args.num_intents else "all-intents"
    target = target_from_args(args, "quality_clinc_ood", subset)
    if args.summarize:
        print(summarize(target.path))
        return 0
    config = _cli_options(args)
    for method in args.methods:
        check_writable(target, {**config, "method": method}, f"{method}/seed{args.seed}")
    example = load_example("clinc_ood")
    import torch

    torch.set_num_threads(args.threads)
    command = command_line("quality_clinc_ood", argv)
    for method in args.methods:
        run_args = argparse.Namespace(**{**vars(args), "method": method})
        started = time.time()
        result = example.run_experiment(run_args)
        result["wall_seconds"] = round(time.time() - started, 1)
        result["machine"] = {
            "cpu_threads": args.threads,
            "platform": platform.platform(),
            "torch": torch.__version__,
            "note": "2 shared CPU cores under heavy load from other jobs: timings are indicative only",
        }
        key = f"{method}/seed{args.seed}"
        target.merge_run(key, result, {**config, "method": method}, command, shared={"caveat": CAVEAT})
        print(f"{key}: train {result['train_seconds']} s, eval {result['eval_seconds']} s")
        print(example.format_table(result), flush=True)
    return 0


def _cli_options(args: argparse.Namespace) -> dict:
    keep = (
        "num_intents",
        "max_per_intent",
        "epochs",
        "max_ood_test",
        "batch_size",
        "lr",
        "head_lr",
        "rdrop_alpha",
        "seed",
        "subset_seed",
        "variant",
        "threads",
    )
    return {k: getattr(args, k) for k in keep if getattr(args, k) is not None}


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
