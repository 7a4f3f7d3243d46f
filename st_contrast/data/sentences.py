"""Unlabeled sentences: the input of unsupervised SimCSE (and any loss that makes its own second view).

=================================  ==========================================  ===============================
reader                             produces                                    consumed by
=================================  ==========================================  ===============================
:func:`read_sentences`             ``list[str]``                               the functions below
:func:`sentence_dataset`           ``datasets.Dataset``, column ``sentence``   ``SimCSELoss`` (Trainer)
:func:`unsupervised_examples`      ``InputExample(texts=[s, s])``              ``SimCSELoss`` (``model.fit``)
:func:`unsupervised_pairs`         ``DataLoader`` of those examples            ``model.fit(train_objectives=...)``
=================================  ==========================================  ===============================
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from st_contrast.data.reading import DataFormatError, iter_lines, resolve_path

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import InputExample
    from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)


def _drop_empty(texts: list[str], what: str) -> list[str]:
    """Drop empty and whitespace-only strings, logging how many."""
    kept = [text for text in texts if text and text.strip()]
    if len(kept) != len(texts):
        logger.warning(f"Dropped {len(texts) - len(kept)} empty {what}.")
    return kept


def read_sentences(
    path: str | os.PathLike,
    min_length: int = 1,
    dedupe: bool = False,
    data_dir: str | os.PathLike | None = None,
    encoding: str = "utf-8",
) -> list[str]:
    """Read a text file with one sentence per line.

    Each line is stripped of surrounding whitespace; empty lines and lines shorter than ``min_length``
    characters are dropped, and how many were dropped is logged (a warning). The file is read with
    :mod:`st_contrast.data.reading`'s rules: strict UTF-8 (a BOM at the start is dropped), ``\\n``, ``\\r\\n``
    or ``\\r`` line ends.

    Args:
        path: the file; a relative path that does not exist is also looked up in the data folders
            (``data_dir``, ``$ST_CONTRAST_DATA``, the cache), e.g. ``"unlabeled/wiki_sentences.txt"``.
        min_length: the shortest line kept, in characters after stripping (>= 1).
        dedupe: keep only the first occurrence of each sentence (unsupervised SimCSE would otherwise see a
            repeated sentence as its own negative when both copies share a batch).
        data_dir: a data folder to search first for a relative ``path``.
        encoding: the file's encoding (UTF-8 by default).

    Returns:
        The sentences in file order.

    Raises:
        FileNotFoundError: the file is nowhere; the message names the places searched.
        ValueError: ``min_length`` < 1.
        DataFormatError: a byte that is not valid in ``encoding`` (with file, line and byte offset), or no
            sentence at all (an empty file, or every line dropped).
    """
    if min_length < 1:
        raise ValueError(f"min_length must be >= 1 (empty lines are always dropped), got {min_length}.")
    resolved = resolve_path(path, data_dir)
    sentences: list[str] = []
    empty = short = 0
    for _, line in iter_lines(resolved, encoding):
        sentence = line.strip()
        if not sentence:
            empty += 1
        elif len(sentence) < min_length:
            short += 1
        else:
            sentences.append(sentence)
    duplicates = 0
    if dedupe:
        unique = list(dict.fromkeys(sentences))
        duplicates = len(sentences) - len(unique)
        sentences = unique
    if not sentences:
        raise DataFormatError(
            resolved,
            f"no sentence to read ({empty} empty lines, {short} lines shorter than min_length={min_length}); "
            "expected one sentence per line",
        )
    if empty or short or duplicates:
        logger.warning(
            f"Read {len(sentences)} sentences from {resolved}; dropped {empty} empty lines, {short} lines shorter "
            f"than {min_length} characters and {duplicates} duplicates."
        )
    return sentences


def sentence_dataset(sentences: Iterable[str]) -> Dataset:
    """A ``datasets.Dataset`` with one column, ``sentence``: unsupervised SimCSE's Trainer input.

    ``SimCSELoss`` encodes the single column twice (two dropout masks make the two views). Empty strings
    are dropped (with a logged count).

    Args:
        sentences: the training sentences.

    Returns:
        A Dataset with column ``sentence``.

    Raises:
        ValueError: no non-empty sentence.
    """
    try:
        from datasets import Dataset
    except ImportError as error:
        raise ImportError(
            "sentence_dataset needs the datasets package: pip install 'st-contrast[train]' (or pip install datasets)."
        ) from error

    kept = _drop_empty(list(sentences), "sentences")
    if not kept:
        raise ValueError("sentence_dataset needs at least one non-empty sentence, got none.")
    return Dataset.from_dict({"sentence": kept})


def unsupervised_examples(sentences: Iterable[str]) -> list[InputExample]:
    """``InputExample(texts=[s, s])`` for each sentence: unsupervised SimCSE's ``model.fit`` input.

    The two identical texts become the (anchor, positive) columns; with dropout on, the two encodings
    differ, which is SimCSE's augmentation. Empty strings are dropped (with a logged count).
    """
    from sentence_transformers import InputExample

    return [InputExample(texts=[sentence, sentence]) for sentence in _drop_empty(list(sentences), "sentences")]


def unsupervised_pairs(
    sentences: Iterable[str], batch_size: int = 64, shuffle: bool = True, seed: int = 0
) -> DataLoader:
    """A ``DataLoader`` of :func:`unsupervised_examples`, for ``model.fit(train_objectives=[(loader, loss)])``.

    The loader drops the last incomplete batch, so there is never a batch of one (which would have no
    in-batch negative). ``model.fit`` reads the loader once to build its training set, so that set holds
    a multiple of ``batch_size`` examples and every batch it trains on is full.

    Args:
        sentences: the training sentences (empty strings are dropped with a logged count).
        batch_size: examples per batch (>= 2: the other sentences in the batch are the negatives).
        shuffle: shuffle the order (reproducibly, from ``seed``).
        seed: the shuffling seed.

    Returns:
        A ``torch.utils.data.DataLoader`` over ``InputExample(texts=[s, s])``; iterating it yields lists of
        examples.

    Raises:
        ValueError: ``batch_size`` < 2, or fewer sentences than ``batch_size``.

    Example:
        ::

            model.fit(train_objectives=[(unsupervised_pairs(sentences, batch_size=64), SimCSELoss(model))])
    """
    import torch
    from torch.utils.data import DataLoader

    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (in-batch negatives need another sentence), got {batch_size}.")
    examples = unsupervised_examples(sentences)
    if len(examples) < batch_size:
        raise ValueError(
            f"unsupervised_pairs got {len(examples)} sentences, fewer than batch_size={batch_size}; with the last "
            "incomplete batch dropped there would be nothing to train on. Use a smaller batch_size."
        )
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        examples,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=True,
        generator=generator,
        collate_fn=_keep_examples,
    )


def _keep_examples(batch: list[InputExample]) -> list[InputExample]:
    """Batches stay lists of ``InputExample`` (``model.fit`` sets its own collate function anyway)."""
    return batch
