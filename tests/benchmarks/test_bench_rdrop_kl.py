"""benchmarks/bench_rdrop_kl.py runs, and its ways agree (it asserts the separate and fused values match)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_rdrop_kl.py"


def test_bench_rdrop_kl_small_run(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_rdrop_kl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "rdrop_kl.json"
    args = ["--batch", "3", "--tokens", "4", "--vocab", "13", "--repeats", "1", "--output", str(out)]
    assert module.main(args) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"log_softmax_only", "autograd_index_select", "fused_one_block", "fused_paired_function",
                            "ls_ce_then_blocked_kl", "fused_ls_ce_and_kl"}  # fmt: skip
    assert all(r["median_ms"] > 0 for r in results.values())
