"""benchmarks.bench_losses and the pieces it runs: factories, one configuration's step, the table, profiles."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_losses, factories, profile_losses


def test_every_factory_loads_with_a_unique_name():
    names = factories.names()
    for name in ("cached-simcse", "cached-mnrl", "sg-opt", "consert", "declutr", "cil", "cline", "supcon-ood"):
        assert name in names, f"benchmark factory {name!r} is missing"
    assert len(names) == len(set(names))
    with pytest.raises(KeyError, match="unknown benchmark configuration 'no-such-loss'; known: \\['backbone'"):
        factories.get_factory("no-such-loss")


def test_summary_ratios():
    runs = [
        {"name": "backbone", "batch_size": 8, "times": [1.0, 1.0], "peak_mib": 10, "memory": "peak_rss_mib"},
        {"name": "simcse", "batch_size": 8, "times": [1.5, 1.5], "peak_mib": 12, "memory": "peak_rss_mib"},
        {"name": "mnrl", "batch_size": 8, "error": "boom"},
    ]
    rows = {r["name"]: r for r in bench_losses.summarise(runs)}
    assert rows["simcse"]["vs_backbone"] == pytest.approx(1.5)
    assert rows["mnrl"]["error"] == "boom" and "median_step_s" not in rows["mnrl"]


@pytest.mark.slow  # ~10-30 s: the cpu-smoke model's vocabulary, then three configurations
def test_in_process_run_on_cpu_reports_no_memory(bench_workdir):
    """The GPU harness's in-process mode must work (it is what gpu_session.sh uses); on a CPU it times the
    configurations but cannot attribute peak RSS to one of them, and says so instead of reporting a number."""
    runs = [bench_losses.run_in_process("cpu-smoke", name, 4, 1, 1, str(bench_workdir))
            for name in ("simcse", "simcse-two-pass", "cached-simcse")]  # fmt: skip
    for run in runs:
        assert run.get("times") and run["times"][0] > 0, run
        assert run["peak_mib"] is None and "not measured" in run["memory"]
    broken = bench_losses.run_in_process("cpu-smoke", "no-such-loss", 4, 1, 1, str(bench_workdir))
    assert "error" in broken and "KeyError" in broken["error"]
    rows = bench_losses.summarise(runs)
    assert rows[0]["peak_mib"] is None
    table = bench_losses.markdown(
        rows, "cpu-smoke", {"device_name": "cpu", "model": "m", "steps": 1, "passes": 1, "date": "today"}
    )
    for name in ("simcse", "simcse-two-pass", "cached-simcse"):
        assert f"| {name} | 4 |" in table


def test_refuses_to_replace_a_result_of_another_configuration_before_running(tmp_path, capsys):
    existing = tmp_path / "bench_losses_cpu-smoke.json"
    existing.write_text('{"meta": {}, "rows": []}\n')  # a recorded result the harness did not stamp
    with pytest.raises(SystemExit, match="refusing to write: .*the harness did not write"):
        bench_losses.main(["--preset", "cpu-smoke", "--losses", "simcse", "--results-dir", str(tmp_path)])
    assert existing.read_text() == '{"meta": {}, "rows": []}\n'


@pytest.mark.slow  # the cpu-smoke model's vocabulary first, unless another test of the session built it
def test_profile_losses_in_process(tmp_path, bench_workdir):
    out = tmp_path / "profile.json"
    argv = ["--preset", "cpu-smoke", "--configs", "simcse:4", "--steps", "1", "--tables-dir", str(tmp_path / "t"),
            "--workdir", str(bench_workdir), "--output", str(out)]  # fmt: skip
    assert profile_losses.main(argv) == 0
    summary = json.loads(out.read_text())["summaries"]
    assert summary[0]["name"] == "simcse" and summary[0]["wall_ms_per_step"] > 0
    assert "by host (self CPU) time" in (tmp_path / "t" / "profile_simcse_4.txt").read_text()


@pytest.mark.slow
def test_smoke_run_in_fresh_processes_writes_results(tmp_path, bench_workdir, capsys):
    """The default mode: each configuration in its own ``python -m benchmarks.bench_losses --_one`` process, so
    peak RSS is that configuration's; the result file and the table come from the parent."""
    argv = ["--preset", "cpu-smoke", "--losses", "backbone,simcse", "--results-dir", str(tmp_path),
            "--workdir", str(bench_workdir)]  # fmt: skip
    assert bench_losses.main(argv) == 0
    data = json.loads((tmp_path / "bench_losses_cpu-smoke.json").read_text())
    rows = {r["name"]: r for r in data["rows"]}
    assert set(rows) == {"backbone", "simcse"}
    assert all(r["median_step_s"] > 0 and r["peak_mib"] > 0 and r["memory"] == "peak_rss_mib" for r in rows.values())
    assert data["harness"]["config"]["losses"] == ["backbone", "simcse"]
    assert "| simcse | 8 |" in capsys.readouterr().out


@pytest.mark.slow
def test_compiled_gradcache_is_exact_on_cpu(bench_workdir, capsys, monkeypatch):
    """What gpu_session.sh's cudagraphs part runs: the exactness check of GradCache under torch.compile and the
    compiled configuration in the table. Dynamo's ``eager`` backend keeps it to seconds (inductor's code
    generation takes minutes on a busy CPU); the GPU session compiles with inductor."""
    from benchmarks import check_compiled_gradcache

    monkeypatch.setenv("BENCH_COMPILE_BACKEND", "eager")
    argv = ["--device", "cpu", "--cudagraphs", "--rows", "4", "--workdir", str(bench_workdir)]
    assert check_compiled_gradcache.main(argv) == 0
    assert "gradient relative difference" in capsys.readouterr().out
    run = bench_losses.run_in_process("cpu-smoke", "cached-simcse-cudagraphs", 4, 1, 1, str(bench_workdir))
    assert run.get("times"), run
    table = bench_losses.markdown(
        bench_losses.summarise([run]),
        "cpu-smoke",
        {"device_name": "cpu", "model": "m", "steps": 1, "passes": 1, "date": "today"},
    )
    assert "| cached-simcse-cudagraphs | 4 |" in table
