"""The fairseq 0.12 fixes that importing the plugins applies (``fairseq_plugins/_fairseq_fixes.py``)."""

from __future__ import annotations

import torch


def _steps(ids_per_step: list[list[int]], lprobs: torch.Tensor):
    """Run DiverseBeamSearch for len(ids_per_step) steps; the batch shrinks as sentences finish."""
    from fairseq.data import Dictionary
    from fairseq.search import DiverseBeamSearch

    dictionary = Dictionary()
    for word in "abcdefgh":
        dictionary.add_symbol(word)
    search = DiverseBeamSearch(dictionary, num_groups=2, diversity_strength=1.0)
    first = ids_per_step[0]
    outputs = []
    for step, ids in enumerate(ids_per_step):
        rows = [first.index(i) for i in ids]
        bsz, beam = len(ids), lprobs.size(1)
        scores = torch.zeros(bsz, beam, step)
        outputs.append(search.step(step, lprobs[rows], scores, None, torch.tensor(ids)))
    return outputs, search.group_overlap


def test_diverse_beam_search_takes_dataset_ids(plugins):
    """fairseq passes sample ids (here 29 and 7) where the overlap table wants batch rows (0 and 1)."""
    torch.manual_seed(0)
    lprobs = torch.randn(2, 4, 12).log_softmax(-1)
    with_ids, overlap_ids = _steps([[29, 7], [29, 7], [7]], lprobs)  # IndexError without the fix
    with_rows, overlap_rows = _steps([[0, 1], [0, 1], [1]], lprobs)
    for a, b in zip(with_ids, with_rows):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)
    torch.testing.assert_close(overlap_ids, overlap_rows)
    assert overlap_ids.abs().sum() > 0  # the table was filled, so the comparison means something


def test_patch_is_applied_once(plugins):
    from fairseq.search import DiverseBeamSearch

    from fairseq_plugins._fairseq_fixes import patch_diverse_beam_search

    step = DiverseBeamSearch.step
    patch_diverse_beam_search()
    assert DiverseBeamSearch.step is step
