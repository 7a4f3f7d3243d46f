"""``make demo`` ends with the STS suite when ST_CONTRAST_SENTEVAL is set, with STS-B test otherwise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.evaluation.senteval_utils import TableModel, write_senteval

DEMO = Path(__file__).resolve().parents[2] / "examples" / "simcse_unsup_demo.py"


def _demo():
    spec = importlib.util.spec_from_file_location("simcse_unsup_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_suite_when_senteval_is_set(tmp_path, monkeypatch):
    from st_contrast.evaluation import evaluate_sts_suite

    table, _ = write_senteval(tmp_path / "downstream")
    monkeypatch.setenv("ST_CONTRAST_SENTEVAL", str(tmp_path / "downstream"))
    what, printed, values = _demo().final_evaluation(TableModel(table))
    expected = evaluate_sts_suite(TableModel(table), senteval_dir=tmp_path / "downstream")
    assert what.startswith("the STS suite") and printed == expected.table()
    assert values["avg"]["all"] == pytest.approx(expected.average("all"))


def test_sts_b_otherwise(tiny_model, data_dir, monkeypatch):
    from st_contrast.evaluation import evaluate_sts

    monkeypatch.delenv("ST_CONTRAST_SENTEVAL", raising=False)
    what, printed, values = _demo().final_evaluation(tiny_model)
    assert what == "STS-B test" and values["stsb_test"] == pytest.approx(evaluate_sts(tiny_model, "test"), abs=1e-6)
    assert printed.startswith(f"STS-B test {100 * values['stsb_test']:.2f}")
