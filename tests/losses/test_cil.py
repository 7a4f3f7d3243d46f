from __future__ import annotations

import copy
import math

import pytest
import torch

from st_contrast.data.relation import RelationInstance, cil_dataset, cil_examples, pseudo_bags, relation_ids
from st_contrast.losses import CILLoss
from st_contrast.losses import functional as F_
from st_contrast.losses.cil import cil_ramp
from st_contrast.modules.entity_pooling import (
    ENTITY_MARKERS,
    EntityMarkerPooling,
    build_relation_encoder,
    load_relation_encoder,
)
from st_contrast.views.tfidf import TfidfSubstitution
from tests.training_utils import fit_two_steps, trainer_two_steps


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def reference_cil_infonce(x, x_pos, bags, tau, rule):
    """CIL's InfoNCE as loops: the paper sums e(x_i, B_j) over bags j; the official code over instances."""
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        numerator = math.exp(_cos(x[i], x_pos[i]) / tau)
        if rule == "other_bags":
            negatives = sum(math.exp(_cos(x[i], bags[j]) / tau) for j in range(n) if j != i)
        else:
            negatives = sum(math.exp(_cos(x[j], bags[i]) / tau) for j in range(n) if j != i)
        total += -math.log(numerator / (numerator + negatives))
    return total / n


