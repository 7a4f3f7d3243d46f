"""``st-contrast simcls-build-data`` and ``simcls-rerank`` (st_contrast/cli/simcls.py: argument handling; the
fairseq runs are in tests/fairseq/test_end_to_end.py)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from st_contrast.cli import main, simcls
from tests.simcls_utils import generate_output, tiny_texts


def run_simcls(argv: list[str]) -> int:
    """A SimCLS subcommand's handler on ``argv``, with its errors raised (``main`` turns them into status 2)."""
    parser = argparse.ArgumentParser()
    simcls.add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


def test_split_folds_partitions_documents():
    tests = []
    for fold in range(5):
        split = simcls.split_folds(100, 5, fold, valid_size=10, seed=0)
        assert len(split["test"]) == 20 and len(split["valid"]) == 10 and len(split["train"]) == 70
        assert not set(split["test"]) & (set(split["train"]) | set(split["valid"]))
        tests += split["test"]
    assert sorted(tests) == list(range(100))  # the folds cover every document once
    assert simcls.split_folds(100, 5, 0, seed=1)["test"] != simcls.split_folds(100, 5, 0, seed=0)["test"]
    for kwargs, match in [(dict(num_folds=1), "num-folds"), (dict(fold=5), "fold"), (dict(valid_size=80), "valid")]:
        with pytest.raises(ValueError, match=match):
            simcls.split_folds(100, **{"num_folds": 5, "fold": 0, **kwargs})


