"""DeCLUTRSpanSampler: the span laws (KS tests), windows, grid, short documents, text, readers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats

from st_contrast.data.declutr import (
    DeCLUTRSpanSampler,
    declutr_column_names,
    declutr_dataset,
    declutr_input_examples,
    detokenize_wikitext,
    read_wikitext_articles,
    whitespace_token_offsets,
)
from st_contrast.data.reading import DataFormatError
from tests.data.malformed import VARIANTS, ReaderCase, check

DRAWS = 6000

WIKITEXT = ReaderCase(
    name="wikitext2_valid.txt",
    lines=[
        " = Valkyria Chronicles = ",
        "",
        " Senjo no Valkyria 3 is a {HUGE} tactical role @-@ playing game . ",
        "",
        " = = Gameplay = = ",
        " The game is played in turns , as before . ",
        " = Tower Building = ",
        " The tower was built in 1920 for the city . ",
    ],
    read=lambda path: read_wikitext_articles(path, with_titles=True),
    rows=2,
    record_line=3,
    blank_lines_warn=False,  # blank lines separate WikiText paragraphs
    truncated="same_count",  # a paragraph cut short is still a paragraph
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_wikitext_files(variant, tmp_path, caplog):
    check(WIKITEXT, variant, tmp_path, caplog)


def _unit(lengths: np.ndarray, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """Map ``int(X·(high−low)+low)`` back to ``[0, 1)``, dequantised with uniform jitter (exact as high−low grows)."""
    return (lengths - low + rng.random(lengths.shape)) / (high - low)


def _positions(
    strategy="adjacent-overlapping-subsumed",
    anchors=2,
    positives=2,
    low=1,
    high=4001,
    docs=DRAWS,
    num_tokens=None,
    seed=0,
):
    sampler = DeCLUTRSpanSampler(anchors, positives, min_span=low, max_span=high, strategy=strategy, seed=seed)
    if num_tokens is None:
        num_tokens = np.random.default_rng(seed + 1).integers(2 * anchors * high, 5 * anchors * high, size=docs)
    kept, pos = sampler.sample_positions(num_tokens)
    assert kept.tolist() == list(range(len(num_tokens)))
    return pos


def test_anchor_lengths_follow_beta_4_2():
    pos = _positions()
    u = _unit(pos.anchor_lengths.ravel(), 1, 4001, np.random.default_rng(2))
    assert stats.kstest(u, stats.beta(4, 2).cdf).pvalue > 1e-3
    assert stats.kstest(u, stats.beta(2, 4).cdf).pvalue < 1e-12, "the test must tell the two laws apart"


def test_positive_lengths_follow_beta_2_4():
    pos = _positions()
    u = _unit(pos.positive_lengths.ravel(), 1, 4001, np.random.default_rng(3))
    assert stats.kstest(u, stats.beta(2, 4).cdf).pvalue > 1e-3
    assert stats.kstest(u, stats.beta(4, 2).cdf).pvalue < 1e-12


def test_subsuming_positive_lengths_follow_beta_2_4_up_to_the_anchor_length():
    pos = _positions("subsuming")
    anchor = np.broadcast_to(pos.anchor_lengths[..., None], pos.positive_lengths.shape).ravel()
    lengths = pos.positive_lengths.ravel()
    u = (lengths - 1 + np.random.default_rng(4).random(lengths.shape)) / (anchor - 1)
    keep = anchor > 1000  # dequantisation is exact enough for long anchors
    assert stats.kstest(u[keep], stats.beta(2, 4).cdf).pvalue > 1e-3


def test_positives_start_uniformly_in_their_window():
    pos = _positions()
    n = pos.num_tokens[:, None, None]
    a_start, a_end = pos.anchor_starts[..., None], (pos.anchor_starts + pos.anchor_lengths)[..., None]
    low = np.maximum(0, a_start - pos.positive_lengths)
    high = np.minimum(a_end, n - pos.positive_lengths)
    starts = pos.positive_starts
    assert (starts >= low).all() and (starts <= high).all()
    assert (starts + pos.positive_lengths <= n).all()
    # adjacent, overlapping or subsumed: the positive touches or overlaps its anchor
    assert ((starts <= a_end) & (starts + pos.positive_lengths >= a_start)).all()
    u = (starts - low + np.random.default_rng(5).random(starts.shape)) / (high - low + 1)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3


@pytest.mark.parametrize("anchors", [1, 2, 3, 4])
def test_anchors_never_overlap_and_sit_in_distinct_grid_cells(anchors):
    high = 50
    sizes = np.concatenate(
        [
            np.full(500, 2 * anchors * high),
            np.random.default_rng(6).integers(2 * anchors * high, 12 * anchors * high, size=1500),
        ]
    )
    pos = _positions(anchors=anchors, low=5, high=high, num_tokens=sizes)
    starts, ends = pos.anchor_starts, pos.anchor_starts + pos.anchor_lengths
    assert (starts >= 0).all() and (ends <= pos.num_tokens[:, None]).all()
    assert ((pos.anchor_lengths >= 5) & (pos.anchor_lengths <= high)).all()
    cells = starts // high
    assert ((ends - 1) // high == cells).all(), "an anchor stays inside its max_span-wide cell"
    order = np.argsort(starts, axis=1)
    s_sorted, e_sorted = np.take_along_axis(starts, order, 1), np.take_along_axis(ends, order, 1)
    assert (s_sorted[:, 1:] >= e_sorted[:, :-1]).all(), "anchors overlap"


def test_subsuming_positives_lie_inside_their_anchor():
    pos = _positions("subsuming", low=3, high=60, num_tokens=np.full(3000, 240))
    a_start, a_end = pos.anchor_starts[..., None], (pos.anchor_starts + pos.anchor_lengths)[..., None]
    assert (pos.positive_starts >= a_start).all()
    assert (pos.positive_starts + pos.positive_lengths <= a_end).all()
    assert (pos.positive_lengths >= 3).all()


def test_adjacent_positives_touch_their_anchor_without_overlap():
    pos = _positions("adjacent", low=3, high=60, num_tokens=np.full(3000, 240))
    a_start, a_end = pos.anchor_starts[..., None], (pos.anchor_starts + pos.anchor_lengths)[..., None]
    p_start, p_end = pos.positive_starts, pos.positive_starts + pos.positive_lengths
    assert ((p_end == a_start) | (p_start == a_end)).all()
    assert (p_start >= 0).all() and (p_end <= 240).all()
    assert (p_end == a_start).any() and (p_start == a_end).any(), "both sides must occur"


def test_seed_makes_draws_reproducible():
    a = _positions(docs=50, seed=7)
    b = _positions(docs=50, seed=7)
    c = _positions(docs=50, seed=8)
    np.testing.assert_array_equal(a.positive_starts, b.positive_starts)
    assert not np.array_equal(a.anchor_starts, c.anchor_starts)


def _document(n: int, offset: int = 0) -> str:
    return " ".join(f"t{offset + i}" for i in range(n))


def test_short_document_error_names_the_document_and_the_length_needed():
    sampler = DeCLUTRSpanSampler(min_span=4, max_span=10)
    with pytest.raises(ValueError, match=r"document #1 .*has 39 tokens, but DeCLUTR needs at least 40 .*on_short"):
        sampler.sample_documents([_document(40), _document(39)])
    with pytest.raises(ValueError, match=r"document B has 39 tokens"):
        sampler.sample_documents([_document(40), _document(39)], names=["A", "B"])


def test_skip_drops_short_documents_and_counts_them():
    sampler = DeCLUTRSpanSampler(min_span=4, max_span=10, on_short="skip", seed=0)
    samples = sampler.sample_documents([_document(40), _document(39), _document(100)])
    assert len(samples) == 2
    assert sampler.counts == {"sampled": 2, "skipped": 1, "shrunk": 0}
    assert "skipped 1" in sampler.report()
    assert sampler.sample(_document(5)) is None


def test_shrink_scales_spans_to_the_document():
    sampler = DeCLUTRSpanSampler(min_span=4, max_span=10, on_short="shrink", seed=0)
    kept, pos = sampler.sample_positions([40, 20, 3, 2000])
    assert kept.tolist() == [0, 1, 3], "a 3-token document is too short even for 1-token spans"
    assert pos.max_span.tolist() == [10, 5, 10] and pos.min_span.tolist() == [4, 2, 4]
    assert sampler.counts == {"sampled": 3, "skipped": 1, "shrunk": 1}
    assert (pos.anchor_lengths[1] <= 5).all() and (pos.anchor_starts[1] + pos.anchor_lengths[1] <= 20).all()
    assert (pos.positive_starts[1] + pos.positive_lengths[1] <= 20).all()


def test_spans_are_the_documents_words():
    text = "  alpha beta\tgamma\n\ndelta " + _document(400) + " \u00a0omega  "
    tokens = text.split()
    sampler = DeCLUTRSpanSampler(min_span=5, max_span=40, seed=0)
    sample = sampler.sample(text)
    assert len(sample.anchors) == 2 and all(len(group) == 2 for group in sample.positives)
    joined = " ".join(tokens)
    for span in sample.texts():
        words = span.split()
        assert 5 <= len(words) <= 40
        assert span == span.strip() and " ".join(words) in joined
        start = tokens.index(words[0])
        assert tokens[start : start + len(words)] == words


def test_callable_tokenizer_joins_its_tokens_with_spaces():
    sampler = DeCLUTRSpanSampler(min_span=3, max_span=8, seed=0, tokenizer=lambda text: list(text.replace(" ", "")))
    sample = sampler.sample("abcdefghij" * 5)
    for span in sample.texts():
        assert 3 <= len(span.split(" ")) <= 8 and all(len(ch) == 1 for ch in span.split(" "))


def test_hugging_face_tokenizer_measures_spans_in_model_tokens(tiny_model):
    tokenizer = tiny_model.tokenizer
    text = " ".join(["the cat sat on the mat and the dog ran in the park"] * 20)
    sampler = DeCLUTRSpanSampler(min_span=4, max_span=20, tokenizer=tokenizer, seed=0)
    assert sampler.min_document_length <= len(tokenizer(text, add_special_tokens=False)["input_ids"])
    sample = sampler.sample(text)
    for span in sample.texts():
        assert span in text and span == span.strip()
        assert 4 <= len(tokenizer(span, add_special_tokens=False)["input_ids"]) <= 20


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "one",
        "a  b\u00a0c\n\nd\u3000e \u2028f\x1cg\x85h",
        "héllo wörld",
        "a\x01b\x1fc\x0bd\x0e e\x7f",
        " \t\r\n",
    ],
)
def test_whitespace_offsets_match_str_split(text):
    starts, ends = whitespace_token_offsets(text)
    assert [text[s:e] for s, e in zip(starts, ends)] == text.split()


def test_dataset_and_input_examples_follow_the_loss_column_order():
    docs = [_document(200, 1000 * i) for i in range(3)]
    dataset = declutr_dataset(docs, min_span=2, max_span=10, seed=0, samples_per_document=2)
    assert (
        dataset.column_names
        == declutr_column_names(2, 2)
        == ["anchor_0", "anchor_1", "positive_0_0", "positive_0_1", "positive_1_0", "positive_1_1"]
    )
    assert len(dataset) == 6
    examples = declutr_input_examples(docs, min_span=2, max_span=10, seed=0)
    assert len(examples) == 3 and len(examples[0].texts) == 6
    assert list(examples[0].texts) == [dataset[0][name] for name in dataset.column_names]
    three = DeCLUTRSpanSampler(3, 1, min_span=2, max_span=10).columns(docs)
    assert list(three) == ["anchor_0", "anchor_1", "anchor_2", "positive_0_0", "positive_1_0", "positive_2_0"]


def test_positives_of_an_anchor_are_near_it_in_the_text():
    tokens = [f"t{i}" for i in range(2000)]
    sampler = DeCLUTRSpanSampler(min_span=5, max_span=50, seed=3)
    for sample in sampler.sample_documents([" ".join(tokens)] * 20):
        for anchor, group in zip(sample.anchors, sample.positives):
            a_start = int(anchor.split()[0][1:])
            a_end = a_start + len(anchor.split())
            for positive in group:
                p_start = int(positive.split()[0][1:])
                assert a_start - len(positive.split()) <= p_start <= a_end


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_anchors": 0}, "num_anchors must be an integer >= 1"),
        ({"num_positives": 1.5}, "num_positives must be an integer"),
        ({"min_span": 20, "max_span": 10}, "min_span must be <= max_span"),
        ({"strategy": "random"}, "strategy must be one of"),
        ({"on_short": "pad"}, "on_short must be 'error', 'skip' or 'shrink'"),
        ({"tokenizer": "bert"}, "tokenizer must be None, a callable"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeCLUTRSpanSampler(**kwargs)


def test_samples_per_document_and_shortcut_arguments_are_checked():
    with pytest.raises(ValueError, match="samples_per_document must be an integer >= 1"):
        DeCLUTRSpanSampler().columns([], samples_per_document=0)
    with pytest.raises(ValueError, match="either a sampler or sampler keyword arguments"):
        declutr_dataset([], sampler=DeCLUTRSpanSampler(), seed=1)


def test_read_wikitext_articles(data_dir):
    import os

    path = os.path.join(data_dir, "unlabeled", "wikitext2_valid.txt")
    articles = read_wikitext_articles(path, with_titles=True)
    assert len(articles) == 60
    title, text = articles[0]
    assert title == "Homarus gammarus" and text.startswith("Homarus gammarus, known as the European lobster")
    assert not any(line.lstrip().startswith("= ") for _, body in articles for line in body.splitlines())
    assert " @-@ " not in text and " @.@ " not in text
    raw = read_wikitext_articles(path, detokenize=False)
    assert " , " in raw[0] and len(raw) == 60
    lengths = [len(body.split()) for _, body in articles]
    assert np.median(lengths) > 2000, "WikiText-2 articles are long documents"


def test_read_wikitext_rejects_other_files(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("just a sentence\nanother one\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not look like a WikiText file"):
        read_wikitext_articles(path)


def test_detokenize_wikitext():
    assert (
        detokenize_wikitext("a 3 @.@ 5 kg ( 7 @,@ 000 ) well @-@ known , isn 't K 'awiil")
        == "a 3.5 kg (7,000) well-known, isn't K 'awiil"
    )


def test_wikitext_skips_text_outside_articles_with_a_count(tmp_path, caplog):
    path = tmp_path / "part.txt"
    path.write_text(
        " text of an article cut off above \n = Empty = \n\n = = Only a heading = = \n = Kept = \n body \n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        assert read_wikitext_articles(path, with_titles=True) == [("Kept", "body")]
    assert "skipped 1 lines before the first title, 1 articles without text" in caplog.text
    path.write_text(" = Empty = \n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="none of the 1 articles has any text"):
        read_wikitext_articles(path)


def test_crlf_titles_still_start_articles(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b" = First = \r\n one \r\n = Second = \r\n two \r\n")
    assert read_wikitext_articles(path, with_titles=True) == [("First", "one"), ("Second", "two")]


def test_sampler_refuses_documents_that_are_not_text():
    with pytest.raises(TypeError, match="documents must be strings, got NoneType at index 1"):
        DeCLUTRSpanSampler(min_span=1, max_span=2).sample_documents(["a b c d e f g h", None])


def test_real_wikitext_test_split(data_dir):
    articles = read_wikitext_articles(f"{data_dir}/unlabeled/wikitext2_test.txt")
    assert len(articles) == 62 and sum(len(text.split()) for text in articles) == 203893


# ---------------------------------------------------------------------------------------------
# Subword-token spans (every released DeCLUTR config), the default when the model's tokenizer is known
# ---------------------------------------------------------------------------------------------

_SUBWORD_TEXT = " ".join(["the cat sat on the mat and the dog ran in the park"] * 20)


def _model_tokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_model_argument_measures_spans_in_its_subword_tokens_by_default(tiny_model):
    tokenizer = tiny_model.tokenizer
    sampler = DeCLUTRSpanSampler(min_span=4, max_span=20, model=tiny_model, seed=0)
    assert sampler.unit == "tokens" and sampler.tokenizer is tokenizer
    assert sampler.get_config_dict()["unit"] == "tokens"
    explicit = DeCLUTRSpanSampler(min_span=4, max_span=20, unit="tokens", tokenizer=tokenizer, seed=0)
    assert sampler.sample(_SUBWORD_TEXT).texts() == explicit.sample(_SUBWORD_TEXT).texts()
    # the tiny vocabulary splits words into several subwords, so the two units genuinely differ
    words = DeCLUTRSpanSampler(min_span=4, max_span=20, seed=0)
    assert words.unit == "words" and words.get_config_dict()["unit"] == "words"
    subword_lengths = [_model_tokens(tokenizer, span) for span in sampler.sample(_SUBWORD_TEXT).texts()]
    assert all(4 <= n <= 20 for n in subword_lengths)
    assert _model_tokens(tokenizer, _SUBWORD_TEXT) != len(_SUBWORD_TEXT.split())
    # unit="words" with the model keeps whitespace tokens (the paper's description)
    paper = DeCLUTRSpanSampler(min_span=4, max_span=20, model=tiny_model, unit="words", seed=0)
    assert paper.tokenizer is None and paper.sample(_SUBWORD_TEXT).texts() == words.sample(_SUBWORD_TEXT).texts()


def test_shortcuts_pass_the_model_through(tiny_model):
    columns = declutr_dataset([_SUBWORD_TEXT], model=tiny_model, min_span=4, max_span=20, seed=0)
    reference = DeCLUTRSpanSampler(min_span=4, max_span=20, model=tiny_model, seed=0).columns([_SUBWORD_TEXT])
    assert columns.to_dict() == reference


def test_unit_errors_and_the_truncation_warning(tiny_model, caplog):
    with pytest.raises(ValueError, match="unit must be 'tokens'"):
        DeCLUTRSpanSampler(unit="characters")
    with pytest.raises(ValueError, match="fast tokenizer"):
        DeCLUTRSpanSampler(unit="tokens")
    with pytest.raises(ValueError, match="fast tokenizer"):
        DeCLUTRSpanSampler(unit="tokens", tokenizer=str.split)
    with pytest.raises(ValueError, match="unit='words' counts whitespace"):
        DeCLUTRSpanSampler(unit="words", tokenizer=tiny_model.tokenizer)
    with pytest.raises(ValueError, match="not both"):
        DeCLUTRSpanSampler(model=tiny_model, tokenizer=tiny_model.tokenizer)

    class NoTokenizer:
        tokenizer = None

    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        DeCLUTRSpanSampler(model=NoTokenizer())
    with caplog.at_level(logging.WARNING, logger="st_contrast.data.declutr"):
        DeCLUTRSpanSampler(min_span=4, max_span=tiny_model.max_seq_length, model=tiny_model)
    assert any("max_seq_length" in r.getMessage() for r in caplog.records)
