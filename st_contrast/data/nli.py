"""NLI triplets (premise, entailment, contradiction): the input of supervised SimCSE.

===============================  ==================================================  ===========================
reader                           produces                                            consumed by
===============================  ==================================================  ===========================
:func:`read_simcse_nli_csv`      ``(sent0, sent1, hard_neg)`` tuples                 the functions below
:func:`snli_triplets`            ``(premise, entailment, contradiction)`` tuples     the functions below
:func:`nli_dataset`              ``datasets.Dataset``: anchor, positive, negative    ``SimCSELoss`` (Trainer)
:func:`nli_examples`             ``InputExample(texts=[a, p, n])``                   ``SimCSELoss`` (``model.fit``)
===============================  ==================================================  ===========================

Pairs without a hard negative (two-element tuples) are accepted by :func:`nli_dataset` and
:func:`nli_examples` too and give (anchor, positive) columns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from st_contrast.data.reading import DataFormatError, iter_lines, log_skipped, read_table, resolve_path

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import InputExample

logger = logging.getLogger(__name__)

ENTAILMENT, NEUTRAL, CONTRADICTION = 0, 1, 2
_LABELS: dict[str, int] = {
    "0": ENTAILMENT,
    "1": NEUTRAL,
    "2": CONTRADICTION,
    "entailment": ENTAILMENT,
    "neutral": NEUTRAL,
    "contradiction": CONTRADICTION,
}
# SNLI marks pairs without a gold (majority) label with "-"; they carry no label to train on.
_NO_GOLD_LABEL = "-"
_HEADER_LABELS = {"label", "gold_label"}

Pairing = Literal["first", "zip", "product"]


def _has_empty(row: Sequence[str]) -> bool:
    return any(not text or not text.strip() for text in row)


def read_simcse_nli_csv(
    path: str | os.PathLike, data_dir: str | os.PathLike | None = None, encoding: str = "utf-8"
) -> list[tuple[str, ...]]:
    """Read SimCSE's NLI CSV (``nli_for_simcse.csv``: header ``sent0,sent1,hard_neg``).

    Parsed with the ``csv`` module, strictly (quoted fields may hold commas, doubled quotes and newlines; an
    unclosed quote is an error), through :func:`st_contrast.data.reading.read_table`. Every row must have as
    many fields as the header; other header columns than these three are ignored. Rows with an empty field
    are dropped, with a logged count. A file with only ``sent0,sent1`` gives pairs.

    Args:
        path: the CSV file; a relative path that does not exist is also looked up in the data folders.
        data_dir: a data folder to search first for a relative ``path``.
        encoding: the file's encoding (UTF-8 by default; a BOM is dropped).

    Returns:
        ``(sent0, sent1, hard_neg)`` tuples (``(sent0, sent1)`` without a ``hard_neg`` column), in file order:
        anchor, positive, hard negative.

    Raises:
        FileNotFoundError: the file is nowhere; the message names the places searched.
        DataFormatError: (a ``ValueError``) no ``sent0``/``sent1`` header, a row with fewer or more fields than
            the header, a quoting error, a byte that is not valid in ``encoding``, or no row at all; the message
            names the file and line.
    """
    resolved = resolve_path(path, data_dir)
    table = read_table(resolved, encoding=encoding)
    fields = [name.strip() for name in table.header]
    if "sent0" not in fields or "sent1" not in fields:
        raise DataFormatError(
            resolved,
            "the file must start with a header naming the columns sent0, sent1 and optionally hard_neg (SimCSE's "
            f"format), got {table.header}",
            line=table.header_line,
        )
    columns = ["sent0", "sent1"] + (["hard_neg"] if "hard_neg" in fields else [])
    positions = [fields.index(column) for column in columns]
    rows: list[tuple[str, ...]] = []
    dropped = 0
    for _, values in table.rows:
        row = tuple(values[i].strip() for i in positions)
        if _has_empty(row):
            dropped += 1
            continue
        rows.append(row)
    if not rows:
        raise DataFormatError(
            resolved, f"no NLI row ({dropped} rows with an empty field); expected rows of {', '.join(columns)}"
        )
    if dropped:
        logger.warning(f"Dropped {dropped} rows of {resolved} with an empty field.")
    log_skipped(logger, resolved, len(rows), "rows", {"blank lines": table.blank_lines})
    return rows


def _parse_label(raw: str) -> int | None:
    return _LABELS.get(raw.strip().lower())


def snli_triplets(
    path: str | os.PathLike,
    pairing: Pairing = "first",
    data_dir: str | os.PathLike | None = None,
    encoding: str = "utf-8",
) -> list[tuple[str, str, str]]:
    """(premise, entailment, contradiction) triplets from an SNLI-style premise/hypothesis/label TSV.

    Each line is ``premise<TAB>hypothesis<TAB>label`` with label ``0``/``entailment``, ``1``/``neutral`` or
    ``2``/``contradiction`` (case-insensitive); an optional header line (third column ``label`` or
    ``gold_label``) is skipped, and so are blank lines, SNLI's ``-`` (no gold label) rows and rows with an
    empty text, with a logged count. Neutral hypotheses are not used (how many is logged). Hypotheses are
    grouped by premise (exact string after stripping); premises come out in order of first appearance and,
    within a premise, hypotheses in file order.

    A premise with no entailment or no contradiction gives no triplet. For a premise with several of
    either, ``pairing`` decides (deterministically):

    - ``"first"`` (default): one triplet per premise, its first entailment with its first contradiction.
      Each premise is then weighted once, as in SimCSE's own NLI set (about one triplet per premise of
      SNLI + MNLI). On ``snli_test.tsv`` (9,824 lines, 3,323 premises): 2,921 triplets.
    - ``"zip"``: the i-th entailment with the i-th contradiction, ``min(#e, #c)`` triplets per premise
      (2,929 on ``snli_test.tsv``: 8 premises have two of each).
    - ``"product"``: every entailment with every contradiction (3,247 on ``snli_test.tsv``).

    Args:
        path: the TSV file; a relative path that does not exist is also looked up in the data folders
            (e.g. ``"nli/snli_test.tsv"``).
        pairing: ``"first"``, ``"zip"`` or ``"product"``, see above.
        data_dir: a data folder to search first for a relative ``path``.
        encoding: the file's encoding (UTF-8 by default; a BOM is dropped).

    Returns:
        ``(premise, entailment, contradiction)`` tuples: anchor, positive, hard negative.

    Raises:
        FileNotFoundError: the file is nowhere; the message names the places searched.
        ValueError: an unknown ``pairing``.
        DataFormatError: (a ``ValueError``) a line without 3 tab-separated columns, an unknown label, a byte
            that is not valid in ``encoding``, or no labelled pair at all; the message names the file and line.
    """
    if pairing not in ("first", "zip", "product"):
        raise ValueError(f"pairing must be 'first', 'zip' or 'product', got {pairing!r}.")
    resolved = resolve_path(path, data_dir)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    no_gold = empty = 0
    blank = neutral = 0
    first = True
    for line_number, line in iter_lines(resolved, encoding):
        if not line.strip():
            blank += 1
            continue
        is_first, first = first, False
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataFormatError(
                resolved,
                f"expected 3 tab-separated columns (premise, hypothesis, label), got {len(fields)}.",
                line_number,
            )
        premise, hypothesis, raw_label = (field.strip() for field in fields)
        label = _parse_label(raw_label)
        if label is None:
            if is_first and raw_label.lower() in _HEADER_LABELS:  # the header: the first line with text
                continue
            if raw_label == _NO_GOLD_LABEL:
                no_gold += 1
                continue
            raise DataFormatError(
                resolved,
                f"unknown label {raw_label!r}; expected 0/entailment, 1/neutral or 2/contradiction.",
                line_number,
            )
        if not premise or not hypothesis:
            empty += 1
            continue
        entailments, contradictions = groups.setdefault(premise, ([], []))
        if label == ENTAILMENT:
            entailments.append(hypothesis)
        elif label == CONTRADICTION:
            contradictions.append(hypothesis)
        else:
            neutral += 1
    if not groups:
        raise DataFormatError(
            resolved,
            f"no labelled pair ({blank} blank lines, {no_gold} rows without a gold label, {empty} with an empty "
            "text); expected premise<TAB>hypothesis<TAB>label lines",
        )
    if no_gold or empty or blank:
        logger.warning(
            f"Skipped {no_gold} rows without a gold label ('-') and {empty} rows with an empty text in {resolved} "
            f"(and {blank} blank lines)."
        )
    triplets: list[tuple[str, str, str]] = []
    for premise, (entailments, contradictions) in groups.items():
        if pairing == "first":
            if entailments and contradictions:
                triplets.append((premise, entailments[0], contradictions[0]))
        elif pairing == "zip":
            triplets.extend((premise, e, c) for e, c in zip(entailments, contradictions))
        else:
            triplets.extend((premise, e, c) for e in entailments for c in contradictions)
    without = sum(1 for entailments, contradictions in groups.values() if not (entailments and contradictions))
    logger.info(
        f"{len(triplets)} NLI triplets from {len(groups)} premises in {resolved} (pairing={pairing!r}); "
        f"{neutral} neutral rows unused, {without} premises without both an entailment and a contradiction."
    )
    return triplets


def _clean_rows(rows: Iterable[Sequence[str]]) -> list[tuple[str, ...]]:
    rows = [tuple(row) for row in rows]
    widths = {len(row) for row in rows}
    if widths - {2, 3} or len(widths) > 1:
        raise ValueError(
            "NLI rows must all be (anchor, positive, negative) triplets or all (anchor, positive) pairs, got "
            f"rows of {sorted(widths)} texts."
        )
    kept = [row for row in rows if not _has_empty(row)]
    if len(kept) != len(rows):
        logger.warning(f"Dropped {len(rows) - len(kept)} NLI rows with an empty text.")
    if not kept:
        raise ValueError("No NLI rows left: the input is empty or every row has an empty text.")
    return kept


def nli_dataset(triplets: Iterable[Sequence[str]]) -> Dataset:
    """A ``datasets.Dataset`` with columns ``anchor``, ``positive``, ``negative``: supervised SimCSE's input.

    Rows with an empty text are dropped (with a logged count). Two-element rows give ``anchor`` and
    ``positive`` only (SimCSE without hard negatives).

    Args:
        triplets: ``(premise, entailment, contradiction)`` tuples, e.g. from :func:`snli_triplets` or
            :func:`read_simcse_nli_csv`.

    Returns:
        A Dataset whose columns, in order, are the loss's (anchor, positive[, negative]) inputs.

    Raises:
        ValueError: rows of mixed or unsupported lengths, or nothing left after dropping empty rows.
    """
    try:
        from datasets import Dataset
    except ImportError as error:
        raise ImportError(
            "nli_dataset needs the datasets package: pip install 'st-contrast[train]' (or pip install datasets)."
        ) from error

    rows = _clean_rows(triplets)
    names = ("anchor", "positive", "negative")[: len(rows[0])]
    return Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(names)})


def nli_examples(triplets: Iterable[Sequence[str]]) -> list[InputExample]:
    """``InputExample(texts=[premise, entailment, contradiction])`` per row, for ``model.fit``.

    Same input and checks as :func:`nli_dataset`.
    """
    from sentence_transformers import InputExample

    return [InputExample(texts=list(row)) for row in _clean_rows(triplets)]
