"""Our commands end to end, in subprocesses (``python -m st_contrast.cli``), on tiny data:

* mCLR: ``fairseq-preprocess`` → ``fairseq-train`` → resume → ``fairseq-generate`` through the wrappers, without
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD in the caller's environment, to prove that the wrappers load fairseq 0.12
  checkpoints under torch >= 2.6 by themselves (resume and generate both load one);
* SimCLS: ``simcls-build-data`` → ``fairseq-train`` (task simcls_reranking, model simcls_scorer, criterion
  simcls_ranking) → ``simcls-rerank``: once with a fairseq encoder trained from scratch, once with a (tiny,
  random) Hugging Face encoder loaded from a local folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from st_contrast.cli import main
from tests.fairseq.translation_utils import write_corpus, write_dictionary, write_muse_dictionary
from tests.simcls_utils import WORDS, generate_output, tiny_texts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(command: str, args: list[str], cwd) -> str:
    """``python -m st_contrast.cli COMMAND ARGS`` with no TORCH_FORCE_* variable; its stdout + stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH_FORCE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "st_contrast.cli", command, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=240,
    )
    assert out.returncode == 0, f"{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


# ---------------------------------------------------------------------------------------------
# mCLR (task translation_multilingual_contrastive, criterion label_smoothed_cross_entropy_with_contrastive)
# ---------------------------------------------------------------------------------------------

PAIRS = "en-de,de-en,en-fr,fr-en"
MODEL = (
    "--arch transformer --share-all-embeddings --encoder-layers 1 --decoder-layers 1 "
    "--encoder-embed-dim 32 --decoder-embed-dim 32 --encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 "
    "--encoder-attention-heads 2 --decoder-attention-heads 2 --dropout 0.1"
).split()


@pytest.mark.slow
def test_preprocess_train_resume_generate(tmp_path):
    raw, data = str(tmp_path / "raw"), str(tmp_path / "bin")
    write_corpus(raw, sizes={"train": 300, "valid": 20, "test": 12})
    write_dictionary(raw)
    write_muse_dictionary(os.path.join(raw, "en-de.txt"), "en", "de")
    write_muse_dictionary(os.path.join(raw, "en-fr.txt"), "en", "fr")
    for src, tgt in (("en", "de"), ("en", "fr"), ("de", "fr")):
        _run(
            "fairseq-preprocess",
            ["--source-lang", src, "--target-lang", tgt, "--destdir", data, "--workers", "1"]
            + ["--trainpref", f"{raw}/train", "--validpref", f"{raw}/valid", "--testpref", f"{raw}/test"]
            + ["--srcdict", f"{raw}/dict.txt", "--tgtdict", f"{raw}/dict.txt"],
            str(tmp_path),
        )
    common = [data, "--task", "translation_multilingual_contrastive", "--lang-pairs", PAIRS, *MODEL]
    train = common + [
        "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "800", "--save-dir", str(tmp_path / "ckpt"),
        "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "5", "--num-workers", "0", "--cpu",
        "--label-smoothing", "0.1", "--seed", "3",
    ]  # fmt: skip
    log = _run(
        "fairseq-train",
        train
        + ["--criterion", "label_smoothed_cross_entropy_with_contrastive", "--max-update", "15"]
        + ["--ras-dict", f"{raw}/en-de.txt,{raw}/en-fr.txt", "--ras-prob", "0.3"],
        str(tmp_path),
    )
    assert re.search(r"contrastive_loss[ =][\d.]+", log), log[-2000:]
    assert "aligned augmentation: 48 dictionary entries, 48 encodable" in log
    assert os.path.isfile(tmp_path / "ckpt" / "checkpoint_last.pt")

    # resume from checkpoint_last.pt (a torch.load), to 20 updates
    log = _run(
        "fairseq-train",
        train + ["--criterion", "label_smoothed_cross_entropy_with_contrastive", "--max-update", "20"],
        str(tmp_path),
    )
    assert re.search(r"[Ll]oaded checkpoint .*checkpoint_last\.pt \(epoch \d+ @ 15 updates\)", log), log[-2000:]
    assert "num_updates 20" in log

    # zero-shot direction, forced target language, with the checkpoint loaded by fairseq-generate
    out = _run(
        "fairseq-generate",
        common
        + ["--source-lang", "de", "--target-lang", "fr", "--gen-subset", "test"]
        + ["--path", str(tmp_path / "ckpt" / "checkpoint_last.pt"), "--beam", "2", "--batch-size", "16", "--cpu"],
        str(tmp_path),
    )
    hyps = [line for line in out.splitlines() if line.startswith("H-")]
    sources = [line for line in out.splitlines() if line.startswith("S-")]
    assert len(hyps) == 12 and all(s.split("\t")[1].startswith("LANG_TOK_FR ") for s in sources)
    assert not any("LANG_TOK_" in h for h in hyps)  # language tokens stripped from the output
    assert "BLEU" in out


