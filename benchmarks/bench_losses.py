"""Step time and peak memory of every loss against sentence-transformers' MNRL and the bare backbone.

One "step" is a full training step: forward, backward and an AdamW update over the loss's parameters
(the model and any head the loss owns). Inputs are tokenized once, outside the timed region.

    python -m benchmarks.bench_losses --preset cpu-tiny                      # every loss, batch 64 and 512
    python -m benchmarks.bench_losses --preset gpu-base --time-budget 480    # bert-base sized, bf16, on a GPU
    python -m benchmarks.bench_losses --preset cpu-tiny --losses simcse,mnrl --batch-sizes 64 \\
        --config-name cpu-tiny-b64

Each (loss, batch) configuration runs in its own subprocess, so peak memory (CUDA max allocated on a
GPU, peak RSS on the CPU) belongs to that configuration alone; passes over all configurations
are repeated and interleaved, and the median step time over all passes is reported, so that load from
other processes spreads over every configuration instead of biasing one. Results go to
``benchmarks/results/bench_losses_<preset>.json`` (``--config-name`` names another setting, e.g.
``cpu-tiny-b512``) and a markdown table to stdout (and ``benchmarks/sections/losses_<preset>.md`` with
``--write-section``).

The configurations (``backbone``, ``mnrl``, ``simcse`` and every factory's) are those of
:mod:`benchmarks.factories`; the presets those of :mod:`benchmarks.harness.models`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import factories
from benchmarks.harness import memory
from benchmarks.harness.models import PRESETS, build_model, default_workdir, device_name
from benchmarks.harness.report import write_section
from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args
from benchmarks.harness.steps import prepare

ROOT = Path(__file__).resolve().parents[1]


def run_one(
    preset_name: str, name: str, batch_size: int, steps: int, warmup: int, workdir: str, isolated: bool = True
) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` ones. On the CPU, peak memory is the process's peak RSS
    and only means something in a fresh process (``isolated``); on a GPU it is CUDA's max allocated."""
    import torch

    step, cuda = prepare(preset_name, name, batch_size, workdir)
    for _ in range(warmup):
        step()
    if cuda:
        memory.reset_cuda_peak()
    else:
        memory.reset_peak_rss()
    base_rss = memory.rss_mib()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if cuda:
        peak, memory_kind = memory.cuda_peak_mib(), "cuda_max_allocated_mib"
    elif isolated:
        peak, memory_kind = memory.peak_rss_mib(), "peak_rss_mib"
    else:
        peak, memory_kind = None, "not measured (CPU run without a fresh process)"
    return {
        "name": name,
        "batch_size": batch_size,
        "times": times,
        "peak_mib": None if peak is None else round(peak, 1),
        "memory": memory_kind,
        "base_rss_mib": round(base_rss, 1),
    }


