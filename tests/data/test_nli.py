"""NLI triplets from SimCSE's CSV and from SNLI-style TSV files."""

from __future__ import annotations

import logging

import pytest

from st_contrast.data import nli_dataset, nli_examples, read_simcse_nli_csv, snli_triplets
from st_contrast.data.reading import DataFormatError
from tests.data.malformed import VARIANTS, ReaderCase, check

SNLI = ReaderCase(
    name="snli.tsv",
    lines=[
        "premise\thypothesis\tlabel",
        "a man sleeps\the is asleep\t0",
        "a man sleeps\the is awake\t2",
        "a dog {HUGE} runs\tan animal moves\tentailment",
        "a dog {HUGE} runs\ta cat sits\tcontradiction",
    ],
    read=snli_triplets,
    rows=2,
    record_line=3,
)

SIMCSE_CSV = ReaderCase(
    name="nli_for_simcse.csv",
    lines=[
        "sent0,sent1,hard_neg",
        "a man sleeps,he is asleep,he is awake",
        '"a dog, {HUGE}","an animal, moving",a cat',
        "last anchor,last positive,last negative",
    ],
    read=read_simcse_nli_csv,
    rows=3,
    record_line=2,
    lone_cr="error",  # CSV lines end at \n or \r\n; a lone \r outside quotes is a CSV error
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_snli_files(variant, tmp_path, caplog):
    check(SNLI, variant, tmp_path, caplog)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_simcse_csv_files(variant, tmp_path, caplog):
    check(SIMCSE_CSV, variant, tmp_path, caplog)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sent0,sent1,hard_neg\na,b,c,d\n", r":2: the row has more fields than the header: 4, expected 3"),
        ('sent0,sent1,hard_neg\n"a,b,c\nd,e,f\n', r":3: a quoted field opened on line 2 is never closed"),
        ('sent0,sent1,hard_neg\n"a"x,b,c\n', r":2: malformed CSV"),
        ("anchor,positive\na,b\n", r":1: the file must start with a header naming the columns sent0, sent1"),
        ("sent0,sent1\n,b\n a ,\n", r": no NLI row \(2 rows with an empty field\)"),
    ],
)
def test_simcse_csv_refuses_malformed_rows(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        read_simcse_nli_csv(path)
    assert str(info.value).startswith(str(path))


def test_snli_header_after_blank_lines_and_other_formats(tmp_path):
    path = tmp_path / "nli.tsv"
    path.write_text("\n\ngold_label\tx\tlabel\np\te\t0\np\tc\t2\n", encoding="utf-8")
    assert snli_triplets(path) == [("p", "e", "c")]
    path.write_text("p\th\t1\n", encoding="utf-8")  # a neutral pair gives no triplet, but it is a labelled pair
    assert snli_triplets(path) == []
    path.write_text("p\th\t-\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"nli.tsv: no labelled pair \(0 blank lines, 1 rows without a gold"):
        snli_triplets(path)
    original_release = "gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1\tsentence2\n"
    path.write_text(original_release, encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"nli.tsv:1: expected 3 tab-separated columns .* got 5"):
        snli_triplets(path)


@pytest.mark.parametrize(("pairing", "count"), [("first", 2921), ("zip", 2929), ("product", 3247)])
def test_snli_test_triplet_counts(data_dir, pairing, count):
    triplets = snli_triplets(f"{data_dir}/nli/snli_test.tsv", pairing=pairing)
    assert len(triplets) == count
    assert all(p and e and c for p, e, c in triplets)


def test_snli_triplets_take_entailment_and_contradiction_of_the_premise(data_dir):
    triplets = snli_triplets("nli/snli_test.tsv")  # relative: found through ST_CONTRAST_DATA
    premise = "this church choir sings to the masses as they sing joyous songs from the book at a church"
    assert triplets[0] == (premise, "the church is filled with song", "a choir singing at a baseball game")
    labels = {}
    with open(f"{data_dir}/nli/snli_test.tsv", encoding="utf-8") as handle:
        for line in handle:
            p, h, label = line.rstrip("\n").split("\t")
            labels.setdefault((p, h), set()).add(label)
    assert all("0" in labels[(p, e)] and "2" in labels[(p, c)] for p, e, c in triplets)


def test_snli_pairing_rules_and_label_forms(tmp_path, caplog):
    path = tmp_path / "nli.tsv"
    path.write_text(
        "premise\thypothesis\tlabel\n"
        "p1\te1\tentailment\n"
        "p2\tc2\t2\n"
        "p1\tc1\tCONTRADICTION\n"
        "p1\te1b\t0\n"
        "p1\tn1\tneutral\n"
        "p2\te2\t0\n"
        "p3\te3\t0\n"
        "p1\tc1b\t2\n"
        "p2\tx\t-\n"
        "p2\t \t2\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        assert snli_triplets(path) == [("p1", "e1", "c1"), ("p2", "e2", "c2")]
    assert "Skipped 1 rows without a gold label ('-') and 1 rows with an empty text" in caplog.text
    assert snli_triplets(path, pairing="zip") == [("p1", "e1", "c1"), ("p1", "e1b", "c1b"), ("p2", "e2", "c2")]
    assert snli_triplets(path, pairing="product") == [
        ("p1", "e1", "c1"),
        ("p1", "e1", "c1b"),
        ("p1", "e1b", "c1"),
        ("p1", "e1b", "c1b"),
        ("p2", "e2", "c2"),
    ]
    with pytest.raises(ValueError, match="pairing must be"):
        snli_triplets(path, pairing="random")


@pytest.mark.parametrize(
    ("text", "message"),
    [("p\th\tmaybe\n", "unknown label 'maybe'"), ("p\th\n", "expected 3 tab-separated columns")],
)
def test_snli_rejects_malformed_lines(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text("p0\th0\t0\n" + text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        snli_triplets(path)
    assert ":2:" in str(info.value)


def test_simcse_csv_quoting_and_empty_fields(tmp_path, caplog):
    path = tmp_path / "nli_for_simcse.csv"
    path.write_text(
        "sent0,sent1,hard_neg\n"
        "plain anchor,plain positive,plain negative\n"
        '"a, with comma","she said ""hi""","line one\nline two"\n'
        "anchor,,negative\n"
        '"it\'s 5"" tall",ok,"no"\n',
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        rows = read_simcse_nli_csv(path)
    assert rows == [
        ("plain anchor", "plain positive", "plain negative"),
        ("a, with comma", 'she said "hi"', "line one\nline two"),
        ("it's 5\" tall", "ok", "no"),
    ]
    assert "Dropped 1 rows" in caplog.text


def test_simcse_csv_pairs_and_bad_files(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("sent0,sent1\na,b\n", encoding="utf-8")
    assert read_simcse_nli_csv(pairs) == [("a", "b")]
    no_header = tmp_path / "no_header.csv"
    no_header.write_text("a,b,c\n", encoding="utf-8")
    with pytest.raises(ValueError, match="sent0, sent1"):
        read_simcse_nli_csv(no_header)
    short = tmp_path / "short.csv"
    short.write_text("sent0,sent1,hard_neg\na,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="fewer fields than the header"):
        read_simcse_nli_csv(short)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_simcse_nli_csv(tmp_path / "missing.csv")


def test_nli_dataset_and_examples(caplog):
    triplets = [("a1", "p1", "n1"), ("a2", "", "n2"), ("a3", "p3", "n3")]
    with caplog.at_level(logging.WARNING):
        dataset = nli_dataset(triplets)
    assert dataset.column_names == ["anchor", "positive", "negative"]
    assert dataset["anchor"] == ["a1", "a3"] and dataset["negative"] == ["n1", "n3"]
    assert "Dropped 1 NLI rows with an empty text" in caplog.text
    assert [e.texts for e in nli_examples(triplets)] == [["a1", "p1", "n1"], ["a3", "p3", "n3"]]
    assert nli_dataset([("a", "b")]).column_names == ["anchor", "positive"]
    with pytest.raises(ValueError, match="must all be"):
        nli_dataset([("a", "b", "c"), ("a", "b")])
    with pytest.raises(ValueError, match="No NLI rows left"):
        nli_examples([("", "b", "c")])


def test_trainer_with_nli_dataset(tiny_model, data_dir, tmp_path):
    from st_contrast.losses import SimCSELoss
    from tests.training_utils import trainer_two_steps

    triplets = snli_triplets(f"{data_dir}/nli/snli_test.tsv")[:8]
    changed = trainer_two_steps(tiny_model, SimCSELoss(tiny_model), nli_dataset(triplets), tmp_path)
    assert any("encoder" in name for name in changed)
