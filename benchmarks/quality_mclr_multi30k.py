"""mCLR / R-Drop vs label-smoothed CE on Multi30k: English-centric training, zero-shot evaluation.

Train one small many-to-many transformer per criterion on en↔de, en↔fr, en↔cs (Multi30k train, four-way
aligned captions), then translate test_2016_flickr in the six supervised directions and, zero-shot, in
de↔fr, de↔cs, fr↔cs, scored with sacreBLEU (detokenised, 13a). The claim under test (Pan et al., 2021,
mRASP2, Table 3): the contrastive term raises zero-shot BLEU without hurting supervised BLEU.

Steps (each cached in --work-dir, so a rerun only redoes what is missing):
  1. joint BPE (HF ``tokenizers``, whitespace words, pieces written subword-nmt style with ``@@``);
  2. ``fairseq-preprocess`` per pair with one shared dictionary (in-process);
  3. optionally (``--ras``) MUSE-format word dictionaries en↔xx induced from the English-centric training
     pairs only (Dice co-occurrence; no de/fr/cs parallel text is used), for aligned augmentation;
  4. ``st-contrast fairseq-train`` per criterion for ``--max-update`` updates;
  5. translation of the test set in every direction with one loaded model (the task's own
     ``inference_step``, as ``st-contrast fairseq-generate`` does, greedy by default), sacreBLEU against
     the raw references; ``--eval-shards k`` scores every k-th test sentence when CPU time is short.

Results are merged into ``benchmarks/results/quality_mclr_multi30k_d<embed-dim>x<layers>.json``, one run per
criterion (BLEU per direction, averages, wall time and seconds per update, the commands).
``--eval-only --checkpoint-updates N`` scores the checkpoint saved at update N (every 50 updates are kept), to
compare runs at equal updates.

    python -m benchmarks.quality_mclr_multi30k --runs ""        # prepare BPE and data-bin only
    python -m benchmarks.quality_mclr_multi30k --runs baseline,mclr,rdrop
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args

REPO = Path(__file__).resolve().parent.parent
LANGS = ("en", "de", "fr", "cs")
SUPERVISED = [("en", x) for x in ("de", "fr", "cs")] + [(x, "en") for x in ("de", "fr", "cs")]
ZERO_SHOT = [("de", "fr"), ("fr", "de"), ("de", "cs"), ("cs", "de"), ("fr", "cs"), ("cs", "fr")]
SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}

CRITERIA = {
    "baseline": ["--criterion", "label_smoothed_cross_entropy"],
    "mclr": [
        "--criterion", "label_smoothed_cross_entropy_with_contrastive",
        "--contrastive-lambda", "1.0", "--contrastive-temperature", "0.1",
    ],
    "rdrop": ["--criterion", "rdrop_label_smoothed_cross_entropy", "--rdrop-alpha", "5.0"],
}  # fmt: skip


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line.strip() for line in handle]


def data_folder(data_dir: str | None) -> Path:
    base = data_dir or os.environ.get("ST_CONTRAST_DATA") or str(REPO.parent / "shared" / "data")
    folder = Path(base) / "translation" / "multi30k"
    if not folder.is_dir():
        raise FileNotFoundError(f"Multi30k not found in {folder}: set ST_CONTRAST_DATA or --data-dir")
    return folder


# -- 1. BPE ------------------------------------------------------------------------------------


def train_bpe(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=["<unk>"], continuing_subword_prefix="##"
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def to_subword_nmt(pieces: list[str]) -> str:
    """``["Hun", "##de", "bellen"]`` → ``"Hun@@ de bellen"`` (so that fairseq's --remove-bpe undoes it)."""
    out: list[str] = []
    for piece in pieces:
        if piece.startswith("##") and out:
            out[-1] += "@@"
            out.append(piece[2:])
        else:
            out.append(piece)
    return " ".join(out)


def prepare_text(src_dir: Path, work: Path, vocab_size: int) -> Path:
    text_dir = work / "bpe"
    if (text_dir / "done").exists():
        return text_dir
    text_dir.mkdir(parents=True, exist_ok=True)
    raw = {
        (split, lang): read_lines(src_dir / f"{name}.{lang}.gz") for split, name in SPLITS.items() for lang in LANGS
    }
    tokenizer = train_bpe([line for lang in LANGS for line in raw[("train", lang)]], vocab_size)
    counts: Counter[str] = Counter()
    for (split, lang), lines in raw.items():
        encoded = [to_subword_nmt(e.tokens) for e in tokenizer.encode_batch(lines)]
        if split == "train":
            for line in encoded:
                counts.update(line.split())
        (text_dir / f"{split}.{lang}").write_text("\n".join(encoded) + "\n", encoding="utf-8")
        (text_dir / f"{split}.raw.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(text_dir / "dict.txt", "w", encoding="utf-8") as handle:
        handle.writelines(f"{symbol} {count}\n" for symbol, count in counts.most_common())
    (text_dir / "done").write_text("ok")
    return text_dir


# -- 2. binarise -------------------------------------------------------------------------------


def binarise(text_dir: Path, work: Path) -> Path:
    out = work / "data-bin"
    if (out / "done").exists():
        return out
    from fairseq import options
    from fairseq_cli import preprocess

    for src, tgt in [("en", x) for x in ("de", "fr", "cs")] + [("de", "fr"), ("de", "cs"), ("fr", "cs")]:
        english_centric = src == "en"
        args = ["--source-lang", src, "--target-lang", tgt, "--destdir", str(out), "--workers", "1"]
        args += ["--srcdict", str(text_dir / "dict.txt"), "--tgtdict", str(text_dir / "dict.txt")]
        if english_centric:  # zero-shot pairs get test data only: never trained on, never validated on
            args += ["--trainpref", str(text_dir / "train"), "--validpref", str(text_dir / "valid")]
        args += ["--testpref", str(text_dir / "test")]
        preprocess.main(options.get_preprocessing_parser().parse_args(args))
    (out / "done").write_text("ok")
    return out


# -- 3. RAS dictionaries -------------------------------------------------------------------------


def induce_dictionaries(src_dir: Path, work: Path, top: int = 3000) -> list[str]:
    """en↔xx word dictionaries from English-centric parallel training text (Dice >= 0.3, frequent words)."""
    out = work / "ras"
    out.mkdir(exist_ok=True)
    token = re.compile(r"\w+", re.UNICODE)
    english = [set(token.findall(line.lower())) for line in read_lines(src_dir / "train.en.gz")]
    specs = []
    for lang in ("de", "fr", "cs"):
        foreign = [set(token.findall(line.lower())) for line in read_lines(src_dir / f"train.{lang}.gz")]
        en_count, xx_count, both = Counter(), Counter(), Counter()
        for e, f in zip(english, foreign):
            en_count.update(e)
            xx_count.update(f)
        en_vocab = {w for w, _ in en_count.most_common(top)}
        xx_vocab = {w for w, _ in xx_count.most_common(top)}
        for e, f in zip(english, foreign):
            for a in e & en_vocab:
                for b in f & xx_vocab:
                    both[(a, b)] += 1
        best: dict[str, tuple[float, str]] = {}
        best_rev: dict[str, tuple[float, str]] = {}
        for (a, b), n in both.items():
            dice = 2 * n / (en_count[a] + xx_count[b])
            if dice >= 0.3 and n >= 5:
                if dice > best.get(a, (0, ""))[0]:
                    best[a] = (dice, b)
                if dice > best_rev.get(b, (0, ""))[0]:
                    best_rev[b] = (dice, a)
        for name, table in ((f"en-{lang}", best), (f"{lang}-en", best_rev)):
            path = out / f"{name}.txt"
            path.write_text("".join(f"{a} {b}\n" for a, (_, b) in sorted(table.items()) if a != b), encoding="utf-8")
            specs.append(str(path))
    return specs


# -- 4./5. train and evaluate ------------------------------------------------------------------


def launcher(command: str) -> list[str]:
    return [sys.executable, "-m", "st_contrast.cli", command]


def model_args(args) -> list[str]:
    dim, ffn = str(args.embed_dim), str(args.embed_dim * 4)
    return [
        "--arch", "transformer", "--share-all-embeddings",
        "--encoder-layers", str(args.layers), "--decoder-layers", str(args.layers),
        "--encoder-embed-dim", dim, "--decoder-embed-dim", dim,
        "--encoder-ffn-embed-dim", ffn, "--decoder-ffn-embed-dim", ffn,
        "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
        "--dropout", "0.1", "--label-smoothing", "0.1",
    ]  # fmt: skip


def run_logged(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        handle.write(" ".join(cmd) + "\n")
        handle.flush()
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"command failed ({result.returncode}), see {log}: {' '.join(cmd)}")
    return time.perf_counter() - start


def train(name: str, data_bin: Path, work: Path, args, ras_specs: list[str] | None) -> dict:
    save = work / "checkpoints" / name
    save.mkdir(parents=True, exist_ok=True)
    cmd = launcher("fairseq-train") + [str(data_bin), "--task", "translation_multilingual_contrastive"]
    cmd += ["--lang-pairs", ",".join(f"{s}-{t}" for s, t in SUPERVISED), "--langs", ",".join(LANGS)]
    cmd += model_args(args) + CRITERIA[name.split("+")[0]]
    if ras_specs:
        cmd += ["--ras-dict", ",".join(ras_specs), "--ras-prob", str(args.ras_prob)]
    cmd += [
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", str(args.lr),
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup), "--clip-norm", "1.0",
        "--max-tokens", str(args.max_tokens), "--max-update", str(args.max_update), "--seed", "1",
        "--save-dir", str(save), "--no-epoch-checkpoints", "--disable-validation", "--save-interval-updates", "50",
        "--log-format", "simple", "--log-interval", "10", "--num-workers", "0", "--cpu",
    ]  # fmt: skip
    log = work / f"train_{name}.log"
    wall = run_logged(cmd, log)
    text = log.read_text(encoding="utf-8")
    ups = [float(x) for x in re.findall(r"ups=([\d.]+)", text)][1:]  # skip the first interval (warm-up)
    return {
        "wall_s": round(wall, 1),
        "sec_per_update": round(1.0 / (sum(ups) / len(ups)), 3) if ups else None,
        "command": " ".join(cmd),
        "log": str(log),
    }


def bleu(hyps: list[str], refs: list[str]) -> float:
    import sacrebleu

    return round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)


