"""Synthetic STS suite data in SentEval's ``data/downstream`` layout, with embeddings whose cosines are chosen.

:func:`write_senteval` writes every file of the suite (STS12-16 subsets, STS-B test, SICK test) and returns the
sentence -> embedding table of a :class:`TableModel`, under which each pair's cosine similarity is exactly the
value chosen for it: the first sentence embeds to ``(1, 0)`` and the second to ``(c, sqrt(1 - c^2))``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch

from st_contrast.data.senteval import SICK_TEST_FILE, STS_YEARS, STSB_TEST_FILE

#: A line of STS16 headlines whose first sentence is Windows-1252, not UTF-8 (é and curly quotes).
CP1252_BYTES = b"caf\xe9 \x93quoted\x94"
CP1252_TEXT = "caf\u00e9 \u201cquoted\u201d"


class _CardData:
    def __init__(self) -> None:
        self.metrics: list[dict] = []

    def set_evaluation_metrics(self, evaluator, metrics, epoch=0, step=0) -> None:
        self.metrics.append(dict(metrics))


class TableModel:
    """A stand-in for a SentenceTransformer whose ``encode`` looks each sentence up in a table."""

    def __init__(self, table: dict[str, tuple[float, float]]) -> None:
        self.table = table
        self.calls: list[int] = []
        self.model_card_data = _CardData()

    def encode(self, sentences, batch_size=32, show_progress_bar=None, convert_to_tensor=False, **kwargs):
        self.calls.append(len(sentences))
        x = torch.tensor([self.table[s] for s in sentences], dtype=torch.float64)
        if kwargs.get("normalize_embeddings"):
            x = torch.nn.functional.normalize(x, dim=-1)
        return x


def _pair(table, prefix: str, index: int, cosine: float) -> tuple[str, str]:
    first, second = f"{prefix} anchor {index}", f"{prefix} other {index}"
    table[first] = (1.0, 0.0)
    table[second] = (cosine, math.sqrt(1.0 - cosine * cosine))
    return first, second


def write_senteval(root: Path, seed: int = 0, size: int = 6) -> tuple[dict, dict]:
    """Write the suite under ``root`` (the downstream folder).

    Returns:
        ``(table, truth)``: the embedding table, and per task and subset the ``(gold, cosine)`` lists of the scored
        pairs. STS12's MSRpar has one unscored pair (an empty gold line, 3rd line); STS16 headlines' first line is
        cp1252 (:data:`CP1252_BYTES`); STS13 FNWN's files have ``\\r\\n`` line ends and a BOM.
    """
    rng = random.Random(seed)
    table: dict[str, tuple[float, float]] = {}
    truth: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for task, (folder, subsets) in STS_YEARS.items():
        directory = root / folder
        directory.mkdir(parents=True, exist_ok=True)
        truth[task] = {}
        for number, subset in enumerate(subsets):
            n = size + number  # subsets of different sizes, so wmean differs from mean
            inputs, golds, scored = [], [], []
            for i in range(n):
                cosine = round(rng.uniform(-0.9, 0.95), 3)
                gold = round(rng.uniform(0, 5), 1)
                first, second = _pair(table, f"{task} {subset}", i, cosine)
                if task == "sts16" and subset == "headlines" and i == 0:
                    table[CP1252_TEXT] = table.pop(first)
                    inputs.append(CP1252_BYTES + b"\t" + second.encode())
                else:
                    inputs.append(f"  {first}\t{second} ".encode())  # stray spaces: normalised away
                if task == "sts12" and subset == "MSRpar" and i == 2:
                    golds.append(b"")
                    continue
                golds.append(f"{gold}".encode())
                scored.append((gold, cosine))
            end = b"\r\n" if (task, subset) == ("sts13", "FNWN") else b"\n"
            bom = b"\xef\xbb\xbf" if (task, subset) == ("sts13", "FNWN") else b""
            (directory / f"STS.input.{subset}.txt").write_bytes(bom + end.join(inputs) + end)
            (directory / f"STS.gs.{subset}.txt").write_bytes(bom + end.join(golds) + end)
            truth[task][subset] = scored
    for task, relative in (("stsb", STSB_TEST_FILE), ("sickr", SICK_TEST_FILE)):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        rows, scored = [], []
        if task == "sickr":
            rows.append("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment")
        for i in range(size + 3):
            cosine = round(rng.uniform(-0.9, 0.95), 3)
            first, second = _pair(table, task, i, cosine)
            if task == "stsb":
                gold = round(rng.uniform(0, 5), 2)
                rows.append(f"main-captions\tMSRvid\t2012test\t{i:04d}\t{gold}\t{first}\t{second}")
            else:
                gold = round(rng.uniform(1, 5), 1)
                rows.append(f"{i + 1}\t{first}\t{second}\t{gold}\tNEUTRAL")
            scored.append((gold, cosine))
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        truth[task] = {"test": scored}
    return table, truth
