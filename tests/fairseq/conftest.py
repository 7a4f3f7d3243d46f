"""Fixtures for the fairseq plugin tests: a tiny dictionary, task and transformer, all in memory."""

from __future__ import annotations

import os
from argparse import Namespace

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest.importorskip("fairseq", reason="fairseq is not installed (pip install fairseq-fixed==0.12.3.1)")

from .tiny_data import EN_WORDS, as_pieces, translate  # noqa: E402

LANGS = ("en", "de", "fr")


@pytest.fixture(scope="session")
def plugins():
    import fairseq_plugins

    return fairseq_plugins


@pytest.fixture(scope="session")
def dictionary(plugins):
    from fairseq.data import Dictionary

    from fairseq_plugins.tasks.translation_multilingual_contrastive import lang_token

    d = Dictionary()
    for lang in LANGS:
        for word in EN_WORDS:
            for piece in as_pieces(translate(word, lang)):
                d.add_symbol(piece)
    d.finalize(padding_factor=8)
    for lang in LANGS:
        d.add_symbol(lang_token(lang))
    return d


@pytest.fixture(scope="session")
def task(dictionary):
    from fairseq.tasks.translation import TranslationConfig, TranslationTask

    return TranslationTask(TranslationConfig(), dictionary, dictionary)


def build_tiny_transformer(task, dropout: float = 0.1, seed: int = 0):
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


@pytest.fixture
def make_model(task):
    return lambda dropout=0.1, seed=0: build_tiny_transformer(task, dropout=dropout, seed=seed)


def make_sample(dictionary, batch_size: int = 5, seed: int = 0, tgt_lang: str = "de") -> dict:
    """A collated batch as LanguagePairDataset makes it: left-padded source with a language token,
    right-padded target ending in </s>, decoder input starting with the target-language token."""
    from fairseq.data import data_utils

    from fairseq_plugins.tasks.translation_multilingual_contrastive import lang_token

    g = torch.Generator().manual_seed(seed)
    pad, eos = dictionary.pad(), dictionary.eos()
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
    src_tokens = data_utils.collate_tokens(sources, pad, eos, left_pad=True)
    target = data_utils.collate_tokens(targets, pad, eos, left_pad=False)
    prev = data_utils.collate_tokens(targets, pad, eos, left_pad=False, move_eos_to_beginning=True)
    prev[:, 0] = langtok
    return {
        "id": torch.arange(batch_size),
        "nsentences": batch_size,
        "ntokens": int(target.ne(pad).sum()),
        "net_input": {
            "src_tokens": src_tokens,
            "src_lengths": torch.tensor([len(s) for s in sources]),
            "prev_output_tokens": prev,
        },
        "target": target,
    }
