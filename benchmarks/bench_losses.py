"""Step time and peak memory of every loss against sentence-transformers' MNRL and the bare backbone.

One "step" is a full training step: forward, backward and an AdamW update over the loss's parameters
(the model and any head the loss owns). Inputs are tokenized once, outside the timed region.

    python benchmarks/bench_losses.py --preset cpu-tiny                      # every loss, batch 64 and 512
    python benchmarks/bench_losses.py --preset gpu-base --time-budget 480    # bert-base sized, bf16, on a GPU
    python benchmarks/bench_losses.py --preset cpu-tiny --losses simcse,mnrl --batch-sizes 64

Each (loss, batch) configuration runs in its own subprocess, so peak memory (CUDA max allocated on a
GPU, peak RSS growth on the CPU) belongs to that configuration alone; passes over all configurations
are repeated and interleaved, and the median step time over all passes is reported, so that load from
other processes spreads over every configuration instead of biasing one. Results go to
``benchmarks/results/bench_losses_<preset>.json`` and a markdown table to stdout (and
``benchmarks/sections/losses_<preset>.md`` with ``--write-section``).

Built-in configurations: ``backbone`` (two encoder passes of the batch, no loss), ``mnrl``
(sentence-transformers' MultipleNegativesRankingLoss, scale 20, on (s, s) pairs), ``simcse``
(SimCSELoss, one column encoded twice in one pass). Every ``benchmarks/factories/<name>.py`` adds its
own through ``FACTORIES = {name: factory}``, where ``factory(model) -> (loss, make_batch)`` and
``make_batch(sentences) -> (features_list, labels)``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": dict(
        device="cpu",
        dtype="float32",
        hidden=128,
        layers=2,
        heads=2,
        vocab=2000,
        seq=32,
        batch_sizes=[64, 512],
        warmup=2,
        steps=5,
        passes=2,
    ),
    "cpu-smoke": dict(
        device="cpu",
        dtype="float32",
        hidden=32,
        layers=1,
        heads=2,
        vocab=500,
        seq=16,
        batch_sizes=[8],
        warmup=1,
        steps=2,
        passes=1,
    ),
    "gpu-base": dict(
        device="cuda",
        dtype="bfloat16",
        hidden=768,
        layers=12,
        heads=12,
        vocab=30522,
        seq=32,
        batch_sizes=[64, 512],
        warmup=3,
        steps=10,
        passes=2,
    ),
}
BUILTIN = ("backbone", "mnrl", "simcse")


# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------


def load_factories() -> dict[str, Callable]:
    factories: dict[str, Callable] = {}
    folder = HERE / "factories"
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"bench_factories_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, factory in getattr(module, "FACTORIES", {}).items():
            if name in BUILTIN or name in factories:
                raise ValueError(f"{path}: benchmark name {name!r} is already taken")
            factories[name] = factory
    return factories


class Backbone:
    """Two encoder passes over the batch and a trivial scalar: the cost floor of a two-view loss."""

    def __init__(self, model):
        import torch

        self.model = model
        self._module = torch.nn.ModuleDict({"model": model})

    def parameters(self):
        return self._module.parameters()

    def __call__(self, features, labels):
        first = self.model(dict(features[0]))["sentence_embedding"]
        second = self.model(dict(features[-1]))["sentence_embedding"]
        return first.float().mean() + second.float().mean()


def builtin_factory(name: str) -> Callable:
    def pairs(model):
        return lambda sentences: ([model.preprocess(sentences), model.preprocess(sentences)], None)

    def backbone(model):
        return Backbone(model), pairs(model)

    def mnrl(model):
        from sentence_transformers.losses import MultipleNegativesRankingLoss

        return MultipleNegativesRankingLoss(model, scale=20.0), pairs(model)

    def simcse(model):
        from st_contrast.losses import SimCSELoss

        return SimCSELoss(model, temperature=0.05), lambda sentences: ([model.preprocess(sentences)], None)

    return {"backbone": backbone, "mnrl": mnrl, "simcse": simcse}[name]


def build_model(preset: dict[str, Any], workdir: Path):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    from st_contrast.testing import build_tiny_transformer, train_wordpiece_vocab, training_corpus

    folder = workdir / f"model-h{preset['hidden']}-l{preset['layers']}"
    if not (folder / "config.json").exists():
        vocab = train_wordpiece_vocab(training_corpus(4000), vocab_size=preset["vocab"])
        build_tiny_transformer(
            folder,
            hidden_size=preset["hidden"],
            num_layers=preset["layers"],
            num_heads=preset["heads"],
            vocab=vocab,
            max_position_embeddings=max(64, preset["seq"]),
        )
    transformer = Transformer(str(folder), max_seq_length=preset["seq"])
    model = SentenceTransformer(modules=[transformer, Pooling(preset["hidden"], "cls")], device=preset["device"])
    model.train()
    torch.manual_seed(0)
    return model


def make_stepper(loss, features, labels=None) -> Callable[[], tuple[float, float]]:
    """One timed CPU training step (forward, backward, AdamW) of ``loss``: returns (wall s, CPU s).

    Used by the factories' own interleaved comparisons (``python benchmarks/factories/<name>.py``).
    """
    import torch

    optimizer = torch.optim.AdamW([p for p in loss.parameters() if p.requires_grad], lr=1e-5)
    loss.train()

    def step() -> tuple[float, float]:
        start, start_cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        value = loss([dict(f) for f in features], labels)
        if isinstance(value, dict):
            value = sum(value.values())
        value.backward()
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - start_cpu

    return step


def time_interleaved(
    configs: dict[str, Callable[[], tuple[float, float]]], steps: int, warmup: int, reference: str
) -> dict[str, Any]:
    """Warm every configuration up, then time ``steps`` rounds interleaved (A, B, C, A, B, C, ...) so that load
    from other processes hits them alike. Medians of wall and process-CPU time per step, and their ratios to
    ``reference`` (stored under the ``*_vs_simcse`` keys the factories' result files use)."""
    for step in configs.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in configs}
    cpu_times: dict[str, list[float]] = {name: [] for name in configs}
    start = time.time()
    for _ in range(steps):
        for name, step in configs.items():
            wall, cpu = step()
            times[name].append(wall)
            cpu_times[name].append(cpu)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_times.items()}
    return {
        "steps_per_config": steps,
        "warmup_per_config": warmup,
        "median_step_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "ratio_vs_simcse": {n: round(v / medians[reference], 3) for n, v in medians.items() if n != reference},
        # process CPU time per step: less sensitive than wall time to other processes sharing the cores
        "median_step_cpu_ms": {name: round(value * 1000, 1) for name, value in cpu_medians.items()},
        "cpu_ratio_vs_simcse": {
            n: round(v / cpu_medians[reference], 3) for n, v in cpu_medians.items() if n != reference
        },
        "step_ms_all": {name: [round(v * 1000, 1) for v in values] for name, values in times.items()},
        "timed_wall_s": round(time.time() - start, 1),
    }


