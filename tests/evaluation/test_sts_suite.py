"""The STS suite (STS12-16, STS-B, SICK-R) on synthetic files in SentEval's layout, against scipy's Spearman."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.stats import spearmanr

from st_contrast.data.reading import DataFormatError
from st_contrast.data.senteval import (
    STS_SUITE_TASKS,
    load_sts_suite,
    read_senteval_lines,
    read_sts_subset,
    task_keys,
)
from st_contrast.evaluation import STSSuiteEvaluator, evaluate_sts_suite
from tests.evaluation.senteval_utils import CP1252_BYTES, CP1252_TEXT, TableModel, write_senteval


@pytest.fixture
def senteval(tmp_path, monkeypatch):
    monkeypatch.delenv("ST_CONTRAST_SENTEVAL", raising=False)
    monkeypatch.delenv("ST_CONTRAST_DOWNLOAD", raising=False)
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "SentEval" / "data" / "downstream"
    table, truth = write_senteval(root)
    return root, table, truth


def _rho(pairs):
    return spearmanr([g for g, _ in pairs], [c for _, c in pairs]).statistic


def test_scores_match_scipy_on_the_chosen_cosines(senteval):
    root, table, truth = senteval
    model = TableModel(table)
    result = evaluate_sts_suite(model, senteval_dir=root)
    assert list(result.tasks) == list(STS_SUITE_TASKS)
    # one pass, each sentence once (the unscored pair's two sentences are not encoded)
    assert len(model.calls) == 1 and model.calls[0] == len(table) - 2
    averages = {"all": [], "wmean": [], "mean": []}
    for task, subsets in truth.items():
        got = result.tasks[task]
        expected_subsets = {s: _rho(pairs) for s, pairs in subsets.items()}
        sizes = {s: len(pairs) for s, pairs in subsets.items()}
        expected = {
            "all": _rho([pair for pairs in subsets.values() for pair in pairs]),
            "wmean": sum(expected_subsets[s] * sizes[s] for s in sizes) / sum(sizes.values()),
            "mean": float(np.mean(list(expected_subsets.values()))),
        }
        assert got.sizes == sizes
        assert got.subsets == pytest.approx(expected_subsets, abs=1e-6)
        for aggregation, value in expected.items():
            assert got.score(aggregation) == pytest.approx(value, abs=1e-6)
            averages[aggregation].append(value)
    for aggregation, values in averages.items():
        assert result.average(aggregation) == pytest.approx(np.mean(values), abs=1e-6)
    # the three aggregations really differ on the years, so a mix-up would show
    assert abs(result.tasks["sts12"].all - result.tasks["sts12"].mean) > 1e-3
    assert abs(result.tasks["sts12"].wmean - result.tasks["sts12"].mean) > 1e-4
    assert result.metrics()["avg_spearman_cosine"] == pytest.approx(np.mean(averages["all"]), abs=1e-6)
    assert set(result.metrics()) == {f"{t}_spearman_cosine" for t in STS_SUITE_TASKS} | {"avg_spearman_cosine"}


def test_a_hand_computed_task(tmp_path):
    """Two subsets: cosines in gold order (rho 1) and reversed (rho -1): mean 0, wmean -1/7."""
    folder = tmp_path / "STS" / "STS13-en-test"
    folder.mkdir(parents=True)
    table = {}
    subsets = {"FNWN": ([1, 2, 3], [0.1, 0.2, 0.3]), "headlines": ([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6])}
    subsets["OnWN"] = ([1, 2, 3], [0.1, 0.2, 0.3])
    for subset, (golds, cosines) in subsets.items():
        lines = []
        for i, c in enumerate(cosines):
            table[f"{subset} a {i}"], table[f"{subset} b {i}"] = (1.0, 0.0), (c, (1 - c * c) ** 0.5)
            lines.append(f"{subset} a {i}\t{subset} b {i}")
        (folder / f"STS.input.{subset}.txt").write_text("\n".join(lines) + "\n")
        (folder / f"STS.gs.{subset}.txt").write_text("\n".join(map(str, golds)) + "\n")
    result = evaluate_sts_suite(TableModel(table), tasks="STS13", senteval_dir=tmp_path).tasks["sts13"]
    assert result.subsets == pytest.approx({"FNWN": 1.0, "headlines": -1.0, "OnWN": 1.0})
    assert result.mean == pytest.approx(1 / 3)
    assert result.wmean == pytest.approx((3 - 4 + 3) / 10)
    concatenated = spearmanr([1, 2, 3, 1, 2, 3, 4, 1, 2, 3], [0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3])
    assert result.all == pytest.approx(concatenated.statistic)


def test_unscored_pairs_are_skipped_and_counted(senteval, caplog):
    root, _, truth = senteval
    with caplog.at_level(logging.INFO, logger="st_contrast.data.senteval"):
        data = load_sts_suite(["sts12"], senteval_dir=root)
    assert data["sts12"].unscored == {"MSRpar": 1, "MSRvid": 0, "SMTeuroparl": 0, "surprise.OnWN": 0,
                                      "surprise.SMTnews": 0}  # fmt: skip
    assert len(data["sts12"].subsets["MSRpar"]) == len(truth["sts12"]["MSRpar"]) == 5
    assert "STS12: skipped 1 unscored pair(s) (empty gold lines)" in caplog.text
    # the pairs after the unscored one keep their own gold scores (no shift)
    assert [g for _, _, g in data["sts12"].subsets["MSRpar"]] == [g for g, _ in truth["sts12"]["MSRpar"]]


def test_cp1252_lines_are_decoded_and_logged(senteval, caplog):
    root, _, _ = senteval
    path = root / "STS" / "STS16-en-test" / "STS.input.headlines.txt"
    with caplog.at_level(logging.WARNING):
        data = load_sts_suite(["sts16"], senteval_dir=root)
    assert data["sts16"].subsets["headlines"][0][0] == CP1252_TEXT
    assert f"{path}: 1 line(s) are not valid UTF-8 (first: line 1); decoded them as cp1252" in caplog.text
    with pytest.raises(DataFormatError, match=rf"{path}:1:4: byte\(s\) e9 20 93 71 at byte offset 3 cannot be"):
        read_senteval_lines(path, fallback_encoding=None)


def test_decoding_rules(tmp_path):
    path = tmp_path / "f.txt"
    # a BOM dropped, CRLF and LF, a valid UTF-8 line kept as UTF-8 next to a cp1252 one, cp1252's undefined 0x81
    path.write_bytes(b"\xef\xbb\xbfna\xc3\xafve\r\n" + CP1252_BYTES + b"\n\x81x\n\n")
    assert read_senteval_lines(path) == ["na\u00efve", CP1252_TEXT, "\x81x", ""]
    path.write_bytes(b"a\x00b\n")
    with pytest.raises(DataFormatError, match=r"f.txt:1:2: a NUL byte"):
        read_senteval_lines(path)


@pytest.mark.parametrize(
    ("inputs", "golds", "message"),
    [
        ("a\tb\nc\td\n", "1\n", r"STS.gs.x.txt: 1 lines, but .*STS.input.x.txt has 2; expected one gold line"),
        ("a\tb\nc\td\te\n", "1\n2\n", r"STS.input.x.txt:2: expected two tab-separated sentences, got 3"),
        ("a\tb\n \td\n", "1\n2\n", r"STS.input.x.txt:2: a sentence is empty"),
        ("a\tb\nc\td\n", "1\n5.5\n", r"STS.gs.x.txt:2: the gold score holds '5.5', outside the scale"),
        ("a\tb\nc\td\n", "1\nnan\n", r"STS.gs.x.txt:2: the gold score holds 'nan'; expected a finite number"),
        ("a\tb\nc\td\n", "\n\n", r"STS.gs.x.txt: no scored pair \(2 empty gold lines\)"),
    ],
)
def test_malformed_subsets(tmp_path, inputs, golds, message):
    (tmp_path / "STS.input.x.txt").write_text(inputs)
    (tmp_path / "STS.gs.x.txt").write_text(golds)
    with pytest.raises(DataFormatError, match=message):
        read_sts_subset(tmp_path / "STS.input.x.txt", tmp_path / "STS.gs.x.txt")


def test_unscored_pair_may_have_any_input(tmp_path):
    (tmp_path / "i.txt").write_text("a\tb\nnot a pair\nc\td\n")
    (tmp_path / "g.txt").write_text("1\n\n2\n")
    assert read_sts_subset(tmp_path / "i.txt", tmp_path / "g.txt") == ([("a", "b", 1.0), ("c", "d", 2.0)], 1)


def test_sick_header_is_checked(senteval):
    root, _, _ = senteval
    path = root / "SICK" / "SICK_test_annotated.txt"
    path.write_text("pair_ID\tsentence_A\tsentence_B\tscore\n1\ta\tb\t3\n")
    message = r"SICK_test_annotated.txt:1: the header .* lacks \['relatedness_score'\]"
    with pytest.raises(DataFormatError, match=message):
        load_sts_suite(["sick-r"], senteval_dir=root)


def test_missing_tasks_name_the_expected_files(senteval, monkeypatch):
    root, _, _ = senteval
    (root / "STS" / "STS14-en-test" / "STS.gs.images.txt").unlink()
    (root / "SICK" / "SICK_test_annotated.txt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_sts_suite(senteval_dir=root)
    message = str(info.value)
    assert f"STS14: expected {root / 'STS/STS14-en-test/STS.gs.images.txt'}" in message
    assert f"SICK-R: expected {root / 'SICK/SICK_test_annotated.txt'}" in message
    assert "STS12" not in message.split("Searched")[0]
    assert "--download" in message and "ST_CONTRAST_SENTEVAL" in message and "--tasks" in message
    assert set(load_sts_suite(["sts12", "stsb"], senteval_dir=root)) == {"sts12", "stsb"}  # the others still work


def test_folder_from_the_environment_and_checkout_root(senteval, monkeypatch):
    root, table, _ = senteval
    monkeypatch.setenv("ST_CONTRAST_SENTEVAL", str(root.parent.parent))  # the SentEval checkout
    assert set(load_sts_suite(["stsb"])) == {"stsb"}
    assert evaluate_sts_suite(TableModel(table), tasks=["STS-B"]).tasks["stsb"].pairs == 9


def test_task_names():
    assert task_keys("STS12, sts-b,SICK-R") == ["sts12", "stsb", "sickr"]
    assert task_keys(["STSBenchmark", "SICKRelatedness", "sts16"]) == ["sts16", "stsb", "sickr"]
    with pytest.raises(ValueError, match="unknown STS task 'sts17'; choose from STS12, "):
        task_keys("sts17")


def test_table_prints_x100(senteval):
    root, table, _ = senteval
    result = evaluate_sts_suite(TableModel(table), senteval_dir=root)
    lines = result.table().splitlines()
    assert lines[0].split() == ["STS12", "STS13", "STS14", "STS15", "STS16", "STS-B", "SICK-R", "Avg."]
    assert [line.split()[0] for line in lines[1:]] == ["all", "wmean", "mean"]
    assert float(lines[1].split()[-1]) == pytest.approx(100 * result.average("all"), abs=0.006)
    dumped = result.to_dict()
    assert dumped["tasks"]["sts12"]["unscored_skipped"] == 1
    assert dumped["avg"]["wmean"] == pytest.approx(result.average("wmean"))


def test_evaluator_keys_scale_and_log_line(senteval, capsys):
    root, table, _ = senteval
    evaluator = STSSuiteEvaluator.from_senteval(senteval_dir=root, aggregation="wmean", show_progress_bar=True)
    metrics = evaluator(TableModel(table), epoch=1, steps=5)
    result = evaluate_sts_suite(TableModel(table), senteval_dir=root)
    assert evaluator.primary_metric == "sts-suite_avg_spearman_cosine"
    assert metrics["sts-suite_avg_spearman_cosine"] == pytest.approx(result.average("wmean"))
    assert metrics["sts-suite_sts12_spearman_cosine"] == pytest.approx(result.tasks["sts12"].wmean)
    assert all(-1 <= value <= 1 for value in metrics.values())
    err = capsys.readouterr().err
    assert "STS suite sts-suite at epoch 1, step 5 (Spearman x100, wmean): STS12 " in err
    with pytest.raises(ValueError, match="aggregation must be one of all, wmean, mean"):
        STSSuiteEvaluator(load_sts_suite(["stsb"], senteval_dir=root), aggregation="median")


def test_evaluator_selects_checkpoints_in_trainer(tiny_model, tmp_path, sentences):
    """The Trainer logs eval_sts-suite_avg_spearman_cosine at each evaluation; it can pick the best checkpoint."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_contrast.data import sentence_dataset
    from st_contrast.losses import SimCSELoss

    folder = tmp_path / "downstream" / "STS" / "STSBenchmark"
    folder.mkdir(parents=True)
    rows = [f"g\tf\t2012\t{i}\t{i % 5 + 0.5}\t{sentences[i]}\t{sentences[(i + 3) % 8]}" for i in range(8)]
    (folder / "sts-test.csv").write_text("\n".join(rows) + "\n")
    evaluator = STSSuiteEvaluator.from_senteval(tasks="sts-b", senteval_dir=tmp_path / "downstream", batch_size=8)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=2,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_sts-suite_avg_spearman_cosine",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=tiny_model,
        args=args,
        train_dataset=sentence_dataset(sentences),
        loss=SimCSELoss(tiny_model),
        evaluator=evaluator,
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eval_sts-suite_avg_spearman_cosine" in entry]
    assert len(logged) == 2 and all(-1 <= e["eval_sts-suite_avg_spearman_cosine"] <= 1 for e in logged)
    assert trainer.state.best_model_checkpoint is not None
