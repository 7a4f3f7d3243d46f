"""The fairseq side of SimCLS: registration, the task's data, the scorer and the criterion, in memory."""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("fairseq", reason="fairseq is not installed (pip install fairseq-fixed==0.12.3.1)")
pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from st_contrast.data.simcls import write_simcls_jsonl  # noqa: E402
from st_contrast.losses.functional import simcls_ranking_loss  # noqa: E402
from st_contrast.simcls_cli import write_dictionary  # noqa: E402

from .tiny import WORDS, tiny_documents  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("simcls-data")
    docs = tiny_documents(6, n_candidates=5)
    write_simcls_jsonl(docs[:4], folder / "train.jsonl")
    write_simcls_jsonl(docs[4:], folder / "valid.jsonl")
    write_dictionary([t for d in docs for t in (d.source, d.reference, *(c.text for c in d.candidates))],
                     str(folder / "dict.txt"))  # fmt: skip
    return folder


def make_task(folder, **overrides):
    import fairseq_plugins  # noqa: F401
    from fairseq_plugins.tasks.simcls_reranking import SimCLSRerankingConfig, SimCLSRerankingTask

    cfg = SimCLSRerankingConfig(data=str(folder), **overrides)
    cfg.seed = 1
    return SimCLSRerankingTask.setup_task(cfg)


def make_model(task, **overrides):
    from fairseq_plugins.models.simcls_scorer import SimCLSScorer, SimCLSScorerConfig

    torch.manual_seed(0)
    cfg = SimCLSScorerConfig(encoder_layers=1, encoder_embed_dim=16, encoder_ffn_embed_dim=32,
                             encoder_attention_heads=2, **overrides)  # fmt: skip
    return SimCLSScorer.build_model(cfg, task)


def make_criterion(task, **kwargs):
    from fairseq_plugins.criterions.simcls_ranking import SimCLSRankingCriterion

    return SimCLSRankingCriterion(task, **kwargs)


def test_components_are_registered_once():
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    import fairseq_plugins  # noqa: F401
    from fairseq_plugins.models.simcls_scorer import SimCLSScorer, SimCLSScorerConfig, register_model_once

    assert MODEL_REGISTRY["simcls_scorer"] is SimCLSScorer and ARCH_MODEL_REGISTRY["simcls_scorer"] is SimCLSScorer
    assert TASK_REGISTRY["simcls_reranking"].__name__ == "SimCLSRerankingTask"
    assert CRITERION_REGISTRY["simcls_ranking"].__name__ == "SimCLSRankingCriterion"
    # the same class again (a second import of the plugin package) is a no-op ...
    again = type("SimCLSScorer", (SimCLSScorer,), {"__module__": "copy_of_plugins.models.simcls_scorer"})
    assert register_model_once("simcls_scorer", SimCLSScorerConfig)(again) is SimCLSScorer
    # ... a different class under our name is refused
    other = type("OtherScorer", (SimCLSScorer,), {})
    with pytest.raises(ValueError, match="already registered"):
        register_model_once("simcls_scorer", SimCLSScorerConfig)(other)


def test_task_loads_batches_and_subsamples(data_folder):
    task = make_task(data_folder, num_train_candidates=3)
    task.load_dataset("train")
    task.load_dataset("valid")
    train, valid = task.dataset("train"), task.dataset("valid")
    assert len(train) == 4 and len(valid) == 2
    item = valid[0]
    d = task.dictionary
    assert item["source"][0] == d.bos() and item["source"][-1] == d.eos() and len(item["candidates"]) == 5
    assert d.unk() not in item["source"]  # every word is in dict.txt
    # training: a random 3-subset per epoch, in rank order, with the matching stored ROUGE
    train.set_epoch(1)
    first = train[0]
    assert len(first["candidates"]) == 3
    means = first["rouge"].mean(-1).tolist()
    assert means == sorted(means, reverse=True)
    subsets = set()
    for epoch in range(1, 8):
        train.set_epoch(epoch)
        subsets.add(tuple(train[0]["rouge"][:, 0].tolist()))
    assert len(subsets) > 1
    # every document reaches a batch, once per epoch, also with fairseq-train's default batch-size multiple
    # of 8 (fairseq 0.12 alone drops the last batch when it exceeds --batch-size)
    for max_sentences in (1, 3):
        itr = task.get_batch_iterator(train, max_sentences=max_sentences, required_batch_size_multiple=8, seed=1)
        ids = sorted(int(i) for batch in itr.next_epoch_itr(shuffle=True) for i in batch["id"])
        assert ids == [0, 1, 2, 3]
    batch = valid.collater([valid[0], valid[1]])
    assert batch["net_input"]["candidate_tokens"].shape[:2] == (2, 5)
    assert batch["candidate_mask"].all() and batch["candidate_rouge"].shape == (2, 5, 3)


def test_uneven_candidate_counts_are_padded(data_folder):
    task = make_task(data_folder)
    docs = tiny_documents(2, n_candidates=5)
    items = [task.item_from_document(docs[0]), task.item_from_texts("x", "w1 w2 .", ["w1 .", "w2 ."])]
    dataset = task.build_dataset(items)
    batch = dataset.collater([dataset[0], dataset[1]])
    assert batch["candidate_mask"].tolist() == [[True] * 5, [True, True, False, False, False]]
    assert "reference_tokens" not in batch["net_input"] and "candidate_rouge" not in batch
    model = make_model(task).eval()
    out = model(**batch["net_input"])
    assert torch.isinf(out["candidate_scores"][1, 2:]).all() and torch.isfinite(out["candidate_scores"][0]).all()
    assert out["reference_scores"] is None


