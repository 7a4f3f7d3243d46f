"""``st-contrast evaluate sts | sts-suite | ood | re`` (st_contrast/cli/evaluate.py)."""

from __future__ import annotations

import json

import pytest

from st_contrast.cli import main


@pytest.fixture
def model_dir(tiny_model_mean, tmp_path):
    folder = tmp_path / "model"
    tiny_model_mean.save(str(folder))
    return folder


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_evaluate_sts_json_is_0_1_and_the_table_x100(model_dir, data_dir, capsys, tiny_model_mean):
    from st_contrast.evaluation import evaluate_sts

    assert main(["evaluate", "sts", "--model", str(model_dir), "--split", "dev", "--json", "-q"]) == 0
    scores = _json(capsys)
    assert set(scores) == {"dev"} and scores["dev"] == pytest.approx(evaluate_sts(tiny_model_mean, "dev"), abs=1e-6)
    assert main(["evaluate", "sts", "--model", str(model_dir), "--split", "dev"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"STS-B dev Spearman x100: {100 * scores['dev']:.2f}"
    assert "STS evaluation" not in captured.out and "STS-B dev: encoding sentence pairs" in captured.err


def test_evaluate_unknown_split(tmp_path, capsys):
    assert main(["evaluate", "sts", "--model", str(tmp_path), "--split", "valid"]) == 2
    err = capsys.readouterr().err
    assert "st-contrast evaluate: error: unknown split(s) ['valid']; choose from train, dev, test" in err
    assert "Traceback" not in err


def test_evaluate_misspelt_model_is_one_line(tmp_path, capsys):
    assert main(["evaluate", "sts", "--model", str(tmp_path / "no-such-model"), "--split", "dev"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is neither a folder nor a known alias" in err[0]


# -- sts-suite ------------------------------------------------------------------------------------


@pytest.fixture
def senteval_root(tmp_path, monkeypatch, sentences):
    """The suite's layout with sentences the tiny model knows (scores arbitrary but fixed)."""
    from st_contrast.data.senteval import SICK_TEST_FILE, STS_YEARS, STSB_TEST_FILE

    monkeypatch.delenv("ST_CONTRAST_SENTEVAL", raising=False)
    monkeypatch.delenv("ST_CONTRAST_DOWNLOAD", raising=False)
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "downstream"
    pairs = [(sentences[i], sentences[(i * 3 + 1) % 8], (i * 7 % 11) / 2.2) for i in range(8)]
    for folder, subsets in STS_YEARS.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for number, subset in enumerate(subsets):
            rows = pairs[number % 3 :]
            (root / folder / f"STS.input.{subset}.txt").write_text("".join(f"{a}\t{b}\n" for a, b, _ in rows))
            golds = [f"{g:.2f}" for _, _, g in rows]
            golds[0] = "" if number == 0 else golds[0]  # one unscored pair per year
            (root / folder / f"STS.gs.{subset}.txt").write_text("\n".join(golds) + "\n")
    (root / STSB_TEST_FILE).parent.mkdir(parents=True)
    (root / STSB_TEST_FILE).write_text(
        "".join(f"g\tf\t2012\t{i}\t{g:.2f}\t{a}\t{b}\n" for i, (a, b, g) in enumerate(pairs))
    )
    (root / SICK_TEST_FILE).parent.mkdir(parents=True)
    header = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
    rows = "".join(f"{i}\t{a}\t{b}\t{1 + g * 0.8:.2f}\tNEUTRAL\n" for i, (a, b, g) in enumerate(pairs))
    (root / SICK_TEST_FILE).write_text(header + rows)
    return root


def test_sts_suite_table_and_json(model_dir, senteval_root, capsys, tiny_model_mean, monkeypatch):
    from st_contrast.evaluation import evaluate_sts_suite

    expected = evaluate_sts_suite(tiny_model_mean, senteval_dir=senteval_root)
    assert main(["evaluate", "sts-suite", "--model", str(model_dir), "--senteval-dir", str(senteval_root)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[1].split() == ["STS12", "STS13", "STS14", "STS15", "STS16", "STS-B", "SICK-R", "Avg."]
    assert lines[2].split()[0] == "all" and float(lines[2].split()[-1]) == pytest.approx(
        100 * expected.average("all"), abs=0.006
    )
    assert lines[-1] == "(5 unscored pairs, empty gold lines, skipped)"
    assert "STS suite: 7 task(s)" in captured.err
    monkeypatch.setenv("ST_CONTRAST_SENTEVAL", str(senteval_root))  # the folder by default
    assert main(["evaluate", "sts-suite", "--model", str(model_dir), "--tasks", "sts12,SICK-R", "--json", "-q"]) == 0
    dumped = _json(capsys)
    assert list(dumped["tasks"]) == ["sts12", "sickr"]
    assert dumped["tasks"]["sts12"]["all"] == pytest.approx(expected.tasks["sts12"].all, abs=1e-6)
    assert dumped["tasks"]["sts12"]["unscored_skipped"] == 1


def test_sts_suite_missing_tasks_are_one_line_naming_the_files(model_dir, senteval_root, capsys):
    (senteval_root / "STS" / "STS15-en-test" / "STS.input.belief.txt").unlink()
    assert main(["evaluate", "sts-suite", "--model", str(model_dir), "--senteval-dir", str(senteval_root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("st-contrast evaluate: error: STS suite data not found.")
    assert f"STS15: expected {senteval_root / 'STS/STS15-en-test/STS.input.belief.txt'}" in err[0]
    assert main(["evaluate", "sts-suite", "--model", str(model_dir), "--tasks", "sts17"]) == 2
    assert "unknown STS task 'sts17'" in capsys.readouterr().err


def test_sts_suite_download_flag(model_dir, senteval_root, capsys, monkeypatch, tmp_path):
    import shutil

    from st_contrast.data import senteval

    calls = []

    def fake_download(**kwargs):  # the real download is tested against a local HTTP server
        calls.append(kwargs)
        target = tmp_path / "cache" / senteval.CACHE_SUBDIR
        shutil.copytree(senteval_root, target)
        return target

    monkeypatch.setattr(senteval, "download_senteval", fake_download)
    moved = tmp_path / "elsewhere"
    senteval_root.rename(moved)
    senteval_root = moved
    assert main(["evaluate", "sts-suite", "--model", str(model_dir), "--tasks", "sts-b", "--json", "-q"]) == 2
    assert "--download" in capsys.readouterr().err and calls == []
    assert main(["evaluate", "sts-suite", "--model", str(model_dir), "--tasks", "sts-b", "--download", "-q"]) == 0
    assert len(calls) == 1 and "STS-B" in capsys.readouterr().out


# -- ood ------------------------------------------------------------------------------------------


def _intent_files(tmp_path, sentences, fmt="csv"):
    intents = ["alarm", "music", "weather"]
    rows = {split: [] for split in ("train", "val", "test")}
    for i in range(36):
        text = f"{sentences[i % 8]} {sentences[(i * 5) % 8]}"
        split = "train" if i < 24 else "val" if i < 30 else "test"
        rows[split].append((text, intents[i % 3]))
    rows["val"].append(("purple monkey dishwasher", "oos"))
    rows["test"] += [("zz qq xx", "oos"), ("purple monkey dishwasher", "oos"), ("train", "oos")]
    rows["train"].append(("an out of scope query", "oos"))  # unused: detectors fit on in-domain data
    paths = []
    for split, items in rows.items():
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "csv":
            path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in items))
        else:
            path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in items))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_ood_on_text_label_files_with_a_fitted_probe(model_dir, tmp_path, sentences, capsys, fmt):
    train, val, test = _intent_files(tmp_path, sentences, fmt)
    argv = ["evaluate", "ood", "--model", str(model_dir), "--train-file", train, "--val-file", val]
    argv += ["--test-file", test, "--lof-neighbors", "5", "--fit-on-train"]
    assert main([*argv, "--json", "-q"]) == 0
    dumped = _json(capsys)
    assert dumped["num_intents"] == 3 and dumped["test_in_domain"] == 6 and dumped["test_ood"] == 3
    assert set(dumped["detectors"]) == {"lof", "gda", "msp"} and dumped["classifier"] == "fit"
    assert all(0 <= dumped["detectors"][d][k] <= 1 for d in ("lof", "gda", "msp") for k in ("auroc", "fpr95"))
    assert main(argv) == 0
    captured = capsys.readouterr()
    table = captured.out.strip().splitlines()
    assert table[1].split()[:3] == ["detector", "AUROC", "FPR@95"] and [r.split()[0] for r in table[2:]] == [
        "LOF",
        "GDA",
        "MSP",
    ]
    assert float(table[2].split()[1]) == pytest.approx(100 * dumped["detectors"]["lof"]["auroc"], abs=0.006)
    assert "OOD evaluation, GDA: AUROC" in captured.err
    # without a head or --fit-on-train, MSP is left out with a warning
    assert main([*argv[:-1], "--json", "-q"]) == 0
    assert set(_json(capsys)["detectors"]) == {"lof", "gda"}


def test_ood_uses_a_saved_classifier_head_in_the_data_order(tiny_model_mean, tmp_path, sentences, capsys):
    from st_contrast.evaluation import evaluate_ood
    from st_contrast.evaluation.ood import load_intent_files
    from st_contrast.modules import ensure_classifier_head

    ensure_classifier_head(tiny_model_mean, 3, labels=["weather", "alarm", "music"])  # not sorted
    tiny_model_mean.save(str(tmp_path / "with-head"))
    train, val, test = _intent_files(tmp_path, sentences)
    argv = ["evaluate", "ood", "--model", str(tmp_path / "with-head"), "--train-file", train, "--val-file", val]
    assert main([*argv, "--test-file", test, "--lof-neighbors", "5", "--detectors", "msp", "--json", "-q"]) == 0
    got = _json(capsys)["detectors"]["msp"]
    data = load_intent_files(train, val, test)
    tiny_model_mean.eval()
    expected = evaluate_ood(
        tiny_model_mean,
        data.train,
        data.val,
        data.test,
        data.oos_test,
        detectors=["msp"],
        label_names=data.label_names,
    )["msp"]
    assert got["in_domain_accuracy"] == pytest.approx(expected["in_domain_accuracy"])
    assert got["auroc"] == pytest.approx(expected["auroc"], abs=1e-6)
    ensure_classifier_head(tiny_model_mean, None).labels = ["weather", "alarm", "news"]
    with pytest.raises(ValueError, match=r"does not know the intent\(s\) \['music'\]"):
        evaluate_ood(tiny_model_mean, data.train, data.val, data.test, data.oos_test, label_names=data.label_names)


def test_ood_on_clinc150_json(model_dir, tmp_path, capsys):
    intents = ["alarm", "music", "weather"]
    words = "a man is playing a guitar the cat sat on the mat".split()
    item = lambda i, intent: [" ".join(words[(i + j) % len(words)] for j in range(4)), intent]  # noqa: E731
    data = {
        "train": [item(i, intents[i % 3]) for i in range(30)],
        "val": [item(i + 1, intents[i % 3]) for i in range(9)],
        "test": [item(i + 2, intents[i % 3]) for i in range(9)],
        "oos_train": [item(i, "oos") for i in range(2)],
        "oos_val": [item(i + 5, "oos") for i in range(3)],
        "oos_test": [item(i + 7, "oos") for i in range(4)],
    }
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(data))
    argv = ["evaluate", "ood", "--model", str(model_dir), "--clinc-file", str(path), "--lof-neighbors", "5"]
    assert main([*argv, "--threshold", "ood_tuned", "--json", "-q"]) == 0
    dumped = _json(capsys)
    assert dumped["data"] == "CLINC150" and dumped["test_ood"] == 4 and dumped["threshold_rule"] == "ood_tuned"
    data["test"][0] = ["text", "unknown_intent"]
    path.write_text(json.dumps(data))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test[0]: the intent 'unknown_intent' does not occur in train" in err[0]


def test_ood_errors_are_one_line(model_dir, tmp_path, sentences, capsys):
    train, val, test = _intent_files(tmp_path, sentences)
    base = ["evaluate", "ood", "--model", str(model_dir)]
    assert main([*base, "--train-file", train]) == 2
    assert "give --train-file, --val-file and --test-file together" in capsys.readouterr().err
    assert main([*base, "--train-file", train, "--val-file", val, "--test-file", test, "--detectors", "knn"]) == 2
    assert "unknown detector(s) ['knn']" in capsys.readouterr().err
    (tmp_path / "test.csv").write_text("text,label\nhello there,alarm\nbad row\n")
    assert main([*base, "--train-file", train, "--val-file", val, "--test-file", test]) == 2
    err = capsys.readouterr().err
    assert "test.csv:3: the row has fewer fields than the header" in err and "Traceback" not in err


# -- re -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relation_encoder_dir(tiny_transformer_dir, tmp_path_factory):
    from st_contrast.modules.entity_pooling import build_relation_encoder

    folder = tmp_path_factory.mktemp("relation-encoder") / "encoder"
    build_relation_encoder(str(tiny_transformer_dir), max_seq_length=32, device="cpu").save(str(folder))
    return folder


def test_re_on_nyt_with_a_fitted_classifier(relation_encoder_dir, data_dir, capsys):
    argv = ["evaluate", "re", "--model", str(relation_encoder_dir), "--data", "nyt", "--fit-on-train"]
    argv += ["--max-train-bags", "60", "--max-test-bags", "30", "--fit-epochs", "20", "--top-n", "10,20"]
    assert main([*argv, "--json", "-q"]) == 0
    dumped = _json(capsys)
    assert dumped["train_bags"] == 60 and dumped["test_bags"] == 30 and dumped["data"] == "FewRel NYT"
    metrics = dumped["metrics"]
    assert {"pr_auc", "p@10", "p@20", "micro_f1"} <= set(metrics) and 0 <= metrics["pr_auc"] <= 1
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[:4] == ["PR-AUC", "P@10", "P@20", "micro-F1"]
    assert float(lines[2].split()[0]) == pytest.approx(100 * metrics["pr_auc"], abs=0.006)


def test_re_with_a_saved_classifier_and_its_relations(relation_encoder_dir, data_dir, tmp_path, capsys):
    from st_contrast.data.relation import group_bags, read_semeval2010, relation_ids, split_bags
    from st_contrast.evaluation.relation import (
        bag_classifier_class,
        evaluate_relation_extraction,
        fit_bag_classifier,
    )
    from st_contrast.modules.entity_pooling import load_relation_encoder

    model = load_relation_encoder(relation_encoder_dir)
    train = read_semeval2010("train")[:80]
    rel2id = relation_ids(read_semeval2010("train") + read_semeval2010("test"), na="Other")
    classifier = fit_bag_classifier(model, group_bags(train), rel2id, epochs=5)
    classifier.save(str(tmp_path / "run" / "bag_classifier"))
    (tmp_path / "run" / "relations.json").write_text(json.dumps(rel2id))
    argv = ["evaluate", "re", "--model", str(relation_encoder_dir), "--data", "semeval", "--max-test-bags", "25"]
    argv += ["--classifier", str(tmp_path / "run" / "bag_classifier"), "--json", "-q"]
    assert main(argv) == 0
    dumped = _json(capsys)
    import random

    test_bags = random.Random(1).sample(group_bags(read_semeval2010("test")), 25)
    expected = evaluate_relation_extraction(model, classifier, test_bags, rel2id, na="Other")
    assert dumped["metrics"]["micro_f1"] == pytest.approx(expected["micro_f1"])
    assert dumped["metrics"]["pr_auc"] == pytest.approx(expected["pr_auc"], abs=1e-6)
    assert bag_classifier_class() is type(classifier) and split_bags  # imported public names


def test_re_needs_a_classifier_or_fit_on_train(relation_encoder_dir, capsys):
    assert main(["evaluate", "re", "--model", str(relation_encoder_dir), "--data", "nyt"]) == 2
    err = capsys.readouterr().err
    assert "give either --classifier DIR (a saved bag classifier) or --fit-on-train" in err
    argv = ["evaluate", "re", "--model", str(relation_encoder_dir), "--data", "nyt", "--fit-on-train"]
    assert main([*argv, "--max-words", "many"]) == 2
    assert "--max-words must be auto, none or a positive integer, got 'many'" in capsys.readouterr().err
