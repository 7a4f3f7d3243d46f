"""benchmarks/gpu_session.sh, run once per lent GPU: a CPU dry run of every part that no busy machine can fail.

The script is run for real (bash, its parts, its logging and packing) with ``PYTHON`` pointing at a recorder
instead of the interpreter, so every part is exercised without importing torch several times over; each
recorded command is then parsed by the real module's own argument parser, so a renamed module or option fails
here. With ``NO_TIMEOUT=1`` no part runs under ``timeout`` (a fake ``timeout`` on ``PATH`` would show it). The
parts' Python code itself is run on the CPU presets by test_bench_losses.py.
"""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"
ALL_PARTS = ("key", "cached", "profiles", "fairseq", "compiled", "cudagraphs", "all")
RECORDER = """#!/usr/bin/env bash
printf '%s\\x1f' "$@" >>"$STUB_LOG"; printf '\\n' >>"$STUB_LOG"
if [ "$1" = -c ]; then echo "torch (recorded) transformers (recorded) sentence-transformers (recorded)"; fi
"""
FAKE_TIMEOUT = """#!/usr/bin/env bash
echo "$@" >>"$TIMEOUT_LOG"; exit 99
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _run(tmp_path: Path, parts: str, **extra: str) -> tuple[subprocess.CompletedProcess, list[list[str]], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    recorder = _executable(bin_dir / "python-recorder", RECORDER)
    _executable(bin_dir / "timeout", FAKE_TIMEOUT)
    out = tmp_path / "out"
    env = dict(os.environ, PRESET="cpu-smoke", DEVICE="cpu", OUT=str(out), WORK=str(tmp_path / "work"),
               PYTHON=str(recorder), PARTS=parts, KEY_BATCHES="4", CACHED_BATCH="4", PROFILE_CONFIGS="simcse:4",
               CHECK_ROWS="4", FAIRSEQ_WORK_DIR=str(tmp_path / "mclr"),
               FAIRSEQ_ARGS="--device cpu --embed-dim 16 --layers 1 --heads 2 --max-tokens 256 --steps 1 --warmup 0",
               ALL_LOSSES="backbone,simcse", ALL_STEPS="1", STUB_LOG=str(tmp_path / "calls.log"),
               TIMEOUT_LOG=str(tmp_path / "timeout.log"), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               **extra)  # fmt: skip
    done = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True)
    log = tmp_path / "calls.log"
    calls = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls, out


def test_gpu_session_script_dry_run_on_cpu(tmp_path):
    done, calls, out = _run(tmp_path, " ".join(ALL_PARTS), NO_TIMEOUT="1")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    for part in ("key", "cached", "profiles", "fairseq", "compiled", "cudagraphs-check", "cudagraphs", "all"):
        assert f"part {part}: exit 0" in summary, summary[-2000:]
    assert not (tmp_path / "timeout.log").exists(), "NO_TIMEOUT=1 must run every part without a wall-clock limit"
    assert (out / "gpu_session.tar.gz").stat().st_size > 0

    modules = [call[1] for call in calls if call[:1] == ["-m"]]
    assert modules == ["benchmarks.bench_losses", "benchmarks.bench_losses", "benchmarks.profile_losses",
                       "benchmarks.bench_fairseq_speed", "benchmarks.bench_losses",
                       "benchmarks.check_compiled_gradcache", "benchmarks.bench_losses",
                       "benchmarks.bench_losses"]  # fmt: skip
    bench_tables = []
    for call in calls:
        if call[:1] != ["-m"]:
            assert call[0] == "-c", call  # the environment report
            continue
        module = importlib.import_module(call[1])
        args = module.build_parser().parse_args(call[2:])  # the module's real options
        if call[1] == "benchmarks.bench_losses":
            assert args.preset == "cpu-smoke" and args.in_process and args.batch_sizes == "4"
            assert args.output.startswith(str(out / "results")) and args.overwrite
            bench_tables.append((Path(args.output).stem, args.losses, args.steps, args.time_budget))
        elif call[1] == "benchmarks.profile_losses":
            assert args.preset == "cpu-smoke" and args.configs == "simcse:4"
        elif call[1] == "benchmarks.check_compiled_gradcache":
            assert args.device == "cpu" and args.cudagraphs and args.rows == 4
        else:
            assert args.device == "cpu" and args.steps == 1 and args.embed_dim == 16
            assert args.work_dir == str(tmp_path / "mclr")
    by_part = {name: (losses, steps, budget) for name, losses, steps, budget in bench_tables}
    assert set(by_part) == {"key", "cached", "compiled", "cudagraphs", "all"}
    assert "simcse-two-pass" in by_part["key"][0] and "cached-simcse-cudagraphs" in by_part["cudagraphs"][0]
    assert by_part["all"] == ("backbone,simcse", 1, None)  # no time budget without wall-clock limits


def test_gpu_session_limits_every_part_on_the_gpu(tmp_path):
    """Without NO_TIMEOUT the parts keep their limits, so one hung part cannot eat a GPU session."""
    done, calls, out = _run(tmp_path, "key profiles cudagraphs")
    assert done.returncode == 0, done.stderr[-2000:]
    limits = (tmp_path / "timeout.log").read_text().splitlines()
    assert [line.split()[0] for line in limits] == ["150", "80", "150", "200"]
    assert all(" -m benchmarks." in line for line in limits)
    summary = (out / "summary.md").read_text()
    assert "part key: exit 99" in summary  # the fake timeout's status is reported, not hidden
    assert calls and all(call[:1] == ["-c"] for call in calls)  # only the environment report ran unlimited
