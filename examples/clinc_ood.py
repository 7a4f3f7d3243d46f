"""Out-of-domain intent detection on CLINC150 with supervised contrastive learning (Zeng et al., ACL 2021).

Trains a sentence encoder with a classifier head on in-domain intents only, then detects the
out-of-scope queries with LOF, GDA and MSP fitted on the in-domain training features::

    python examples/clinc_ood.py --method ce_supcon --num-intents 20 --max-per-intent 30 --epochs 2

Methods: ``pretrained`` (no training; LOF and GDA on the starting encoder), ``ce`` (cross-entropy only),
``ce_supcon`` (CE + SupCon on clean and FGM-adversarial views, joint), ``ce_supcon_rdrop`` (the same plus
R-Drop's KL), ``supcon_then_ce`` (the paper's two stages: SupCon, then CE; ``--epochs`` each). The default
encoder is all-MiniLM-L6-v2 with mean pooling (rebuilt without its normalisation layer). Note that MiniLM
is already contrastively trained, so its numbers are not comparable with the paper's BERT-base results.

The data is read from ``$ST_CONTRAST_DATA/intent/clinc150_data_full.json`` (``--data-dir`` or
``--download`` otherwise).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from typing import Any

METHODS = ("pretrained", "ce", "ce_supcon", "ce_supcon_rdrop", "supcon_then_ce")


def _train(model: Any, loss: Any, dataset: Any, args: argparse.Namespace, output_dir: str, epochs: float) -> None:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    training_args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        learning_rate_mapping={r"\.classifier\.": args.head_lr},
        warmup_steps=0.1,
        weight_decay=0.01,
        logging_steps=max(1, args.log_every),
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        data_seed=args.seed,
        dataloader_drop_last=True,
        disable_tqdm=not args.progress,
        use_cpu=args.cpu,
    )
    SentenceTransformerTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss).train()


def run_experiment(args: argparse.Namespace) -> dict[str, Any]:
    """Train one method and evaluate LOF/GDA/MSP; returns the metrics, the subset and the timings."""
    from transformers import set_seed

    from st_contrast.cli.train import build_model
    from st_contrast.data.clinc import load_clinc150
    from st_contrast.evaluation.ood import evaluate_ood
    from st_contrast.losses import SupConOODLoss

    if args.method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {args.method!r}")
    set_seed(args.seed)
    clinc = load_clinc150(
        data_dir=args.data_dir,
        num_intents=args.num_intents,
        max_per_intent=args.max_per_intent,
        seed=args.subset_seed,
        download=args.download,
    )
    test_ood = clinc.oos_test[: args.max_ood_test] if args.max_ood_test else clinc.oos_test
    device = "cpu" if args.cpu else None
    model = build_model(args.model, pooling="mean", max_seq_length=args.max_seq_length, device=device)
    dataset = clinc.dataset("train")
    output_dir = args.output_dir or os.path.join("runs", f"clinc_ood_{args.method}")
    common = dict(
        num_labels=clinc.num_labels,
        label_names=clinc.label_names,
        temperature=args.temperature,
        adversarial_epsilon=args.epsilon,
        variant=args.variant,
    )
    started = time.time()
    if args.method == "ce":
        _train(model, SupConOODLoss(model, stage="classification", **common), dataset, args, output_dir, args.epochs)
    elif args.method in ("ce_supcon", "ce_supcon_rdrop"):
        alpha = args.rdrop_alpha if args.method == "ce_supcon_rdrop" else 0.0
        loss = SupConOODLoss(model, scl_weight=args.scl_weight, rdrop_alpha=alpha, **common)
        _train(model, loss, dataset, args, output_dir, args.epochs)
    elif args.method == "supcon_then_ce":
        loss = SupConOODLoss(model, stage="contrastive", **common)
        _train(model, loss, dataset, args, output_dir, args.epochs)
        loss.set_stage("classification")
        _train(model, loss, dataset, args, output_dir, args.epochs)
    train_seconds = time.time() - started
    started = time.time()
    metrics = evaluate_ood(
        model,
        clinc.train,
        clinc.val,
        clinc.test,
        test_ood,
        val_ood=clinc.oos_val,
        threshold=args.threshold,
        batch_size=args.eval_batch_size,
        num_labels=clinc.num_labels,
    )
    eval_seconds = time.time() - started
    if args.save_model:
        model.save(os.path.join(output_dir, "model"))
    return {
        "method": args.method,
        "metrics": metrics,
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "subset": {
            "num_intents": clinc.num_labels,
            "train_examples": len(clinc.train),
            "val_examples": len(clinc.val),
            "test_in_domain": len(clinc.test),
            "test_ood": len(test_ood),
            "subset_seed": args.subset_seed,
            "max_per_intent": args.max_per_intent,
        },
        "config": {k: v for k, v in vars(args).items() if k not in ("progress",)},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="ce_supcon", choices=METHODS)
    parser.add_argument("--model", default="minilm", help="a SentenceTransformer path, or 'minilm'")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--download", action="store_true", help="download CLINC150 if it is not found locally")
    parser.add_argument("--num-intents", type=int, default=None, help="random subset of intents (default: all 150)")
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--max-per-intent", type=int, default=None, help="training queries kept per intent")
    parser.add_argument("--max-ood-test", type=int, default=None, help="keep the first N out-of-scope test queries")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5, help="encoder learning rate")
    parser.add_argument("--head-lr", type=float, default=2e-3, help="classifier head learning rate")
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--epsilon", type=float, default=0.1, help="FGM norm per token")
    parser.add_argument("--scl-weight", type=float, default=1.0)
    parser.add_argument("--rdrop-alpha", type=float, default=1.0)
    parser.add_argument("--variant", default="khosla", choices=("khosla", "zeng"))
    parser.add_argument("--threshold", default="in_domain", choices=("in_domain", "ood_tuned"))
    parser.add_argument("--max-seq-length", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="train on CPU even when a GPU is present")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--save-model", action="store_true")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--json", default=None, help="write the result to this JSON file")
    return parser


def format_table(result: dict[str, Any]) -> str:
    rows = ["| detector | AUROC | FPR95 | AUPR-out | in-domain acc | OOD F1 |", "|---|---|---|---|---|---|"]
    for name, m in result["metrics"].items():
        rows.append(
            f"| {name} | {100 * m['auroc']:.1f} | {100 * m['fpr95']:.1f} | {100 * m['aupr_out']:.1f} | "
            f"{100 * m['in_domain_accuracy']:.1f} | {100 * m['ood_f1']:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args()
    result = run_experiment(args)
    print(f"{args.method}: trained in {result['train_seconds']} s, evaluated in {result['eval_seconds']} s")
    print(format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
