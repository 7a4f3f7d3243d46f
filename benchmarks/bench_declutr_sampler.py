"""Throughput of DeCLUTRSpanSampler on 2,048-token documents (target: >= 2,000 documents/s on one core).

Three measurements, repeated and interleaved (A, B, C, A, B, C, ...) with the median reported:

- ``sampler``: :meth:`DeCLUTRSpanSampler.sample_documents` on whitespace-tokenised text (the full cost: finding
  token boundaries, drawing positions, cutting the span strings), paper settings (2 anchors, 2 positives,
  spans 32-512, so 2,048 tokens is exactly the minimum length);
- ``positions only``: :meth:`DeCLUTRSpanSampler.sample_positions` (no text);
- ``naive loop``: a per-document pure-Python sampler (``str.split``, ``random``, ``" ".join``), the shape of a
  straightforward implementation, for context.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_declutr_sampler

Results: ``benchmarks/results/bench_declutr_sampler_<tokens>-tokens.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

import numpy as np

from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args
from benchmarks.harness.timing import stopwatch


def synthetic_documents(count: int, tokens: int, seed: int = 0) -> list[str]:
    """Documents of exactly ``tokens`` whitespace tokens, words of 1-12 letters, with some newlines."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = ["".join(rng.choice(letters, size=rng.integers(1, 13))) for _ in range(5000)]
    documents = []
    for _ in range(count):
        words = [vocabulary[i] for i in rng.integers(0, len(vocabulary), size=tokens)]
        for position in range(40, tokens, 97):
            words[position] += "\n"
        documents.append(" ".join(words))
    return documents


def naive_sample(text: str, rng: random.Random, anchors=2, positives=2, low=32, high=512):
    tokens = text.split()
    n = len(tokens)
    cells = list(range(0, n - high + 1, high))
    out_anchors, out_positives = [], []
    for i in range(anchors):
        length = int(rng.betavariate(4, 2) * (high - low) + low)
        left = anchors - i
        index = rng.choice([0, len(cells) - 1]) if len(cells) // left < left else rng.randrange(len(cells))
        start = rng.randint(cells[index], cells[index] + high - length)
        del cells[max(0, index - 1) : index + 2]
        out_anchors.append(" ".join(tokens[start : start + length]))
        for _ in range(positives):
            p_len = int(rng.betavariate(2, 4) * (high - low) + low)
            p_start = rng.randint(max(0, start - p_len), min(start + length, n - p_len))
            out_positives.append(" ".join(tokens[p_start : p_start + p_len]))
    return out_anchors, out_positives


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_declutr_sampler",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    add_result_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = {"documents": args.documents, "tokens": args.tokens, "repeats": args.repeats}
    target = target_from_args(args, "bench_declutr_sampler", f"{args.tokens}-tokens")
    check_writable(target, config)
    from st_contrast.data.declutr import DeCLUTRSpanSampler

    documents = synthetic_documents(args.documents, args.tokens)
    assert all(len(d.split()) == args.tokens for d in documents[:10])
    sampler = DeCLUTRSpanSampler(seed=0)
    lengths = [args.tokens] * len(documents)
    rng = random.Random(0)

    def run_sampler():
        samples = sampler.sample_documents(documents)
        assert len(samples) == len(documents)

    runs = {
        "sampler": run_sampler,
        "positions only": lambda: sampler.sample_positions(lengths),
        "naive loop": lambda: [naive_sample(d, rng) for d in documents],
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu_rates: dict[str, list[float]] = {name: [] for name in runs}
    start = time.time()
    for _ in range(args.repeats):
        for name, run in runs.items():
            with stopwatch() as elapsed:
                run()
            rates[name].append(len(documents) / elapsed.wall)
            cpu_rates[name].append(len(documents) / max(elapsed.cpu, 1e-9))
    result = {
        "documents": args.documents,
        "tokens_per_document": args.tokens,
        "settings": sampler.get_config_dict(),
        "median_docs_per_s": {name: round(statistics.median(v)) for name, v in rates.items()},
        "median_docs_per_cpu_s": {name: round(statistics.median(v)) for name, v in cpu_rates.items()},
        "all_docs_per_s": {name: [round(x) for x in v] for name, v in rates.items()},
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "wall_s": round(time.time() - start, 1),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "all_docs_per_s"}, indent=2))
    print(f"results: {target.write(result, config, command_line('bench_declutr_sampler', argv))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
