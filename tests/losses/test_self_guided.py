from __future__ import annotations

import logging

import pytest
import torch

from st_contrast.losses import SelfGuidedContrastiveLoss
from st_contrast.modeling import hf_encoder

SMALL_HEAD = 32  # projection width for tests; the default (4096) is checked once


# ---------------------------------------------------------------------------------------------
# Naive references, written as plain loops from the paper's formulas
# ---------------------------------------------------------------------------------------------


def _cos(a, b):
    return torch.dot(a, b) / (a.norm() * b.norm())


def reference_sg_opt(c, h, tau):
    """SG-OPT: one row per (i, k): [cos(c_i, h_ik), cos(c_i, h_mn) for m != i, all n] / tau, target 0; / (B*L)."""
    batch, layers = h.shape[:2]
    total = 0.0
    for i in range(batch):
        for k in range(layers):
            row = [_cos(c[i], h[i, k]) / tau]
            row += [_cos(c[i], h[m, n]) / tau for m in range(batch) if m != i for n in range(layers)]
            row = torch.stack(row)
            total = total - (row[0] - torch.logsumexp(row, dim=0))
    return total / (batch * layers)


def reference_sg(c, h, tau):
    """SG: NT-Xent over the 2B views {c_i} + {h_i}; partner positive, every other view a negative; mean."""
    views = list(c) + list(h)
    n = len(views)
    total = 0.0
    for r in range(n):
        partner = (r + n // 2) % n
        others = torch.stack([_cos(views[r], views[j]) / tau for j in range(n) if j != r])
        total = total - (_cos(views[r], views[partner]) / tau - torch.logsumexp(others, dim=0))
    return total / n


def _leaves(*shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True) for shape in shapes]


def _compare_with_grads(fast, slow, leaves):
    fast_grads = torch.autograd.grad(fast, leaves)
    slow_grads = torch.autograd.grad(slow, leaves)
    torch.testing.assert_close(fast, slow)
    for fast_grad, slow_grad in zip(fast_grads, slow_grads):
        assert fast_grad.abs().sum() > 0, "gradient must not be all zero"
        torch.testing.assert_close(fast_grad, slow_grad)


# ---------------------------------------------------------------------------------------------
# The loss module
# ---------------------------------------------------------------------------------------------


def _loss(model, **kwargs):
    kwargs.setdefault("projection_dim", SMALL_HEAD)
    return SelfGuidedContrastiveLoss(model, **kwargs)


@pytest.mark.parametrize("objective", ["sg-opt", "sg"])
def test_loss_is_the_objective_on_projected_vectors(tiny_model, objective):
    loss = _loss(tiny_model, objective=objective, temperature=0.05).double()
    c, h = _leaves((4, 32), (4, 3, 32), seed=5)
    torch.manual_seed(11)
    value = loss.compute_loss_from_embeddings(c, h)
    if objective == "sg-opt":
        expected = reference_sg_opt(loss.projection_head(c), loss.projection_head(h), 0.05)
    else:
        torch.manual_seed(11)
        picks = torch.randint(3, (4,))
        expected = reference_sg(loss.projection_head(c), loss.projection_head(h[torch.arange(4), picks]), 0.05)
    _compare_with_grads(value, expected, [c, h])


def test_sg_samples_one_layer_per_sentence(tiny_model):
    loss = _loss(tiny_model, objective="sg")
    c, h = (t.detach().float() for t in _leaves((6, 32), (6, 3, 32), seed=6))
    values = set()
    for seed in range(6):
        torch.manual_seed(seed)
        values.add(round(loss.compute_loss_from_embeddings(c, h).item(), 5))
    assert len(values) > 1, "the sampled guide layer must vary between calls"


def _batch(model, sentences):
    # different lengths, so that padding is present
    return model.preprocess([sentences[0], sentences[2] + " and a much longer tail of words here", sentences[3]])


