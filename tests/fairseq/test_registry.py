"""Registration once (fairseq_plugins/_registry.py): a second import of the package, and a different class under
one of our names."""

from __future__ import annotations

import shutil
from argparse import Namespace

import pytest


def test_double_import_does_not_fail(plugins, tmp_path):
    """Imported, then passed as --user-dir (same folder), then a copy of the folder under another name."""
    from fairseq import utils

    from st_contrast.cli.fairseq import user_dir

    utils.import_user_module(Namespace(user_dir=user_dir()))
    copy = tmp_path / "fairseq_plugins_copy"
    shutil.copytree(user_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    utils.import_user_module(Namespace(user_dir=str(copy)))
    from fairseq.criterions import CRITERION_REGISTRY

    assert CRITERION_REGISTRY["label_smoothed_cross_entropy_with_contrastive"].__module__.startswith(
        "fairseq_plugins."
    )


def test_a_different_component_under_our_name_is_an_error(plugins):
    from fairseq_plugins._registry import register_criterion_once

    class SomethingElse:
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_criterion_once("rdrop_label_smoothed_cross_entropy", dataclass=None)(SomethingElse)


def test_simcls_components_are_registered_once():
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    import fairseq_plugins  # noqa: F401
    from fairseq_plugins._registry import register_model_once
    from fairseq_plugins.models.simcls_scorer import SimCLSScorer, SimCLSScorerConfig

    assert MODEL_REGISTRY["simcls_scorer"] is SimCLSScorer and ARCH_MODEL_REGISTRY["simcls_scorer"] is SimCLSScorer
    assert TASK_REGISTRY["simcls_reranking"].__name__ == "SimCLSRerankingTask"
    assert CRITERION_REGISTRY["simcls_ranking"].__name__ == "SimCLSRankingCriterion"
    # the same class again (a second import of the plugin package) is a no-op ...
    again = type("SimCLSScorer", (SimCLSScorer,), {"__module__": "copy_of_plugins.models.simcls_scorer"})
    assert register_model_once("simcls_scorer", SimCLSScorerConfig)(again) is SimCLSScorer
    # ... a different class under our name is refused
    other = type("OtherScorer", (SimCLSScorer,), {})
    with pytest.raises(ValueError, match="already registered"):
        register_model_once("simcls_scorer", SimCLSScorerConfig)(other)
