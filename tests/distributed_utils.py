"""Run a function in a real process group of CPU processes (gloo), for tests of gathering across devices.

``run_distributed(worker, *args, world_size=2)`` spawns ``world_size`` processes, initialises a gloo group in
each and calls ``worker(rank, world_size, *args)``. ``worker`` must be a module-level function (it is pickled);
results come back through files (e.g. ``torch.save`` into a ``tmp_path`` passed in ``args``). An exception in any
process fails the call. ``ddp_average_`` averages tensors over the group as DistributedDataParallel does with
gradients.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, worker: Callable[..., Any], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        worker(rank, world_size, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_distributed(worker: Callable[..., Any], *args: Any, world_size: int = 2, start_method: str = "fork") -> None:
    """Call ``worker(rank, world_size, *args)`` in ``world_size`` new processes of one gloo group.

    ``start_method="fork"`` (the default, where the platform has it) reuses the test process's imports, which
    saves many seconds per process compared to ``"spawn"``; the parent must not have initialised a process
    group or multi-threaded OpenMP work (the test suite runs torch with one thread).
    """
    if start_method == "fork" and "fork" not in mp.get_all_start_methods():
        start_method = "spawn"
    mp.start_processes(
        _entry, args=(world_size, free_port(), worker, args), nprocs=world_size, join=True, start_method=start_method
    )


def ddp_average_(tensors: Iterable[torch.Tensor]) -> None:
    """Average each tensor over the process group in place (DDP's gradient averaging)."""
    world_size = dist.get_world_size()
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= world_size
