"""CIL for :mod:`benchmarks.bench_losses`: ``FACTORIES = {"cil": ..., "cil-bag-ce": ..., "cil-official": ...}``.

The harness hands over a plain SentenceTransformer and plain sentences. The factory turns the model
into a relation encoder (entity marker tokens added, embeddings resized, ``EntityMarkerPooling``) and
``make_batch`` turns the ``B`` sentences into ``B`` bags of 2 marked sentences (the first and the
third word are the entities; the second sentence of a bag is its neighbour in the batch) plus the TF-IDF
view of the first, with relation ids cycling over 8 relations. So a "batch" here is ``B`` bags:
``3B`` encoder sequences (two bag sentences and the augmented copy, one merged forward) plus ``B``
masked sequences for the MLM, against SimCSE's ``2B``.

* ``cil``: the paper's defaults (τ 0.05, λ_c 10, λ_m 0.1, warmup 500, negatives ``other_bags``).
* ``cil-official``: the same with the official code's negative axis.
* ``cil-bag-ce``: selective-attention bag CE alone (no augmented column encoded, no MLM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NUM_RELATIONS = 8


def _instances(sentences: list[str]):
    from st_contrast.data.relation import RelationInstance

    instances = []
    for index, sentence in enumerate(sentences):
        words = sentence.split()
        if len(words) < 3:
            words = [*words, "it", "is", "so"][:3]
        # entities near the start, so the markers survive the harness's short max length
        instances.append(RelationInstance(tuple(words), (0, 1), (2, 3), f"r{index % NUM_RELATIONS}", uid=str(index)))
    return instances


def _factory(**loss_kwargs: Any) -> Callable:
    def make(model) -> tuple[Any, Callable]:
        import torch

        from st_contrast.data.relation import Bag, cil_rows
        from st_contrast.losses import CILLoss
        from st_contrast.modules.entity_pooling import build_relation_encoder
        from st_contrast.views.tfidf import TfidfSubstitution

        encoder = build_relation_encoder(model, max_seq_length=None)
        encoder.train()
        loss = CILLoss(encoder, num_relations=NUM_RELATIONS, **loss_kwargs)

        def make_batch(sentences: list[str]):
            instances = _instances(sentences)
            view = TfidfSubstitution(seed=0).fit(instances)
            bags = [
                Bag((str(i),), instance.relation, [instance, instances[(i + 1) % len(instances)]])
                for i, instance in enumerate(instances)
            ]
            rows = cil_rows(bags, {f"r{i}": i for i in range(NUM_RELATIONS)}, 2, augment=view, max_words=None)
            columns = ["sentence_1", "sentence_2", "augmented"]
            features = [encoder.preprocess([row[column] for row in rows]) for column in columns]
            labels = torch.tensor([row["label"] for row in rows])
            return features, labels

        return loss, make_batch

    return make


FACTORIES: dict[str, Callable] = {
    "cil": _factory(),
    "cil-official": _factory(negatives="official"),
    "cil-bag-ce": _factory(contrastive_weight=0.0, mlm_weight=0.0),
}
