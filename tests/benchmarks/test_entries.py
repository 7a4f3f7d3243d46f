"""Every benchmark is a module run as ``python -m benchmarks.NAME`` with a ``build_parser()``; ``compare`` runs."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import benchmarks

MODULES = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.ispkg)


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_module_has_a_parser_and_a_main(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main)
    parser = module.build_parser()
    assert parser.format_help()
    if "--overwrite" in parser.format_help() or name in ("make_report", "check_compiled_gradcache"):
        return
    pytest.fail(f"benchmarks.{name} writes no result through the harness's --config-name/--output/--overwrite")


def test_no_factory_has_its_own_main():
    import benchmarks.factories as factories

    for info in pkgutil.iter_modules(factories.__path__):
        module = importlib.import_module(f"benchmarks.factories.{info.name}")
        assert not hasattr(module, "main") and not hasattr(module, "_standalone"), module.__name__


def test_compare_runs_and_merges_one_run_per_model_and_batch(tmp_path):
    from benchmarks import compare

    argv = ["consert", "--batch-size", "4", "--steps", "2", "--warmup", "0", "--seq", "16",
            "--workdir", str(tmp_path / "w"), "--results-dir", str(tmp_path)]  # fmt: skip
    assert compare.main(argv) == 0
    data = json.loads((tmp_path / "compare_consert.json").read_text())
    run = data["runs"]["tiny-batch4"]
    assert run["reference"] == "simcse" and set(run["median_step_ms"]) == {"simcse", "consert"}
    assert run["order"] == "alternating" and run["ratio_vs_reference"]["consert"] > 0
    assert run["harness"]["config"] == {"method": "consert", "model": "tiny", "batch_size": 4, "steps": 2,
                                        "warmup": 0, "seq": 16}  # fmt: skip
    with pytest.raises(SystemExit, match="refusing to write: .*run 'tiny-batch4' of another configuration"):
        compare.main([*argv[:4], "3", *argv[5:]])  # --steps 3 over the --steps 2 run
