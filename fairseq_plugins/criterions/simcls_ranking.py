"""SimCLS's ranking loss over summary candidates, with ROUGE of the selected candidate in the logs.

Liu & Liu (2021), "SimCLS: A Simple Framework for Contrastive Learning of Abstractive Summarization",
ACL 2021, https://arxiv.org/abs/2106.01890, eq. 3. For each document, with candidates sorted by their
ROUGE (best first) and scores ``h`` from the model (``simcls_scorer``)::

    L = Σ_{j<k} max(0, h(C_k) − h(C_j) + λ·(k − j)) + Σ_k max(0, h(C_k) − h(S))

(``λ`` = ``--ranking-margin``, 0.01; ``S`` the reference; ``--reference-margin`` 0 and the two weights 1 as
in the paper). The loss is summed over documents and divided by their number (the sample size). The maths
is :func:`st_contrast.losses.functional.simcls_ranking_loss`; the choice at test time is
:func:`select_best_candidate`.

Paper vs official code: the official code averages the hinge over the pairs of each rank gap (then sums
over gaps) and averages the reference term over candidates (``--pair-reduction mean_per_gap``); the
paper's equation, and the default here, sums them (``sum``). With ``n`` candidates, ``sum`` weighs a gap
``g`` by ``n − g`` pairs, so it puts more weight on close ranks and is larger overall: tune the learning
rate accordingly.

Logged per document (in %, from the ROUGE stored with the candidates): ``rouge1``, ``rouge2``,
``rougeLsum`` and ``rouge_mean`` of the highest-scoring candidate, ``oracle_rouge_mean`` (best candidate),
``random_rouge_mean`` (expected ROUGE of a uniformly random candidate) and ``top1_acc`` (share of
documents where the choice is a best candidate). At validation these are the re-ranker's scores.
"""

# No `from __future__ import annotations` here: fairseq builds its CLI from the config dataclass's
# field types at runtime, and string annotations break that (fairseq.dataclass.utils.interpret_dc_type).
from dataclasses import dataclass, field

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from st_contrast.losses.functional import simcls_ranking_loss

from .._registry import register_criterion_once

PAIR_REDUCTION = ChoiceEnum(["sum", "mean_per_gap"])
_ROUGE_KEYS = ("rouge1", "rouge2", "rougeLsum")


def select_best_candidate(candidate_scores: torch.Tensor, candidate_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the highest-scoring candidate per row (SimCLS's choice at test time); padding is never chosen.

    ``candidate_scores`` is ``(batch, candidates)``; ``candidate_mask`` (same shape, true for real candidates)
    marks the padding of documents with fewer candidates.
    """
    if candidate_mask is not None:
        candidate_scores = candidate_scores.masked_fill(~candidate_mask.to(torch.bool), float("-inf"))
    return candidate_scores.argmax(dim=-1)


@dataclass
class SimCLSRankingConfig(FairseqDataclass):
    ranking_margin: float = field(
        default=0.01, metadata={"help": "λ: margin per rank gap between two candidates (0.01 in the paper)"}
    )
    reference_margin: float = field(
        default=0.0, metadata={"help": "margin by which the reference must outscore every candidate (paper: 0)"}
    )
    candidate_weight: float = field(default=1.0, metadata={"help": "weight of the candidate-pair term"})
    reference_weight: float = field(
        default=1.0, metadata={"help": "weight of the reference-vs-candidate term (0 drops it)"}
    )
    pair_reduction: PAIR_REDUCTION = field(  # type: ignore[valid-type]
        default="sum",
        metadata={"help": "sum: the paper's sums over pairs; mean_per_gap: the official code's mean over the "
                  "pairs of each rank gap and over candidates for the reference term"},
    )  # fmt: skip


@register_criterion_once("simcls_ranking", dataclass=SimCLSRankingConfig)
class SimCLSRankingCriterion(FairseqCriterion):
    """SimCLS margin ranking loss (see the module docstring)."""

    def __init__(
        self,
        task,
        ranking_margin: float = 0.01,
        reference_margin: float = 0.0,
        candidate_weight: float = 1.0,
        reference_weight: float = 1.0,
        pair_reduction: str = "sum",
    ) -> None:
        super().__init__(task)
        for name, value in (
            ("ranking_margin", ranking_margin),
            ("candidate_weight", candidate_weight),
            ("reference_weight", reference_weight),
        ):
            if not float(value) >= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if candidate_weight == 0 and reference_weight == 0:
            raise ValueError("--candidate-weight and --reference-weight are both 0: nothing to train")
        self.ranking_margin = float(ranking_margin)
        self.reference_margin = float(reference_margin)
        self.candidate_weight = float(candidate_weight)
        self.reference_weight = float(reference_weight)
        self.pair_reduction = str(pair_reduction)

    def forward(self, model, sample, reduce: bool = True):
        output = model(**sample["net_input"])
        scores, mask = output["candidate_scores"], sample["candidate_mask"].to(output["candidate_scores"].device)
        reference_scores = output["reference_scores"] if self.reference_weight > 0 else None
        if self.reference_weight > 0 and reference_scores is None:
            raise ValueError("simcls_ranking with --reference-weight > 0 needs the references in the batch")
        per_document = simcls_ranking_loss(
            scores,
            reference_scores,
            margin=self.ranking_margin,
            reference_margin=self.reference_margin,
            candidate_weight=self.candidate_weight,
            reference_weight=self.reference_weight,
            candidate_mask=mask,
            pair_reduction=self.pair_reduction,
        )
        loss = per_document.sum() if reduce else per_document
        nsentences = scores.size(0)
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": nsentences,
        }
        if "candidate_rouge" in sample:
            rouge = sample["candidate_rouge"].to(mask.device)
            logging_output.update(self.selection_stats(scores.detach(), mask, rouge))
        return loss, nsentences, logging_output

    @staticmethod
    def selection_stats(scores: torch.Tensor, mask: torch.Tensor, rouge: torch.Tensor) -> dict[str, float]:
        """Summed ROUGE (×100) of the chosen, best and random candidates over the batch's documents."""
        chosen = select_best_candidate(scores, mask)
        rows = torch.arange(scores.size(0), device=scores.device)
        picked = rouge[rows, chosen]  # (batch, 3)
        mean = rouge.mean(-1).masked_fill(~mask, float("-inf"))
        best = mean.max(-1).values
        random_choice = (rouge.mean(-1) * mask).sum(-1) / mask.sum(-1)
        stats = {f"sel_{key}": 100 * float(picked[:, i].sum()) for i, key in enumerate(_ROUGE_KEYS)}
        stats["oracle_mean"] = 100 * float(best.sum())
        stats["random_mean"] = 100 * float(random_choice.sum())
        stats["n_top1"] = float((picked.mean(-1) >= best - 1e-9).sum())
        stats["n_rouge"] = scores.size(0)
        return stats

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        def total(key: str) -> float:
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        sample_size = total("sample_size")
        if sample_size > 0:
            metrics.log_scalar("loss", total("loss") / sample_size, sample_size, round=5)
        n = total("n_rouge")
        if n > 0:
            for key in _ROUGE_KEYS:
                metrics.log_scalar(key, total(f"sel_{key}") / n, n, round=2)
            metrics.log_scalar("rouge_mean", sum(total(f"sel_{k}") for k in _ROUGE_KEYS) / 3 / n, n, round=2)
            metrics.log_scalar("oracle_rouge_mean", total("oracle_mean") / n, n, round=2)
            metrics.log_scalar("random_rouge_mean", total("random_mean") / n, n, round=2)
            metrics.log_scalar("top1_acc", 100 * total("n_top1") / n, n, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
