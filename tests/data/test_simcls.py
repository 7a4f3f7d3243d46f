"""SimCLS JSON Lines and REALSumm readers on malformed input (the format's round trip is in tests/simcls)."""

from __future__ import annotations

import json
import pickle

import pytest

from st_contrast.data.reading import DataFormatError
from st_contrast.data.simcls import read_simcls_jsonl, realsumm_documents
from tests.data.malformed import VARIANTS, ReaderCase, check


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
