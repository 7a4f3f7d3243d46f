"""``st-contrast simcls-build-data`` (scored candidate lists as JSONL) and ``simcls-rerank`` (inference).

Training runs through fairseq (``st-contrast fairseq-train DATA --task simcls_reranking --arch simcls_scorer
--criterion simcls_ranking ...``); see ``docs/methods/simcls.md``. Nothing here imports fairseq in the
``st-contrast`` process: ``simcls-rerank`` checks its options, then runs :func:`rerank_main` in a child
process (like the ``fairseq-*`` wrappers), which calls :func:`fairseq_plugins.tasks.simcls_reranking.rerank`.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence

from st_contrast.cli.fairseq import fairseq_env

RERANK_DESCRIPTION = (
    "Score every candidate by its cosine with the document (first-token vectors of the trained "
    "encoder) and write the highest-scoring one per document."
)


def add_rerank_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``simcls-rerank`` (parsed again by :func:`rerank_main` in the child process)."""
    parser.add_argument("--checkpoint", required=True, help="fairseq checkpoint of a simcls_scorer model")
    parser.add_argument(
        "--input",
        required=True,
        help="JSONL, one document per line with 'source' and 'candidates' (strings or objects with 'text'); "
        "'reference' (optional) is used to report ROUGE",
    )
    parser.add_argument("--output", required=True, help="where to write the choices ('-': stdout)")
    parser.add_argument(
        "--format",
        choices=("jsonl", "text"),
        default="jsonl",
        help="jsonl: id, index of the chosen candidate, summary, all scores; text: the chosen summary per line",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="documents per forward pass (default 4)")
    parser.add_argument(
        "--pretrained-encoder", default=None, help="encoder folder, if it moved since training (default: as saved)"
    )
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``simcls-build-data``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--realsumm",
        action="store_true",
        help="REALSumm (100 CNN/DM documents, real system summaries as candidates) from the data folder",
    )
    source.add_argument(
        "--fairseq-generate",
        metavar="FILE",
        help="stdout of fairseq-generate with an n-best list ('-': stdin), e.g. --beam 16 --nbest 16 "
        "--diverse-beam-groups 16 --diverse-beam-strength 1.0",
    )
    source.add_argument(
        "--jsonl", metavar="FILE", help="an existing SimCLS JSONL file to split with --output-dir (no re-scoring)"
    )
    parser.add_argument("--data-dir", default=None, help="data folder for --realsumm (default: $ST_CONTRAST_DATA)")
    parser.add_argument(
        "--sources", default=None, help="untokenised documents, line i = sample id i (default: the S- lines)"
    )
    parser.add_argument(
        "--references", default=None, help="untokenised references, line i = sample id i (default: the T- lines)"
    )
    parser.add_argument(
        "--hypothesis-prefix", choices=("H", "D"), default="H", help="H- (BPE removed) or D- (detokenised) lines"
    )
    parser.add_argument(
        "--sentence-split",
        default="punct",
        help="how one-line summaries are split into sentences for ROUGE-Lsum: punct (after . ! ?), none, or a "
        "literal separator such as '<q>' (default punct)",
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="drop documents with < 2 candidates or no reference"
    )
    parser.add_argument("--keep-duplicates", action="store_true", help="keep candidates whose text repeats")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--output", help="write all documents to this JSONL file")
    out.add_argument(
        "--output-dir", help="write train.jsonl, valid.jsonl and test.jsonl, split by document (see --num-folds)"
    )
    parser.add_argument("--num-folds", type=int, default=5, help="with --output-dir: test set = 1 of K folds")
    parser.add_argument("--fold", type=int, default=0, help="with --output-dir: which fold is the test set (0-based)")
    parser.add_argument(
        "--valid-size", type=int, default=0, help="with --output-dir: documents moved from train to valid"
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffling seed for the split (default 0)")
    parser.add_argument(
        "--write-dict",
        action="store_true",
        help="also write dict.txt (fairseq format) of the whitespace tokens of the training texts, for the "
        "fairseq-encoder scorer",
    )


def split_folds(n: int, num_folds: int, fold: int, valid_size: int = 0, seed: int = 0) -> dict[str, list[int]]:
    """Indices of train/valid/test for fold ``fold`` of ``num_folds`` over a seeded shuffle of ``range(n)``."""
    if num_folds < 2:
        raise ValueError(f"--num-folds must be >= 2, got {num_folds}")
    if not 0 <= fold < num_folds:
        raise ValueError(f"--fold must be in [0, {num_folds - 1}], got {fold}")
    if n < num_folds:
        raise ValueError(f"cannot split {n} documents into {num_folds} folds")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    test = sorted(order[fold::num_folds])
    rest = [i for i in order if i not in set(test)]
    if not 0 <= valid_size < len(rest):
        raise ValueError(f"--valid-size must be in [0, {len(rest) - 1}], got {valid_size}")
    return {"train": sorted(rest[valid_size:]), "valid": sorted(rest[:valid_size]), "test": test}


def write_dictionary(texts: Sequence[str], path: str) -> int:
    """A fairseq ``dict.txt`` (``token count`` lines, most frequent first); returns its size."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text.split())
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{token} {count}\n" for token, count in counts.most_common())
    return len(counts)


def _read_lines(path: str | None) -> list[str] | None:
    """A line-aligned file through the reading layer (BOM dropped, CRLF ends, invalid UTF-8 as ``file:line``)."""
    if path is None:
        return None
    from st_contrast.data.reading import read_lines

    return read_lines(path)


def _id_list(ids: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def check_generated_ids(generated_ids: Sequence[int], texts: Sequence[str] | None, option: str) -> None:
    """Refuse ``fairseq-generate`` output that does not hold one sample per line of ``texts`` (``option``'s file).

    fairseq's sample id ``i`` is line ``i`` of the generated subset; an id that is missing was dropped by the
    generation run (fairseq-fixed 0.12 drops a last batch smaller than ``--required-batch-size-multiple``).
    """
    if texts is None:
        return
    missing = sorted(set(range(len(texts))) - set(generated_ids))
    beyond = sorted(i for i in generated_ids if i >= len(texts))
    if not missing and not beyond:
        return
    message = f"{option} has {len(texts)} documents but the fairseq-generate output has {len(set(generated_ids))}"
    if missing:
        message += (
            f"; missing sample ids: {_id_list(missing)}. The generation run dropped them: rerun it through "
            "`st-contrast fairseq-generate` (which adds --required-batch-size-multiple 1) or with that flag"
        )
    if beyond:
        message += f"; sample ids beyond the file: {_id_list(beyond)} (is it the file of the generated subset?)"
    raise ValueError(message)


def _warn_on_gaps(generated_ids: Sequence[int]) -> None:
    ids = sorted(set(generated_ids))
    missing = sorted(set(range(ids[-1] + 1)) - set(ids)) if ids else []
    if missing:
        print(
            f"warning: the fairseq-generate output skips sample ids {_id_list(missing)} (of 0-{ids[-1]}): those "
            "documents are not in the data; pass --sources to check the count",
            file=sys.stderr,
        )


def run_build_data(args: argparse.Namespace) -> int:
    """The ``simcls-build-data`` handler: read or build the documents, write one JSONL file or the folds."""
    from st_contrast.data import simcls

    if args.realsumm:
        docs = simcls.realsumm_documents(args.data_dir, deduplicate=not args.keep_duplicates)
    elif args.jsonl:
        docs = simcls.read_simcls_jsonl(args.jsonl)
    else:
        if args.fairseq_generate == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = _read_lines(args.fairseq_generate)
        sources, references = _read_lines(args.sources), _read_lines(args.references)
        generated_ids = sorted(simcls.parse_fairseq_generate(lines, args.hypothesis_prefix))
        check_generated_ids(generated_ids, sources, "--sources")
        check_generated_ids(generated_ids, references, "--references")
        if sources is None and references is None:
            _warn_on_gaps(generated_ids)
        docs = simcls.documents_from_fairseq_generate(
            lines,
            sources=sources,
            references=references,
            hypothesis_prefix=args.hypothesis_prefix,
            sentence_split=args.sentence_split,
            deduplicate=not args.keep_duplicates,
            skip_invalid=args.skip_invalid,
        )
    counts = simcls.candidate_counts(docs)
    summary = f"{len(docs)} documents, {min(counts)}-{max(counts)} candidates each"
    if args.output:
        simcls.write_simcls_jsonl(docs, args.output)
        print(f"wrote {args.output}: {summary}")
        train_docs = docs
    else:
        splits = split_folds(len(docs), args.num_folds, args.fold, args.valid_size, args.seed)
        os.makedirs(args.output_dir, exist_ok=True)
        for name, indices in splits.items():
            if indices:
                simcls.write_simcls_jsonl([docs[i] for i in indices], os.path.join(args.output_dir, f"{name}.jsonl"))
        sizes = ", ".join(f"{name} {len(indices)}" for name, indices in splits.items())
        print(f"wrote {args.output_dir} ({sizes}): {summary}")
        train_docs = [docs[i] for i in splits["train"]]
    if args.write_dict:
        folder = args.output_dir or os.path.dirname(os.path.abspath(args.output))
        texts = [t for d in train_docs for t in (d.source, d.reference, *(c.text for c in d.candidates))]
        size = write_dictionary(texts, os.path.join(folder, "dict.txt"))
        print(f"wrote {os.path.join(folder, 'dict.txt')}: {size} types")
    return 0


def run_rerank(args: argparse.Namespace) -> int:
    """The ``simcls-rerank`` handler: the options passed on to :func:`rerank_main` in a child process."""
    argv = ["--checkpoint", args.checkpoint, "--input", args.input, "--output", args.output, "--format", args.format]
    argv += ["--batch-size", str(args.batch_size)]
    if args.pretrained_encoder:
        argv += ["--pretrained-encoder", args.pretrained_encoder]
    if args.cpu:
        argv.append("--cpu")
    return subprocess.call(rerank_command(argv), env=fairseq_env())


def rerank_command(argv: Sequence[str]) -> list[str]:
    """The child process that runs :func:`rerank_main` with ``argv``."""
    bootstrap = (
        "import sys; sys.argv[0] = 'st-contrast simcls-rerank'; "
        "from st_contrast.cli.simcls import rerank_main; sys.exit(rerank_main())"
    )
    return [sys.executable, "-c", bootstrap, *argv]


def rerank_main(argv: Sequence[str] | None = None) -> int:
    """The child process of ``simcls-rerank``: parse its options, then run the trained scorer.

    Imports fairseq (through :func:`fairseq_plugins.tasks.simcls_reranking.rerank`, which writes the
    choices); prints the number of documents, and the ROUGE of the choices when the input has references,
    to stderr.
    """
    parser = argparse.ArgumentParser(prog="st-contrast simcls-rerank", description=RERANK_DESCRIPTION)
    add_rerank_arguments(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    from fairseq_plugins.tasks.simcls_reranking import rerank

    result = rerank(
        args.checkpoint,
        args.input,
        args.output,
        output_format=args.format,
        batch_size=args.batch_size,
        pretrained_encoder=args.pretrained_encoder,
        cpu=args.cpu,
    )
    message = f"re-ranked {result['documents']} documents"
    rouge = result["rouge"]
    if rouge is not None:
        message += (
            f"; ROUGE of the choices on {rouge['n']} documents with references: R-1 {100 * rouge['rouge1']:.2f} "
            f"R-2 {100 * rouge['rouge2']:.2f} R-Lsum {100 * rouge['rougeLsum']:.2f}"
        )
    print(message, file=sys.stderr)
    return 0


def add_subcommands(subparsers) -> None:
    """Add ``simcls-build-data`` and ``simcls-rerank`` to an argparse subparsers object."""
    build = subparsers.add_parser(
        "simcls-build-data",
        help="SimCLS: build scored, sorted candidate lists (JSONL) from fairseq-generate output or REALSumm",
        description="Score every candidate with mean(ROUGE-1, ROUGE-2, ROUGE-Lsum) F1 against the reference "
        "(rouge-score, stemming) and write one JSON object per document, candidates sorted best first.",
    )
    add_build_arguments(build)
    build.set_defaults(handler=run_build_data)
    rerank = subparsers.add_parser(
        "simcls-rerank",
        help="SimCLS: choose the best candidate per document with a trained simcls_scorer checkpoint",
        description=RERANK_DESCRIPTION,
    )
    add_rerank_arguments(rerank)
    rerank.set_defaults(handler=run_rerank)
