"""STS Benchmark: the loader for the original release, Spearman evaluation and a Trainer evaluator.

The original STS-B release (Cer et al. 2017) ships ``sts-{train,dev,test}.csv``: tab-separated rows of
genre, file, year, id, score (0-5), sentence 1, sentence 2, and on some rows two extra trailing source
columns. The text is not CSV-quoted (sentences contain unbalanced ``"``), so rows are split on tabs
only and columns 4-6 (0-based) are read by position.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

try:  # sentence-transformers >= 6
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
except ImportError:  # pragma: no cover - sentence-transformers 5.x
    from sentence_transformers.evaluation import SentenceEvaluator as BaseEvaluator

from st_contrast.data.paths import data_dirs, find_data_file
from st_contrast.data.reading import DataFormatError, check_number, iter_lines, log_skipped

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

STSSplit = Literal["train", "dev", "test"]
STS_SPLITS: tuple[str, ...] = ("train", "dev", "test")
STS_RELATIVE_DIR = "sts/stsbenchmark"
ENV_DOWNLOAD = "ST_CONTRAST_DOWNLOAD"

#: The STS Benchmark's score scale (0: unrelated, 5: equivalent).
STSB_SCALE: tuple[float, float] = (0.0, 5.0)

#: Number of pairs in each split of the original release.
STS_SPLIT_SIZES: dict[str, int] = {"train": 5749, "dev": 1500, "test": 1379}


def sts_relative_path(split: str) -> str:
    """The path of a split's file under a data folder, e.g. ``sts/stsbenchmark/sts-test.csv``."""
    if split not in STS_SPLITS:
        raise ValueError(f"split must be one of {', '.join(STS_SPLITS)}, got {split!r}.")
    return f"{STS_RELATIVE_DIR}/sts-{split}.csv"


def read_sts_file(
    path: str | os.PathLike, scale: tuple[float, float] | None = STSB_SCALE, encoding: str = "utf-8"
) -> list[tuple[str, str, float]]:
    """Read one STS-B file of the original release into ``(sentence1, sentence2, score)`` triples.

    Rows are split on tabs only (no CSV quoting: STS-B has unbalanced quotes); the score is column 4 and
    the sentences are columns 5 and 6; any trailing columns (source notes on some rows) are ignored.
    Blank lines are skipped (how many is logged). The file is read with :mod:`st_contrast.data.reading`'s
    rules (strict UTF-8, a BOM dropped, ``\\r\\n`` line ends).

    Args:
        path: the ``sts-*.csv`` file.
        scale: the ``(lowest, highest)`` score allowed (STS-B's 0-5); ``None`` accepts any finite score.
        encoding: the file's encoding (UTF-8 by default).

    Returns:
        One ``(sentence1, sentence2, score)`` per row, in file order; scores are on the 0-5 scale.

    Raises:
        DataFormatError: (a ``ValueError``; the message names the file and line) a row with fewer than 7
            columns, a score that is not a finite number or is off the scale, an empty sentence, a byte that is
            not valid in ``encoding``, or a file without any row.
    """
    low, high = scale if scale is not None else (None, None)
    pairs: list[tuple[str, str, float]] = []
    blank = 0
    for line_number, line in iter_lines(path, encoding):
        if not line.strip():
            blank += 1
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise DataFormatError(
                path,
                "expected at least 7 tab-separated columns (genre, file, year, id, score, sentence1, sentence2), "
                f"got {len(fields)}.",
                line_number,
            )
        score = check_number(fields[4].strip(), path, "the score column", line_number, low=low, high=high)
        sentence1, sentence2 = fields[5].strip(), fields[6].strip()
        if not sentence1 or not sentence2:
            raise DataFormatError(path, "a sentence is empty; expected two sentences (columns 6 and 7).", line_number)
        pairs.append((sentence1, sentence2, score))
    if not pairs:
        raise DataFormatError(
            path, f"no sentence pair ({blank} blank lines); expected tab-separated STS-B rows (genre, ..., s2)"
        )
    log_skipped(logger, path, len(pairs), "sentence pairs", {"blank lines": blank})
    return pairs


