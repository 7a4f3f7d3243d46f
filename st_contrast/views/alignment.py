"""Which tokens of a rewrite were replaced: token-level labels recovered by aligning two tokenized sentences.

A text-level view (CLINE's WordNet rewrites, :mod:`st_contrast.views.wordnet`) changes words; the
sentence-transformers collator tokenizes every column on its own, so which tokens changed must be found again
from the token ids. :class:`TokenAligner` does that; CLINE's replaced-token detection trains on its labels.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from st_contrast.modeling import special_token_ids

#: label of a kept token, and of a position that is not scored (special tokens, padding)
KEPT, IGNORE = 0, -100


class TokenAligner:
    """Which tokens of a rewrite were replaced, recovered from the token ids of the original and rewrite.

    The sentence-transformers collator tokenizes each column on its own, so word-level replacement
    labels cannot travel with the batch. Instead the token ids are grouped into words (WordPiece
    ``##`` continuations, or the word-start markers ``Ġ``/``▁`` of byte-level BPE and SentencePiece;
    punctuation-only tokens are words of their own) and the two word sequences are aligned with
    ``difflib``. Every token of a word the alignment marks as replaced or inserted is a replaced token,
    so a multi-piece replacement (``"happy" -> "un ##happy"``) is labelled as a whole even where it shares
    a piece with the original word. Special tokens and padding get ``-100``.

    Args:
        tokenizer: the model's (Hugging Face) tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        vocab_size = len(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
        tokens = ["" if t is None else str(t) for t in tokens]
        counts = {marker: sum(t.startswith(marker) for t in tokens) for marker in ("##", "Ġ", "▁")}
        scheme = max(counts, key=counts.get) if any(counts.values()) else "##"
        continuation = []
        for token in tokens:
            text = token[len(scheme) :] if token.startswith(scheme) else token
            if not any(ch.isalnum() for ch in text):
                continuation.append(False)  # punctuation (or a bare marker): a word of its own
            elif scheme == "##":
                continuation.append(token.startswith("##"))
            else:
                continuation.append(not token.startswith(scheme))
        self.scheme = scheme
        self.continuation = continuation
        self.special = set(special_token_ids(tokenizer))

    def words(self, ids: Sequence[int]) -> tuple[list[tuple[int, ...]], list[list[int]]]:
        """Group real (non-special) token positions into words: ``(word id tuples, word positions)``."""
        keys: list[tuple[int, ...]] = []
        positions: list[list[int]] = []
        previous_real = False
        for position, token_id in enumerate(ids):
            if token_id in self.special:
                previous_real = False
                continue
            is_continuation = previous_real and 0 <= token_id < len(self.continuation) and self.continuation[token_id]
            if is_continuation:
                keys[-1] = keys[-1] + (token_id,)
                positions[-1].append(position)
            else:
                keys.append((token_id,))
                positions.append([position])
            previous_real = True
        return keys, positions

    def replaced(self, original_ids: Sequence[int], rewrite_ids: Sequence[int], value: int = 1) -> list[int]:
        """Labels for ``rewrite_ids``: ``value`` on replaced tokens, 0 on kept ones, -100 on special tokens.

        Both id lists must hold real tokens only up to their length (drop padding first).
        """
        labels = [IGNORE] * len(rewrite_ids)
        original_words, _ = self.words(original_ids)
        rewrite_words, rewrite_positions = self.words(rewrite_ids)
        matcher = difflib.SequenceMatcher(None, original_words, rewrite_words, autojunk=False)
        for tag, _, _, j1, j2 in matcher.get_opcodes():
            label = KEPT if tag == "equal" else value
            for word in range(j1, j2):
                for position in rewrite_positions[word]:
                    labels[position] = label
        return labels

    def batch_labels(
        self,
        original_ids: Tensor,
        original_mask: Tensor,
        rewrite_ids: Tensor,
        rewrite_mask: Tensor,
        value: int = 1,
    ) -> Tensor:
        """:meth:`replaced` for each row of a batch: a ``(batch, rewrite_length)`` long tensor."""
        return label_rows(self.replaced, original_ids, original_mask, rewrite_ids, rewrite_mask, value)


def label_rows(
    label_one: Callable[[list[int], list[int], int], list[int]],
    original_ids: Tensor,
    original_mask: Tensor,
    rewrite_ids: Tensor,
    rewrite_mask: Tensor,
    value: int = 1,
) -> Tensor:
    """``label_one(original, rewrite, value)`` for each row of a right-padded batch (as the collator makes it:
    the real tokens are the first ``mask.sum()`` ones): a ``(batch, rewrite_length)`` long tensor, IGNORE on
    padding."""
    out = torch.full(rewrite_ids.shape, IGNORE, dtype=torch.long)
    lengths = original_mask.sum(1).tolist(), rewrite_mask.sum(1).tolist()
    rows = zip(original_ids.tolist(), rewrite_ids.tolist(), *lengths)
    for row, (a, b, n, m) in enumerate(rows):
        out[row, : int(m)] = torch.tensor(label_one(a[: int(n)], b[: int(m)], value), dtype=torch.long)
    return out.to(rewrite_ids.device)
