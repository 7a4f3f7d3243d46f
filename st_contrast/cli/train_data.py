"""The data each method trains on, and the evaluation that ends its run, for ``st-contrast train``.

:func:`prepare_training_data` turns a :class:`~st_contrast.cli.train.TrainConfig` into the columns its loss
expects, through the method's reader (:mod:`st_contrast.cli.methods` says which):

=============  =========================================================  ======================================
data kind      formats (``--train-format``)                               becomes
=============  =========================================================  ======================================
sentences      sentences, snli, simcse-csv, jsonl, csv, tsv               one text column, pairs or triplets
documents      documents (a folder of .txt files or a .jsonl), wikitext   DeCLUTR anchor/positive span columns
cline          sentences (rewritten with WordNet when the run starts)     original, synonym, antonym
labelled       csv, jsonl, tsv (a label column), clinc150                 text + label id (names saved)
bags           fewrel-nyt, semeval2010                                    CIL bag rows (sentence_1..k, augmented)
=============  =========================================================  ======================================

It also returns what the loss needs from the data (``num_labels``, ``label_names``, ``num_relations``,
DeCLUTR's ``num_anchors``/``num_positives``), the label names to save (``label_map.json``) and the
evaluation to run after training (OOD detection, classification accuracy or relation extraction; STS-B
is run by :func:`~st_contrast.cli.train.train` itself).
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from st_contrast.cli.methods import FORMATS_FOR, method_profile

if TYPE_CHECKING:
    from st_contrast.cli.train import TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What :func:`prepare_training_data` gives: the dataset and what comes with it.

    Attributes:
        dataset: the ``datasets.Dataset`` the Trainer trains on.
        loss_defaults: loss arguments that come from the data (used unless the config gives them).
        label_names: class (or relation) names in id order, saved as ``label_map.json``; ``None`` without labels.
        label_info: extra fields for ``label_map.json`` (columns, task, out-of-scope label).
        evaluate: ``(model, loss, show_progress) -> results`` for the method's evaluation after training.
        notes: lines printed before training (what was read, skipped, rewritten).
        subsampled: ``max_train_samples`` was already applied (before an expensive transformation).
    """

    dataset: Any
    loss_defaults: dict[str, Any] = field(default_factory=dict)
    label_names: list[str] | None = None
    label_info: dict[str, Any] = field(default_factory=dict)
    evaluate: Callable[[Any, Any, bool], dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)
    subsampled: bool = False


def _usage_error(message: str) -> Exception:
    from st_contrast.cli.train import UsageError

    return UsageError(message)


