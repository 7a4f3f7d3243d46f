"""``st-contrast methods``: the losses found through the ``st_contrast.losses`` entry points.

Each of st-contrast's own methods also has a :class:`MethodProfile` saying what data ``st-contrast train``
reads for it (and so which reader ``--train-format auto`` picks), how the model is built and which
evaluation ends its run. A third-party method gets :data:`DEFAULT_PROFILE` (sentences, STS-B).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Literal

DataKind = Literal["sentences", "documents", "cline", "labelled", "bags"]
EvaluationKind = Literal["sts", "ood", "classification", "relation"]


@dataclass(frozen=True)
class MethodProfile:
    """What ``st-contrast train --method NAME`` needs.

    Attributes:
        data: ``"sentences"`` (texts, or prebuilt pairs/triplets), ``"documents"`` (long documents cut into
            DeCLUTR spans), ``"cline"`` (sentences rewritten with WordNet into (x, x_syn, x_ant)), ``"labelled"``
            (texts with class labels; the label names are saved with the model) or ``"bags"`` (relation
            instances grouped into bags).
        evaluation: what the run ends with: STS-B (``"sts"``), OOD detection (``"ood"``), classification
            accuracy (``"classification"``) or relation extraction (``"relation"``).
        relation_encoder: the model is rebuilt with entity markers and entity-marker pooling (CIL).
        recipe: the recipe in ``configs/`` for this method, when one ships.
    """

    data: DataKind
    evaluation: EvaluationKind
    relation_encoder: bool = False
    recipe: str | None = None


DEFAULT_PROFILE = MethodProfile("sentences", "sts")

PROFILES: dict[str, MethodProfile] = {
    "simcse": MethodProfile("sentences", "sts", recipe="configs/simcse_unsup.yaml, configs/simcse_sup.yaml"),
    "cached_simcse": MethodProfile("sentences", "sts", recipe="configs/simcse_unsup.yaml (--method cached_simcse)"),
    "sg_opt": MethodProfile("sentences", "sts", recipe="configs/sg_opt.yaml"),
    "consert": MethodProfile("sentences", "sts", recipe="configs/consert.yaml"),
    "declutr": MethodProfile("documents", "sts", recipe="configs/declutr.yaml"),
    "cached_declutr": MethodProfile("documents", "sts", recipe="configs/declutr.yaml (--method cached_declutr)"),
    "cline": MethodProfile("cline", "sts", recipe="configs/cline.yaml"),
    "supcon": MethodProfile("labelled", "classification", recipe="configs/supcon.yaml"),
    "cached_supcon": MethodProfile(
        "labelled", "classification", recipe="configs/supcon.yaml (--method cached_supcon)"
    ),
    "supcon_ood": MethodProfile("labelled", "ood", recipe="configs/supcon_ood.yaml"),
    "rdrop": MethodProfile("labelled", "classification", recipe="configs/rdrop_classifier.yaml"),
    "cil": MethodProfile("bags", "relation", relation_encoder=True, recipe="configs/cil.yaml"),
}

#: The ``--train-format`` values that can feed each kind of data (``auto`` picks the first that fits the file).
FORMATS_FOR: dict[str, tuple[str, ...]] = {
    "sentences": ("sentences", "snli", "simcse-csv", "jsonl", "csv", "tsv"),
    "cline": ("sentences", "jsonl", "csv", "tsv"),
    "documents": ("documents", "wikitext", "jsonl", "csv", "tsv"),
    "labelled": ("csv", "jsonl", "tsv", "clinc150"),
    "bags": ("fewrel-nyt", "semeval2010", "jsonl", "csv", "tsv"),
}


def method_profile(name: str) -> MethodProfile:
    """The profile of method ``name`` (:data:`DEFAULT_PROFILE` for a method st-contrast does not know)."""
    return PROFILES.get(name, DEFAULT_PROFILE)


def add_subcommands(subparsers) -> None:
    """Add ``methods`` to an argparse subparsers object."""
    parser = subparsers.add_parser("methods", help="list the losses found through the st_contrast.losses entry points")
    parser.add_argument("--json", action="store_true", help="print the methods as one JSON object")
    parser.set_defaults(handler=run_methods)


def run_methods(args: argparse.Namespace) -> int:
    """The ``methods`` handler: one line per method (name, target, distribution), or JSON; 1 when none is found."""
    from st_contrast.registry import available_methods

    methods = available_methods()
    if args.json:
        listed = {}
        for name, m in methods.items():
            profile = method_profile(name)
            listed[name] = {
                "target": m.target,
                "distribution": m.distribution,
                "data": profile.data,
                "train_formats": list(FORMATS_FOR[profile.data]),
                "evaluation": profile.evaluation,
                "recipe": profile.recipe,
            }
        print(json.dumps(listed))
        return 0
    if not methods:
        print("no methods found: is st-contrast installed (pip install -e .)?")
        return 1
    width = max(len(name) for name in methods)
    for name, entry in methods.items():
        profile = method_profile(name)
        print(
            f"{name:<{width}}  {entry.target}  ({entry.distribution or 'unknown distribution'}); "
            f"data: {profile.data}, evaluation: {profile.evaluation}"
        )
    return 0
