"""The official CLINE data recipe (``WordNetRewriter(recipe="official")``) and the rejection of identical
replacements, on the real WordNet 3.0."""

from __future__ import annotations

from collections import Counter

import pytest

from st_contrast.views import wordnet as wnmod
from st_contrast.views.wordnet import WordNetRewriter, inflect
from tests.views.test_wordnet import shared_lexicon


def rewriter(**kwargs) -> WordNetRewriter:
    return WordNetRewriter(lexicon=shared_lexicon(), **kwargs)


def test_identical_replacements_are_rejected():
    """'premiered': its only synonym, 'premier', inflects back to 'premiered'."""
    lexicon = shared_lexicon()
    entry = lexicon.entry("premiered")
    assert [inflect(c, entry.tag, entry.pos) for c in entry.synonyms] == ["premiered"]
    rw = rewriter(replace_ratio=1.0, hypernym_probability=0.0)
    for seed in range(10):
        rw.seed = seed
        result = rw.rewrite("the film premiered")
        for r in result.synonym_replacements + result.antonym_replacements:
            assert r.replacement.lower() != r.original.lower(), r
        assert "premiered" not in {r.original for r in result.synonym_replacements}
    assert rw.counts["identical_rejected"] >= 10
    # a sentence whose only positive would be the word itself makes no triple
    assert rewriter(replace_ratio=1.0, hypernym_probability=0.0).rewrite("premiered") is None


SENTENCE = "the children played football in the park after school"  # 9 tokens, 5 content words


def test_official_recipe_replaces_up_to_half_the_tokens_and_never_mixes_negatives():
    lexicon = shared_lexicon()
    content = [w for w in SENTENCE.split() if lexicon.entry(w) is not None]
    k = min(int(0.5 * 9), len(content))
    assert (len(content), k) == (5, 4)
    kinds = Counter()
    for seed in range(40):
        result = rewriter(recipe="official", seed=seed).rewrite(SENTENCE)
        positive = {r.relation for r in result.synonym_replacements}
        negative = {r.relation for r in result.antonym_replacements}
        assert len(positive) == 1 and positive <= {"hypernym", "synonym", "inflection"}, "one relation per rewrite"
        assert negative in ({"antonym"}, {"random"}), "antonyms or random words, never mixed"
        assert 1 <= len(result.synonym_replacements) <= k and 1 <= len(result.antonym_replacements) <= k
        if negative == {"random"}:
            assert len(result.antonym_replacements) == k
        for r in result.synonym_replacements + result.antonym_replacements:
            assert r.replacement.lower() != r.original.lower()
        kinds.update(positive)
    assert set(kinds) == {"hypernym", "synonym", "inflection"}


def test_official_recipe_draws_each_positive_relation_a_third_and_antonyms_half_the_time():
    positive, negative = Counter(), Counter()
    for seed in range(300):
        # every content word has hypernyms, synonyms and other inflections: the draw alone decides (1/3 each)
        result = rewriter(recipe="official", seed=seed).rewrite("the dog chased the cat")
        positive.update({r.relation for r in result.synonym_replacements})
        # words with antonyms: antonyms half of the time, random words otherwise
        result = rewriter(recipe="official", seed=seed).rewrite("she is happy but he is sad and old")
        negative.update({r.relation for r in result.antonym_replacements})
    assert sum(positive.values()) == 300
    for relation in ("hypernym", "synonym", "inflection"):
        assert 70 <= positive[relation] <= 130, positive
    assert 120 <= negative["antonym"] <= 180 and negative["antonym"] + negative["random"] == 300, negative


def test_official_recipe_uses_base_forms_and_other_inflections():
    lexicon = shared_lexicon()
    dogs, ran = lexicon.entry("dogs"), lexicon.entry("ran")
    seen = Counter()
    for seed in range(60):
        result = rewriter(recipe="official", seed=seed).rewrite("the dogs ran")
        for r in result.synonym_replacements:
            entry = dogs if r.original == "dogs" else ran
            if r.relation == "inflection":
                assert r.replacement in wnmod._other_inflections(entry)  # e.g. ran -> runs, dogs -> dog
                assert r.replacement != r.original
            else:
                # not re-inflected: the WordNet lemma as it is
                assert r.replacement in {"synonym": entry.synonyms, "hypernym": entry.hypernyms}[r.relation]
            seen[r.relation] += 1
    assert seen["inflection"] and (seen["synonym"] or seen["hypernym"])
    assert "runs" in wnmod._other_inflections(ran) and "ran" not in wnmod._other_inflections(ran)


def test_official_recipe_config_counts_and_bad_value():
    rw = rewriter(recipe="official", seed=0)
    result = rw.rewrite_all([SENTENCE, "of the and"])
    assert result.skipped == [1]
    assert rw.counts["sentences"] == 2 and rw.counts["skipped"] == 1
    made = sum(rw.counts[k] for k in ("hypernym", "synonym", "inflection", "antonym", "random"))
    assert made == len(result.rewrites[0].synonym_replacements) + len(result.rewrites[0].antonym_replacements)
    assert rw.get_config_dict()["recipe"] == "official"
    with pytest.raises(ValueError, match="recipe must be 'paper' or 'official'"):
        WordNetRewriter(recipe="code")
