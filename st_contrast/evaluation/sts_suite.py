"""The STS suite of SimCSE's tables: STS12-16, STS-B and SICK-R, as a function and a sentence-transformers evaluator.

Each pair is scored by the cosine similarity of its two embeddings; a task's score is Spearman's rank correlation
with the gold scores. STS12-16 are made of subsets (e.g. STS12's MSRpar, MSRvid, ...), combined three ways, as
SentEval reports them:

* ``"all"`` (SimCSE's default): one correlation over the subsets' pairs concatenated;
* ``"wmean"``: the mean of the subsets' correlations, weighted by their numbers of pairs;
* ``"mean"``: their plain mean.

STS-B and SICK-R are scored on their test splits (one set each, so the three are equal). The average is the
plain mean of the tasks' scores. Values are on sentence-transformers' scale (-1 to 1, as
``EmbeddingSimilarityEvaluator``'s ``spearman_cosine``); tables print them x100, as the papers do.
The data come from SentEval's ``data/downstream`` layout (see :mod:`st_contrast.data.senteval`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

try:  # sentence-transformers >= 6
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
except ImportError:  # pragma: no cover - sentence-transformers 5.x
    from sentence_transformers.evaluation import SentenceEvaluator as BaseEvaluator

from st_contrast.data.senteval import STS_SUITE_TASKS, TASK_NAMES, STSTaskData, load_sts_suite
from st_contrast.evaluation.sts import _spearman, encode_pairs, report

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

Aggregation = Literal["all", "wmean", "mean"]
AGGREGATIONS: tuple[str, ...] = ("all", "wmean", "mean")


@dataclass
class STSTaskResult:
    """One task's Spearman correlations (0-1 scale): per subset and combined."""

    task: str
    subsets: dict[str, float]
    sizes: dict[str, int]
    all: float
    unscored: int = 0

    @property
    def name(self) -> str:
        return TASK_NAMES[self.task]

    @property
    def wmean(self) -> float:
        total = sum(self.sizes.values())
        return sum(self.subsets[s] * self.sizes[s] for s in self.subsets) / total

    @property
    def mean(self) -> float:
        return sum(self.subsets.values()) / len(self.subsets)

    @property
    def pairs(self) -> int:
        return sum(self.sizes.values())

    def score(self, aggregation: Aggregation = "all") -> float:
        """The task's score with the subsets combined by ``aggregation`` (``all``, ``wmean`` or ``mean``)."""
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        return float(getattr(self, aggregation))


@dataclass
class STSSuiteResult:
    """The suite's results: :class:`STSTaskResult` per task, in the suite's order."""

    tasks: dict[str, STSTaskResult] = field(default_factory=dict)

    def average(self, aggregation: Aggregation = "all") -> float:
        """Plain mean of the tasks' scores (SimCSE's "Avg." column, 0-1 scale)."""
        return sum(result.score(aggregation) for result in self.tasks.values()) / len(self.tasks)

    def metrics(self, aggregation: Aggregation = "all") -> dict[str, float]:
        """``{"sts12_spearman_cosine": ..., ..., "avg_spearman_cosine": ...}`` (0-1 scale)."""
        metrics = {f"{task}_spearman_cosine": result.score(aggregation) for task, result in self.tasks.items()}
        metrics["avg_spearman_cosine"] = self.average(aggregation)
        return metrics

    @property
    def unscored(self) -> int:
        return sum(result.unscored for result in self.tasks.values())

    def to_dict(self) -> dict[str, Any]:
        """Every number (0-1 scale): per task ``all``/``wmean``/``mean``, subsets, sizes; the averages."""
        return {
            "tasks": {
                task: {
                    "name": result.name,
                    "all": result.all,
                    "wmean": result.wmean,
                    "mean": result.mean,
                    "pairs": result.pairs,
                    "unscored_skipped": result.unscored,
                    "subsets": {s: {"spearman": result.subsets[s], "pairs": result.sizes[s]} for s in result.subsets},
                }
                for task, result in self.tasks.items()
            },
            "avg": {aggregation: self.average(aggregation) for aggregation in AGGREGATIONS},
        }

    def table(self, aggregations: Iterable[str] = AGGREGATIONS) -> str:
        """A text table, Spearman x100: one column per task and the average, one row per aggregation."""
        names = [result.name for result in self.tasks.values()] + ["Avg."]
        lines = [f"{'':<8}" + "".join(f"{name:>8}" for name in names)]
        for aggregation in aggregations:
            values = [result.score(aggregation) for result in self.tasks.values()] + [self.average(aggregation)]
            lines.append(f"{aggregation:<8}" + "".join(f"{100 * value:>8.2f}" for value in values))
        return "\n".join(lines)


def sts_suite_scores(
    model: SentenceTransformer,
    data: Mapping[str, STSTaskData],
    batch_size: int = 64,
    show_progress_bar: bool = False,
) -> STSSuiteResult:
    """Score ``data`` (from :func:`st_contrast.data.senteval.load_sts_suite`) with ``model``.

    Every distinct sentence of every task is encoded once, in one pass.
    """
    if not data:
        raise ValueError("no STS task to score")
    flat = [pair for task in data.values() for pairs in task.subsets.values() for pair in pairs]
    cosines = iter(encode_pairs(model, flat, batch_size, show_progress_bar))
    result = STSSuiteResult()
    for key, task in data.items():
        subset_cosines: dict[str, list[float]] = {}
        for subset, pairs in task.subsets.items():
            subset_cosines[subset] = [next(cosines) for _ in pairs]
        all_gold = [pair[2] for pairs in task.subsets.values() for pair in pairs]
        all_cos = [value for values in subset_cosines.values() for value in values]
        result.tasks[key] = STSTaskResult(
            task=key,
            subsets={s: _spearman([p[2] for p in task.subsets[s]], subset_cosines[s]) for s in task.subsets},
            sizes={s: len(task.subsets[s]) for s in task.subsets},
            all=_spearman(all_gold, all_cos),
            unscored=sum(task.unscored.values()),
        )
    return result


