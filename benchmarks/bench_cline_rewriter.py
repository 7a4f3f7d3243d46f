"""Throughput of CLINE's WordNet rewriter (sentences per second, one core, ~20-word sentences).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_cline_rewriter

The sentences are real text from the data folder: Wikipedia sentences (lower-cased) and STS Benchmark
sentences (cased), taken as they are when 18-22 words long, otherwise joined in order until they
reach ~20 words. Three numbers are reported: the one-off WordNet load, a *cold* pass (every word is
looked up in WordNet the first time it is seen) and *warm* passes over new sentences with a lexicon
that has already seen a corpus (the steady state of rewriting a large corpus, where almost every word
is a cache hit). Rates are given against wall time and against the process's CPU time (the latter is
robust to other processes sharing the machine). The rewriter is pure Python: one core. Results:
``benchmarks/results/bench_cline_rewriter_<sentences>-sentences.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args
from benchmarks.harness.timing import stopwatch


def twenty_word_sentences(limit: int) -> list[str]:
    from st_contrast.data import find_data_file

    texts: list[str] = []
    wiki = find_data_file("unlabeled/wiki_sentences.txt")
    texts += [line.strip() for line in wiki.read_text(encoding="utf-8").splitlines() if line.strip()]
    sts = find_data_file("sts/stsbenchmark/sts-train.csv")
    for line in sts.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 7:
            texts += [fields[5].strip(), fields[6].strip()]
    out: list[str] = []
    buffer: list[str] = []
    for text in texts:
        n = len(text.split())
        if 18 <= n <= 22:
            out.append(text)
            continue
        buffer.append(text)
        if sum(len(t.split()) for t in buffer) >= 18:
            joined = " ".join(buffer).split()
            out.append(" ".join(joined[:22]))
            buffer = []
        if len(out) >= limit:
            break
    return out[:limit]


def run(num_sentences: int, warm_repeats: int) -> dict:
    from st_contrast.views.wordnet import WordNetRewriter, load_wordnet

    sentences = twenty_word_sentences(2 * num_sentences)
    first, second = sentences[:num_sentences], sentences[num_sentences:]
    with stopwatch() as load:
        load_wordnet()
        rewriter = WordNetRewriter(seed=0)
        rewriter.lexicon.tag_counts
        for pos in "nvar":
            rewriter.lexicon.random_pool(pos)
    load_wall, load_cpu = load.wall, load.cpu

    with stopwatch() as cold_time:
        cold = rewriter.rewrite_all(first)
    cold_wall, cold_cpu = cold_time.wall, cold_time.cpu

    # warm: new sentences (the second half) once their words are known, repeated to take a median
    rewriter.rewrite_all(second)
    warm_walls, warm_cpus = [], []
    for seed in range(warm_repeats):
        timed = WordNetRewriter(seed=seed + 1, lexicon=rewriter.lexicon)  # fresh choices, shared look-ups
        with stopwatch() as warm_time:
            warm = timed.rewrite_all(second)
        warm_walls.append(warm_time.wall)
        warm_cpus.append(warm_time.cpu)
    words = statistics.mean(len(s.split()) for s in sentences)
    return {
        "sentences_per_pass": num_sentences,
        "mean_words_per_sentence": round(words, 1),
        "wordnet_load_s": {"wall": round(load_wall, 2), "cpu": round(load_cpu, 2)},
        "cold_sentences_per_s": {"wall": round(num_sentences / cold_wall), "cpu": round(num_sentences / cold_cpu)},
        "warm_sentences_per_s_median": {
            "wall": round(num_sentences / statistics.median(warm_walls)),
            "cpu": round(num_sentences / statistics.median(warm_cpus)),
        },
        "warm_repeats": warm_repeats,
        "distinct_words_looked_up": len(rewriter.lexicon._entries),
        "skipped_cold": cold.num_skipped,
        "skipped_warm": warm.num_skipped,
        "example": {
            "original": cold.rewrites[0].original,
            "synonym": cold.rewrites[0].synonym,
            "antonym": cold.rewrites[0].antonym,
        },
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_cline_rewriter",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sentences", type=int, default=5000, help="sentences per pass")
    parser.add_argument("--warm-repeats", type=int, default=5)
    add_result_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = {"sentences": args.sentences, "warm_repeats": args.warm_repeats}
    target = target_from_args(args, "bench_cline_rewriter", f"{args.sentences}-sentences")
    check_writable(target, config)
    result = run(args.sentences, args.warm_repeats)
    print(json.dumps(result, indent=2))
    print(f"results: {target.write(result, config, command_line('bench_cline_rewriter', argv))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
