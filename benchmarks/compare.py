"""A loss's training step time against SimCSE's (or the CE baseline's), interleaved, on the CPU.

    OMP_NUM_THREADS=1 python -m benchmarks.compare cline --model minilm --batch-size 64 --steps 8 --warmup 1
    OMP_NUM_THREADS=1 python -m benchmarks.compare consert --model tiny --batch-size 32 --steps 20
    OMP_NUM_THREADS=1 python -m benchmarks.compare declutr --model minilm --documents 4 --steps 6 \\
        --min-span 8 --max-span 64 --seq 128
    OMP_NUM_THREADS=1 python -m benchmarks.compare sg-opt --model minilm --batch-size 32 --projection-dims 4096,384
    OMP_NUM_THREADS=1 python -m benchmarks.compare supcon-ood --model tiny --batch-size 32 --steps 7 --warmup 1

Every configuration gets its own deep copy of one starting model and does full training steps (forward,
backward, AdamW over every trainable parameter its loss owns) on the same sentences, taken in turns (A, B, C,
A, B, C, ...; ``consert`` alternates the order) by :func:`benchmarks.harness.time_interleaved`, so that load
from other processes hits all of them alike; medians of wall and CPU time per step and their ratios to the
reference are reported. The losses come from the factories of :mod:`benchmarks.factories`:

* ``cline``: SimCSELoss vs CLINELoss (paper and official objectives) on WordNet triples, [CLS] pooling;
* ``consert``: SimCSELoss vs ConSERTLoss (feature cutoff + token shuffle), [CLS] pooling;
* ``declutr``: at equal tokens per step: DeCLUTRLoss on ``D`` documents of WikiText-2 (``6D`` spans: 2 anchors,
  4 positives; MLM weight 1 and 0) vs SimCSELoss on the very same span texts as ``3D`` pairs, mean pooling
  (needs the data folder);
* ``sg-opt``: SimCSELoss vs SelfGuidedContrastiveLoss for each ``--projection-dims`` width, [CLS] pooling;
* ``supcon-ood``: every SupCon / SupCon-OOD / R-Drop factory vs the cross-entropy baseline (``supcon-ood-ce``),
  mean pooling (``tiny`` is 128 wide here).

Results are merged into ``benchmarks/results/compare_<method>.json``, one run per model and batch.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.models import comparison_model, default_workdir, sentences_for
from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args
from benchmarks.harness.timing import make_stepper, time_interleaved

Stepper = Callable[[], tuple[float, float]]
DEFAULTS: dict[str, dict[str, Any]] = {
    "cline": dict(batch_size=64, steps=10, warmup=2, seq=32),
    "consert": dict(batch_size=32, steps=10, warmup=2, seq=32),
    "declutr": dict(documents=4, steps=8, warmup=1, seq=256, min_span=16, max_span=128),
    "sg-opt": dict(batch_size=32, steps=10, warmup=2, seq=32, projection_dims="4096"),
    "supcon-ood": dict(batch_size=32, steps=7, warmup=1, seq=32),
}


def _simcse(model, sentences: list[str]) -> Stepper:
    from st_contrast.losses import SimCSELoss

    return make_stepper(SimCSELoss(model, temperature=0.05), [model.preprocess(sentences)])


def _from_factory(factory: Callable, model, sentences: list[str]) -> Stepper:
    loss, make_batch = factory(model)
    features, labels = make_batch(sentences)
    return make_stepper(loss, features, labels)


def cline(base, args) -> tuple[dict[str, Stepper], str, dict[str, Any]]:
    from benchmarks.factories.cline import FACTORIES

    sentences = sentences_for(args.batch_size)
    configs = {"simcse": _simcse(copy.deepcopy(base), sentences)}
    for name in ("cline", "cline-official"):
        configs[name] = _from_factory(FACTORIES[name], copy.deepcopy(base), sentences)
    return configs, "simcse", {}


def consert(base, args) -> tuple[dict[str, Stepper], str, dict[str, Any]]:
    from benchmarks.factories.consert import FACTORIES

    sentences = sentences_for(args.batch_size)
    configs = {"simcse": _simcse(copy.deepcopy(base), sentences)}
    configs["consert"] = _from_factory(FACTORIES["consert"], copy.deepcopy(base), sentences)
    return configs, "simcse", {}


def sg_opt(base, args) -> tuple[dict[str, Stepper], str, dict[str, Any]]:
    from benchmarks.factories.self_guided import sg_opt as factory

    sentences = sentences_for(args.batch_size)
    configs = {"simcse": _simcse(copy.deepcopy(base), sentences)}
    for dim in [int(d) for d in args.projection_dims.split(",")]:
        configs[f"sg-opt (P={dim})"] = _from_factory(
            lambda model, dim=dim: factory(model, projection_dim=dim), copy.deepcopy(base), sentences
        )
    padded = int(base.preprocess(sentences)["attention_mask"].shape[1])
    return configs, "simcse", {"padded_length": padded}


def supcon_ood(base, args) -> tuple[dict[str, Stepper], str, dict[str, Any]]:
    from benchmarks.factories.supcon import FACTORIES

    sentences = sentences_for(args.batch_size)
    configs = {name: _from_factory(factory, copy.deepcopy(base), sentences) for name, factory in FACTORIES.items()}
    return configs, "supcon-ood-ce", {}


def declutr(base, args) -> tuple[dict[str, Stepper], str, dict[str, Any]]:
    from st_contrast.data import find_data_file
    from st_contrast.data.declutr import DeCLUTRSpanSampler, read_wikitext_articles
    from st_contrast.losses import DeCLUTRLoss, SimCSELoss

    articles = read_wikitext_articles(find_data_file("unlabeled/wikitext2_valid.txt"))
    sampler = DeCLUTRSpanSampler(min_span=args.min_span, max_span=args.max_span, on_short="skip", seed=0)
    columns = list(sampler.columns(articles[: args.documents]).values())
    texts = [text for column in columns for text in column]  # the 6D span texts
    half = len(texts) // 2

    def count(features_list) -> dict[str, int]:
        return {
            "real": int(sum(f["attention_mask"].sum() for f in features_list)),
            "padded": int(sum(f["attention_mask"].numel() for f in features_list)),
        }

    configs: dict[str, Stepper] = {}
    tokens: dict[str, dict[str, int]] = {}
    reference = "simcse (same spans as pairs)"
    model = copy.deepcopy(base)
    features = [model.preprocess(texts[:half]), model.preprocess(texts[half:])]
    configs[reference], tokens[reference] = make_stepper(SimCSELoss(model), features), count(features)
    for label, weight in (("declutr (mlm 1.0)", 1.0), ("declutr (mlm off)", 0.0)):
        model = copy.deepcopy(base)
        features = [model.preprocess(column) for column in columns]
        configs[label], tokens[label] = make_stepper(DeCLUTRLoss(model, mlm_weight=weight), features), count(features)
    extra = {"documents_per_step": args.documents, "spans_per_step": len(texts), "tokens_per_step": tokens}
    return configs, reference, extra


METHODS: dict[str, Callable] = {
    "cline": cline,
    "consert": consert,
    "declutr": declutr,
    "sg-opt": sg_opt,
    "supcon-ood": supcon_ood,
}
POOLING = {"declutr": "mean", "supcon-ood": "mean"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--batch-size", type=int, help="sentences per step (default: the method's, 32 or 64)")
    parser.add_argument("--documents", type=int, help="declutr: documents per step (default 4, the paper's batch)")
    parser.add_argument("--steps", type=int, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, help="untimed steps per configuration first")
    parser.add_argument("--seq", type=int, help="max_seq_length")
    parser.add_argument("--min-span", type=int, help="declutr: shortest span in words (default 16)")
    parser.add_argument("--max-span", type=int, help="declutr: longest span in words (default 128)")
    parser.add_argument("--projection-dims", help="sg-opt: comma-separated head widths to time (default 4096)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, i.e. OMP_NUM_THREADS)")
    parser.add_argument("--workdir", default=str(default_workdir("st-contrast-compare")))
    add_result_arguments(parser)
    return parser


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The method's options with its defaults filled in (what defines a run)."""
    chosen = {"method": args.method, "model": args.model}
    for key, default in DEFAULTS[args.method].items():
        value = getattr(args, key)
        chosen[key] = default if value is None else value
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = settings(args)
    for key, value in config.items():
        setattr(args, key, value)
    size = f"docs{args.documents}" if args.method == "declutr" else f"batch{args.batch_size}"
    run_key = f"{args.model}-{size}"
    target = target_from_args(args, "compare", args.method)
    check_writable(target, config, run_key)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    hidden = 128 if args.method == "supcon-ood" else 32
    base, description = comparison_model(
        args.model,
        POOLING.get(args.method, "cls"),
        args.seq,
        workdir,
        mlm_head=args.method == "declutr",
        hidden=hidden,
    )
    configs, reference, extra = METHODS[args.method](base, args)
    timing = time_interleaved(configs, args.steps, args.warmup, reference, alternate=args.method == "consert")
    result = {"model_description": description, "threads": torch.get_num_threads(), **extra, **timing}
    path = target.merge_run(run_key, result, config, command_line("compare", argv))
    summary = {
        k: v for k, v in timing.items() if k in ("median_step_ms", "ratio_vs_reference", "cpu_ratio_vs_reference")
    }
    print(f"{args.method} ({run_key}), reference {reference}: {summary}")
    print(f"results: {path} (run {run_key!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
