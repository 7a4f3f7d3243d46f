"""Aligned augmentation (data/aligned_augmentation.py) on its own: word reassembly, substitution rate, what is
never substituted, dictionary files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.fairseq.translation_utils import EN_WORDS, LANGS, as_pieces, sentence, translate


def _augmentation(dictionary, prob, langs=("de", "fr")):
    from fairseq_plugins.data.aligned_augmentation import AlignedAugmentation
    from fairseq_plugins.tasks.translation_multilingual_contrastive import lang_token

    pairs = {("en", lang): [(w, translate(w, lang)) for w in EN_WORDS] for lang in langs}
    protected = [dictionary.index(lang_token(lang)) for lang in LANGS]
    return AlignedAugmentation(dictionary, pairs, prob, "@@", protected=protected)


def _encode(dictionary, text: str) -> torch.Tensor:
    return torch.tensor([dictionary.index(s) for s in text.split()] + [dictionary.eos()])


def test_words_are_reassembled_from_subword_pieces(dictionary):
    aug = _augmentation(dictionary, 0.5)
    tokens = _encode(dictionary, sentence(["w16", "w3", "w22"], "en")).tolist()
    assert len(tokens) == 6  # w1@@ 6 w3 w2@@ 2 </s>
    assert [w for _, _, w in aug.words(tokens)] == ["w16", "w3", "w22"]
    assert aug.encode_word("w16de") == tuple(dictionary.index(p) for p in as_pieces("w16de"))
    assert aug.encode_word("nosuchword") is None
    assert aug.stats["usable"] == aug.stats["entries"] == 2 * len(EN_WORDS)


@pytest.mark.parametrize("prob", [0.0, 0.3, 0.7, 1.0])
def test_substitution_rate_matches_ras_prob(dictionary, prob):
    aug = _augmentation(dictionary, prob)
    rng = np.random.default_rng(0)
    substituted = eligible = 0
    for _ in range(300):
        words = list(rng.choice(EN_WORDS, size=8))
        tokens = _encode(dictionary, sentence(words, "en"))
        out, s, e = aug(tokens, "en", rng)
        substituted, eligible = substituted + s, eligible + e
        assert out[-1] == dictionary.eos()
        text = dictionary.string(out[:-1]).replace("@@ ", "").split()
        assert len(text) == len(words)  # one word for one word
        changed = sum(a != b for a, b in zip(text, words))
        assert changed == s
        for original, new in zip(words, text):
            assert new in {original, translate(original, "de"), translate(original, "fr")}
    assert eligible == 300 * 8
    assert substituted / eligible == pytest.approx(prob, abs=0.03)


def test_language_tokens_and_specials_are_never_substituted(dictionary):
    from fairseq_plugins.tasks.translation_multilingual_contrastive import lang_token

    aug = _augmentation(dictionary, 1.0)
    langtoks = [dictionary.index(lang_token(lang)) for lang in LANGS]
    tokens = torch.tensor([langtoks[1], dictionary.index("w3"), langtoks[2], dictionary.index("w5"), dictionary.eos()])
    out, s, e = aug(tokens, "en", np.random.default_rng(1))
    assert (s, e) == (2, 2)
    assert out[0] == langtoks[1] and out[2] == langtoks[2] and out[-1] == dictionary.eos()


def test_dictionary_spec_parsing(tmp_path):
    from fairseq_plugins.data.aligned_augmentation import parse_dictionary_spec, read_muse_dictionary

    assert parse_dictionary_spec("/d/en-de.0-5000.txt") == ("en", "de", "/d/en-de.0-5000.txt")
    assert parse_dictionary_spec("de-fr=/d/x.txt") == ("de", "fr", "/d/x.txt")
    with pytest.raises(ValueError, match="language pair"):
        parse_dictionary_spec("/d/words.txt")
    path = tmp_path / "en-de.txt"
    path.write_text("house haus\nhouse heim\n\nbad line here\ncat\tkatze\n", encoding="utf-8")
    assert read_muse_dictionary(str(path)) == [("house", "haus"), ("house", "heim"), ("cat", "katze")]
