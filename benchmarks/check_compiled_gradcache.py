"""Does GradCache's dropout replay stay exact when the encoder runs under ``torch.compile``?

    OMP_NUM_THREADS=1 python -m benchmarks.check_compiled_gradcache            # CPU, cpu-smoke model
    python -m benchmarks.check_compiled_gradcache --device cuda                # gpu-base model
    python -m benchmarks.check_compiled_gradcache --device cuda --cudagraphs   # mode="reduce-overhead"

Trains one step of :class:`SimCSELoss` (eager) and of :class:`CachedSimCSELoss` whose mini-batch covers the
batch, with the encoder compiled as ``benchmarks/factories/variants.py`` does (``fallback_random=True``),
from the same seed with dropout on, and prints the two losses and the relative difference of the gradients.
With the same random stream in both passes the cached loss equals the eager one up to float rounding; a
compiled dropout that drew its masks differently would show up as a large difference, and the script exits
with status 1 when either difference exceeds ``--tolerance``. With ``--cudagraphs``
both sides are :class:`CachedSimCSELoss` with two mini-batches (eager vs compiled with CUDA graphs), which
also catches a first-pass embedding overwritten by the next mini-batch's graph replay.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from benchmarks.factories.variants import compile_encoder
from benchmarks.harness.models import PRESETS, build_model, default_workdir, sentences_for


def gradients(
    preset: dict, workdir: Path, compiled: bool, rows: int, cudagraphs: bool = False, backend: str | None = None
):
    """One step's loss and gradients: eager, or compiled (``cudagraphs``: both sides use two mini-batches)."""
    from st_contrast.losses import CachedSimCSELoss, SimCSELoss

    torch.manual_seed(0)
    model = build_model(preset, workdir)
    if compiled:
        compile_encoder(model, cudagraphs=cudagraphs, backend=backend)
    if cudagraphs:  # two mini-batches (the first's outputs must survive the second's replay), vs eager GradCache
        loss = CachedSimCSELoss(model, mini_batch_size=rows)
    else:
        loss = CachedSimCSELoss(model, mini_batch_size=2 * rows) if compiled else SimCSELoss(model)
    features = {k: v.to(preset["device"]) if hasattr(v, "to") else v
                for k, v in model.preprocess(sentences_for(rows)).items()}  # fmt: skip
    for _ in range(2):  # warm-up (compilation)
        model.zero_grad()
        loss([dict(features)]).backward()
    torch.manual_seed(123)
    model.zero_grad()
    value = loss([dict(features)])
    value.backward()
    # a compiled graph gives unused parameters (the pooler) zero gradients instead of none: compare the common ones
    grads = {n.replace("_orig_mod.", ""): p.grad.flatten().float() for n, p in model.named_parameters()
             if p.grad is not None}  # fmt: skip
    return float(value.detach()), grads


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.check_compiled_gradcache",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--workdir", default=str(default_workdir()))
    parser.add_argument("--cudagraphs", action="store_true", help='compile with mode="reduce-overhead"')
    parser.add_argument(
        "--backend",
        default=None,
        help="torch.compile backend (default $BENCH_COMPILE_BACKEND or inductor; eager: a quick CPU dry run)",
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="exit 1 when the losses or gradients differ by more (relative)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    preset = dict(PRESETS["cpu-smoke" if args.device == "cpu" else "gpu-base"], device=args.device)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    eager_value, eager = gradients(preset, Path(args.workdir), False, args.rows, args.cudagraphs)
    compiled_value, compiled = gradients(preset, Path(args.workdir), True, args.rows, args.cudagraphs, args.backend)
    common = sorted(set(eager) & set(compiled))
    a, b = torch.cat([eager[n] for n in common]), torch.cat([compiled[n] for n in common])
    difference = ((b - a).norm() / a.norm()).item()
    print(f"loss eager {eager_value:.6f}, compiled+cached {compiled_value:.6f}; "
          f"gradient relative difference {difference:.2e} over {len(common)} tensors")  # fmt: skip
    loss_difference = abs(compiled_value - eager_value) / max(abs(eager_value), 1e-12)
    if difference > args.tolerance or loss_difference > args.tolerance:
        print(f"NOT EXACT: above the tolerance {args.tolerance:g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
