"""Quality benchmark: does supervised contrastive learning improve OOD intent detection over CE alone?

Runs ``examples/clinc_ood.py``'s experiment for each method on the same CLINC150 subset and merges the
results into one JSON file (``--output``; several processes may write into it, it is locked while
updated). Zeng et al. (ACL 2021) claim that adding SupCon to CE improves OOD detection (LOF, GDA, MSP)::

    python benchmarks/quality_clinc_ood.py --methods pretrained ce ce_supcon ce_supcon_rdrop \\
        --num-intents 10 --max-per-intent 20 --epochs 2 --max-ood-test 200

Defaults start from all-MiniLM-L6-v2 (mean pooling), which is already contrastively trained: its
numbers are not comparable with the paper's (BERT-base / GloVe + BiLSTM on all 150 intents).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "supcon_ood_clinc.json"


def _example_module():
    spec = importlib.util.spec_from_file_location("clinc_ood_example", ROOT / "examples" / "clinc_ood.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _merge(output: Path, key: str, value: dict) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(output.read_text()) if output.exists() else {}
        data.setdefault("runs", {})[key] = value
        data["caveat"] = (
            "Encoder: all-MiniLM-L6-v2 (already contrastively trained), mean pooling, CPU; a small CLINC150 subset "
            "and a few optimisation steps. Not comparable with the paper's numbers."
        )
        output.write_text(json.dumps(data, indent=2) + "\n")
    output.with_suffix(".lock").unlink(missing_ok=True)


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


def main() -> None:
    example = _example_module()
    parser = example.build_parser()
    parser.description = __doc__
    parser.add_argument("--methods", nargs="+", default=["pretrained", "ce", "ce_supcon", "ce_supcon_rdrop"])
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summarize", action="store_true", help="print the table of --output and exit")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(Path(args.output)))
        return
    import torch

    torch.set_num_threads(args.threads)
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
        result["command"] = (
            "python benchmarks/quality_clinc_ood.py "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in _cli_options(args).items())
            + f" --methods {method}"
        )
        key = f"{method}/seed{args.seed}"
        _merge(Path(args.output), key, result)
        print(f"{key}: train {result['train_seconds']} s, eval {result['eval_seconds']} s")
        print(example.format_table(result), flush=True)


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
    main()
