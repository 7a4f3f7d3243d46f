from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from st_contrast.views import (
    Adversarial,
    EmbeddingDropout,
    FeatureCutoff,
    NoAugmentation,
    SpanCutoff,
    TokenCutoff,
    TokenShuffle,
    embedding_views,
)
from st_contrast.views.embedding import capture_embedding_output, embeddings_module

# rows of 7, 4, 2 and 5 real tokens, right-padded to 7
LENGTHS = [7, 4, 2, 5]


def _mask(lengths=LENGTHS, width=7, left=False):
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        if left:
            mask[i, width - n :] = 1
        else:
            mask[i, :n] = 1
    return mask


def _embeddings(mask, hidden=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    # no zeros in the input, so every zero in the output was cut
    return torch.rand(*mask.shape, hidden, generator=generator) + 0.5


# ------------------------------------------------------------------------------------------
# each view alone, on plain tensors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.34])
def test_feature_cutoff_zeroes_the_same_columns_for_every_real_token(rate):
    mask = _mask()
    x = _embeddings(mask, hidden=10)
    out = FeatureCutoff(rate, seed=1).embeddings(x, mask)
    padding = ~mask.bool()
    torch.testing.assert_close(out[padding], x[padding], rtol=0, atol=0)
    columns_per_row = []
    for i, n in enumerate(LENGTHS):
        zero = out[i, :n] == 0  # (n, hidden)
        columns = zero.all(dim=0)
        assert torch.equal(zero, columns.expand_as(zero)), "every real token must lose the same columns"
        assert int(columns.sum()) == int(10 * rate)
        torch.testing.assert_close(out[i, :n][~zero], x[i, :n][~zero], rtol=0, atol=0)
        columns_per_row.append(tuple(columns.nonzero().flatten().tolist()))
    assert len(set(columns_per_row)) > 1, "each sentence draws its own columns"


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.9])
def test_token_cutoff_zeroes_exactly_int_n_rate_real_rows(rate):
    mask = _mask()
    x = _embeddings(mask)
    out = TokenCutoff(rate, seed=2).embeddings(x, mask)
    for i, n in enumerate(LENGTHS):
        zero_rows = (out[i] == 0).all(dim=-1)
        assert int(zero_rows.sum()) == int(n * rate)
        assert not zero_rows[n:].any(), "padding rows are never picked"
        assert not ((out[i] == 0) & ~zero_rows.unsqueeze(-1)).any(), "rows are cut whole or not at all"
    torch.testing.assert_close(out[~mask.bool()], x[~mask.bool()], rtol=0, atol=0)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_embedding_dropout_zeroes_exact_counts_without_rescaling(rate):
    mask = _mask()
    x = _embeddings(mask, hidden=10)
    out = EmbeddingDropout(rate, seed=3).embeddings(x, mask)
    for i, n in enumerate(LENGTHS):
        assert int((out[i] == 0).sum()) == int(n * 10 * rate)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept], rtol=0, atol=0)  # no 1/(1-p) rescaling
    torch.testing.assert_close(out[~mask.bool()], x[~mask.bool()], rtol=0, atol=0)


@pytest.mark.parametrize("left", [False, True])
def test_span_cutoff_zero_mode_cuts_one_contiguous_span(left):
    mask = _mask(left=left)
    x = _embeddings(mask)
    out = SpanCutoff(0.5, seed=4).embeddings(x, mask)
    for i, n in enumerate(LENGTHS):
        zero_rows = (out[i] == 0).all(dim=-1)
        positions = zero_rows.nonzero().flatten().tolist()
        assert len(positions) == int(n * 0.5)
        if positions:
            assert positions == list(range(positions[0], positions[0] + len(positions))), "contiguous"
            assert all(mask[i, p] == 1 for p in positions)
    torch.testing.assert_close(out[~mask.bool()], x[~mask.bool()], rtol=0, atol=0)


@pytest.mark.parametrize("left", [False, True])
def test_span_cutoff_keep_mode_replaces_the_ids_outside_a_contiguous_span_with_the_pad_id(left):
    """Official code: the ids outside the kept span become [PAD]; the attention mask is left as it is."""
    mask = _mask(left=left)
    ids = torch.randint(5, 50, mask.shape, generator=torch.Generator().manual_seed(0)).masked_fill(~mask.bool(), 7)
    view = SpanCutoff(0.3, mode="keep", seed=5)
    assert view.attention_mask(mask) is None, "keep mode leaves the attention mask (and so the pooling) untouched"
    assert not view.changes_attention_mask and view.changes_input_ids
    new = view.input_ids(ids, mask, pad_token_id=0)
    for i, n in enumerate(LENGTHS):
        real = mask[i].nonzero().flatten().tolist()
        kept = [p for p in real if new[i, p] == ids[i, p]]
        assert len(kept) == max(int(n * 0.7), 1)
        assert kept == list(range(kept[0], kept[0] + len(kept))), "one contiguous span is kept"
        assert all(new[i, p] == 0 for p in real if p not in kept), "the other real tokens become the pad id"
    torch.testing.assert_close(new[~mask.bool()], ids[~mask.bool()], rtol=0, atol=0)
    x = _embeddings(mask)
    assert torch.equal(view.embeddings(x, mask), x), "keep mode changes only the ids"
    assert SpanCutoff(0.3, mode="keep", seed=5, pad_token_id=3).input_ids(ids, mask, 0)[new != ids].eq(3).all()
    assert SpanCutoff(0.0, mode="keep").input_ids(ids, mask, 0) is None
    assert SpanCutoff(0.3, mode="zero").input_ids(ids, mask, 0) is None


