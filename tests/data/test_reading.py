"""The reading layer under every reader: decoding, line ends, JSON, JSON Lines, CSV and the error format."""

from __future__ import annotations

import csv
import gzip
import logging
import pickle

import pytest

from st_contrast.data.reading import (
    DataFormatError,
    check_number,
    check_text,
    decode_bytes,
    iter_jsonl,
    iter_lines,
    read_json,
    read_lines,
    read_table,
    read_text,
    resolve_path,
    split_lines,
)


def test_error_message_format_and_pickling():
    error = DataFormatError("data/x.tsv", "expected 3 columns, got 2", line=7, column=3)
    assert str(error) == "data/x.tsv:7:3: expected 3 columns, got 2"
    assert (error.path, error.reason, error.line, error.column) == ("data/x.tsv", "expected 3 columns, got 2", 7, 3)
    assert str(DataFormatError("f.json", "bad item", where="train[2]")) == "f.json: train[2]: bad item"
    assert str(DataFormatError("f.txt", "the file is empty")) == "f.txt: the file is empty"
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.line == 7 and isinstance(again, ValueError)


def test_lines_drop_the_bom_and_end_at_lf_crlf_and_lone_cr(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"\xef\xbb\xbffirst\r\nsecond\rthird\nfourth")
    assert list(iter_lines(path)) == [(1, "first"), (2, "second"), (3, "third"), (4, "fourth")]
    # without universal newlines a lone \r stays inside its line; with keepends the ends stay (for csv)
    assert [text for _, text in iter_lines(path, universal=False)] == ["first", "second\rthird", "fourth"]
    assert [text for _, text in iter_lines(path, universal=False, keepends=True)] == [
        "first\r\n",
        "second\rthird\n",
        "fourth",
    ]
    assert read_lines(path) == ["first", "second\rthird", "fourth"]  # a stray \r never shifts line alignment
    # only a BOM at the very start is dropped; U+2028 and \x1c are text, not line ends (unlike str.splitlines)
    path.write_bytes("a\u2028b\x1cc\n\ufeffd\n".encode())
    assert [text for _, text in iter_lines(path)] == ["a\u2028b\x1cc", "\ufeffd"]
    assert split_lines("a\r\nb\rc\n") == ["a", "b", "c"] and split_lines("") == []


def test_invalid_utf8_names_file_line_column_and_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\xef\xbb\xbfok line\r\nsecond\nbad \xff here\n")
    with pytest.raises(DataFormatError) as info:
        list(iter_lines(path))
    assert str(info.value).startswith(f"{path}:3:5: byte(s) ff at byte offset 23 cannot be decoded as utf-8")
    assert "encoding=" in str(info.value)
    with pytest.raises(DataFormatError, match=r"bad.txt:3:5: byte\(s\) ff at byte offset 23"):
        read_text(path)
    # a multi-byte character cut in two is reported where it starts
    with pytest.raises(DataFormatError, match=r"m.txt:1:4: byte\(s\) c3 at byte offset 3"):
        decode_bytes(b"abc\xc3(", "m.txt")


def test_other_encodings_are_named_explicitly(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\nnaïve\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1.txt:1:4: .*must be UTF-8"):
        list(iter_lines(path))
    assert [text for _, text in iter_lines(path, encoding="latin-1")] == ["café", "naïve"]
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("one\r\ntwo\n".encode("utf-16"))
    assert [text for _, text in iter_lines(utf16, encoding="utf-16")] == ["one", "two"]
    assert read_lines(utf16, encoding="utf-16") == ["one", "two"]


def test_nul_bytes_gzip_and_folders(tmp_path):
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"text\nmore\x00binary\n")
    with pytest.raises(DataFormatError, match=r"binary.txt:2:5: a NUL byte"):
        list(iter_lines(binary))
    with pytest.raises(DataFormatError, match=r"binary.txt:2:5: a NUL byte"):
        read_text(binary)
    packed = tmp_path / "packed.txt.gz"
    packed.write_bytes(gzip.compress("\ufeffone\ntwo\n".encode()))
    assert [text for _, text in iter_lines(packed)] == ["one", "two"]
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(gzip.compress(b"one\n" * 1000)[:-20])
    with pytest.raises(DataFormatError, match="gzip data is corrupt or cut short"):
        list(iter_lines(cut))
    with pytest.raises(IsADirectoryError, match="is a folder"):
        list(iter_lines(tmp_path))
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        list(iter_lines(tmp_path / "nothing.txt"))


