"""ROUGE (st_contrast/evaluation/rouge.py): stemming, summary-level ROUGE-Lsum over newline-separated sentences,
corpus averages."""

from __future__ import annotations

import pytest

pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from st_contrast.evaluation.rouge import corpus_rouge, rouge_scores  # noqa: E402


def test_rouge_stems_and_uses_newlines_for_lsum():
    same = rouge_scores("the cats sat .\nthe dog ran .", "the cat sat .\nthe dogs ran .")
    assert same["rouge1"] == pytest.approx(1.0) and same["rougeLsum"] == pytest.approx(1.0)  # stemming
    assert same["mean"] == pytest.approx((same["rouge1"] + same["rouge2"] + same["rougeLsum"]) / 3)
    # Lsum is summary-level (an LCS per reference sentence): with newlines, reordered sentences still
    # match fully; as one line each, the LCS covers only half. ROUGE-1 ignores the newlines.
    lines = rouge_scores("a b c d .\ne f g h .", "e f g h .\na b c d .")
    flat = rouge_scores("a b c d . e f g h .", "e f g h . a b c d .")
    assert lines["rouge1"] == pytest.approx(flat["rouge1"]) == pytest.approx(1.0)
    assert lines["rougeLsum"] == pytest.approx(1.0) and flat["rougeLsum"] == pytest.approx(0.5)
    assert rouge_scores(["x y", "z"], "x y\nz")["rougeLsum"] == pytest.approx(1.0)  # list of sentences
    corpus = corpus_rouge(["a b", "c d"], ["a b", "e f"])
    assert corpus["n"] == 2 and corpus["rouge1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one"):
        corpus_rouge([], [])
