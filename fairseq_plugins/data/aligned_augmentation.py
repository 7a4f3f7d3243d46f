"""Aligned augmentation (random aligned substitution, RAS): code-switch source words through dictionaries.

Lin et al. (2020), "Pre-training Multilingual Neural Machine Translation by Leveraging Alignment
Information" (mRASP, EMNLP 2020) and Pan et al. (2021), mRASP2 (ACL 2021), section 2.3: each source word
that has a dictionary translation is replaced, with probability ``p``, by one of its translations (into
any language the dictionaries cover), so that words with the same meaning get close representations.

Dictionaries use MUSE's "word translation" format (https://github.com/facebookresearch/MUSE#ground-truth-bilingual-dictionaries):
one ``source_word target_word`` pair per line (space or tab separated), a word repeated on several
lines for several translations. A file is named for its direction, ``en-de.txt`` or
``en-de.0-5000.txt``, or given explicitly as ``en-de=/path/file.txt``.

Works on token ids of a fairseq dictionary whose subwords use a continuation marker (subword-nmt's
``@@``: ``Hund@@ e`` is the word ``Hunde``). A translation is encoded into dictionary symbols by greedy
longest match (``dog`` → ``dog`` if it is a symbol, else e.g. ``do@@ g``); translations that cannot be
encoded without ``<unk>`` are dropped at load time (counted in :attr:`stats`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

_NAMED_PAIR = re.compile(r"^(?P<src>[A-Za-z_]+)-(?P<tgt>[A-Za-z_]+)(?:[._].*)?$")


def parse_dictionary_spec(spec: str) -> tuple[str, str, str]:
    """``"en-de=/p/file.txt"`` or ``"/p/en-de.0-5000.txt"`` → ``(src, tgt, path)``."""
    spec = spec.strip()
    head, sep, tail = spec.partition("=")
    if sep and "-" in head and os.sep not in head:
        src, _, tgt = head.partition("-")
        return src, tgt, tail
    match = _NAMED_PAIR.match(os.path.basename(spec))
    if not match:
        raise ValueError(
            f"cannot tell the language pair of RAS dictionary {spec!r}: name it like 'en-de.txt' "
            "(MUSE's naming) or write 'en-de=/path/to/file'"
        )
    return match["src"], match["tgt"], spec


def read_muse_dictionary(path: str) -> list[tuple[str, str]]:
    """Word pairs of a MUSE-format file (blank lines and lines without two fields are skipped)."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) == 2:
                pairs.append((fields[0], fields[1]))
    return pairs


class AlignedAugmentation:
    """Random aligned substitution on token-id sequences.

    Args:
        dictionary: the fairseq :class:`~fairseq.data.Dictionary` of the source side.
        word_pairs: ``{(src_lang, tgt_lang): [(src_word, tgt_word), ...]}``.
        prob: probability of substituting each source word that has a translation.
        bpe_marker: subword continuation marker (``"@@"``); ``""`` when symbols are whole words.

    Only ordinary symbols are read as words: special symbols (``<s>``, ``<pad>``, ``</s>``,
    ``<unk>``) and symbols in ``protected`` (the language tokens) are never part of a word nor replaced.
    """

    def __init__(
        self,
        dictionary,
        word_pairs: dict[tuple[str, str], Sequence[tuple[str, str]]],
        prob: float,
        bpe_marker: str = "@@",
        protected: Iterable[int] = (),
    ) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"ras_prob must be in [0, 1], got {prob!r}")
        self.prob = float(prob)
        self.dictionary = dictionary
        self.bpe_marker = bpe_marker
        self.special = set(int(i) for i in protected) | {
            dictionary.bos(),
            dictionary.pad(),
            dictionary.eos(),
            dictionary.unk(),
        }
        self.table: dict[str, dict[str, list[tuple[int, ...]]]] = defaultdict(lambda: defaultdict(list))
        self.stats = {"entries": 0, "usable": 0}
        for (src_lang, _tgt_lang), pairs in word_pairs.items():
            for src_word, tgt_word in pairs:
                self.stats["entries"] += 1
                ids = self.encode_word(tgt_word)
                if ids is not None and src_word != tgt_word:
                    self.table[src_lang][src_word].append(ids)
                    self.stats["usable"] += 1
        self.table = {lang: dict(words) for lang, words in self.table.items()}

    @classmethod
    def from_specs(
        cls, specs: Sequence[str], dictionary, prob: float, bpe_marker: str = "@@", protected: Iterable[int] = ()
    ) -> AlignedAugmentation:
        word_pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for spec in specs:
            src, tgt, path = parse_dictionary_spec(spec)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"RAS dictionary not found: {path}")
            word_pairs[(src, tgt)].extend(read_muse_dictionary(path))
        augmentation = cls(dictionary, word_pairs, prob, bpe_marker, protected)
        logger.info(
            "aligned augmentation: %d dictionary entries, %d encodable with the vocabulary, p=%.2f",
            augmentation.stats["entries"],
            augmentation.stats["usable"],
            prob,
        )
        return augmentation

    def languages(self) -> list[str]:
        return sorted(self.table)

    def encode_word(self, word: str) -> tuple[int, ...] | None:
        """Greedy longest-match encoding of ``word`` into dictionary symbols, or ``None``."""
        marker, ids, pos = self.bpe_marker, [], 0
        unk = self.dictionary.unk()
        while pos < len(word):
            for end in range(len(word), pos, -1):
                piece = word[pos:end] if end == len(word) or not marker else word[pos:end] + marker
                index = self.dictionary.index(piece)
                if index != unk and index not in self.special:
                    ids.append(index)
                    pos = end
                    break
            else:
                return None
            if not marker and pos < len(word):
                return None
        return tuple(ids) if ids else None

    def words(self, tokens: Sequence[int]) -> list[tuple[int, int, str]]:
        """``(start, end, word)`` spans of ordinary symbols, joined across continuation markers."""
        spans, start, pieces = [], None, []
        marker = self.bpe_marker
        for position, index in enumerate(tokens):
            if index in self.special:
                if start is not None:  # a dangling continuation before a special symbol ends the word
                    spans.append((start, position, "".join(pieces)))
                    start, pieces = None, []
                continue
            symbol = self.dictionary[index]
            if start is None:
                start = position
            if marker and symbol.endswith(marker):
                pieces.append(symbol[: -len(marker)])
                continue
            pieces.append(symbol)
            spans.append((start, position + 1, "".join(pieces)))
            start, pieces = None, []
        if start is not None:
            spans.append((start, len(tokens), "".join(pieces)))
        return spans

    def __call__(self, tokens: Tensor, lang: str, rng: np.random.Generator) -> tuple[Tensor, int, int]:
        """Substitute words of ``tokens`` (language ``lang``); returns ``(tokens, n_substituted, n_eligible)``."""
        words = self.table.get(lang)
        if not words:
            return tokens, 0, 0
        ids = tokens.tolist()
        out: list[int] = []
        last, substituted, eligible = 0, 0, 0
        for start, end, word in self.words(ids):
            choices = words.get(word) or words.get(word.lower())
            if not choices:
                continue
            eligible += 1
            if rng.random() >= self.prob:
                continue
            substituted += 1
            out.extend(ids[last:start])
            out.extend(choices[int(rng.integers(len(choices)))])
            last = end
        if substituted == 0:
            return tokens, 0, eligible
        out.extend(ids[last:])
        return torch.tensor(out, dtype=tokens.dtype), substituted, eligible
