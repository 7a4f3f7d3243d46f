"""simcls_scorer (models/simcls_scorer.py): cosines of first-token vectors, a pretrained Hugging Face encoder,
frozen layers."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from tests.simcls_utils import WORDS, make_simcls_scorer, make_simcls_task  # noqa: E402


def test_scores_are_cosines_of_first_token_vectors(simcls_folder):
    task = make_simcls_task(simcls_folder)
    model = make_simcls_scorer(task).eval()
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


def test_pretrained_hugging_face_encoder(tmp_path, simcls_folder):
    from st_contrast.testing import build_tiny_transformer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]
    path = build_tiny_transformer(tmp_path / "tiny-bert", hidden_size=16, num_layers=2, vocab=vocab)
    task = make_simcls_task(simcls_folder, pretrained_encoder=str(path), max_candidate_positions=6)
    assert task.dictionary is None and task.pad_idx == 0
    ids = task.encode("w1 w2 w3\nw4 w5 w6 w7", 6)
    assert ids[0] == task.tokenizer.cls_token_id and len(ids) == 6  # truncated, first token [CLS]
    model = make_simcls_scorer(task, freeze_layers=1).eval()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("embeddings" in n for n in frozen) and any("layer.0." in n for n in frozen)
    assert not any("layer.1." in n for n in frozen)
    assert any("pooler" in n for n in frozen)  # unused by first-token scoring: out of training (DDP)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    out = model(**dataset.collater([dataset[0]])["net_input"])
    assert out["candidate_scores"].shape == (1, 5) and torch.all(out["candidate_scores"].abs() <= 1 + 1e-5)


def test_bad_freeze_layers_give_clear_errors(simcls_folder):
    task = make_simcls_task(simcls_folder)
    with pytest.raises(ValueError, match="freeze-layers"):
        make_simcls_scorer(task, freeze_layers=-1)
    with pytest.raises(ValueError, match="would freeze all 1 layers"):
        make_simcls_scorer(task, freeze_layers=1)
