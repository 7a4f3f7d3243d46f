"""DeCLUTRLoss: NT-Xent maths, column layout, MLM in the anchors' pass, gathering, training entry points."""

from __future__ import annotations

import logging
import math
import os

import pytest
import torch
from sentence_transformers import losses as st_losses

from st_contrast.data.declutr import DeCLUTRSpanSampler
from st_contrast.losses import DeCLUTRLoss
from st_contrast.losses import functional as F_
from tests.conftest import echo_features

DOCUMENTS = [
    " ".join(
        [
            "the cat sat on the mat and looked at the garden",
            "scientists found a new species of frog in the forest",
            "the stock market fell on monday after the news",
            "she is reading a book about the history of rome",
            "two children play football in the park after school",
            "heavy rain caused flooding in the town near the river",
        ][(i + j) % 6]
        for j in range(8)
    )
    for i in range(6)
]


def reference_nt_xent(anchors, positives, tau):
    """NT-Xent written from its definition: 2N views, each must find its partner among the other 2N − 1."""
    views = torch.cat([anchors, positives]).double()
    n = anchors.shape[0]

    def cos(a, b):
        return float(torch.dot(a, b) / (a.norm() * b.norm()))

    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        numerator = math.exp(cos(views[i], views[partner]) / tau)
        denominator = sum(math.exp(cos(views[i], views[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


def _sampled_rows(num_rows: int, num_anchors: int = 2, num_positives: int = 2, seed: int = 0) -> list[list[str]]:
    sampler = DeCLUTRSpanSampler(num_anchors, num_positives, min_span=3, max_span=10, seed=seed)
    docs = [DOCUMENTS[i % len(DOCUMENTS)] for i in range(num_rows)]
    return [sample.texts() for sample in sampler.sample_documents(docs)]


def _features(model, rows: list[list[str]]):
    return [model.preprocess([row[c] for row in rows]) for c in range(len(rows[0]))]


# ---------------------------------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("tau", [0.05, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nt_xent_matches_loop_reference(n, tau, dtype):
    torch.manual_seed(0)
    a, p = torch.randn(n, 8, dtype=dtype), torch.randn(n, 8, dtype=dtype)
    value = F_.nt_xent_loss(a, p, temperature=tau)
    torch.testing.assert_close(
        value.double(), torch.tensor(reference_nt_xent(a, p, tau), dtype=torch.float64), rtol=1e-4, atol=1e-5
    )


def test_nt_xent_is_the_mean_of_two_multiple_negatives_ranking_losses_with_query_negatives(echo_model):
    """Anchor rows = MNRL(a, p) with a–a negatives; positive rows = the same with the roles swapped."""
    torch.manual_seed(1)
    tau = 0.05
    a = torch.randn(6, 16, requires_grad=True)
    p = torch.randn(6, 16, requires_grad=True)
    ours = F_.nt_xent_loss(a, p, tau)
    ours.backward()
    ours_grads = [a.grad.clone(), p.grad.clone()]
    a.grad = p.grad = None
    mnrl = st_losses.MultipleNegativesRankingLoss(
        echo_model, scale=1 / tau, directions=("query_to_doc", "query_to_query")
    )
    theirs = 0.5 * (mnrl.compute_loss_from_embeddings([a, p], None) + mnrl.compute_loss_from_embeddings([p, a], None))
    theirs.backward()
    torch.testing.assert_close(ours, theirs)
    for mine, leaf in zip(ours_grads, (a, p)):
        assert mine.abs().sum() > 0
        torch.testing.assert_close(mine, leaf.grad)


def test_nt_xent_is_simcse_logits_plus_same_side_negatives():
    """Each anchor row is SimCSE's row (a_i vs all p_j) with the other anchors appended as negatives."""
    torch.manual_seed(2)
    tau = 0.1
    a, p = torch.randn(4, 8), torch.randn(4, 8)
    eye = torch.eye(4, dtype=torch.bool)

    def half(q, k):
        same_side = (F_.cosine_similarity_matrix(q, q) / tau).masked_fill(eye, float("-inf"))
        return F_.info_nce(torch.cat([F_.simcse_logits(q, k, temperature=tau), same_side], dim=1), torch.arange(4))

    torch.testing.assert_close(F_.nt_xent_loss(a, p, tau), 0.5 * (half(a, p) + half(p, a)))
    # without same-side negatives the anchor half is exactly SimCSE's loss
    torch.testing.assert_close(
        F_.info_nce(F_.simcse_logits(a, p, temperature=tau), torch.arange(4)), F_.simcse_loss(a, p, temperature=tau)
    )


def test_nt_xent_rejects_mismatched_shapes_and_is_finite_on_identical_views():
    with pytest.raises(ValueError, match="one positive per anchor"):
        F_.nt_xent_loss(torch.randn(3, 4), torch.randn(2, 4))
    z = torch.zeros(4, 8)
    assert torch.isfinite(F_.nt_xent_loss(z, z))


def test_loss_averages_the_positives_of_each_anchor(echo_model):
    """Columns: anchor_0, anchor_1, positive_0_0, positive_0_1, positive_1_0, positive_1_1 (batch of 3 docs)."""
    torch.manual_seed(3)
    cols = [torch.randn(3, 8) for _ in range(6)]
    loss = DeCLUTRLoss(echo_model, mlm_weight=0.0, temperature=0.1)
    value = loss(echo_features(*cols), None)
    anchors = torch.cat([cols[0], cols[1]])
    positives = torch.cat([(cols[2] + cols[3]) / 2, (cols[4] + cols[5]) / 2])
    torch.testing.assert_close(value, torch.tensor(reference_nt_xent(anchors, positives, 0.1), dtype=value.dtype))
    swapped_within = loss(echo_features(*cols[:2], cols[3], cols[2], *cols[4:]), None)
    torch.testing.assert_close(value, swapped_within)
    swapped_across = loss(echo_features(*cols[:2], cols[4], cols[3], cols[2], cols[5]), None)
    assert not torch.allclose(value, swapped_across), "a positive moved to another anchor must change the loss"


def test_gradients_reach_every_column(echo_model):
    leaves = [torch.randn(2, 8, requires_grad=True) for _ in range(6)]
    DeCLUTRLoss(echo_model, mlm_weight=0.0)(echo_features(*leaves), None).backward()
    assert all(leaf.grad.abs().sum() > 0 for leaf in leaves)
    assert echo_model.weight.grad is not None


def test_other_layouts(echo_model):
    torch.manual_seed(4)
    cols = [torch.randn(2, 8) for _ in range(3 + 3 * 1)]
    value = DeCLUTRLoss(echo_model, num_anchors=3, num_positives=1, mlm_weight=0.0)(echo_features(*cols), None)
    expected = reference_nt_xent(torch.cat(cols[:3]), torch.cat(cols[3:]), 0.05)
    torch.testing.assert_close(value, torch.tensor(expected, dtype=value.dtype))


def test_gather_across_devices_with_fake_group(echo_model, fake_process_group):
    """Rank 1 of 2: local rows against the global [anchors; positives], targets shifted by rank 0's rows."""
    torch.manual_seed(5)
    tau = 0.05
    a0, p0 = torch.randn(4, 8), torch.randn(4, 8)  # rank 0: 2 docs × 2 anchors, averaged positives
    cols = [torch.randn(2, 8, requires_grad=True) for _ in range(6)]
    fake_process_group(rank=1, world_size=2, others={0: [a0, p0]})
    loss = DeCLUTRLoss(echo_model, mlm_weight=0.0, temperature=tau, gather_across_devices=True)
    value = loss(echo_features(*cols), None)
    a1 = torch.cat([cols[0], cols[1]])
    p1 = torch.cat([(cols[2] + cols[3]) / 2, (cols[4] + cols[5]) / 2])
    views = torch.cat([a0, a1, p0, p1])  # 16 global views; rank 1 owns rows 4..7 and 12..15
    logits = F_.cosine_similarity_matrix(views, views) / tau
    logits.fill_diagonal_(float("-inf"))
    targets = (torch.arange(16) + 8) % 16
    local = torch.tensor([4, 5, 6, 7, 12, 13, 14, 15])
    expected = torch.nn.functional.cross_entropy(logits[local], targets[local])
    torch.testing.assert_close(value, expected)
    value.backward()
    assert all(c.grad.abs().sum() > 0 for c in cols)


# ---------------------------------------------------------------------------------------------------------
# MLM in the anchors' forward pass
# ---------------------------------------------------------------------------------------------------------


def test_anchors_are_masked_and_embedded_in_one_pass_positives_unmasked(tiny_model_mean):
    model = tiny_model_mean
    loss = DeCLUTRLoss(model, return_components=True)
    rows = _sampled_rows(3)
    mask_id = model.tokenizer.mask_token_id
    seen = []
    original = model.forward

    def spy(features, **kwargs):
        seen.append(features["input_ids"].clone())
        return original(features, **kwargs)

    model.forward = spy
    torch.manual_seed(0)
    out = loss(_features(model, rows), None)
    assert [ids.shape[0] for ids in seen] == [2 * 3, 4 * 3], "one pass for the anchors, one for the positives"
    assert (seen[0] == mask_id).any() and not (seen[1] == mask_id).any()
    assert set(out) == {"contrastive", "mlm"} and all(torch.isfinite(v) for v in out.values())
    assert {k: float(v) for k, v in loss.last_components.items()} == {k: float(v.detach()) for k, v in out.items()}
    sum(out.values()).backward()
    assert loss.mlm_head.dense.weight.grad.abs().sum() > 0
    assert model[0].auto_model.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_anchor_embeddings_come_from_the_masked_input(tiny_model_mean, monkeypatch):
    model = tiny_model_mean.eval()  # no dropout, so the embedding can be recomputed
    loss = DeCLUTRLoss(model)
    rows = _sampled_rows(2)
    captured = {}
    original_mask = __import__("st_contrast.losses.declutr", fromlist=["mask_tokens"]).mask_tokens

    def recording_mask(input_ids, attention_mask, *args, **kwargs):
        masked, labels = original_mask(input_ids, attention_mask, *args, **kwargs)
        captured.update(input_ids=masked, attention_mask=attention_mask, labels=labels)
        return masked, labels

    def recording_loss(embeddings, labels=None):
        captured["embeddings"] = [e.detach() for e in embeddings]
        return F_.nt_xent_loss(torch.cat(embeddings[:2]), torch.cat(embeddings[:2]))

    monkeypatch.setattr("st_contrast.losses.declutr.mask_tokens", recording_mask)
    monkeypatch.setattr(loss, "compute_loss_from_embeddings", recording_loss)
    features = _features(model, rows)
    loss(features, None)
    with torch.no_grad():
        masked = model({"input_ids": captured["input_ids"], "attention_mask": captured["attention_mask"]})
        unmasked = model(dict(features[0]))["sentence_embedding"]
    expected = masked["sentence_embedding"].reshape(2, 2, -1)
    torch.testing.assert_close(captured["embeddings"][0], expected[0])
    torch.testing.assert_close(captured["embeddings"][1], expected[1])
    assert not torch.allclose(captured["embeddings"][0], unmasked), "anchors must be embedded masked"


def test_mlm_equals_the_pretrained_masked_lm_on_the_same_masking(tiny_transformer_dir, monkeypatch):
    """The head is loaded from the checkpoint: our MLM loss equals BertForMaskedLM's on the same masked ids."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertForMaskedLM

    transformer = Transformer(str(tiny_transformer_dir), max_seq_length=32)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")], device="cpu"
    ).eval()
    loss = DeCLUTRLoss(model, return_components=True, mlm_weight=2.0)
    assert loss.mlm_head.loaded_pretrained
    captured = {}
    from st_contrast.losses import declutr as declutr_module

    original_mask = declutr_module.mask_tokens

    def recording_mask(input_ids, attention_mask, *args, **kwargs):
        masked, labels = original_mask(input_ids, attention_mask, *args, **kwargs)
        captured.update(input_ids=masked, attention_mask=attention_mask, labels=labels)
        return masked, labels

    monkeypatch.setattr(declutr_module, "mask_tokens", recording_mask)
    torch.manual_seed(0)
    out = loss(_features(model, _sampled_rows(2)), None)
    reference = BertForMaskedLM.from_pretrained(str(tiny_transformer_dir)).eval()
    with torch.no_grad():
        expected = reference(
            input_ids=captured["input_ids"], attention_mask=captured["attention_mask"], labels=captured["labels"]
        ).loss
    torch.testing.assert_close(out["mlm"].detach(), 2.0 * expected, rtol=1e-4, atol=1e-5)


def test_mlm_off_builds_no_head_and_masks_nothing(tiny_model_mean):
    loss = DeCLUTRLoss(tiny_model_mean, mlm_weight=0.0, return_components=True)
    assert loss.mlm_head is None
    out = loss(_features(tiny_model_mean, _sampled_rows(2)), None)
    assert set(out) == {"contrastive"}


def test_mlm_needs_a_hugging_face_encoder(echo_model):
    with pytest.raises(ValueError, match="needs a Hugging Face encoder"):
        DeCLUTRLoss(echo_model)


def test_warns_without_mean_pooling(tiny_model, caplog):
    with caplog.at_level(logging.WARNING, logger="st_contrast.losses.declutr"):
        DeCLUTRLoss(tiny_model, mlm_weight=0.0)
    assert "use mean pooling" in caplog.text


# ---------------------------------------------------------------------------------------------------------
# Errors and config
# ---------------------------------------------------------------------------------------------------------


def test_wrong_number_of_columns_is_explained(echo_model):
    loss = DeCLUTRLoss(echo_model, mlm_weight=0.0)
    with pytest.raises(ValueError, match=r"expects 6 text columns \(anchor_0..anchor_1, .*got 4"):
        loss(echo_features(*(torch.randn(2, 4) for _ in range(4))), None)


def test_labels_are_rejected(echo_model):
    with pytest.raises(ValueError, match="does not use labels"):
        DeCLUTRLoss(echo_model, mlm_weight=0.0)(
            echo_features(*(torch.randn(2, 4) for _ in range(6))), torch.tensor([1, 0])
        )


def test_a_single_anchor_is_an_error(echo_model):
    loss = DeCLUTRLoss(echo_model, num_anchors=1, num_positives=1, mlm_weight=0.0)
    with pytest.raises(ValueError, match="at least 2 anchors per batch"):
        loss(echo_features(torch.randn(1, 4), torch.randn(1, 4)), None)


def test_empty_spans_are_rejected(tiny_model_mean):
    loss = DeCLUTRLoss(tiny_model_mean, mlm_weight=0.0)
    rows = _sampled_rows(2)
    rows[1][3] = ""
    with pytest.raises(ValueError, match=r"input column 3 holds 1 empty text\(s\) \(rows \[1\]"):
        loss(_features(tiny_model_mean, rows), None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_anchors": 0}, "num_anchors must be an integer >= 1"),
        ({"num_positives": 2.0}, "num_positives must be an integer >= 1"),
        ({"temperature": 0}, "temperature"),
        ({"mlm_weight": -1}, "mlm_weight must be a finite number >= 0"),
        ({"mlm_weight": "x"}, "mlm_weight must be a number"),
        ({"mlm_probability": 1.0}, r"mlm_probability must be in \(0, 1\)"),
    ],
)
def test_invalid_settings(echo_model, kwargs, message):
    kwargs.setdefault("mlm_weight", 0.0)
    with pytest.raises(ValueError, match=message):
        DeCLUTRLoss(echo_model, **kwargs)


def test_config_and_citation(echo_model):
    loss = DeCLUTRLoss(echo_model, mlm_weight=0.0, temperature=0.1)
    assert loss.get_config_dict() == {
        "num_anchors": 2,
        "num_positives": 2,
        "temperature": 0.1,
        "mlm_weight": 0.0,
        "mlm_probability": 0.15,
        "gather_across_devices": False,
    }
    assert "giorgi-etal-2021-declutr" in loss.citation


# ---------------------------------------------------------------------------------------------------------
# Training entry points
# ---------------------------------------------------------------------------------------------------------


def test_fit_two_steps_trains_encoder_and_mlm_head(tiny_model_mean):
    from tests.training_utils import fit_two_steps

    sampler = DeCLUTRSpanSampler(min_span=3, max_span=10, seed=0)
    examples = sampler.input_examples(DOCUMENTS + DOCUMENTS[:2])
    loss = DeCLUTRLoss(tiny_model_mean)
    changed = fit_two_steps(tiny_model_mean, loss, examples, batch_size=4)
    assert any(name.startswith("mlm_head.") for name in changed), "the MLM head must be trained"
    assert any(name.startswith("model.") for name in changed)


def test_trainer_two_steps_with_logged_components(tiny_model_mean, tmp_path):
    from tests.training_utils import trainer_two_steps

    dataset = DeCLUTRSpanSampler(min_span=3, max_span=10, seed=0).dataset(DOCUMENTS + DOCUMENTS[:2])
    loss = DeCLUTRLoss(tiny_model_mean, return_components=True)
    changed = trainer_two_steps(tiny_model_mean, loss, dataset, tmp_path, batch_size=4)
    assert any(name.startswith("mlm_head.") for name in changed)
    assert any(name.startswith("model.") for name in changed)


# ---------------------------------------------------------------------------------------------------------
# A real two-process group (gloo)
# ---------------------------------------------------------------------------------------------------------


def _loss_and_grads(model, rows):
    loss = DeCLUTRLoss(model, mlm_weight=0.0, gather_across_devices=True)
    value = loss(_features(model, rows), None)
    model.zero_grad(set_to_none=True)
    value.backward()
    return value.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _gloo_worker(rank: int, world_size: int, model_dir: str, rows: list[list[str]], out_dir: str) -> None:
    from sentence_transformers import SentenceTransformer

    from tests.distributed_utils import ddp_average_

    model = SentenceTransformer(model_dir, device="cpu").eval()  # no dropout: both runs see the same function
    per_rank = len(rows) // world_size
    value, grads = _loss_and_grads(model, rows[rank * per_rank : (rank + 1) * per_rank])
    # DDP averages parameter gradients over processes; each process's loss is the mean over its own 2n views,
    # and all_gather_with_grad sums every process's gradient for a row back to its owner, so the average is the
    # gradient of the mean over all 2N views: the single-process gradient on the concatenated batch.
    ddp_average_(grads.values())
    ddp_average_([value])
    if rank == 0:
        torch.save({"loss": value, "grads": grads}, os.path.join(out_dir, "distributed.pt"))


@pytest.mark.slow
def test_two_process_gloo_run_equals_one_process_on_the_concatenated_batch(tiny_model_mean, tmp_path):
    from sentence_transformers import SentenceTransformer

    from tests.distributed_utils import run_distributed

    model_dir = str(tmp_path / "model")
    tiny_model_mean.save(model_dir)
    rows = _sampled_rows(4)
    run_distributed(_gloo_worker, model_dir, rows, str(tmp_path), world_size=2)
    result = torch.load(tmp_path / "distributed.pt")
    single = SentenceTransformer(model_dir, device="cpu").eval()
    value, grads = _loss_and_grads(single, rows)
    torch.testing.assert_close(result["loss"], value, atol=1e-5, rtol=1e-5)
    assert set(result["grads"]) == set(grads)
    assert sum(g.abs().sum() for g in grads.values()) > 0
    for name, grad in grads.items():
        torch.testing.assert_close(result["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("cached", [False, True])
def test_nothing_to_mask_gives_a_zero_mlm_term(tiny_model_mean, caplog, cached):
    from st_contrast.losses import CachedDeCLUTRLoss

    model = tiny_model_mean.eval()
    if cached:
        loss = CachedDeCLUTRLoss(model, mini_batch_size=3, check_inputs=False)
    else:
        loss = DeCLUTRLoss(model, check_inputs=False)
    rows = _sampled_rows(2)
    for row in rows:
        row[0] = row[1] = ""  # empty anchors: only special tokens, nothing can be masked
    with caplog.at_level(logging.WARNING, logger="st_contrast.modules.mlm"):
        value = loss(_features(model, rows), None)
    assert torch.isfinite(value)
    assert loss.last_components["mlm"].item() == 0.0
    torch.testing.assert_close(value.detach(), loss.last_components["contrastive"])
    value.backward()
    assert torch.count_nonzero(loss.mlm_head.dense.weight.grad) == 0
    assert any(type(loss).__name__ in r.getMessage() and "could be masked" in r.getMessage() for r in caplog.records)
