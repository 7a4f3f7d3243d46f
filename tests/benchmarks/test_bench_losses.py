from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_losses.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_losses", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_factory_loads_with_a_unique_name():
    factories = _module().load_factories()
    for name in ("cached-simcse", "cached-mnrl", "sg-opt", "consert", "declutr", "cil"):
        assert name in factories, f"benchmark factory {name!r} is missing"


def test_summary_ratios():
    bench = _module()
    runs = [
        {"name": "backbone", "batch_size": 8, "times": [1.0, 1.0], "peak_mib": 10, "memory": "peak_rss_mib"},
        {"name": "simcse", "batch_size": 8, "times": [1.5, 1.5], "peak_mib": 12, "memory": "peak_rss_mib"},
        {"name": "mnrl", "batch_size": 8, "error": "boom"},
    ]
    rows = {r["name"]: r for r in bench.summarise(runs)}
    assert rows["simcse"]["vs_backbone"] == pytest.approx(1.5)
    assert rows["mnrl"]["error"] == "boom" and "median_step_s" not in rows["mnrl"]


@pytest.mark.slow
def test_smoke_run_writes_results(tmp_path):
    output = tmp_path / "out.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--preset",
            "cpu-smoke",
            "--losses",
            "backbone,simcse,cached-simcse",
            "--output",
            str(output),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads(output.read_text())["rows"]}
    assert set(rows) == {"backbone", "simcse", "cached-simcse"}
    assert all(r["median_step_s"] > 0 and r["peak_mib"] > 0 for r in rows.values())
    assert "| simcse | 8 |" in done.stdout


def test_in_process_run_on_cpu_reports_no_memory(tmp_path):
    """The GPU harness's in-process mode must work (it is what gpu_session.sh uses); on a CPU it times the
    configurations but cannot attribute peak RSS to one of them, and says so instead of reporting a number."""
    bench = _module()
    run = bench.run_in_process("cpu-smoke", "simcse", 4, 1, 1, str(tmp_path))
    assert run["times"] and run["times"][0] > 0
    assert run["peak_mib"] is None and "not measured" in run["memory"]
    broken = bench.run_in_process("cpu-smoke", "no-such-loss", 4, 1, 1, str(tmp_path))
    assert "error" in broken and "KeyError" in broken["error"]
    rows = bench.summarise([run])
    assert rows[0]["peak_mib"] is None
    assert "| simcse | 4 |" in bench.markdown(
        rows, "cpu-smoke", {"device_name": "cpu", "model": "m", "steps": 1, "passes": 1, "date": "today"}
    )


@pytest.mark.slow
def test_gpu_session_script_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_session.sh is run once per lent GPU: check it end to end on the CPU presets first."""
    import os

    env = dict(os.environ, PRESET="cpu-smoke", DEVICE="cpu", OUT=str(tmp_path / "out"), WORK=str(tmp_path / "w"),
               PYTHON=sys.executable, PARTS="key profiles cudagraphs", KEY_BATCHES="4", PROFILE_CONFIGS="simcse:4",
               CACHED_BATCH="4")  # fmt: skip
    root = BENCH.parents[1]
    done = subprocess.run(["bash", str(root / "benchmarks" / "gpu_session.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = (tmp_path / "out" / "summary.md").read_text()
    for part in ("key", "profiles", "cudagraphs-check", "cudagraphs"):
        assert f"part {part}: exit 0" in summary, summary[-2000:]
    assert "gradient relative difference" in summary  # the CUDA-graph exactness check printed its verdict
    assert "| cached-simcse-cudagraphs | 4 |" in summary
    assert "| simcse-two-pass | 4 |" in summary
    assert (tmp_path / "out" / "gpu_session.tar.gz").stat().st_size > 0
    profile = json.loads((tmp_path / "out" / "results" / "profiles" / "profile_summary.json").read_text())
    assert profile[0]["name"] == "simcse" and profile[0]["wall_ms_per_step"] > 0
