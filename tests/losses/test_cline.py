from __future__ import annotations

import math

import pytest
import torch

from st_contrast.losses import CLINELoss
from st_contrast.losses import functional as F_
from st_contrast.views.alignment import IGNORE
from tests.conftest import echo_features

ORIGINAL = ["a man is playing a guitar", "the cat sat on the mat", "two children play football in the park"]
SYNONYM = ["a man is performing a guitar", "the feline sat on the mat", "two kids play football in the park"]
ANTONYM = ["a woman is playing a guitar", "the cat stood on the rug", "two children lose football in the park"]


def features(model, columns=(ORIGINAL, SYNONYM, ANTONYM)):
    return [model.preprocess(list(column)) for column in columns]


# --- reference computations -------------------------------------------------------------------


def reference_paper_contrast(h, h_syn, h_ant):
    total = 0.0
    for i in range(h.shape[0]):
        f_syn = math.exp(float(h[i] @ h_syn[i]))
        f_ant = math.exp(float(h[i] @ h_ant[i]))
        total += -math.log(f_syn / (f_syn + f_ant))
    return total / h.shape[0]


def reference_official_contrast(h, h_syn, h_ant):
    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    terms = []
    for i in range(h.shape[0]):
        terms.append(-math.log(sigmoid(float((h[i] * h_syn[i]).mean()))))
        terms.append(-math.log(1 - sigmoid(float((h[i] * h_ant[i]).mean()))))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_paper_contrast_matches_loop_reference(echo_model, dtype):
    torch.manual_seed(0)
    leaves = [(torch.randn(5, 8, dtype=dtype) * 0.5).requires_grad_() for _ in range(3)]
    loss = CLINELoss(echo_model, mlm_weight=0, rtd_weight=0)
    out = loss(echo_features(*leaves), None)
    assert set(out) == {"contrastive"}
    expected = reference_paper_contrast(*[t.detach().double() for t in leaves])
    torch.testing.assert_close(out["contrastive"].double(), torch.tensor(expected, dtype=torch.float64))
    out["contrastive"].backward()
    for leaf in leaves:
        assert leaf.grad.abs().sum() > 0


def test_paper_contrast_is_stable_for_large_dot_products(echo_model):
    h = torch.full((2, 4), 30.0)
    value = CLINELoss(echo_model, mlm_weight=0, rtd_weight=0)(echo_features(h, h, -h), None)["contrastive"]
    assert torch.isfinite(value) and value < 1e-6
    value = CLINELoss(echo_model, mlm_weight=0, rtd_weight=0)(echo_features(h, -h, h), None)["contrastive"]
    torch.testing.assert_close(value, torch.tensor(2 * 4 * 900.0))  # h·h_ant - h·h_syn, no overflow


def test_official_contrast_and_uncertainty_weights_match_reference(echo_model):
    torch.manual_seed(1)
    z = [torch.randn(4, 6) * 3 for _ in range(3)]
    loss = CLINELoss(echo_model, mlm_weight=0, rtd_weight=0, contrastive_weight=2.0, objective="official")
    assert loss.log_vars is not None and torch.equal(loss.log_vars.detach(), torch.zeros(3))
    base = reference_official_contrast(*[t.double() for t in z])
    out = loss(echo_features(*z), None)
    torch.testing.assert_close(out["contrastive"].double(), torch.tensor(2.0 * base, dtype=torch.float64))
    with torch.no_grad():
        loss.log_vars[2] = 0.7
    out = loss(echo_features(*z), None)
    expected = math.exp(-0.7) * 2.0 * base + 0.7
    torch.testing.assert_close(out["contrastive"].double(), torch.tensor(expected, dtype=torch.float64))
    out["contrastive"].backward()
    assert loss.log_vars.grad[2] != 0
    with torch.no_grad():
        loss.log_vars[2] = -0.7  # the regulariser is clamped at 0, as in the official code
    out = loss(echo_features(*z), None)
    torch.testing.assert_close(
        out["contrastive"].double(), torch.tensor(math.exp(0.7) * 2.0 * base, dtype=torch.float64)
    )


