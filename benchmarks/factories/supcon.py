"""SupCon, SupCon-OOD and R-Drop for ``benchmarks/bench_losses.py``.

``make_batch`` gives the harness's sentences one column and integer labels cycling over 8 classes.

* ``supcon``: :class:`SupConLoss` with ``dropout_views=True`` (one forward over the doubled batch, as SimCSE).
* ``supcon-ood-ce``: :class:`SupConOODLoss` with ``scl_weight=0``: the cross-entropy baseline (one pass).
* ``supcon-ood``: CE + SupCon on clean and FGM-adversarial views: a clean pass, the gradient with
  respect to the word embeddings, and an adversarial pass (about 3 forward-backward equivalents).
* ``supcon-ood-rdrop``: the same with ``rdrop_alpha=1`` (the clean pass covers the doubled batch).
* ``rdrop``: :class:`RDropLoss` (one forward over the doubled batch).
* ``cached-supcon``: :class:`CachedSupConLoss` with ``dropout_views=True``, mini-batch 128.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NUM_LABELS = 8


def _labels(n: int):
    import torch

    return torch.arange(n) % NUM_LABELS


def _factory(kind: str, **kwargs: Any) -> Callable:
    def make(model) -> tuple[Any, Callable]:
        from st_contrast.losses import CachedSupConLoss, RDropLoss, SupConLoss, SupConOODLoss

        if kind == "supcon":
            loss = SupConLoss(model, dropout_views=True, **kwargs)
        elif kind == "cached-supcon":
            loss = CachedSupConLoss(model, dropout_views=True, mini_batch_size=128, **kwargs)
        elif kind == "ood":
            loss = SupConOODLoss(model, num_labels=NUM_LABELS, **kwargs)
        else:
            loss = RDropLoss(model, num_labels=NUM_LABELS, **kwargs)

        def make_batch(sentences: list[str]):
            return [model.preprocess(sentences)], _labels(len(sentences))

        return loss, make_batch

    return make


FACTORIES = {
    "supcon": _factory("supcon"),
    "cached-supcon": _factory("cached-supcon"),
    "supcon-ood-ce": _factory("ood", scl_weight=0.0),
    "supcon-ood": _factory("ood"),
    "supcon-ood-rdrop": _factory("ood", rdrop_alpha=1.0),
    "rdrop": _factory("rdrop", alpha=1.0),
}


# ---------------------------------------------------------------------------------------------
# Standalone: interleaved step times against cross-entropy alone
# ---------------------------------------------------------------------------------------------


def _standalone() -> None:
    """Time full training steps (forward, backward, AdamW) of each factory, interleaved, and report medians::

    OMP_NUM_THREADS=1 python benchmarks/factories/supcon.py --model tiny --batch-size 32 --rounds 7 \\
        --output benchmarks/results/supcon_ood_speed.json
    """
    import argparse
    import copy
    import json
    import platform
    import statistics
    import sys
    import tempfile
    import time
    from pathlib import Path

    import torch

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    parser = argparse.ArgumentParser(description=_standalone.__doc__)
    parser.add_argument("--model", default="tiny", help="'tiny' (hidden 128, 2 layers), 'minilm' or a path")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model == "tiny":
        from st_contrast.testing import build_tiny_sentence_transformer

        base = build_tiny_sentence_transformer(tempfile.mkdtemp(), pooling="mean", hidden_size=128, num_layers=2)
    else:
        from st_contrast.cli.train import build_model

        base = build_model(args.model, pooling="mean", max_seq_length=32)
    from st_contrast.testing import training_corpus

    sentences = training_corpus(limit=args.batch_size + 40)[20 : 20 + args.batch_size]
    setups = {}
    for name, make in FACTORIES.items():
        model = copy.deepcopy(base)
        model.train()
        loss, make_batch = make(model)
        features, labels = make_batch(sentences)
        optimizer = torch.optim.AdamW([p for p in loss.parameters() if p.requires_grad], lr=1e-5)
        setups[name] = (loss, features, labels, optimizer)

    def step(name: str) -> float:
        loss, features, labels, optimizer = setups[name]
        started = time.perf_counter()
        out = loss([dict(f) for f in features], labels)
        total = torch.stack(list(out.values())).sum() if isinstance(out, dict) else out
        total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {name: [] for name in setups}
    for round_index in range(args.warmup + args.rounds):
        for name in setups:  # interleaved: A, B, C, ..., A, B, C, ...
            elapsed = step(name)
            if round_index >= args.warmup:
                times[name].append(elapsed)
    baseline = statistics.median(times["supcon-ood-ce"])
    rows = {
        name: {"median_ms": 1000 * statistics.median(t), "vs_ce": statistics.median(t) / baseline, "steps": len(t)}
        for name, t in times.items()
    }
    print("| loss | median step (ms) | x CE (supcon-ood-ce) |\n|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['median_ms']:.1f} | {row['vs_ce']:.2f} |")
    if args.output:
        meta = {
            "model": args.model,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "threads": args.threads,
            "platform": platform.platform(),
            "torch": torch.__version__,
            "note": "CPU shared with other jobs; steps interleaved, medians reported",
        }
        Path(args.output).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    _standalone()
