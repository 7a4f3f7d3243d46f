"""Benchmarks of st-contrast: a harness and the experiments that use it (run each as ``python -m benchmarks.NAME``).

* :mod:`benchmarks.harness`: timing (interleaved timer), memory (peak RSS / CUDA), result files
  (``benchmarks/results/<experiment>_<config>.json``, written atomically, refused over another config's result
  without ``--overwrite``), report assembly (``BENCHMARKS.md`` from ``benchmarks/sections/*.md``), presets and
  models.
* :mod:`benchmarks.factories`: one training configuration per loss for :mod:`benchmarks.bench_losses`.
* ``bench_*``: speed; ``compare``: a loss's step time against SimCSE's, interleaved; ``quality_*``: quality
  experiments on real data; ``profile_losses``, ``check_compiled_gradcache``: diagnostics;
  ``make_report``: assembles BENCHMARKS.md; ``gpu_session.sh``: one prepared GPU session.
"""