def translate_all(checkpoint: Path, data_bin: Path, directions, beam: int, shards: int) -> dict:
    """Translate the test set of every direction with one loaded model (in this process).

    The same task, generator and forced target-language token as ``st-contrast fairseq-generate``
    (``task.inference_step``), without paying fairseq's start-up per direction. Returns
    ``{(src, tgt): {sentence_id: detokenised hypothesis}}``; ``shards > 1`` keeps every shards-th sentence.
    """
    from argparse import Namespace

    import torch
    from fairseq import checkpoint_utils, utils

    import fairseq_plugins  # noqa: F401  (registers the task)
    from fairseq_plugins.tasks import TranslationMultilingualContrastiveConfig, TranslationMultilingualContrastiveTask

    cfg = TranslationMultilingualContrastiveConfig(
        data=str(data_bin), lang_pairs=",".join(f"{s}-{t}" for s, t in SUPERVISED), langs=",".join(LANGS), seed=1
    )
    cfg.dataset_impl, cfg.train_subset, cfg.required_seq_len_multiple = "mmap", "train", 1
    task = TranslationMultilingualContrastiveTask.setup_task(cfg)
    models, _ = checkpoint_utils.load_model_ensemble([str(checkpoint)], task=task)
    model = models[0].eval()
    generator = task.build_generator([model], Namespace(beam=beam, max_len_a=1.2, max_len_b=10))
    dictionary = task.target_dictionary
    out = {}
    for src, tgt in directions:
        task.cfg.source_lang, task.cfg.target_lang = src, tgt
        task.load_dataset("test")
        dataset = task.dataset("test")
        keep = np.arange(0, len(dataset), shards)
        batches = dataset.batch_by_size(keep, max_tokens=None, max_sentences=250, required_batch_size_multiple=1)
        hyps = {}
        for batch in batches:
            sample = dataset.collater([dataset[int(i)] for i in batch])
            with torch.no_grad():
                results = task.inference_step(generator, [model], sample)
            for sentence_id, hypos in zip(sample["id"].tolist(), results):
                tokens = utils.strip_pad(hypos[0]["tokens"], dictionary.pad())
                hyps[sentence_id] = dictionary.string(
                    tokens, "@@ ", extra_symbols_to_ignore=generator.symbols_to_strip_from_output
                )
        out[(src, tgt)] = hyps
    return out


