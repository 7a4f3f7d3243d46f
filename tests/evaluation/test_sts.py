"""STS-B loader (original release quirks), Spearman evaluation and the Trainer evaluator."""

from __future__ import annotations

import logging

import pytest
from scipy.stats import spearmanr

from st_contrast.data.reading import DataFormatError
from st_contrast.evaluation import STSEvaluator, evaluate_sts, load_sts_benchmark, read_sts_file, sts_spearman
from tests.data.malformed import VARIANTS, ReaderCase, check

STS_FILE = ReaderCase(
    name="sts-dev.csv",
    lines=[
        'main-news\tMSRpar\t2012\t0001\t4.200\tHe said "yes.\tHe said yes.\textra-source-1\textra-source-2',
        "main-forums\tanswers\t2015\t0002\t0.000\tA {HUGE} sentence.\tAnother one.",
        "main-captions\tMSRvid\t2012\t0003\t5.000\tA plane is taking off.\tAn air plane is taking off.",
    ],
    read=read_sts_file,
    rows=3,
    record_line=2,
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_files(variant, tmp_path, caplog):
    check(STS_FILE, variant, tmp_path, caplog)


@pytest.mark.parametrize(
    ("score", "message"),
    [
        ("nan", "holds 'nan'; expected a finite number"),
        ("inf", "holds 'inf'; expected a finite number"),
        ("7", r"holds '7', outside the scale \[0.0, 5.0\]"),
        ("-0.1", r"holds '-0.1', outside the scale \[0.0, 5.0\]"),
        ("", "holds '', not a number"),
        ("4,5", "holds '4,5', not a number"),
    ],
)
def test_scores_must_be_finite_and_on_the_scale(tmp_path, score, message):
    path = tmp_path / "sts-test.csv"
    path.write_text(f"g\tf\t2012\t1\t3.0\ta\tb\ng\tf\t2012\t2\t{score}\tc\td\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"sts-test.csv:2: the score column {message}"):
        read_sts_file(path)


def test_other_scales(tmp_path):
    path = tmp_path / "sts.csv"
    path.write_text("g\tf\t2012\t1\t7\ta\tb\n", encoding="utf-8")
    assert read_sts_file(path, scale=None) == [("a", "b", 7.0)]
    assert read_sts_file(path, scale=(0.0, 10.0)) == [("a", "b", 7.0)]
    with pytest.raises(DataFormatError, match=r"outside the scale \[0.0, 1.0\]"):
        read_sts_file(path, scale=(0.0, 1.0))


@pytest.mark.parametrize(("split", "size"), [("train", 5749), ("dev", 1500), ("test", 1379)])
def test_split_sizes_on_real_data(data_dir, split, size):
    pairs = load_sts_benchmark(split, data_dir=data_dir)
    assert len(pairs) == size
    assert all(0.0 <= score <= 5.0 for _, _, score in pairs)
    assert all(a and b for a, b, _ in pairs)


def test_rows_with_extra_columns_and_unbalanced_quotes_on_real_data(data_dir):
    pairs = load_sts_benchmark("test", data_dir=data_dir)
    assert pairs[0] == ("A girl is styling her hair.", "A girl is brushing her hair.", 2.5)
    # no sentence swallowed a tab-joined source column or the following rows through a stray quote
    assert not any("\t" in a or "\t" in b or "\n" in a or "\n" in b for a, b, _ in pairs)
    assert any((a + b).count('"') % 2 for a, b, _ in pairs), "the test split has sentences with unbalanced quotes"


def test_reader_quirks(tmp_path):
    path = tmp_path / "sts-test.csv"
    path.write_text(
        'main-news\tMSRpar\t2012\t0001\t4.2\tHe said "yes.\tHe said yes.\textra-source-1\textra-source-2\n'
        "\n"
        'main-forums\tanswers\t2015\t0002\t0.000\t"Quoted start\tplain, with comma\r\n',
        encoding="utf-8",
    )
    assert read_sts_file(path) == [
        ('He said "yes.', "He said yes.", 4.2),
        ('"Quoted start', "plain, with comma", 0.0),
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("genre\tfile\t2012\t1\t3.0\tonly one sentence\n", "at least 7"),
        ("genre\tfile\t2012\t1\tNaN?\ta\tb\n", "not a number"),
        ("genre\tfile\t2012\t1\t3.0\t \tb\n", "empty"),
    ],
)
def test_reader_rejects_malformed_rows(tmp_path, row, message):
    path = tmp_path / "sts-dev.csv"
    path.write_text(row, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_sts_file(path)


def test_missing_file_names_places_searched_and_how_to_download(tmp_path, monkeypatch):
    monkeypatch.delenv("ST_CONTRAST_DATA", raising=False)
    monkeypatch.delenv("ST_CONTRAST_DOWNLOAD", raising=False)
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as info:
        load_sts_benchmark("dev", data_dir=tmp_path / "mine")
    message = str(info.value)
    assert "sts/stsbenchmark/sts-dev.csv" in message
    assert str(tmp_path / "mine") in message and str(tmp_path / "cache" / "data") in message
    assert "download=True" in message and "ST_CONTRAST_DOWNLOAD" in message


def test_unknown_split():
    with pytest.raises(ValueError, match="split must be one of train, dev, test"):
        load_sts_benchmark("validation")


def test_explicit_data_dir_comes_first(tmp_path, data_dir):
    folder = tmp_path / "sts" / "stsbenchmark"
    folder.mkdir(parents=True)
    (folder / "sts-dev.csv").write_text("g\tf\t2012\t1\t1.0\ta\tb\ng\tf\t2012\t2\t2.0\tc\td\n", encoding="utf-8")
    assert load_sts_benchmark("dev", data_dir=tmp_path) == [("a", "b", 1.0), ("c", "d", 2.0)]


def _naive_spearman(model, pairs):
    """Reference: encode every sentence of every pair on its own (no de-duplication), cosine, Spearman (0-1).

    Sentences are encoded one at a time so that padding cannot change the tiny random model's nearly
    identical cosines; the code under test is then run with ``batch_size=1`` too.
    """
    import torch

    cosines = []
    for a, b, _ in pairs:
        ea = model.encode([a], convert_to_tensor=True, batch_size=1)[0]
        eb = model.encode([b], convert_to_tensor=True, batch_size=1)[0]
        cosines.append(float(torch.nn.functional.cosine_similarity(ea, eb, dim=0)))
    return spearmanr([s for _, _, s in pairs], cosines).statistic


def test_sts_spearman_matches_naive_reference(tiny_model, data_dir):
    pairs = load_sts_benchmark("dev", data_dir=data_dir)[:40]
    pairs = pairs + [(pairs[0][1], pairs[1][0], 1.5)]  # repeated sentences exercise the de-duplication
    expected = _naive_spearman(tiny_model, pairs)
    assert sts_spearman(tiny_model, pairs, batch_size=1) == pytest.approx(expected, abs=1e-6)
    assert -1.0 <= expected <= 1.0 and abs(expected) > 1e-3


def test_evaluate_sts_on_a_subset(tiny_model, tmp_path, data_dir):
    folder = tmp_path / "sts" / "stsbenchmark"
    folder.mkdir(parents=True)
    source = open(f"{data_dir}/sts/stsbenchmark/sts-test.csv", encoding="utf-8").readlines()[:24]
    (folder / "sts-test.csv").write_text("".join(source), encoding="utf-8")
    score = evaluate_sts(tiny_model, "test", data_dir=tmp_path, batch_size=1)
    assert score == pytest.approx(_naive_spearman(tiny_model, read_sts_file(folder / "sts-test.csv")), abs=1e-6)


def test_sts_spearman_needs_two_pairs(tiny_model):
    with pytest.raises(ValueError, match="at least 2"):
        sts_spearman(tiny_model, [("a", "b", 1.0)])


def test_evaluator_contract(tiny_model, data_dir, tmp_path, caplog):
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    pairs = load_sts_benchmark("dev", data_dir=data_dir)[:32]
    evaluator = STSEvaluator.from_pairs(pairs, name="sts-dev", batch_size=16)
    assert isinstance(evaluator, BaseEvaluator) and evaluator.greater_is_better
    with caplog.at_level(logging.INFO):
        metrics = evaluator(tiny_model, output_path=str(tmp_path), epoch=0, steps=2)
    assert "STS evaluation sts-dev at epoch 0, step 2: Spearman x100 " in caplog.text
    assert evaluator.primary_metric == "sts-dev_spearman_cosine"
    assert set(metrics) == {"sts-dev_spearman_cosine", "sts-dev_pearson_cosine"}
    assert metrics["sts-dev_spearman_cosine"] == pytest.approx(
        sts_spearman(tiny_model, pairs, batch_size=16), abs=1e-6
    )
    assert (tmp_path / "sts_evaluation_sts-dev_results.csv").read_text().startswith("epoch,steps,spearman_cosine")


def test_evaluator_matches_sentence_transformers_scale_and_keys(tiny_model, data_dir):
    """Same data, same key names, same 0-1 values as sentence-transformers' EmbeddingSimilarityEvaluator."""
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    pairs = load_sts_benchmark("dev", data_dir=data_dir)[:40]
    ours = STSEvaluator.from_pairs(pairs, name="sts-dev", batch_size=1)(tiny_model)
    theirs = EmbeddingSimilarityEvaluator(
        [a for a, _, _ in pairs], [b for _, b, _ in pairs], [s for _, _, s in pairs], batch_size=1, name="sts-dev"
    )(tiny_model)
    assert ours.keys() <= theirs.keys()
    for key in ("sts-dev_spearman_cosine", "sts-dev_pearson_cosine"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6)
    assert abs(ours["sts-dev_spearman_cosine"]) <= 1.0 and abs(ours["sts-dev_spearman_cosine"]) > 1e-3


def test_evaluator_from_sts_benchmark_and_validation(data_dir):
    evaluator = STSEvaluator.from_sts_benchmark("dev", data_dir=data_dir)
    assert evaluator.name == "sts-dev" and len(evaluator.pairs) == 1500
    with pytest.raises(ValueError, match="same length"):
        STSEvaluator(["a", "b"], ["c"], [1.0, 2.0])


def test_evaluator_selects_checkpoints_in_trainer(tiny_model, data_dir, tmp_path):
    """The Trainer runs the evaluator and logs its primary metric under eval_<name>_spearman_cosine."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.data import nli_dataset
    from st_contrast.losses import SimCSELoss

    pairs = load_sts_benchmark("dev", data_dir=data_dir)[:24]
    evaluator = STSEvaluator.from_pairs(pairs, name="sts-dev", batch_size=24)
    train = nli_dataset([(a, b, pairs[(i + 7) % len(pairs)][0]) for i, (a, b, _) in enumerate(pairs[:8])])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=2,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        metric_for_best_model="eval_sts-dev_spearman_cosine",
    )
    trainer = SentenceTransformerTrainer(
        model=tiny_model, args=args, train_dataset=train, loss=SimCSELoss(tiny_model), evaluator=evaluator
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eval_sts-dev_spearman_cosine" in entry]
    assert len(logged) == 2
