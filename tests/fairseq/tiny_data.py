"""Tiny synthetic multilingual parallel text for the fairseq tests (no network, a few KB).

English sentences are random words from a 24-word vocabulary; German and French are word-by-word
"translations" (``house`` → ``hausde`` / ``housefr``), some written as two subword pieces with the
``@@`` marker so that word reassembly is exercised.
"""

from __future__ import annotations

import os
import random
from collections import Counter

EN_WORDS = [f"w{i}" for i in range(24)]


def translate(word: str, lang: str) -> str:
    if lang == "en":
        return word
    return f"{word}{lang}"


def as_pieces(word: str) -> list[str]:
    # words with an even index are split into two pieces: "w4de" -> "w4@@ de"
    index = int(word[1:].rstrip("abcdefghijklmnopqrstuvwxyz"))
    if index % 2 == 0 and len(word) > 2:
        return [word[:2] + "@@", word[2:]]
    return [word]


def sentence(words: list[str], lang: str) -> str:
    return " ".join(piece for w in words for piece in as_pieces(translate(w, lang)))


def write_corpus(folder: str, langs=("en", "de", "fr"), sizes=None, seed: int = 0) -> dict[str, list[list[str]]]:
    """Write ``{split}.{lang}`` files, aligned across languages; returns the English word lists per split."""
    sizes = sizes or {"train": 400, "valid": 40, "test": 20}
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    out = {}
    for split, n in sizes.items():
        rows = [[rng.choice(EN_WORDS) for _ in range(rng.randint(3, 8))] for _ in range(n)]
        out[split] = rows
        for lang in langs:
            with open(os.path.join(folder, f"{split}.{lang}"), "w", encoding="utf-8") as handle:
                handle.writelines(sentence(r, lang) + "\n" for r in rows)
    return out


def write_dictionary(folder: str, langs=("en", "de", "fr")) -> str:
    """A fairseq dict.txt with every piece of the corpus (counts are irrelevant)."""
    counts: Counter[str] = Counter()
    for lang in langs:
        for word in EN_WORDS:
            counts.update(as_pieces(translate(word, lang)))
    path = os.path.join(folder, "dict.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{symbol} {count}\n" for symbol, count in counts.most_common())
    return path


def write_muse_dictionary(path: str, src: str, tgt: str) -> None:
    """A MUSE-format word dictionary ``src_word tgt_word`` for the synthetic languages."""
    with open(path, "w", encoding="utf-8") as handle:
        for word in EN_WORDS:
            handle.write(f"{translate(word, src)} {translate(word, tgt)}\n")