def test_guide_vectors_pool_every_hidden_state_over_real_tokens(tiny_model, sentences):
    features = _batch(tiny_model, sentences)
    mask = features["attention_mask"]
    assert not bool(mask.all()), "the batch must contain padding"
    encoder = hf_encoder(tiny_model).eval()
    with torch.no_grad():
        states = encoder(
            input_ids=features["input_ids"],
            attention_mask=mask,
            token_type_ids=features.get("token_type_ids"),
            output_hidden_states=True,
        ).hidden_states
    assert len(states) == encoder.config.num_hidden_layers + 1
    for pooling in ("mean", "max", "cls"):
        loss = _loss(tiny_model, guide_pooling=pooling)
        got = loss.guide_embeddings(features)
        assert got.shape == (3, len(states), 32) and not got.requires_grad
        for i in range(3):
            real = mask[i].bool()
            for k, state in enumerate(states):
                tokens = state[i][real]
                expected = {"mean": tokens.mean(0), "max": tokens.max(0).values, "cls": state[i, 0]}[pooling]
                torch.testing.assert_close(got[i, k], expected)


def test_guide_layers_selects_and_normalises_indices(tiny_model, sentences):
    features = _batch(tiny_model, sentences)
    every = _loss(tiny_model).guide_embeddings(features)
    loss = _loss(tiny_model, guide_layers=[0, -1])
    assert loss.guide_layers == [0, 2]
    torch.testing.assert_close(loss.guide_embeddings(features), every[:, [0, 2]])


def test_trained_side_is_the_models_cls_vector(tiny_model, sentences, monkeypatch):
    tiny_model.eval()  # no dropout, so a second forward reproduces the vectors
    loss = _loss(tiny_model)
    features = _batch(tiny_model, sentences)
    seen = {}
    original = loss.compute_loss_from_embeddings

    def spy(cls_embeddings, guide_embeddings):
        seen["cls"], seen["guide"] = cls_embeddings, guide_embeddings
        return original(cls_embeddings, guide_embeddings)

    monkeypatch.setattr(loss, "compute_loss_from_embeddings", spy)
    loss([dict(features)], None)
    with torch.no_grad():
        expected = tiny_model(dict(features))
    torch.testing.assert_close(seen["cls"], expected["token_embeddings"][:, 0])
    torch.testing.assert_close(seen["cls"], expected["sentence_embedding"])  # [CLS] pooling
    assert seen["cls"].requires_grad and not seen["guide"].requires_grad