def test_build_data_from_fairseq_generate(tmp_path, capsys):
    pytest.importorskip("rouge_score")
    generated = tmp_path / "gen.out"
    generated.write_text(generate_output(tiny_texts(5, n_candidates=4)))
    out = tmp_path / "data"
    code = main(["simcls-build-data", "--fairseq-generate", str(generated), "--output-dir", str(out),
                 "--num-folds", "5", "--fold", "2", "--valid-size", "1", "--write-dict"])  # fmt: skip
    assert code == 0
    assert "train 3, valid 1, test 1" in capsys.readouterr().out
    lines = (out / "train.jsonl").read_text().splitlines()
    doc = json.loads(lines[0])
    assert set(doc) == {"id", "source", "reference", "candidates"} and len(doc["candidates"]) == 4
    assert [c["score"] for c in doc["candidates"]] == sorted((c["score"] for c in doc["candidates"]), reverse=True)
    vocab = {line.split()[0] for line in (out / "dict.txt").read_text().splitlines()}
    assert "w1" in vocab and "." in vocab
    # re-split the built file without re-scoring
    assert main(["simcls-build-data", "--jsonl", str(out / "train.jsonl"), "--output", str(tmp_path / "a.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_text() == (out / "train.jsonl").read_text()


def test_build_data_rejects_bad_input(tmp_path):
    pytest.importorskip("rouge_score")
    generated = tmp_path / "gen.out"
    generated.write_text("S-0\tsource text\nT-0\t\nH-0\t-1\tone\nH-0\t-1\ttwo\n")
    with pytest.raises(ValueError, match="reference is empty"):
        run_simcls(["simcls-build-data", "--fairseq-generate", str(generated), "--output", str(tmp_path / "x")])
    with pytest.raises(SystemExit):  # exactly one input is required
        run_simcls(["simcls-build-data", "--output", str(tmp_path / "x")])


def test_rerank_arguments_and_child_command():
    parser = argparse.ArgumentParser()
    simcls.add_rerank_arguments(parser)
    args = parser.parse_args(["--checkpoint", "c.pt", "--input", "in.jsonl", "--output", "-", "--format", "text"])
    assert args.batch_size == 4 and args.format == "text" and not args.cpu
    command = simcls.rerank_command(["--checkpoint", "c.pt"])
    assert command[0] == sys.executable and "rerank_main" in command[2] and command[3:] == ["--checkpoint", "c.pt"]
    subparsers = argparse.ArgumentParser().add_subparsers()
    simcls.add_subcommands(subparsers)
    assert set(subparsers.choices) == {"simcls-build-data", "simcls-rerank"}
    assert subparsers.choices["simcls-rerank"].get_default("handler") is simcls.run_rerank


def test_rerank_child_rejects_a_bad_batch_size(capsys):
    with pytest.raises(SystemExit) as stop:
        simcls.rerank_main(["--checkpoint", "c.pt", "--input", "in.jsonl", "--output", "-", "--batch-size", "0"])
    assert stop.value.code == 2 and "--batch-size must be >= 1" in capsys.readouterr().err


def test_commands_do_not_import_fairseq():
    code = "import sys, st_contrast.cli.simcls, st_contrast.data.simcls; print('fairseq' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


def _generated_without(texts: list[dict], dropped: set[int]) -> str:
    return generate_output([t for t in texts if int(t["id"]) not in dropped])


def test_build_data_refuses_generated_documents_that_do_not_match_the_sources(tmp_path):
    pytest.importorskip("rouge_score")
    texts = tiny_texts(6, n_candidates=3)
    sources, references = tmp_path / "src.txt", tmp_path / "ref.txt"
    sources.write_text("".join(" ".join(t["source"].split()) + "\n" for t in texts))
    references.write_text("".join(" ".join(t["reference"].split()) + "\n" for t in texts))
    generated = tmp_path / "gen.out"
    generated.write_text(_generated_without(texts, {1, 4}))  # what fairseq-generate's dropped batch leaves
    build = ["simcls-build-data", "--fairseq-generate", str(generated), "--output", str(tmp_path / "x.jsonl")]
    for option, path in (("--sources", sources), ("--references", references)):
        with pytest.raises(ValueError) as error:
            run_simcls([*build, option, str(path)])
        message = str(error.value)
        assert f"{option} has 6 documents but the fairseq-generate output has 4" in message
        assert "missing sample ids: 1, 4" in message and "--required-batch-size-multiple 1" in message
        assert not (tmp_path / "x.jsonl").exists()
    # a sources file of another subset (shorter than the ids)
    sources.write_text("".join(" ".join(t["source"].split()) + "\n" for t in texts[:3]))
    generated.write_text(generate_output(texts[:4]))
    with pytest.raises(ValueError, match=r"--sources has 3 documents .* sample ids beyond the file: 3"):
        run_simcls([*build, "--sources", str(sources)])
    # matching counts build every document
    generated.write_text(generate_output(texts[:3]))
    assert run_simcls([*build, "--sources", str(sources)]) == 0
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 3


def test_build_data_warns_about_skipped_ids_without_sources(tmp_path, capsys):
    pytest.importorskip("rouge_score")
    generated = tmp_path / "gen.out"
    generated.write_text(_generated_without(tiny_texts(5, n_candidates=3), {2}))
    build = ["simcls-build-data", "--fairseq-generate", str(generated), "--output", str(tmp_path / "x")]
    assert run_simcls(build) == 0
    assert "skips sample ids 2 (of 0-4)" in capsys.readouterr().err


def test_build_data_reads_sources_through_the_reading_layer(tmp_path):
    pytest.importorskip("rouge_score")
    from st_contrast.data.reading import DataFormatError

    texts = tiny_texts(3, n_candidates=3)
    generated = tmp_path / "gen.out"
    generated.write_text(generate_output(texts))
    sources = tmp_path / "src.txt"
    # a BOM and Windows line ends: the same three documents, the BOM and the \r not in the text
    sources.write_bytes(b"\xef\xbb\xbf" + b"".join(f"document {i}\r\n".encode() for i in range(3)))
    out = tmp_path / "x.jsonl"
    build = ["simcls-build-data", "--fairseq-generate", str(generated), "--output", str(out), "--sources"]
    assert run_simcls([*build, str(sources)]) == 0
    assert [json.loads(line)["source"] for line in out.read_text().splitlines()] == [f"document {i}" for i in range(3)]
    sources.write_bytes(b"document 0\ndocument \xff1\ndocument 2\n")
    with pytest.raises(DataFormatError, match=r"src\.txt:2:10: .*UTF-8"):
        run_simcls([*build, str(sources)])