def resolve_train_format(config: TrainConfig) -> str:
    """``config.train_format``, with ``auto`` replaced by the reader the method needs for this file.

    Raises:
        UsageError: the format cannot feed the method's kind of data (the message lists those that can).
    """
    kind = method_profile(config.method).data
    allowed = FORMATS_FOR[kind]
    if config.train_format != "auto":
        if config.train_format not in allowed:
            raise _usage_error(
                f"train_format {config.train_format!r} does not fit method {config.method!r}, which trains on "
                f"{kind} data; use one of {', '.join(allowed)} (or auto)"
            )
        return config.train_format
    path = str(config.train_file)
    lower = path.lower()
    if lower.endswith(".gz") and not lower.endswith((".tar.gz", ".tgz")):
        lower = lower[:-3]
    suffix = Path(lower).suffix
    if kind == "documents":
        return "documents"
    if kind == "bags":
        return "fewrel-nyt" if suffix == ".json" else "semeval2010"
    if kind == "labelled":
        return {".json": "clinc150", ".jsonl": "jsonl", ".tsv": "tsv"}.get(suffix, "csv")
    return {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(suffix, "sentences")


def _loss_argument(config: TrainConfig, loss_class: type, name: str) -> Any:
    """The value ``loss_class`` gets for ``name``: the config's, else the parameter's default."""
    if name in config.loss:
        return config.loss[name]
    parameter = inspect.signature(loss_class.__init__).parameters.get(name)
    return parameter.default if parameter is not None else None


def _subsample(items: list[Any], config: TrainConfig) -> list[Any]:
    if config.max_train_samples and len(items) > config.max_train_samples:
        return random.Random(config.seed).sample(items, config.max_train_samples)
    return items


def prepare_training_data(config: TrainConfig, model: Any = None) -> TrainingData:
    """The training data for ``config`` (its ``train_format`` already resolved), read by the method's reader."""
    from st_contrast.cli.train import loss_class_for

    kind = method_profile(config.method).data
    fmt = resolve_train_format(config)
    if fmt in ("sentences", "snli", "simcse-csv") and kind in ("sentences", "cline"):
        return _sentence_data(config, fmt, kind)
    if fmt in ("documents", "wikitext"):
        return _document_data(config, fmt, loss_class_for(config), model)
    if fmt == "clinc150":
        return _clinc_data(config)
    if fmt in ("fewrel-nyt", "semeval2010"):
        return _bag_data(config, fmt)
    if kind == "labelled":
        return _labelled_data(config, fmt)
    from st_contrast.data import read_records

    return TrainingData(read_records(config.train_file, fmt, data_dir=config.data_dir).dataset())


# -- sentences and CLINE -----------------------------------------------------------------------------


def _sentence_data(config: TrainConfig, fmt: str, kind: str) -> TrainingData:
    from st_contrast import data

    path = config.train_file
    if fmt == "snli":
        return TrainingData(data.nli_dataset(data.snli_triplets(path)))
    if fmt == "simcse-csv":
        return TrainingData(data.nli_dataset(data.read_simcse_nli_csv(path)))
    sentences = data.read_sentences(path, data_dir=config.data_dir)
    if kind != "cline":
        return TrainingData(data.sentence_dataset(sentences))
    from st_contrast.data.cline import cline_rewrites

    sentences = _subsample(sentences, config)
    result = cline_rewrites(
        sentences,
        replace_ratio=config.replace_ratio,
        hypernym_probability=config.hypernym_probability,
        max_senses=config.max_senses,
        skip_proper_nouns=config.skip_proper_nouns,
        seed=config.seed,
    )
    from datasets import Dataset

    dataset = Dataset.from_dict(
        {
            "original": [r.original for r in result.rewrites],
            "synonym": [r.synonym for r in result.rewrites],
            "antonym": [r.antonym for r in result.rewrites],
        }
    )
    note = f"CLINE: rewrote {len(result.rewrites)} of {len(sentences)} sentences with WordNet"
    if result.num_skipped:
        note += f" ({result.num_skipped} skipped: no word WordNet can replace by a synonym)"
    return TrainingData(dataset, notes=[note], subsampled=True)


# -- DeCLUTR documents ------------------------------------------------------------------------------


def _document_data(config: TrainConfig, fmt: str, loss_class: type, model: Any) -> TrainingData:
    from st_contrast.data.declutr import DeCLUTRSpanSampler
    from st_contrast.data.documents import read_documents

    layout = "wikitext" if fmt == "wikitext" else "auto"
    documents = _subsample(read_documents(config.train_file, layout, data_dir=config.data_dir), config)
    num_anchors = _loss_argument(config, loss_class, "num_anchors") or 2
    num_positives = _loss_argument(config, loss_class, "num_positives") or 2
    tokenizer = None
    if config.span_tokens == "model":
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise _usage_error("span_tokens 'model' needs a model with a tokenizer")
    try:
        sampler = DeCLUTRSpanSampler(
            num_anchors=int(num_anchors),
            num_positives=int(num_positives),
            min_span=config.min_span,
            max_span=config.max_span,
            strategy=config.span_strategy,
            tokenizer=tokenizer,
            on_short=config.on_short,
            seed=config.seed,
        )
        names = [name for name, _ in documents]
        dataset = sampler.dataset([text for _, text in documents], config.samples_per_document, names=names)
    except ValueError as error:
        raise _usage_error(
            f"{config.train_file}: {error} (DeCLUTR needs num_anchors*max_span*2 tokens per document: lower "
            "--max-span, or pass --on-short skip or shrink)"
        ) from None
    if len(dataset) == 0:
        raise _usage_error(
            f"{config.train_file}: no document is long enough for DeCLUTR spans ({sampler.report()}); each needs "
            f"{sampler.min_document_length} tokens with --max-span {config.max_span}: lower --max-span or pass "
            "--on-short shrink"
        )
    loss_defaults = {"num_anchors": int(num_anchors), "num_positives": int(num_positives)}
    return TrainingData(dataset, loss_defaults, notes=[f"DeCLUTR spans: {sampler.report()}"], subsampled=True)


# -- labelled text ---------------------------------------------------------------------------------


def _known_label_names(config: TrainConfig) -> list[str] | None:
    if not config.label_map:
        return None
    from st_contrast.data.labels import load_label_map

    return list(load_label_map(config.label_map)["label_names"])


def _label_loss_defaults(config: TrainConfig, names: Sequence[str]) -> dict[str, Any]:
    from st_contrast.cli.train import loss_parameters

    parameters = loss_parameters(_loss_class(config)) or {}
    defaults: dict[str, Any] = {}
    if "num_labels" in parameters:
        defaults["num_labels"] = len(names)
    if "label_names" in parameters:
        defaults["label_names"] = list(names)
    return defaults


def _loss_class(config: TrainConfig) -> type:
    from st_contrast.cli.train import loss_class_for

    return loss_class_for(config)


def _read_labelled(
    config: TrainConfig, path: str, fmt: str
) -> tuple[list[str], list[tuple[str, ...]], list[str], str, str]:
    """``(text columns, texts per row, label (as text) per row, the file's name, the label column)``."""
    from st_contrast.data import read_records
    from st_contrast.data.reading import iter_jsonl

    label_type = "name"
    if fmt == "jsonl":  # JSON labels keep their type: integers are class ids
        for _, record in iter_jsonl(path):
            column = config.label_column or next((c for c in ("label", "labels") if c in record), None)
            if isinstance(record, dict) and isinstance(record.get(column), int):
                label_type = "int"
            break
    records = read_records(
        path, fmt, label_column=config.label_column, label_type=label_type, data_dir=config.data_dir
    )
    if records.label_column is None:
        raise _usage_error(
            f"{records.path}: no label column (columns: {records.columns}); method {config.method!r} trains on "
            "labelled text: name the column label, or pass --label-column"
        )
    text_columns = records.text_columns
    if config.text_column is not None:
        if config.text_column not in records.columns:
            raise _usage_error(f"{records.path}: no column {config.text_column!r} (columns: {records.columns})")
        text_columns = [config.text_column]
    if not text_columns:
        raise _usage_error(f"{records.path}: no text column (columns: {records.columns})")
    file_names = records.label_names or []
    row_labels = [
        file_names[row[records.label_column]] if records.label_type == "name" else str(row[records.label_column])
        for row in records
    ]
    texts = [tuple(row[c] for c in text_columns) for row in records]
    return text_columns, texts, row_labels, records.path, records.label_column


def _labelled_data(config: TrainConfig, fmt: str) -> TrainingData:
    from datasets import Dataset

    known = _known_label_names(config)
    text_columns, texts, labels, path, label_column = _read_labelled(config, config.train_file, fmt)
    single = config.method in ("supcon_ood", "rdrop")
    if len(text_columns) > (1 if single else 2):
        raise _usage_error(
            f"{path}: several text columns {text_columns}; method {config.method!r} takes "
            f"{'one' if single else 'one or two'}: pass --text-column"
        )
    ood = config.ood_label
    kept = [(t, y) for t, y in zip(texts, labels) if y != ood]
    dropped = len(texts) - len(kept)
    if known is not None:
        names = known
        unknown = sorted({y for _, y in kept} - set(names))
        if unknown:
            raise _usage_error(
                f"{path}: label(s) {unknown[:5]} are not in the label map {config.label_map} ({len(names)} labels)"
            )
    else:
        distinct = {y for _, y in kept}
        numeric = all(y.lstrip("-").isdigit() for y in distinct)
        names = sorted(distinct, key=int) if numeric else sorted(distinct)
    if len(names) < 2:
        raise _usage_error(f"{path}: {len(names)} distinct label(s); a classifier needs at least 2")
    ids = {name: i for i, name in enumerate(names)}
    columns = {c: [t[i] for t, _ in kept] for i, c in enumerate(text_columns)}
    columns["label"] = [ids[y] for _, y in kept]
    dataset = Dataset.from_dict(columns)
    notes = [f"labelled text: {len(kept)} examples, {len(names)} labels (label map saved with the model)"]
    if dropped:
        notes.append(f"left {dropped} example(s) labelled {ood!r} (out-of-scope) out of training")
    train_pairs = [(t[0], ids[y]) for t, y in kept]
    evaluate = None
    if config.eval_file:
        evaluate = _labelled_file_evaluation(config, fmt, names, train_pairs)
    else:
        notes.append("no --eval-file: the run ends without a held-out evaluation")
    info = {"label_column": label_column, "text_column": text_columns[0], "out_of_scope_label": ood}
    return TrainingData(dataset, _label_loss_defaults(config, names), names, info, evaluate, notes)


def _labelled_file_evaluation(
    config: TrainConfig, fmt: str, names: list[str], train_pairs: list[tuple[str, int]]
) -> Callable[[Any, Any, bool], dict[str, Any]]:
    eval_fmt = resolve_eval_format(config.eval_file, fmt)
    _, texts, labels, path, _ = _read_labelled(config, config.eval_file, eval_fmt)
    ids = {name: i for i, name in enumerate(names)}
    ood = config.ood_label
    unknown = sorted({y for y in labels if y not in ids and y != ood})
    if unknown:
        raise _usage_error(
            f"{path}: label(s) {unknown[:5]} were not seen in training ({len(names)} labels"
            + (f"; mark out-of-scope examples with --ood-label, now {ood!r}" if config.evaluation == "ood" else "")
            + ")"
        )
    in_domain = [(t[0], ids[y]) for t, y in zip(texts, labels) if y != ood]
    out_of_scope = [t[0] for t, y in zip(texts, labels) if y == ood]
    if config.evaluation == "ood":
        if not out_of_scope:
            raise _usage_error(f"{path}: OOD evaluation needs examples labelled --ood-label ({ood!r}); found none")
        # thresholds come from in-domain data only: a seeded half of the held-out in-domain examples
        shuffled = random.Random(config.seed).sample(in_domain, len(in_domain))
        val, test = shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]
        description = (
            f"{Path(path).name}: {len(test)} in-domain, {len(out_of_scope)} out-of-scope; thresholds from the other "
            f"{len(val)} in-domain"
        )
        return lambda model, loss, progress: _ood_results(
            model, train_pairs, val, test, out_of_scope, None, len(names), description, config.batch_size
        )
    description = f"{Path(path).name}: {len(in_domain)} examples"
    return lambda model, loss, progress: _classification_results(
        model, train_pairs, in_domain, len(names), description, config.batch_size
    )


