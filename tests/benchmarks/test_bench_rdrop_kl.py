"""benchmarks.bench_rdrop_kl runs, and its ways agree (it asserts the separate and fused values match)."""

from __future__ import annotations

import json

from benchmarks import bench_rdrop_kl


def test_bench_rdrop_kl_small_run(tmp_path):
    args = ["--batch", "3", "--tokens", "4", "--vocab", "13", "--repeats", "1", "--results-dir", str(tmp_path)]
    assert bench_rdrop_kl.main(args) == 0
    out = tmp_path / "bench_rdrop_kl_b3-t4-v13.json"
    data = json.loads(out.read_text())
    results = data["results"]
    assert set(results) == {"log_softmax_only", "autograd_index_select", "fused_one_block", "fused_paired_function",
                            "ls_ce_then_blocked_kl", "fused_ls_ce_and_kl"}  # fmt: skip
    assert all(r["median_ms"] > 0 for r in results.values())
    assert data["harness"]["config"]["repeats"] == 1
    assert data["harness"]["command"].endswith("python -m benchmarks.bench_rdrop_kl " + " ".join(args))