def test_generate_wrapper_keeps_every_document_of_a_diverse_beam_run():
    """The documented SimCLS candidate command, as fairseq parses it from the wrapper's argv, batches all 10
    documents; fairseq's default --required-batch-size-multiple 8 drops some (the bug the wrapper avoids)."""
    import numpy as np
    from fairseq import options
    from fairseq.data import data_utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from st_contrast.cli.fairseq import fairseq_argv

    def batched(argv: list[str]) -> int:
        args = options.parse_args_and_arch(options.get_generation_parser(), input_args=argv)
        cfg = convert_namespace_to_omegaconf(args)
        batches = data_utils.batch_by_size(
            np.arange(10), lambda i: 50, max_tokens=cfg.dataset.max_tokens, max_sentences=cfg.dataset.batch_size,
            required_batch_size_multiple=cfg.dataset.required_batch_size_multiple,
        )  # fmt: skip
        return sum(len(batch) for batch in batches)

    command = ["data-bin", "--path", "summariser.pt", "--gen-subset", "train", "--beam", "16", "--nbest", "16",
               "--diverse-beam-groups", "16", "--diverse-beam-strength", "1.0", "--max-tokens", "4096"]  # fmt: skip
    assert batched(fairseq_argv("fairseq-generate", command)[3:]) == 10
    assert batched(command) < 10


