"""Importing the --user-dir package (fairseq_plugins/__init__.py): every component registered, and fairseq 0.12
checkpoints loadable under torch >= 2.6."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_components_are_registered(plugins):
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY, CRITERION_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    from fairseq_plugins.criterions import LabelSmoothedCrossEntropyWithContrastive, RDropLabelSmoothedCrossEntropy
    from fairseq_plugins.tasks import TranslationMultilingualContrastiveTask

    assert (
        CRITERION_REGISTRY["label_smoothed_cross_entropy_with_contrastive"] is LabelSmoothedCrossEntropyWithContrastive
    )
    assert CRITERION_REGISTRY["rdrop_label_smoothed_cross_entropy"] is RDropLabelSmoothedCrossEntropy
    assert TASK_REGISTRY["translation_multilingual_contrastive"] is TranslationMultilingualContrastiveTask
    # every config field is a CLI flag with a help text
    for name in ("label_smoothed_cross_entropy_with_contrastive", "rdrop_label_smoothed_cross_entropy"):
        fields = CRITERION_DATACLASS_REGISTRY[name].__dataclass_fields__
        for flag in ("contrastive_lambda", "contrastive_temperature", "rdrop_alpha", "rdrop_summed_ce"):
            if flag in fields:
                assert fields[flag].metadata["help"]


def test_plugin_import_lets_fairseq_load_its_checkpoints(tmp_path):
    """torch >= 2.6 refuses fairseq 0.12 checkpoints (argparse.Namespace inside) unless the plugin's fix is on."""
    code = (
        "import argparse, sys, torch\n"
        "path = sys.argv[1]\n"
        "torch.save({'args': argparse.Namespace(lr=[0.1]), 'model': {}}, path)\n"
        "try:\n"
        "    torch.load(path)\n"
        "    print('loaded-before')\n"
        "except Exception:\n"
        "    print('refused-before')\n"
        "import fairseq_plugins\n"
        "state = torch.load(path, map_location='cpu')  # what fairseq.checkpoint_utils calls\n"
        "print('loaded-after', state['args'].lr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH_FORCE_")}
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ckpt.pt")], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert "refused-before" in lines and "loaded-after" in lines