def resolve_eval_format(path: str, train_format: str) -> str:
    suffix = Path(str(path)).suffix.lower()
    return {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(suffix, train_format)


def _clinc_data(config: TrainConfig) -> TrainingData:
    from st_contrast.data.clinc import load_clinc150

    known = _known_label_names(config)
    try:
        clinc = load_clinc150(
            config.train_file,
            data_dir=config.data_dir,
            num_intents=None if known else config.num_intents,
            intents=known,
            max_per_intent=config.max_per_intent,
            seed=config.seed,
        )
    except ValueError as error:
        if type(error) is ValueError:  # a bad setting (DataFormatError keeps its file:line message)
            raise _usage_error(f"clinc150: {error}") from None
        raise
    if known is not None and clinc.label_names != known:
        raise _usage_error(f"{config.label_map}: its label names are not sorted CLINC150 intents")
    train = _subsample(list(clinc.train), config)
    from datasets import Dataset

    dataset = Dataset.from_dict({"sentence": [t for t, _ in train], "label": [y for _, y in train]})
    names = clinc.label_names
    notes = [f"CLINC150: {len(train)} training queries, {len(names)} intents (out-of-scope queries left out)"]
    size = config.batch_size
    if config.evaluation == "ood":
        description = (
            f"CLINC150 test: {len(clinc.test)} in-domain, {len(clinc.oos_test)} out-of-scope; thresholds from "
            f"{len(clinc.val)} in-domain validation queries"
        )

        def evaluate(model: Any, loss: Any, progress: bool) -> dict[str, Any]:
            return _ood_results(
                model, train, clinc.val, clinc.test, clinc.oos_test, None, len(names), description, size
            )
    else:
        description = f"CLINC150 test: {len(clinc.test)} in-domain queries"

        def evaluate(model: Any, loss: Any, progress: bool) -> dict[str, Any]:
            return _classification_results(model, train, clinc.test, len(names), description, size)

    info = {"task": "clinc150", "text_column": "sentence", "label_column": "label"}
    return TrainingData(dataset, _label_loss_defaults(config, names), names, info, evaluate, notes, subsampled=True)


def _ood_results(
    model: Any,
    train: Sequence[tuple[str, int]],
    val: Sequence[tuple[str, int]],
    test: Sequence[tuple[str, int]],
    test_ood: Sequence[str],
    val_ood: Sequence[str] | None,
    num_labels: int,
    description: str,
    batch_size: int,
) -> dict[str, Any]:
    from st_contrast.evaluation.ood import evaluate_ood

    neighbours = min(20, len(train) - 1)  # LOF's 20 (the paper's), fewer only for a tiny training set
    metrics = evaluate_ood(
        model, train, val, test, test_ood, val_ood=val_ood, num_labels=num_labels, lof_neighbors=neighbours
    )
    if neighbours != 20:
        description += f"; LOF with {neighbours} neighbours (fewer training examples than 20)"
    return {"task": "ood", "description": description, "detectors": metrics}


def _classification_results(
    model: Any,
    train: Sequence[tuple[str, int]],
    test: Sequence[tuple[str, int]],
    num_labels: int,
    description: str,
    batch_size: int,
) -> dict[str, Any]:
    """Accuracy and macro-F1 on ``test``: from the classifier head when the model has one, else the nearest
    class mean (cosine) of the training embeddings."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from st_contrast.evaluation.ood import features_of

    if not test:
        raise _usage_error("the evaluation data holds no in-domain example")
    test_f = features_of(model, test, 64)
    if test_f.logits is not None:
        predictions, how = test_f.logits.argmax(axis=1), "classifier head"
    else:
        train_f = features_of(model, train, 64)

        def unit(x: np.ndarray) -> np.ndarray:
            return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

        means = np.stack([train_f.embeddings[train_f.labels == c].mean(axis=0) for c in range(num_labels)])
        predictions, how = (unit(test_f.embeddings) @ unit(means).T).argmax(axis=1), "nearest class mean"
    labels = test_f.labels
    return {
        "task": "classification",
        "description": description,
        "predictor": how,
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=list(range(num_labels)), average="macro")),
    }


# -- relation bags (CIL) ---------------------------------------------------------------------------


def _bag_data(config: TrainConfig, fmt: str) -> TrainingData:
    from st_contrast.data.relation import (
        SEMEVAL_NA,
        Bag,
        cil_dataset,
        group_bags,
        pseudo_bags,
        read_fewrel_nyt,
        read_semeval2010,
        relation_ids,
        split_bags,
    )
    from st_contrast.views import TfidfSubstitution

    path = config.train_file
    if fmt == "fewrel-nyt":
        instances = read_fewrel_nyt(path)
        train_bags, test_bags = split_bags(group_bags(instances), test_fraction=config.eval_fraction, seed=config.seed)
        train = [instance for bag in train_bags for instance in bag.instances]
        relations, na = relation_ids(instances), None
        where = f"{len(test_bags)} held-out entity-pair bags ({config.eval_fraction:.0%} of {Path(path).name})"
    else:
        train = read_semeval2010("train", path)
        test = read_semeval2010("test", path)
        test_bags = [Bag((instance.uid,), instance.relation, [instance]) for instance in test]
        relations, na = relation_ids(train + test, na=SEMEVAL_NA), SEMEVAL_NA
        where = f"{len(test_bags)} SemEval-2010 test sentences"
    known = _known_label_names(config)
    if known is not None:
        missing = sorted(set(relations) - set(known))
        if missing:
            raise _usage_error(f"{path}: relation(s) {missing[:5]} are not in the label map {config.label_map}")
        relations = {name: i for i, name in enumerate(known)}
    train = _subsample(train, config)
    view = TfidfSubstitution(seed=config.seed).fit(train)  # IDF and relation words from the training part only
    bags = pseudo_bags(train, config.bag_size, seed=config.seed)
    dataset = cil_dataset(bags, relations, config.bag_size, augment=view, seed=config.seed, max_words=config.max_words)
    names = sorted(relations, key=relations.get)
    notes = [
        f"CIL: {len(train)} training sentences in {len(bags)} pseudo-bags of {config.bag_size}; {len(names)} relations"
    ]
    max_words = config.max_words

    def evaluate(model: Any, loss: Any, progress: bool) -> dict[str, Any]:
        from st_contrast.evaluation.relation import evaluate_relation_extraction

        metrics = evaluate_relation_extraction(model, loss, test_bags, relations, na=na, max_words=max_words)
        return {"task": "relation", "description": where, "metrics": metrics}

    info = {"task": fmt, "no_relation": na}
    return TrainingData(dataset, {"num_relations": len(names)}, names, info, evaluate, notes, subsampled=True)


# -- printing --------------------------------------------------------------------------------------


def format_evaluation(results: dict[str, Any]) -> list[str]:
    """The lines ``st-contrast train`` prints for an evaluation's results (scores x100)."""
    task = results.get("task")
    lines = [f"{_TITLES.get(task, task)} ({results.get('description', '')})"]
    if task == "ood":
        lines.append(f"{'detector':<10}{'AUROC':>8}{'FPR@95':>8}{'in-acc':>8}{'OOD-F1':>8}{'all-F1':>8}")
        for name, m in results["detectors"].items():
            lines.append(
                f"{name:<10}{100 * m['auroc']:>8.2f}{100 * m['fpr95']:>8.2f}{100 * m['in_domain_accuracy']:>8.2f}"
                f"{100 * m['ood_f1']:>8.2f}{100 * m['all_macro_f1']:>8.2f}"
            )
    elif task == "classification":
        lines.append(f"{'predictor':<22}{'accuracy':>10}{'macro-F1':>10}")
        lines.append(f"{results['predictor']:<22}{100 * results['accuracy']:>10.2f}{100 * results['macro_f1']:>10.2f}")
    elif task == "relation":
        m = results["metrics"]
        lines.append(f"{'PR-AUC':>8}{'P@100':>8}{'P@200':>8}{'micro-F1':>10}{'accuracy':>10}")
        lines.append(
            f"{100 * m['pr_auc']:>8.2f}{100 * m['p@100']:>8.2f}{100 * m['p@200']:>8.2f}{100 * m['micro_f1']:>10.2f}"
            f"{100 * m['accuracy']:>10.2f}"
        )
    return lines


_TITLES = {
    "ood": "OOD detection x100",
    "classification": "classification x100",
    "relation": "relation extraction x100",
}
