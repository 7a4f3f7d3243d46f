"""fairseq-preprocess + fairseq-train + resume + fairseq-generate through our wrapper commands, in subprocesses.

Runs without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD in the caller's environment, to prove that the wrappers
load fairseq 0.12 checkpoints under torch >= 2.6 by themselves (resume and generate both load one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from .tiny_data import write_corpus, write_dictionary, write_muse_dictionary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAIRS = "en-de,de-en,en-fr,fr-en"
MODEL = (
    "--arch transformer --share-all-embeddings --encoder-layers 1 --decoder-layers 1 "
    "--encoder-embed-dim 32 --decoder-embed-dim 32 --encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 "
    "--encoder-attention-heads 2 --decoder-attention-heads 2 --dropout 0.1"
).split()


def _run(command: str, args: list[str], cwd: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH_FORCE_")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-m", "st_contrast.fairseq_launch", command, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=240,
    )
    assert out.returncode == 0, f"{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


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
