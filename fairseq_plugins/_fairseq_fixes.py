"""Fixes for fairseq 0.12 bugs that the documented st-contrast workflows hit, applied when the plugins load.

* **Diverse beam search with more than one batch.** ``SequenceGenerator`` passes the samples' dataset ids
  (``sample["id"]``) to ``search.step`` as ``original_batch_idxs``, but ``DiverseBeamSearch`` indexes its
  per-sentence ``group_overlap`` (one row per sentence of the batch) with them, so ``fairseq-generate
  --diverse-beam-groups G`` fails with ``IndexError: index 29 is out of bounds for dimension 0 with size 16``
  on any batch whose ids are not ``0..bsz-1`` (every batch but the first), e.g. SimCLS's candidate generation
  (``--beam 16 --nbest 16 --diverse-beam-groups 16 --diverse-beam-strength 1.0``). The patched ``step`` maps
  the ids to their row in the batch (the order seen at step 0), which is what the overlap table needs.
"""

from __future__ import annotations

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


def apply_all() -> None:
    patch_diverse_beam_search()
