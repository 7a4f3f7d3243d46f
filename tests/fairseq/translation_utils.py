"""Test helpers for the translation plugins (mCLR, R-Drop, translation_multilingual_contrastive): tiny
synthetic multilingual parallel text (no network, a few KB), a tiny transformer, a collated batch and the
criterions under test.

English sentences are random words from a 24-word vocabulary; German and French are word-by-word
"translations" (``house`` → ``hausde`` / ``housefr``), some written as two subword pieces with the
``@@`` marker so that word reassembly is exercised.
"""

from __future__ import annotations

import os
import random
from argparse import Namespace
from collections import Counter

import torch

EN_WORDS = [f"w{i}" for i in range(24)]
LANGS = ("en", "de", "fr")


def translate(word: str, lang: str) -> str:
    if lang == "en":
        return word
    return f"{word}{lang}"


def as_pieces(word: str) -> list[str]:
    # words with an even index are split into two pieces: "w4de" -> "w4@@ de"
    index = int(word[1:].rstrip("abcdefghijklmnopqrstuvwxyz"))
    if index % 2 == 0 and len(word) > 2:
        return [word[:2] + "@@", word[2:]]
    return [word]


def sentence(words: list[str], lang: str) -> str:
    return " ".join(piece for w in words for piece in as_pieces(translate(w, lang)))


def write_corpus(folder: str, langs=("en", "de", "fr"), sizes=None, seed: int = 0) -> dict[str, list[list[str]]]:
    """Write ``{split}.{lang}`` files, aligned across languages; returns the English word lists per split."""
    sizes = sizes or {"train": 400, "valid": 40, "test": 20}
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    out = {}
    for split, n in sizes.items():
        rows = [[rng.choice(EN_WORDS) for _ in range(rng.randint(3, 8))] for _ in range(n)]
        out[split] = rows
        for lang in langs:
            with open(os.path.join(folder, f"{split}.{lang}"), "w", encoding="utf-8") as handle:
                handle.writelines(sentence(r, lang) + "\n" for r in rows)
    return out


def write_dictionary(folder: str, langs=("en", "de", "fr")) -> str:
    """A fairseq dict.txt with every piece of the corpus (counts are irrelevant)."""
    counts: Counter[str] = Counter()
    for lang in langs:
        for word in EN_WORDS:
            counts.update(as_pieces(translate(word, lang)))
    path = os.path.join(folder, "dict.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{symbol} {count}\n" for symbol, count in counts.most_common())
    return path


def write_muse_dictionary(path: str, src: str, tgt: str) -> None:
    """A MUSE-format word dictionary ``src_word tgt_word`` for the synthetic languages."""
    with open(path, "w", encoding="utf-8") as handle:
        for word in EN_WORDS:
            handle.write(f"{translate(word, src)} {translate(word, tgt)}\n")


def build_tiny_transformer(task, dropout: float = 0.1, seed: int = 0):
    """A 2-layer encoder, 1-layer decoder transformer of width 16 over the task's dictionary, seeded."""
    from fairseq.models.transformer import TransformerModel

    torch.manual_seed(seed)
    args = Namespace(
        arch="transformer",
        encoder_layers=2,
        decoder_layers=1,
        encoder_embed_dim=16,
        decoder_embed_dim=16,
        encoder_ffn_embed_dim=32,
        decoder_ffn_embed_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        share_all_embeddings=True,
        dropout=dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_source_positions=64,
        max_target_positions=64,
    )
    return TransformerModel.build_model(args, task)


def make_pairs(dictionary, batch_size: int = 5, seed: int = 0, tgt_lang: str = "de"):
    """``(sources, targets)``: random token sequences, sources starting with the target-language token and
    both ending in </s>, unpadded."""
    from fairseq_plugins.tasks.translation_multilingual_contrastive import lang_token

    g = torch.Generator().manual_seed(seed)
    eos = dictionary.eos()
    langtok = dictionary.index(lang_token(tgt_lang))
    lo, hi = dictionary.nspecial, dictionary.nspecial + 40
    sources, targets = [], []
    for i in range(batch_size):
        n_src = int(torch.randint(3, 9, (1,), generator=g))
        n_tgt = int(torch.randint(2, 9, (1,), generator=g))
        sources.append(
            torch.cat([torch.tensor([langtok]), torch.randint(lo, hi, (n_src,), generator=g), torch.tensor([eos])])
        )
        targets.append(torch.cat([torch.randint(lo, hi, (n_tgt,), generator=g), torch.tensor([eos])]))
    return sources, targets


def collate_pairs(dictionary, sources, targets, tgt_lang: str = "de") -> dict:
    """A collated batch as LanguagePairDataset makes it: left-padded source with a language token,
    right-padded target ending in </s>, decoder input starting with the target-language token."""
    from fairseq.data import data_utils

    from fairseq_plugins.tasks.translation_multilingual_contrastive import lang_token

    pad, eos = dictionary.pad(), dictionary.eos()
    src_tokens = data_utils.collate_tokens(sources, pad, eos, left_pad=True)
    target = data_utils.collate_tokens(targets, pad, eos, left_pad=False)
    prev = data_utils.collate_tokens(targets, pad, eos, left_pad=False, move_eos_to_beginning=True)
    prev[:, 0] = dictionary.index(lang_token(tgt_lang))
    return {
        "id": torch.arange(len(sources)),
        "nsentences": len(sources),
        "ntokens": int(target.ne(pad).sum()),
        "net_input": {
            "src_tokens": src_tokens,
            "src_lengths": torch.tensor([len(s) for s in sources]),
            "prev_output_tokens": prev,
        },
        "target": target,
    }


def make_sample(dictionary, batch_size: int = 5, seed: int = 0, tgt_lang: str = "de") -> dict:
    """A collated batch of :func:`make_pairs` (see :func:`collate_pairs`)."""
    sources, targets = make_pairs(dictionary, batch_size, seed, tgt_lang)
    return collate_pairs(dictionary, sources, targets, tgt_lang)


def label_smoothed_ce(task, label_smoothing=0.1):
    """fairseq's own ``label_smoothed_cross_entropy``: the reference the criterions are compared with."""
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    return LabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=label_smoothing)


def mclr_criterion(task, **kwargs):
    """``label_smoothed_cross_entropy_with_contrastive`` (lambda 1, temperature 0.1 unless given)."""
    from fairseq_plugins.criterions import LabelSmoothedCrossEntropyWithContrastive

    kwargs.setdefault("contrastive_lambda", 1.0)
    kwargs.setdefault("contrastive_temperature", 0.1)
    return LabelSmoothedCrossEntropyWithContrastive(task, sentence_avg=False, label_smoothing=0.1, **kwargs)


def rdrop_criterion(task, **kwargs):
    """``rdrop_label_smoothed_cross_entropy`` with label smoothing 0.1."""
    from fairseq_plugins.criterions import RDropLabelSmoothedCrossEntropy

    return RDropLabelSmoothedCrossEntropy(task, sentence_avg=False, label_smoothing=0.1, **kwargs)


def grad_norm(params) -> float:
    """Sum of the gradient norms of ``params`` (those without a gradient count 0)."""
    return sum(float(p.grad.norm()) for p in params if p.grad is not None)
