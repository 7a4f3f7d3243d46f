from __future__ import annotations

import math

import pytest
import torch
from sentence_transformers import losses as st_losses

from st_contrast.losses import SimCSELoss
from st_contrast.losses import functional as F_
from tests.conftest import echo_features


def reference_simcse(z1, z2, z3=None, tau=0.05, w=0.0):
    """SimCSE's loss written as plain loops from the paper's formula."""
    n = z1.shape[0]
    total = 0.0
    for i in range(n):

        def cos(a, b):
            return float(torch.dot(a, b) / (a.norm() * b.norm()))

        numerator = math.exp(cos(z1[i], z2[i]) / tau)
        denominator = sum(math.exp(cos(z1[i], z2[j]) / tau) for j in range(n))
        if z3 is not None:
            denominator += sum(math.exp(cos(z1[i], z3[j]) / tau + (w if i == j else 0.0)) for j in range(n))
        total += -math.log(numerator / denominator)
    return total / n


@pytest.mark.parametrize("with_negatives", [False, True])
@pytest.mark.parametrize("weight", [0.0, 1.0, -0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_loop_reference(echo_model, with_negatives, weight, dtype):
    torch.manual_seed(0)
    z = [torch.randn(5, 8, dtype=dtype) for _ in range(3 if with_negatives else 2)]
    loss = SimCSELoss(echo_model, temperature=0.1, hard_negative_weight=weight)
    value = loss(echo_features(*z), None)
    expected = reference_simcse(*[t.double() for t in z], tau=0.1, w=weight if with_negatives else 0.0)
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("columns", [2, 3])
def test_equals_multiple_negatives_ranking_loss(echo_model, columns):
    torch.manual_seed(1)
    tau = 0.05
    leaves = [torch.randn(6, 16, requires_grad=True) for _ in range(columns)]
    ours = SimCSELoss(echo_model, temperature=tau)(echo_features(*leaves), None)
    ours.backward()
    ours_grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    mnrl = st_losses.MultipleNegativesRankingLoss(echo_model, scale=1 / tau)
    theirs = mnrl.compute_loss_from_embeddings(list(leaves), None)
    theirs.backward()
    torch.testing.assert_close(ours, theirs)
    for ours_grad, leaf in zip(ours_grads, leaves):
        assert ours_grad.abs().sum() > 0, "gradient must not be all zero"
        torch.testing.assert_close(ours_grad, leaf.grad)


def test_single_column_encodes_twice_with_dropout(tiny_model, sentences, forward_spy):
    """One column: the batch goes through the model twice in one pass, dropout makes the views differ."""
    tiny_model.train()
    loss = SimCSELoss(tiny_model)
    features = tiny_model.preprocess(sentences)
    spy = forward_spy(tiny_model)
    value = loss([features], None)
    assert spy.sizes == [2 * len(sentences)], "both views must come from one forward over the doubled batch"
    assert value.item() > 0
    value.backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0


def test_gradients_reach_the_encoder_for_triplets(tiny_model, sentences):
    loss = SimCSELoss(tiny_model, hard_negative_weight=1.0)
    feats = [tiny_model.preprocess(sentences[i : i + 4]) for i in (0, 2, 4)]
    loss(feats, None).backward()
    embedding_grad = tiny_model[0].auto_model.embeddings.word_embeddings.weight.grad
    assert embedding_grad is not None and embedding_grad.abs().sum() > 0


def test_gather_across_devices_with_fake_group(echo_model, fake_process_group):
    """Rank 1 of 2: the loss over local anchors against the global candidates, local rows in place."""
    torch.manual_seed(2)
    a0, p0, n0 = (torch.randn(3, 8) for _ in range(3))
    a1, p1, n1 = (torch.randn(3, 8, requires_grad=True) for _ in range(3))
    fake_process_group(rank=1, world_size=2, others={0: [p0, n0]})
    loss = SimCSELoss(echo_model, hard_negative_weight=0.5, gather_across_devices=True)
    value = loss(echo_features(a1, p1, n1), None)
    # reference: anchors of rank 1, candidates = [p0; p1] and [n0; n1], targets offset by 3
    logits = (
        torch.cat(
            [
                F_.cosine_similarity_matrix(a1, torch.cat([p0, p1])),
                F_.cosine_similarity_matrix(a1, torch.cat([n0, n1])),
            ],
            dim=1,
        )
        / 0.05
    )
    logits[torch.arange(3), 6 + 3 + torch.arange(3)] += 0.5
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(3) + 3)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert p1.grad.abs().sum() > 0 and n1.grad.abs().sum() > 0


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan")])
def test_bad_temperature(echo_model, temperature):
    with pytest.raises(ValueError, match="temperature"):
        SimCSELoss(echo_model, temperature=temperature)


def test_batch_of_one_is_an_error(echo_model):
    loss = SimCSELoss(echo_model)
    with pytest.raises(ValueError, match="at least 2 examples"):
        loss(echo_features(torch.randn(1, 4), torch.randn(1, 4)), None)


def test_too_many_columns(echo_model):
    loss = SimCSELoss(echo_model)
    with pytest.raises(ValueError, match="got 4 columns"):
        loss(echo_features(*(torch.randn(2, 4) for _ in range(4))), None)


def test_labels_are_rejected(echo_model):
    loss = SimCSELoss(echo_model)
    with pytest.raises(ValueError, match="does not use labels"):
        loss(echo_features(torch.randn(2, 4), torch.randn(2, 4)), torch.tensor([0, 2]))


def test_empty_strings_are_rejected(tiny_model):
    loss = SimCSELoss(tiny_model)
    features = tiny_model.preprocess(["a sentence", "", "another one"])
    with pytest.raises(ValueError, match=r"empty text\(s\) \(rows \[1\]"):
        loss([features], None)


def test_never_nan_on_identical_embeddings(echo_model):
    z = torch.zeros(4, 8)
    value = SimCSELoss(echo_model)(echo_features(z, z), None)
    assert torch.isfinite(value)


def test_config_and_citation(echo_model):
    loss = SimCSELoss(echo_model, temperature=0.1, hard_negative_weight=1.0)
    assert loss.get_config_dict() == {
        "temperature": 0.1,
        "hard_negative_weight": 1.0,
        "gather_across_devices": False,
        "projection": "none",
    }
    assert "gao2021simcse" in loss.citation


def test_mlp_projection_is_owned_by_the_loss_and_not_saved(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    n_modules = len(tiny_model)
    loss = SimCSELoss(tiny_model, projection="mlp")
    assert loss.projection_head is not None and len(tiny_model) == n_modules
    assert any(name.startswith("projection_head") for name, _ in loss.named_parameters())
    tiny_model.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert len(reloaded) == n_modules


def test_model_projection_is_saved(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense

    n_modules = len(tiny_model)
    SimCSELoss(tiny_model, projection="model")
    SimCSELoss(tiny_model, projection="model")  # idempotent
    assert len(tiny_model) == n_modules + 1 and isinstance(tiny_model[-1], Dense)
    tiny_model.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert len(reloaded) == n_modules + 1


def test_fit_two_steps_trains_encoder_and_mlp_head(tiny_model, sentences):
    from sentence_transformers import InputExample

    from tests.training_utils import fit_two_steps

    loss = SimCSELoss(tiny_model, projection="mlp")
    changed = fit_two_steps(tiny_model, loss, [InputExample(texts=[s]) for s in sentences])
    assert any(name.startswith("projection_head.") for name in changed), "the train-only MLP must be trained"
    assert any(name.startswith("model.") for name in changed)


def test_trainer_two_steps_on_pairs_and_triplets(tiny_model, sentences, tmp_path):
    from datasets import Dataset

    from tests.training_utils import trainer_two_steps

    loss = SimCSELoss(tiny_model, projection="mlp", hard_negative_weight=1.0)
    dataset = Dataset.from_dict(
        {"anchor": sentences, "positive": sentences[1:] + sentences[:1], "negative": sentences[2:] + sentences[:2]}
    )
    changed = trainer_two_steps(tiny_model, loss, dataset, tmp_path)
    assert any(name.startswith("projection_head.") for name in changed)
    assert any(name.startswith("model.") for name in changed)
    single = Dataset.from_dict({"sentence": sentences})
    assert trainer_two_steps(tiny_model, SimCSELoss(tiny_model), single, tmp_path / "single")
