"""st_contrast.views.alignment: replaced-token labels recovered by aligning the token ids of two sentences."""

from __future__ import annotations

import torch

from st_contrast.views.alignment import IGNORE, KEPT, TokenAligner


class _BPETokenizer:
    """Byte-level-BPE-style vocabulary (word starts marked with Ġ) for the aligner."""

    vocab = ["<s>", "</s>", "<pad>", "<unk>", "Ġthe", "Ġcat", "Ġfel", "ine", "Ġsat", ",", "Ġdog", "s", "the"]
    all_special_ids = [0, 1, 2, 3]
    unk_token_id = 3

    def __len__(self):
        return len(self.vocab)

    def convert_ids_to_tokens(self, ids):
        return [self.vocab[i] for i in ids]


def test_aligner_handles_bpe_word_start_markers():
    aligner = TokenAligner(_BPETokenizer())
    assert aligner.scheme == "Ġ"
    # <s> the cat sat , </s>   ->   <s> the fel ine sat , </s>
    original = [0, 12, 5, 8, 9, 1]
    rewrite = [0, 12, 6, 7, 8, 9, 1]
    assert aligner.replaced(original, rewrite) == [IGNORE, 0, 1, 1, 0, 0, IGNORE]
    # "dog" -> "dogs": the word differs, so both of its pieces count as replaced
    assert aligner.replaced([0, 4, 10, 1], [0, 4, 10, 11, 1], value=2) == [IGNORE, 0, 2, 2, IGNORE]


def test_identical_rewrite_has_no_replaced_token(tiny_model):
    aligner = TokenAligner(tiny_model.tokenizer)
    ids = tiny_model.tokenizer("the cat sat on the mat")["input_ids"]
    labels = aligner.replaced(ids, ids)
    assert labels[0] == IGNORE and labels[-1] == IGNORE and set(labels[1:-1]) == {0}


def test_batch_labels_follow_each_row_and_ignore_padding(tiny_model):
    tokenizer = tiny_model.tokenizer
    aligner = TokenAligner(tokenizer)
    original = tokenizer(["the cat sat on the mat", "a man"], padding=True, return_tensors="pt")
    rewrite = tokenizer(["the dog sat on the mat", "a man"], padding=True, return_tensors="pt")
    labels = aligner.batch_labels(
        original["input_ids"], original["attention_mask"], rewrite["input_ids"], rewrite["attention_mask"], value=2
    )
    assert labels.shape == rewrite["input_ids"].shape and labels.dtype == torch.long
    dog = len(tokenizer.tokenize("dog"))
    first = labels[0][: int(rewrite["attention_mask"][0].sum())].tolist()
    assert first == [IGNORE, KEPT] + [2] * dog + [KEPT] * (len(first) - 3 - dog) + [IGNORE]
    assert set(labels[1][rewrite["attention_mask"][1] == 0].tolist()) <= {IGNORE}
    assert 2 not in labels[1].tolist()