@pytest.mark.parametrize("left", [False, True])
def test_token_shuffle_permutes_only_real_positions(left):
    mask = _mask(left=left)
    positions = torch.arange(7).expand(4, -1) + 2  # e.g. RoBERTa-like offsets
    new = TokenShuffle(seed=6).position_ids(positions, mask)
    real = mask.bool()
    torch.testing.assert_close(new[~real], positions[~real], rtol=0, atol=0)
    for i in range(4):
        assert sorted(new[i][real[i]].tolist()) == sorted(positions[i][real[i]].tolist())
    assert not torch.equal(new, positions), "some row of 7, 5 or 4 tokens must move"


def test_token_shuffle_can_keep_cls_and_sep_in_place():
    mask = _mask()
    positions = torch.arange(7).expand(4, -1)
    view = TokenShuffle(keep_special_tokens=True, seed=7)
    for _ in range(5):
        new = view.position_ids(positions, mask)
        for i, n in enumerate(LENGTHS):
            assert new[i, 0] == 0 and new[i, n - 1] == n - 1
            assert sorted(new[i, :n].tolist()) == list(range(n))


def test_adversarial_perturbation_has_norm_epsilon_per_token():
    mask = _mask()
    gradient = torch.randn(4, 7, 10)
    x = _embeddings(mask)
    view = Adversarial(0.5)
    out = view.embeddings(x, mask, gradient)
    delta = out - x
    norms = delta.norm(dim=-1)
    torch.testing.assert_close(norms[mask.bool()], torch.full((sum(LENGTHS),), 0.5))
    assert torch.all(delta[~mask.bool()] == 0)
    expected = 0.5 * gradient / gradient.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(delta[mask.bool()], expected[mask.bool()])
    sentence = Adversarial(0.5, normalize="sentence").perturbation(gradient, mask)
    torch.testing.assert_close(sentence.flatten(1).norm(dim=1), torch.full((4,), 0.5))


def test_adversarial_needs_a_gradient():
    mask = _mask()
    with pytest.raises(ValueError, match="gradient of a supervised loss"):
        Adversarial(0.1).embeddings(_embeddings(mask), mask)


def test_seeded_views_are_reproducible_and_seeds_differ():
    mask = _mask()
    x = _embeddings(mask)
    for cls in (FeatureCutoff, TokenCutoff, EmbeddingDropout, SpanCutoff):
        a = cls(0.4, seed=11).embeddings(x, mask)
        b = cls(0.4, seed=11).embeddings(x, mask)
        assert torch.equal(a, b), cls.__name__
    a = FeatureCutoff(0.4, seed=11).embeddings(x, mask)
    c = FeatureCutoff(0.4, seed=12).embeddings(x, mask)
    assert not torch.equal(a, c)
    positions = torch.arange(7).expand(4, -1)
    first = TokenShuffle(seed=3).position_ids(positions, mask)
    assert torch.equal(first, TokenShuffle(seed=3).position_ids(positions, mask))


def test_zero_rate_is_the_identity():
    mask = _mask()
    x = _embeddings(mask)
    for view in (FeatureCutoff(0.0), TokenCutoff(0.0), EmbeddingDropout(0.0), SpanCutoff(0.0)):
        assert view.is_identity and torch.equal(view.embeddings(x, mask), x)


@pytest.mark.parametrize("cls", [FeatureCutoff, TokenCutoff, EmbeddingDropout, SpanCutoff])
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "high"])
def test_rates_outside_zero_one_are_rejected(cls, rate):
    with pytest.raises(ValueError, match=r"rate must be (in \[0, 1\)|a number in \[0, 1\))"):
        cls(rate)


@pytest.mark.parametrize("epsilon", [0, -1.0, float("inf"), "x"])
def test_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon must be"):
        Adversarial(epsilon)


