"""Several language pairs in one dataset: mixed batches, language tokens, sampling across pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from fairseq.data import FairseqDataset, LanguagePairDataset, data_utils


@dataclass(frozen=True)
class LanguagePair:
    src: str
    tgt: str
    dataset: LanguagePairDataset
    encoder_langtok: int | None  # prepended to the source
    decoder_langtok: int | None  # replaces </s> as the decoder's first input


def temperature_ratios(sizes: Sequence[int], temperature: float) -> list[float]:
    """Size ratios for temperature sampling: pair ``i`` gets ``p_i ∝ (n_i / N)^(1/T)`` of an epoch.

    Returned as ``(p_i · N) / n_i``, the factor by which pair ``i`` is up- or down-sampled, keeping the
    epoch's total size ``N``. ``T = 1`` keeps the natural proportions (all ratios 1); a larger ``T``
    flattens the distribution towards uniform, as in multilingual NMT (Arivazhagan et al., 2019).
    """
    if temperature <= 0:
        raise ValueError(f"sampling temperature must be > 0, got {temperature!r}")
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    if (sizes_arr <= 0).any():
        raise ValueError(f"every language pair needs at least one example, got sizes {list(sizes)}")
    total = sizes_arr.sum()
    probs = (sizes_arr / total) ** (1.0 / temperature)
    probs /= probs.sum()
    return [float(r) for r in probs * total / sizes_arr]


class MultilingualPairDataset(FairseqDataset):
    """Concatenation of :class:`LanguagePair` datasets whose batches mix pairs.

    * The source of each example gets its encoder language token in front; the collated
      ``prev_output_tokens`` start with the example's target-language token instead of ``</s>``.
    * ``size_ratios`` (from :func:`temperature_ratios`) resample each pair every epoch (seeded by
      ``seed`` and the epoch); all ratios 1 is plain concatenation.
    * ``augment(tokens, src_lang, rng)`` (aligned augmentation, training only) rewrites a source before
      its language token is added, so language tokens are never substituted. ``rng`` is seeded by
      ``(seed, epoch, index)``: the same example gets the same substitution when read twice in an epoch.
    """

    def __init__(
        self,
        pairs: Sequence[LanguagePair],
        size_ratios: Sequence[float] | None = None,
        seed: int = 1,
        augment: Callable | None = None,
        max_source_positions: int | None = None,
    ) -> None:
        super().__init__()
        if not pairs:
            raise ValueError("MultilingualPairDataset needs at least one language pair")
        self.pairs = list(pairs)
        self.size_ratios = list(size_ratios) if size_ratios is not None else [1.0] * len(self.pairs)
        if len(self.size_ratios) != len(self.pairs):
            raise ValueError("size_ratios must have one entry per language pair")
        self.seed = seed
        self.augment = augment
        self.max_source_positions = max_source_positions
        self.epoch = 1
        self.substitution_counts = [0, 0]  # substituted, eligible words (this process)
        self._build_index()

    # -- sampling -------------------------------------------------------------------------------
    @property
    def resamples(self) -> bool:
        return any(abs(r - 1.0) > 1e-9 for r in self.size_ratios)

    def _build_index(self) -> None:
        pair_ids, inner_ids = [], []
        for p, (pair, ratio) in enumerate(zip(self.pairs, self.size_ratios)):
            n = len(pair.dataset)
            if abs(ratio - 1.0) <= 1e-9:
                chosen = np.arange(n)
            else:
                with data_utils.numpy_seed(self.seed, self.epoch, p):
                    size = max(1, int(round(n * ratio)))
                    chosen = np.random.choice(n, size, replace=size > n)
            pair_ids.append(np.full(len(chosen), p, dtype=np.int64))
            inner_ids.append(chosen.astype(np.int64))
        self.pair_ids = np.concatenate(pair_ids)
        self.inner_ids = np.concatenate(inner_ids)
        extra = np.array([1 if pair.encoder_langtok is not None else 0 for pair in self.pairs], dtype=np.int64)
        self.src_sizes = (
            np.array(
                [self.pairs[p].dataset.src_sizes[i] for p, i in zip(self.pair_ids, self.inner_ids)], dtype=np.int64
            )
            + extra[self.pair_ids]
        )
        self.tgt_sizes = np.array(
            [self.pairs[p].dataset.tgt_sizes[i] for p, i in zip(self.pair_ids, self.inner_ids)], dtype=np.int64
        )

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            if self.resamples:
                self._build_index()

    @property
    def can_reuse_epoch_itr_across_epochs(self) -> bool:
        return not self.resamples

    # -- items ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pair_ids)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[int(self.pair_ids[index])]
        item = dict(pair.dataset[int(self.inner_ids[index])])
        source = item["source"]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            augmented, substituted, eligible = self.augment(source, pair.src, rng)
            self.substitution_counts[0] += substituted
            self.substitution_counts[1] += eligible
            limit = self.max_source_positions
            if limit is None or len(augmented) + (pair.encoder_langtok is not None) <= limit:
                source = augmented
        if pair.encoder_langtok is not None:
            source = torch.cat([source.new_tensor([pair.encoder_langtok]), source])
        item["source"] = source
        item["id"] = index
        return item

    def collater(self, samples: list[dict], pad_to_length=None) -> dict:
        if len(samples) == 0:
            return {}
        batch = self.pairs[0].dataset.collater(samples, pad_to_length=pad_to_length)
        net_input = batch.get("net_input", {})
        if "prev_output_tokens" in net_input:
            langtoks = [self.pairs[int(self.pair_ids[i])].decoder_langtok for i in batch["id"].tolist()]
            if any(tok is not None for tok in langtoks):
                prev = net_input["prev_output_tokens"]
                column = torch.tensor(
                    [prev[r, 0] if t is None else t for r, t in enumerate(langtoks)], dtype=prev.dtype
                )
                prev[:, 0] = column
        return batch

    # -- sizes and ordering ---------------------------------------------------------------------
    def num_tokens(self, index: int) -> int:
        return max(int(self.src_sizes[index]), int(self.tgt_sizes[index]))

    def num_tokens_vec(self, indices):
        return np.maximum(self.src_sizes[indices], self.tgt_sizes[indices])

    def size(self, index: int) -> tuple[int, int]:
        return int(self.src_sizes[index]), int(self.tgt_sizes[index])

    @property
    def sizes(self):
        return np.vstack((self.src_sizes, self.tgt_sizes)).T

    def ordered_indices(self):
        shuffle = getattr(self.pairs[0].dataset, "shuffle", True)
        if shuffle:
            indices = np.random.permutation(len(self)).astype(np.int64)
        else:
            indices = np.arange(len(self), dtype=np.int64)
        indices = indices[np.argsort(self.tgt_sizes[indices], kind="mergesort")]
        return indices[np.argsort(self.src_sizes[indices], kind="mergesort")]

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        """fairseq's batching, plus the examples that fairseq-fixed 0.12.3.1 drops.

        Its compiled ``batch_by_size_vec`` silently drops a final batch smaller than
        ``required_batch_size_multiple`` (8 by default), so ``fairseq-generate`` would skip up to 7
        sentences of a test set. They are put back here as extra batches.
        """
        batches = list(super().batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple))
        used = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        missing = np.asarray(indices, dtype=np.int64)[~np.isin(indices, used)]
        if len(missing):
            batches += list(super().batch_by_size(missing, max_tokens, max_sentences, 1))
        return batches

    def filter_indices_by_size(self, indices, max_sizes):
        return data_utils.filter_paired_dataset_indices_by_size(self.src_sizes, self.tgt_sizes, indices, max_sizes)

    @property
    def supports_prefetch(self) -> bool:
        return False

    def pair_of(self, index: int) -> tuple[str, str]:
        pair = self.pairs[int(self.pair_ids[index])]
        return pair.src, pair.tgt
