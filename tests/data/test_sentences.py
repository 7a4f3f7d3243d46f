"""Sentence files and the unsupervised SimCSE inputs built from them."""

from __future__ import annotations

import logging

import pytest

from st_contrast.data import read_sentences, sentence_dataset, unsupervised_examples, unsupervised_pairs
from st_contrast.data.reading import DataFormatError
from tests.data.malformed import VARIANTS, ReaderCase, check

SENTENCES = ReaderCase(
    name="sentences.txt",
    lines=["the cat sat on the mat", "a second sentence with {HUGE} words", "and the last sentence of the file"],
    read=read_sentences,
    rows=3,
    record_line=2,
    truncated="same_count",  # a sentence cut short is still a sentence
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_files(variant, tmp_path, caplog):
    check(SENTENCES, variant, tmp_path, caplog)


def test_bom_does_not_survive_into_the_first_sentence_or_defeat_dedupe(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfthe cat sat\r\nthe cat sat\r\n")
    assert read_sentences(path) == ["the cat sat", "the cat sat"]
    assert read_sentences(path, dedupe=True) == ["the cat sat"]


def test_every_line_dropped_is_an_error_not_an_empty_list(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("ab\n\ncd\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"short.txt: no sentence to read \(1 empty lines, 2 lines shorter"):
        read_sentences(path, min_length=3)


def test_real_wiki_sentences(data_dir):
    sentences = read_sentences(f"{data_dir}/unlabeled/wiki_sentences.txt")
    assert len(sentences) == 14750
    assert all(s == s.strip() and s for s in sentences)
    assert len(read_sentences("unlabeled/wiki_sentences.txt", dedupe=True)) == 14209  # found through ST_CONTRAST_DATA


def test_strips_and_drops_empty_short_and_duplicate_lines(tmp_path, caplog):
    path = tmp_path / "s.txt"
    path.write_text("  first sentence \n\n   \nab\nfirst sentence\r\nlast one without newline", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="st_contrast.data.sentences"):
        assert read_sentences(path) == ["first sentence", "ab", "first sentence", "last one without newline"]
    assert "dropped 2 empty lines" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="st_contrast.data.sentences"):
        assert read_sentences(path, min_length=3, dedupe=True) == ["first sentence", "last one without newline"]
    assert "2 empty lines, 1 lines shorter than 3 characters and 1 duplicates" in caplog.text
    with pytest.raises(ValueError, match="min_length must be >= 1"):
        read_sentences(path, min_length=0)


def test_missing_file_names_places_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_CONTRAST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as info:
        read_sentences("corpus/nothing.txt")
    message = str(info.value)
    assert "'corpus/nothing.txt'" in message
    assert str(tmp_path / "data" / "corpus" / "nothing.txt") in message
    assert str(tmp_path / "cache" / "data" / "corpus" / "nothing.txt") in message
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        read_sentences(tmp_path / "nothing.txt")


def test_sentence_dataset_has_one_column_and_no_empty_rows(sentences, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = sentence_dataset(sentences + ["", "   "])
    assert dataset.column_names == ["sentence"]
    assert dataset["sentence"] == sentences
    assert "Dropped 2 empty sentences" in caplog.text
    with pytest.raises(ValueError, match="at least one non-empty sentence"):
        sentence_dataset([""])


def test_unsupervised_examples_repeat_each_sentence(sentences):
    examples = unsupervised_examples(sentences + [""])
    assert [example.texts for example in examples] == [[s, s] for s in sentences]


def test_unsupervised_pairs_drop_the_last_partial_batch(sentences):
    loader = unsupervised_pairs(sentences[:7], batch_size=3, seed=1)
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    assert all(len(batch) == 3 for batch in batches)
    seen = [example.texts[0] for batch in batches for example in batch]
    assert len(set(seen)) == 6 and set(seen) <= set(sentences[:7])
    again = [e.texts[0] for b in unsupervised_pairs(sentences[:7], batch_size=3, seed=1) for e in b]
    assert again == seen  # reproducible from the seed
    ordered = [e.texts[0] for b in unsupervised_pairs(sentences, batch_size=4, shuffle=False) for e in b]
    assert ordered == sentences
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        unsupervised_pairs(sentences, batch_size=1)
    with pytest.raises(ValueError, match="fewer than batch_size=64"):
        unsupervised_pairs(sentences)


def test_model_fit_with_unsupervised_pairs(tiny_model, sentences, tmp_path, monkeypatch):
    from st_contrast.losses import SimCSELoss
    from tests.training_utils import changed_parameters, trainable_snapshot

    monkeypatch.chdir(tmp_path)  # model.fit may create a checkpoints/ folder in the working directory
    loss = SimCSELoss(tiny_model)
    before = trainable_snapshot(loss)
    tiny_model.fit(
        train_objectives=[(unsupervised_pairs(sentences, batch_size=4), loss)],
        epochs=1,
        steps_per_epoch=2,
        warmup_steps=0,
        optimizer_params={"lr": 1e-3},
        show_progress_bar=False,
    )
    changed = changed_parameters(before, loss)
    assert any("embeddings" in name for name in changed) and any("encoder" in name for name in changed)
