"""The recipes in configs/: each runs from the CLI (2 steps, a tiny model, a small share of the real data) and
ends with its method's evaluation; every method `st-contrast methods` lists trains from one command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from st_contrast.cli import main
from st_contrast.cli.methods import PROFILES, method_profile

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

# Flags that shrink each recipe to a 2-step run on a tiny model: small batches, a small share of the data.
SMALL = {
    "simcse_unsup": ["--max-train-samples", "16"],
    "simcse_sup": ["--max-train-samples", "16"],
    "sg_opt": ["--max-train-samples", "16", "--loss-arg", "projection_dim=32"],
    "consert": ["--max-train-samples", "16"],
    "declutr": ["--max-train-samples", "8", "--max-span", "16", "--min-span", "4", "--max-seq-length", "24"],
    "cline": ["--max-train-samples", "16"],
    "supcon": ["--num-intents", "3", "--max-per-intent", "8"],
    "supcon_ood": ["--num-intents", "3", "--max-per-intent", "8"],
    "rdrop_classifier": ["--num-intents", "3", "--max-per-intent", "8"],
    "cil": ["--max-train-samples", "40", "--bag-size", "2"],
}
SLOW = {"cline"}  # loads WordNet


@pytest.fixture(scope="module")
def recipe_model(tmp_path_factory):
    from st_contrast.testing import build_tiny_sentence_transformer

    folder = tmp_path_factory.mktemp("recipe-model")
    build_tiny_sentence_transformer(folder / "build", pooling="mean").save(str(folder / "model"))
    return folder / "model"


def _recipes() -> list[str]:
    return sorted(path.stem for path in CONFIGS.glob("*.yaml"))


def test_every_recipe_is_covered_and_names_its_data_in_the_data_folder():
    assert set(_recipes()) == set(SMALL)
    for name in _recipes():
        recipe = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text(encoding="utf-8"))
        assert recipe["train_file"].startswith("data:"), name  # relative to the data folder, for anyone
        assert "model" not in recipe and "output_dir" not in recipe, name  # given on the command line
        assert recipe["method"] in PROFILES, name
    assert "graft configs" in (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines()


def _params():
    for name in sorted(SMALL):
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", _params())
def test_recipe_runs_two_steps_and_ends_with_its_evaluation(name, recipe_model, tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    code = main(
        ["train", "--config", str(CONFIGS / f"{name}.yaml"), "--model", str(recipe_model), "--output-dir", str(out)]
        + ["--max-steps", "2", "--batch-size", "4", "-q", *SMALL[name]]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    summary = json.loads((out / "st_contrast_summary.json").read_text())
    assert summary["steps"] == 2
    assert summary["config"]["train_file"].startswith(data_dir)  # data: resolved against the data folder
    profile = method_profile(summary["config"]["method"])
    assert summary["config"]["evaluation"] == profile.evaluation
    if profile.evaluation == "sts":
        assert set(summary["after"]) == {"dev", "test"} and "STS-B Spearman x100" in printed.out
    else:
        assert summary["evaluation"]["task"] == profile.evaluation
        assert {"ood": "OOD detection", "classification": "classification", "relation": "relation"}[
            profile.evaluation
        ] in printed.out
    if profile.data in ("labelled", "bags"):
        names = json.loads((out / "label_map.json").read_text())["label_names"]
        assert len(names) == (3 if profile.data == "labelled" else len(set(names))) and len(names) >= 2
    if profile.data == "bags":
        assert (out / "bag_classifier").is_dir()


@pytest.mark.parametrize(
    ("method", "recipe"),
    [("cached_simcse", "simcse_unsup"), ("cached_declutr", "declutr"), ("cached_supcon", "supcon")],
)
def test_cached_variants_train_with_their_methods_recipe(method, recipe, recipe_model, tmp_path):
    out = tmp_path / "out"
    code = main(
        ["train", "--config", str(CONFIGS / f"{recipe}.yaml"), "--method", method, "--model", str(recipe_model)]
        + ["--output-dir", str(out), "--max-steps", "2", "--batch-size", "4", "--no-eval", "-q", *SMALL[recipe]]
        + ["--loss-arg", "mini_batch_size=3"]
    )
    assert code == 0
    assert json.loads((out / "st_contrast_summary.json").read_text())["config"]["method"] == method


def test_every_listed_method_has_a_profile_and_a_recipe_or_variant():
    from st_contrast.registry import available_methods

    ours = {name for name, entry in available_methods().items() if entry.target.startswith("st_contrast.")}
    assert ours <= set(PROFILES)
    covered = {yaml.safe_load((CONFIGS / f"{n}.yaml").read_text())["method"] for n in _recipes()}
    covered |= {"cached_simcse", "cached_declutr", "cached_supcon"}
    assert ours <= covered


def test_data_path_needs_the_data_folder(recipe_model, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ST_CONTRAST_DATA", raising=False)
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    base = ["train", "--model", str(recipe_model), "--output-dir", str(tmp_path / "o"), "-q"]
    assert main([*base, "--config", str(CONFIGS / "simcse_unsup.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'data:unlabeled/wiki_sentences.txt' is in no data folder" in err[0]
    assert "$ST_CONTRAST_DATA is not set" in err[0]
    assert main([*base, "--train-file", "${ST_CONTRAST_DATA}/unlabeled/wiki_sentences.txt"]) == 2
    err = capsys.readouterr().err
    assert "uses the environment variable(s) $ST_CONTRAST_DATA, which is not set" in err
    # a flag overrides the recipe's data
    sentences = tmp_path / "s.txt"
    sentences.write_text("a cat sat on the mat\nthe dog ran in the park\n" * 4, encoding="utf-8")
    args = [*base, "--config", str(CONFIGS / "simcse_unsup.yaml"), "--train-file", str(sentences)]
    assert main([*args, "--max-steps", "1", "--batch-size", "2", "--no-eval"]) == 0
