"""Fixtures for the fairseq plugin tests: a tiny dictionary, task and transformer, all in memory, and a
SimCLS data folder. Helpers that are not fixtures live in translation_utils.py and ../simcls_utils.py."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest.importorskip("fairseq", reason="fairseq is not installed (pip install fairseq-fixed==0.12.3.1)")

from tests.fairseq.translation_utils import EN_WORDS, LANGS, as_pieces, build_tiny_transformer, translate  # noqa: E402


@pytest.fixture(scope="session")
def plugins():
    import fairseq_plugins

    return fairseq_plugins


@pytest.fixture(scope="session")
def dictionary(plugins):
    from fairseq.data import Dictionary

    from fairseq_plugins.tasks.translation_multilingual_contrastive import lang_token

    d = Dictionary()
    for lang in LANGS:
        for word in EN_WORDS:
            for piece in as_pieces(translate(word, lang)):
                d.add_symbol(piece)
    d.finalize(padding_factor=8)
    for lang in LANGS:
        d.add_symbol(lang_token(lang))
    return d


@pytest.fixture(scope="session")
def task(dictionary):
    from fairseq.tasks.translation import TranslationConfig, TranslationTask

    return TranslationTask(TranslationConfig(), dictionary, dictionary)


@pytest.fixture
def make_model(task):
    return lambda dropout=0.1, seed=0: build_tiny_transformer(task, dropout=dropout, seed=seed)


@pytest.fixture(scope="module")
def simcls_folder(tmp_path_factory):
    """A tiny ``simcls_reranking`` data folder (train.jsonl, valid.jsonl, dict.txt)."""
    pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")
    from tests.simcls_utils import write_data_folder

    folder = tmp_path_factory.mktemp("simcls-data")
    write_data_folder(folder)
    return folder
