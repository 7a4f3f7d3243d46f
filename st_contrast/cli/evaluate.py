"""``st-contrast evaluate``: score a sentence encoder on its papers' benchmarks.

``sts`` (STS Benchmark), ``sts-suite`` (STS12-16, STS-B, SICK-R from SentEval's layout), ``ood`` (intent
classification with out-of-scope queries: LOF, GDA, MSP) and ``re`` (relation extraction: PR-AUC, P@N, micro-F1).
Tables print correlations and rates x100 (the papers' scale); ``--json`` prints the values as the Python functions
return them (0-1), so scripts and sentence-transformers' evaluators agree.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def add_subcommands(subparsers) -> None:
    """Add ``evaluate`` (tasks ``sts``, ``sts-suite``, ``ood``, ``re``) to an argparse subparsers object."""
    parser = subparsers.add_parser("evaluate", help="evaluate a sentence encoder")
    tasks = parser.add_subparsers(dest="task", required=True)
    formatter = argparse.ArgumentDefaultsHelpFormatter

    sts = tasks.add_parser(
        "sts", help="STS Benchmark: Spearman x100 of cosine similarity vs gold scores", formatter_class=formatter
    )
    _model_options(sts)
    sts.add_argument("--split", default="dev,test", help="comma-separated splits of train, dev, test")
    sts.add_argument("--data-dir", help="data folder (default: $ST_CONTRAST_DATA, then the cache)")
    sts.add_argument("--download", action="store_true", help="download STS-B into the cache if it is not found")
    sts.add_argument("--json", action="store_true", help="print the scores as JSON (0-1 scale)")
    sts.set_defaults(handler=run_evaluate_sts)

    suite = tasks.add_parser(
        "sts-suite",
        help="STS12-16, STS-B and SICK-R (SentEval's layout): Spearman x100 of cosine similarity, as SimCSE reports",
        formatter_class=formatter,
    )
    _model_options(suite)
    suite.add_argument(
        "--tasks", default="all", help="comma-separated tasks: STS12..STS16, STS-B, SICK-R (any case), or all"
    )
    suite.add_argument(
        "--senteval-dir",
        help="SentEval's data/downstream folder (holding STS/ and SICK/); default $ST_CONTRAST_SENTEVAL, then the "
        "cache",
    )
    suite.add_argument(
        "--download", action="store_true", help="download SentEval's data (SimCSE's senteval.tar) into the cache"
    )
    suite.add_argument("--json", action="store_true", help="print every number as JSON (0-1 scale)")
    suite.set_defaults(handler=run_evaluate_sts_suite)

    ood = tasks.add_parser(
        "ood",
        help="out-of-scope intent detection (CLINC150 or text,label files): LOF, GDA, MSP; AUROC, FPR@95, F1",
        formatter_class=formatter,
    )
    _model_options(ood)
    ood.add_argument("--clinc-file", help="CLINC150 data_full.json (default: intent/clinc150_data_full.json)")
    ood.add_argument("--data-dir", help="data folder for CLINC150 (default: $ST_CONTRAST_DATA, then the cache)")
    ood.add_argument("--download", action="store_true", help="download CLINC150 into the cache if it is not found")
    ood.add_argument("--num-intents", type=int, help="CLINC150: a seeded random subset of this many intents")
    ood.add_argument("--max-per-intent", type=int, help="CLINC150: at most this many training queries per intent")
    ood.add_argument("--train-file", help="csv/tsv/jsonl of text,label rows (instead of CLINC150)")
    ood.add_argument("--val-file", help="validation file (thresholds come from its in-domain rows)")
    ood.add_argument("--test-file", help="test file (in-domain and out-of-scope rows)")
    ood.add_argument("--format", choices=("csv", "tsv", "jsonl"), help="the files' format (default: from the name)")
    ood.add_argument("--text-column", default="text", help="the text column of the files")
    ood.add_argument("--label-column", default="label", help="the label column of the files")
    ood.add_argument("--oos-label", default="oos", help="the label of out-of-scope rows in the files")
    ood.add_argument("--detectors", default="lof,gda,msp", help="comma-separated detectors of lof, gda, msp")
    ood.add_argument(
        "--fit-on-train",
        action="store_true",
        help="fit a linear classifier on the frozen training embeddings (for MSP and predictions) instead of "
        "the model's saved classifier head",
    )
    ood.add_argument(
        "--threshold",
        default="in_domain",
        choices=("in_domain", "ood_tuned", "ood_tuned_macro"),
        help="in_domain: keep --keep of the in-domain validation queries (no OOD data); ood_tuned: the official "
        "code's best OOD F1 on validation OOD queries (optimistic); ood_tuned_macro: best in-domain/OOD macro-F1",
    )
    ood.add_argument("--keep", type=float, default=0.95, help="share of in-domain validation queries kept")
    ood.add_argument("--lof-neighbors", type=int, default=20, help="LOF's number of neighbours")
    ood.add_argument("--seed", type=int, default=0, help="seed of the CLINC150 intent subset")
    ood.add_argument("--json", action="store_true", help="print the metrics as JSON (0-1 scale)")
    ood.set_defaults(handler=run_evaluate_ood)

    rel = tasks.add_parser(
        "re",
        help="relation extraction (FewRel NYT or SemEval-2010): PR-AUC, P@N, micro-F1 on held-out bags",
        formatter_class=formatter,
    )
    _model_options(rel)
    rel.add_argument("--data", required=True, choices=("nyt", "semeval"), help="the data set")
    rel.add_argument("--data-file", help="the data file (default: relation/... under the data folders)")
    rel.add_argument("--data-dir", help="data folder (default: $ST_CONTRAST_DATA)")
    rel.add_argument("--classifier", help="a saved bag classifier folder (BagAttentionClassifier.save)")
    rel.add_argument(
        "--relations", help="relation -> id JSON of the classifier (default: relations.json next to it, else built)"
    )
    rel.add_argument(
        "--fit-on-train",
        action="store_true",
        help="fit a bag classifier on the frozen embeddings of the training bags (encoders without one)",
    )
    rel.add_argument("--fit-epochs", type=int, default=300, help="full-batch steps of --fit-on-train")
    rel.add_argument("--test-fraction", type=float, default=0.2, help="NYT: share of the bags held out for testing")
    rel.add_argument("--max-train-bags", type=int, help="use a seeded random subset of this many training bags")
    rel.add_argument("--max-test-bags", type=int, help="use a seeded random subset of this many test bags")
    rel.add_argument("--max-words", default="auto", help="context cropping: auto (fit the model), an integer, none")
    rel.add_argument("--top-n", default="100,200", help="the N of P@N, comma-separated")
    rel.add_argument("--seed", type=int, default=0, help="seed of the NYT split and of the subsets")
    rel.add_argument("--json", action="store_true", help="print the metrics as JSON (0-1 scale)")
    rel.set_defaults(handler=run_evaluate_re)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder, or 'minilm'")
    parser.add_argument("--pooling", help="rebuild the model with this pooling before evaluating")
    parser.add_argument("--max-seq-length", type=int, help="truncate texts to this many tokens (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts encoded at once")


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def load_model(args: argparse.Namespace):
    """The model of ``--model``; a folder whose modules are st-contrast's (classifier head, entity pooling) is
    loaded with ``trust_remote_code=True``, which sentence-transformers asks for (only this package's code runs)."""
    from st_contrast.cli.train import build_model, resolve_model_path

    path = Path(resolve_model_path(args.model))
    modules = path / "modules.json"
    if args.pooling is None and modules.is_file():
        types = {str(entry.get("type", "")) for entry in json.loads(modules.read_text(encoding="utf-8"))}
        ours = {t for t in types if t.startswith("st_contrast.")}
        if ours and all(t.startswith(("st_contrast.", "sentence_transformers.")) for t in types):
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), trust_remote_code=True)
            if args.max_seq_length:
                model.max_seq_length = args.max_seq_length
            return model
    return build_model(args.model, args.pooling, args.max_seq_length)


