from __future__ import annotations

import math

import numpy as np
import pytest

from st_contrast.data.relation import RelationInstance, read_fewrel_nyt
from st_contrast.views.tfidf import TfidfSubstitution


@pytest.fixture(scope="module")
def fewrel(data_dir):
    return read_fewrel_nyt(data_dir=data_dir)[::5]  # 500 sentences, 20 per relation


@pytest.fixture(scope="module")
def view(fewrel):
    return TfidfSubstitution(ratio=0.2, insert_probability=0.3, seed=7).fit(fewrel)


def test_scores_rank_like_sklearn_tfidf(fewrel, view):
    from sklearn.feature_extraction.text import TfidfVectorizer

    documents = [[t.lower() for t in instance.tokens] for instance in fewrel]
    vectorizer = TfidfVectorizer(analyzer=lambda tokens: tokens, norm=None)
    matrix = vectorizer.fit_transform(documents)
    vocabulary = vectorizer.vocabulary_
    for row in (0, 17, 250):
        ours = view.scores(fewrel[row].tokens)
        theirs = [matrix[row, vocabulary[t]] for t in documents[row]]
        np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_scores_by_hand():
    docs = [RelationInstance(tuple(s.split()), (0, 1), (2, 3), "r") for s in ["a b c a", "a d e", "f g h"]]
    view = TfidfSubstitution().fit(docs)
    scores = view.scores(("a", "b", "c", "a"))
    idf_a, idf_b = math.log(4 / 3) + 1, math.log(4 / 2) + 1
    assert scores == pytest.approx([2 * idf_a, idf_b, idf_b, 2 * idf_a])
    assert view.scores(("zzz",)) == pytest.approx([math.log(4) + 1])  # unseen words are the most informative


def test_changes_the_lowest_tfidf_context_words_only(fewrel, view):
    for index in range(0, 500, 37):
        instance = fewrel[index]
        augmented, info = view.augment(instance, seed=index)
        changed = sorted(info["replaced"] + info["inserted_before"])
        ranked = view.ranked_context(instance)
        assert changed == sorted(ranked[: view.num_changes(len(ranked))])
        scores = view.scores(instance.tokens)
        entity = instance.entity_positions()
        untouched = [i for i in ranked if i not in changed]
        if untouched and changed:
            assert max(scores[i] for i in changed) <= min(scores[i] for i in untouched)
        assert not set(changed) & entity


def test_entities_are_intact(fewrel, view):
    for index, instance in enumerate(fewrel):
        for seed in (0, 1):
            augmented = view(instance, seed=seed)
            assert augmented.head_text == instance.head_text
            assert augmented.tail_text == instance.tail_text
            assert augmented.relation == instance.relation


@pytest.mark.parametrize("ratio", [0.1, 0.3])
def test_replaced_count(fewrel, ratio):
    replace_only = TfidfSubstitution(ratio=ratio, insert_probability=0.0).fit(fewrel)
    insert_only = TfidfSubstitution(ratio=ratio, insert_probability=1.0).fit(fewrel)
    for instance in fewrel[:60]:
        n_context = len(replace_only.ranked_context(instance))
        expected = max(1, round(ratio * n_context))
        replaced = replace_only(instance, seed=3)
        assert len(replaced.tokens) == len(instance.tokens)
        assert sum(a != b for a, b in zip(replaced.tokens, instance.tokens)) == expected
        inserted = insert_only(instance, seed=3)
        assert len(inserted.tokens) == len(instance.tokens) + expected
        it = iter(inserted.tokens)
        assert all(token in it for token in instance.tokens), "insertion keeps every original word in order"


def test_new_words_come_from_the_relation_vocabulary(fewrel, view):
    for instance in fewrel[::25]:
        augmented, info = view.augment(instance, seed=1)
        vocabulary = set(view.relation_vocabulary[instance.relation][0])
        original = list(instance.tokens)
        for position in info["replaced"]:
            offset = sum(1 for p in info["inserted_before"] if p <= position)
            assert augmented.tokens[position + offset] in vocabulary
            assert augmented.tokens[position + offset] != original[position]


def test_seeded_and_deterministic(fewrel, view):
    instance = fewrel[3]
    assert view(instance, seed=5) == view(instance, seed=5)
    again = TfidfSubstitution(ratio=0.2, insert_probability=0.3, seed=7).fit(fewrel)
    assert again(instance, seed=5) == view(instance, seed=5)
    outputs = {view(instance, seed=s).tokens for s in range(10)}
    assert len(outputs) > 1


def test_errors(fewrel):
    with pytest.raises(ValueError, match="not fitted"):
        TfidfSubstitution()(fewrel[0])
    with pytest.raises(ValueError, match="ratio must be in"):
        TfidfSubstitution(ratio=2)
    with pytest.raises(ValueError, match="insert_probability must be in"):
        TfidfSubstitution(insert_probability=-0.1)
    with pytest.raises(ValueError, match="at least one training sentence"):
        TfidfSubstitution().fit([])
    view = TfidfSubstitution().fit(fewrel[:10])
    stranger = RelationInstance(("a", "b", "c"), (0, 1), (2, 3), "never-seen")
    with pytest.raises(ValueError, match="no vocabulary for relation 'never-seen'"):
        view(stranger)
