"""st_contrast.modules.mlm: BERT masking and the one MLM head path (masked positions only) of every loss."""

from __future__ import annotations

import logging

import pytest
import torch

from st_contrast.modules.mlm import MLMHead, mask_tokens, mlm_loss, tokenizer_ids


def test_mask_tokens_never_touches_special_padding_or_protected():
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[2, 10, 11, 12, 13, 14, 3, 0], [2, 15, 16, 3, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    protected = torch.zeros_like(ids)
    protected[0, 1] = 1
    picked = torch.zeros_like(ids, dtype=torch.bool)
    for _ in range(200):
        masked, labels = mask_tokens(ids, mask, 4, 50, [0, 2, 3], 0.5, g, protected)
        picked |= labels != -100
        assert torch.equal(masked[labels == -100], ids[labels == -100])
        assert torch.equal(labels[labels != -100], ids[labels != -100])
    allowed = torch.tensor([[0, 0, 1, 1, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(picked, allowed)


def test_mask_rate_and_80_10_10_split():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 1000, (200, 100))
    masked, labels = mask_tokens(ids, torch.ones_like(ids), 4, 1000, [], 0.15, g)
    chosen = labels != -100
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    as_mask = (masked[chosen] == 4).float().mean().item()
    kept = (masked[chosen] == ids[chosen]).float().mean().item()
    assert abs(as_mask - 0.8) < 0.02 and 0.08 < kept < 0.13


def test_head_is_tied_and_loads_pretrained_weights(tiny_transformer_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(str(tiny_transformer_dir))
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
    head = MLMHead.from_model(model)
    assert head.loaded_pretrained
    from safetensors.torch import load_file

    state = load_file(str(tiny_transformer_dir / "model.safetensors"))
    torch.testing.assert_close(head.dense.weight, state["cls.predictions.transform.dense.weight"])
    info = tokenizer_ids(model)
    features = model.preprocess(["a man is playing a guitar", "the cat sat"])
    out = model(features)
    embedding = transformer.auto_model.get_input_embeddings().weight
    masked, labels = mask_tokens(
        features["input_ids"],
        features["attention_mask"],
        info["mask_token_id"],
        info["vocab_size"],
        info["special_ids"],
        0.3,
        torch.Generator().manual_seed(0),
    )
    loss = mlm_loss(head(out["token_embeddings"], embedding), labels)
    loss.backward()
    assert embedding.grad is not None and embedding.grad.abs().sum() > 0, "decoder must be tied to the embeddings"
    assert head.dense.weight.grad.abs().sum() > 0


def _head(vocab: int = 30, hidden: int = 8) -> tuple[MLMHead, torch.Tensor]:
    torch.manual_seed(0)
    return MLMHead(hidden, vocab), torch.randn(vocab, hidden, requires_grad=True)


def test_loss_projects_only_masked_positions_and_equals_the_full_vocabulary_mean():
    head, embedding = _head()
    tokens = torch.randn(3, 5, 8, requires_grad=True)
    labels = torch.full((3, 5), -100)
    labels[0, 1], labels[1, 4], labels[2, 0] = 7, 3, 29
    projected_rows = []
    original_forward = head.forward

    def spy(hidden_states, weight):
        projected_rows.append(hidden_states.shape[0])
        return original_forward(hidden_states, weight)

    head.forward = spy
    value = head.loss(tokens, labels, embedding)
    assert projected_rows == [3], "only the 3 masked positions may be projected onto the vocabulary"
    expected = mlm_loss(original_forward(tokens, embedding), labels)  # every position projected, then ignored
    torch.testing.assert_close(value, expected)
    summed = head.loss(tokens, labels, embedding, reduction="sum")
    torch.testing.assert_close(summed, 3 * expected)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        head.loss(tokens, labels, embedding, reduction="none")


def test_nothing_masked_gives_a_connected_zero_and_one_warning(caplog):
    head, embedding = _head()
    tokens = torch.randn(2, 4, 8, requires_grad=True)
    nothing = torch.full((2, 4), -100)
    with caplog.at_level(logging.WARNING, logger="st_contrast.modules.mlm"):
        value = head.loss(tokens, nothing, embedding, loss_name="SomeLoss")
        again = head.loss(tokens, nothing, embedding, loss_name="SomeLoss")
    assert value.item() == 0.0 and torch.isfinite(value) and value.requires_grad
    (value + again).backward()
    assert tokens.grad is not None and torch.count_nonzero(tokens.grad) == 0
    assert embedding.grad is not None and torch.count_nonzero(embedding.grad) == 0
    assert all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in head.parameters())
    warnings = [r for r in caplog.records if "could be masked" in r.getMessage()]
    assert len(warnings) == 1 and "SomeLoss" in warnings[0].getMessage(), "warn once per head"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="st_contrast.modules.mlm"):
        head2, _ = _head()
        head2.loss(tokens, nothing, embedding, loss_name=None)
    assert not caplog.records, "loss_name=None (one chunk of a batch) never warns"


def test_mask_tokens_with_nothing_maskable_predicts_nothing():
    ids = torch.tensor([[2, 10, 11, 3], [2, 3, 0, 0]])
    protected = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]])
    masked, labels = mask_tokens(ids, (ids != 0).long(), 4, 50, [0, 2, 3], 0.5, torch.Generator(), protected)
    assert torch.equal(masked, ids) and bool((labels == -100).all())
    with pytest.raises(ValueError, match=r"mlm_probability must be in \(0, 1\)"):
        mask_tokens(ids, ids, 4, 50, [], 1.0)
