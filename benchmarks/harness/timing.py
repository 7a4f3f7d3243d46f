"""Timing: a wall + CPU stopwatch, one CPU training step, and the interleaved timer every comparison uses.

Interleaving (A, B, C, A, B, C, ...) makes load from other processes fall on every configuration alike, which
is what makes step-time *ratios* measured on a shared machine meaningful; medians drop the outliers. Process
CPU time is reported beside wall time: it is the steadier figure when other jobs share the cores.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Elapsed:
    """Seconds of wall-clock and of this process's CPU time (filled in when the ``with`` block ends)."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Elapsed]:
    """``with stopwatch() as t: ...`` then ``t.wall``, ``t.cpu`` (seconds)."""
    elapsed = Elapsed()
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        yield elapsed
    finally:
        elapsed.wall = time.perf_counter() - start
        elapsed.cpu = time.process_time() - start_cpu


def make_stepper(loss: Any, features: list, labels: Any = None) -> Callable[[], tuple[float, float]]:
    """One timed CPU training step (forward, backward, AdamW over the loss's trainable parameters) of ``loss`` on
    ``features``: returns ``(wall s, CPU s)``. A loss returning a dict of terms is trained on their sum."""
    import torch

    optimizer = torch.optim.AdamW([p for p in loss.parameters() if p.requires_grad], lr=1e-5)
    loss.train()

    def step() -> tuple[float, float]:
        with stopwatch() as elapsed:
            optimizer.zero_grad(set_to_none=True)
            value = loss([dict(f) for f in features], labels)
            if isinstance(value, dict):
                value = sum(value.values())
            value.backward()
            optimizer.step()
        return elapsed.wall, elapsed.cpu

    return step


def time_interleaved(
    configs: dict[str, Callable[[], tuple[float, float]]],
    steps: int,
    warmup: int,
    reference: str,
    alternate: bool = False,
) -> dict[str, Any]:
    """Warm every configuration up, then time ``steps`` rounds of one step each, interleaved.

    ``configs`` maps a name to a step returning ``(wall s, CPU s)`` (see :func:`make_stepper`). With ``alternate``
    every other round runs in reverse order (A, B, B, A, ...), so that no configuration always follows the same
    one. Returns medians per step (ms) of wall and CPU time, their ratios to ``reference``, the median of the
    per-round wall ratios, and every step's wall time.
    """
    if reference not in configs:
        raise ValueError(f"reference {reference!r} is not one of the configurations {sorted(configs)}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    for step in configs.values():
        for _ in range(warmup):
            step()
    names = list(configs)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    start = time.time()
    for round_index in range(steps):
        order = names[::-1] if alternate and round_index % 2 else names
        for name in order:
            wall, cpu = configs[name]()
            times[name].append(wall)
            cpu_times[name].append(cpu)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_times.items()}
    others = [name for name in names if name != reference]
    return {
        "reference": reference,
        "steps_per_config": steps,
        "warmup_per_config": warmup,
        "order": "alternating" if alternate else "fixed",
        "median_step_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "ratio_vs_reference": {n: round(medians[n] / medians[reference], 3) for n in others},
        "median_pair_ratio_vs_reference": {
            n: round(statistics.median(a / b for a, b in zip(times[n], times[reference])), 3) for n in others
        },
        "median_step_cpu_ms": {name: round(value * 1000, 1) for name, value in cpu_medians.items()},
        "cpu_ratio_vs_reference": {n: round(cpu_medians[n] / cpu_medians[reference], 3) for n in others},
        "step_ms_all": {name: [round(v * 1000, 1) for v in values] for name, values in times.items()},
        "timed_wall_s": round(time.time() - start, 1),
    }
