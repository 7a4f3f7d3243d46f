"""Long documents for DeCLUTR: a folder of text files, a JSON Lines file of documents, or WikiText articles.

=================================  ==================================================  ==========================
reader                             reads                                               gives
=================================  ==================================================  ==========================
:func:`read_document_folder`       every ``*.txt`` file of a folder (sorted), one      ``(name, text)`` pairs
                                   document per file
:func:`read_document_jsonl`        one JSON object per line with a text field          ``(name, text)`` pairs
                                   (``text`` or ``document``, or ``text_field=``)
:func:`read_documents`             any of the above, or a WikiText file (`` = Title =  ``(name, text)`` pairs
                                   `` lines), chosen by what ``path`` is
=================================  ==================================================  ==========================

Files are read with :mod:`st_contrast.data.reading`'s rules (strict UTF-8, a BOM dropped, file:line errors).
Empty documents are skipped and counted (a logged warning); nothing else is skipped. The texts feed
:class:`~st_contrast.data.declutr.DeCLUTRSpanSampler`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from st_contrast.data.reading import DataFormatError, iter_jsonl, iter_lines, log_skipped, read_text, resolve_path

logger = logging.getLogger(__name__)

DocumentLayout = Literal["auto", "folder", "jsonl", "wikitext"]
TEXT_FIELDS = ("text", "document")


def read_document_folder(
    folder: str | os.PathLike, pattern: str = "*.txt", encoding: str = "utf-8"
) -> list[tuple[str, str]]:
    """``(file name, text)`` for every file matching ``pattern`` in ``folder`` (sorted by name; not recursive).

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
        DataFormatError: no file matches, every file is empty, or a file is not valid ``encoding``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder of documents")
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not files:
        raise DataFormatError(folder, f"no file matches {pattern!r}; expected one document per text file")
    documents = [(path.name, read_text(path, encoding).strip()) for path in files]
    kept = [(name, text) for name, text in documents if text]
    if not kept:
        raise DataFormatError(folder, f"all {len(files)} files matching {pattern!r} are empty")
    log_skipped(logger, folder, len(kept), "documents", {"empty files": len(documents) - len(kept)})
    return kept


def read_document_jsonl(
    path: str | os.PathLike, text_field: str | None = None, encoding: str = "utf-8"
) -> list[tuple[str, str]]:
    """``(name, text)`` per line of a JSON Lines file of objects (``{"text": ...}`` or ``{"document": ...}``).

    ``name`` is the record's ``id`` (or ``title``) when it has one, else ``line N``.

    Raises:
        DataFormatError: a line that is not an object, lacks the text field, or whose text is not a string
            (file and line), or the file holds no document with text.
    """
    documents: list[tuple[str, str]] = []
    empty = 0
    field = text_field
    for line, record in iter_jsonl(path, encoding):
        if not isinstance(record, dict):
            raise DataFormatError(path, f"expected a JSON object per line, got {type(record).__name__}", line)
        if field is None:
            found = [name for name in TEXT_FIELDS if name in record]
            if not found:
                raise DataFormatError(
                    path, f"no text field: expected one of {list(TEXT_FIELDS)}, got keys {sorted(record)}", line
                )
            field = found[0]
        if field not in record:
            raise DataFormatError(path, f"the record has no {field!r} field (keys {sorted(record)})", line)
        text = record[field]
        if not isinstance(text, str):
            raise DataFormatError(path, f"{field!r} must be a string, got {type(text).__name__}", line)
        if not text.strip():
            empty += 1
            continue
        name = record.get("id", record.get("title", f"line {line}"))
        documents.append((str(name), text.strip()))
    if not documents:
        raise DataFormatError(path, "no document with text; expected one JSON object with a text field per line")
    log_skipped(logger, path, len(documents), "documents", {"empty documents": empty})
    return documents


def _looks_like_wikitext(path: Path, encoding: str) -> bool:
    from st_contrast.data.declutr import _TITLE

    for index, (_, line) in enumerate(iter_lines(path, encoding)):
        if _TITLE.match(line):
            return True
        if index > 200:
            return False
    return False


def _resolve(path: str | os.PathLike, data_dir: str | os.PathLike | None) -> Path:
    """``path`` as a folder or file, a relative one also looked up in the data folders."""
    candidate = Path(path)
    if candidate.is_dir():
        return candidate
    if not candidate.is_absolute() and not candidate.exists():
        from st_contrast.data.paths import find_data_file

        found = find_data_file(str(candidate), data_dir, required=False)
        if found is not None and found.is_dir():
            return found
    return resolve_path(path, data_dir)


def read_documents(
    path: str | os.PathLike,
    layout: DocumentLayout = "auto",
    text_field: str | None = None,
    data_dir: str | os.PathLike | None = None,
    encoding: str = "utf-8",
) -> list[tuple[str, str]]:
    """Documents from a folder of text files, a ``.jsonl`` file, or a WikiText file, as ``(name, text)`` pairs.

    ``layout="auto"`` decides from ``path``: a folder is read with :func:`read_document_folder`, a ``.jsonl``
    file with :func:`read_document_jsonl`, a file with WikiText's `` = Title = `` lines with
    :func:`~st_contrast.data.declutr.read_wikitext_articles` (detokenised). Any other file is refused with what
    was expected (a plain text file is ambiguous: one document, or one per line?).

    Raises:
        FileNotFoundError: ``path`` is nowhere (the data folders are searched for a relative path).
        DataFormatError: as each reader, or a file of no known layout.
    """
    if layout not in ("auto", "folder", "jsonl", "wikitext"):
        raise ValueError(f"layout must be 'auto', 'folder', 'jsonl' or 'wikitext', got {layout!r}")
    resolved = _resolve(path, data_dir)
    if layout == "folder" or (layout == "auto" and resolved.is_dir()):
        return read_document_folder(resolved, encoding=encoding)
    if layout == "jsonl" or (layout == "auto" and resolved.suffix == ".jsonl"):
        return read_document_jsonl(resolved, text_field, encoding)
    if layout == "wikitext" or _looks_like_wikitext(resolved, encoding):
        from st_contrast.data.declutr import read_wikitext_articles

        return list(read_wikitext_articles(resolved, with_titles=True, encoding=encoding))
    raise DataFormatError(
        resolved,
        "not a known document layout; expected a folder of .txt files (one document per file), a .jsonl file "
        "with a 'text' field per line, or a WikiText file (' = Title = ' lines start the articles)",
    )
