"""CLINE triples from plain sentences, with the real WordNet."""

from __future__ import annotations

import functools

import pytest

from st_contrast.data import cline_dataset, cline_examples, cline_rewrites
from st_contrast.views.wordnet import WordNetRewriter
from tests.data.malformed import VARIANTS, ReaderCase, check
from tests.views.test_wordnet import shared_lexicon

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "of the and",  # no content word: skipped
    "The dogs ran quickly to the bigger house.",
    "heavy rain caused flooding in several towns",
]


@functools.cache
def _shared_rewriter() -> WordNetRewriter:
    return WordNetRewriter(lexicon=shared_lexicon(), seed=0)


@pytest.fixture(scope="module")
def rewriter() -> WordNetRewriter:
    return _shared_rewriter()


def _read_with_cline(path):
    """What the CLINE reader took from the file: the originals it rewrote and the sentences it skipped."""
    result = cline_rewrites(path, rewriter=_shared_rewriter())
    return [rewrite.original for rewrite in result.rewrites], result.skipped


CLINE_FILE = ReaderCase(
    name="cline_sentences.txt",
    lines=["A man is playing a guitar on the {HUGE} stage.", "of the and", "heavy rain caused flooding in towns"],
    read=_read_with_cline,
    rows=3,  # two rewritten, one skipped (no content word), none lost
    count=lambda result: len(result[0]) + len(result[1]),
    record_line=1,
    truncated="same_count",
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_files(variant, tmp_path, caplog):
    check(CLINE_FILE, variant, tmp_path, caplog)


def test_dataset_has_the_three_columns_and_skips_unreplaceable_sentences(rewriter):
    dataset = cline_dataset(SENTENCES, rewriter=rewriter)
    assert dataset.column_names == ["original", "synonym", "antonym"]
    assert dataset["original"] == [SENTENCES[0], SENTENCES[2], SENTENCES[3]]
    for row in dataset:
        assert row["synonym"] != row["original"] and row["antonym"] != row["original"]
    # the same rewrites as the rewriter itself gives, row for row
    assert dataset["synonym"][1] == rewriter.rewrite(SENTENCES[2]).synonym


def test_examples_for_model_fit(rewriter):
    examples = cline_examples(SENTENCES, rewriter=rewriter)
    assert len(examples) == 3
    assert examples[0].texts[0] == SENTENCES[0] and len(examples[0].texts) == 3
    assert examples[0].label in (0, None)  # no label: CLINELoss takes none


def test_rewrites_report_the_skipped_sentences(rewriter):
    result = cline_rewrites(SENTENCES, rewriter=rewriter)
    assert result.skipped == [1]
    assert all(r.synonym_replacements and r.antonym_replacements for r in result.rewrites)


def test_reads_a_text_file(tmp_path, rewriter):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(SENTENCES) + "\n\n", encoding="utf-8")
    from_file = cline_dataset(path, rewriter=rewriter)["original"]
    assert from_file == cline_dataset(SENTENCES, rewriter=rewriter)["original"]


def test_real_corpus_from_the_data_folder(data_dir, rewriter):
    from st_contrast.data import read_sentences

    sentences = read_sentences("unlabeled/wiki_sentences.txt", data_dir=data_dir)[:300]
    result = cline_rewrites(sentences, rewriter=rewriter)
    assert len(result.rewrites) + result.num_skipped == 300
    assert len(result.rewrites) > 250, "almost every Wikipedia sentence has a replaceable word"
    relations = {r.relation for rw in result.rewrites for r in rw.antonym_replacements}
    assert relations == {"antonym", "random"}


def test_trainer_accepts_the_dataset(rewriter, tiny_model, tmp_path):
    from st_contrast.losses import CLINELoss
    from tests.training_utils import trainer_two_steps

    dataset = cline_dataset(SENTENCES * 2, rewriter=rewriter)
    changed = trainer_two_steps(tiny_model, CLINELoss(tiny_model), dataset, tmp_path, batch_size=3)
    assert any(name.startswith("rtd_head.") for name in changed)


def test_empty_sentence_list_is_an_error(rewriter):
    with pytest.raises(ValueError, match="at least one sentence, got an empty list"):
        cline_dataset([], rewriter=rewriter)


def test_no_replaceable_sentence_is_an_error(rewriter):
    with pytest.raises(ValueError, match="none of the 2 sentences has a word WordNet can replace"):
        cline_dataset(["of the", "1 2 3"], rewriter=rewriter)


def test_rewriter_and_options_are_exclusive(rewriter):
    with pytest.raises(ValueError, match="either a rewriter or rewriter options"):
        cline_dataset(SENTENCES, rewriter=rewriter, seed=3)


def test_non_strings_are_rejected(rewriter):
    with pytest.raises(TypeError, match="sentences must be strings"):
        cline_dataset(["fine", 3], rewriter=rewriter)


def test_missing_file_is_a_clear_error(tmp_path, rewriter):
    with pytest.raises(FileNotFoundError, match="Could not find the file"):
        cline_dataset(tmp_path / "nope.txt", rewriter=rewriter)
