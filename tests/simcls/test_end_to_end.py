"""simcls-build-data → fairseq-train (task simcls_reranking, model simcls_scorer, criterion simcls_ranking)
→ simcls-rerank, in subprocesses, on tiny data: once with a fairseq encoder trained from scratch, once
with a (tiny, random) Hugging Face encoder loaded from a local folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("fairseq", reason="fairseq is not installed (pip install fairseq-fixed==0.12.3.1)")
pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from .tiny import WORDS, generate_output, tiny_texts  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMON = ["--task", "simcls_reranking", "--arch", "simcls_scorer", "--criterion", "simcls_ranking",
          "--batch-size", "2", "--optimizer", "adam", "--lr", "0.001", "--cpu", "--num-workers", "0",
          "--log-format", "simple", "--log-interval", "2", "--no-epoch-checkpoints", "--seed", "3",
          "--max-source-positions", "48", "--max-candidate-positions", "24"]  # fmt: skip
TINY = ["--encoder-layers", "1", "--encoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
        "--encoder-attention-heads", "2"]  # fmt: skip


def _run(module_args: list[str], cwd) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH_FORCE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", *module_args], capture_output=True, text=True, env=env, cwd=cwd,
                         timeout=240)  # fmt: skip
    assert out.returncode == 0, f"{module_args[:2]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


@pytest.mark.slow
def test_build_train_validate_rerank(tmp_path):
    from st_contrast import simcls_cli

    texts = tiny_texts(10, n_candidates=5, seed=1)
    (tmp_path / "gen.out").write_text(generate_output(texts))
    data = tmp_path / "data"
    assert (
        simcls_cli.main(
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
    log = _run(["st_contrast.fairseq_launch", "fairseq-train", str(data), *COMMON, *TINY, "--max-update", "6",
                "--save-dir", str(ckpt), "--best-checkpoint-metric", "rouge_mean",
                "--maximize-best-checkpoint-metric", "--validate-interval-updates", "3"], tmp_path)  # fmt: skip
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
    rerank = ["st_contrast.simcls_cli", "simcls-rerank", "--checkpoint", str(ckpt / "checkpoint_best.pt")]
    out = _run([*rerank, "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "chosen.jsonl")], tmp_path)
    assert re.search(r"re-ranked 2 documents; ROUGE of the choices on 1 documents", out), out[-2000:]
    chosen = [json.loads(line) for line in (tmp_path / "chosen.jsonl").read_text().splitlines()]
    assert [c["id"] for c in chosen] == [d["id"] for d in lax]
    for record, doc in zip(chosen, lax):
        assert len(record["scores"]) == len(doc["candidates"])
        assert record["index"] == max(range(len(record["scores"])), key=record["scores"].__getitem__)
        assert record["summary"] == doc["candidates"][record["index"]]


@pytest.mark.slow
def test_hugging_face_encoder_train_and_rerank(tmp_path):
    from st_contrast.data.simcls import make_document, write_simcls_jsonl
    from st_contrast.testing import build_tiny_transformer

    encoder = build_tiny_transformer(tmp_path / "enc", hidden_size=16, num_layers=2,
                                     vocab=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS])  # fmt: skip
    docs = [make_document(t["id"], t["source"], t["reference"], t["candidates"]) for t in tiny_texts(4, seed=2)]
    write_simcls_jsonl(docs, tmp_path / "data" / "train.jsonl")
    ckpt = tmp_path / "ckpt"
    _run(["st_contrast.fairseq_launch", "fairseq-train", str(tmp_path / "data"), *COMMON, "--pretrained-encoder",
          str(encoder), "--freeze-layers", "1", "--max-update", "2", "--disable-validation", "--save-dir",
          str(ckpt)], tmp_path)  # fmt: skip
    write_simcls_jsonl(docs[:2], tmp_path / "test.jsonl")
    out = _run(["st_contrast.simcls_cli", "simcls-rerank", "--checkpoint", str(ckpt / "checkpoint_last.pt"), "--input",
                str(tmp_path / "test.jsonl"), "--output", "-", "--format", "text"], tmp_path)  # fmt: skip
    lines = [line for line in out.splitlines() if line.startswith("w")]
    assert len(lines) == 2 and "ROUGE of the choices on 2 documents" in out
