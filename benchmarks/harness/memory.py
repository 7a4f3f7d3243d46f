"""Memory: this process's resident set (Linux ``/proc``) and CUDA's peak allocation.

On the CPU, a configuration's peak memory only means something in a fresh process (``bench_losses`` runs each
one in its own); :func:`reset_peak_rss` moves the high-water mark down to the current RSS after the warm-up.
"""

from __future__ import annotations


def _status_mib(field: str) -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    """Current resident set size of this process in MiB (NaN where ``/proc`` is missing)."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """High-water mark of this process's resident set in MiB (NaN where ``/proc`` is missing)."""
    return _status_mib("VmHWM")


def reset_peak_rss() -> None:
    """Reset the RSS high-water mark to the current RSS (Linux: ``5`` into ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def reset_cuda_peak() -> None:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()


def cuda_peak_mib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20