def _emit(args: argparse.Namespace, payload: Any, table: str) -> None:
    print(json.dumps(payload) if args.json else table)


# -- sts ------------------------------------------------------------------------------------------


def run_evaluate_sts(args: argparse.Namespace) -> int:
    """The ``evaluate sts`` handler: prints ``STS-B SPLIT: SCORE`` (x100) per split, or one JSON object (0-1)."""
    from st_contrast.evaluation.sts import evaluate_sts

    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "dev", "test")]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; choose from train, dev, test")
    model = load_model(args)
    progress = _progress(args)
    kwargs: dict[str, Any] = {"data_dir": args.data_dir, "batch_size": args.batch_size, "show_progress_bar": progress}
    if args.download:
        kwargs["download"] = True
    scores = {}
    for split in splits:
        if progress:
            print(f"STS-B {split}: encoding sentence pairs", file=sys.stderr, flush=True)
        scores[split] = evaluate_sts(model, split, **kwargs)
    table = "\n".join(f"STS-B {split} Spearman x100: {100 * score:.2f}" for split, score in scores.items())
    _emit(args, scores, table)
    return 0


# -- sts-suite ------------------------------------------------------------------------------------


def run_evaluate_sts_suite(args: argparse.Namespace) -> int:
    """The ``evaluate sts-suite`` handler: SimCSE's table (x100; rows all / wmean / mean), or JSON (0-1)."""
    from st_contrast.data.senteval import load_sts_suite, task_keys
    from st_contrast.evaluation.sts_suite import sts_suite_scores

    tasks = None if args.tasks.strip().lower() == "all" else task_keys(args.tasks)
    progress = _progress(args)
    data = load_sts_suite(tasks, args.senteval_dir, True if args.download else None, show_progress_bar=progress)
    model = load_model(args)
    if progress:
        pairs = sum(len(task) for task in data.values())
        print(f"STS suite: {len(data)} task(s), {pairs} scored pairs; encoding", file=sys.stderr, flush=True)
    result = sts_suite_scores(model, data, batch_size=args.batch_size, show_progress_bar=progress)
    lines = ["STS suite: Spearman x100 of cosine similarity (all: subsets concatenated, as SimCSE reports)"]
    lines.append(result.table())
    if result.unscored:
        lines.append(f"({result.unscored} unscored pairs, empty gold lines, skipped)")
    _emit(args, result.to_dict(), "\n".join(lines))
    return 0