def language_guesser(text_dir: Path):
    """A crude language identifier for the off-target check: the language whose training words (seen
    3+ times, and not in every language) cover most of the hypothesis's words."""
    word = re.compile(r"\w+", re.UNICODE)
    vocab = {}
    for lang in LANGS:
        counts = Counter(word.findall((text_dir / f"train.raw.{lang}").read_text(encoding="utf-8").lower()))
        vocab[lang] = {w for w, n in counts.items() if n >= 3}
    shared = set.intersection(*vocab.values())

    def guess(text: str) -> str:
        words = [w for w in word.findall(text.lower()) if w not in shared]
        return max(LANGS, key=lambda lang: sum(w in vocab[lang] for w in words))

    return guess


def evaluate(name: str, data_bin: Path, text_dir: Path, work: Path, args) -> dict:
    folder = work / "checkpoints" / name
    if args.checkpoint_updates:
        checkpoint = next(folder.glob(f"checkpoint_*_{args.checkpoint_updates}.pt"))
    else:
        checkpoint = folder / "checkpoint_last.pt"
    tag = f"{name}@{args.checkpoint_updates}" if args.checkpoint_updates else name
    cache = work / f"hyps_{tag}_shards{args.eval_shards}_beam{args.beam}.json"
    if cache.exists():
        hyps = {
            tuple(k.split("-")): {int(i): h for i, h in v.items()} for k, v in json.loads(cache.read_text()).items()
        }
    else:
        hyps = translate_all(checkpoint, data_bin, SUPERVISED + ZERO_SHOT, args.beam, args.eval_shards)
        cache.write_text(json.dumps({f"{s}-{t}": v for (s, t), v in hyps.items()}, ensure_ascii=False))
    scores = {}
    for src, tgt in SUPERVISED + ZERO_SHOT:
        refs = (text_dir / f"test.raw.{tgt}").read_text(encoding="utf-8").rstrip("\n").split("\n")
        ids = sorted(hyps[(src, tgt)])
        scores[f"{src}-{tgt}"] = bleu([hyps[(src, tgt)][i] for i in ids], [refs[i] for i in ids])
    supervised = [scores[f"{s}-{t}"] for s, t in SUPERVISED]
    zero = [scores[f"{s}-{t}"] for s, t in ZERO_SHOT]
    guess = language_guesser(text_dir)
    on_target = {
        f"{s}-{t}": round(sum(guess(h) == t for h in hyps[(s, t)].values()) / max(1, len(hyps[(s, t)])), 3)
        for s, t in ZERO_SHOT
    }
    return {
        "zero_shot_on_target_rate": on_target,
        "checkpoint": str(checkpoint),
        "test_sentences_per_direction": len(ids),
        "bleu": scores,
        "supervised_avg": round(sum(supervised) / len(supervised), 2),
        "zero_shot_avg": round(sum(zero) / len(zero), 2),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality_mclr_multi30k",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--work-dir", default="outputs/mclr_multi30k")
    parser.add_argument("--data-dir", help="data folder holding translation/multi30k (default $ST_CONTRAST_DATA)")
    parser.add_argument("--runs", default="baseline,mclr,rdrop", help="comma list of baseline, mclr, rdrop, mclr+ras")
    parser.add_argument("--eval-only", action="store_true", help="evaluate existing checkpoints, no training")
    parser.add_argument("--bpe-vocab", type=int, default=4000)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--max-update", type=int, default=300)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--ras-prob", type=float, default=0.3)
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--eval-shards", type=int, default=1, help="score every k-th test sentence (CPU budget)")
    parser.add_argument("--checkpoint-updates", type=int, help="evaluate checkpoint_*_N.pt instead of the last")
    add_result_arguments(parser)
    return parser


