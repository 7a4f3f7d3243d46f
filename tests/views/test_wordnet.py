"""WordNet access and the CLINE rewriter, on the real WordNet 3.0 (no mocks)."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest

from st_contrast.views import wordnet as wnmod
from st_contrast.views.wordnet import (
    STOP_WORDS,
    WordNetLexicon,
    WordNetRewriter,
    build_wordnet_copy,
    inflect,
    load_wordnet,
    read_lexnames,
)


@functools.lru_cache(maxsize=1)
def shared_lexicon() -> WordNetLexicon:
    """One WordNet lexicon per test process: the user's NLTK WordNet, else a copy built in a temporary folder.

    Loading WordNet takes seconds, so every CLINE test module shares this one (its look-up cache too).
    """
    root = Path(tempfile.mkdtemp(prefix="st-contrast-wordnet-")) / "nltk_data"
    return WordNetLexicon(load_wordnet(nltk_data_root=root))


@pytest.fixture(scope="module")
def lexicon() -> WordNetLexicon:
    return shared_lexicon()


def rewriter(**kwargs) -> WordNetRewriter:
    return WordNetRewriter(lexicon=shared_lexicon(), **kwargs)


# --- finding and building WordNet -------------------------------------------------------------


def test_lexnames_are_parsed_from_the_manual_page():
    rows = read_lexnames()
    assert len(rows) == 45
    assert rows[0] == (0, "adj.all", 3) and rows[3] == (3, "noun.Tops", 1) and rows[-1] == (44, "adj.ppl", 3)
    assert {category for _, _, category in rows} == {1, 2, 3, 4}


def test_build_copies_real_files_and_writes_lexnames(tmp_path):
    target = build_wordnet_copy(nltk_data_root=tmp_path)
    assert target == tmp_path / "corpora" / "wordnet"
    for name in ("data.noun", "index.verb", "index.sense", "noun.exc", "lexnames"):
        path = target / name
        assert path.is_file() and not path.is_symlink(), name
    assert (target / "data.noun").stat().st_size == Path(wnmod.DEBIAN_WORDNET_DIR, "data.noun").stat().st_size
    lines = (target / "lexnames").read_text().splitlines()
    assert len(lines) == 45 and lines[18].split() == ["18", "noun.person", "1"]
    assert not list(target.parent.glob(".wordnet-build-*")), "the staging folder must be cleaned up"
    # a second build reuses the copy instead of copying again
    stamp = (target / "data.noun").stat().st_mtime_ns
    assert build_wordnet_copy(nltk_data_root=tmp_path) == target
    assert (target / "data.noun").stat().st_mtime_ns == stamp


def test_cache_dir_is_where_the_copy_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path))
    assert wnmod.wordnet_cache_root() == tmp_path / "nltk_data"


def test_loaded_wordnet_reads_real_synsets(lexicon):
    wn = lexicon.wordnet
    assert "dog.n.01" in {s.name() for s in wn.synsets("dog")}
    assert wn.synset("dog.n.01").lexname() == "noun.animal"  # needs the lexnames file
    assert load_wordnet(nltk_data_root=Path(wn.root.path).parent.parent) is wn or _uses_nltk_data(wn)


def _uses_nltk_data(wn) -> bool:
    return "st-contrast-wordnet-" not in str(getattr(wn, "root", ""))


def test_missing_wordnet_names_both_ways_to_install(tmp_path):
    message = r"apt-get install wordnet-base wordnet-sense-index.*nltk\.downloader wordnet"
    with pytest.raises(LookupError, match=message):
        load_wordnet(source_dir=tmp_path / "no-wordnet", use_nltk_data=False, nltk_data_root=tmp_path / "empty")
    with pytest.raises(LookupError, match="no WordNet database"):
        build_wordnet_copy(tmp_path, nltk_data_root=tmp_path / "out")
    with pytest.raises(LookupError, match="lexnames"):
        read_lexnames(tmp_path / "missing.5WN.gz")


# --- parts of speech and inflection ---------------------------------------------------------------


def test_parts_of_speech_and_inflection_come_from_wordnet_and_lemminflect(lexicon):
    dogs, ran, bigger, quickly = (lexicon.entry(w) for w in ("dogs", "ran", "bigger", "quickly"))
    assert (dogs.pos, dogs.lemma, dogs.tag) == ("n", "dog", "NNS")
    assert (ran.pos, ran.lemma, ran.tag) == ("v", "run", "VBD")
    assert (bigger.pos, bigger.lemma, bigger.tag) == ("a", "big", "JJR")
    assert quickly.pos == "r"
    assert inflect("hound", "NNS", "n") == "hounds"
    assert inflect("take off", "VBD", "v") == "took off"  # verb phrases inflect their first word
    assert inflect("domestic dog", "NNS", "n") == "domestic dogs"  # noun phrases their last
    assert inflect("side of meat", "NNS", "n") == "sides of meat"


def test_stop_words_and_non_words_are_not_content_words(lexicon):
    for word in ("the", "is", "would", "and", "1960s", "x"):
        assert lexicon.entry(word) is None
    assert "because" in STOP_WORDS


def test_indirect_antonyms_of_satellite_adjectives_are_kept_apart(lexicon):
    assert "unhappy" in lexicon.entry("happy").antonyms
    huge = lexicon.entry("huge")  # huge -> (similar to) large -> small: indirect only
    assert "small" in huge.indirect_antonyms and "small" not in huge.antonyms
    assert "ordinal" in lexicon.entry("two").indirect_antonyms and not lexicon.entry("two").antonyms


def test_indirect_antonyms_are_used_only_when_switched_on_and_counted():
    sentence = "a huge dog"
    for seed in range(4):
        off = rewriter(replace_ratio=1.0, seed=seed)
        result = off.rewrite(sentence)
        huge = [r for r in result.antonym_replacements if r.original == "huge"]
        assert all(r.relation == "random" and not r.indirect for r in huge)
        assert off.counts["indirect_antonym"] == 0
    on = rewriter(replace_ratio=1.0, seed=0, indirect_antonyms=True)
    (huge,) = [r for r in on.rewrite(sentence).antonym_replacements if r.original == "huge"]
    assert huge.relation == "antonym" and huge.indirect and huge.replacement in ("small", "little")
    assert on.counts["indirect_antonym"] == 1 and on.counts["antonym"] >= 1
    assert on.get_config_dict()["indirect_antonyms"] is True


def test_random_pool_is_frequent_lowercase_words(lexicon):
    pool = lexicon.random_pool("n")
    assert len(pool) > 1000 and pool == tuple(sorted(pool))
    assert all(w.isalpha() and w.islower() and w not in STOP_WORDS for w in pool)


# --- the rewriter -----------------------------------------------------------------------------


SENTENCES = [
    "The dogs ran quickly to the bigger house.",
    "A man is playing a guitar on the stage.",
    "She is happy but the old man is sad.",
    "heavy rain caused flooding in several towns",
    "the children played football in the park after school",
]


def test_rewrites_report_exactly_what_changed():
    rw = rewriter(seed=3)
    for sentence in SENTENCES:
        result = rw.rewrite(sentence)
        assert result is not None and result.original == sentence
        for text, replacements in (
            (result.synonym, result.synonym_replacements),
            (result.antonym, result.antonym_replacements),
        ):
            assert replacements and text != sentence
            words = wnmod._WORD.findall(sentence)
            # rebuilding the rewrite from the reported replacements gives back the rewrite
            rebuilt = list(words)
            for r in replacements:
                assert words[r.position] == r.original and r.replacement.lower() != r.original.lower()
                rebuilt[r.position] = r.replacement
            assert wnmod._WORD.findall(text) == wnmod._WORD.findall(" ".join(rebuilt))
        assert {r.relation for r in result.synonym_replacements} <= {"synonym", "hypernym"}
        assert {r.relation for r in result.antonym_replacements} <= {"antonym", "random"}


def test_at_most_replace_ratio_of_content_words_are_replaced():
    sentence = "the children played football in the park after school"  # 5 content words
    for ratio, expected in ((0.5, 2), (0.2, 1), (1.0, 5)):
        result = rewriter(replace_ratio=ratio, seed=1).rewrite(sentence)
        assert len(result.antonym_replacements) == expected
        assert 1 <= len(result.synonym_replacements) <= expected


def test_seeded_deterministic_and_order_independent():
    first = [rewriter(seed=7).rewrite(s) for s in SENTENCES]
    again = [rewriter(seed=7).rewrite(s) for s in reversed(SENTENCES)][::-1]
    assert first == again
    other = [rewriter(seed=8).rewrite(s) for s in SENTENCES]
    assert [r.synonym for r in first] != [r.synonym for r in other]


def test_antonyms_first_then_random_words_of_the_same_part_of_speech(lexicon):
    result = rewriter(replace_ratio=1.0, seed=0).rewrite("she is happy")
    (replacement,) = result.antonym_replacements
    assert replacement.relation == "antonym" and replacement.replacement == "unhappy"
    result = rewriter(replace_ratio=1.0, seed=0).rewrite("the guitar")
    (replacement,) = result.antonym_replacements
    assert replacement.relation == "random" and replacement.replacement in lexicon.random_pool("n")


def test_inflection_and_capitalisation_are_kept(lexicon):
    result = rewriter(replace_ratio=1.0, hypernym_probability=0.0, seed=0).rewrite("Dogs barked")
    first = result.synonym_replacements[0]
    assert first.original == "Dogs" and first.replacement[0].isupper()
    for sentence, word, tag, pos in (("the dogs", "dogs", "NNS", "n"), ("he ran", "ran", "VBD", "v")):
        entry = lexicon.entry(word)
        plural_or_past = {inflect(c, tag, pos) for c in entry.synonyms + entry.hypernyms}
        assert plural_or_past - set(entry.synonyms + entry.hypernyms), "inflection must change some candidates"
        for seed in range(5):
            for r in rewriter(replace_ratio=1.0, seed=seed).rewrite(sentence).synonym_replacements:
                assert r.replacement in plural_or_past, r


def test_proper_nouns_and_stop_words_are_left_alone():
    for seed in range(5):
        result = rewriter(replace_ratio=1.0, seed=seed).rewrite("Yesterday the Times reported it")
        touched = {r.original for r in result.synonym_replacements + result.antonym_replacements}
        assert "Times" not in touched and not touched & {"the", "it"}


def test_sentences_without_a_replaceable_word_are_counted_and_skipped():
    rw = rewriter()
    assert rw.rewrite("of the and") is None
    assert rw.rewrite("") is None
    result = rw.rewrite_all(["of the and", SENTENCES[0], "", "1234 5678"])
    assert result.skipped == [0, 2, 3] and result.num_skipped == 3
    assert [r.original for r in result.rewrites] == [SENTENCES[0]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"replace_ratio": 0}, "replace_ratio must be in"),
        ({"replace_ratio": 1.5}, "replace_ratio must be in"),
        ({"hypernym_probability": -0.1}, "hypernym_probability must be in"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"max_senses": 0}, "max_senses must be a positive integer"),
    ],
)
def test_bad_rewriter_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WordNetRewriter(**kwargs)


def test_non_string_sentence_is_a_type_error():
    with pytest.raises(TypeError, match="must be strings"):
        rewriter().rewrite(3)


def test_max_senses_restricts_candidates(lexicon):
    narrow = WordNetLexicon(lexicon.wordnet, max_senses=1)
    assert set(narrow.entry("play").synonyms) < set(lexicon.entry("play").synonyms)


def test_env_var_selects_the_source_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(wnmod.ENV_WORDNET_DIR, str(tmp_path / "elsewhere"))
    with pytest.raises(LookupError, match="elsewhere"):
        load_wordnet(use_nltk_data=False, nltk_data_root=tmp_path / "none")
    assert os.environ[wnmod.ENV_WORDNET_DIR].endswith("elsewhere")
