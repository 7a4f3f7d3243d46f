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


def test_read_rerank_inputs_goes_through_the_reading_layer(tmp_path):
    import json

    from fairseq_plugins.tasks.simcls_reranking import read_rerank_inputs
    from st_contrast.data.reading import DataFormatError

    records = [
        {"source": "a doc", "candidates": ["one", {"text": "two"}], "reference": "ref"},
        {"id": "x", "source": "b doc", "candidates": ["three", "four"]},
    ]
    path = tmp_path / "in.jsonl"
    # a BOM, Windows line ends and a blank line: the same two documents
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n\r\n".join(json.dumps(r).encode() for r in records) + b"\r\n")
    docs = read_rerank_inputs(str(path))
    assert [d["id"] for d in docs] == ["0", "x"]
    assert docs[0]["candidates"] == ["one", "two"] and docs[0]["reference"] == "ref"
    assert docs[1]["candidates"] == ["three", "four"] and docs[1]["reference"] is None

    def error_for(data: bytes) -> str:
        path.write_bytes(data)
        with pytest.raises(DataFormatError) as error:
            read_rerank_inputs(str(path))
        return str(error.value)

    first = json.dumps(records[0]).encode() + b"\n"
    assert error_for(first + b'{"source": "caf\xe9", "candidates": ["a"]}\n').startswith(f"{path}:2:")
    assert "UTF-8" in error_for(first + b'{"source": "caf\xe9", "candidates": ["a"]}\n')
    assert error_for(first + b'{"source": "s", "candidates": ["a"]\n').startswith(f"{path}:2:")  # cut short
    assert error_for(first + b'{"candidates": ["a"]}\n') == f"{path}:2: needs 'source' and 'candidates'; " \
        "expected one JSON object per line"  # fmt: skip
    assert "no candidates" in error_for(first + b'{"source": "s", "candidates": []}\n')
    assert "'candidates' must be a list" in error_for(b'{"source": "s", "candidates": "a"}\n')
    assert "the key 'source' appears twice" in error_for(b'{"source": "s", "source": "t", "candidates": ["a"]}\n')
    assert "holds no documents" in error_for(b"\n\n")