@pytest.mark.slow
def test_two_process_cpu_training_through_the_wrapper(tmp_path):
    """``--distributed-world-size 2 --cpu``: the wrapper starts both gloo processes with the flags fairseq needs
    (fairseq 0.12 alone spawns one process per GPU, so this fails without it), here with gathered negatives."""
    raw, data = str(tmp_path / "raw"), str(tmp_path / "bin")
    write_corpus(raw, langs=("en", "de"), sizes={"train": 120, "valid": 16, "test": 4})
    write_dictionary(raw, langs=("en", "de"))
    _run("fairseq-preprocess", ["--source-lang", "en", "--target-lang", "de", "--destdir", data, "--workers", "1",
                                "--trainpref", f"{raw}/train", "--validpref", f"{raw}/valid", "--srcdict",
                                f"{raw}/dict.txt", "--tgtdict", f"{raw}/dict.txt"], str(tmp_path))  # fmt: skip
    log = _run(
        "fairseq-train",
        [data, "--task", "translation_multilingual_contrastive", "--lang-pairs", "en-de", *MODEL]
        + ["--criterion", "label_smoothed_cross_entropy_with_contrastive", "--contrastive-gather"]
        + ["--label-smoothing", "0.1", "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "400"]
        + ["--max-update", "2", "--save-dir", str(tmp_path / "ckpt"), "--no-epoch-checkpoints", "--num-workers", "0"]
        + ["--log-format", "simple", "--cpu", "--distributed-world-size", "2"],
        str(tmp_path),
    )
    assert re.search(r"distributed init \(rank 0\): tcp://127\.0\.0\.1:\d+", log), log[-3000:]
    assert re.search(r"distributed init \(rank 1\): tcp://127\.0\.0\.1:\d+", log), log[-3000:]
    assert "training on 2 devices" in log and "num_updates 2" in log
    # validation sums both workers' halves of the 16 validation sentences
    assert re.search(
        r"valid on 'valid' subset \| loss [\d.]+ \| nll_loss [\d.]+ \| contrastive_loss [\d.]+ .*\| bsz 16", log
    )
    assert os.path.isfile(tmp_path / "ckpt" / "checkpoint_last.pt")


# ---------------------------------------------------------------------------------------------
# SimCLS
# ---------------------------------------------------------------------------------------------

COMMON = ["--task", "simcls_reranking", "--arch", "simcls_scorer", "--criterion", "simcls_ranking",
          "--batch-size", "2", "--optimizer", "adam", "--lr", "0.001", "--cpu", "--num-workers", "0",
          "--log-format", "simple", "--log-interval", "2", "--no-epoch-checkpoints", "--seed", "3",
          "--max-source-positions", "48", "--max-candidate-positions", "24"]  # fmt: skip
TINY = ["--encoder-layers", "1", "--encoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
        "--encoder-attention-heads", "2"]  # fmt: skip


@pytest.mark.slow
def test_build_train_validate_rerank(tmp_path):
    pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")
    texts = tiny_texts(10, n_candidates=5, seed=1)
    (tmp_path / "gen.out").write_text(generate_output(texts))
    data = tmp_path / "data"
    assert (
        main(
            [
                "simcls-build-data",
                "--fairseq-generate",
                str(tmp_path / "gen.out"),
                "--output-dir",
                str(data),
                "--num-folds",
                "5",
                "--fold",
                "0",
                "--valid-size",
                "2",
                "--write-dict",
            ]
        )
        == 0
    )
    # fairseq's validation subset is "valid"; test.jsonl is what we re-rank below
    ckpt = tmp_path / "ckpt"
    log = _run("fairseq-train", [str(data), *COMMON, *TINY, "--max-update", "6", "--save-dir", str(ckpt),
                                 "--best-checkpoint-metric", "rouge_mean", "--maximize-best-checkpoint-metric",
                                 "--validate-interval-updates", "3"], tmp_path)  # fmt: skip
    assert "num_updates 6" in log
    valid = re.findall(r"valid on 'valid' subset \| loss [\d.]+ \| rouge1 ([\d.]+) .*?rouge_mean ([\d.]+) \| "
                       r"oracle_rouge_mean ([\d.]+) \| random_rouge_mean ([\d.]+)", log)  # fmt: skip
    assert len(valid) >= 2, log[-3000:]
    for _, chosen, oracle, random_mean in valid:
        assert 0 < float(random_mean) <= float(oracle) and float(chosen) <= float(oracle)
    assert (ckpt / "checkpoint_best.pt").is_file()

    # inference on documents without stored ROUGE: candidates as plain strings, references optional
    test_docs = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    lax = [{"id": d["id"], "source": d["source"], "candidates": [c["text"] for c in d["candidates"]][::-1],
            **({"reference": d["reference"]} if i == 0 else {})} for i, d in enumerate(test_docs)]  # fmt: skip
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lax))
    rerank = ["--checkpoint", str(ckpt / "checkpoint_best.pt"), "--input", str(tmp_path / "in.jsonl")]
    out = _run("simcls-rerank", [*rerank, "--output", str(tmp_path / "chosen.jsonl")], tmp_path)
    assert re.search(r"re-ranked 2 documents; ROUGE of the choices on 1 documents", out), out[-2000:]
    chosen = [json.loads(line) for line in (tmp_path / "chosen.jsonl").read_text().splitlines()]
    assert [c["id"] for c in chosen] == [d["id"] for d in lax]
    for record, doc in zip(chosen, lax):
        assert len(record["scores"]) == len(doc["candidates"])
        assert record["index"] == max(range(len(record["scores"])), key=record["scores"].__getitem__)
        assert record["summary"] == doc["candidates"][record["index"]]


@pytest.mark.slow
def test_hugging_face_encoder_train_and_rerank(tmp_path):
    pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")
    from st_contrast.data.simcls import make_document, write_simcls_jsonl
    from st_contrast.testing import build_tiny_transformer

    encoder = build_tiny_transformer(tmp_path / "enc", hidden_size=16, num_layers=2,
                                     vocab=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS])  # fmt: skip
    docs = [make_document(t["id"], t["source"], t["reference"], t["candidates"]) for t in tiny_texts(4, seed=2)]
    write_simcls_jsonl(docs, tmp_path / "data" / "train.jsonl")
    ckpt = tmp_path / "ckpt"
    _run("fairseq-train", [str(tmp_path / "data"), *COMMON, "--pretrained-encoder", str(encoder), "--freeze-layers",
                           "1", "--max-update", "2", "--disable-validation", "--save-dir", str(ckpt)],
         tmp_path)  # fmt: skip
    write_simcls_jsonl(docs[:2], tmp_path / "test.jsonl")
    rerank = ["--checkpoint", str(ckpt / "checkpoint_last.pt"), "--input", str(tmp_path / "test.jsonl")]
    out = _run("simcls-rerank", [*rerank, "--output", "-", "--format", "text"], tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("w")]
    assert len(lines) == 2 and "ROUGE of the choices on 2 documents" in out