def save_standalone_result(result: dict[str, Any], script: str, argv: list[str] | None, output: str | None,
                           key: str) -> None:  # fmt: skip
    """Stamp a factory's standalone comparison with its command and date, print it, and merge it into
    ``output`` (a JSON file of results keyed by setting) when given."""
    result["command"] = "OMP_NUM_THREADS={} python {} {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), script, " ".join(argv if argv is not None else sys.argv[1:])
    )
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps({k: v for k, v in result.items() if k != "step_ms_all"}, indent=2))
    if output:
        path = Path(output)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing[key] = result
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")


def sentences_for(batch_size: int, seed: int = 0) -> list[str]:
    import random

    from st_contrast.testing import training_corpus

    corpus = [s for s in training_corpus(20000) if len(s.split()) >= 8]
    rng = random.Random(seed)
    return [rng.choice(corpus) for _ in range(batch_size)]


# ---------------------------------------------------------------------------------------------
# One configuration, in its own process
# ---------------------------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def prepare(preset_name: str, name: str, batch_size: int, workdir: str) -> tuple[Callable[[], None], bool]:
    """Model, loss, batch (on the device) and optimiser for one configuration: returns ``(step, is_cuda)``.

    ``step()`` is one full training step; it does not synchronise the device.
    """
    import torch

    preset = PRESETS[preset_name]
    torch.manual_seed(0)
    model = build_model(preset, Path(workdir))
    factory = builtin_factory(name) if name in BUILTIN else load_factories()[name]
    loss, make_batch = factory(model)
    if isinstance(loss, torch.nn.Module):
        loss.to(preset["device"])
        loss.train()
    features, labels = make_batch(sentences_for(batch_size))
    device = torch.device(preset["device"])

    def to_device(value):
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, Mapping):  # dicts and tokenizers' BatchEncoding
            return {k: to_device(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(to_device(v) for v in value)
        return value

    features, labels = to_device(features), to_device(labels)
    params = [p for p in loss.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if preset["dtype"] == "bfloat16"
        else torch.autocast(device_type=device.type, enabled=False)
    )

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            value = loss([dict(f) for f in features], labels)
        if isinstance(value, dict):
            value = sum(value.values())
        value.backward()
        optimizer.step()

    return step, device.type == "cuda"


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
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak_rss()
    base_rss = _rss_mib()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if cuda:
        peak, memory_kind = torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated_mib"
    elif isolated:
        peak, memory_kind = _peak_rss_mib(), "peak_rss_mib"
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


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def run_isolated(preset: str, name: str, batch: int, steps: int, warmup: int, workdir: str, timeout: float):
    command = [sys.executable, __file__, "--_one", json.dumps([preset, name, batch, steps, warmup, workdir])]
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"name": name, "batch_size": batch, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"name": name, "batch_size": batch, "error": " | ".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        for reference in ("backbone", "mnrl", "simcse"):
            ref = next((r for r in rows if r["name"] == reference and r["batch_size"] == row["batch_size"]), None)
            if ref and "median_step_s" in ref and "median_step_s" in row:
                row[f"vs_{reference}"] = row["median_step_s"] / ref["median_step_s"]
    order = {name: i for i, name in enumerate(BUILTIN)}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    parser.add_argument("--losses", help="comma-separated names (default: all built-ins and factories)")
    parser.add_argument("--batch-sizes", help="comma-separated batch sizes (default: the preset's)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--passes", type=int)
    parser.add_argument("--time-budget", type=float, default=None, help="stop starting new runs after this many s")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed for one configuration")
    parser.add_argument("--output", help="JSON results file (default benchmarks/results/bench_losses_<preset>.json)")
    parser.add_argument("--workdir", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "st-contrast-bench"))
    parser.add_argument(
        "--write-section", action="store_true", help="also write benchmarks/sections/losses_<preset>.md"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every configuration in this process (for GPUs: CUDA peak memory is still per configuration; "
        "on the CPU peak memory is then not measured)",
    )
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._one:
        preset, name, batch, steps, warmup, workdir = json.loads(args._one)
        print(json.dumps(run_one(preset, name, batch, steps, warmup, workdir)))
        return 0

    preset = PRESETS[args.preset]
    if preset["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("preset gpu-base needs a CUDA GPU", file=sys.stderr)
            return 2
    names = list(BUILTIN) + sorted(load_factories())
    if args.losses:
        wanted = [n.strip() for n in args.losses.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            print(f"unknown loss(es) {unknown}; known: {names}", file=sys.stderr)
            return 2
        names = wanted
    batches = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else preset["batch_sizes"]
    steps = args.steps or preset["steps"]
    passes = args.passes or preset["passes"]
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
            run = run_in_process if args.in_process else run_isolated
            extra = () if args.in_process else (args.timeout,)
            result = run(args.preset, name, batch, steps, preset["warmup"], args.workdir, *extra)
            runs.append(result)
            status = result.get("error") or f"{statistics.median(result['times']) * 1000:.1f} ms"
            print(f"[pass {pass_index + 1}/{passes}] {name:>16} batch {batch:>4}: {status}", file=sys.stderr)

    rows = summarise(runs)
    meta = {
        "preset": args.preset,
        "date": time.strftime("%Y-%m-%d"),
        "device_name": _device_name(preset["device"]),
        "model": f"random BERT h{preset['hidden']} x{preset['layers']} layers, [CLS] pooling",
        "steps": steps,
        "passes": passes,
        "wall_s": round(time.time() - start, 1),
        "command": "python benchmarks/bench_losses.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    output = Path(args.output or ROOT / "benchmarks" / "results" / f"bench_losses_{args.preset}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"meta": meta, "rows": rows, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    table = markdown(rows, args.preset, meta)
    print(table)
    if args.write_section:
        section = ROOT / "benchmarks" / "sections" / f"losses_{args.preset}.md"
        section.parent.mkdir(parents=True, exist_ok=True)
        section.write_text(table + f"\nCommand: `{meta['command']}` ({meta['wall_s']} s wall).\n", encoding="utf-8")
    return 0 if all("median_step_s" in r for r in rows) else 1


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    import platform

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} threads"


if __name__ == "__main__":
    sys.exit(main())
