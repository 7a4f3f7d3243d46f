"""The malformed-file table every reader's tests run: one valid file per reader, the same damage done to each.

Each reader's test module describes a valid file for it in a :class:`ReaderCase` and parametrizes one test
over :data:`VARIANTS`; :func:`check` writes the damaged copy and asserts either rows in == rows out (the
same rows as from the valid file, compared with ``==``) or the exact error: a ``DataFormatError`` whose
message starts with the file's path and, where the damage sits on one line, that line's number.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from st_contrast.data.reading import DataFormatError

#: Longer than the csv module's default field limit (128 KiB), on one line.
HUGE = "x" * 200_000
HUGE_MARKER = "{HUGE}"

VARIANTS = (
    "valid",
    "missing_file",
    "empty_file",
    "only_blank_lines",
    "blank_lines",
    "crlf",
    "lone_cr",
    "bom",
    "bom_crlf",
    "gzip",
    "invalid_utf8",
    "nul_byte",
    "huge_line",
    "truncated_last_line",
)


@dataclass
class ReaderCase:
    """A reader and a valid file for it.

    Attributes:
        name: the file name to write.
        lines: the valid file's lines (written with ``\\n`` ends, a final one included). ``{HUGE}`` marks where
            the huge-line variant puts :data:`HUGE` (``huge`` otherwise). Lines are ASCII.
        read: reads a path and returns the rows (compared with ``==``).
        rows: how many rows the valid file gives (``count(rows)``).
        record_line: a line (from 1) of record text, where the invalid byte and the NUL byte go.
        count: counts the rows (``len`` by default).
        blank_after: lines (from 1) after which blank lines may go (``None``: after any line); blank lines
            always go first and last too.
        blank_lines_warn: blank lines are skipped with a logged warning (else they are part of the format,
            such as JSON whitespace or the separators of SemEval and WikiText).
        lone_cr: a file whose lines end with a lone ``\\r`` reads the same (``"same"``) or is refused.
        truncated: cutting the last record line short is refused (``"error"``) or cannot be told from a
            shorter record (``"same_count"``).
        truncated_line: the line (from 1) cut short (default: the last line).
        error_line_of_truncation: whether the error for the cut line names that line.
    """

    name: str
    lines: Sequence[str]
    read: Callable[[Path], Any]
    rows: int
    record_line: int
    count: Callable[[Any], int] = len
    blank_after: Sequence[int] | None = None
    blank_lines_warn: bool = True
    lone_cr: Literal["same", "error"] = "same"
    truncated: Literal["error", "same_count"] = "error"
    truncated_line: int | None = None
    error_line_of_truncation: bool = True

    def text(self, huge: bool = False) -> str:
        return "\n".join(self.lines).replace(HUGE_MARKER, HUGE if huge else "huge") + "\n"


def _with_blank_lines(case: ReaderCase) -> str:
    out = ["", "   "]
    for number, line in enumerate(case.lines, start=1):
        out.append(line)
        if case.blank_after is None or number in case.blank_after:
            out.extend(["", " \t "])
    return "\n".join(out).replace(HUGE_MARKER, "huge") + "\n\n"


def _damaged_line(case: ReaderCase, insert: bytes) -> bytes:
    lines = [line.replace(HUGE_MARKER, "huge").encode("utf-8") for line in case.lines]
    target = lines[case.record_line - 1]
    middle = len(target) // 2
    lines[case.record_line - 1] = target[:middle] + insert + target[middle:]
    return b"\n".join(lines) + b"\n"


def _truncated(case: ReaderCase) -> tuple[str, int]:
    number = case.truncated_line or len(case.lines)
    lines = [line.replace(HUGE_MARKER, "huge") for line in case.lines[:number]]
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return "\n".join(lines), number


def _refused(case: ReaderCase, path: Path, line: int | None = None) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        case.read(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    if line is not None:
        assert message.startswith(f"{path}:{line}:"), message
        assert info.value.line == line
    return info.value


def check(case: ReaderCase, variant: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Write ``variant`` of ``case``'s file and assert what the reader must do with it."""
    valid_path = tmp_path / f"valid-{case.name}"
    valid_path.write_bytes(case.text().encode("utf-8"))
    expected = case.read(valid_path)
    assert case.count(expected) == case.rows
    path = tmp_path / case.name
    text = case.text()
    same: bytes | None = None
    if variant == "valid":
        return
    if variant == "missing_file":
        with pytest.raises(FileNotFoundError, match=case.name):
            case.read(tmp_path / "missing" / case.name)
        return
    if variant in ("empty_file", "only_blank_lines"):
        path.write_bytes(b"" if variant == "empty_file" else b"\n  \n\t\n\n")
        _refused(case, path)
        return
    if variant == "blank_lines":
        path.write_text(_with_blank_lines(case), encoding="utf-8")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert case.read(path) == expected
        if case.blank_lines_warn:
            assert any(record.levelno == logging.WARNING for record in caplog.records), caplog.text
        return
    if variant == "crlf":
        same = text.replace("\n", "\r\n").encode("utf-8")
    elif variant == "bom":
        same = b"\xef\xbb\xbf" + text.encode("utf-8")
    elif variant == "bom_crlf":
        same = b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8")
    elif variant == "gzip":
        same = gzip.compress(text.encode("utf-8"))
    elif variant == "lone_cr":
        path.write_bytes(text.replace("\n", "\r").encode("utf-8"))
        if case.lone_cr == "same":
            assert case.read(path) == expected
        else:
            _refused(case, path)
        return
    elif variant in ("invalid_utf8", "nul_byte"):
        path.write_bytes(_damaged_line(case, b"\xff" if variant == "invalid_utf8" else b"\x00"))
        error = _refused(case, path, case.record_line)
        assert ("byte offset" in error.reason) if variant == "invalid_utf8" else ("NUL byte" in error.reason)
        return
    elif variant == "huge_line":
        path.write_text(case.text(huge=True), encoding="utf-8")
        rows = case.read(path)
        assert case.count(rows) == case.rows
        assert HUGE in repr(rows), "the huge line's text did not come through whole"
        return
    elif variant == "truncated_last_line":
        cut, number = _truncated(case)
        path.write_text(cut, encoding="utf-8")
        if case.truncated == "error":
            _refused(case, path, number if case.error_line_of_truncation else None)
        else:
            assert case.count(case.read(path)) == case.rows
        return
    else:  # pragma: no cover - a typo in a test's parameters
        raise AssertionError(f"unknown variant {variant!r}")
    path.write_bytes(same)
    assert case.read(path) == expected
