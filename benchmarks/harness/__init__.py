"""What every benchmark shares: timing, memory, result files, the report, presets and models.

* :mod:`~benchmarks.harness.timing`: :func:`time_interleaved` (configurations timed in turns, medians),
  :func:`make_stepper` (one CPU training step), :func:`stopwatch`.
* :mod:`~benchmarks.harness.memory`: peak RSS of this process (Linux) and CUDA's peak allocation.
* :mod:`~benchmarks.harness.results`: the one naming scheme ``benchmarks/results/<experiment>_<config>.json``,
  atomic writes that refuse to replace a result of another configuration without ``--overwrite``.
* :mod:`~benchmarks.harness.report`: BENCHMARKS.md assembled from ``benchmarks/sections/*.md``.
* :mod:`~benchmarks.harness.models`: the loss-benchmark presets, their random BERT, benchmark sentences and the
  ``tiny``/``minilm`` models of the interleaved comparisons.
"""

from benchmarks.harness.results import (
    RESULTS_DIR,
    ResultExists,
    add_result_arguments,
    check_writable,
    command_line,
    merge_run,
    result_path,
    write_result,
)
from benchmarks.harness.timing import make_stepper, stopwatch, time_interleaved

__all__ = [
    "RESULTS_DIR",
    "ResultExists",
    "add_result_arguments",
    "check_writable",
    "command_line",
    "make_stepper",
    "merge_run",
    "result_path",
    "stopwatch",
    "time_interleaved",
    "write_result",
]
