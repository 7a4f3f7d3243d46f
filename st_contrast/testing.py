"""Offline building blocks for tests, examples and benchmarks: tiny models made on the fly.

Nothing here touches the network: a randomly initialised BERT/RoBERTa of a few thousand parameters and
a fixed WordPiece vocabulary shipped with the package (:data:`TINY_VOCAB_FILE`) are saved into a folder
that sentence-transformers loads like any checkpoint. The vocabulary is a file, not trained on each
build, because WordPiece training is not deterministic run to run and its corpus would depend on
whether the data folder is present: every build on every machine gives the same model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

TINY_VOCAB_FILE = Path(__file__).with_name("tiny_vocab.txt")
"""1,000 lower-cased WordPiece tokens (BERT's special tokens first), trained once on the first 2,000
Wikipedia sentences of ``unlabeled/wiki_sentences.txt`` with :func:`train_wordpiece_vocab`."""

_FALLBACK_CORPUS = [
    "a man is playing a guitar on the stage",
    "the quick brown fox jumps over the lazy dog",
    "two women are walking along the beach at sunset",
    "the children played football in the park after school",
    "scientists discovered a new species of frog in the rainforest",
    "the stock market fell sharply on monday morning",
    "she is reading a book about the history of rome",
    "a cat is sleeping on the warm windowsill",
    "the government announced new measures to fight inflation",
    "he cooked pasta with tomatoes and fresh basil",
    "the train to london was delayed by an hour",
    "musicians performed traditional songs at the festival",
    "the company released its annual report yesterday",
    "a dog is running through the tall grass",
    "students are studying for their final exams",
    "heavy rain caused flooding in several towns",
    "the museum opened a new exhibition of modern art",
    "they climbed the mountain despite the cold weather",
    "the doctor examined the patient carefully",
    "a woman is slicing an onion in the kitchen",
]


def training_corpus(limit: int = 2000) -> list[str]:
    """Sentences to train a tiny vocabulary on: Wikipedia sentences from the data folder when present."""
    from st_contrast.data.paths import find_data_file

    path = find_data_file("unlabeled/wiki_sentences.txt", required=False)
    sentences = list(_FALLBACK_CORPUS)
    if path is not None:
        with open(path, encoding="utf-8") as handle:
            for i, line in enumerate(handle):
                if i >= limit:
                    break
                if line.strip():
                    sentences.append(line.strip())
    return sentences


def tiny_vocab() -> list[str]:
    """The fixed vocabulary of the tiny test models (:data:`TINY_VOCAB_FILE`), the same on every machine."""
    return TINY_VOCAB_FILE.read_text(encoding="utf-8").splitlines()


def train_wordpiece_vocab(sentences: Iterable[str], vocab_size: int = 1000) -> list[str]:
    """Train a lower-cased WordPiece vocabulary (BERT special tokens first) on ``sentences``.

    The result can differ between runs on the same sentences (the trainer's merge ties are not ordered):
    for reproducible models pass a fixed vocabulary, as :func:`build_tiny_transformer` does by default.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False
    )
    tokenizer.train_from_iterator(list(sentences), trainer=trainer)
    vocab = tokenizer.get_vocab()
    return [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]


def build_tiny_transformer(
    folder: str | os.PathLike,
    architecture: Literal["bert", "roberta"] = "bert",
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    vocab: Sequence[str] | None = None,
    max_position_embeddings: int = 128,
    seed: int = 0,
    with_mlm_head: bool = False,
) -> Path:
    """Save a randomly initialised tiny BERT (or RoBERTa) and its tokenizer into ``folder``.

    ``vocab`` defaults to :func:`tiny_vocab`; with the same arguments the saved model is identical on every
    machine and run.
    """
    import torch
    from transformers import BertConfig, BertTokenizerFast, RobertaConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if vocab is None:
        vocab = tiny_vocab()
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = _bert_tokenizer(BertTokenizerFast, vocab_file, max_position_embeddings)
    common = dict(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    if architecture == "bert":
        from transformers import BertForMaskedLM, BertModel

        config = BertConfig(max_position_embeddings=max_position_embeddings, **common)
        model = BertForMaskedLM(config) if with_mlm_head else BertModel(config)
    elif architecture == "roberta":
        from transformers import RobertaForMaskedLM, RobertaModel

        # RoBERTa offsets positions by padding_idx + 1; the tokenizer stays WordPiece for offline use.
        config = RobertaConfig(max_position_embeddings=max_position_embeddings + 2, **common)
        model = RobertaForMaskedLM(config) if with_mlm_head else RobertaModel(config)
    else:
        raise ValueError(f"architecture must be 'bert' or 'roberta', got {architecture!r}")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _bert_tokenizer(cls, vocab_file: Path, max_length: int):
    import inspect

    # transformers 5 takes the vocabulary as ``vocab``; 4.x as ``vocab_file``.
    if "vocab" in inspect.signature(cls.__init__).parameters:
        return cls(vocab=str(vocab_file), do_lower_case=True, model_max_length=max_length)
    return cls(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=max_length)


def build_tiny_sentence_transformer(
    folder: str | os.PathLike,
    pooling: str = "cls",
    max_seq_length: int = 32,
    **kwargs,
):
    """A SentenceTransformer over :func:`build_tiny_transformer`, with the given pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    path = build_tiny_transformer(folder, **kwargs)
    transformer = Transformer(str(path), max_seq_length=max_seq_length)
    pooling_module = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)
    return SentenceTransformer(modules=[transformer, pooling_module], device="cpu")
