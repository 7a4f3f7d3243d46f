"""MultilingualPairDataset (data/multilingual_pair_dataset.py): temperature sampling of the language pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_temperature_ratios():
    from fairseq_plugins.data.multilingual_pair_dataset import temperature_ratios

    assert temperature_ratios([100, 300], 1.0) == pytest.approx([1.0, 1.0])
    ratios = temperature_ratios([100, 300], 1e6)  # ~uniform: each pair gets half of the 400 examples
    assert [r * n for r, n in zip(ratios, [100, 300])] == pytest.approx([200, 200], rel=1e-3)
    with pytest.raises(ValueError):
        temperature_ratios([100, 0], 2.0)


def test_resampling_follows_the_temperature_and_changes_each_epoch(dictionary):
    from fairseq.data import LanguagePairDataset

    from fairseq_plugins.data.multilingual_pair_dataset import (
        LanguagePair,
        MultilingualPairDataset,
        temperature_ratios,
    )

    def pair_dataset(n: int) -> LanguagePairDataset:
        tokens = [torch.tensor([5, 6, dictionary.eos()]) for _ in range(n)]
        return LanguagePairDataset(tokens, np.full(n, 3), dictionary, tokens, np.full(n, 3), dictionary)

    sizes = [100, 900]
    pairs = [LanguagePair("en", "de", pair_dataset(100), 7, 7), LanguagePair("en", "fr", pair_dataset(900), 8, 8)]
    ds = MultilingualPairDataset(pairs, size_ratios=temperature_ratios(sizes, 5.0), seed=1)
    probs = np.array(sizes, dtype=float) ** (1 / 5.0)
    probs /= probs.sum()
    assert len(ds) == pytest.approx(1000, abs=1)
    np.testing.assert_allclose(np.bincount(ds.pair_ids) / len(ds), probs, atol=2e-3)
    assert not ds.can_reuse_epoch_itr_across_epochs
    first = ds.inner_ids.copy()
    ds.set_epoch(2)
    assert not np.array_equal(first, ds.inner_ids)
    batch = ds.collater([ds[i] for i in range(0, len(ds), 50)])
    rows = batch["net_input"]["prev_output_tokens"][:, 0].tolist()
    assert rows == [7 if ds.pair_ids[i] == 0 else 8 for i in batch["id"].tolist()]
