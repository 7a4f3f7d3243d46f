"""st_contrast.testing: the tiny offline models are the same on every machine and run."""

from __future__ import annotations

import hashlib

from st_contrast.testing import TINY_VOCAB_FILE, build_tiny_transformer, tiny_vocab


def _digest(folder) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.name in {"vocab.txt", "model.safetensors", "config.json"}
    }


def test_vocabulary_is_the_shipped_file():
    vocab = tiny_vocab()
    assert len(vocab) == 1000 == len(set(vocab))
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert TINY_VOCAB_FILE.is_file()


def test_builds_are_identical_with_and_without_the_data_folder(tmp_path, monkeypatch):
    first = build_tiny_transformer(tmp_path / "a")
    monkeypatch.delenv("ST_CONTRAST_DATA", raising=False)
    second = build_tiny_transformer(tmp_path / "b")
    digests = _digest(first)
    assert set(digests) == {"vocab.txt", "model.safetensors", "config.json"}
    assert digests == _digest(second)
    assert (first / "vocab.txt").read_text(encoding="utf-8").splitlines() == tiny_vocab()