def run_in_process(preset: str, name: str, batch: int, steps: int, warmup: int, workdir: str) -> dict[str, Any]:
    """:func:`run_one` in this process, for GPUs, where start-up per configuration would cost more than the
    timing: CUDA's peak-memory counter is reset per configuration and everything is freed afterwards."""
    import gc

    import torch

    try:
        return run_one(preset, name, batch, steps, warmup, workdir, isolated=False)
    except Exception as error:  # noqa: BLE001 - one failing configuration must not stop the table
        return {"name": name, "batch_size": batch, "error": f"{type(error).__name__}: {error}"[:300]}
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_isolated(preset: str, name: str, batch: int, steps: int, warmup: int, workdir: str, timeout: float | None):
    """:func:`run_one` in a fresh ``python -m benchmarks.bench_losses --_one ...`` process."""
    command = [sys.executable, "-m", "benchmarks.bench_losses", "--_one",
               json.dumps([preset, name, batch, steps, warmup, workdir])]  # fmt: skip
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "batch_size": batch, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"name": name, "batch_size": batch, "error": " | ".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (loss, batch): median step time over every pass, peak memory, ratios to the references."""
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    for run in runs:
        key = (run["name"], run["batch_size"])
        entry = by_key.setdefault(key, {"times": [], "peaks": []})
        if "error" in run:
            entry["error"] = run["error"]
            continue
        entry["times"].extend(run["times"])
        if run.get("peak_mib") is not None:
            entry["peaks"].append(run["peak_mib"])
        entry["memory"] = run["memory"]
    rows = []
    for (name, batch), entry in by_key.items():
        row = {"name": name, "batch_size": batch}
        if entry["times"]:
            row["median_step_s"] = statistics.median(entry["times"])
            row["peak_mib"] = max(entry["peaks"]) if entry["peaks"] else None
            row["memory"] = entry["memory"]
            row["samples"] = len(entry["times"])
        if "error" in entry:
            row["error"] = entry["error"]
        rows.append(row)
    for row in rows:
        for reference in factories.BUILTIN:
            ref = next((r for r in rows if r["name"] == reference and r["batch_size"] == row["batch_size"]), None)
            if ref and "median_step_s" in ref and "median_step_s" in row:
                row[f"vs_{reference}"] = row["median_step_s"] / ref["median_step_s"]
    order = {name: i for i, name in enumerate(factories.BUILTIN)}
    rows.sort(key=lambda r: (r["batch_size"], order.get(r["name"], len(order)), r["name"]))
    return rows


def markdown(rows: list[dict[str, Any]], preset: str, meta: dict[str, Any]) -> str:
    memory_label = "peak RSS MiB" if PRESETS[preset]["device"] == "cpu" else "peak CUDA MiB"
    lines = [
        f"Preset `{preset}` ({meta['device_name']}; {meta['model']}; seq {PRESETS[preset]['seq']}; "
        f"{PRESETS[preset]['dtype']}), median of {meta['steps']} steps x {meta['passes']} passes, {meta['date']}.",
        "",
        f"| loss | batch | step (ms) | sentences/s | vs backbone | vs ST MNRL | vs SimCSELoss | {memory_label} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(value, spec):
        return format(value, spec) if isinstance(value, (int, float)) else "-"

    for row in rows:
        if "median_step_s" not in row:
            lines.append(f"| {row['name']} | {row['batch_size']} | error: {row.get('error', '?')[:80]} | | | | | |")
            continue
        lines.append(
            f"| {row['name']} | {row['batch_size']} | {row['median_step_s'] * 1000:.1f} | "
            f"{row['batch_size'] / row['median_step_s']:.0f} | "
            f"{fmt(row.get('vs_backbone'), '.2f')}x | {fmt(row.get('vs_mnrl'), '.2f')}x | "
            f"{fmt(row.get('vs_simcse'), '.2f')}x | {fmt(row.get('peak_mib'), '.0f')} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_losses",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    parser.add_argument("--losses", help="comma-separated names (default: all built-ins and factories)")
    parser.add_argument("--batch-sizes", help="comma-separated batch sizes (default: the preset's)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--passes", type=int)
    parser.add_argument("--time-budget", type=float, default=None, help="stop starting new runs after this many s")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds allowed for one configuration's process (0: no limit)"
    )
    parser.add_argument("--workdir", default=str(default_workdir()))
    parser.add_argument(
        "--write-section", action="store_true", help="also write benchmarks/sections/losses_<preset>.md"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every configuration in this process (for GPUs: CUDA peak memory is still per configuration; "
        "on the CPU peak memory is then not measured)",
    )
    add_result_arguments(parser)
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args._one:
        preset, name, batch, steps, warmup, workdir = json.loads(args._one)
        print(json.dumps(run_one(preset, name, batch, steps, warmup, workdir)))
        return 0

    preset = PRESETS[args.preset]
    names = factories.names()
    if args.losses:
        wanted = [n.strip() for n in args.losses.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown loss(es) {unknown}; known: {names}")
        names = wanted
    batches = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else preset["batch_sizes"]
    steps = args.steps or preset["steps"]
    passes = args.passes or preset["passes"]
    config = {"preset": args.preset, "losses": names, "batch_sizes": batches, "steps": steps, "passes": passes,
              "warmup": preset["warmup"], "in_process": args.in_process, "time_budget": args.time_budget}  # fmt: skip
    target = target_from_args(args, "bench_losses", args.preset)
    check_writable(target, config)
    if preset["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("preset gpu-base needs a CUDA GPU", file=sys.stderr)
            return 2
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    build_model(preset, Path(args.workdir))  # build (and cache) the model once, outside every timed process

    start = time.time()
    runs = []
    for pass_index in range(passes):
        order = [(n, b) for b in batches for n in names]
        if pass_index % 2:
            order.reverse()
        for name, batch in order:
            if args.time_budget and time.time() - start > args.time_budget:
                print(f"time budget of {args.time_budget:.0f} s reached; stopping", file=sys.stderr)
                break
            if args.in_process:
                result = run_in_process(args.preset, name, batch, steps, preset["warmup"], args.workdir)
            else:
                result = run_isolated(
                    args.preset, name, batch, steps, preset["warmup"], args.workdir, args.timeout or None
                )
            runs.append(result)
            status = result.get("error") or f"{statistics.median(result['times']) * 1000:.1f} ms"
            print(f"[pass {pass_index + 1}/{passes}] {name:>16} batch {batch:>4}: {status}", file=sys.stderr)

    rows = summarise(runs)
    meta = {
        "preset": args.preset,
        "date": time.strftime("%Y-%m-%d"),
        "device_name": device_name(preset["device"]),
        "model": f"random BERT h{preset['hidden']} x{preset['layers']} layers, [CLS] pooling",
        "steps": steps,
        "passes": passes,
        "wall_s": round(time.time() - start, 1),
    }
    command = command_line("bench_losses", argv)
    target.write({"meta": meta, "rows": rows, "runs": runs}, config, command)
    table = markdown(rows, args.preset, meta)
    print(table)
    if args.write_section:
        write_section(f"losses_{args.preset}", table + f"\nCommand: `{command}` ({meta['wall_s']} s wall).\n")
    return 0 if all("median_step_s" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
