"""The criterions' shared logging output (criterions/_logging.py): --report-accuracy counts as fairseq's."""

from __future__ import annotations

from tests.fairseq.translation_utils import make_sample, mclr_criterion, rdrop_criterion


def test_report_accuracy_counts_match_fairseq_without_dropout(make_model, task, dictionary):
    """--report-accuracy: n_correct/total as fairseq's LS-CE counts them (R-Drop: of the first copy, which equals
    the only copy when there is no dropout)."""
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    model = make_model(dropout=0.0)
    model.train()
    sample = make_sample(dictionary, seed=4)
    reference = LabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1, report_accuracy=True)
    _, _, expected = reference(model, sample)
    assert expected["total"] > 0
    for criterion in (
        mclr_criterion(task, report_accuracy=True),
        rdrop_criterion(task, rdrop_alpha=1.0, report_accuracy=True),
    ):
        _, _, log = criterion(model, sample)
        assert (log["n_correct"], log["total"]) == (expected["n_correct"], expected["total"]), type(criterion)
        assert {"loss", "nll_loss", "ntokens", "nsentences", "sample_size"} <= set(log)
