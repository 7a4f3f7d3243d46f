"""SimCLS data (st_contrast/data/simcls.py): scoring and sorting, the JSONL format, the fairseq-generate /
REALSumm builders, and the readers on malformed input."""

from __future__ import annotations

import json
import pickle

import pytest

pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")

from st_contrast.data import simcls  # noqa: E402
from st_contrast.data.reading import DataFormatError  # noqa: E402
from st_contrast.data.simcls import read_simcls_jsonl, realsumm_documents  # noqa: E402
from st_contrast.evaluation.rouge import rouge_scores  # noqa: E402
from tests.data.malformed import VARIANTS, ReaderCase, check  # noqa: E402
from tests.simcls_utils import generate_output, tiny_documents, tiny_texts  # noqa: E402


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


def _document(doc_id: str, source: str = "a source sentence .") -> dict:
    return {
        "id": doc_id,
        "source": source,
        "reference": "the reference .",
        "candidates": [
            {"text": "the best candidate .", "score": 0.5, "rouge1": 0.6, "rouge2": 0.4, "rougeLsum": 0.5},
            {"text": "a worse one .", "score": 0.2, "rouge1": 0.3, "rouge2": 0.1, "rougeLsum": 0.2, "system": "b"},
        ],
    }


SIMCLS_FILE = ReaderCase(
    name="simcls.jsonl",
    lines=[json.dumps(_document("1")), json.dumps(_document("2", "a {HUGE} source .")), json.dumps(_document("3"))],
    read=read_simcls_jsonl,
    rows=3,
    record_line=2,
    lone_cr="error",  # JSON Lines end at \n; a lone \r is JSON whitespace, so the records run together
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_files(variant, tmp_path, caplog):
    check(SIMCLS_FILE, variant, tmp_path, caplog)


def _candidate(**values) -> dict:
    return {**_document("x")["candidates"][0], **values}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("5", r"expected a JSON object \{id, source, reference, candidates\}, got int"),
        ('["a list"]', "expected a JSON object"),
        (json.dumps({**_document("x"), "source": None}), "'source' must be text"),
        (json.dumps({**_document("x"), "reference": 3}), "'reference' must be text"),
        (json.dumps({**_document("x"), "id": True}), "'id' must be a string or an integer"),
        (
            json.dumps({**_document("x"), "candidates": [{"text": None}]}),
            "candidate 0 must be an object with a 'text'",
        ),
        (json.dumps({**_document("x"), "candidates": [_candidate(rouge1=float("nan")), _candidate()]}), "ROUGE F1"),
        (json.dumps({**_document("x"), "candidates": [_candidate(rouge2=1.5), _candidate()]}), r"in \[0, 1\]"),
        (json.dumps({**_document("x"), "candidates": [_candidate(score=float("inf")), _candidate()]}), "finite"),
        (json.dumps({**_document("x"), "candidates": [_candidate(rouge1="0.5"), _candidate()]}), "needs numeric"),
        (json.dumps({**_document("x"), "candidates": [_candidate(system=7), _candidate()]}), "'system' must be"),
        ('{"id": "1", "id": "2"}', "the key 'id' appears twice"),
        (json.dumps(_document("x"))[:40], r"invalid JSON \(Unterminated string"),
    ],
)
def test_malformed_documents_are_refused_at_their_line(tmp_path, line, message):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps(_document("1")) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        read_simcls_jsonl(path)
    assert str(info.value).startswith(f"{path}:2:")


def _realsumm(root, entry: dict, sources: bytes) -> None:
    folder = root / "summarization" / "realsumm_cnndm"
    (folder / "selected_docs_for_human_eval" / "abs" / "ptr_generator").mkdir(parents=True)
    with open(folder / "abs.pkl", "wb") as handle:
        pickle.dump({0: entry}, handle)
    (folder / "selected_docs_for_human_eval" / "abs" / "ptr_generator" / "src.txt").write_bytes(sources)


def test_realsumm_sources_through_the_reading_layer(tmp_path):
    pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")
    entry = {
        "doc_id": 0,
        "ref_summ": "<t> the cat sat . </t>",
        "system_summaries": {
            "a.txt": {"system_summary": "<t> the cat sat . </t>"},
            "b.txt": {"system_summary": "<t> a dog ran . </t>"},
        },
    }
    _realsumm(tmp_path, entry, b"\xef\xbb\xbf<t> the cat sat on the mat . </t>\r\n<t> another document . </t>")
    (doc,) = realsumm_documents(data_dir=tmp_path, kinds=("abs",))
    assert doc.source == "the cat sat on the mat ." and [c.system for c in doc.candidates] == ["abs/a", "abs/b"]
    bad = tmp_path / "bad"
    _realsumm(bad, {"doc_id": 0, "system_summaries": {}}, b"<t> x . </t>\n")
    with pytest.raises(DataFormatError, match=r"abs.pkl: 0: malformed REALSumm entry \(KeyError\('ref_summ'\)\)"):
        realsumm_documents(data_dir=bad, kinds=("abs",))
    undecodable = tmp_path / "undecodable"
    _realsumm(undecodable, entry, b"<t> caf\xe9 . </t>\n")
    with pytest.raises(DataFormatError, match=r"src.txt:1:8: byte\(s\) e9"):
        realsumm_documents(data_dir=undecodable, kinds=("abs",))


@pytest.mark.slow
def test_real_realsumm_documents_all_read(data_dir):
    """All 100 REALSumm documents and their 2,274 distinct candidates (the count before the reading layer)."""
    pytest.importorskip("rouge_score", reason="rouge-score is not installed (pip install rouge-score)")
    docs = realsumm_documents(data_dir=data_dir)
    assert len(docs) == 100 and sum(len(doc.candidates) for doc in docs) == 2274