def test_uncertainty_weighted_terms_function():
    losses = [torch.tensor(2.0), torch.tensor(3.0)]
    log_vars = torch.tensor([0.5, -1.0, 9.0])
    terms = F_.uncertainty_weighted_terms(losses, log_vars)
    torch.testing.assert_close(torch.stack(terms), torch.tensor([math.exp(-0.5) * 2 + 0.5, math.exp(1.0) * 3]))
    with pytest.raises(ValueError, match="log-variances"):
        F_.uncertainty_weighted_terms(losses * 2, log_vars)


@pytest.mark.parametrize("objective", ["paper", "official"])
def test_mlm_and_rtd_terms_match_per_token_reference(tiny_model, objective):
    """The vectorised MLM/RTD terms equal per-token loops over the same head outputs."""
    torch.manual_seed(2)
    loss = CLINELoss(tiny_model, objective=objective, contrastive_weight=0)
    hidden = tiny_model[0].auto_model.config.hidden_size
    tokens = [torch.randn(2, length, hidden) for length in (5, 6, 4)]
    mlm_labels = torch.full((2, 5), IGNORE)
    mlm_labels[0, 1], mlm_labels[1, 3] = 7, 11
    syn = torch.tensor([[IGNORE, 0, 1, 0, 0, IGNORE], [IGNORE, 1, 1, 0, IGNORE, IGNORE]])
    ant = torch.tensor([[IGNORE, 0, 0, IGNORE], [IGNORE, 1, 0, IGNORE]])
    if objective == "official":
        ant = torch.where(ant == 1, torch.tensor(2), ant)
    with torch.no_grad():
        out = loss.compute_loss_from_embeddings([None, None, None], tokens, mlm_labels, (syn, ant))
        weight = tiny_model[0].auto_model.get_input_embeddings().weight
        mlm_terms = []
        for b, t in ((0, 1), (1, 3)):
            logits = loss.mlm_head(tokens[0][b, t], weight)
            mlm_terms.append(-torch.log_softmax(logits, -1)[mlm_labels[b, t]])
        rtd_terms = []
        for states, labels in ((tokens[1], syn), (tokens[2], ant)):
            for b in range(2):
                for t in range(labels.shape[1]):
                    y = int(labels[b, t])
                    if y == IGNORE:
                        continue
                    logit = loss.rtd_head(states[b, t])
                    if objective == "paper":
                        p = torch.sigmoid(logit)
                        rtd_terms.append(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)))
                    else:
                        rtd_terms.append(-torch.log_softmax(logit, -1)[y])
    expected_mlm = torch.stack(mlm_terms).mean()
    expected_rtd = torch.stack(rtd_terms).mean()
    if objective == "official":  # log_vars at 0: exp(0)·w·L + max(0, 0)
        assert set(out) == {"mlm", "rtd"}
    torch.testing.assert_close(out["mlm"], expected_mlm)
    torch.testing.assert_close(out["rtd"], expected_rtd)
    assert loss.rtd_head.num_labels == (1 if objective == "paper" else 3)


# --- RTD labels from token alignment ----------------------------------------------------------------