def test_bad_options():
    with pytest.raises(ValueError, match="mode must be 'zero'"):
        SpanCutoff(0.1, mode="crop")
    with pytest.raises(ValueError, match="pad_token_id must be a token id"):
        SpanCutoff(0.1, mode="keep", pad_token_id=-1)
    with pytest.raises(ValueError, match="normalize must be"):
        Adversarial(0.1, normalize="l1")
    with pytest.raises(ValueError, match="seed must be an int"):
        FeatureCutoff(0.1, seed="1")


def test_repr_and_config():
    assert repr(FeatureCutoff(0.2)) == "FeatureCutoff(rate=0.2, seed=None)"
    assert TokenShuffle(seed=1).get_config_dict() == {"keep_special_tokens": False, "seed": 1}
    assert repr(NoAugmentation()) == "NoAugmentation()"


# ------------------------------------------------------------------------------------------
# applied to real encoders (BERT and RoBERTa families) through embedding_views
# ------------------------------------------------------------------------------------------


def _layer0_input(model):
    """Capture the hidden states entering the first transformer layer, and the position ids used."""
    encoder = model[0].auto_model
    seen = {}

    def layer_hook(module, args, kwargs):
        seen["hidden"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    def position_hook(module, args):
        seen["positions"] = args[0].detach().clone()

    handles = [
        encoder.encoder.layer[0].register_forward_pre_hook(layer_hook, with_kwargs=True),
        encoder.embeddings.position_embeddings.register_forward_pre_hook(position_hook),
    ]
    return seen, handles


@pytest.fixture(params=["bert", "roberta"])
def encoder_model(request, tiny_model, tiny_roberta):
    model = tiny_model if request.param == "bert" else tiny_roberta
    model.eval()
    return request.param, model


def test_no_augmentation_blocks_equal_a_plain_forward(encoder_model, sentences):
    _, model = encoder_model
    features = model.preprocess(sentences[:3])
    with torch.no_grad():
        plain = model(dict(features))["sentence_embedding"]
        doubled = {k: torch.cat([v, v]) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        with embedding_views(model, doubled, [NoAugmentation(), NoAugmentation()]) as view_features:
            out = model(view_features)["sentence_embedding"]
    torch.testing.assert_close(out[:3], plain)
    torch.testing.assert_close(out[3:], plain)


def test_token_shuffle_on_the_encoder_permutes_real_position_ids(encoder_model, sentences):
    family, model = encoder_model
    features = model.preprocess(sentences[:4])
    mask = features["attention_mask"].bool()
    seen, handles = _layer0_input(model)
    try:
        with torch.no_grad():
            model(dict(features))
            original = seen["positions"].expand(mask.shape[0], -1).clone()
            with embedding_views(model, features, [TokenShuffle(seed=0)]) as view_features:
                model(view_features)
            shuffled = seen["positions"]
    finally:
        for handle in handles:
            handle.remove()
    if family == "roberta":
        padding_idx = model[0].auto_model.embeddings.padding_idx
        assert original[mask].min() == padding_idx + 1, "RoBERTa positions start at padding_idx + 1"
    torch.testing.assert_close(shuffled[~mask], original[~mask], rtol=0, atol=0)
    for i in range(mask.shape[0]):
        assert sorted(shuffled[i][mask[i]].tolist()) == sorted(original[i][mask[i]].tolist())
    assert not torch.equal(shuffled, original)


def test_feature_cutoff_reaches_the_first_layer_and_only_its_block(encoder_model, sentences):
    _, model = encoder_model
    features = model.preprocess(sentences[:2])
    doubled = {k: torch.cat([v, v]) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    seen, handles = _layer0_input(model)
    try:
        with torch.no_grad(), embedding_views(model, doubled, [NoAugmentation(), FeatureCutoff(0.25, seed=0)]) as f:
            model(f)
    finally:
        for handle in handles:
            handle.remove()
    hidden = seen["hidden"]
    size = hidden.shape[-1]
    mask = features["attention_mask"].bool()
    assert not (hidden[:2] == 0).any(), "the NoAugmentation block is untouched"
    for i in range(2):
        zero = hidden[2 + i][mask[i]] == 0
        assert int(zero.all(dim=0).sum()) == int(size * 0.25)


def test_span_cutoff_keep_mode_on_the_encoder_is_the_official_code(encoder_model, sentences):
    """Every position stays attended and pooled, keeps its position id; only the ids outside the span change."""
    family, model = encoder_model
    features = model.preprocess(sentences[:4])
    mask = features["attention_mask"]
    encoder = model[0].auto_model
    pad = 0 if family == "bert" else encoder.embeddings.padding_idx
    with torch.no_grad():
        with embedding_views(model, features, [SpanCutoff(0.5, mode="keep", seed=3)]) as view_features:
            assert torch.equal(view_features["attention_mask"], mask), "the attention mask is not changed"
            out = model(view_features)
        kept = SpanCutoff(0.5, mode="keep", seed=3).kept_span(mask)
        ids = features["input_ids"].masked_fill(mask.bool() & ~kept, pad)
        assert (ids != features["input_ids"]).any()
        positions = embeddings_module(model).position_ids[:, : ids.shape[1]].expand_as(ids)
        if family == "roberta":  # positions of the original ids, not of the replaced ones
            positions = encoder.embeddings.create_position_ids_from_input_ids(features["input_ids"], pad)
        tokens = encoder(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    torch.testing.assert_close(out["token_embeddings"], tokens)
    torch.testing.assert_close(out["sentence_embedding"], tokens[:, 0], msg="CLS pooling of the full sequence")


def test_span_cutoff_keep_mode_needs_input_ids(tiny_model, sentences):
    features = tiny_model.preprocess(sentences[:2])
    embeds = tiny_model[0].auto_model.embeddings.word_embeddings(features["input_ids"])
    with embedding_views(tiny_model, features, [SpanCutoff(0.5, mode="keep")]):
        with pytest.raises(ValueError, match="replaces input ids, but the encoder was called with inputs_embeds"):
            tiny_model[0].auto_model(inputs_embeds=embeds, attention_mask=features["attention_mask"])


def test_hooks_are_removed_even_when_the_forward_raises(tiny_model, sentences):
    embeddings = tiny_model[0].auto_model.embeddings
    features = tiny_model.preprocess(sentences[:2])
    with pytest.raises(RuntimeError, match="boom"):
        with embedding_views(tiny_model, features, [TokenShuffle()]):
            assert embeddings._forward_pre_hooks
            raise RuntimeError("boom")
    assert not embeddings._forward_hooks and not embeddings._forward_pre_hooks
    with embedding_views(tiny_model, features, [FeatureCutoff(0.5)]) as f:
        tiny_model(f)
    assert not embeddings._forward_hooks


def test_a_forward_of_another_batch_inside_the_block_is_an_error(tiny_model, sentences):
    features = tiny_model.preprocess(sentences[:4])
    with embedding_views(tiny_model, features, [FeatureCutoff(0.2), TokenShuffle()]):
        with pytest.raises(ValueError, match="set up for a batch of 4 rows but the encoder ran on 2"):
            tiny_model(tiny_model.preprocess(sentences[:2]))


def test_rows_must_split_into_blocks(tiny_model, sentences):
    features = tiny_model.preprocess(sentences[:3])
    with pytest.raises(ValueError, match="3 rows cannot be split into 2 equal blocks"):
        with embedding_views(tiny_model, features, [FeatureCutoff(0.2), TokenShuffle()]):
            pass


def test_adversarial_view_needs_a_gradient_in_embedding_views(tiny_model, sentences):
    features = tiny_model.preprocess(sentences[:2])
    with pytest.raises(ValueError, match="only usable with labels"):
        with embedding_views(tiny_model, features, [Adversarial(0.1)]):
            pass


def test_capture_embedding_output_gives_gradients(tiny_model, sentences):
    features = tiny_model.preprocess(sentences[:2])
    with capture_embedding_output(tiny_model) as captured:
        embedding = tiny_model(features)["sentence_embedding"]
        # a random direction: the plain sum of a LayerNorm output is constant
        out = (embedding * torch.randn(embedding.shape, generator=torch.Generator().manual_seed(0))).sum()
    (gradient,) = torch.autograd.grad(out, captured)
    assert gradient.shape[:2] == features["input_ids"].shape and gradient.abs().sum() > 0


class _NoEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = object()
        self.linear = nn.Linear(2, 2)

    def get_input_embeddings(self):
        return self.linear


def test_unhookable_models_are_rejected():
    with pytest.raises(ValueError, match="need a Hugging Face encoder"):
        embeddings_module(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="has none that can be hooked"):
        embeddings_module(_NoEmbeddings())


def test_shuffle_needs_position_ids_in_the_embeddings_signature(tiny_model, monkeypatch):
    embeddings = tiny_model[0].auto_model.embeddings

    def forward(input_ids=None, inputs_embeds=None):  # e.g. DistilBERT-like
        raise AssertionError

    monkeypatch.setattr(embeddings, "forward", forward)
    with pytest.raises(ValueError, match="TokenShuffle needs an embeddings module that takes `position_ids`"):
        embeddings_module(tiny_model, need_position_ids=True)
    assert embeddings_module(tiny_model) is embeddings


def test_int_n_rate_matches_python_int():
    # the official code uses int(n * rate); float error must not change the count
    mask = _mask([10, 10, 29, 100], width=100)
    x = _embeddings(mask, hidden=2)
    out = TokenCutoff(0.7, seed=0).embeddings(x, mask)
    counts = (out == 0).all(dim=-1).sum(dim=1).tolist()
    assert counts == [math.floor(10 * 0.7), math.floor(10 * 0.7), int(29 * 0.7), int(100 * 0.7)]