def evaluate_sts_suite(
    model: SentenceTransformer,
    tasks: Iterable[str] | str | None = None,
    senteval_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    batch_size: int = 64,
    show_progress_bar: bool = False,
) -> STSSuiteResult:
    """The STS suite (default all seven tasks) of ``model``: Spearman of cosine similarity, 0-1 scale.

    Args:
        model: the SentenceTransformer to evaluate.
        tasks: task names (``STS12`` ... ``STS16``, ``STS-B``, ``SICK-R``, any case; a list or a comma-separated
            string); default all seven.
        senteval_dir: SentEval's ``data/downstream`` folder; default ``$ST_CONTRAST_SENTEVAL``, then the cache.
        download: fetch the data into the cache when not found (``None``: ``ST_CONTRAST_DOWNLOAD=1``).
        batch_size: encoding batch size.
        show_progress_bar: show the encoding (and download) progress bars.

    Returns:
        An :class:`STSSuiteResult`; ``result.table()`` prints SimCSE's row (x100), ``result.metrics()`` the
        ``<task>_spearman_cosine`` values.

    Example:
        ::

            from st_contrast.evaluation import evaluate_sts_suite

            result = evaluate_sts_suite(model, senteval_dir="SentEval/data/downstream")
            print(result.table())
            print(100 * result.average("all"))
    """
    data = load_sts_suite(tasks, senteval_dir, download, show_progress_bar=show_progress_bar)
    return sts_suite_scores(model, data, batch_size=batch_size, show_progress_bar=show_progress_bar)


class STSSuiteEvaluator(BaseEvaluator):
    def __init__(
        self,
        data: Mapping[str, STSTaskData],
        aggregation: Aggregation = "all",
        batch_size: int = 64,
        name: str = "sts-suite",
        show_progress_bar: bool = False,
    ) -> None:
        """A sentence-transformers evaluator for the STS suite: ``<name>_<task>_spearman_cosine`` (0-1 scale).

        Usable as ``evaluator=`` of ``SentenceTransformerTrainer`` (or ``model.fit``); its primary metric is the
        average, ``<name>_avg_spearman_cosine``, so ``metric_for_best_model="eval_sts-suite_avg_spearman_cosine"``
        keeps the checkpoint that is best on the suite. Build it with :meth:`from_senteval`.

        Args:
            data: task key -> :class:`~st_contrast.data.senteval.STSTaskData` (from ``load_sts_suite``).
            aggregation: how STS12-16's subsets are combined: ``"all"`` (SimCSE), ``"wmean"`` or ``"mean"``.
            batch_size: encoding batch size.
            name: prefix of the metric names.
            show_progress_bar: show the encoding progress bar (and print one line per evaluation to stderr).

        Returns (when called):
            ``{"<name>_sts12_spearman_cosine": ..., ..., "<name>_avg_spearman_cosine": ...}``.
        """
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        unknown = [task for task in data if task not in STS_SUITE_TASKS]
        if unknown or not data:
            raise ValueError(f"data must map tasks of {STS_SUITE_TASKS} to their pairs, got {list(data)}")
        self.data = dict(data)
        self.aggregation = aggregation
        self.batch_size = batch_size
        self.name = name
        self.show_progress_bar = show_progress_bar
        self.greater_is_better = True
        self.primary_metric = "avg_spearman_cosine"

    @classmethod
    def from_senteval(
        cls,
        tasks: Iterable[str] | str | None = None,
        senteval_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        **kwargs: Any,
    ) -> STSSuiteEvaluator:
        """The evaluator on the suite's tasks read from SentEval's layout (see :func:`evaluate_sts_suite`)."""
        return cls(load_sts_suite(tasks, senteval_dir, download), **kwargs)

    def __call__(
        self, model: SentenceTransformer, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        where = "" if epoch == -1 else f" after epoch {epoch}" if steps == -1 else f" at epoch {epoch}, step {steps}"
        result = sts_suite_scores(model, self.data, self.batch_size, self.show_progress_bar)
        metrics = result.metrics(self.aggregation)
        summary = ", ".join(f"{r.name} {100 * r.score(self.aggregation):.2f}" for r in result.tasks.values())
        report(
            f"STS suite {self.name}{where} (Spearman x100, {self.aggregation}): {summary}, "
            f"avg {100 * result.average(self.aggregation):.2f}",
            self.show_progress_bar,
        )
        if output_path is not None:
            Path(output_path).mkdir(parents=True, exist_ok=True)
            csv_path = Path(output_path) / f"sts_suite_evaluation_{self.name}_results.csv"
            new = not csv_path.exists()
            with open(csv_path, "a", encoding="utf-8") as handle:
                if new:
                    handle.write("epoch,steps," + ",".join(metrics) + "\n")
                handle.write(f"{epoch},{steps}," + ",".join(str(value) for value in metrics.values()) + "\n")
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    @property
    def description(self) -> str:
        return "STS suite (STS12-16, STS-B, SICK-R)"

    def get_config_dict(self) -> dict[str, Any]:
        return {"tasks": list(self.data), "aggregation": self.aggregation, "similarity": "cosine"}
