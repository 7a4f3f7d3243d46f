"""R-Drop's symmetric KL over vocabulary-sized log-probabilities: the fused Function vs plain autograd.

    OMP_NUM_THREADS=1 python benchmarks/bench_rdrop_kl.py            # Multi30k-sized: 64 x 30 tokens, 5,925 types

Times forward + backward of ``log_softmax`` followed by the KL of the two halves of a doubled batch, four
ways, interleaved (medians over ``--repeats``): ``log_softmax`` alone (the floor), the KL by autograd
through ``½ Σ (p − q)(log p − log q)`` on the non-pad rows picked with ``index_select`` (the fairseq
criterion's former code), and :func:`st_contrast.losses.functional.paired_symmetric_kl` (one autograd
Function over a view of both halves, closed-form gradient) over the whole tensor at once
(``fused_one_block``, as on a GPU) and in its default CPU blocks of rows (``fused_paired_function``).
Writes ``benchmarks/results/rdrop_kl.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def autograd_kl(lprobs, mask, batch):
    keep = mask.reshape(-1).nonzero().squeeze(1)
    vocab = lprobs.size(-1)
    p = lprobs[:batch].reshape(-1, vocab).index_select(0, keep)
    q = lprobs[batch:].reshape(-1, vocab).index_select(0, keep)
    return (0.5 * ((p.exp() - q.exp()) * (p - q)).sum(-1)).sum()


def fused_kl(lprobs, mask, batch, block_rows=None):
    from st_contrast.losses.functional import paired_symmetric_kl

    return paired_symmetric_kl(lprobs.reshape(2, -1, lprobs.size(-1)), mask.reshape(-1), block_rows=block_rows)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--vocab", type=int, default=5925)
    parser.add_argument("--pad-fraction", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "rdrop_kl.json"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    logits = torch.randn(2 * args.batch, args.tokens, args.vocab)
    mask = torch.rand(args.batch, args.tokens) >= args.pad_fraction
    ways = {
        "log_softmax_only": lambda lp: lp.sum() * 0,
        "autograd_index_select": lambda lp: autograd_kl(lp, mask, args.batch),
        "fused_one_block": lambda lp: fused_kl(lp, mask, args.batch, block_rows=10**9),
        "fused_paired_function": lambda lp: fused_kl(lp, mask, args.batch),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    values = {}
    for _ in range(args.repeats):
        for name, kl in ways.items():
            x = logits.clone().requires_grad_(True)
            start = time.perf_counter()
            value = kl(x.log_softmax(-1))
            value.backward()
            times[name].append(time.perf_counter() - start)
            values[name] = float(value.detach())
    floor = statistics.median(times["log_softmax_only"])
    results = {
        name: {"median_ms": round(1000 * statistics.median(t), 1),
               "kl_ms_over_log_softmax": round(1000 * (statistics.median(t) - floor), 1)}
        for name, t in times.items()
    }  # fmt: skip
    assert abs(values["autograd_index_select"] - values["fused_paired_function"]) <= 1e-3 * abs(
        values["autograd_index_select"]
    ), values
    report = {"benchmark": "rdrop_kl", "threads": torch.get_num_threads(), "setup": vars(args), "results": results,
              "command": "python benchmarks/bench_rdrop_kl.py " + " ".join(argv or sys.argv[1:])}  # fmt: skip
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:24s} {r['median_ms']:8.1f} ms  (KL part {r['kl_ms_over_log_softmax']:7.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
