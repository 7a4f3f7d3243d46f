"""TF-IDF substitution: CIL's positive view of a relation instance (Chen et al., ACL 2021).

The view changes the sentence's *unimportant* context words, those with the lowest TF-IDF score
(IDF fitted on the training sentences), and never the entity mentions, so the relational fact the
sentence expresses is kept. Each chosen word is either replaced by, or preceded by an inserted, word
drawn from the same relation's bag vocabulary (the context words of that relation's training
sentences, in proportion to their frequency).

TF-IDF of word ``w`` in sentence ``s``: ``count(w, s) · (ln((1 + N) / (1 + df(w))) + 1)`` over ``N``
training sentences (scikit-learn's smoothed IDF; words are lower-cased). Within a sentence this ranks
words exactly like ``sklearn.feature_extraction.text.TfidfVectorizer`` with the same tokens (tested).
Ties are broken by position (earlier first). Words without a letter or digit (punctuation) are never
changed. Every call is deterministic given the view's ``seed`` and the call's ``seed``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from st_contrast.losses._checks import check_int, check_rate


class _Instance(Protocol):
    tokens: tuple[str, ...]
    head: tuple[int, int]
    tail: tuple[int, int]
    relation: str


def _is_word(token: str) -> bool:
    return any(ch.isalnum() for ch in token)


class TfidfSubstitution:
    def __init__(
        self,
        ratio: float = 0.1,
        insert_probability: float = 0.3,
        min_changes: int = 1,
        seed: int = 0,
    ) -> None:
        """The positive-view generator; call :meth:`fit` on the training sentences before use.

        Args:
            ratio: fraction of a sentence's context words (non-entity words with a letter or digit) to change;
                ``max(min_changes, round(ratio · n_context))`` words are changed, at most ``n_context``.
            insert_probability: probability that a chosen word gets a relation word inserted before it
                instead of being replaced (0: replace only; 1: insert only).
            min_changes: the fewest words changed in a sentence that has context words.
            seed: base seed; a call's own ``seed`` is combined with it.

        Example:
            ::

                from st_contrast.data.relation import read_fewrel_nyt
                from st_contrast.views import TfidfSubstitution

                train = read_fewrel_nyt()
                view = TfidfSubstitution(ratio=0.1).fit(train)
                positive = view(train[0], seed=0)  # a RelationInstance with the same entities
        """
        self.ratio = check_rate(ratio, "ratio")
        self.insert_probability = check_rate(insert_probability, "insert_probability")
        self.min_changes = check_int(min_changes, "min_changes", minimum=0)
        self.seed = int(seed)
        self.idf: dict[str, float] = {}
        self.num_documents = 0
        self.relation_vocabulary: dict[str, tuple[list[str], list[int]]] = {}

    # ------------------------------------------------------------------ fitting

    def fit(self, instances: Iterable[_Instance]) -> TfidfSubstitution:
        """Fit the IDF on the training sentences and collect each relation's context-word vocabulary."""
        document_frequency: Counter[str] = Counter()
        vocabulary: dict[str, Counter[str]] = {}
        n = 0
        for instance in instances:
            n += 1
            document_frequency.update({token.lower() for token in instance.tokens})
            entity = _entity_positions(instance)
            words = vocabulary.setdefault(instance.relation, Counter())
            words.update(t for i, t in enumerate(instance.tokens) if i not in entity and _is_word(t))
        if n == 0:
            raise ValueError("TfidfSubstitution.fit needs at least one training sentence, got none")
        self.num_documents = n
        self.idf = {word: math.log((1 + n) / (1 + df)) + 1.0 for word, df in document_frequency.items()}
        self.relation_vocabulary = {
            relation: (sorted(counts), [counts[w] for w in sorted(counts)])
            for relation, counts in vocabulary.items()
            if counts
        }
        return self

    def _check_fitted(self) -> None:
        if not self.num_documents:
            raise ValueError("TfidfSubstitution is not fitted: call view.fit(training_instances) first")

    # ------------------------------------------------------------------ scoring

    def scores(self, tokens: Sequence[str]) -> list[float]:
        """TF-IDF of each token of a sentence (words unseen in training get the largest IDF)."""
        self._check_fitted()
        lowered = [t.lower() for t in tokens]
        counts = Counter(lowered)
        unseen = math.log((1 + self.num_documents) / 1) + 1.0
        return [counts[t] * self.idf.get(t, unseen) for t in lowered]

    def ranked_context(self, instance: _Instance) -> list[int]:
        """Positions of the changeable context words, least important (lowest TF-IDF) first."""
        scores = self.scores(instance.tokens)
        entity = _entity_positions(instance)
        candidates = [i for i, t in enumerate(instance.tokens) if i not in entity and _is_word(t)]
        return sorted(candidates, key=lambda i: (scores[i], i))

    def num_changes(self, num_context: int) -> int:
        if num_context == 0:
            return 0
        return min(num_context, max(self.min_changes, int(round(self.ratio * num_context))))

    # ------------------------------------------------------------------ the view

    def __call__(self, instance: Any, seed: int = 0) -> Any:
        """The positive view of ``instance`` (same type, entity spans moved to their new positions)."""
        return self.augment(instance, seed)[0]

    def augment(self, instance: Any, seed: int = 0) -> tuple[Any, dict[str, list[int]]]:
        """The view and what was done: ``{"replaced": [...], "inserted_before": [...]}`` (original positions)."""
        self._check_fitted()
        words, weights = self.relation_vocabulary.get(instance.relation, ([], []))
        if not words:
            known = sorted(self.relation_vocabulary)[:10]
            raise ValueError(
                f"TfidfSubstitution has no vocabulary for relation {instance.relation!r} (fitted relations: {known}"
                f"{', ...' if len(self.relation_vocabulary) > 10 else ''}). Fit it on training sentences of every "
                "relation it will augment."
            )
        rng = random.Random(self.seed * 1_000_003 + int(seed))
        ranked = self.ranked_context(instance)
        chosen = ranked[: self.num_changes(len(ranked))]
        replace_at: dict[int, str] = {}
        insert_at: dict[int, str] = {}
        for position in chosen:
            original = instance.tokens[position].lower()
            insert = rng.random() < self.insert_probability
            word = rng.choices(words, weights)[0]
            if not insert:
                # a replacement must change the word; give up after a few draws and insert instead
                for _ in range(10):
                    if word.lower() != original:
                        break
                    word = rng.choices(words, weights)[0]
                else:
                    insert = True
            (insert_at if insert else replace_at)[position] = word
        tokens: list[str] = []
        new_index: list[int] = []
        for i, token in enumerate(instance.tokens):
            if i in insert_at:
                tokens.append(insert_at[i])
            new_index.append(len(tokens))
            tokens.append(replace_at.get(i, token))
        new_index.append(len(tokens))

        def moved(span: tuple[int, int]) -> tuple[int, int]:
            return new_index[span[0]], new_index[span[1] - 1] + 1

        view = replace(instance, tokens=tuple(tokens), head=moved(instance.head), tail=moved(instance.tail))
        return view, {"replaced": sorted(replace_at), "inserted_before": sorted(insert_at)}

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "insert_probability": self.insert_probability,
            "min_changes": self.min_changes,
            "seed": self.seed,
        }


def _entity_positions(instance: _Instance) -> set[int]:
    return set(range(*instance.head)) | set(range(*instance.tail))