# -- ood ------------------------------------------------------------------------------------------


OOD_COLUMNS = (
    ("auroc", "AUROC"),
    ("fpr95", "FPR@95"),
    ("aupr_in", "AUPR-in"),
    ("aupr_out", "AUPR-out"),
    ("in_domain_accuracy", "in-acc"),
    ("ood_f1", "OOD-F1"),
    ("all_macro_f1", "macro-F1"),
)


def run_evaluate_ood(args: argparse.Namespace) -> int:
    """The ``evaluate ood`` handler: one row per detector (x100), or JSON (0-1)."""
    from st_contrast.evaluation.ood import DETECTORS, evaluate_ood, load_intent_files

    detectors = [d.strip().lower() for d in args.detectors.split(",") if d.strip()]
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors:
        raise ValueError(f"unknown detector(s) {unknown}; choose from {', '.join(DETECTORS)}")
    files = [args.train_file, args.val_file, args.test_file]
    if any(files):
        if not all(files):
            raise ValueError("give --train-file, --val-file and --test-file together (or none, for CLINC150)")
        data = load_intent_files(*files, args.format, args.text_column, args.label_column, args.oos_label)
        source = f"{Path(args.test_file).name} (out-of-scope label {args.oos_label!r})"
    else:
        from st_contrast.data.clinc import load_clinc150

        data = load_clinc150(
            args.clinc_file, args.data_dir, args.num_intents, max_per_intent=args.max_per_intent, seed=args.seed,
            download=args.download,
        )  # fmt: skip
        source = "CLINC150"
    if args.threshold != "in_domain" and not data.oos_val:
        raise ValueError(f"--threshold {args.threshold} needs out-of-scope validation queries; the data has none")
    model = load_model(args)
    classifier = "fit" if args.fit_on_train else "auto"
    if "msp" in detectors and not args.fit_on_train:
        from st_contrast.modules import find_classifier_head

        if find_classifier_head(model) is None:
            logger.warning("the model has no classifier head: MSP left out (use --fit-on-train to fit one)")
            detectors = [d for d in detectors if d != "msp"]
    progress = _progress(args)
    if progress:
        print(
            f"OOD: {source}, {data.num_labels} intents; train {len(data.train)}, val {len(data.val)}, test "
            f"{len(data.test)} in-domain + {len(data.oos_test)} out-of-scope; encoding",
            file=sys.stderr,
            flush=True,
        )
    results = evaluate_ood(
        model, data.train, data.val, data.test, data.oos_test, val_ood=data.oos_val or None, detectors=detectors,
        threshold=args.threshold, keep=args.keep, lof_neighbors=args.lof_neighbors, batch_size=args.batch_size,
        num_labels=data.num_labels, classifier=classifier, show_progress_bar=progress, label_names=data.label_names,
    )  # fmt: skip
    head = "linear probe fitted on train" if args.fit_on_train else "the model's classifier head"
    lines = [
        f"OOD detection, {source}: {data.num_labels} intents, test {len(data.test)} in-domain + "
        f"{len(data.oos_test)} out-of-scope; threshold {args.threshold}; MSP/predictions from {head} (x100)",
        f"{'detector':<10}" + "".join(f"{title:>10}" for _, title in OOD_COLUMNS),
    ]
    for name, metrics in results.items():
        lines.append(f"{name.upper():<10}" + "".join(f"{100 * metrics[key]:>10.2f}" for key, _ in OOD_COLUMNS))
    payload = {
        "data": source,
        "num_intents": data.num_labels,
        "test_in_domain": len(data.test),
        "test_ood": len(data.oos_test),
        "threshold_rule": args.threshold,
        "classifier": classifier,
        "detectors": results,
    }
    _emit(args, payload, "\n".join(lines))
    return 0


# -- re -------------------------------------------------------------------------------------------