def test_rtd_labels_exact_on_hand_made_multi_piece_words(tiny_model):
    tok = tiny_model.tokenizer
    # the tiny vocabulary splits these words into several pieces; "playing"/"played" share "play"
    assert tok.tokenize("feline") == ["fe", "##line"] and tok.tokenize("playing")[0] == tok.tokenize("played")[0]
    assert len(tok.tokenize("guitar")) == 3
    original = ["the cat sat on the mat", "a man is playing a guitar"]
    synonym = ["the feline sat on the mat", "a man is played a guitar"]
    antonym = ["the cat stood on the rug", "a man is playing a cat"]
    loss = CLINELoss(tiny_model)
    feats = features(tiny_model, (original, synonym, antonym))
    syn_labels, ant_labels = loss.rtd_labels(feats[0]["attention_mask"], feats[0]["input_ids"], feats[1], feats[2])

    def expected(sentence, replaced_words, value=1):
        labels = [IGNORE]  # [CLS]
        for word in sentence.split():
            labels += [value if word in replaced_words else 0] * len(tok.tokenize(word))
        return labels + [IGNORE]  # [SEP]

    def row(labels, b):
        return labels[b][: int(feats_mask(b, labels).sum())].tolist()

    def feats_mask(b, labels):
        column = 1 if labels is syn_labels else 2
        return feats[column]["attention_mask"][b]

    assert row(syn_labels, 0) == expected(synonym[0], {"feline"})
    assert row(syn_labels, 1) == expected(synonym[1], {"played"})  # the shared "play" piece is replaced too
    assert row(ant_labels, 0) == expected(antonym[0], {"stood", "rug"})
    assert row(ant_labels, 1) == expected(antonym[1], {"cat"})
    # padding is ignored
    assert (syn_labels[feats[1]["attention_mask"] == 0] == IGNORE).all()

    official = CLINELoss(tiny_model, objective="official")
    _, ant3 = official.rtd_labels(feats[0]["attention_mask"], feats[0]["input_ids"], feats[1], feats[2])
    assert ant3[0][: int(feats[2]["attention_mask"][0].sum())].tolist() == expected(antonym[0], {"stood", "rug"}, 2)


# --- the full loss on a real (tiny) encoder -----------------------------------------------------------


@pytest.mark.parametrize("objective", ["paper", "official"])
def test_one_forward_over_three_columns_and_gradients_everywhere(tiny_model, objective):
    loss = CLINELoss(tiny_model, objective=objective)
    seen = []
    original_forward = tiny_model.forward

    def spy(feats, **kwargs):
        seen.append(feats["input_ids"].clone())
        return original_forward(feats, **kwargs)

    tiny_model.forward = spy
    feats = features(tiny_model)
    out = loss(feats, None)
    assert set(out) == {"mlm", "rtd", "contrastive"}
    assert len(seen) == 1 and seen[0].shape[0] == 3 * len(ORIGINAL), "one pass over [x; x_syn; x_ant]"
    mask_id = tiny_model.tokenizer.mask_token_id
    assert (seen[0][: len(ORIGINAL)] == mask_id).any(), "the original is masked for MLM"
    assert not (seen[0][len(ORIGINAL) :] == mask_id).any(), "the rewrites are not masked"
    total = torch.stack(list(out.values())).sum()
    total.backward()
    assert tiny_model[0].auto_model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    for head in (loss.mlm_head, loss.rtd_head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    if objective == "official":
        assert loss.log_vars.grad.abs().sum() > 0


def test_without_mlm_nothing_is_masked(tiny_model):
    loss = CLINELoss(tiny_model, mlm_weight=0)
    assert loss.mlm_head is None
    seen = []
    original_forward = tiny_model.forward

    def spy(feats, **kwargs):
        seen.append(feats["input_ids"].clone())
        return original_forward(feats, **kwargs)

    tiny_model.forward = spy
    feats = features(tiny_model)
    out = loss(feats, None)
    assert set(out) == {"rtd", "contrastive"}
    assert torch.equal(seen[0][: len(ORIGINAL), : feats[0]["input_ids"].shape[1]], feats[0]["input_ids"])


def test_roberta_architecture_runs(tiny_roberta):
    out = CLINELoss(tiny_roberta)(features(tiny_roberta), None)
    assert all(torch.isfinite(v) for v in out.values())


def test_fit_two_steps_trains_encoder_and_heads(tiny_model):
    from sentence_transformers import InputExample

    from tests.training_utils import fit_two_steps

    loss = CLINELoss(tiny_model, objective="official")
    examples = [InputExample(texts=list(t)) for t in zip(ORIGINAL + ORIGINAL, SYNONYM + SYNONYM, ANTONYM + ANTONYM)]
    changed = fit_two_steps(tiny_model, loss, examples, batch_size=3)
    assert any(n.startswith("model.") for n in changed)
    assert any(n.startswith("mlm_head.") for n in changed) and any(n.startswith("rtd_head.") for n in changed)
    assert "log_vars" in changed


def test_trainer_two_steps_on_a_triple_dataset(tiny_model, tmp_path):
    from datasets import Dataset

    from tests.training_utils import trainer_two_steps

    loss = CLINELoss(tiny_model)
    dataset = Dataset.from_dict({"original": ORIGINAL * 2, "synonym": SYNONYM * 2, "antonym": ANTONYM * 2})
    changed = trainer_two_steps(tiny_model, loss, dataset, tmp_path, batch_size=3)
    assert any(n.startswith("model.") for n in changed)
    assert any(n.startswith("rtd_head.") for n in changed) and any(n.startswith("mlm_head.") for n in changed)


def test_pretrained_mlm_head_weights_are_loaded(tiny_transformer_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    transformer = Transformer(str(tiny_transformer_dir))
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension())], device="cpu")
    assert CLINELoss(model).mlm_head.loaded_pretrained
    assert not CLINELoss(model, load_pretrained_mlm_head=False).mlm_head.loaded_pretrained


