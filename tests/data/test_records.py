"""Validated training records from JSON Lines, CSV and TSV (what ``--train-format jsonl/csv`` reads)."""

from __future__ import annotations

import json

import pytest

from st_contrast.data import DataFormatError, Records, read_records
from tests.data.malformed import VARIANTS, ReaderCase, check

JSONL_RECORDS = ReaderCase(
    name="train.jsonl",
    lines=[
        json.dumps({"anchor": "a man sleeps", "positive": "he is asleep", "label": 1}),
        json.dumps({"anchor": "a {HUGE} dog runs", "positive": "an animal moves", "label": 0}),
        json.dumps({"anchor": "the last anchor", "positive": "the last positive", "label": 1}),
    ],
    read=lambda path: read_records(path, "jsonl"),
    rows=3,
    record_line=2,
    lone_cr="error",  # JSON Lines end at \n
)
CSV_RECORDS = ReaderCase(
    name="train.csv",
    lines=["anchor,positive,label", "a man sleeps,he is asleep,1", '"a dog, {HUGE}","an ""animal""",0', "last,one,1"],
    read=lambda path: read_records(path, "csv"),
    rows=3,
    record_line=3,
    lone_cr="error",  # CSV lines end at \n or \r\n; a lone \r outside quotes is a CSV error
)
TSV_RECORDS = ReaderCase(
    name="train.tsv",
    lines=["sentence1\tsentence2\tscore", 'He said "yes.\tHe said yes.\t4.5', "A {HUGE} dog.\tA cat.\t0.5", "x\ty\t1"],
    read=lambda path: read_records(path, "tsv"),
    rows=3,
    record_line=3,
)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", [JSONL_RECORDS, CSV_RECORDS, TSV_RECORDS], ids=["jsonl", "csv", "tsv"])
def test_malformed_files(case, variant, tmp_path, caplog):
    check(case, variant, tmp_path, caplog)


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_jsonl_rows_keep_their_types_and_order(tmp_path):
    path = _write(tmp_path, "r.jsonl", _jsonl({"b": "x", "a": "y", "label": 2}, {"a": "w", "b": "z", "label": 0}))
    records = read_records(path, "jsonl")
    assert isinstance(records, Records) and records == [
        {"b": "x", "a": "y", "label": 2},
        {"b": "z", "a": "w", "label": 0},
    ]
    assert list(records[1]) == ["b", "a", "label"]  # the first record's order, for every row
    assert (records.columns, records.label_column, records.label_type) == (["b", "a", "label"], "label", "int")
    assert records.text_columns == ["b", "a"] and records.column_types["label"] == "label"
    dataset = records.dataset()
    assert dataset.column_names == ["b", "a", "label"] and dataset["label"] == [2, 0]
    assert read_records(path, "jsonl", columns=["a", "label"]) == [{"a": "y", "label": 2}, {"a": "w", "label": 0}]


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        # the case: a row with another key became sentence=None, its text lost
        (
            ({"sentence": "a", "label": 1}, {"text": "b", "label": 0}),
            2,
            r"lacks \['sentence'\] and has the unexpected",
        ),
        (({"sentence": "a", "label": 1}, {"sentence": "b"}), 2, r"the record lacks \['label'\]"),
        (({"sentence": "a", "label": 1}, {"sentence": None, "label": 0}), 2, "column 'sentence' is null"),
        (({"sentence": "a", "label": 1}, {"sentence": 5, "label": 0}), 2, "holds a number .* where the first"),
        (({"sentence": "a", "label": 1}, {"sentence": " ", "label": 0}), 2, "column 'sentence' is empty"),
        (({"sentence": "a", "label": 1}, {"sentence": "b", "label": "dog"}), 2, "pass label_type='name'"),
        (({"sentence": "a", "label": True},), 1, "holds bool True"),
        (({"sentence": "a", "label": None},), 1, "holds NoneType None"),
        (({"sentence": "a", "score": float("nan")},), 1, "expected a finite number"),
        (({"sentence": "a", "label": 1}, [1, 2]), 2, r"expected a JSON object \{column: value, ...\}, got list"),
        (({},), 1, "the first record is an empty object"),
    ],
)
def test_jsonl_refusals_name_the_line(tmp_path, rows, line, message):
    path = _write(tmp_path, "r.jsonl", _jsonl(*rows))
    with pytest.raises(DataFormatError, match=message) as info:
        read_records(path, "jsonl")
    assert str(info.value).startswith(f"{path}:{line}:")