def _subset(items: list, size: int | None, seed: int) -> list:
    if size is None or size >= len(items):
        return items
    if size < 1:
        raise ValueError(f"a subset size must be >= 1, got {size}")
    return random.Random(seed).sample(items, size)


def _max_words(value: str) -> int | str | None:
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text == "none":
        return None
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"--max-words must be auto, none or a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"--max-words must be auto, none or a positive integer, got {value!r}")
    return number


def run_evaluate_re(args: argparse.Namespace) -> int:
    """The ``evaluate re`` handler: PR-AUC, P@N, micro-F1 (x100), or JSON (0-1)."""
    from st_contrast.data import relation as rd
    from st_contrast.evaluation.relation import bag_classifier_class, evaluate_relation_extraction, fit_bag_classifier

    if bool(args.classifier) == bool(args.fit_on_train):
        raise ValueError("give either --classifier DIR (a saved bag classifier) or --fit-on-train")
    top_n = tuple(int(n) for n in args.top_n.split(",") if n.strip())
    max_words = _max_words(args.max_words)
    if args.data == "nyt":
        instances = rd.read_fewrel_nyt(args.data_file, args.data_dir)
        train_bags, test_bags = rd.split_bags(rd.group_bags(instances), args.test_fraction, args.seed)
        relation_to_id, na, source = rd.relation_ids(instances), None, "FewRel NYT"
    else:
        train_instances = rd.read_semeval2010("train", args.data_file, args.data_dir)
        test_instances = rd.read_semeval2010("test", args.data_file, args.data_dir)
        train_bags, test_bags = rd.group_bags(train_instances), rd.group_bags(test_instances)
        relation_to_id = rd.relation_ids(train_instances + test_instances, na=rd.SEMEVAL_NA)
        na, source = rd.SEMEVAL_NA, "SemEval-2010 Task 8"
    train_bags = _subset(train_bags, args.max_train_bags, args.seed)
    test_bags = _subset(test_bags, args.max_test_bags, args.seed + 1)
    model = load_model(args)
    progress = _progress(args)
    if progress:
        print(
            f"RE: {source}, {len(relation_to_id)} relations; {len(train_bags)} training bags, {len(test_bags)} test "
            "bags; encoding",
            file=sys.stderr,
            flush=True,
        )
    if args.fit_on_train:
        classifier = fit_bag_classifier(
            model, train_bags, relation_to_id, batch_size=args.batch_size, epochs=args.fit_epochs, seed=args.seed,
            max_words=max_words, show_progress_bar=progress,
        )  # fmt: skip
    else:
        folder = Path(args.classifier)
        if not (folder / "bag_classifier.json").is_file():
            raise FileNotFoundError(f"{folder} holds no bag_classifier.json; expected a BagAttentionClassifier.save")
        classifier = bag_classifier_class().load(folder)
        relations = Path(args.relations) if args.relations else None
        if relations is None:
            candidates = (folder.parent / "relations.json", folder / "relations.json")
            relations = next((p for p in candidates if p.is_file()), None)
        if relations is not None:
            relation_to_id = {str(k): int(v) for k, v in json.loads(relations.read_text(encoding="utf-8")).items()}
        else:
            logger.warning("no relations.json next to the classifier: relation ids rebuilt from the data (sorted)")
        if classifier.num_relations != len(relation_to_id):
            raise ValueError(
                f"the bag classifier scores {classifier.num_relations} relations but the data has "
                f"{len(relation_to_id)}; pass --relations with the mapping it was trained with"
            )
    metrics = evaluate_relation_extraction(
        model, classifier, test_bags, relation_to_id, na=na, batch_size=args.batch_size, max_words=max_words,
        top_n=top_n, show_progress_bar=progress,
    )  # fmt: skip
    keys = ["pr_auc", *(f"p@{n}" for n in top_n), "micro_f1", "micro_precision", "micro_recall", "max_f1", "accuracy"]
    titles = {"pr_auc": "PR-AUC", "micro_f1": "micro-F1", "micro_precision": "micro-P", "micro_recall": "micro-R"}
    titles.update({"max_f1": "max-F1", "accuracy": "accuracy"})
    how = "bag classifier fitted on the training bags" if args.fit_on_train else f"bag classifier {args.classifier}"
    lines = [
        f"Relation extraction, {source}: {len(test_bags)} test bags, {len(relation_to_id)} relations"
        f"{'' if na is None else f' (NA: {na})'}; {how} (x100)",
        "".join(f"{titles.get(key, key.upper()):>10}" for key in keys),
        "".join(f"{100 * metrics[key]:>10.2f}" for key in keys),
    ]
    payload = {"data": source, "train_bags": len(train_bags), "test_bags": len(test_bags), "metrics": metrics}
    _emit(args, payload, "\n".join(lines))
    return 0
