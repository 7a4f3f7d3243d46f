"""SimCLS data: ROUGE, scoring and sorting, the JSONL format, and the fairseq-generate / REALSumm builders."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from st_contrast.data import simcls  # noqa: E402
from st_contrast.evaluation.rouge import corpus_rouge, rouge_scores  # noqa: E402

from .tiny import generate_output, tiny_documents, tiny_texts  # noqa: E402


def test_rouge_stems_and_uses_newlines_for_lsum():
    same = rouge_scores("the cats sat .\nthe dog ran .", "the cat sat .\nthe dogs ran .")
    assert same["rouge1"] == pytest.approx(1.0) and same["rougeLsum"] == pytest.approx(1.0)  # stemming
    assert same["mean"] == pytest.approx((same["rouge1"] + same["rouge2"] + same["rougeLsum"]) / 3)
    # Lsum is summary-level (an LCS per reference sentence): with newlines, reordered sentences still
    # match fully; as one line each, the LCS covers only half. ROUGE-1 ignores the newlines.
    lines = rouge_scores("a b c d .\ne f g h .", "e f g h .\na b c d .")
    flat = rouge_scores("a b c d . e f g h .", "e f g h . a b c d .")
    assert lines["rouge1"] == pytest.approx(flat["rouge1"]) == pytest.approx(1.0)
    assert lines["rougeLsum"] == pytest.approx(1.0) and flat["rougeLsum"] == pytest.approx(0.5)
    assert rouge_scores(["x y", "z"], "x y\nz")["rougeLsum"] == pytest.approx(1.0)  # list of sentences
    corpus = corpus_rouge(["a b", "c d"], ["a b", "e f"])
    assert corpus["n"] == 2 and corpus["rouge1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one"):
        corpus_rouge([], [])


def test_candidates_are_scored_and_sorted_best_first():
    doc = tiny_documents(1, n_candidates=6)[0]
    scores = [c.score for c in doc.candidates]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    for c in doc.candidates:
        direct = rouge_scores(doc.reference, c.text)
        assert c.score == pytest.approx(direct["mean"]) and c.rouge2 == pytest.approx(direct["rouge2"])
    assert doc.oracle is doc.candidates[0]


def test_bad_documents_give_clear_errors():
    with pytest.raises(ValueError, match="reference is empty"):
        simcls.make_document(7, "a document .", "  ", ["a", "b"])
    with pytest.raises(ValueError, match="has 1 .*at least 2"):
        simcls.make_document(7, "a document .", "a ref .", ["only one"])
    with pytest.raises(ValueError, match="document '7' has 1 distinct"):
        simcls.make_document(7, "a document .", "a ref .", ["same", "same"])  # duplicates collapse
    doc = simcls.make_document(7, "doc .", "a ref .", ["same", "same"], ["x", "y"], deduplicate=False)
    assert len(doc.candidates) == 2
    merged = simcls.make_document(7, "doc .", "a ref .", ["same", "other", "same"], ["x", "y", "z"])
    assert {c.system for c in merged.candidates} == {"x,z", "y"}


def test_jsonl_round_trip_and_validation(tmp_path):
    docs = tiny_documents(3)
    docs[0].extra["url"] = "kept"
    path = tmp_path / "docs.jsonl"
    assert simcls.write_simcls_jsonl(docs, path) == 3
    again = simcls.read_simcls_jsonl(path)
    assert [d.to_dict() for d in again] == [d.to_dict() for d in docs]
    assert json.loads(path.read_text().splitlines()[0])["url"] == "kept"

    bad = json.loads(path.read_text().splitlines()[1])
    bad["candidates"] = bad["candidates"][::-1]
    (tmp_path / "unsorted.jsonl").write_text(path.read_text().splitlines()[0] + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"unsorted.jsonl:2: document '1': candidates are not sorted"):
        simcls.read_simcls_jsonl(tmp_path / "unsorted.jsonl")
    bad["candidates"] = bad["candidates"][:1]
    (tmp_path / "one.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="one.jsonl:1: document '1' has 1 candidate"):
        simcls.read_simcls_jsonl(tmp_path / "one.jsonl")
    (tmp_path / "missing.jsonl").write_text(json.dumps({"id": 1, "source": "s"}) + "\n")
    with pytest.raises(ValueError, match=r"missing key\(s\) \['reference', 'candidates'\]"):
        simcls.read_simcls_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no documents"):
        simcls.read_simcls_jsonl(tmp_path / "empty.jsonl")


def test_fairseq_generate_builder():
    texts = tiny_texts(3, n_candidates=4)
    output = generate_output(texts)
    parsed = simcls.parse_fairseq_generate(output.splitlines())
    assert sorted(parsed) == [0, 1, 2] and len(parsed[1].hypotheses) == 4
    assert parsed[1].target == " ".join(texts[1]["reference"].split())
    docs = simcls.documents_from_fairseq_generate(output.splitlines())
    assert [d.id for d in docs] == ["0", "1", "2"]
    # the one-line T- reference is split back into its sentences (after " ."): Lsum sees two sentences
    assert docs[0].reference == texts[0]["reference"]
    assert all(len(d.candidates) == 4 for d in docs)
    assert {c.system for c in docs[0].candidates} == {"beam0", "beam1", "beam2", "beam3"}
    # external sources/references replace S-/T- lines (line i = sample id i)
    refs = ["override reference one .", "override two .", "override three ."]
    docs = simcls.documents_from_fairseq_generate(output.splitlines(), references=refs, sources=["s"] * 3)
    assert docs[2].reference == "override three ." and docs[2].source == "s"
    # a sample with a single hypothesis is an error unless skipped
    lines = output.splitlines() + ["S-9\tsome source", "T-9\tsome ref", "H-9\t-0.5\tlonely"]
    with pytest.raises(ValueError, match="document '9' has 1 distinct candidate"):
        simcls.documents_from_fairseq_generate(lines)
    assert len(simcls.documents_from_fairseq_generate(lines, skip_invalid=True)) == 3
    with pytest.raises(ValueError, match="no S-/T-/H- lines"):
        simcls.documents_from_fairseq_generate(["| INFO | nothing here"])
    with pytest.raises(ValueError, match="no T- line"):
        simcls.documents_from_fairseq_generate(["S-0\tsrc", "H-0\t-1\ta", "H-0\t-1\tb"])


def test_sentence_splitting_and_tags():
    assert simcls.split_sentences("One. Two! Three? four") == ["One.", "Two!", "Three?", "four"]
    assert simcls.split_sentences("a <q> b", "<q>") == ["a", "b"]
    assert simcls.split_sentences("a. b", "none") == ["a. b"]
    assert simcls.strip_sentence_tags("<t> a  b . </t>  <t> c . </t>") == "a b .\nc ."
    assert simcls.strip_sentence_tags("plain text") == "plain text"


def test_realsumm_builder_on_real_data(data_dir):
    docs = simcls.realsumm_documents(limit=2)
    assert [d.id for d in docs] == ["0", "1"]
    doc = docs[0]
    assert "<t>" not in doc.reference and "\n" in doc.reference and "<t>" not in doc.source
    assert 18 <= len(doc.candidates) <= 24
    systems = {name for c in doc.candidates for name in c.system.split(",")}
    assert len(systems) == 25 and {"abs/bart_out", "ext/bart_out"} <= systems
    assert doc.candidates[0].score >= doc.candidates[-1].score