def test_guide_is_frozen_hidden_and_unchanged_by_training(tiny_model, sentences):
    loss = _loss(tiny_model, freeze_embeddings=False)
    guide = loss.guide
    assert all(not p.requires_grad for p in guide.parameters())
    guide_ids = {id(p) for p in guide.parameters()}
    assert not guide_ids & {id(p) for p in loss.parameters()}, "the guide must not be in loss.parameters()"
    assert not guide_ids & {id(p) for p in tiny_model.parameters()}
    assert not any("guide" in key for key in loss.state_dict())
    assert not guide.training, "the guide runs in eval mode by default"
    before = {name: p.detach().clone() for name, p in guide.named_parameters()}
    trained_before = {name: p.detach().clone() for name, p in hf_encoder(tiny_model).named_parameters()}
    optimizer = torch.optim.AdamW(loss.parameters(), lr=1e-2, weight_decay=0.1)
    loss.train()
    for step in range(4):
        features = tiny_model.preprocess(sentences[step : step + 4])
        total = sum(loss([features], None).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert not guide.training
    for name, p in guide.named_parameters():
        assert torch.equal(p, before[name]), f"guide parameter {name} changed"
        assert p.grad is None
    changed = [n for n, p in hf_encoder(tiny_model).named_parameters() if not torch.equal(p, trained_before[n])]
    assert changed, "the trained encoder must change"
    assert loss.regularization().item() > 0


def test_guide_dropout_switch(tiny_model, sentences):
    features = _batch(tiny_model, sentences)
    paper = _loss(tiny_model)
    torch.testing.assert_close(paper.guide_embeddings(features), paper.guide_embeddings(features))
    official = _loss(tiny_model, guide_dropout=True)
    assert official.guide.training
    torch.manual_seed(0)
    first = official.guide_embeddings(features)
    second = official.guide_embeddings(features)
    assert not torch.allclose(first, second), "with guide_dropout=True dropout is on in the guide"
    official.eval()  # loss.eval() does not reach the guide: its mode is fixed by guide_dropout
    assert official.guide.training


def test_regularization_matches_hand_computation(tiny_model):
    loss = _loss(tiny_model, regularization_weight=0.3)
    encoder = hf_encoder(tiny_model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # embeddings move too, but they are frozen: not counted
    guide = dict(loss.guide.named_parameters())
    trainable = {n: p for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("embeddings.") for n in trainable)
    expected = 0.3 * sum(float(((p.detach().double() - guide[n].double()) ** 2).sum()) for n, p in trainable.items())
    value = loss.regularization()
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-8)
    value.backward()
    for name, p in trainable.items():
        torch.testing.assert_close(p.grad, 2 * 0.3 * (p.detach() - guide[name]))
    assert encoder.embeddings.word_embeddings.weight.grad is None
    assert _loss(tiny_model, regularization_weight=0).regularization().item() == 0


def test_forward_returns_named_components(tiny_model, sentences):
    out = _loss(tiny_model)([tiny_model.preprocess(sentences[:4])], None)
    assert set(out) == {"contrastive", "regularization"}
    assert out["contrastive"].item() > 0 and out["regularization"].item() == 0  # θ_T = θ_F before any step


def test_freeze_embeddings(tiny_model, sentences):
    encoder = hf_encoder(tiny_model)
    loss = _loss(tiny_model)
    frozen = dict(encoder.embeddings.named_parameters())
    assert frozen and all(not p.requires_grad for p in frozen.values())
    before = {n: p.detach().clone() for n, p in frozen.items()}
    optimizer = torch.optim.AdamW([p for p in loss.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        sum(loss([tiny_model.preprocess(sentences[:4])], None).values()).backward()
        optimizer.step()
    for name, p in frozen.items():
        assert torch.equal(p, before[name])


def test_embeddings_stay_trainable_without_freezing(tiny_model):
    _loss(tiny_model, freeze_embeddings=False)
    assert all(p.requires_grad for p in hf_encoder(tiny_model).parameters())


def test_saved_model_is_a_plain_sentence_transformer(tiny_model, sentences, tmp_path):
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    tiny_model.save(str(tmp_path / "untouched"))
    loss = _loss(tiny_model)
    sum(loss([tiny_model.preprocess(sentences[:4])], None).values()).backward()
    tiny_model.save(str(tmp_path / "trained"))
    reloaded = SentenceTransformer(str(tmp_path / "trained"), device="cpu")
    assert len(reloaded) == len(tiny_model)
    untouched = sorted((tmp_path / "untouched").rglob("*.safetensors"))
    trained = sorted((tmp_path / "trained").rglob("*.safetensors"))
    assert [p.relative_to(tmp_path / "untouched") for p in untouched] == [
        p.relative_to(tmp_path / "trained") for p in trained
    ]
    for a, b in zip(untouched, trained):
        assert set(load_file(str(a))) == set(load_file(str(b))), "no guide or head weights may be saved"
    assert all(p.requires_grad for p in reloaded.parameters()), "requires_grad is not saved"
    torch.testing.assert_close(reloaded.encode(sentences[:2]), tiny_model.encode(sentences[:2]))


def test_follows_the_models_dtype(tiny_model, sentences):
    loss = _loss(tiny_model)
    tiny_model.double()
    loss.double()
    out = loss([tiny_model.preprocess(sentences[:3])], None)
    assert out["contrastive"].dtype == torch.float64
    assert next(loss.guide.parameters()).dtype == torch.float64
    assert torch.isfinite(sum(out.values()))


def test_roberta_family(tiny_roberta, sentences):
    loss = _loss(tiny_roberta, guide_pooling="max")
    out = loss([tiny_roberta.preprocess(sentences[:4])], None)
    sum(out.values()).backward()
    grads = [p.grad for p in tiny_roberta.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0


def test_default_projection_head(tiny_model):
    loss = SelfGuidedContrastiveLoss(tiny_model)
    head = loss.projection_head
    assert [type(m).__name__ for m in head] == ["Linear", "GELU", "Linear", "GELU"]
    assert head[0].weight.shape == (4096, 32) and head[2].weight.shape == (4096, 4096)
    assert torch.count_nonzero(head[0].bias) == 0
    assert abs(head[2].weight.std().item() - 0.02) < 0.002  # initializer_range


def test_fit_two_steps(tiny_model, sentences):
    from sentence_transformers import InputExample

    from tests.training_utils import fit_two_steps

    loss = _loss(tiny_model)
    changed = fit_two_steps(tiny_model, loss, [InputExample(texts=[s]) for s in sentences])
    assert any(name.startswith("projection_head.") for name in changed)
    assert any(name.startswith("model.") and ".encoder." in name for name in changed)
    assert not any(".embeddings." in name for name in changed)


def test_trainer_two_steps_logs_both_components(tiny_model, sentences, tmp_path, monkeypatch):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer

    from tests.training_utils import trainer_two_steps

    seen: list[set[str]] = []
    original = SentenceTransformerTrainer.track_loss_components

    def spy(self, loss):
        seen.append(set(loss))
        return original(self, loss)

    monkeypatch.setattr(SentenceTransformerTrainer, "track_loss_components", spy)
    loss = _loss(tiny_model, objective="sg", guide_pooling="cls")
    changed = trainer_two_steps(tiny_model, loss, Dataset.from_dict({"sentence": sentences}), tmp_path)
    assert any(name.startswith("projection_head.") for name in changed)
    assert any(name.startswith("model.") for name in changed)
    assert seen and seen[0] == {"contrastive", "regularization"}


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"guide_pooling": "sum"}, "guide_pooling must be 'mean', 'max' or 'cls'"),
        ({"objective": "bt"}, "objective must be 'sg-opt' or 'sg'"),
        ({"guide_layers": [3]}, "out of range: the encoder has 3 hidden states"),
        ({"guide_layers": [-4]}, "out of range"),
        ({"guide_layers": []}, "at least one layer"),
        ({"guide_layers": [0, -3]}, "must not repeat"),
        ({"guide_layers": "0"}, "list of layer indices"),
        ({"guide_layers": [1.0]}, "must hold integers"),
        ({"projection_dim": 0}, "projection_dim must be a positive integer"),
        ({"projection_dim": 2.5}, "projection_dim must be a positive integer"),
        ({"regularization_weight": -1}, "regularization_weight must be a finite number >= 0"),
        ({"regularization_weight": "a"}, "regularization_weight must be a number"),
        ({"freeze_embeddings": "yes"}, "freeze_embeddings must be True or False"),
    ],
)
def test_bad_arguments(tiny_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _loss(tiny_model, **kwargs)


def test_non_hugging_face_model(echo_model):
    with pytest.raises(ValueError, match="needs a SentenceTransformer over a Hugging Face encoder"):
        SelfGuidedContrastiveLoss(echo_model)


def test_batch_of_one_is_an_error(tiny_model):
    loss = _loss(tiny_model)
    with pytest.raises(ValueError, match="at least 2 sentences per batch"):
        loss([tiny_model.preprocess(["a single sentence"])], None)


def test_wrong_columns_and_labels(tiny_model, sentences):
    loss = _loss(tiny_model)
    features = tiny_model.preprocess(sentences[:2])
    with pytest.raises(ValueError, match="expects 1 text column"):
        loss([features, features], None)
    with pytest.raises(ValueError, match="does not use labels"):
        loss([features], torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"empty text\(s\)"):
        loss([tiny_model.preprocess(["a sentence", ""])], None)


def test_warns_when_the_model_does_not_pool_cls(tiny_model_mean, caplog):
    with caplog.at_level(logging.WARNING):
        _loss(tiny_model_mean)
    assert "trains the [CLS] vector" in caplog.text


def test_config_and_citation(tiny_model):
    loss = _loss(tiny_model, guide_layers=[1, 2], objective="sg")
    assert loss.get_config_dict() == {
        "temperature": 0.01,
        "regularization_weight": 0.1,
        "projection_dim": SMALL_HEAD,
        "guide_pooling": "mean",
        "guide_layers": [1, 2],
        "objective": "sg",
        "freeze_embeddings": True,
        "guide_dropout": False,
        "gather_across_devices": False,
    }
    assert "kim2021selfguided" in loss.citation


@pytest.mark.parametrize("objective", ["sg-opt", "sg"])
def test_bfloat16_autocast(tiny_model, sentences, objective):
    loss = _loss(tiny_model, objective=objective)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss([tiny_model.preprocess(sentences[:4])], None)
    assert out["contrastive"].dtype == torch.float32 and torch.isfinite(out["contrastive"])
    sum(out.values()).backward()
    assert loss.projection_head[0].weight.grad.abs().sum() > 0