# --- bad input ------------------------------------------------------------------------------------------


def test_wrong_number_of_columns(echo_model):
    loss = CLINELoss(echo_model, mlm_weight=0, rtd_weight=0)
    message = r"expects 3 text columns \(original, synonym rewrite, antonym rewrite\), got 2"
    with pytest.raises(ValueError, match=message):
        loss(echo_features(torch.randn(2, 4), torch.randn(2, 4)), None)


def test_columns_of_different_sizes(echo_model):
    loss = CLINELoss(echo_model, mlm_weight=0, rtd_weight=0)
    with pytest.raises(ValueError, match="same number of rows"):
        loss(echo_features(torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 4)), None)


def test_labels_are_rejected(echo_model):
    loss = CLINELoss(echo_model, mlm_weight=0, rtd_weight=0)
    with pytest.raises(ValueError, match="does not use labels"):
        loss(echo_features(*(torch.randn(2, 4) for _ in range(3))), torch.tensor([1, 0]))


def test_empty_text_is_rejected(tiny_model):
    loss = CLINELoss(tiny_model)
    feats = features(tiny_model, (ORIGINAL, SYNONYM[:2] + [""], ANTONYM))
    with pytest.raises(ValueError, match=r"column 1 holds 1 empty text\(s\) \(rows \[2\]"):
        loss(feats, None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mlm_weight": -1}, "mlm_weight must be a finite number >= 0"),
        ({"rtd_weight": float("nan")}, "rtd_weight must be a finite number >= 0"),
        ({"contrastive_weight": "x"}, "contrastive_weight must be a number"),
        ({"mlm_weight": 0, "rtd_weight": 0, "contrastive_weight": 0}, "at least one of"),
        ({"objective": "simcse"}, "objective must be 'paper' or 'official'"),
        ({"mlm_probability": 0.0}, r"mlm_probability must be in \(0, 1\)"),
        ({"mlm_probability": 1.0}, r"mlm_probability must be in \(0, 1\)"),
    ],
)
def test_bad_arguments(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CLINELoss(tiny_model, **kwargs)


def test_config_and_citation(tiny_model):
    loss = CLINELoss(tiny_model, rtd_weight=0.5, objective="official", mlm_probability=0.2)
    assert loss.get_config_dict() == {
        "mlm_weight": 1.0,
        "rtd_weight": 0.5,
        "contrastive_weight": 1.0,
        "objective": "official",
        "mlm_probability": 0.2,
    }
    assert "wang2021cline" in loss.citation


def test_nothing_to_mask_gives_a_zero_mlm_term(tiny_model, caplog):
    import logging

    loss = CLINELoss(tiny_model, check_inputs=False)
    feats = features(tiny_model, (["", ""], SYNONYM[:2], ANTONYM[:2]))  # an empty original: only special tokens
    with caplog.at_level(logging.WARNING, logger="st_contrast.modules.mlm"):
        out = loss(feats, None)
    assert out["mlm"].item() == 0.0 and all(bool(torch.isfinite(v)) for v in out.values())
    sum(out.values()).backward()
    assert torch.count_nonzero(loss.mlm_head.dense.weight.grad) == 0
    assert any("CLINELoss" in r.getMessage() for r in caplog.records)
