from __future__ import annotations

import json
import logging

import pytest

from st_contrast.data.clinc import load_clinc150
from st_contrast.data.reading import DataFormatError
from tests.data.malformed import VARIANTS, ReaderCase, check

SMALL = {
    "train": [
        ["wake me up at 7", "alarm"],
        ["is it raining {HUGE} today", "weather"],
        ["how old is the earth", "oos"],
    ],
    "val": [["set an alarm", "alarm"]],
    "test": [["will it snow", "weather"]],
    "oos_train": [["tell me a joke about cats", "oos"]],
    "oos_val": [],
    "oos_test": [["who won the match", "oos"]],
}
_LINES = json.dumps(SMALL, indent=1).split("\n")
_SPLITS = ("train", "val", "test", "oos_train", "oos_val", "oos_test", "unseen_train", "unseen_val", "unseen_test")

CLINC_FILE = ReaderCase(
    name="data_full.json",
    lines=_LINES,
    read=lambda path: load_clinc150(path=path),
    rows=7,  # every item of the file, in one of the splits
    count=lambda data: sum(len(getattr(data, split)) for split in _SPLITS),
    record_line=next(i for i, line in enumerate(_LINES, start=1) if "is it raining" in line),
    blank_lines_warn=False,  # JSON whitespace
    error_line_of_truncation=False,  # JSON reports the end of the text, wherever it was cut
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_files(variant, tmp_path, caplog):
    check(CLINC_FILE, variant, tmp_path, caplog)


def test_empty_texts_are_skipped_and_counted_like_every_reader_does(tmp_path, caplog):
    data = json.loads(json.dumps(SMALL))
    data["train"] += [["", "alarm"], ["   ", "weather"]]
    data["oos_test"].append(["", "oos"])
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        clinc = load_clinc150(path=path)
    assert [text for text, _ in clinc.train] == ["wake me up at 7", "is it raining {HUGE} today"]
    assert clinc.oos_test == ["who won the match"]
    assert "skipped 3 item(s) with an empty text (train: 2, oos_test: 1)" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["train"].append(["only the text"]), r"train\[3\]: expected a \[text, intent\] pair of strings"),
        (lambda d: d["train"].append(["text", 5]), r"train\[3\]: expected a \[text, intent\] pair"),
        (lambda d: d["val"].append("a bare string"), r"val\[1\]: expected a \[text, intent\] pair"),
        (lambda d: d["test"].append([None, "alarm"]), r"test\[1\]: expected a \[text, intent\] pair"),
        (lambda d: d["train"].append(["text", " "]), r"train\[3\]: the intent is empty"),
        (lambda d: d["oos_val"].append(["set an alarm", "alarm"]), r"oos_val\[0\]: the intent 'alarm' in an out-of"),
        (lambda d: d["test"].append(["play a song", "music"]), r"test\[1\]: the intent 'music' does not occur in"),
        (lambda d: d.update(val={"set an alarm": "alarm"}), r"val: expected a list of \[text, intent\] items"),
    ],
)
def test_malformed_items_name_the_split_and_index(tmp_path, change, message):
    data = json.loads(json.dumps(SMALL))
    change(data)
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        load_clinc150(path=path)
    assert str(info.value).startswith(f"{path}: ")


def test_whole_file_errors(tmp_path, caplog):
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps([SMALL]), encoding="utf-8")
    with pytest.raises(DataFormatError, match="expected a JSON object with the splits"):
        load_clinc150(path=path)
    text = json.dumps(SMALL, indent=1)
    path.write_text(text[:-1] + ',\n "train": []\n}', encoding="utf-8")  # a second "train" would replace the first
    with pytest.raises(DataFormatError, match="the key 'train' appears twice"):
        load_clinc150(path=path)
    path.write_text(json.dumps({**SMALL, "notes": []}), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_clinc150(path=path).label_names == ["alarm", "weather"]
    assert "ignored the key(s) ['notes']" in caplog.text


def test_full_clinc150(data_dir):
    clinc = load_clinc150(data_dir=data_dir)
    assert clinc.num_labels == 150 and clinc.label_names == sorted(clinc.label_names)
    assert (len(clinc.train), len(clinc.val), len(clinc.test)) == (15000, 3000, 4500)
    assert (len(clinc.oos_train), len(clinc.oos_val), len(clinc.oos_test)) == (100, 100, 1000)
    assert not clinc.unseen_train and "oos" not in clinc.label_names
    text, label = clinc.train[0]
    assert isinstance(text, str) and clinc.label_names[label] == "translate"  # the file's first query
    counts = [0] * 150
    for _, label in clinc.test:
        counts[label] += 1
    assert set(counts) == {30}


def test_subset_is_deterministic_and_keeps_the_rest_as_unseen(data_dir):
    a = load_clinc150(data_dir=data_dir, num_intents=5, max_per_intent=3, seed=1)
    b = load_clinc150(data_dir=data_dir, num_intents=5, max_per_intent=3, seed=1)
    c = load_clinc150(data_dir=data_dir, num_intents=5, max_per_intent=3, seed=2)
    assert a.label_names == b.label_names != c.label_names
    assert len(a.train) == 15 and len(a.val) == 5 * 20 and len(a.test) == 5 * 30
    assert len(a.unseen_test) == 145 * 30 and len(a.oos_test) == 1000
    assert {label for _, label in a.train} == set(range(5))


def test_explicit_intents_and_readers(data_dir):
    clinc = load_clinc150(data_dir=data_dir, intents=["weather", "alarm"], max_per_intent=2)
    assert clinc.label_names == ["alarm", "weather"]
    dataset = clinc.dataset("train")
    assert dataset.column_names == ["sentence", "label"] and len(dataset) == 4
    examples = clinc.input_examples("test")
    assert len(examples) == 60 and examples[0].label in (0, 1) and len(examples[0].texts) == 1
    with pytest.raises(ValueError, match="split must be one of"):
        clinc.dataset("oos_test")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"intents": ["not_an_intent"]}, "unknown CLINC150 intent"),
        ({"intents": ["alarm"], "num_intents": 3}, "either intents"),
        ({"num_intents": 1}, "num_intents must be between 2 and 150"),
        ({"max_per_intent": 0}, "max_per_intent must be >= 1"),
    ],
)
def test_argument_errors(data_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_clinc150(data_dir=data_dir, **kwargs)


def test_explicit_path_and_file_errors(tmp_path, monkeypatch):
    small = {
        "train": [["wake me up at 7", "alarm"], ["is it raining", "weather"], ["how old is the earth", "oos"]],
        "val": [["set an alarm", "alarm"]],
        "test": [["will it snow", "weather"]],
        "oos_train": [["tell me a joke about cats", "oos"]],
        "oos_val": [],
        "oos_test": [["who won the match", "oos"]],
    }
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(small))
    clinc = load_clinc150(path=path)
    assert clinc.label_names == ["alarm", "weather"]
    assert clinc.oos_train == ["how old is the earth", "tell me a joke about cats"]
    assert clinc.test == [("will it snow", 1)] and clinc.oos_test == ["who won the match"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clinc150(path=tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"train": []}))
    with pytest.raises(ValueError, match="lacks the key"):
        load_clinc150(path=broken)
    monkeypatch.setenv("ST_CONTRAST_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"download=True"):
        load_clinc150()