NOT_SETTINGS = ("runs", "eval_only", "work_dir", "data_dir", "config_name", "output", "results_dir", "overwrite")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    target = target_from_args(args, "quality_mclr_multi30k", f"d{args.embed_dim}x{args.layers}")
    settings = {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS}
    names = [r.strip() for r in args.runs.split(",") if r.strip()]
    keys = {name: f"{name}@{args.checkpoint_updates}" if args.checkpoint_updates else name for name in names}
    for name in names:
        check_writable(target, {**settings, "criterion": name}, keys[name])
    command = command_line("quality_mclr_multi30k", argv)
    shared = {
        "benchmark": "quality_mclr_multi30k",
        "device": "cpu (shared, OMP_NUM_THREADS=1)",
        "supervised": [f"{s}-{t}" for s, t in SUPERVISED],
        "zero_shot": [f"{s}-{t}" for s, t in ZERO_SHOT],
    }

    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    src_dir = data_folder(args.data_dir)
    text_dir = prepare_text(src_dir, work, args.bpe_vocab)
    data_bin = binarise(text_dir, work)

    results = {}
    for name in names:
        ras = induce_dictionaries(src_dir, work) if name.endswith("+ras") else None
        if args.eval_only:
            previous = json.loads(target.path.read_text())["runs"] if target.path.exists() else {}
            run = {
                "train": previous.get(name, {}).get(
                    "train", {"note": "training log: " + str(work / f"train_{name}.log")}
                )
            }
        else:
            run = {"train": train(name, data_bin, work, args, ras)}
        start = time.perf_counter()
        run.update(evaluate(name, data_bin, text_dir, work, args))
        run["eval_wall_s"] = round(time.perf_counter() - start, 1)
        print(json.dumps({name: {k: v for k, v in run.items() if k != "train"}}, indent=1), flush=True)
        # several runs may share the output file (one process per run): merged under its lock
        target.merge_run(keys[name], run, {**settings, "criterion": name}, command, shared=shared)
        results = json.loads(target.path.read_text())["runs"]
    baseline = results.get("baseline", {}).get("train", {}).get("sec_per_update")
    for name, run in results.items():
        spu = run["train"].get("sec_per_update")
        ratio = f"{spu / baseline:.2f}x" if baseline and spu else "n/a"
        print(f"{name:10s} sup {run['supervised_avg']:6.2f}  zero-shot {run['zero_shot_avg']:6.2f}  "
              f"s/update {spu}  ({ratio} of baseline)  train {run['train'].get('wall_s')}s")  # fmt: skip
    return 0 if all(math.isfinite(r["zero_shot_avg"]) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
