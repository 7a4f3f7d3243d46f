from __future__ import annotations

import torch

from st_contrast.losses.heads import MLMHead, mask_tokens, mlm_loss, tokenizer_ids


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
    from sentence_transformers.models import Pooling, Transformer

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
