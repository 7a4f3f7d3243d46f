"""Where a loss's training step spends its time: torch.profiler over a few steps of bench_losses configurations.

    python -m benchmarks.profile_losses --preset gpu-base --configs backbone:64,simcse:64,cached-simcse:1024
    python -m benchmarks.profile_losses --preset cpu-smoke --configs simcse:8 --tables-dir /tmp/profiles

For each ``name:batch`` (names as in :mod:`benchmarks.bench_losses`) it builds the configuration, warms it up,
times ``--steps`` steps without the profiler (wall time per step), then profiles ``--steps`` more and writes
``<tables-dir>/profile_<name>_<batch>.txt`` (the operators sorted by host time and, on a GPU, by device time); the
summaries go to ``benchmarks/results/profile_losses_<preset>.json``. The summary per configuration: wall ms per
step; host (Python + dispatch) ms per step; device busy ms per step (sum of kernel times); kernels launched per
step; and the calls that make the host wait for the device (``aten::item``/``_local_scalar_dense``, stream/device
synchronisation, device-to-host copies). A step whose wall time is near its host time and far above its device time
is bound by launch overhead, not by arithmetic.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

from benchmarks.harness.models import PRESETS, default_workdir
from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args
from benchmarks.harness.steps import prepare

WAITS = ("aten::_local_scalar_dense", "aten::item", "cudaStreamSynchronize", "cudaDeviceSynchronize",
         "cudaMemcpyAsync", "cudaEventSynchronize", "aten::nonzero")  # fmt: skip


def _device_time(event) -> float:
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        value = getattr(event, attr, None)
        if value is not None:
            return float(value)
    return 0.0


def profile_one(preset: str, name: str, batch: int, steps: int, workdir: str, out: Path) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    step, cuda = prepare(preset, name, batch, workdir)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(PRESETS[preset]["warmup"]):
        step()
    sync()
    walls = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        walls.append(time.perf_counter() - start)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
            sync()
    averages = prof.key_averages()
    host_us = sum(e.self_cpu_time_total for e in averages)
    kernels = [e for e in averages if _device_time(e) > 0 and not e.key.startswith(("aten::", "cuda"))]
    device_us = sum(_device_time(e) for e in kernels)
    launches = sum(e.count for e in kernels)
    waits = {e.key: e.count / steps for e in averages if e.key in WAITS}
    text = [
        f"{name} batch {batch}, {steps} profiled steps",
        "",
        "by host (self CPU) time:",
        averages.table(sort_by="self_cpu_time_total", row_limit=30),
    ]
    if cuda:
        text += ["", "by device time:", averages.table(sort_by="self_cuda_time_total", row_limit=30)]
    (out / f"profile_{name}_{batch}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    summary = {
        "name": name,
        "batch_size": batch,
        "wall_ms_per_step": 1000 * sorted(walls)[len(walls) // 2],
        "host_ms_per_step": host_us / 1000 / steps,
        "device_ms_per_step": device_us / 1000 / steps,
        "kernels_per_step": launches / steps,
        "waits_per_step": waits,
    }
    del step, prof
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_losses",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-smoke")
    parser.add_argument("--configs", required=True, help="comma-separated name:batch, e.g. simcse:64,backbone:64")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tables-dir", default="outputs/profiles", help="folder for the profile_*.txt tables")
    parser.add_argument("--workdir", default=str(default_workdir()))
    add_result_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configs = []
    for item in args.configs.split(","):
        name, _, batch = item.strip().partition(":")
        if not name or not batch.isdigit():
            parser.error(f"--configs entries look like name:batch, got {item!r}")
        configs.append((name, int(batch)))
    config = {"preset": args.preset, "configs": [f"{n}:{b}" for n, b in configs], "steps": args.steps}
    target = target_from_args(args, "profile_losses", args.preset)
    check_writable(target, config)
    out = Path(args.tables_dir)
    out.mkdir(parents=True, exist_ok=True)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    summaries = []
    for name, batch in configs:
        try:
            summaries.append(profile_one(args.preset, name, batch, args.steps, args.workdir, out))
        except Exception as error:  # noqa: BLE001 - report and go on with the other configurations
            summaries.append({"name": name, "batch_size": batch, "error": f"{type(error).__name__}: {error}"[:300]})
        row = summaries[-1]
        if "error" in row:
            print(f"{name:>16} {batch:>5}: {row['error']}")
        else:
            print(
                f"{name:>16} {batch:>5}: wall {row['wall_ms_per_step']:8.1f} ms  host {row['host_ms_per_step']:8.1f}"
                f"  device {row['device_ms_per_step']:8.1f}  kernels {row['kernels_per_step']:6.0f}"
                f"  waits {json.dumps(row['waits_per_step'])}"
            )
    payload = {"tables_dir": str(out), "summaries": summaries}
    path = target.write(payload, config, command_line("profile_losses", argv))
    print(f"summaries: {path}")
    return 0 if all("error" not in s for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
