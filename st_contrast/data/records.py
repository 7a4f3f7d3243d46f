"""Generic training records from JSON Lines, CSV or TSV: validated rows whose columns feed a loss directly.

=================================  ============================================  ==============================
reader                             produces                                      consumed by
=================================  ============================================  ==============================
:func:`read_records`               :class:`Records` (a list of ``dict`` rows)    any loss whose Inputs table
                                                                                 names the file's columns
:meth:`Records.dataset`            ``datasets.Dataset`` with those columns       ``SentenceTransformerTrainer``
=================================  ============================================  ==============================

Every row has the same keys as the first record (or the CSV header) or the file is refused at the
offending line; each column holds one type of value (non-empty text in text columns; JSON ``null`` is
refused, never passed on); the label column (``label``, ``labels``, ``score`` or ``scores``, the names
sentence-transformers treats as labels, or ``label_column=``) is converted to one declared type. Nothing is
skipped except blank lines, which are counted and logged.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from st_contrast.data.reading import (
    DataFormatError,
    check_number,
    check_text,
    iter_jsonl,
    log_skipped,
    read_table,
    resolve_path,
)

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

#: The column names sentence-transformers passes to a loss as labels rather than as texts.
LABEL_COLUMNS = ("label", "labels", "score", "scores")
RECORD_FORMATS = ("jsonl", "csv", "tsv")
LABEL_TYPES = ("int", "float", "name")

RecordFormat = Literal["jsonl", "csv", "tsv"]
LabelType = Literal["int", "float", "name"]

_INTEGER = re.compile(r"[+-]?\d+")


class Records(list):
    """The rows :func:`read_records` read (``dict`` column → value, keys in :attr:`columns` order).

    Attributes:
        path: the file read.
        columns: the columns of every row, in order.
        label_column: the label column, or ``None`` when the rows have none.
        label_type: ``"int"``, ``"float"`` or ``"name"`` (names mapped to ids), or ``None`` without labels.
        label_names: for ``label_type="name"``, the names in id order (id ``i`` is ``label_names[i]``).
        column_types: each column's kind of value: ``"text"``, ``"number"``, ``"bool"``, ``"list"`` or
            ``"object"`` (the label column's is ``"label"``).
    """

    def __init__(
        self,
        rows: Iterable[dict[str, Any]],
        path: str,
        columns: Sequence[str],
        label_column: str | None,
        label_type: str | None,
        label_names: Sequence[str] | None,
        column_types: dict[str, str] | None = None,
    ) -> None:
        super().__init__(rows)
        self.path = path
        self.columns = list(columns)
        self.label_column = label_column
        self.label_type = label_type
        self.label_names = list(label_names) if label_names is not None else None
        self.column_types = dict(column_types or {})

    @property
    def text_columns(self) -> list[str]:
        """The columns that hold texts."""
        return [column for column in self.columns if self.column_types.get(column) == "text"]

    def dataset(self) -> Dataset:
        """A ``datasets.Dataset`` with :attr:`columns` in order (the Trainer's input)."""
        try:
            from datasets import Dataset
        except ImportError as error:
            raise ImportError(
                "Records.dataset needs the datasets package: pip install 'st-contrast[train]' (or pip install "
                "datasets)."
            ) from error
        return Dataset.from_dict({column: [row[column] for row in self] for column in self.columns})


def read_records(
    path: str | os.PathLike,
    format: RecordFormat,  # noqa: A002 - the word users write (``--train-format``)
    columns: Sequence[str] | None = None,
    label_column: str | None = None,
    label_type: LabelType | None = None,
    label_names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    data_dir: str | os.PathLike | None = None,
) -> Records:
    """Read training rows from a JSON Lines, CSV or TSV file, validated row by row.

    * ``jsonl``: one JSON object per line, ``{"column": value, ...}``.
    * ``csv``: a header line naming the columns, then rows, parsed with the ``csv`` module (strict quoting;
      quoted fields may hold commas, ``""`` and newlines; fields of any length).
    * ``tsv``: a header line, then rows split at tabs only, with no quoting (so text may hold stray ``"``, as
      in the STS and SNLI files).

    Rules, each enforced with a :class:`~st_contrast.data.reading.DataFormatError` naming the file and line:

    * every record has exactly the keys of the first record (CSV/TSV: every row as many fields as the
      header); ``columns`` picks the columns returned, in order (each must be in the file);
    * every column holds one kind of value throughout: text (non-empty strings), numbers, booleans, lists or
      objects; JSON ``null`` is refused, as is a number in a text column or ``""`` (CSV/TSV values are text);
    * the label column holds values of one type: ``label_type="int"`` (class ids), ``"float"`` (scores,
      finite) or ``"name"`` (label names, mapped to ids ``0..n-1``: in ``label_names`` order when given,
      else sorted). Without ``label_type``, JSON numbers keep their type (floats when any is a float) and
      CSV text is converted to int when every label is an integer, else to float; text that is not a number
      then asks for ``label_type="name"``.

    Blank lines are skipped with a logged count; nothing else is skipped.

    Args:
        path: the file; a relative path that does not exist is also looked up in the data folders.
        format: ``"jsonl"``, ``"csv"`` or ``"tsv"``.
        columns: the columns to return, in the order the Dataset gets them (default: all, in file order).
        label_column: the label column; by default the one of ``label``, ``labels``, ``score``, ``scores``
            that is present (none: no labels).
        label_type: ``"int"``, ``"float"`` or ``"name"``; see above.
        label_names: with ``label_type="name"``, the allowed names in id order.
        encoding: the file's encoding (UTF-8 by default; a BOM is dropped).
        data_dir: a data folder to search first for a relative ``path``.

    Returns:
        :class:`Records`: the rows in file order, with their columns and label mapping.

    Raises:
        FileNotFoundError: the file is nowhere; the message names the places searched.
        ValueError: a bad argument (unknown format or label type, label column not among the columns).
        DataFormatError: any rule above is broken, or the file holds no rows.

    Example:
        ::

            records = read_records("pairs.jsonl", "jsonl", label_type="float")  # anchor, positive, score
            trainer = SentenceTransformerTrainer(model=model, train_dataset=records.dataset(), loss=loss)
    """
    if format not in RECORD_FORMATS:
        raise ValueError(f"format must be one of {', '.join(RECORD_FORMATS)}, got {format!r}.")
    if label_type is not None and label_type not in LABEL_TYPES:
        raise ValueError(f"label_type must be one of {', '.join(LABEL_TYPES)} or None, got {label_type!r}.")
    if label_names is not None and label_type != "name":
        raise ValueError(f"label_names needs label_type='name', got label_type={label_type!r}.")
    if columns is not None:
        columns = list(columns)
        if not columns or len(set(columns)) != len(columns):
            raise ValueError(f"columns must be distinct column names, at least one, got {columns}.")
    resolved = resolve_path(path, data_dir)
    name = str(resolved)
    if format == "jsonl":
        rows, file_columns, blank = _jsonl_rows(resolved, encoding)
    else:
        rows, file_columns, blank = _table_rows(resolved, format, encoding)
    if not rows:
        raise DataFormatError(name, f"the file holds no records; expected {format} rows")
    if columns is None:
        columns = file_columns
    else:
        absent = [column for column in columns if column not in file_columns]
        if absent:
            raise DataFormatError(
                name, f"the file has no column(s) {absent}; its columns are {file_columns}", rows[0][0]
            )
    label = _label_column(name, columns, label_column, label_type)
    kinds = _check_column_kinds(name, rows, [column for column in columns if column != label])
    mapping: list[str] | None = None
    resolved_type: str | None = None
    if label is not None:
        from_text = format != "jsonl"
        resolved_type, mapping = _convert_labels(name, rows, label, label_type, label_names, from_text)
        kinds[label] = "label"
    log_skipped(logger, name, len(rows), "records", {"blank lines": blank})
    ordered = ({column: row[column] for column in columns} for _, row in rows)
    return Records(ordered, name, columns, label, resolved_type, mapping, {c: kinds[c] for c in columns})


def _jsonl_rows(path: os.PathLike, encoding: str) -> tuple[list[tuple[int, dict[str, Any]]], list[str], int]:
    rows: list[tuple[int, dict[str, Any]]] = []
    columns: list[str] | None = None
    for line, value in iter_jsonl(path, encoding):
        if not isinstance(value, dict):
            raise DataFormatError(
                path,
                f"expected a JSON object {{column: value, ...}}, got {type(value).__name__} {str(value)[:60]!r}",
                line,
            )
        if columns is None:
            columns = list(value)
            if not columns:
                raise DataFormatError(path, "the first record is an empty object {}; expected named columns", line)
        _check_keys(path, line, value.keys(), columns)
        rows.append((line, value))
    return rows, columns or [], 0  # iter_jsonl logs the blank lines it skips


def _table_rows(
    path: os.PathLike, format: str, encoding: str
) -> tuple[list[tuple[int, dict[str, Any]]], list[str], int]:
    delimiter, quoting = ("\t", False) if format == "tsv" else (",", True)
    table = read_table(path, delimiter=delimiter, quoting=quoting, encoding=encoding)
    header = [name.strip() for name in table.header]
    rows = [(line, dict(zip(header, fields))) for line, fields in table.rows]
    return rows, header, table.blank_lines


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "object"


def _check_column_kinds(path: str, rows: list[tuple[int, dict[str, Any]]], columns: list[str]) -> dict[str, str]:
    """Each column's kind (that of its first value); a value of another kind, ``null`` or ``""`` is an error."""
    kinds: dict[str, str] = {}
    for line, row in rows:
        for column in columns:
            value = row[column]
            kind = _kind(value)
            expected = kinds.setdefault(column, kind or "text")
            if kind is None:
                raise DataFormatError(path, f"column {column!r} is null; expected {_a(expected)}", line)
            if kind != expected:
                raise DataFormatError(
                    path,
                    f"column {column!r} holds {_a(kind)} ({str(value)[:40]!r}) where the first record has "
                    f"{_a(expected)}; expected one kind of value per column",
                    line,
                )
            if kind == "text" and not value.strip():
                raise DataFormatError(path, f"column {column!r} is empty; expected text", line)
            if kind == "number" and not math.isfinite(value):
                raise DataFormatError(path, f"column {column!r} holds {value!r}; expected a finite number", line)
    return kinds


def _a(kind: str) -> str:
    return {"text": "text", "number": "a number", "bool": "a boolean", "list": "a list", "object": "an object"}[kind]


def _check_keys(path: os.PathLike, line: int, keys: Iterable[str], columns: Sequence[str]) -> None:
    keys = list(keys)
    missing = [column for column in columns if column not in keys]
    extra = [key for key in keys if key not in columns]
    if missing or extra:
        parts = ([f"lacks {missing}"] if missing else []) + ([f"has the unexpected {extra}"] if extra else [])
        raise DataFormatError(
            path,
            f"the record {' and '.join(parts)}; every record must have the keys of the first one, {list(columns)}",
            line,
        )


def _label_column(path: str, columns: list[str], label_column: str | None, label_type: str | None) -> str | None:
    if label_column is not None:
        if label_column not in columns:
            raise ValueError(f"label_column {label_column!r} is not a column of {path} (columns: {columns}).")
        return label_column
    found = [column for column in columns if column in LABEL_COLUMNS]
    if len(found) > 1:
        raise ValueError(f"{path} has several label columns {found}; pass label_column=... naming the one to use.")
    if not found and label_type is not None:
        raise ValueError(
            f"label_type={label_type!r} was given but {path} has no label column (columns: {columns}); pass "
            f"label_column=... or name the column one of {', '.join(LABEL_COLUMNS)}."
        )
    return found[0] if found else None


def _convert_labels(
    path: str,
    rows: list[tuple[int, dict[str, Any]]],
    column: str,
    label_type: str | None,
    label_names: Sequence[str] | None,
    from_text: bool,
) -> tuple[str, list[str] | None]:
    """Convert the label column in place; returns the label type used and, for names, the id order."""
    what = f"the label column {column!r}"
    if label_type is None:
        label_type = _infer_label_type(path, rows, column, from_text)
    if label_type == "name":
        for line, row in rows:
            check_text(row[column], path, what, line)
        names = list(label_names) if label_names is not None else sorted({row[column].strip() for _, row in rows})
        ids = {name: index for index, name in enumerate(names)}
        for line, row in rows:
            value = row[column].strip()
            if value not in ids:
                raise DataFormatError(
                    path, f"{what} holds {value!r}, not one of label_names ({_names_preview(names)})", line
                )
            row[column] = ids[value]
        return label_type, names
    for line, row in rows:
        value = row[column]
        if label_type == "int":
            row[column] = _to_int(path, line, what, value, from_text)
        elif not from_text and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise DataFormatError(
                path, f"{what} holds {type(value).__name__} {value!r}; label_type='float' expects JSON numbers", line
            )
        else:
            row[column] = check_number(value, path, what, line)
    return label_type, None


def _infer_label_type(path: str, rows: list[tuple[int, dict[str, Any]]], column: str, from_text: bool) -> str:
    """``"int"`` when every label is an integer, else ``"float"``; text that is no number is an error."""
    what = f"the label column {column!r}"
    kind = "int"
    for line, row in rows:
        value = row[column]
        if from_text and _INTEGER.fullmatch(value.strip()):
            continue
        if not from_text and isinstance(value, int) and not isinstance(value, bool):
            continue
        numeric = isinstance(value, float) or (from_text and _is_float(value))
        if not numeric:
            raise DataFormatError(
                path,
                f"{what} holds {type(value).__name__} {value!r}; expected numbers (class ids or scores), or pass "
                "label_type='name' to map label names to ids",
                line,
            )
        check_number(value, path, what, line)  # finite
        kind = "float"
    return kind


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _to_int(path: str, line: int, what: str, value: Any, from_text: bool) -> int:
    if from_text and isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    if not from_text and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise DataFormatError(
        path,
        f"{what} holds {value!r}; label_type='int' expects integer class ids (use 'float' for scores, 'name' for "
        "label names)",
        line,
    )


def _names_preview(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f", ... ({len(names)} names)" if len(names) > limit else "")
