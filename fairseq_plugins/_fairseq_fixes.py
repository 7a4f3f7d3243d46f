"""Fixes for fairseq 0.12 bugs that the documented st-contrast workflows hit, applied when the plugins load.

* **Diverse beam search with more than one batch.** ``SequenceGenerator`` passes the samples' dataset ids
  (``sample["id"]``) to ``search.step`` as ``original_batch_idxs``, but ``DiverseBeamSearch`` indexes its
  per-sentence ``group_overlap`` (one row per sentence of the batch) with them, so ``fairseq-generate
  --diverse-beam-groups G`` fails with ``IndexError: index 29 is out of bounds for dimension 0 with size 16``
  on any batch whose ids are not ``0..bsz-1`` (every batch but the first), e.g. SimCLS's candidate generation
  (``--beam 16 --nbest 16 --diverse-beam-groups 16 --diverse-beam-strength 1.0``). The patched ``step`` maps
  the ids to their row in the batch (the order seen at step 0), which is what the overlap table needs.
* **``--no-repeat-ngram-size`` without the CUDA extension.** ``SequenceGenerator`` hands ``NGramRepeatBlock``
  its whole token buffer (``max_len + 2`` columns, pads after the current step), and the pure-PyTorch path
  (used on the CPU, and on a GPU when ``ngram_repeat_block_cuda`` was not built: fairseq-fixed's wheels lack it)
  takes the n-gram to check from the buffer's END, i.e. from padding: it bans nothing, so repeated n-grams
  come out (fairseq issue 5206). The replacement checks the last ``n - 1`` generated tokens (positions
  ``step - n + 2 .. step``) against every earlier window, as the CUDA kernel does, in a few vectorised
  operations on the tokens' device (the original also looped in Python over every hypothesis and step).
"""

from __future__ import annotations

import torch
from torch import Tensor

_MARK = "_st_contrast_fixed"


def patch_diverse_beam_search() -> None:
    """Make ``fairseq.search.DiverseBeamSearch.step`` index its overlap table by batch row (idempotent)."""
    from fairseq import search

    cls = search.DiverseBeamSearch
    original = cls.step
    if getattr(original, _MARK, False):
        return

    def step(self, step, lprobs, scores, prev_output_tokens=None, original_batch_idxs=None):
        if original_batch_idxs is not None:
            if step == 0:  # the whole batch: remember which id sits in which row
                self._st_contrast_batch_ids = original_batch_idxs.clone()
            ids = self._st_contrast_batch_ids.to(original_batch_idxs.device)
            original_batch_idxs = (original_batch_idxs.unsqueeze(1) == ids.unsqueeze(0)).int().argmax(dim=1)
        return original(self, step, lprobs, scores, prev_output_tokens, original_batch_idxs)

    step.__doc__ = original.__doc__
    setattr(step, _MARK, True)
    cls.step = step


def blocked_ngram_lprobs(tokens: Tensor, lprobs: Tensor, step: int, n: int) -> Tensor:
    """Set ``lprobs[h, t] = -inf`` wherever emitting ``t`` would repeat an n-gram already in hypothesis ``h``.

    ``tokens`` is ``(hypotheses, >= step + 1)`` with the tokens so far in columns ``0..step`` (anything
    after is ignored); ``lprobs`` is ``(hypotheses, vocab)`` and is updated in place and returned. The
    semantics are those of fairseq's CUDA kernel: for every start ``i`` in ``0..step - n + 1`` whose
    ``n - 1`` tokens equal the last ``n - 1`` tokens, the token at ``i + n - 1`` is banned.
    """
    starts = step - n + 2  # earlier windows whose following token is known
    if starts <= 0:
        return lprobs
    history = tokens[:, : step + 1]
    following = history[:, n - 1 : n - 1 + starts]  # the token after each earlier window
    if n == 1:
        match = torch.ones_like(following, dtype=torch.bool)
    else:
        windows = history.unfold(1, n - 1, 1)  # (hypotheses, step - n + 3, n - 1)
        match = (windows[:, :starts] == windows[:, starts : starts + 1]).all(dim=2)
    # -inf where matched, +inf elsewhere; "amin" leaves unmatched entries as they were (no host sync)
    bans = torch.full(match.shape, float("inf"), dtype=lprobs.dtype, device=lprobs.device)
    bans.masked_fill_(match.to(lprobs.device), float("-inf"))
    return lprobs.scatter_reduce_(1, following.to(lprobs.device), bans, reduce="amin", include_self=True)


def patch_ngram_repeat_block() -> None:
    """Make ``NGramRepeatBlock``'s non-extension path block repeats of the generated n-grams (idempotent)."""
    from fairseq.ngram_repeat_block import NGramRepeatBlock

    if getattr(NGramRepeatBlock._no_repeat_ngram, _MARK, False):
        return

    def _no_repeat_ngram(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        return blocked_ngram_lprobs(tokens, lprobs, step, self.no_repeat_ngram_size)

    _no_repeat_ngram.__doc__ = blocked_ngram_lprobs.__doc__
    setattr(_no_repeat_ngram, _MARK, True)
    NGramRepeatBlock._no_repeat_ngram = _no_repeat_ngram


def apply_all() -> None:
    patch_diverse_beam_search()
    patch_ngram_repeat_block()
