"""Tiny synthetic summarisation data for the SimCLS tests (no network, a few KB).

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
