"""benchmarks.harness.timing: the interleaved timer and the stopwatch."""

from __future__ import annotations

import itertools

import pytest

from benchmarks.harness.timing import make_stepper, stopwatch, time_interleaved


def _fake(name: str, calls: list[str], walls):
    walls = iter(walls)

    def step():
        calls.append(name)
        return next(walls), 0.5 * 0.001

    return step


def test_time_interleaved_takes_turns_and_reports_medians_and_ratios():
    calls: list[str] = []
    configs = {
        "ref": _fake("ref", calls, [9.0, 0.010, 0.010, 0.012]),  # first is the warm-up, not counted
        "other": _fake("other", calls, [9.0, 0.020, 0.030, 0.020]),
    }
    result = time_interleaved(configs, steps=3, warmup=1, reference="ref")
    assert calls == ["ref", "other", "ref", "other", "ref", "other", "ref", "other"]
    assert result["median_step_ms"] == {"ref": 10.0, "other": 20.0}
    assert result["ratio_vs_reference"] == {"other": 2.0}
    assert result["median_pair_ratio_vs_reference"] == {"other": 2.0}  # per-round ratios 2, 3, 1.667
    assert result["cpu_ratio_vs_reference"] == {"other": 1.0}
    assert result["step_ms_all"]["other"] == [20.0, 30.0, 20.0]
    assert result["reference"] == "ref" and result["steps_per_config"] == 3 and result["order"] == "fixed"


def test_time_interleaved_alternates_the_order_when_asked():
    calls: list[str] = []
    forever = itertools.repeat(0.001)
    configs = {"a": _fake("a", calls, forever), "b": _fake("b", calls, forever)}
    time_interleaved(configs, steps=4, warmup=0, reference="a", alternate=True)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_time_interleaved_rejects_an_unknown_reference_and_bad_counts():
    configs = {"a": lambda: (0.1, 0.1)}
    with pytest.raises(ValueError, match="reference 'simcse' is not one of the configurations"):
        time_interleaved(configs, steps=1, warmup=0, reference="simcse")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        time_interleaved(configs, steps=0, warmup=0, reference="a")


def test_stopwatch_measures_wall_and_cpu_time():
    with stopwatch() as elapsed:
        sum(i * i for i in range(200_000))
    assert elapsed.wall > 0 and elapsed.cpu > 0


def test_make_stepper_trains_the_loss(tiny_model):
    import torch

    from st_contrast.losses import SimCSELoss

    loss = SimCSELoss(tiny_model)
    features = [tiny_model.preprocess(["a first sentence", "another one here", "and a third"])]
    before = [p.detach().clone() for p in loss.parameters()]
    wall, cpu = make_stepper(loss, features)()
    assert wall > 0 and cpu > 0
    changed = [not torch.equal(a, b.detach()) for a, b in zip(before, loss.parameters())]
    assert any(changed), "one AdamW step must change the parameters"
