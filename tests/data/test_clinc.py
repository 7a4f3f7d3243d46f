from __future__ import annotations

import json

import pytest

from st_contrast.data.clinc import load_clinc150


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