def test_scores_are_cosines_of_first_token_vectors(data_folder):
    task = make_task(data_folder)
    model = make_model(task).eval()
    source = " ".join(WORDS[:8])
    item = task.item_from_texts("d", source, [" ".join(WORDS[10:14]), source, " ".join(WORDS[3:9])], reference="w1 w2")
    batch = task.build_dataset([item]).collater([task.build_dataset([item])[0]])
    out = model(**batch["net_input"])
    with torch.no_grad():
        doc = model.embed(batch["net_input"]["src_tokens"])[0]
        cand = model.embed(batch["net_input"]["candidate_tokens"][0, 0:1])[0]
        ref = model.embed(batch["net_input"]["reference_tokens"])[0]
    torch.testing.assert_close(out["candidate_scores"][0, 0], torch.cosine_similarity(doc, cand, dim=0))
    torch.testing.assert_close(out["reference_scores"][0], torch.cosine_similarity(doc, ref, dim=0))
    # a candidate identical to the document has cosine 1 and is the one chosen
    assert out["candidate_scores"][0, 1].item() == pytest.approx(1.0, abs=1e-5)
    assert int(out["candidate_scores"].argmax()) == 1


def test_criterion_loss_metrics_and_gradients(data_folder):
    from fairseq.logging import metrics

    task = make_task(data_folder)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[0], dataset[1]])
    model = make_model(task)
    criterion = make_criterion(task, ranking_margin=0.05, reference_weight=0.5)
    assert torch.isfinite(criterion(model, sample)[0])  # training mode (dropout on)
    model.eval()  # deterministic from here: the criterion's loss must equal the function on the outputs
    loss, sample_size, log = criterion(model, sample)
    out = model(**sample["net_input"])
    want = simcls_ranking_loss(out["candidate_scores"], out["reference_scores"], margin=0.05, reference_weight=0.5)
    torch.testing.assert_close(loss, want.sum())
    assert sample_size == 2 and log["nsentences"] == 2
    chosen = out["candidate_scores"].argmax(-1)
    picked = sample["candidate_rouge"][torch.arange(2), chosen]
    assert log["sel_rouge2"] == pytest.approx(100 * float(picked[:, 1].sum()), rel=1e-5)
    assert log["oracle_mean"] == pytest.approx(100 * float(sample["candidate_rouge"][:, 0].mean(-1).sum()), rel=1e-5)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    with metrics.aggregate() as agg:
        type(criterion).reduce_metrics([log, log])
    values = agg.get_smoothed_values()
    assert values["rouge_mean"] == pytest.approx(
        round((log["sel_rouge1"] + log["sel_rouge2"] + log["sel_rougeLsum"]) / 6, 2), abs=0.02
    )
    assert values["oracle_rouge_mean"] >= values["rouge_mean"] and 0 <= values["top1_acc"] <= 100
    assert type(criterion).logging_outputs_can_be_summed()


def test_pretrained_hugging_face_encoder(tmp_path, data_folder):
    from st_contrast.testing import build_tiny_transformer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]
    path = build_tiny_transformer(tmp_path / "tiny-bert", hidden_size=16, num_layers=2, vocab=vocab)
    task = make_task(data_folder, pretrained_encoder=str(path), max_candidate_positions=6)
    assert task.dictionary is None and task.pad_idx == 0
    ids = task.encode("w1 w2 w3\nw4 w5 w6 w7", 6)
    assert ids[0] == task.tokenizer.cls_token_id and len(ids) == 6  # truncated, first token [CLS]
    model = make_model(task, freeze_layers=1).eval()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("embeddings" in n for n in frozen) and any("layer.0." in n for n in frozen)
    assert not any("layer.1." in n for n in frozen)
    assert any("pooler" in n for n in frozen)  # unused by first-token scoring: out of training (DDP)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    out = model(**dataset.collater([dataset[0]])["net_input"])
    assert out["candidate_scores"].shape == (1, 5) and torch.all(out["candidate_scores"].abs() <= 1 + 1e-5)


def test_bad_configuration_gives_clear_errors(tmp_path, data_folder):
    with pytest.raises(FileNotFoundError, match="dict.txt"):
        make_task(tmp_path)
    with pytest.raises(ValueError, match="num-train-candidates"):
        make_task(data_folder, num_train_candidates=1)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        make_task(data_folder, pretrained_encoder=str(tmp_path / "nowhere"))
    task = make_task(data_folder)
    with pytest.raises(FileNotFoundError, match="test.jsonl"):
        task.load_dataset("test")
    with pytest.raises(ValueError, match="ranking-margin"):
        make_criterion(task, ranking_margin=-1.0)
    with pytest.raises(ValueError, match="both 0"):
        make_criterion(task, candidate_weight=0.0, reference_weight=0.0)
    with pytest.raises(ValueError, match="freeze-layers"):
        make_model(task, freeze_layers=-1)
    with pytest.raises(ValueError, match="would freeze all 1 layers"):
        make_model(task, freeze_layers=1)
