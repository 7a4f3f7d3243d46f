"""``st-contrast fairseq-help KIND NAME`` (st_contrast/cli/fairseq.py): the options and help texts of our plugins,
which fairseq 0.12's ``-h`` does not show (it prints its help before adding the criterion's options)."""

from __future__ import annotations

import dataclasses

import pytest

from st_contrast.cli import main


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    "kind, name, config",
    [
        ("criterion", "label_smoothed_cross_entropy_with_contrastive",
         "fairseq_plugins.criterions.label_smoothed_cross_entropy_with_contrastive:LabelSmoothedCrossEntropyWithContrastiveConfig"),
        ("criterion", "rdrop_label_smoothed_cross_entropy",
         "fairseq_plugins.criterions.rdrop_label_smoothed_cross_entropy:RDropLabelSmoothedCrossEntropyConfig"),
        ("criterion", "simcls_ranking", "fairseq_plugins.criterions.simcls_ranking:SimCLSRankingConfig"),
        ("task", "simcls_reranking", "fairseq_plugins.tasks.simcls_reranking:SimCLSRerankingConfig"),
        ("task", "translation_multilingual_contrastive",
         "fairseq_plugins.tasks.translation_multilingual_contrastive:TranslationMultilingualContrastiveConfig"),
        ("arch", "simcls_scorer", "fairseq_plugins.models.simcls_scorer:SimCLSScorerConfig"),
    ],
)  # fmt: skip
def test_help_lists_every_option_with_its_help_text_and_default(kind, name, config, capsys):
    import importlib

    module, _, cls = config.partition(":")
    config = getattr(importlib.import_module(module), cls)
    assert main(["fairseq-help", kind, name]) == 0
    out = _flat(capsys.readouterr().out)
    assert out.startswith(f"--{kind.replace('_', '-')} {name}: fairseq_plugins.")
    shown = 0
    for field in dataclasses.fields(config):
        default = field.default
        if field.name.startswith("_") or (isinstance(default, str) and default.startswith("${")):
            continue  # fairseq's own name field, or interpolated from another group (common.seed): not an option
        flag = "--" + field.name.replace("_", "-")
        if field.name == "data":
            flag = "data"  # the task's positional argument
        assert flag in out, f"{flag} missing from the help of {kind} {name}"
        help_text = field.metadata.get("help")
        if help_text:
            assert _flat(help_text) in out
        shown += 1
    assert shown >= 2
    if name == "label_smoothed_cross_entropy_with_contrastive":
        assert "(default: 0.1)" in out and "--contrastive-gather" in out


def test_help_of_an_unknown_name_suggests_close_ones(capsys):
    assert main(["fairseq-help", "criterion", "simcls_rankin"]) == 2
    err = capsys.readouterr().err
    assert "no fairseq criterion named 'simcls_rankin'; did you mean simcls_ranking" in err
