"""The --user-dir package: registration once, entry points, the launcher, checkpoint loading."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from argparse import Namespace
from importlib.metadata import EntryPoint

import pytest

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


def test_double_import_does_not_fail(plugins, tmp_path):
    """Imported, then passed as --user-dir (same folder), then a copy of the folder under another name."""
    from fairseq import utils

    from st_contrast.fairseq_launch import user_dir

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


def test_entry_point_plugins_are_loaded_and_their_errors_reraised(plugins, monkeypatch):
    from fairseq_plugins import _entry_points

    group = _entry_points.GROUP
    own = EntryPoint("st_contrast", "fairseq_plugins", group)
    good = EntryPoint("good", "json", group)
    monkeypatch.setattr(_entry_points, "_loaded", {})
    monkeypatch.setattr(_entry_points, "entry_points", lambda group: [own, good])
    loaded = _entry_points.load_entry_point_plugins()
    assert list(loaded) == ["good"]  # our own entry is the package being imported: skipped

    broken = EntryPoint("broken", "st_contrast_no_such_module_xyz", group)
    monkeypatch.setattr(_entry_points, "entry_points", lambda group: [broken])
    with pytest.raises(ImportError, match="'broken'") as info:
        _entry_points.load_entry_point_plugins()
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_our_entry_point_is_installed():
    from importlib.metadata import entry_points

    values = {e.name: e.value for e in entry_points(group="fairseq.plugins")}
    assert values.get("st_contrast") == "fairseq_plugins"


def test_user_dir_is_printed_without_importing_fairseq_or_torch():
    code = (
        "import sys, io, contextlib\n"
        "from st_contrast import fairseq_launch\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = fairseq_launch.main(['fairseq-user-dir'])\n"
        "assert rc == 0\n"
        "print(buf.getvalue().strip())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fairseq', 'fairseq_plugins', 'torch')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    path, modules = out.stdout.strip().splitlines()
    assert modules == "[]"
    assert os.path.isfile(os.path.join(path, "__init__.py")) and os.path.basename(path) == "fairseq_plugins"


def test_cli_subcommands_are_wired():
    pytest.importorskip("st_contrast.cli")
    import argparse

    from st_contrast import fairseq_launch

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    fairseq_launch.add_subcommands(sub)
    args, extra = parser.parse_known_args(["fairseq-train", "data-bin", "--task", "x", "-h", "--lr=0.1"])
    assert args.accepts_extra and extra == ["data-bin", "--task", "x", "-h", "--lr=0.1"]
    args, extra = parser.parse_known_args(["fairseq-user-dir"])
    assert extra == [] and callable(args.handler)


def test_wrapper_argv_and_environment():
    from st_contrast.fairseq_launch import fairseq_argv, fairseq_env, user_dir

    argv = fairseq_argv("fairseq-generate", ["data-bin", "--path", "x.pt"])
    assert argv[0] == sys.executable and "fairseq_cli.generate" in argv[2]
    assert argv[3:] == ["data-bin", "--path", "x.pt", "--user-dir", user_dir()]
    assert fairseq_argv("fairseq-train", ["d", "--user-dir=/mine"])[3:] == ["d", "--user-dir=/mine"]
    assert fairseq_argv("fairseq-train", ["d", "--user-dir", "/mine"])[3:] == ["d", "--user-dir", "/mine"]
    with pytest.raises(ValueError, match="unknown fairseq command"):
        fairseq_argv("fairseq-foo", [])
    assert fairseq_env({})["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"
    assert fairseq_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "0"})["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "0"
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in fairseq_env({"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"})


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
