"""Document readers for DeCLUTR (st_contrast/data/documents.py) and label maps (st_contrast/data/labels.py)."""

from __future__ import annotations

import json

import pytest

from st_contrast.data.documents import read_document_folder, read_document_jsonl, read_documents
from st_contrast.data.labels import label_ids, load_label_map, save_label_map
from st_contrast.data.reading import DataFormatError


def test_folder_one_document_per_file_sorted_and_empty_files_skipped(tmp_path, caplog):
    (tmp_path / "b.txt").write_text("second document\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("\ufefffirst document\nwith two lines\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a document", encoding="utf-8")
    assert read_documents(tmp_path) == [("a.txt", "first document\nwith two lines"), ("b.txt", "second document")]
    assert "1 empty files" in caplog.text
    with pytest.raises(DataFormatError, match="no file matches"):
        read_document_folder(tmp_path, pattern="*.rst")


def test_jsonl_documents_and_their_errors(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "d1", "text": "one"}\n{"text": "two"}\n{"text": " "}\n', encoding="utf-8")
    assert read_documents(path) == [("d1", "one"), ("line 2", "two")]
    path.write_text('{"document": "one"}\n{"document": 3}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"docs.jsonl:2: 'document' must be a string, got int"):
        read_document_jsonl(path)
    path.write_text('{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"docs.jsonl:1: no text field"):
        read_documents(path)


def test_wikitext_is_detected_and_other_files_are_refused(tmp_path):
    wiki = tmp_path / "wiki.txt"
    wiki.write_text(
        " = Cats = \n\n Cats are small @-@ sized animals .\n = = Diet = = \n They eat fish .\n", encoding="utf-8"
    )
    assert read_documents(wiki) == [("Cats", "Cats are small-sized animals.\nThey eat fish.")]
    plain = tmp_path / "plain.txt"
    plain.write_text("a sentence\nanother one\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="not a known document layout"):
        read_documents(plain)
    with pytest.raises(FileNotFoundError):
        read_documents(tmp_path / "missing")


def test_label_map_round_trip_and_unknown_labels(tmp_path):
    save_label_map(tmp_path, ["alarm", "music"], label_column="label", unused=None)
    stored = json.loads((tmp_path / "label_map.json").read_text())
    assert stored == {"label_names": ["alarm", "music"], "label_column": "label"}
    assert load_label_map(tmp_path)["label_names"] == ["alarm", "music"]
    assert label_ids(["music", "alarm", 1], ["alarm", "music"]) == [1, 0, 1]
    with pytest.raises(ValueError, match=r"labels\[1\]: unknown label 'timer'"):
        label_ids(["music", "timer"], ["alarm", "music"])
    with pytest.raises(ValueError, match="distinct"):
        save_label_map(tmp_path, ["a", "a"])
    (tmp_path / "label_map.json").write_text('{"label_names": [1, 2]}', encoding="utf-8")
    with pytest.raises(DataFormatError, match="list of distinct strings"):
        load_label_map(tmp_path / "label_map.json")
    with pytest.raises(FileNotFoundError, match="no label map"):
        load_label_map(tmp_path / "nowhere")
