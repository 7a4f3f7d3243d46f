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
        [sys.executable, str(BENCH), "--preset", "cpu-smoke", "--losses", "backbone,simcse,cached-simcse",
         "--output", str(output), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads(output.read_text())["rows"]}
    assert set(rows) == {"backbone", "simcse", "cached-simcse"}
    assert all(r["median_step_s"] > 0 and r["peak_mib"] > 0 for r in rows.values())
    assert "| simcse | 8 |" in done.stdout
