"""ROUGE-1, ROUGE-2 and ROUGE-Lsum F1 as summarisation papers report them, with Google's ``rouge-score``.

Summaries are strings whose sentences are separated by newlines: ROUGE-Lsum (the "summary-level" LCS
that ``ROUGE-1.5.5 -m`` reports as ROUGE-L on CNN/DM) splits on newlines, ROUGE-1/2 ignore them. Words
are Porter-stemmed (``use_stemmer=True``, ROUGE-1.5.5's ``-m``) and lower-cased by rouge-score's own
tokenizer, which also drops non-alphanumeric characters. SimCLS (Liu & Liu, ACL 2021) scores and
sorts its candidates with exactly these three numbers; :func:`rouge_mean` is their average.

Needs ``pip install rouge-score`` (imported on first use).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

ROUGE_TYPES: tuple[str, str, str] = ("rouge1", "rouge2", "rougeLsum")


@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool = True) -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("ROUGE needs the rouge-score package: pip install rouge-score") from error
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)


def sentence_lines(text: str | Sequence[str]) -> str:
    """A summary as newline-separated sentences: a list of sentences is joined, a string kept as is."""
    if isinstance(text, str):
        return text
    return "\n".join(str(sentence) for sentence in text)


def rouge_scores(reference: str | Sequence[str], candidate: str | Sequence[str], use_stemmer: bool = True) -> dict:
    """F1 of ROUGE-1, ROUGE-2 and ROUGE-Lsum of one candidate against one reference, in ``[0, 1]``.

    Returns ``{"rouge1": .., "rouge2": .., "rougeLsum": .., "mean": ..}`` where ``mean`` is their average
    (SimCLS's candidate score).
    """
    scores = _scorer(use_stemmer).score(sentence_lines(reference), sentence_lines(candidate))
    out = {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}
    out["mean"] = rouge_mean(out)
    return out


def rouge_mean(scores: dict) -> float:
    """Mean of ROUGE-1, ROUGE-2 and ROUGE-Lsum from a dict that has the three keys."""
    return (scores["rouge1"] + scores["rouge2"] + scores["rougeLsum"]) / 3.0


def corpus_rouge(
    references: Iterable[str | Sequence[str]], candidates: Iterable[str | Sequence[str]], use_stemmer: bool = True
) -> dict:
    """Average per-document F1 (the usual "ROUGE of a system") over aligned references and candidates.

    Returns the three averages and their mean, in ``[0, 1]``, plus ``n``, the number of documents.
    """
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    n = 0
    for reference, candidate in zip(references, candidates, strict=True):
        scores = rouge_scores(reference, candidate, use_stemmer)
        for name in ROUGE_TYPES:
            totals[name] += scores[name]
        n += 1
    if n == 0:
        raise ValueError("corpus_rouge needs at least one (reference, candidate) pair")
    out: dict = {name: value / n for name, value in totals.items()}
    out["mean"] = rouge_mean(out)
    out["n"] = n
    return out
