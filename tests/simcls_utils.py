"""Test helpers for SimCLS: tiny synthetic summarisation data (no network, a few KB) and the fairseq side's
task, scorer and criterion built on it in memory (fairseq imported only by those).

Documents are random words from a 30-word vocabulary; the reference is a few of the document's
sentences; candidates keep a decreasing share of the reference's words, so ROUGE orders them.
"""

from __future__ import annotations

import random

WORDS = [f"w{i}" for i in range(30)]


def tiny_texts(n_docs: int, n_candidates: int = 5, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for d in range(n_docs):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 7))) + " ." for _ in range(5)]
        reference = sentences[:2]
        candidates = []
        for k in range(n_candidates):
            words = " ".join(reference).split()
            keep = max(1, int(len(words) * (1 - k / n_candidates)))
            noise = [rng.choice(WORDS) for _ in range(len(words) - keep)]
            candidates.append(" ".join(words[:keep] + noise))
        rng.shuffle(candidates)
        out.append({"id": str(d), "source": "\n".join(sentences), "reference": "\n".join(reference),
                    "candidates": candidates})  # fmt: skip
    return out


def tiny_documents(n_docs: int, n_candidates: int = 5, seed: int = 0):
    from st_contrast.data.simcls import make_document

    return [
        make_document(t["id"], t["source"], t["reference"], t["candidates"], [f"s{k}" for k in range(n_candidates)])
        for t in tiny_texts(n_docs, n_candidates, seed)
    ]


def generate_output(texts: list[dict]) -> str:
    """What fairseq-generate prints for these documents with an n-best list (plus noise lines)."""
    lines = ["2026-11-27 | INFO | fairseq_cli.generate | loading model(s)"]
    for t in texts:
        i = t["id"]
        lines.append(f"S-{i}\t{' '.join(t['source'].split())}")
        lines.append(f"T-{i}\t{' '.join(t['reference'].split())}")
        for k, cand in enumerate(t["candidates"]):
            lines.append(f"H-{i}\t{-0.1 * (k + 1):.4f}\t{cand}")
            lines.append(f"D-{i}\t{-0.1 * (k + 1):.4f}\t{cand}")
            lines.append(f"P-{i}\t-0.1 -0.2")
    lines.append("Generate test with beam=5: BLEU4 = 1.00")
    return "\n".join(lines) + "\n"


def write_data_folder(folder) -> None:
    """A ``simcls_reranking`` data folder: 4 training and 2 validation documents (5 candidates) and dict.txt."""
    from st_contrast.cli.simcls import write_dictionary
    from st_contrast.data.simcls import write_simcls_jsonl

    docs = tiny_documents(6, n_candidates=5)
    write_simcls_jsonl(docs[:4], folder / "train.jsonl")
    write_simcls_jsonl(docs[4:], folder / "valid.jsonl")
    write_dictionary([t for d in docs for t in (d.source, d.reference, *(c.text for c in d.candidates))],
                     str(folder / "dict.txt"))  # fmt: skip


def make_simcls_task(folder, **overrides):
    """The ``simcls_reranking`` task on ``folder`` (config fields overridden by ``overrides``)."""
    import fairseq_plugins  # noqa: F401
    from fairseq_plugins.tasks.simcls_reranking import SimCLSRerankingConfig, SimCLSRerankingTask

    cfg = SimCLSRerankingConfig(data=str(folder), **overrides)
    cfg.seed = 1
    return SimCLSRerankingTask.setup_task(cfg)


def make_simcls_scorer(task, **overrides):
    """A tiny ``simcls_scorer`` (1 layer, width 16) for ``task``, seeded."""
    import torch

    from fairseq_plugins.models.simcls_scorer import SimCLSScorer, SimCLSScorerConfig

    torch.manual_seed(0)
    cfg = SimCLSScorerConfig(encoder_layers=1, encoder_embed_dim=16, encoder_ffn_embed_dim=32,
                             encoder_attention_heads=2, **overrides)  # fmt: skip
    return SimCLSScorer.build_model(cfg, task)


def make_simcls_criterion(task, **kwargs):
    """The ``simcls_ranking`` criterion for ``task``."""
    from fairseq_plugins.criterions.simcls_ranking import SimCLSRankingCriterion

    return SimCLSRankingCriterion(task, **kwargs)
