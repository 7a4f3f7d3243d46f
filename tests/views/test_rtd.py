"""RTD labels of CLINE rewrites recovered from token ids (st_contrast.views.rtd)."""

from __future__ import annotations

import pytest

from st_contrast.losses import CLINELoss
from st_contrast.losses.cline import IGNORE, TokenAligner
from st_contrast.views.rtd import RTDLabeler


def _labels(tok, sentence, replaced_words, value=1, ignored=()):
    """Expected labels: per word of ``sentence``, every piece gets the word's label; [CLS]/[SEP] ignored."""
    labels = [IGNORE]
    for word in sentence.split():
        label = value if word in replaced_words else IGNORE if word in ignored else 0
        labels += [label] * len(tok.tokenize(word))
    return labels + [IGNORE]


def _ids(tok, sentence):
    return tok(sentence)["input_ids"]


@pytest.fixture
def tok(tiny_model):
    return tiny_model.tokenizer


@pytest.mark.parametrize(
    "original, rewrite, replaced",
    [
        # storm -> "violent storm": the unchanged copy of "storm" belongs to the replacement (right of it)
        ("the storm hit the town", "the violent storm hit the town", {"violent", "storm"}),
        # run -> "run away": a particle continues the word on its left
        ("they run home", "they run away home", {"run", "away"}),
        # side -> "side of meat": so does a phrase that goes on with a function word
        ("the side was cold", "the side of meat was cold", {"side", "of", "meat"}),
        # "the" is never the replaced word, even when the insertion could continue it
        ("the storm", "the violent storm", {"violent", "storm"}),
    ],
)
def test_every_token_of_a_multi_word_replacement_is_replaced(tok, original, rewrite, replaced):
    aligner = TokenAligner(tok)
    labeler = RTDLabeler(aligner, tok)
    labels = labeler.labels_for(_ids(tok, original), _ids(tok, rewrite))
    assert labels == _labels(tok, rewrite, replaced)
    # the plain word alignment misses the original word inside the span
    assert aligner.replaced(_ids(tok, original), _ids(tok, rewrite)) != labels


def test_single_word_replacements_and_identical_rewrites_are_unchanged(tok):
    aligner = TokenAligner(tok)
    labeler = RTDLabeler(aligner, tok)
    for original, rewrite in (
        ("the cat sat on the mat", "the feline sat on the rug"),
        ("a man is playing a guitar", "a man is played a guitar"),
        ("the cat sat on the mat", "the cat sat on the mat"),
    ):
        a, b = _ids(tok, original), _ids(tok, rewrite)
        assert labeler.labels_for(a, b, value=2) == aligner.replaced(a, b, value=2)


def test_content_labels_ignore_function_words(tok):
    content = {"cat", "sat", "stood", "mat", "rug", "violent", "storm"}
    labeler = RTDLabeler(TokenAligner(tok), tok, labels="content", content_word=content.__contains__)
    rewrite = "the cat stood on the mat"
    labels = labeler.labels_for(_ids(tok, "the cat sat on the mat"), _ids(tok, rewrite), value=2)
    assert labels == _labels(tok, rewrite, {"stood"}, value=2, ignored={"the", "on"})
    # a replaced span is labelled whole, function words in it included
    rewrite = "the storm of rain"
    labels = labeler.labels_for(_ids(tok, "the storm"), _ids(tok, rewrite))
    assert labels == _labels(tok, rewrite, {"storm", "of", "rain"}, ignored={"the"})


def test_content_labels_with_wordnet(tok):
    from tests.views.test_wordnet import shared_lexicon

    lexicon = shared_lexicon()
    labeler = RTDLabeler(TokenAligner(tok), tok, labels="content", content_word=lambda w: lexicon.entry(w) is not None)
    rewrite = "the cat stood on the mat"
    labels = labeler.labels_for(_ids(tok, "the cat sat on the mat"), _ids(tok, rewrite))
    assert labels == _labels(tok, rewrite, {"stood"}, ignored={"the", "on"})


def test_bad_labels_option(tok):
    with pytest.raises(ValueError, match="rtd_labels must be 'all'"):
        RTDLabeler(TokenAligner(tok), tok, labels="nouns")
    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        RTDLabeler(TokenAligner(tok), None, labels="content")


def test_cline_loss_uses_the_span_and_content_labels(tiny_model):
    tok = tiny_model.tokenizer
    original, synonym, antonym = (
        ["the storm hit the town"],
        ["the violent storm hit the town"],
        ["the calm hit the town"],
    )
    feats = [tiny_model.preprocess(c) for c in (original, synonym, antonym)]

    def rows(loss):
        syn, ant = loss.rtd_labels(feats[0]["attention_mask"], feats[0]["input_ids"], feats[1], feats[2])
        return (
            syn[0][: int(feats[1]["attention_mask"][0].sum())].tolist(),
            ant[0][: int(feats[2]["attention_mask"][0].sum())].tolist(),
        )

    syn, ant = rows(CLINELoss(tiny_model))
    assert syn == _labels(tok, synonym[0], {"violent", "storm"})
    assert ant == _labels(tok, antonym[0], {"calm"})
    content = {"storm", "hit", "town", "violent", "calm"}
    loss = CLINELoss(tiny_model, objective="official", rtd_labels="content", content_word=content.__contains__)
    syn, ant = rows(loss)
    assert syn == _labels(tok, synonym[0], {"violent", "storm"}, ignored={"the"})
    assert ant == _labels(tok, antonym[0], {"calm"}, value=2, ignored={"the"})
    assert loss.get_config_dict()["rtd_labels"] == "content"
    assert CLINELoss(tiny_model).get_config_dict()["rtd_labels"] == "all"
    with pytest.raises(ValueError, match="rtd_labels must be 'all'"):
        CLINELoss(tiny_model, rtd_labels="nouns")
