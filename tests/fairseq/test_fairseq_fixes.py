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


def _naive_bans(tokens: list[list[int]], step: int, n: int) -> list[set[int]]:
    """From the definition: the tokens that would complete an n-gram already in tokens[h][: step + 1]."""
    bans = []
    for row in tokens:
        seen = row[: step + 1]
        last = seen[len(seen) - (n - 1) :] if n > 1 else []
        bans.append({seen[i + n - 1] for i in range(len(seen) - n + 1) if seen[i : i + n - 1] == last})
    return bans


def test_ngram_blocking_matches_the_definition(plugins):
    from fairseq_plugins._fairseq_fixes import blocked_ngram_lprobs

    generator = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 4):
        for step in range(0, 12):
            # a small vocabulary makes repeats common; the buffer is padded (1) after the step, as fairseq's is
            tokens = torch.randint(4, 8, (6, 14), generator=generator)
            tokens[:, step + 1 :] = 1
            lprobs = torch.randn(6, 10, generator=generator)
            out = blocked_ngram_lprobs(tokens, lprobs.clone(), step, n)
            expected = _naive_bans(tokens.tolist(), step, n)
            for h in range(6):
                banned = set(torch.nonzero(out[h].isinf()).flatten().tolist())
                assert banned == expected[h], (n, step, h)
                kept = [t for t in range(10) if t not in banned]
                torch.testing.assert_close(out[h, kept], lprobs[h, kept])


def test_no_repeat_ngram_blocks_on_the_generators_padded_buffer(plugins):
    """fairseq's own CPU path checked the buffer's padded end and banned nothing (issue 5206 upstream)."""
    from fairseq.ngram_repeat_block import NGramRepeatBlock

    # hypothesis "5 6 7 5 6" at step 5 (column 0 is BOS): emitting 7 would repeat the trigram "5 6 7"
    tokens = torch.full((2, 12), 1)
    tokens[:, :6] = torch.tensor([[2, 5, 6, 7, 5, 6], [2, 5, 6, 7, 6, 5]])
    lprobs = torch.zeros(2, 10)
    blocker = NGramRepeatBlock(3, use_extension=False)
    out = blocker(tokens, lprobs, bsz=1, beam_size=2, step=5)
    assert out[0, 7] == float("-inf")
    assert torch.isfinite(out[1]).all()  # "6 5" was never followed by anything
    assert torch.isfinite(out[0, [t for t in range(10) if t != 7]]).all()


def test_ngram_patch_is_applied_once(plugins):
    from fairseq.ngram_repeat_block import NGramRepeatBlock

    from fairseq_plugins._fairseq_fixes import patch_ngram_repeat_block

    method = NGramRepeatBlock._no_repeat_ngram
    patch_ngram_repeat_block()
    assert NGramRepeatBlock._no_repeat_ngram is method


def _has_repeated_bigram(tokens: list[int]) -> bool:
    pairs = list(zip(tokens, tokens[1:]))
    return len(set(pairs)) < len(pairs)


def test_sequence_generator_blocks_repeated_ngrams_on_the_cpu(make_model, task, dictionary):
    """End to end through fairseq's SequenceGenerator (what fairseq-generate runs): an untrained model loops,
    and with no_repeat_ngram_size=2 no hypothesis repeats a bigram."""
    from fairseq.sequence_generator import SequenceGenerator

    from tests.fairseq.translation_utils import make_sample

    model = make_model(dropout=0.0, seed=1).eval()
    sample = make_sample(dictionary, batch_size=6, seed=2)
    outputs = {}
    for size in (0, 2):
        generator = SequenceGenerator([model], dictionary, beam_size=3, min_len=12, max_len_b=16,
                                      no_repeat_ngram_size=size)  # fmt: skip
        with torch.no_grad():
            hypotheses = generator.generate([model], sample)
        outputs[size] = [h["tokens"].tolist() for beams in hypotheses for h in beams]
    assert any(_has_repeated_bigram(t) for t in outputs[0]), "expected the untrained model to loop"
    assert not any(_has_repeated_bigram(t) for t in outputs[2]), outputs[2]