def _download_requested(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in {"1", "true", "yes"}


def load_sts_benchmark(
    split: STSSplit = "test",
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
) -> list[tuple[str, str, float]]:
    """Load a split of the STS Benchmark (original release) as ``(sentence1, sentence2, score)`` triples.

    The file ``sts/stsbenchmark/sts-{split}.csv`` is looked up in ``data_dir``, then ``$ST_CONTRAST_DATA``,
    then the cache folder (``<cache>/data``, see :func:`st_contrast.data.cache_dir`). If it is in none of
    them and a download is requested, the public release is downloaded into the cache first (see
    :func:`st_contrast.data.download_sts_benchmark`).

    Args:
        split: ``"train"`` (5,749 pairs), ``"dev"`` (1,500) or ``"test"`` (1,379).
        data_dir: a data folder to search first.
        download: download the release into the cache when the file is not found. ``None`` (default)
            reads the ``ST_CONTRAST_DOWNLOAD`` environment variable (``1`` means yes).

    Returns:
        The pairs in file order, with gold scores on the 0-5 scale.

    Raises:
        ValueError: an unknown split.
        FileNotFoundError: the file is nowhere and no download was requested; the message lists the
            folders searched and how to get the data.
    """
    relative = sts_relative_path(split)
    path = find_data_file(relative, data_dir, required=False)
    if path is None:
        if _download_requested(download):
            from st_contrast.data.download import download_sts_benchmark

            download_sts_benchmark()
            path = find_data_file(relative, data_dir, required=False)
        if path is None:
            searched = ", ".join(str(folder) for folder in data_dirs(data_dir))
            raise FileNotFoundError(
                f"Could not find the STS Benchmark file {relative!r}; searched: {searched}. Pass data_dir= a "
                f"folder holding {relative}, set ST_CONTRAST_DATA, or download the public release into the "
                f"cache with load_sts_benchmark(..., download=True), {ENV_DOWNLOAD}=1, or "
                "st_contrast.data.download_sts_benchmark()."
            )
    return read_sts_file(path)


def _check_pairs(pairs: Sequence[tuple[str, str, float]]) -> None:
    if len(pairs) < 2:
        raise ValueError(f"STS evaluation needs at least 2 sentence pairs, got {len(pairs)}.")


def sts_spearman(
    model: SentenceTransformer,
    pairs: Sequence[tuple[str, str, float]],
    batch_size: int = 64,
    show_progress_bar: bool = False,
) -> float:
    """Spearman correlation between the cosine similarity of the two embeddings and the gold score (0-1 scale).

    Each distinct sentence is encoded once (STS-B repeats sentences across pairs), in inference mode. The value
    is on sentence-transformers' scale (``EmbeddingSimilarityEvaluator``'s ``spearman_cosine``, -1 to 1); papers'
    tables and ``st-contrast evaluate`` print it x100.

    Args:
        model: the SentenceTransformer to evaluate.
        pairs: ``(sentence1, sentence2, score)`` triples, e.g. from :func:`load_sts_benchmark`.
        batch_size: encoding batch size.
        show_progress_bar: show the encoding progress bar.

    Returns:
        Spearman's rho (multiply by 100 for the scale SimCSE and most papers report).
    """
    _check_pairs(pairs)
    cosine = encode_pairs(model, pairs, batch_size, show_progress_bar)
    return _spearman([score for _, _, score in pairs], cosine)


def encode_pairs(
    model: SentenceTransformer,
    pairs: Sequence[tuple[str, str, float]],
    batch_size: int = 64,
    show_progress_bar: bool = False,
) -> list[float]:
    """Cosine similarity of each pair's two embeddings; every distinct sentence is encoded once."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    index: dict[str, int] = {}
    for sentence1, sentence2, _ in pairs:
        index.setdefault(sentence1, len(index))
        index.setdefault(sentence2, len(index))
    embeddings = model.encode(
        list(index),
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        convert_to_tensor=True,
        normalize_embeddings=True,
    )
    embeddings = embeddings.float()
    first = torch.tensor([index[s1] for s1, _, _ in pairs], device=embeddings.device)
    second = torch.tensor([index[s2] for _, s2, _ in pairs], device=embeddings.device)
    return (embeddings[first] * embeddings[second]).sum(dim=-1).cpu().tolist()


def report(line: str, to_stderr: bool) -> None:
    """One line per evaluation: on stderr (above any progress bar) when ``to_stderr``, else logged at INFO."""
    if to_stderr:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
    else:
        logger.info(line)


def _spearman(gold: Sequence[float], predicted: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    rho = float(spearmanr(gold, predicted).statistic)
    if rho != rho:
        logger.warning("Spearman correlation is undefined (constant predictions or scores); returning NaN.")
    return rho


def _pearson(gold: Sequence[float], predicted: Sequence[float]) -> float:
    from scipy.stats import pearsonr

    return float(pearsonr(gold, predicted).statistic)


def evaluate_sts(
    model: SentenceTransformer,
    split: STSSplit = "test",
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    download: bool | None = None,
    show_progress_bar: bool = False,
) -> float:
    """Spearman's rho (0-1 scale) of cosine similarity vs gold score on a split of the STS Benchmark.

    This is the "STS-B" column of SimCSE's tables divided by 100 (the ``all`` setting: one correlation over the
    whole split).

    Args:
        model: the SentenceTransformer to evaluate.
        split: ``"train"``, ``"dev"`` or ``"test"``.
        data_dir: a data folder to search first (see :func:`load_sts_benchmark`).
        batch_size: encoding batch size.
        download: see :func:`load_sts_benchmark`.
        show_progress_bar: show the encoding progress bar.

    Returns:
        Spearman's rho (``100 *`` it is the papers' number).

    Example:
        ::

            from sentence_transformers import SentenceTransformer
            from st_contrast.evaluation import evaluate_sts

            print(f"{100 * evaluate_sts(SentenceTransformer('path/to/model'), split='dev'):.2f}")
    """
    pairs = load_sts_benchmark(split, data_dir=data_dir, download=download)
    return sts_spearman(model, pairs, batch_size=batch_size, show_progress_bar=show_progress_bar)


class STSEvaluator(BaseEvaluator):
    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        scores: Sequence[float],
        batch_size: int = 64,
        name: str = "",
        show_progress_bar: bool = False,
    ) -> None:
        """A sentence-transformers evaluator: Spearman and Pearson correlation of cosine similarity vs gold scores.

        Usable as ``evaluator=`` of ``SentenceTransformerTrainer`` or ``model.fit``; with
        ``metric_for_best_model`` set to its :attr:`primary_metric` (e.g. ``eval_sts-dev_spearman_cosine``)
        the Trainer keeps the checkpoint that is best on STS-B dev, as SimCSE does. Unlike
        sentence-transformers' ``EmbeddingSimilarityEvaluator``, it encodes each distinct sentence once; its
        metrics have that evaluator's key names and 0-1 scale (``sts-dev_spearman_cosine`` means the same in
        both; multiply by 100 for SimCSE's tables).

        Args:
            sentences1: first sentence of each pair.
            sentences2: second sentence of each pair.
            scores: gold similarity of each pair (any scale; only ranks matter for Spearman).
            batch_size: encoding batch size.
            name: prefix of the metric names (e.g. ``"sts-dev"``).
            show_progress_bar: show the encoding progress bar.

        Returns (when called):
            ``{"<name>_spearman_cosine": ..., "<name>_pearson_cosine": ...}`` on the 0-1 scale; the primary
            metric is the Spearman one.

        Example:
            ::

                from st_contrast.evaluation import STSEvaluator

                dev_evaluator = STSEvaluator.from_sts_benchmark("dev")
                trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss,
                                                     evaluator=dev_evaluator)
        """
        super().__init__()
        if not len(sentences1) == len(sentences2) == len(scores):
            raise ValueError(
                "sentences1, sentences2 and scores must have the same length, got "
                f"{len(sentences1)}, {len(sentences2)} and {len(scores)}."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.pairs = [(str(a), str(b), float(s)) for a, b, s in zip(sentences1, sentences2, scores)]
        _check_pairs(self.pairs)
        self.batch_size = batch_size
        self.name = name
        self.show_progress_bar = show_progress_bar
        self.greater_is_better = True
        self.primary_metric = "spearman_cosine"

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str, float]], **kwargs: Any) -> STSEvaluator:
        """Build from ``(sentence1, sentence2, score)`` triples; ``kwargs`` go to ``__init__``."""
        return cls([p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs], **kwargs)

    @classmethod
    def from_sts_benchmark(
        cls,
        split: STSSplit = "dev",
        data_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        **kwargs: Any,
    ) -> STSEvaluator:
        """An evaluator on a split of the STS Benchmark, named ``sts-<split>`` unless ``name`` is given."""
        kwargs.setdefault("name", f"sts-{split}")
        return cls.from_pairs(load_sts_benchmark(split, data_dir=data_dir, download=download), **kwargs)

    def __call__(
        self, model: SentenceTransformer, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        where = "" if epoch == -1 else f" after epoch {epoch}" if steps == -1 else f" at epoch {epoch}, step {steps}"
        cosine = encode_pairs(model, self.pairs, self.batch_size, self.show_progress_bar)
        gold = [score for _, _, score in self.pairs]
        metrics = {
            "spearman_cosine": _spearman(gold, cosine),
            "pearson_cosine": _pearson(gold, cosine),
        }
        report(
            f"STS evaluation{' ' + self.name if self.name else ''}{where}: Spearman x100 "
            f"{100 * metrics['spearman_cosine']:.2f}, Pearson x100 {100 * metrics['pearson_cosine']:.2f} "
            f"({len(self.pairs)} pairs)",
            self.show_progress_bar,
        )
        if output_path is not None:
            Path(output_path).mkdir(parents=True, exist_ok=True)
            csv_path = Path(output_path) / f"sts_evaluation{'_' + self.name if self.name else ''}_results.csv"
            new = not csv_path.exists()
            with open(csv_path, "a", encoding="utf-8") as handle:
                if new:
                    handle.write("epoch,steps,spearman_cosine,pearson_cosine\n")
                handle.write(f"{epoch},{steps},{metrics['spearman_cosine']},{metrics['pearson_cosine']}\n")
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    @property
    def description(self) -> str:
        return "Semantic Similarity"

    def get_config_dict(self) -> dict[str, Any]:
        return {"pairs": len(self.pairs), "similarity": "cosine"}
