"""R-Drop's symmetric KL over vocabulary-sized log-probabilities: the fused Function vs plain autograd.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_rdrop_kl            # Multi30k-sized: 64 x 30 tokens, 5,925 types

Times, interleaved (medians over ``--repeats``), forward + backward of ``log_softmax`` followed by:
nothing (the floor); the KL of the two halves of a doubled batch by autograd through
``½ Σ (p − q)(log p − log q)`` on the non-pad rows picked with ``index_select`` (the fairseq criterion's
former code); :func:`st_contrast.losses.functional.paired_symmetric_kl` (one autograd Function over a view
of both halves, closed-form gradient) over the whole tensor at once (``fused_one_block``, as on a GPU) and
in its default CPU blocks of rows (``fused_paired_function``); and R-Drop's whole token-level objective
(label-smoothed CE on both halves + α·KL) as separate terms (``ls_ce_then_blocked_kl``: the CE by autograd,
the blocked KL) and fused (``fused_ls_ce_and_kl``:
:func:`~st_contrast.losses.functional.paired_label_smoothed_nll_and_kl`). Writes
``benchmarks/results/bench_rdrop_kl_b<batch>-t<tokens>-v<vocab>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args


def autograd_kl(lprobs, mask, batch):
    keep = mask.reshape(-1).nonzero().squeeze(1)
    vocab = lprobs.size(-1)
    p = lprobs[:batch].reshape(-1, vocab).index_select(0, keep)
    q = lprobs[batch:].reshape(-1, vocab).index_select(0, keep)
    return (0.5 * ((p.exp() - q.exp()) * (p - q)).sum(-1)).sum()


def fused_kl(lprobs, mask, batch, block_rows=None):
    from st_contrast.losses.functional import paired_symmetric_kl

    return paired_symmetric_kl(lprobs.reshape(2, -1, lprobs.size(-1)), mask.reshape(-1), block_rows=block_rows)


PAD, EPSILON, ALPHA = 1, 0.1, 5.0


def ls_ce_then_kl(lprobs, target, mask, batch):
    """R-Drop's objective (paper form, alpha 5) as separate terms: label-smoothed NLL on both copies, by the
    formula with autograd (as fairseq's ``label_smoothed_nll_loss`` computes it), plus the blocked KL."""
    import torch

    vocab = lprobs.size(-1)
    flat, both = lprobs.reshape(-1, vocab), torch.cat([target, target]).reshape(-1)
    keep = both.ne(PAD)
    nll = -flat.gather(1, both.unsqueeze(1)).squeeze(1).masked_fill(~keep, 0.0).sum()
    smooth = -flat.sum(-1).masked_fill(~keep, 0.0).sum()
    eps_i = EPSILON / (vocab - 1)
    ce = (1.0 - EPSILON - eps_i) * nll + eps_i * smooth
    return 0.5 * ce + ALPHA * fused_kl(lprobs, mask, batch)


def fused_ce_and_kl(lprobs, target):
    """The same objective through ``paired_label_smoothed_nll_and_kl`` (what the fairseq criterion uses)."""
    from st_contrast.losses.functional import paired_label_smoothed_nll_and_kl

    ce, _, kl = paired_label_smoothed_nll_and_kl(
        lprobs.reshape(2, -1, lprobs.size(-1)), target.reshape(-1), EPSILON, ignore_index=PAD
    )
    return 0.5 * ce + ALPHA * kl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_rdrop_kl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--vocab", type=int, default=5925)
    parser.add_argument("--pad-fraction", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=7)
    add_result_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    setup = {k: getattr(args, k) for k in ("batch", "tokens", "vocab", "pad_fraction", "repeats")}
    result_target = target_from_args(args, "bench_rdrop_kl", f"b{args.batch}-t{args.tokens}-v{args.vocab}")
    check_writable(result_target, setup)
    torch.manual_seed(0)
    logits = torch.randn(2 * args.batch, args.tokens, args.vocab)
    mask = torch.rand(args.batch, args.tokens) >= args.pad_fraction
    target = torch.randint(PAD + 3, args.vocab, (args.batch, args.tokens)).masked_fill(~mask, PAD)
    ways = {
        "log_softmax_only": lambda lp: lp.sum() * 0,
        "autograd_index_select": lambda lp: autograd_kl(lp, mask, args.batch),
        "fused_one_block": lambda lp: fused_kl(lp, mask, args.batch, block_rows=10**9),
        "fused_paired_function": lambda lp: fused_kl(lp, mask, args.batch),
        "ls_ce_then_blocked_kl": lambda lp: ls_ce_then_kl(lp, target, mask, args.batch),
        "fused_ls_ce_and_kl": lambda lp: fused_ce_and_kl(lp, target),
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
               "ms_beyond_log_softmax": round(1000 * (statistics.median(t) - floor), 1)}
        for name, t in times.items()
    }  # fmt: skip
    for a, b in (("autograd_index_select", "fused_paired_function"), ("ls_ce_then_blocked_kl", "fused_ls_ce_and_kl")):
        assert abs(values[a] - values[b]) <= 1e-3 * abs(values[a]), values
    report = {"benchmark": "rdrop_kl", "threads": torch.get_num_threads(), "setup": setup, "results": results}
    path = result_target.write(report, setup, command_line("bench_rdrop_kl", argv))
    for name, r in results.items():
        print(f"{name:24s} {r['median_ms']:8.1f} ms  (beyond log-softmax {r['ms_beyond_log_softmax']:7.1f} ms)")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
