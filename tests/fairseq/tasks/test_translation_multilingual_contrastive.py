"""translation_multilingual_contrastive on binarised tiny data: language tokens, mixed batches, sampling,
zero-shot generation, errors, batching."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.fairseq.translation_utils import (
    build_tiny_transformer,
    write_corpus,
    write_dictionary,
    write_muse_dictionary,
)

# ---------------------------------------------------------------------------------------------
# The task on binarised tiny data (binarised in-process: no subprocess)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory, plugins):
    from fairseq import options
    from fairseq_cli import preprocess

    root = tmp_path_factory.mktemp("multi")
    raw, out = str(root / "raw"), str(root / "bin")
    write_corpus(raw, sizes={"train": 60, "valid": 10, "test": 6})
    write_dictionary(raw)
    for src, tgt in (("en", "de"), ("en", "fr"), ("de", "fr")):
        args = options.get_preprocessing_parser().parse_args(
            [
                "--source-lang",
                src,
                "--target-lang",
                tgt,
                "--destdir",
                out,
                "--workers",
                "1",
                "--trainpref",
                f"{raw}/train",
                "--validpref",
                f"{raw}/valid",
                "--testpref",
                f"{raw}/test",
                "--srcdict",
                f"{raw}/dict.txt",
                "--tgtdict",
                f"{raw}/dict.txt",
            ]  # fmt: skip
        )
        preprocess.main(args)
    write_muse_dictionary(os.path.join(raw, "en-de.txt"), "en", "de")
    write_muse_dictionary(os.path.join(raw, "de-en.txt"), "de", "en")
    return raw, out


def _setup(data, **overrides):
    from fairseq_plugins.tasks.translation_multilingual_contrastive import (
        TranslationMultilingualContrastiveConfig,
        TranslationMultilingualContrastiveTask,
    )

    cfg = TranslationMultilingualContrastiveConfig(data=data, lang_pairs="en-de,de-en,en-fr,fr-en", seed=1)
    cfg.dataset_impl = "mmap"
    cfg.train_subset = "train"
    cfg.required_seq_len_multiple = 1
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return TranslationMultilingualContrastiveTask.setup_task(cfg)


def test_training_batches_mix_directions_with_language_tokens(data_bin):
    raw, data = data_bin
    task = _setup(data, ras_dict=f"{raw}/en-de.txt,{raw}/de-en.txt", ras_prob=0.5)
    d = task.target_dictionary
    assert {lang: d[i] for lang, i in task.lang_token_ids.items()} == {
        "de": "LANG_TOK_DE",
        "en": "LANG_TOK_EN",
        "fr": "LANG_TOK_FR",
    }
    task.load_dataset("train")
    train = task.datasets["train"]
    assert len(train) == 4 * 60 and train.augment is not None
    batch = train.collater([train[i] for i in range(len(train))])
    for row, index in enumerate(batch["id"].tolist()):
        src, tgt = train.pair_of(index)
        expected = task.lang_token_ids[tgt]
        tokens = batch["net_input"]["src_tokens"][row]
        tokens = tokens[tokens.ne(d.pad())]
        assert tokens[0] == expected  # target-language token in front of the source
        assert batch["net_input"]["prev_output_tokens"][row, 0] == expected  # and at the decoder start
        assert batch["target"][row, 0] not in task.lang_token_ids.values()
    substituted, eligible = train.substitution_counts
    assert eligible > 0 and 0.4 < substituted / eligible < 0.6

    task.load_dataset("valid")
    assert task.datasets["valid"].augment is None  # augmentation at training only
    assert len(task.datasets["valid"]) == 4 * 10


def test_encoder_langtok_src_and_sampling_temperature(data_bin):
    _, data = data_bin
    task = _setup(data, encoder_langtok="src", lang_pairs="en-de,en-fr", sampling_temperature=5.0)
    task.load_dataset("train")
    train = task.datasets["train"]
    item = train[0]
    src, _ = train.pair_of(0)
    assert item["source"][0] == task.lang_token_ids[src]
    assert train.size_ratios == pytest.approx([1.0, 1.0])  # equal pair sizes: nothing to rebalance
    assert train.can_reuse_epoch_itr_across_epochs


def test_zero_shot_generation_forces_the_target_language(data_bin, task, make_model):
    _, data = data_bin
    gen_task = _setup(data, source_lang="de", target_lang="fr")
    gen_task.load_dataset("test")
    test = gen_task.datasets["test"]
    assert len(test) == 6 and {test.pair_of(i) for i in range(len(test))} == {("de", "fr")}

    from argparse import Namespace

    model = build_tiny_transformer(gen_task, dropout=0.0)
    model.eval()
    generator = gen_task.build_generator([model], Namespace(beam=2, max_len_b=5))
    sample = test.collater([test[i] for i in range(len(test))])
    seen = []
    original = generator._generate

    def spy(sample, prefix_tokens=None, constraints=None, bos_token=None):
        seen.append(bos_token)
        return original(sample, prefix_tokens=prefix_tokens, constraints=constraints, bos_token=bos_token)

    generator._generate = spy
    hypos = gen_task.inference_step(generator, [model], sample)
    assert seen == [gen_task.lang_token_ids["fr"]]
    assert len(hypos) == 6
    inference = gen_task.build_dataset_for_inference([torch.tensor([5, 6, 2])], [3])
    assert inference[0]["source"].tolist() == [gen_task.lang_token_ids["fr"], 5, 6, 2]


def test_setup_errors_are_explicit(data_bin, tmp_path):
    _, data = data_bin
    with pytest.raises(ValueError, match="--lang-pairs"):
        _setup(data, lang_pairs=None)
    with pytest.raises(ValueError, match="SRC-TGT"):
        _setup(data, lang_pairs="en-de,ende")
    with pytest.raises(ValueError, match="language token"):
        _setup(data, source_lang="de", target_lang="cs")
    with pytest.raises(ValueError, match="both --source-lang and --target-lang"):
        _setup(data, source_lang="de")
    with pytest.raises(ValueError, match="ras-prob"):
        _setup(data, ras_prob=1.5)
    with pytest.raises(FileNotFoundError, match="dictionary"):
        _setup(str(tmp_path))


def test_batching_keeps_every_example(data_bin):
    """fairseq-fixed 0.12.3.1 drops a last batch smaller than --required-batch-size-multiple; we must not."""
    _, data = data_bin
    task = _setup(data, source_lang="de", target_lang="fr")
    task.load_dataset("valid")  # 10 examples
    ds = task.datasets["valid"]
    for max_tokens, max_sentences, multiple in ((None, 8, 8), (None, 16, 8), (40, None, 8), (None, 3, 1)):
        batches = ds.batch_by_size(ds.ordered_indices(), max_tokens, max_sentences, multiple)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(ds)))
