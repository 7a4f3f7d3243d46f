"""simcls_reranking (tasks/simcls_reranking.py): loading, candidate subsampling, batching and padding, errors."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from tests.simcls_utils import make_simcls_scorer, make_simcls_task, tiny_documents  # noqa: E402


def test_task_loads_batches_and_subsamples(simcls_folder):
    task = make_simcls_task(simcls_folder, num_train_candidates=3)
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


def test_uneven_candidate_counts_are_padded(simcls_folder):
    task = make_simcls_task(simcls_folder)
    docs = tiny_documents(2, n_candidates=5)
    items = [task.item_from_document(docs[0]), task.item_from_texts("x", "w1 w2 .", ["w1 .", "w2 ."])]
    dataset = task.build_dataset(items)
    batch = dataset.collater([dataset[0], dataset[1]])
    assert batch["candidate_mask"].tolist() == [[True] * 5, [True, True, False, False, False]]
    assert "reference_tokens" not in batch["net_input"] and "candidate_rouge" not in batch
    model = make_simcls_scorer(task).eval()
    out = model(**batch["net_input"])
    assert torch.isinf(out["candidate_scores"][1, 2:]).all() and torch.isfinite(out["candidate_scores"][0]).all()
    assert out["reference_scores"] is None


def test_bad_configuration_gives_clear_errors(tmp_path, simcls_folder):
    with pytest.raises(FileNotFoundError, match="dict.txt"):
        make_simcls_task(tmp_path)
    with pytest.raises(ValueError, match="num-train-candidates"):
        make_simcls_task(simcls_folder, num_train_candidates=1)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        make_simcls_task(simcls_folder, pretrained_encoder=str(tmp_path / "nowhere"))
    task = make_simcls_task(simcls_folder)
    with pytest.raises(FileNotFoundError, match="test.jsonl"):
        task.load_dataset("test")