@pytest.mark.parametrize(
    ("text", "kwargs", "line", "message"),
    [
        ("sentence,label\na\n", {}, 2, "the row has fewer fields than the header: 1, expected 2"),
        ("sentence,label\na,1,extra\n", {}, 2, "the row has more fields than the header: 3, expected 2"),
        ("sentence,label\n,1\n", {}, 2, "column 'sentence' is empty"),
        ("sentence,label\na,cat\n", {}, 2, "pass label_type='name'"),
        ("sentence,label\na,1.5\n", {"label_type": "int"}, 2, "label_type='int' expects integer class ids"),
        ("sentence,label\na,cat\n", {"label_type": "name", "label_names": ["dog"]}, 2, "not one of label_names"),
        ("sentence,score\na,inf\n", {}, 2, "expected a finite number"),
        ('sentence,label\n"a,1\n', {}, 2, "a quoted field opened on line 2 is never closed"),
        ("sentence,label\na,1\n", {"columns": ["sentence", "hard_neg"]}, 2, r"no column\(s\) \['hard_neg'\]"),
    ],
)
def test_csv_refusals_name_the_line(tmp_path, text, kwargs, line, message):
    path = _write(tmp_path, "r.csv", text)
    with pytest.raises(DataFormatError, match=message) as info:
        read_records(path, "csv", **kwargs)
    assert str(info.value).startswith(f"{path}:{line}:")


def test_csv_labels_get_the_declared_type(tmp_path):
    path = _write(tmp_path, "r.csv", "sentence,label\na,1\nb,0\n")
    records = read_records(path, "csv")
    assert records == [{"sentence": "a", "label": 1}, {"sentence": "b", "label": 0}] and records.label_type == "int"
    assert read_records(path, "csv", label_type="float") == [
        {"sentence": "a", "label": 1.0},
        {"sentence": "b", "label": 0.0},
    ]
    scores = _write(tmp_path, "s.csv", "sentence,score\na,1\nb,0.25\n")
    assert read_records(scores, "csv")[1]["score"] == 0.25 and read_records(scores, "csv").label_type == "float"
    names = _write(tmp_path, "n.csv", "sentence,label\na,weather\nb,alarm\nc,weather\n")
    records = read_records(names, "csv", label_type="name")
    assert [row["label"] for row in records] == [1, 0, 1] and records.label_names == ["alarm", "weather"]
    fixed = read_records(names, "csv", label_type="name", label_names=["weather", "alarm"])
    assert [row["label"] for row in fixed] == [0, 1, 0] and fixed.label_names == ["weather", "alarm"]
    assert read_records(names, "csv", label_column="sentence", label_type="name").label_names == ["a", "b", "c"]


def test_argument_errors(tmp_path):
    path = _write(tmp_path, "r.csv", "sentence,label,score\na,1,0.5\n")
    with pytest.raises(ValueError, match=r"several label columns \['label', 'score'\]"):
        read_records(path, "csv")
    assert read_records(path, "csv", label_column="score")[0] == {"sentence": "a", "label": "1", "score": 0.5}
    with pytest.raises(ValueError, match="format must be one of jsonl, csv, tsv"):
        read_records(path, "parquet")
    with pytest.raises(ValueError, match="label_type must be one of"):
        read_records(path, "csv", label_type="str")
    with pytest.raises(ValueError, match="label_names needs label_type='name'"):
        read_records(path, "csv", label_names=["a"])
    plain = _write(tmp_path, "p.csv", "sentence\na\n")
    with pytest.raises(ValueError, match="has no label column"):
        read_records(plain, "csv", label_type="int")
    with pytest.raises(ValueError, match="label_column 'gold' is not a column"):
        read_records(plain, "csv", label_column="gold")
    assert read_records(plain, "csv").label_column is None
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        read_records(tmp_path / "absent.jsonl", "jsonl")


def test_real_jsonl_from_the_data_folder(data_dir):
    records = read_records("summarization/xsum_test_1000.jsonl", "jsonl", data_dir=data_dir)
    assert len(records) == 1000 and records.columns == ["document", "summary", "id"]
    assert records.column_types == {"document": "text", "summary": "text", "id": "number"}
    assert read_records("summarization/xsum_test_1000.jsonl", "jsonl", columns=["document", "summary"])[0].keys() == {
        "document",
        "summary",
    }
