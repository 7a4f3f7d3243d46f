"""The one reading layer under every reader: decoding, lines, JSON, JSON Lines and CSV, with file:line errors.

Every reader in :mod:`st_contrast.data` and :mod:`st_contrast.evaluation` reads its files through these
functions, so every file gets the same rules:

* **Decoding.** UTF-8, strictly, by default; a UTF-8 byte-order mark (BOM) at the start of the file is
  dropped. A byte that is not UTF-8 is a :class:`DataFormatError` naming the file, the line, the column
  and the byte offset. ``encoding=`` names another codec (any Python knows, e.g. ``"latin-1"``,
  ``"utf-16"``); bytes are never replaced or dropped.
* **Line ends.** ``\\n``, ``\\r\\n`` and a lone ``\\r`` all end a line (Python's universal newlines), except
  in JSON Lines and CSV, where only ``\\n`` and ``\\r\\n`` do (a lone ``\\r`` is JSON whitespace; in CSV it
  may sit inside a quoted field). Line numbers count from 1, as an editor shows them.
* **Binary files.** A gzip-compressed file (recognised by its first bytes) is decompressed on the fly; a
  NUL byte in the text (a binary file read as text) is an error.
* **JSON.** Syntax errors are reported at ``file:line:column`` of the file (for JSON Lines, of the file, not
  of the record); a key repeated in one object is an error (``json`` would keep only the last value).
* **CSV.** Quoting is strict (an unclosed quote is an error, not a field that swallows the following rows),
  fields may be as long as memory allows (the ``csv`` module's default limit is 128 KiB), and every row
  must have as many fields as the header.

Errors are :class:`DataFormatError`, a ``ValueError`` whose message is ``file:line[:column]: what is wrong;
what was expected``.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import json
import logging
import math
import os
import re
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from st_contrast.data.paths import data_dirs, find_data_file

logger = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
#: The longest CSV field accepted; the ``csv`` module's own default (128 KiB) is shorter than real documents.
CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)

_UNIVERSAL_NEWLINE = re.compile(r"\r\n|\r|\n")
_LF_NEWLINE = re.compile(r"\r?\n")


class DataFormatError(ValueError):
    """A file does not hold what its reader expects.

    The message is ``file:line[:column]: what is wrong; what was expected`` (``file: where: ...`` for a JSON
    document, where ``where`` is a path inside it such as ``train[12]``). The parts are also attributes.

    Attributes:
        path: the file (as given, or ``archive!member`` for a file inside an archive).
        reason: what is wrong and what was expected.
        line: the line (from 1), or ``None`` when the problem is not on one line.
        column: the column (characters, from 1) on that line, or ``None``.
        where: a location inside a JSON document (e.g. ``train[12]``), or ``None``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        reason: str,
        line: int | None = None,
        column: int | None = None,
        where: str | None = None,
    ) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        self.column = column
        self.where = where
        location = self.path
        if line is not None:
            location += f":{line}"
            if column is not None:
                location += f":{column}"
        super().__init__(f"{location}: {where}: {reason}" if where else f"{location}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (e.g. across DataLoader workers) with all its parts
        return type(self), (self.path, self.reason, self.line, self.column, self.where)


def resolve_path(path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """``path`` if it exists; else, for a relative path, the first data folder holding it.

    Args:
        path: a file, absolute or relative to the working directory or to a data folder (e.g.
            ``unlabeled/wiki_sentences.txt``).
        data_dir: a data folder to search first (see :func:`st_contrast.data.data_dirs`).

    Raises:
        FileNotFoundError: the file is nowhere; the message names every place searched.
    """
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    if not candidate.is_absolute():
        found = find_data_file(str(candidate), data_dir, required=False)
        if found is not None and found.is_file():
            return found
        places = [str(candidate.resolve())] + [str(folder / candidate) for folder in data_dirs(data_dir)]
    else:
        places = [str(candidate)]
    raise FileNotFoundError(
        f"Could not find the file {str(path)!r}; looked at: {', '.join(places)}. Pass an existing path, or a path "
        "relative to a data folder (data_dir=..., or the ST_CONTRAST_DATA environment variable)."
    )


# ---------------------------------------------------------------------------------------------
# Bytes -> text
# ---------------------------------------------------------------------------------------------


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


@contextlib.contextmanager
def open_binary(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a file for reading bytes, decompressing it on the fly when it is gzip-compressed.

    Raises:
        FileNotFoundError: no such file.
        IsADirectoryError: ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file")
    with open(path, "rb") as raw:
        if raw.peek(2)[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
        else:
            yield raw


def _encoding_hint(encoding: str) -> str:
    if _is_utf8(encoding):
        return (
            "the file must be UTF-8 text: convert it (e.g. `iconv -f latin1 -t utf-8 in > out`) or pass "
            "encoding=... naming its real encoding"
        )
    return f"the file is not valid {encoding}: pass encoding=... naming its real encoding"


def _position(prefix: str) -> tuple[int, int]:
    """(line, column) just after ``prefix``, counting universal newlines; both from 1."""
    breaks = list(_UNIVERSAL_NEWLINE.finditer(prefix))
    line_start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, len(prefix) - line_start + 1


def _decode_failure(
    name: str, data: bytes, error: UnicodeDecodeError, encoding: str, base: int = 0
) -> DataFormatError:
    """A :class:`DataFormatError` for ``error`` raised while decoding ``data`` (which starts at byte ``base``)."""
    line, column = _position(data[: error.start].decode(encoding, errors="replace"))
    bad = data[error.start : max(error.end, error.start + 1)][:8]
    return DataFormatError(
        name,
        f"byte(s) {bad.hex(' ')} at byte offset {base + error.start} cannot be decoded as {encoding} "
        f"({error.reason}); {_encoding_hint(encoding)}",
        line=line,
        column=column,
    )


def _nul_failure(name: str, text: str, index: int, line: int | None = None) -> DataFormatError:
    if line is None:
        line, column = _position(text[:index])
    else:
        column = index + 1
    return DataFormatError(
        name,
        "a NUL byte (\\x00) in the text: this looks like a binary file; expected a text file",
        line=line,
        column=column,
    )


def decode_bytes(data: bytes, name: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Decode a whole file's bytes with the layer's rules (BOM dropped, strict decoding, no NUL bytes).

    Args:
        data: the file's bytes (e.g. a member read from an archive).
        name: the file's name for error messages (e.g. ``archive.tar.gz!member.txt``).
        encoding: the file's encoding (UTF-8 by default).

    Returns:
        The text, line ends as in the file (split it with :func:`split_lines`).

    Raises:
        DataFormatError: a byte that is not valid in ``encoding``, or a NUL byte.
    """
    name = str(name)
    base = 0
    if _is_utf8(encoding):
        encoding = "utf-8"
        if data.startswith(UTF8_BOM):
            data, base = data[len(UTF8_BOM) :], len(UTF8_BOM)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise _decode_failure(name, data, error, encoding, base) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise _nul_failure(name, text, nul)
    return text


def split_lines(text: str, universal: bool = True) -> list[str]:
    """The lines of ``text`` without their ends; a final line end does not start another (empty) line.

    ``universal`` splits at ``\\n``, ``\\r\\n`` and a lone ``\\r``; otherwise only at ``\\n`` and ``\\r\\n``.
    Unlike ``str.splitlines`` it never splits at other characters (``\\x1c``, ``\\u2028``, ...), which occur
    inside real sentences.
    """
    if not text:
        return []
    lines = (_UNIVERSAL_NEWLINE if universal else _LF_NEWLINE).split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A whole text file, decoded with the layer's rules (see :func:`decode_bytes`)."""
    with open_binary(path) as handle:
        data = _read_all(handle, path)
    return decode_bytes(data, path, encoding)


def _read_all(handle: IO[bytes], path: str | os.PathLike) -> bytes:
    try:
        return handle.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataFormatError(
            path, f"the gzip data is corrupt or cut short ({error}); expected a whole file"
        ) from None


def iter_lines(
    path: str | os.PathLike, encoding: str = "utf-8", universal: bool = True, keepends: bool = False
) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for every line of a text file, streamed (blank lines included).

    Args:
        path: the file (gzip-compressed files are decompressed on the fly).
        encoding: the file's encoding. UTF-8 (the default) is decoded line by line, so an invalid byte is
            reported with its line, column and byte offset; other encodings decode the whole file first.
        universal: a lone ``\\r`` ends a line too (see :func:`split_lines`).
        keepends: keep each line's end (``\\n`` or ``\\r\\n``; only with ``universal=False``), for the csv
            module.

    Yields:
        The line number (from 1) and the line, without its end unless ``keepends``; the BOM is dropped.

    Raises:
        DataFormatError: a byte that cannot be decoded, a NUL byte, or corrupt gzip data.
        FileNotFoundError: no such file.
    """
    if keepends and universal:
        raise ValueError("keepends=True needs universal=False (a lone \\r is then kept inside its line)")
    name = str(path)
    with open_binary(path) as handle:
        if not _is_utf8(encoding):
            text = decode_bytes(_read_all(handle, path), name, encoding)
            if keepends:
                pieces = re.split(r"(?<=\n)", text)
                lines = [piece for piece in pieces if piece]
            else:
                lines = split_lines(text, universal)
            yield from enumerate(lines, start=1)
            return
        number = 0
        offset = 0
        try:
            for raw in handle:
                start = offset
                offset += len(raw)
                if number == 0 and raw.startswith(UTF8_BOM):
                    raw, start = raw[len(UTF8_BOM) :], start + len(UTF8_BOM)
                if keepends:
                    pieces = [raw]
                else:
                    body = raw[:-1] if raw.endswith(b"\n") else raw
                    if body.endswith(b"\r"):
                        body = body[:-1]
                    pieces = body.split(b"\r") if universal and b"\r" in body else [body]
                for piece in pieces:
                    number += 1
                    try:
                        text = piece.decode("utf-8")
                    except UnicodeDecodeError as error:
                        failure = _decode_failure(name, piece, error, "utf-8", start)
                        raise DataFormatError(name, failure.reason, number, failure.column) from None
                    nul = text.find("\x00")
                    if nul >= 0:
                        raise _nul_failure(name, text, nul, number)
                    yield number, text
                    start += len(piece) + 1
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise DataFormatError(
                name, f"the gzip data is corrupt or cut short after line {number} ({error}); expected a whole file"
            ) from None


def read_lines(path: str | os.PathLike, encoding: str = "utf-8") -> list[str]:
    """Every line of a text file, exactly (no stripping, blank lines kept), for line-aligned files.

    Only ``\\n`` and ``\\r\\n`` end a line here, so a stray ``\\r`` inside a line cannot shift the alignment of
    every line after it.
    """
    return [text for _, text in iter_lines(path, encoding, universal=False)]


# ---------------------------------------------------------------------------------------------
# JSON and JSON Lines
# ---------------------------------------------------------------------------------------------


def _unique_keys(name: str, line: int | None = None) -> Any:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            repeated = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
            raise DataFormatError(
                name,
                f"the key {repeated!r} appears twice in one JSON object (only the last value would be kept); "
                "expected unique keys",
                line=line,
            )
        return result

    return build


def parse_json(
    text: str, name: str | os.PathLike, line: int | None = None, expected: str = "a valid JSON document"
) -> Any:
    """Parse JSON text; a syntax error or a repeated key is a :class:`DataFormatError` with its position.

    Args:
        text: the JSON text.
        name: the file, for messages.
        line: the file line ``text`` starts on (JSON Lines); positions are then of the file.
        expected: what the file should hold, for the message.
    """
    name = str(name)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys(name, line))
    except json.JSONDecodeError as error:
        at_line = error.lineno if line is None else line + error.lineno - 1
        raise DataFormatError(
            name, f"invalid JSON ({error.msg}); expected {expected}", line=at_line, column=error.colno
        ) from None


def read_json(path: str | os.PathLike, encoding: str = "utf-8") -> Any:
    """A JSON document (e.g. CLINC150's ``data_full.json``), read and parsed with the layer's rules.

    Raises:
        DataFormatError: the file is empty, cannot be decoded, is not valid JSON (with line and column), or
            repeats a key inside an object.
    """
    text = read_text(path, encoding)
    if not text.strip():
        raise DataFormatError(path, "the file is empty; expected a JSON document")
    return parse_json(text, path)


def iter_jsonl(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, Any]]:
    """``(line_number, value)`` for every record of a JSON Lines file (one JSON value per line), streamed.

    Blank lines are skipped; how many is logged (a warning) once the file has been read.

    Raises:
        DataFormatError: a line that is not valid JSON, at ``file:line:column`` of the file.
    """
    blank = 0
    for number, text in iter_lines(path, encoding, universal=False):
        if not text.strip():
            blank += 1
            continue
        try:
            value = parse_json(text, path, number, "one complete JSON value per line (is the line cut short?)")
        except DataFormatError as error:
            if number == 1 and text.strip() in ("[", "{"):
                raise DataFormatError(
                    path,
                    f"{error.reason}; this looks like one JSON document spread over several lines, not JSON Lines",
                    error.line,
                    error.column,
                ) from None
            raise
        yield number, value
    if blank:
        logger.warning(f"{path}: skipped {blank} blank line(s) of the JSON Lines file.")


# ---------------------------------------------------------------------------------------------
# CSV / TSV
# ---------------------------------------------------------------------------------------------


@dataclass
class Table:
    """A delimited file: its header and its rows, each with the line it starts on."""

    path: str
    header: list[str]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    blank_lines: int = 0
    header_line: int | None = None


@contextlib.contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_table(
    path: str | os.PathLike,
    delimiter: str = ",",
    quoting: bool = True,
    encoding: str = "utf-8",
    header: bool = True,
    field_count: int | None = None,
) -> Table:
    """Read a CSV (``quoting=True``: the ``csv`` module, strict) or a plain delimited file (split only).

    Every row must have as many fields as the header (or ``field_count``); blank lines are skipped and
    counted in :attr:`Table.blank_lines` (the caller logs them with what else it skipped).

    Args:
        path: the file.
        delimiter: the field separator (``","`` for CSV, ``"\\t"`` for TSV).
        quoting: parse ``"``-quoting as CSV does (quoted fields may hold delimiters, ``""`` and newlines);
            ``False`` splits each line at the delimiter only (for TSV files whose text holds stray quotes).
        encoding: the file's encoding.
        header: the first non-blank row is the header (names must be non-empty and distinct).
        field_count: the number of fields every row must have when there is no header (``None``: as many as
            the first row).

    Raises:
        DataFormatError: the file is empty; a header with an empty or repeated name; a row with another
            number of fields; an unclosed quote or another CSV quoting error; a byte that cannot be decoded.
    """
    name = str(path)
    table = Table(name, [])
    expected = field_count
    for number, fields in _delimited_rows(path, delimiter, quoting, encoding):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            table.blank_lines += 1
            continue
        if header and not table.header:
            _check_header(name, number, fields)
            table.header, table.header_line = fields, number
            expected = len(fields)
            continue
        if expected is None:
            expected = len(fields)
        if len(fields) != expected:
            names = f" ({', '.join(table.header)})" if table.header else ""
            than = "the header" if table.header else "the first row"
            raise DataFormatError(
                name,
                f"the row has {'fewer' if len(fields) < expected else 'more'} fields than {than}: {len(fields)}, "
                f"expected {expected}{names}: {_preview(fields)}",
                line=number,
            )
        table.rows.append((number, fields))
    if header and not table.header:
        raise DataFormatError(name, "the file is empty; expected a header line naming the columns, then rows")
    return table


def _check_header(name: str, line: int, fields: list[str]) -> None:
    stripped = [f.strip() for f in fields]
    if any(not f for f in stripped):
        raise DataFormatError(name, f"the header has an empty column name: {_preview(fields)}", line=line)
    repeated = sorted({f for f in stripped if stripped.count(f) > 1})
    if repeated:
        raise DataFormatError(
            name, f"the header names the column(s) {repeated} more than once; expected distinct names", line=line
        )


def _delimited_rows(
    path: str | os.PathLike, delimiter: str, quoting: bool, encoding: str
) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` per row (a blank line gives ``[]``)."""
    name = str(path)
    if not quoting:
        for number, text in iter_lines(path, encoding):
            yield number, (text.split(delimiter) if text.strip() else [])
        return
    lines = (text for _, text in iter_lines(path, encoding, universal=False, keepends=True))
    with _csv_field_limit(CSV_FIELD_LIMIT):
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        start = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                if "unexpected end of data" in str(error):
                    reason = (
                        f"a quoted field opened on line {start} is never closed (the file ends inside it); "
                        'expected a closing " (write a quote inside a quoted field as "")'
                    )
                else:
                    reason = f"malformed CSV ({error}); expected fields quoted as in RFC 4180"
                raise DataFormatError(name, reason, line=reader.line_num) from None
            yield start, fields
            start = reader.line_num + 1


def _preview(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Record validation
# ---------------------------------------------------------------------------------------------


def check_text(
    value: Any,
    path: str | os.PathLike,
    what: str,
    line: int | None = None,
    where: str | None = None,
    allow_empty: bool = False,
) -> str:
    """``value`` if it is a string (non-empty, unless ``allow_empty``); else a :class:`DataFormatError`."""
    if not isinstance(value, str):
        raise DataFormatError(
            path, f"{what} must be text (a string), got {type(value).__name__} {_preview(value)}", line, where=where
        )
    if not allow_empty and not value.strip():
        raise DataFormatError(path, f"{what} is empty; expected text", line, where=where)
    return value


def check_number(
    value: Any,
    path: str | os.PathLike,
    what: str,
    line: int | None = None,
    where: str | None = None,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """``value`` as a finite float within ``[low, high]``; a number or numeric text, never a bool."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is None:
        raise DataFormatError(
            path, f"{what} holds {_preview(value)}, not a number; expected a finite number", line, where=where
        )
    if not math.isfinite(number):
        raise DataFormatError(path, f"{what} holds {_preview(value)}; expected a finite number", line, where=where)
    if (low is not None and number < low) or (high is not None and number > high):
        raise DataFormatError(
            path,
            f"{what} holds {_preview(value)}, outside the scale [{low}, {high}]; expected a value on it",
            line,
            where=where,
        )
    return number


def log_skipped(
    log: logging.Logger, path: str | os.PathLike, kept: int, what: str, skipped: Mapping[str, int]
) -> None:
    """Log (a warning) how many of each kind of input were skipped, when any was."""
    parts = [f"{count} {reason}" for reason, count in skipped.items() if count]
    if parts:
        log.warning(f"{path}: read {kept} {what}; skipped {', '.join(parts)}.")
