"""simcls_ranking (criterions/simcls_ranking.py): the loss is simcls_ranking_loss on the scorer's outputs, the
validation metrics, gradients, errors."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from st_contrast.losses.functional import simcls_ranking_loss  # noqa: E402
from tests.simcls_utils import make_simcls_criterion, make_simcls_scorer, make_simcls_task  # noqa: E402


def test_criterion_loss_metrics_and_gradients(simcls_folder):
    from fairseq.logging import metrics

    task = make_simcls_task(simcls_folder)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[0], dataset[1]])
    model = make_simcls_scorer(task)
    criterion = make_simcls_criterion(task, ranking_margin=0.05, reference_weight=0.5)
    assert torch.isfinite(criterion(model, sample)[0])  # training mode (dropout on)
    model.eval()  # deterministic from here: the criterion's loss must equal the function on the outputs
    loss, sample_size, log = criterion(model, sample)
    out = model(**sample["net_input"])
    want = simcls_ranking_loss(out["candidate_scores"], out["reference_scores"], margin=0.05, reference_weight=0.5)
    torch.testing.assert_close(loss, want.sum())
    assert sample_size == 2 and log["nsentences"] == 2
    chosen = out["candidate_scores"].argmax(-1)
    picked = sample["candidate_rouge"][torch.arange(2), chosen]
    assert log["sel_rouge2"] == pytest.approx(100 * float(picked[:, 1].sum()), rel=1e-5)
    assert log["oracle_mean"] == pytest.approx(100 * float(sample["candidate_rouge"][:, 0].mean(-1).sum()), rel=1e-5)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    with metrics.aggregate() as agg:
        type(criterion).reduce_metrics([log, log])
    values = agg.get_smoothed_values()
    assert values["rouge_mean"] == pytest.approx(
        round((log["sel_rouge1"] + log["sel_rouge2"] + log["sel_rougeLsum"]) / 6, 2), abs=0.02
    )
    assert values["oracle_rouge_mean"] >= values["rouge_mean"] and 0 <= values["top1_acc"] <= 100
    assert type(criterion).logging_outputs_can_be_summed()


def test_bad_arguments_give_clear_errors(simcls_folder):
    task = make_simcls_task(simcls_folder)
    with pytest.raises(ValueError, match="ranking-margin"):
        make_simcls_criterion(task, ranking_margin=-1.0)
    with pytest.raises(ValueError, match="both 0"):
        make_simcls_criterion(task, candidate_weight=0.0, reference_weight=0.0)


def test_choice_and_ordering_from_scores():
    """select_best_candidate (moved here from st_contrast.losses.functional with its only users)."""
    from fairseq_plugins.criterions.simcls_ranking import select_best_candidate

    scores = torch.tensor([[0.1, 0.7, 0.3, 0.9], [0.5, 0.2, 0.8, 0.95]])
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    assert select_best_candidate(scores).tolist() == [3, 3]
    assert select_best_candidate(scores, mask).tolist() == [3, 2]  # padding never chosen
    # the ranking the scorer implies (best first) is argsort of the scores
    assert scores[0].argsort(descending=True).tolist() == [3, 1, 2, 0]
    # a scorer that already ranks like ROUGE (descending, gaps > λ) has zero candidate loss
    ranked = scores[0].sort(descending=True).values.unsqueeze(0)
    assert simcls_ranking_loss(ranked, None, margin=0.01).item() == 0.0