def test_json_errors_are_at_the_file_position_and_repeated_keys_are_refused(tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": [1, 2],\n "b": }\n')
    with pytest.raises(DataFormatError, match=r"doc.json:2:7: invalid JSON \(Expecting value\)"):
        read_json(path)
    path.write_text('{"a": 1,\n "a": 2}', encoding="utf-8")
    with pytest.raises(DataFormatError, match="the key 'a' appears twice"):
        read_json(path)
    path.write_text("  \n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="doc.json: the file is empty"):
        read_json(path)
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert read_json(path) == {"a": 1}


def test_jsonl_errors_are_at_the_line_and_column_of_the_file(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\n{"a": 2}\n{"a": "cut sho')
    with pytest.raises(DataFormatError) as info:
        list(iter_jsonl(path))
    assert str(info.value).startswith(f"{path}:4:7: invalid JSON (Unterminated string")
    path.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    assert "skipped 1 blank line(s)" in caplog.text
    path.write_text('{"a": 1, "a": 2}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"rows.jsonl:1: the key 'a' appears twice"):
        list(iter_jsonl(path))
    path.write_text('[\n  {"a": 1}\n]\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="one JSON document spread over several lines"):
        list(iter_jsonl(path))


def test_csv_quoting_is_strict_and_fields_are_checked(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfa,b\r\n"x, y","multi\nline"\r\n\r\n"say ""hi""",2\r\n')
    table = read_table(path)
    assert table.header == ["a", "b"] and table.header_line == 1 and table.blank_lines == 1
    assert table.rows == [(2, ["x, y", "multi\nline"]), (5, ['say "hi"', "2"])]
    path.write_text('a,b\n"never closed,1\nnext,2\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t.csv:3: a quoted field opened on line 2 is never closed"):
        read_table(path)
    path.write_text('a,b\n"x"y,1\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t.csv:2: malformed CSV"):
        read_table(path)
    path.write_text("a,b\nonly one\nx,y,z\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t.csv:2: the row has fewer fields than the header: 1, expected 2"):
        read_table(path)
    path.write_text("a,b\nx,y,z\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t.csv:2: the row has more fields than the header: 3, expected 2"):
        read_table(path)
    path.write_text("a,a\n1,2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t.csv:1: the header names the column\(s\) \['a'\] more than once"):
        read_table(path)
    path.write_text("a,\n1,2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="empty column name"):
        read_table(path)
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="t.csv: the file is empty"):
        read_table(path)


def test_csv_fields_longer_than_the_csv_module_limit(tmp_path):
    huge = "y" * (csv.field_size_limit() + 10)
    path = tmp_path / "huge.csv"
    path.write_text(f'a,b\n"{huge}",1\n', encoding="utf-8")
    limit = csv.field_size_limit()
    assert read_table(path).rows == [(2, [huge, "1"])]
    assert csv.field_size_limit() == limit  # the process-wide limit is restored


def test_tsv_without_quoting_keeps_stray_quotes(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text('a\tb\n"open\tclose"\n', encoding="utf-8")
    assert read_table(path, delimiter="\t", quoting=False).rows == [(2, ['"open', 'close"'])]
    assert read_table(path, delimiter="\t", quoting=False, header=False).rows == [
        (1, ["a", "b"]),
        (2, ['"open', 'close"']),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nan", "expected a finite number"),
        (float("inf"), "expected a finite number"),
        ("7", r"outside the scale \[0.0, 5.0\]"),
        (-0.5, "outside the scale"),
        ("x", "not a number"),
        (True, "not a number"),
        (None, "not a number"),
    ],
)
def test_check_number_refuses(value, message):
    with pytest.raises(DataFormatError, match=rf"f.tsv:3: the score {message}|f.tsv:3: the score holds .*{message}"):
        check_number(value, "f.tsv", "the score", 3, low=0.0, high=5.0)


def test_check_number_and_text_accept():
    assert check_number("4.5", "f", "s", 1, low=0.0, high=5.0) == 4.5 and check_number(0, "f", "s") == 0.0
    assert check_text("a", "f", "t") == "a" and check_text("", "f", "t", allow_empty=True) == ""
    with pytest.raises(DataFormatError, match="f:2: column 't' must be text"):
        check_text(None, "f", "column 't'", 2)
    with pytest.raises(DataFormatError, match="f: x\\[1\\]: t is empty"):
        check_text("  ", "f", "t", where="x[1]")


def test_resolve_path_looks_in_the_data_folders(tmp_path, monkeypatch):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "f.txt").write_text("x\n", encoding="utf-8")
    monkeypatch.setenv("ST_CONTRAST_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert resolve_path("sub/f.txt") == tmp_path / "data" / "sub" / "f.txt"
    with pytest.raises(FileNotFoundError, match="sub/none.txt"):
        resolve_path("sub/none.txt")


def test_every_real_text_file_reads_with_as_many_lines_as_it_has(data_dir):
    """The layer on the real data: every text file (and the SemEval tarball's) decodes, no line lost or split."""
    import tarfile
    from pathlib import Path

    files = [p for p in sorted(Path(data_dir).rglob("*")) if p.is_file() and p.suffix not in (".pkl", ".gz")]
    assert len(files) > 60
    for path in files:
        data = path.read_bytes()
        expected = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        assert sum(1 for _ in iter_lines(path, universal=False)) == expected, path
    with tarfile.open(Path(data_dir) / "relation" / "semeval2010_task8.tar.gz") as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.lower().endswith(".txt")]
        for member in members:
            data = archive.extractfile(member).read()
            text = decode_bytes(data, member.name)
            assert len(split_lines(text)) == data.count(b"\n") + (0 if data.endswith(b"\n") else 1), member.name
    multi30k = sorted((Path(data_dir) / "translation" / "multi30k").glob("*.gz"))
    assert {sum(1 for _ in iter_lines(path)) for path in multi30k} == {29000, 1014, 1000}  # gzip, on the fly
