"""The ``st-contrast`` command: train, evaluate, list methods, and launch fairseq with our plugins."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any


def _add_train(subparsers) -> None:
    from st_contrast.training import POOLING_MODES, TRAIN_FORMATS

    parser = subparsers.add_parser(
        "train",
        help="train a sentence encoder with a contrastive method",
        description="Train with a method from the st_contrast.losses entry points. Settings come from --config "
        "(YAML or JSON, keys = the long flag names with underscores) and/or flags; flags win.",
    )
    parser.add_argument("--config", help="YAML/JSON file with training settings")
    parser.add_argument("--method", help="loss to train with (see `st-contrast methods`); default simcse")
    parser.add_argument("--model", help="local model folder, or 'minilm' for the pretrained all-MiniLM-L6-v2")
    parser.add_argument("--train-file", help="training data file")
    parser.add_argument("--train-format", choices=TRAIN_FORMATS, help="how to read --train-file (default sentences)")
    parser.add_argument("--output-dir", "--output", dest="output_dir", help="where to save the trained model")
    parser.add_argument("--pooling", choices=POOLING_MODES, help="rebuild the model with this pooling")
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float)
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--warmup-ratio", type=float)
    parser.add_argument("--eval-steps", type=int)
    parser.add_argument("--no-eval", dest="eval_sts", action="store_const", const=False, help="skip STS-B evaluation")
    parser.add_argument("--select-best-on-sts-dev", action="store_const", const=True)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--bf16", action="store_const", const=True)
    parser.add_argument("--fp16", action="store_const", const=True)
    parser.add_argument("--data-dir", help="data folder (default: $ST_CONTRAST_DATA, then the cache)")
    parser.add_argument(
        "--loss-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument for the loss, e.g. --loss-arg temperature=0.05 (VALUE parsed as JSON when it can be)",
    )
    parser.set_defaults(handler=_run_train)


def _parse_loss_args(items: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--loss-arg expects KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def _run_train(args: argparse.Namespace) -> int:
    from st_contrast.training import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    loss_args = _parse_loss_args(args.loss_arg)
    if args.config:
        config = TrainConfig.from_file(args.config, **flags)
        config.loss.update(loss_args)
    else:
        missing = [name for name in ("model", "train_file", "output_dir") if name not in flags]
        if missing:
            raise SystemExit("st-contrast train: missing " + ", ".join("--" + m.replace("_", "-") for m in missing))
        config = TrainConfig(**flags, loss=loss_args)
    summary = train(config)
    _print_summary(summary)
    return 0


def _print_summary(summary: dict[str, Any]) -> None:
    print(
        f"trained {summary['steps']} steps in {summary['train_seconds']} s; model saved to "
        f"{summary['config']['output_dir']}"
    )
    if "before" in summary:
        print(f"{'STS-B Spearman x100':<22}{'dev':>8}{'test':>8}")
        for key in ("before", "after"):
            row = summary.get(key, {})
            print(f"{key:<22}{row.get('dev', float('nan')):>8.2f}{row.get('test', float('nan')):>8.2f}")


def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a sentence encoder")
    tasks = parser.add_subparsers(dest="task", required=True)
    sts = tasks.add_parser("sts", help="STS Benchmark: Spearman x100 of cosine similarity vs gold scores")
    sts.add_argument("--model", required=True, help="model folder, or 'minilm'")
    sts.add_argument("--split", default="dev,test", help="comma-separated splits of train, dev, test")
    sts.add_argument("--pooling", help="rebuild the model with this pooling before evaluating")
    sts.add_argument("--max-seq-length", type=int)
    sts.add_argument("--batch-size", type=int, default=64)
    sts.add_argument("--data-dir")
    sts.add_argument("--download", action="store_true", help="download STS-B into the cache if it is not found")
    sts.add_argument("--json", action="store_true", help="print the scores as JSON")
    sts.set_defaults(handler=_run_evaluate_sts)


def _run_evaluate_sts(args: argparse.Namespace) -> int:
    from st_contrast.evaluation.sts import evaluate_sts
    from st_contrast.training import build_model

    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "dev", "test")]
    if bad:
        raise SystemExit(f"unknown split(s) {bad}; choose from train, dev, test")
    model = build_model(args.model, args.pooling, args.max_seq_length)
    kwargs: dict[str, Any] = {"data_dir": args.data_dir, "batch_size": args.batch_size}
    if args.download:
        kwargs["download"] = True
    scores = {split: evaluate_sts(model, split, **kwargs) for split in splits}
    if args.json:
        print(json.dumps(scores))
    else:
        for split, score in scores.items():
            print(f"STS-B {split}: {score:.2f}")
    return 0


def _add_methods(subparsers) -> None:
    parser = subparsers.add_parser("methods", help="list the losses found through the st_contrast.losses entry points")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_run_methods)


def _run_methods(args: argparse.Namespace) -> int:
    from st_contrast.registry import available_methods

    methods = available_methods()
    if args.json:
        print(json.dumps({name: {"target": m.target, "distribution": m.distribution} for name, m in methods.items()}))
        return 0
    if not methods:
        print("no methods found: is st-contrast installed (pip install -e .)?")
        return 1
    width = max(len(name) for name in methods)
    for name, entry in methods.items():
        print(f"{name:<{width}}  {entry.target}  ({entry.distribution or 'unknown distribution'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="st-contrast", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_methods(subparsers)
    try:
        from st_contrast import fairseq_launch
    except ImportError:  # the fairseq launcher is optional; it never imports fairseq itself
        fairseq_launch = None
    if fairseq_launch is not None and hasattr(fairseq_launch, "add_subcommands"):
        fairseq_launch.add_subcommands(subparsers)
    from st_contrast import simcls_cli

    simcls_cli.add_subcommands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if getattr(args, "accepts_extra", False):
        args.extra = extra
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"st-contrast {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
