"""benchmarks.harness.results: one naming scheme, atomic writes, refusal over another configuration's result."""

from __future__ import annotations

import json
import pkgutil
import re
from pathlib import Path

import pytest

import benchmarks
from benchmarks.harness.results import (
    RESULTS_DIR,
    ResultExists,
    ResultTarget,
    add_result_arguments,
    check_writable,
    format_number,
    result_path,
    split_result_name,
    target_from_args,
)

ROOT = Path(__file__).resolve().parents[2]
# result files not written by a benchmarks module: `make demo`'s result, copied from outputs/demo by hand
OTHER_EXPERIMENTS = ("demo", "resume_equality")


def experiments() -> list[str]:
    modules = [m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.ispkg]
    return modules + list(OTHER_EXPERIMENTS)


def test_result_path_follows_the_scheme_and_checks_names(tmp_path):
    assert result_path("bench_losses", "cpu-tiny") == RESULTS_DIR / "bench_losses_cpu-tiny.json"
    assert result_path("quality_cline", "mlm0.1-lr1e-5", tmp_path) == tmp_path / "quality_cline_mlm0.1-lr1e-5.json"
    with pytest.raises(ValueError, match="config names use lower-case letters"):
        result_path("bench_losses", "cpu_tiny")
    with pytest.raises(ValueError, match="experiment names are lower-case snake_case"):
        result_path("Bench-Losses", "cpu-tiny")
    assert split_result_name("bench_losses_cpu-tiny-b512.json", experiments()) == ("bench_losses", "cpu-tiny-b512")
    assert split_result_name("quality_simcls_xsum_no-ngram-block.json", experiments()) == (
        "quality_simcls_xsum",
        "no-ngram-block",
    )
    assert split_result_name("rdrop_kl.json", experiments()) is None
    assert format_number(1e-5) == "1e-5" and format_number(0.1) == "0.1" and format_number(2.0) == "2"


def test_every_recorded_result_follows_the_scheme():
    names = sorted(p.name for p in RESULTS_DIR.rglob("*.json"))
    assert names, "no recorded results found"
    stray = [n for n in names if split_result_name(n, experiments()) is None]
    assert not stray, f"result files outside benchmarks/results/<experiment>_<config>.json: {stray}"
    nested = [str(p.relative_to(RESULTS_DIR)) for p in RESULTS_DIR.rglob("*.json") if p.parent != RESULTS_DIR]
    assert not nested, f"JSON results belong directly in benchmarks/results/: {nested}"


def test_every_result_file_cited_in_the_docs_exists():
    docs = [
        ROOT / "BENCHMARKS.md",
        ROOT / "README.md",
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("benchmarks/sections/*.md"),
    ]
    cited: set[str] = set()
    for doc in docs:
        for match in re.finditer(r"benchmarks/results/([A-Za-z0-9_.{},+-]+\.json)", doc.read_text(encoding="utf-8")):
            name = match.group(1)
            brace = re.search(r"\{([^}]*)\}", name)
            options = brace.group(1).split(",") if brace else [""]
            cited.update(name.replace(brace.group(0), o) if brace else name for o in options)
    missing = sorted(n for n in cited if "*" not in n and "<" not in n and not (RESULTS_DIR / n).is_file())
    assert cited and not missing, f"cited but not in benchmarks/results/: {missing}"


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_write_stamps_the_result_and_refuses_another_configuration(tmp_path):
    target = ResultTarget(tmp_path / "bench_x_small.json", "bench_x", "small")
    target.write({"rows": [1, 2]}, {"steps": 2, "losses": ("a", "b")}, "python -m benchmarks.bench_x")
    data = _read(target.path)
    assert data["rows"] == [1, 2]
    assert data["harness"]["config"] == {"steps": 2, "losses": ["a", "b"]}
    assert data["harness"]["experiment"] == "bench_x" and data["harness"]["command"] == "python -m benchmarks.bench_x"
    # the same configuration again: a rerun, replaced
    target.write({"rows": [3]}, {"losses": ["a", "b"], "steps": 2}, "again")
    assert _read(target.path)["rows"] == [3]
    # another configuration: refused, the stored result untouched
    with pytest.raises(ResultExists, match=r"another configuration \(steps: stored 2, now 5\).*--overwrite"):
        target.write({"rows": [4]}, {"steps": 5, "losses": ["a", "b"]}, "other")
    assert _read(target.path)["rows"] == [3]
    forced = ResultTarget(target.path, "bench_x", "small", overwrite=True)
    forced.write({"rows": [4]}, {"steps": 5}, "forced")
    assert _read(target.path)["rows"] == [4] and _read(target.path)["harness"]["config"] == {"steps": 5}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["bench_x_small.json"]


