"""CLINE triples: ``(original, synonym, antonym)`` rewrites of plain sentences, for :class:`CLINELoss`.

=================================  ==================================================  ====================
reader                             produces                                            consumed by
=================================  ==================================================  ====================
:func:`cline_rewrites`             :class:`~st_contrast.views.wordnet.RewriteResult`   inspection, the two
                                   (rewrites with the replaced words, skipped indices) functions below
:func:`cline_dataset`              ``datasets.Dataset``, columns ``original``,          ``CLINELoss``
                                   ``synonym``, ``antonym``                             (Trainer)
:func:`cline_examples`             ``InputExample(texts=[x, x_syn, x_ant])``            ``CLINELoss``
                                                                                        (``model.fit``)
=================================  ==================================================  ====================

Sentences come as a list of strings or as a text file with one sentence per line (a path, looked up
in the data folders when relative, like :func:`st_contrast.data.read_sentences`). Sentences with no word
that WordNet can replace by a synonym are skipped, never kept unchanged: how many is logged and
reported by :func:`cline_rewrites`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import InputExample

    from st_contrast.views.wordnet import RewriteResult, WordNetRewriter

logger = logging.getLogger(__name__)

COLUMNS = ("original", "synonym", "antonym")


def _sentences(
    sentences: Iterable[str] | str | os.PathLike, data_dir: str | os.PathLike | None, encoding: str = "utf-8"
) -> list[str]:
    if isinstance(sentences, (str, os.PathLike)):
        from st_contrast.data.sentences import read_sentences

        return read_sentences(sentences, data_dir=data_dir, encoding=encoding)
    texts = list(sentences)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"sentences must be strings, got {len(bad)} of type {bad[0]}")
    return texts


def cline_rewrites(
    sentences: Iterable[str] | str | os.PathLike,
    rewriter: WordNetRewriter | None = None,
    data_dir: str | os.PathLike | None = None,
    encoding: str = "utf-8",
    **rewriter_options: Any,
) -> RewriteResult:
    """Rewrite every sentence into ``(x, x_syn, x_ant)`` with WordNet, reporting the replacements.

    Args:
        sentences: a list of sentences, or a text file with one sentence per line.
        rewriter: the :class:`~st_contrast.views.wordnet.WordNetRewriter` to use (its look-up cache is
            reused across calls); by default one is made from ``rewriter_options``.
        data_dir: a data folder to search first for a relative file path.
        encoding: the file's encoding (UTF-8 by default), read as :func:`st_contrast.data.read_sentences` does.
        **rewriter_options: ``replace_ratio``, ``hypernym_probability``, ``seed``, ``max_senses``, ... (see
            :class:`~st_contrast.views.wordnet.WordNetRewriter`); not allowed together with ``rewriter``.

    Raises:
        ValueError: no sentences, or none of them has a replaceable word.
        LookupError: WordNet is not installed (the message says how to install it).
    """
    from st_contrast.views.wordnet import WordNetRewriter

    if rewriter is not None and rewriter_options:
        raise ValueError(f"pass either a rewriter or rewriter options, not both (got {sorted(rewriter_options)})")
    texts = _sentences(sentences, data_dir, encoding)
    if not texts:
        raise ValueError("cline_rewrites needs at least one sentence, got an empty list")
    rewriter = rewriter if rewriter is not None else WordNetRewriter(**rewriter_options)
    result = rewriter.rewrite_all(texts)
    if not result.rewrites:
        raise ValueError(
            f"none of the {len(texts)} sentences has a word WordNet can replace by a synonym, so no CLINE triple "
            "can be made (are they English, with content words?)"
        )
    if result.skipped:
        logger.info(
            "CLINE rewriting: skipped %d of %d sentences with no replaceable word (first skipped: %r)",
            result.num_skipped,
            len(texts),
            texts[result.skipped[0]][:80],
        )
    return result


def cline_dataset(
    sentences: Iterable[str] | str | os.PathLike,
    rewriter: WordNetRewriter | None = None,
    data_dir: str | os.PathLike | None = None,
    encoding: str = "utf-8",
    **rewriter_options: Any,
) -> Dataset:
    """A ``datasets.Dataset`` with columns ``original``, ``synonym``, ``antonym``: CLINE's Trainer input.

    Arguments as in :func:`cline_rewrites`.
    """
    from datasets import Dataset

    result = cline_rewrites(sentences, rewriter, data_dir, encoding, **rewriter_options)
    return Dataset.from_dict(
        {
            "original": [r.original for r in result.rewrites],
            "synonym": [r.synonym for r in result.rewrites],
            "antonym": [r.antonym for r in result.rewrites],
        }
    )


def cline_examples(
    sentences: Iterable[str] | str | os.PathLike,
    rewriter: WordNetRewriter | None = None,
    data_dir: str | os.PathLike | None = None,
    encoding: str = "utf-8",
    **rewriter_options: Any,
) -> list[InputExample]:
    """``InputExample(texts=[original, synonym, antonym])`` per sentence, for ``model.fit``.

    Arguments as in :func:`cline_rewrites`.
    """
    from sentence_transformers import InputExample

    result = cline_rewrites(sentences, rewriter, data_dir, encoding, **rewriter_options)
    return [InputExample(texts=[r.original, r.synonym, r.antonym]) for r in result.rewrites]
