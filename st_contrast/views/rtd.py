"""Replaced-token-detection labels of CLINE rewrites, recovered from token ids.

sentence-transformers tokenizes each text column on its own, so the word-level record of what the
rewriter replaced cannot travel with the batch. :class:`RTDLabeler` rebuilds the token labels of a
rewrite from the token ids of the original and the rewrite, through an aligner that groups token ids
into words (:class:`~st_contrast.losses.cline.TokenAligner`'s ``words``), ``difflib`` over the word
sequences, and two rules of the official CLINE code:

- **every token of a replaced span is replaced.** A multi-word replacement that contains the original
  word (``storm -> violent storm``, ``run -> run away``) aligns as an insertion next to an unchanged
  copy of the word; that neighbouring word belongs to the replacement and is labelled replaced too. The
  ids alone do not say on which side it is, so the words' text decides: a phrase whose inserted part
  starts with a function word or particle (``away``, ``of``, ``up``) continues the word on its left
  (``run away``, ``side of meat``); otherwise the word is on the right, as in English noun compounds
  (``violent storm``); a function word or punctuation is never taken as the replaced word.
- ``labels="content"``: only content words are labelled (kept ones 0, replaced ones the replacement
  class); other tokens get -100, as the official code labels only the tokens its POS tagger marks as
  nouns, verbs, adjectives and adverbs. Content words are those the rewriter's
  :class:`~st_contrast.views.wordnet.WordNetLexicon` knows as such. ``labels="all"`` labels every token.

Special tokens and padding always get -100.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from torch import Tensor

from st_contrast.views.alignment import IGNORE, KEPT, label_rows

__all__ = ["RTDLabeler", "KEPT", "IGNORE", "PARTICLES"]


#: words that continue a phrase to their left in WordNet multi-word lemmas (phrasal verbs, postmodifiers),
#: besides the rewriter's stop words (which already hold up, off, out, of, ...)
PARTICLES: frozenset[str] = frozenset({"away", "back", "forth", "apart", "aside", "ahead", "together"})

RTDLabels = Literal["all", "content"]


class WordGrouper(Protocol):
    def words(self, ids: Sequence[int]) -> tuple[list[tuple[int, ...]], list[list[int]]]: ...


class RTDLabeler:
    """Token labels of a rewrite: ``value`` on replaced tokens, 0 on kept ones, -100 where ignored.

    Args:
        aligner: groups token ids into words (``words(ids) -> (word id tuples, word positions)``), e.g.
            :class:`~st_contrast.losses.cline.TokenAligner`.
        tokenizer: the model's tokenizer, to read the words' text (side of a multi-word replacement, and
            content words); ``None``: multi-word replacements take the word on their right, and
            ``labels="content"`` is not available.
        labels: ``"all"`` (every token) or ``"content"`` (content words only; the official code).
        content_word: ``word -> bool`` for ``labels="content"``; default: the word has an entry in a
            :class:`~st_contrast.views.wordnet.WordNetLexicon` (built on first use).
    """

    def __init__(
        self,
        aligner: WordGrouper,
        tokenizer: Any | None = None,
        labels: RTDLabels = "all",
        content_word: Callable[[str], bool] | None = None,
    ) -> None:
        if labels not in ("all", "content"):
            raise ValueError(
                f"rtd_labels must be 'all' (every token) or 'content' (content words only, official code), "
                f"got {labels!r}"
            )
        if labels == "content" and tokenizer is None:
            raise ValueError("rtd_labels='content' needs the model's tokenizer to read the words")
        self.aligner = aligner
        self.tokenizer = tokenizer
        self.labels = labels
        self._content_word = content_word
        self._text: dict[tuple[int, ...], str] = {}
        self._content: dict[str, bool] = {}

    # -- words ----------------------------------------------------------------------------------
    def word_text(self, key: tuple[int, ...]) -> str | None:
        """The lower-cased text of a word (its token ids), or ``None`` without a tokenizer."""
        if self.tokenizer is None:
            return None
        text = self._text.get(key)
        if text is None:
            text = self._text[key] = self.tokenizer.decode(list(key)).strip().lower()
        return text

    def is_content_word(self, key: tuple[int, ...]) -> bool:
        text = self.word_text(key) or ""
        known = self._content.get(text)
        if known is None:
            if self._content_word is None:
                from st_contrast.views.wordnet import WordNetLexicon

                lexicon = WordNetLexicon()
                self._content_word = lambda word: lexicon.entry(word) is not None
            known = self._content[text] = bool(self._content_word(text))
        return known

    def _function_word(self, key: tuple[int, ...]) -> bool:
        from st_contrast.views.wordnet import STOP_WORDS

        text = self.word_text(key)
        if text is None:
            return False
        return text in STOP_WORDS or text in PARTICLES or not any(ch.isalnum() for ch in text)

    # -- labels ---------------------------------------------------------------------------------
    def replaced_words(
        self, original_words: list[tuple[int, ...]], rewrite_words: list[tuple[int, ...]]
    ) -> list[bool]:
        """For each word of the rewrite: was it part of a replaced span?"""
        replaced = [False] * len(rewrite_words)
        opcodes = difflib.SequenceMatcher(None, original_words, rewrite_words, autojunk=False).get_opcodes()
        for index, (tag, i1, i2, j1, j2) in enumerate(opcodes):
            if tag == "equal":
                continue
            for word in range(j1, j2):
                replaced[word] = True
            if tag != "insert":
                continue
            # words were only added: a multi-word replacement holding an unchanged copy of the original word
            left = j1 - 1 if index > 0 and opcodes[index - 1][0] == "equal" else None
            right = j2 if index + 1 < len(opcodes) and opcodes[index + 1][0] == "equal" else None
            side = self._side(rewrite_words, j1, j2, left, right)
            if side is not None:
                replaced[side] = True
        return replaced

    def _side(self, words: list[tuple[int, ...]], j1: int, j2: int, left: int | None, right: int | None) -> int | None:
        if left is not None and self._function_word(words[left]):
            left = None
        if right is not None and self._function_word(words[right]):
            right = None
        if left is None or right is None:
            return right if left is None else left
        if self._function_word(words[j1]):  # "run | away", "side | of meat": continues the left word
            return left
        return right  # "violent | storm": English compounds end in their head

    def labels_for(self, original_ids: Sequence[int], rewrite_ids: Sequence[int], value: int = 1) -> list[int]:
        """Labels of ``rewrite_ids`` (real tokens only: drop padding first)."""
        labels = [IGNORE] * len(rewrite_ids)
        original_words, _ = self.aligner.words(original_ids)
        rewrite_words, positions = self.aligner.words(rewrite_ids)
        for key, word_positions, replaced in zip(
            rewrite_words, positions, self.replaced_words(original_words, rewrite_words)
        ):
            if replaced:
                label = value
            elif self.labels == "content" and not self.is_content_word(key):
                label = IGNORE
            else:
                label = KEPT
            for position in word_positions:
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
        """:meth:`labels_for` for each row of a right-padded batch: a ``(batch, rewrite_length)`` long tensor."""
        return label_rows(self.labels_for, original_ids, original_mask, rewrite_ids, rewrite_mask, value)