@pytest.mark.parametrize("warmup", [1, 10, 500])
def test_alpha_ramp_matches_formula(warmup):
    for step in [0, 1, warmup // 2, warmup, 2 * warmup, 10 * warmup]:
        p = step / (2 * warmup)
        assert cil_ramp(step, warmup) == pytest.approx(2 / (1 + math.exp(-2 * p)) - 1)
    values = [cil_ramp(step, warmup) for step in range(0, 20 * warmup, max(1, warmup // 5))]
    assert values[0] == 0.0 and all(a < b for a, b in zip(values, values[1:])) and values[-1] < 1.0
    assert cil_ramp(123, 0) == 1.0


# ---------------------------------------------------------------------------------------------
# The loss on a tiny relation encoder
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _relation_encoder(tiny_transformer_dir):
    return build_relation_encoder(str(tiny_transformer_dir), max_seq_length=64, device="cpu")


@pytest.fixture
def relation_model(_relation_encoder):
    return copy.deepcopy(_relation_encoder)


def _instances() -> list[RelationInstance]:
    texts = [
        ("the museum in paris opened a new hall", (1, 2), (3, 4), "located_in"),
        ("a new bridge in london was opened today", (2, 3), (4, 5), "located_in"),
        ("the school in rome hired more teachers", (1, 2), (3, 4), "located_in"),
        ("the station of berlin was busy at night", (1, 2), (3, 4), "located_in"),
        ("john works for the bank near the river", (0, 1), (4, 5), "employer"),
        ("mary works for the museum since may", (0, 1), (4, 5), "employer"),
        ("the doctor works for the hospital now", (1, 2), (5, 6), "employer"),
        ("anna joined the company last year happily", (0, 1), (3, 4), "employer"),
    ]
    return [RelationInstance(tuple(t.split()), h, tl, r, uid=str(i)) for i, (t, h, tl, r) in enumerate(texts)]


def _rows(bag_size: int = 2, seed: int = 0):
    instances = _instances()
    view = TfidfSubstitution(seed=seed).fit(instances)
    bags = pseudo_bags(instances, bag_size, seed=seed)
    return bags, relation_ids(instances), view


def _features(model, dataset, columns=None):
    columns = columns or [c for c in dataset.column_names if c != "label"]
    return [model.preprocess(dataset[c]) for c in columns], torch.tensor(dataset["label"])


def test_bag_ce_and_contrastive_match_reference(relation_model):
    torch.manual_seed(0)
    loss = CILLoss(relation_model, num_relations=3, temperature=0.1, warmup_steps=0, mlm_weight=0.0)
    dim = relation_model.get_embedding_dimension()
    bags, k = 4, 3
    columns = [torch.randn(bags, dim, dtype=torch.float32) for _ in range(k + 1)]
    labels = torch.tensor([0, 2, 1, 2])
    out = loss.compute_loss_from_embeddings(columns, labels)
    weight, bias = loss.bag_classifier.classifier.weight.detach(), loss.bag_classifier.classifier.bias.detach()
    bag_reps, ce = [], 0.0
    for b in range(bags):
        scores = [float(columns[i][b] @ weight[labels[b]]) for i in range(k)]
        top = max(scores)
        alphas = [math.exp(s - top) for s in scores]
        alphas = [a / sum(alphas) for a in alphas]
        rep = sum(alphas[i] * columns[i][b] for i in range(k))
        bag_reps.append(rep)
        logits = weight @ rep + bias
        ce += float(-torch.log_softmax(logits, dim=0)[labels[b]])
    torch.testing.assert_close(out["bag_ce"], torch.tensor(ce / bags), rtol=1e-4, atol=1e-5)
    expected = reference_cil_infonce(
        columns[0].double(), columns[-1].double(), torch.stack(bag_reps).double(), 0.1, "other_bags"
    )
    torch.testing.assert_close(
        out["contrastive"].double(), torch.tensor(10.0 * expected, dtype=torch.float64), rtol=1e-4, atol=1e-4
    )


def test_contrastive_term_follows_alpha_and_step_counts_training_calls(relation_model):
    bags, rel2id, view = _rows()
    dataset = cil_dataset(bags, rel2id, 2, augment=view, max_words=12)
    features, labels = _features(relation_model, dataset)
    loss = CILLoss(relation_model, num_relations=len(rel2id), warmup_steps=4, mlm_weight=0.0)
    first = loss(features, labels)
    assert loss.step == 1 and first["contrastive"].item() == 0.0  # α(0) = 0
    loss.step = 4
    torch.manual_seed(0)
    relation_model.eval()
    value = loss(features, labels)["contrastive"]
    embeddings = [relation_model(dict(f))["sentence_embedding"] for f in features]
    _, bag_reps = loss.bag_classifier(torch.stack(embeddings[:-1], dim=1), labels)
    raw = F_.cil_contrastive_loss(embeddings[0], embeddings[-1], bag_reps, 0.05, "other_bags")
    torch.testing.assert_close(value, cil_ramp(4, 4) * 10.0 * raw, rtol=1e-4, atol=1e-4)
    assert loss.step == 5
    with torch.no_grad():
        loss(features, labels)
    assert loss.step == 5, "evaluation (no grad) must not advance the α(t) schedule"


def test_mlm_never_masks_entities_or_markers(relation_model):
    loss = CILLoss(relation_model, num_relations=2)
    h1, h2, t1, t2 = find_markers(relation_model)
    input_ids = torch.tensor([[101, 5, h1, 6, 7, h2, 8, t1, 9, t2, 10, 102]])
    protected = loss.protected_positions(input_ids)
    assert protected[0].tolist() == [False, False, True, True, True, True, False, True, True, True, False, False]
    rows = [
        "[E1] paris [/E1] is in [E2] france [/E2] and the city is large and old and busy",
        "the museum of [E1] rome [/E1] belongs to [E2] italy [/E2] since many long years",
    ]
    features = relation_model.preprocess(rows)
    from st_contrast.modules.mlm import mask_tokens, tokenizer_ids

    ids = tokenizer_ids(relation_model)
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        _, targets = mask_tokens(
            features["input_ids"],
            features["attention_mask"],
            ids["mask_token_id"],
            ids["vocab_size"],
            ids["special_ids"],
            probability=0.5,
            generator=generator,
            protected=loss.protected_positions(features["input_ids"]),
        )
        picked = targets != -100
        assert bool(picked.any())
        assert not bool((picked & loss.protected_positions(features["input_ids"])).any())


def find_markers(model):
    for module in model.modules():
        if isinstance(module, EntityMarkerPooling):
            return module.marker_ids
    raise AssertionError("no EntityMarkerPooling")


@pytest.mark.parametrize("negatives", ["other_bags", "official"])
def test_fit_two_steps(relation_model, negatives):
    bags, rel2id, view = _rows()
    examples = cil_examples(bags, rel2id, 2, augment=view, max_words=12)
    loss = CILLoss(relation_model, num_relations=len(rel2id), warmup_steps=0, negatives=negatives)
    changed = fit_two_steps(relation_model, loss, examples, batch_size=2)
    assert any(name.startswith("model.0.") for name in changed), changed
    assert {"bag_classifier.classifier.weight", "model.1.linear.weight", "mlm_head.dense.weight"} <= changed
    assert loss.step == 2


def test_trainer_two_steps(relation_model, tmp_path):
    bags, rel2id, view = _rows()
    dataset = cil_dataset(bags, rel2id, 2, augment=view, max_words=12)
    loss = CILLoss(relation_model, num_relations=len(rel2id), warmup_steps=0)
    changed = trainer_two_steps(relation_model, loss, dataset, tmp_path, batch_size=2)
    assert any(name.startswith("model.0.") for name in changed), changed
    assert {"bag_classifier.classifier.weight", "mlm_head.dense.weight"} <= changed


def test_bag_ce_alone_skips_augmented_column_and_mlm(relation_model):
    bags, rel2id, view = _rows()
    dataset = cil_dataset(bags, rel2id, 2, augment=view, max_words=12)
    features, labels = _features(relation_model, dataset)
    loss = CILLoss(relation_model, num_relations=len(rel2id), contrastive_weight=0.0, mlm_weight=0.0)
    assert loss.mlm_head is None
    calls = []
    handle = relation_model.register_forward_pre_hook(lambda module, args: calls.append(args[0]["input_ids"].shape))
    try:
        out = loss(features, labels)
    finally:
        handle.remove()
    assert set(out) == {"bag_ce"} and out["bag_ce"].requires_grad
    assert sum(shape[0] for shape in calls) == 2 * len(labels), "the augmented column must not be encoded"


def test_relation_encoder_save_load_keeps_markers(relation_model, tmp_path):
    relation_model.save(str(tmp_path / "encoder"))
    loaded = load_relation_encoder(tmp_path / "encoder", device="cpu")
    for marker, marker_id in zip(ENTITY_MARKERS, find_markers(relation_model)):
        assert loaded.tokenizer.convert_tokens_to_ids(marker) == marker_id
    text = ["the [E1] museum [/E1] is in [E2] paris [/E2] today"]
    assert "[E1]" in loaded.tokenizer.tokenize(text[0])
    torch.testing.assert_close(
        loaded.encode(text, convert_to_tensor=True), relation_model.encode(text, convert_to_tensor=True)
    )
    rows = relation_model[0].auto_model.get_input_embeddings().weight.shape[0]
    assert loaded[0].auto_model.get_input_embeddings().weight.shape[0] == rows == len(relation_model.tokenizer)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_unknown_relation_ids_and_missing_labels(relation_model):
    bags, rel2id, view = _rows()
    dataset = cil_dataset(bags, rel2id, 2, augment=view, max_words=12)
    features, _ = _features(relation_model, dataset)
    loss = CILLoss(relation_model, num_relations=2)
    with pytest.raises(ValueError, match=r"unknown relation id\(s\) \[5\].*\[0, 2\)"):
        loss(features, torch.tensor([0, 1, 5, 1]))
    with pytest.raises(ValueError, match="needs the bag's relation id"):
        loss(features, None)
    with pytest.raises(ValueError, match="4 bags"):
        loss(features, torch.tensor([0, 1]))


def test_bags_without_entities_raise(relation_model):
    loss = CILLoss(relation_model, num_relations=2, mlm_weight=0.0)
    marked = "the [E1] museum [/E1] is in [E2] paris [/E2]"
    features = [
        relation_model.preprocess([marked, "a sentence without any entity markers"]),
        relation_model.preprocess([marked, marked]),
    ]
    with pytest.raises(ValueError, match=r"rows \[1\].*lack the head marker"):
        loss(features, torch.tensor([0, 1]))


def test_one_bag_batch_and_one_column_raise(relation_model):
    loss = CILLoss(relation_model, num_relations=2, mlm_weight=0.0)
    marked = "the [E1] museum [/E1] is in [E2] paris [/E2]"
    features = [relation_model.preprocess([marked]), relation_model.preprocess([marked])]
    with pytest.raises(ValueError, match="at least 2 bags per batch"):
        loss(features, torch.tensor([0]))
    with pytest.raises(ValueError, match="sentence_1, ..., sentence_k, augmented"):
        loss(features[:1], torch.tensor([0]))


def test_model_without_entity_pooling_raises(tiny_model):
    with pytest.raises(ValueError, match="no EntityMarkerPooling.*build_relation_encoder"):
        CILLoss(tiny_model, num_relations=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_relations": 1}, "num_relations must be an integer >= 2"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"contrastive_weight": -1}, "contrastive_weight must be a finite number >= 0"),
        ({"mlm_weight": float("nan")}, "mlm_weight must be a finite number >= 0"),
        ({"warmup_steps": -5}, "warmup_steps must be an integer >= 0"),
        ({"negatives": "rows"}, "negatives must be 'other_bags'"),
        ({"mlm_probability": 1.5}, "mlm_probability must be in"),
    ],
)
def test_invalid_arguments(relation_model, kwargs, message):
    arguments = {"num_relations": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        CILLoss(relation_model, **arguments)


def test_config_and_citation(relation_model):
    loss = CILLoss(relation_model, num_relations=3, negatives="official")
    config = loss.get_config_dict()
    assert config["negatives"] == "official" and config["contrastive_weight"] == 10.0 and config["warmup_steps"] == 500
    assert "chen-etal-2021-cil" in loss.citation


def test_mlm_value_equals_the_full_vocabulary_reference(relation_model, monkeypatch):
    """The MLM term projects only the masked positions; its value is the old every-position cross-entropy."""
    from st_contrast.losses import cil as cil_module

    model = relation_model.eval()  # no dropout: the reference pass sees the same hidden states
    loss = CILLoss(model, num_relations=2, mlm_weight=0.5, warmup_steps=0)
    captured = {}
    original_mask = cil_module.mask_tokens

    def recording_mask(input_ids, attention_mask, *args, **kwargs):
        masked, targets = original_mask(input_ids, attention_mask, *args, **kwargs)
        captured.update(masked=masked, attention_mask=attention_mask, targets=targets)
        return masked, targets

    monkeypatch.setattr(cil_module, "mask_tokens", recording_mask)
    bags, rel2id, view = _rows()
    features, labels = _features(model, cil_dataset(bags, rel2id, 2, augment=view, max_words=12))
    torch.manual_seed(0)
    out = loss(features, labels)
    encoder = model[0].auto_model
    with torch.no_grad():
        hidden = encoder(input_ids=captured["masked"], attention_mask=captured["attention_mask"]).last_hidden_state
        logits = loss.mlm_head(hidden, encoder.get_input_embeddings().weight)  # every position, as before
        expected = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), captured["targets"].reshape(-1), ignore_index=-100
        )
    assert bool((captured["targets"] != -100).any())
    torch.testing.assert_close(out["mlm"].detach(), 0.5 * expected, rtol=1e-5, atol=1e-6)


def test_anchors_of_only_markers_and_mentions_give_a_zero_mlm_term(relation_model, caplog):
    import logging

    loss = CILLoss(relation_model, num_relations=2, warmup_steps=0)
    anchors = ["[E1] paris [/E1] [E2] france [/E2]", "[E1] rome [/E1] [E2] italy [/E2]"]
    other = ["[E1] paris [/E1] is in [E2] france [/E2]", "[E1] rome [/E1] is in [E2] italy [/E2]"]
    features = [relation_model.preprocess(anchors), relation_model.preprocess(other), relation_model.preprocess(other)]
    with caplog.at_level(logging.WARNING, logger="st_contrast.modules.mlm"):
        out = loss(features, torch.tensor([0, 1]))
    assert out["mlm"].item() == 0.0
    assert all(bool(torch.isfinite(value)) for value in out.values())
    sum(out.values()).backward()
    assert loss.mlm_head.dense.weight.grad is not None and torch.count_nonzero(loss.mlm_head.dense.weight.grad) == 0
    assert any("CILLoss" in r.getMessage() and "could be masked" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------
# The official code's details (issue 17): one switch each, and the official=True preset
# ---------------------------------------------------------------------------------------------


def _bag_inputs(loss, bags=4, k=3, seed=0):
    torch.manual_seed(seed)
    dim = loss.bag_classifier.embedding_dimension
    instances = torch.randn(bags, k, dim, dtype=torch.float64, requires_grad=True)
    return instances, torch.tensor([0, 2, 1, 2])[:bags]


def test_detached_query_gives_the_classifier_weight_only_its_classification_gradient(relation_model):
    grads = {}
    for detach in (False, True):
        loss = CILLoss(relation_model, num_relations=3, mlm_weight=0.0, detach_query=detach)
        head = loss.bag_classifier.double()
        instances, labels = _bag_inputs(loss)
        logits, _ = head(instances, labels)
        (grads[detach],) = torch.autograd.grad(
            torch.nn.functional.cross_entropy(logits, labels), head.classifier.weight
        )
        # reference: the attention weights computed from a constant copy of W (the official fc.weight.data)
        weight = head.classifier.weight
        constant = weight.detach()
        scores = torch.einsum("bkd,bd->bk", instances.detach(), (constant if detach else weight)[labels])
        bag = torch.einsum("bk,bkd->bd", scores.softmax(dim=1), instances.detach())
        reference = torch.nn.functional.cross_entropy(bag @ weight.T + head.classifier.bias, labels)
        (expected,) = torch.autograd.grad(reference, weight)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(grads[detach], expected)
    assert not torch.allclose(grads[False], grads[True])
    # the instances still get their gradient through the attention
    loss = CILLoss(relation_model, num_relations=3, mlm_weight=0.0, detach_query=True)
    instances, labels = _bag_inputs(loss)
    logits, _ = loss.bag_classifier.double()(instances, labels)
    (grad,) = torch.autograd.grad(logits.sum(), instances)
    assert grad.abs().sum() > 0


def test_bag_dropout_is_applied_before_the_classifier_in_training_only(relation_model):
    loss = CILLoss(relation_model, num_relations=3, mlm_weight=0.0, bag_dropout=0.5)
    head = loss.bag_classifier.double().train()
    instances, labels = _bag_inputs(loss)
    torch.manual_seed(7)
    logits, bags = head(instances, labels)
    torch.manual_seed(7)
    expected = head.classifier(torch.nn.functional.dropout(bags, 0.5, training=True))
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, head.classifier(bags))
    head.eval()
    eval_logits, eval_bags = head(instances, labels)
    torch.testing.assert_close(eval_logits, head.classifier(eval_bags))
    torch.testing.assert_close(eval_bags, bags)  # the bag vector of the contrastive term is never dropped


def reference_cil_all_anchors(columns, bags, tau):
    """Every instance x_jk an anchor: -log e(x_jk, x*_jk) / (e(x_jk, x*_jk) + Σ_{i≠j} e(x_jk, B_i)), mean over B·k."""
    k = len(columns) // 2
    n = bags.shape[0]
    total = 0.0
    for slot in range(k):
        x, x_pos = columns[slot], columns[k + slot]
        for j in range(n):
            numerator = math.exp(_cos(x[j], x_pos[j]) / tau)
            negatives = sum(math.exp(_cos(x[j], bags[i]) / tau) for i in range(n) if i != j)
            total += -math.log(numerator / (numerator + negatives))
    return total / (n * k)


def test_every_instance_an_anchor_matches_loop(relation_model):
    loss = CILLoss(relation_model, num_relations=3, temperature=0.1, warmup_steps=0, mlm_weight=0.0, anchors="all")
    loss.bag_classifier.double()
    torch.manual_seed(2)
    dim = relation_model.get_embedding_dimension()
    k = 3
    columns = [torch.randn(4, dim, dtype=torch.float64) for _ in range(2 * k)]
    labels = torch.tensor([0, 2, 1, 2])
    out = loss.compute_loss_from_embeddings(columns, labels)
    _, bags = loss.bag_classifier(torch.stack(columns[:k], dim=1), labels)
    expected = reference_cil_all_anchors(columns, bags.detach(), 0.1)
    torch.testing.assert_close(out["contrastive"], torch.tensor(10.0 * expected, dtype=torch.float64))
    first_only = reference_cil_infonce(columns[0], columns[k], bags.detach(), 0.1, "other_bags")
    assert abs(expected - first_only) > 1e-3
    with pytest.raises(ValueError, match="an even number"):
        loss.compute_loss_from_embeddings(columns[:-1], labels)


def test_every_instance_an_anchor_end_to_end_with_augment_all_rows(relation_model):
    bags, rel2id, view = _rows(bag_size=2)
    dataset = cil_dataset(bags, rel2id, 2, augment=view, max_words=12, augment_all=True)
    assert dataset.column_names == ["sentence_1", "sentence_2", "augmented_1", "augmented_2", "label"]
    plain = cil_dataset(bags, rel2id, 2, augment=view, max_words=12)
    assert dataset["augmented_1"] == plain["augmented"]  # the first view is the one of the default rows
    assert dataset["augmented_2"] != dataset["sentence_2"]  # every sentence has its own view
    examples = cil_examples(bags, rel2id, 2, augment=view, max_words=12, augment_all=True)
    assert len(examples[0].texts) == 4
    model = relation_model.eval()
    features, labels = _features(model, dataset)
    loss = CILLoss(model, num_relations=len(rel2id), warmup_steps=0, mlm_weight=0.0, anchors="all")
    out = loss(features, labels)
    embeddings = [model(dict(f))["sentence_embedding"] for f in features]
    _, bag_reps = loss.bag_classifier(torch.stack(embeddings[:2], dim=1), labels)
    expected = torch.stack(
        [F_.cil_contrastive_loss(embeddings[i], embeddings[2 + i], bag_reps, 0.05) for i in range(2)]
    ).mean()
    torch.testing.assert_close(out["contrastive"], 10.0 * expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="anchors='all'"):
        CILLoss(model, num_relations=len(rel2id), anchors="all", negatives="official")


def test_official_step_counter_starts_at_one(relation_model):
    bags, rel2id, view = _rows()
    features, labels = _features(relation_model, cil_dataset(bags, rel2id, 2, augment=view, max_words=12))
    loss = CILLoss(relation_model, num_relations=len(rel2id), warmup_steps=4, mlm_weight=0.0, first_step=1)
    first = loss(features, labels)
    assert loss.step == 1, ":attr:`step` still counts training calls"
    assert loss.alpha(0) == pytest.approx(cil_ramp(1, 4)) and first["contrastive"].item() > 0.0
    assert loss.alpha() == pytest.approx(cil_ramp(2, 4))
    restored = CILLoss(relation_model, num_relations=len(rel2id), warmup_steps=4, mlm_weight=0.0, first_step=1)
    restored.load_state_dict(loss.state_dict())
    assert restored.step == 1 and restored.alpha() == loss.alpha()
    with pytest.raises(ValueError, match="first_step must be 0"):
        CILLoss(relation_model, num_relations=2, first_step=2)


def test_mlm_over_all_bag_sentences_protecting_only_the_start_markers(relation_model, monkeypatch):
    from st_contrast.losses import cil as cil_module

    captured = []
    original_mask = cil_module.mask_tokens

    def recording_mask(input_ids, attention_mask, *args, **kwargs):
        captured.append((input_ids, kwargs["protected"]))
        return original_mask(input_ids, attention_mask, *args, **kwargs)

    monkeypatch.setattr(cil_module, "mask_tokens", recording_mask)
    bags, rel2id, view = _rows(bag_size=2)
    features, labels = _features(relation_model, cil_dataset(bags, rel2id, 2, augment=view, max_words=12))
    batch = labels.shape[0]
    for sentences, rows in (("first", batch), ("all", 2 * batch)):
        captured.clear()
        loss = CILLoss(relation_model, num_relations=len(rel2id), warmup_steps=0, mlm_sentences=sentences)
        out = loss(features, labels)
        assert torch.isfinite(out["mlm"])
        ((input_ids, _),) = captured
        assert input_ids.shape[0] == rows
    # the merged rows are the bag's sentences, column after column
    width = input_ids.shape[1]
    for column, f in enumerate(features[:2]):
        ids = torch.nn.functional.pad(f["input_ids"], [0, width - f["input_ids"].shape[1]])
        torch.testing.assert_close(input_ids[column * batch : (column + 1) * batch], ids)
    h1, h2, t1, t2 = find_markers(relation_model)
    ids = torch.tensor([[101, 5, h1, 6, 7, h2, 8, t1, 9, t2, 10, 102]])
    official = CILLoss(relation_model, num_relations=2, mlm_protected="start_markers")
    assert official.protected_positions(ids)[0].tolist() == [
        False, False, True, False, False, False, False, True, False, False, False, False
    ]  # fmt: skip


def test_official_preset_and_explicit_arguments(relation_model):
    paper = CILLoss(relation_model, num_relations=3)
    assert (paper.detach_query, paper.bag_dropout, paper.anchors, paper.first_step) == (False, 0.0, "first", 0)
    assert (paper.mlm_sentences, paper.mlm_protected) == ("first", "entities")
    official = CILLoss(relation_model, num_relations=3, official=True)
    config = official.get_config_dict()
    assert {k: config[k] for k in cil_module_official()} == cil_module_official()
    assert config["official"] is True and config["negatives"] == "other_bags"
    assert official.bag_classifier.detach_query and official.bag_classifier.dropout == 0.5
    mixed = CILLoss(relation_model, num_relations=3, official=True, bag_dropout=0.0, anchors="first")
    assert mixed.bag_dropout == 0.0 and mixed.anchors == "first" and mixed.detach_query
    for kwargs, message in (
        ({"anchors": "every"}, "anchors must be one of"),
        ({"mlm_sentences": "some"}, "mlm_sentences must be one of"),
        ({"mlm_protected": "none"}, "mlm_protected must be one of"),
        ({"bag_dropout": 1.0}, "bag_dropout must be in"),
    ):
        with pytest.raises(ValueError, match=message):
            CILLoss(relation_model, num_relations=3, **kwargs)


def cil_module_official():
    from st_contrast.losses.cil import OFFICIAL_CIL

    return dict(OFFICIAL_CIL)


def test_bag_classifier_saves_the_official_switches(tmp_path):
    from st_contrast.modules.bag_attention import BagAttentionClassifier

    head = BagAttentionClassifier(6, 3, detach_query=True, dropout=0.5)
    head.save(tmp_path / "head")
    loaded = BagAttentionClassifier.load(tmp_path / "head")
    assert loaded.detach_query and loaded.dropout == 0.5
    torch.testing.assert_close(loaded.classifier.weight, head.classifier.weight)