def test_a_result_the_harness_did_not_write_is_never_replaced_silently(tmp_path):
    legacy = tmp_path / "old.json"
    legacy.write_text('{"meta": {}, "rows": []}\n')
    target = ResultTarget(legacy, "bench_x", "old")
    with pytest.raises(ResultExists, match="the harness did not write"):
        target.write({"rows": [1]}, {"steps": 1}, "cmd")
    with pytest.raises(ResultExists, match="the harness did not write"):
        target.merge_run("a", {"x": 1}, {"steps": 1}, "cmd")
    assert legacy.read_text() == '{"meta": {}, "rows": []}\n'


def test_a_failed_write_leaves_the_previous_result_intact(tmp_path):
    target = ResultTarget(tmp_path / "r.json", "bench_x", "r")
    target.write({"rows": [1]}, {"steps": 1}, "cmd")
    with pytest.raises(TypeError):
        target.write({"rows": [object()]}, {"steps": 1}, "cmd")  # not JSON: fails half-way through writing
    assert _read(target.path)["rows"] == [1]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    with pytest.raises(ValueError, match="reserved"):
        target.write({"harness": 1}, {"steps": 1}, "cmd")


def test_merge_run_keeps_other_runs_and_refuses_a_changed_run(tmp_path):
    target = ResultTarget(tmp_path / "quality_x_a.json", "quality_x", "a")
    target.merge_run("paper", {"score": 1}, {"objective": "paper", "lr": 1e-5}, "cmd1", shared={"caveat": "c"})
    target.merge_run("official", {"score": 2}, {"objective": "official", "lr": 1e-5}, "cmd2")
    data = _read(target.path)
    assert set(data["runs"]) == {"paper", "official"} and data["caveat"] == "c"
    assert data["runs"]["paper"]["harness"]["config"] == {"objective": "paper", "lr": 1e-5}
    target.merge_run("paper", {"score": 3}, {"objective": "paper", "lr": 1e-5}, "rerun")  # same config: replaced
    assert _read(target.path)["runs"]["paper"]["score"] == 3
    with pytest.raises(ResultExists, match="run 'paper' of another configuration"):
        target.merge_run("paper", {"score": 4}, {"objective": "paper", "lr": 2e-5}, "cmd")
    with pytest.raises(ResultExists, match="holds separate runs, not one result"):
        ResultTarget(target.path, "quality_x").write({"score": 5}, {"lr": 1}, "cmd")
    forced = ResultTarget(target.path, "quality_x", "a", overwrite=True)
    forced.merge_run("paper", {"score": 4}, {"objective": "paper", "lr": 2e-5}, "cmd")
    forced.merge_run("official", {"score": 5}, {"objective": "official", "lr": 2e-5}, "cmd")
    assert {k: v["score"] for k, v in _read(target.path)["runs"].items()} == {"paper": 4, "official": 5}


def test_command_line_options_choose_the_file_and_refuse_before_measuring(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_result_arguments(parser)
    args = parser.parse_args(["--results-dir", str(tmp_path)])
    target = target_from_args(args, "bench_x", "cpu-tiny")
    assert target.path == tmp_path / "bench_x_cpu-tiny.json" and not target.overwrite
    assert target_from_args(parser.parse_args(["--results-dir", str(tmp_path), "--config-name", "b512"]),
                            "bench_x", "cpu-tiny").path.name == "bench_x_b512.json"  # fmt: skip
    assert target_from_args(parser.parse_args(["--output", str(tmp_path / "o.json")]), "bench_x", "c").path == (
        tmp_path / "o.json"
    )
    target.write({}, {"steps": 1}, "cmd")
    check_writable(target, {"steps": 1})  # same configuration: fine
    with pytest.raises(SystemExit, match="refusing to write: .*another configuration"):
        check_writable(target, {"steps": 2})
