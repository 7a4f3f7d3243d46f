"""SimCLS re-ranking data: documents with scored, sorted summary candidates, as JSON Lines.

Liu & Liu (2021), "SimCLS: A Simple Framework for Contrastive Learning of Abstractive Summarization",
ACL 2021, https://arxiv.org/abs/2106.01890. Stage one (any summariser) proposes candidates; each is
scored by ``mean(ROUGE-1, ROUGE-2, ROUGE-Lsum)`` F1 against the reference (``rouge-score`` with
stemming, sentences split on newlines for Lsum) and the list is sorted best first, which is the order
the ranking loss expects.

Format (one JSON object per line; UTF-8)::

    {"id": "52",
     "source": "first sentence of the document\\nsecond ...",
     "reference": "reference sentence 1\\nreference sentence 2",
     "candidates": [
        {"text": "best candidate, sentence 1\\nsentence 2", "score": 0.41,
         "rouge1": 0.52, "rouge2": 0.27, "rougeLsum": 0.44, "system": "bart_out"},
        ...]}

* ``source``, ``reference`` and every candidate ``text`` hold sentences separated by ``\\n`` (ROUGE-Lsum
  needs them; the scorer joins them with spaces). A single-sentence summary has no newline.
* ``candidates`` has at least two entries, sorted by ``score`` (descending; ties keep their input order).
  ``score`` is ``mean(rouge1, rouge2, rougeLsum)``, each an F1 in ``[0, 1]``. ``system`` (which
  summariser or beam produced it) is optional.
* ``reference`` is non-empty. Any other keys are kept when read and written.

Builders: :func:`documents_from_fairseq_generate` (the ``H-``/``S-``/``T-`` lines that ``fairseq-generate``
prints, e.g. with ``--beam 16 --nbest 16 --diverse-beam-groups 16 --diverse-beam-strength 1.0`` as in
the paper) and :func:`realsumm_documents` (REALSumm, Bhandari et al. 2020: 100 CNN/DM test documents with
25 real system summaries each). ``st-contrast simcls-build-data`` runs both from the command line.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from st_contrast.data.paths import find_data_file
from st_contrast.data.reading import DataFormatError, iter_jsonl, read_lines
from st_contrast.evaluation.rouge import ROUGE_TYPES, rouge_scores

REALSUMM_DIR = "summarization/realsumm_cnndm"
REALSUMM_SOURCES = "selected_docs_for_human_eval/abs/ptr_generator/src.txt"
MIN_CANDIDATES = 2


@dataclass
class Candidate:
    """One summary candidate with its ROUGE F1 against the reference (``score`` = their mean)."""

    text: str
    score: float
    rouge1: float
    rouge2: float
    rougeLsum: float  # noqa: N815 (the name rouge-score and the papers use)
    system: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "score": self.score,
            "rouge1": self.rouge1,
            "rouge2": self.rouge2,
            "rougeLsum": self.rougeLsum,
        }
        if self.system is not None:
            out["system"] = self.system
        return out


@dataclass
class SimCLSDocument:
    """A document, its reference and its candidates sorted best first (see the module docstring)."""

    id: str
    source: str
    reference: str
    candidates: list[Candidate]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "id": self.id,
            "source": self.source,
            "reference": self.reference,
            "candidates": [c.to_dict() for c in self.candidates],
        }

    @property
    def oracle(self) -> Candidate:
        """The best candidate by ROUGE (the first)."""
        return self.candidates[0]


def check_document(doc: SimCLSDocument, min_candidates: int = MIN_CANDIDATES) -> None:
    """Raise ``ValueError`` with the document id if ``doc`` breaks the format's rules."""
    if not doc.reference or not doc.reference.strip():
        raise ValueError(f"document {doc.id!r}: the reference is empty; SimCLS needs a reference to rank against")
    if not doc.source or not doc.source.strip():
        raise ValueError(f"document {doc.id!r}: the source text is empty")
    if len(doc.candidates) < min_candidates:
        raise ValueError(
            f"document {doc.id!r} has {len(doc.candidates)} candidate(s); ranking needs at least {min_candidates}"
        )
    for k, candidate in enumerate(doc.candidates):
        if not candidate.text.strip():
            raise ValueError(f"document {doc.id!r}: candidate {k} is empty")
    scores = [c.score for c in doc.candidates]
    if any(a < b for a, b in zip(scores, scores[1:])):
        raise ValueError(
            f"document {doc.id!r}: candidates are not sorted by score (best first): {scores[:6]}...; "
            "build the file with score_candidates() or `st-contrast simcls-build-data`"
        )


def split_sentences(text: str, mode: str = "punct") -> list[str]:
    """Sentences of a one-line summary, for ROUGE-Lsum.

    ``mode``: ``"punct"`` splits after ``.``, ``!`` or ``?`` followed by whitespace; ``"none"`` keeps one
    sentence; any other string is a literal separator (e.g. ``"<q>"`` as in PreSumm's output).
    """
    text = text.strip()
    if mode == "none":
        parts = [text]
    elif mode == "punct":
        parts = re.split(r"(?<=[.!?])\s+", text)
    else:
        parts = text.split(mode)
    return [p.strip() for p in parts if p.strip()]


def score_candidates(
    reference: str, texts: Sequence[str], systems: Sequence[str | None] | None = None
) -> list[Candidate]:
    """Score candidate summaries against ``reference`` and sort them best first (stable on ties).

    Texts hold newline-separated sentences (see :mod:`st_contrast.evaluation.rouge`).
    """
    if systems is not None and len(systems) != len(texts):
        raise ValueError(f"got {len(texts)} candidate texts but {len(systems)} system names")
    candidates = []
    for k, text in enumerate(texts):
        scores = rouge_scores(reference, text)
        candidates.append(
            Candidate(
                text=text,
                score=scores["mean"],
                rouge1=scores["rouge1"],
                rouge2=scores["rouge2"],
                rougeLsum=scores["rougeLsum"],
                system=None if systems is None else systems[k],
            )
        )
    return sorted(candidates, key=lambda c: -c.score)


def make_document(
    doc_id: str | int,
    source: str,
    reference: str,
    candidate_texts: Sequence[str],
    systems: Sequence[str | None] | None = None,
    deduplicate: bool = True,
    min_candidates: int = MIN_CANDIDATES,
) -> SimCLSDocument:
    """Score, sort and validate one document. ``deduplicate`` drops repeated candidate texts (first kept)."""
    texts, names = list(candidate_texts), list(systems) if systems is not None else [None] * len(candidate_texts)
    if deduplicate:  # one candidate per distinct text; its system names joined with ","
        merged: dict[str, list[str]] = {}
        for text, name in zip(texts, names):
            merged.setdefault(text, [])
            if name is not None:
                merged[text].append(name)
        texts = list(merged)
        names = [",".join(merged[t]) if merged[t] else None for t in texts]
    if not reference.strip():
        raise ValueError(f"document {str(doc_id)!r}: the reference is empty; SimCLS needs a reference to rank against")
    if len(texts) < min_candidates:
        raise ValueError(
            f"document {str(doc_id)!r} has {len(texts)} distinct candidate(s); ranking needs at least {min_candidates}"
        )
    doc = SimCLSDocument(str(doc_id), source, reference, score_candidates(reference, texts, names))
    check_document(doc, min_candidates)
    return doc


# -- JSONL ---------------------------------------------------------------------------------------


def document_from_dict(data: dict[str, Any], min_candidates: int = MIN_CANDIDATES) -> SimCLSDocument:
    """Parse one JSON object of the format (raises ``ValueError`` saying what is missing or wrong).

    Texts (``source``, ``reference``, each candidate's ``text``) must be strings, ``id`` a string or an
    integer, ``system`` a string when present, and every ROUGE value a finite number in ``[0, 1]`` (``score``
    a finite number); nothing is converted behind the caller's back (``null`` never becomes ``"None"``).
    """
    if not isinstance(data, dict):
        raise ValueError(
            f"expected a JSON object {{id, source, reference, candidates}}, got {type(data).__name__} "
            f"{str(data)[:60]!r}"
        )
    missing = [key for key in ("id", "source", "reference", "candidates") if key not in data]
    if missing:
        raise ValueError(f"missing key(s) {missing}; expected id, source, reference, candidates")
    doc_id = data["id"]
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise ValueError(f"'id' must be a string or an integer, got {type(doc_id).__name__} {doc_id!r}")
    for key in ("source", "reference"):
        if not isinstance(data[key], str):
            raise ValueError(
                f"document {str(doc_id)!r}: {key!r} must be text (a string), got {type(data[key]).__name__}"
            )
    raw = data["candidates"]
    if not isinstance(raw, list):
        raise ValueError(f"document {data['id']!r}: 'candidates' must be a list, got {type(raw).__name__}")
    candidates = []
    for k, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ValueError(f"document {data['id']!r}: candidate {k} must be an object with a 'text' string")
        system = item.get("system")
        if system is not None and not isinstance(system, str):
            raise ValueError(f"document {data['id']!r}: candidate {k}'s 'system' must be a string")
        try:
            scores = {name: _number(item[name]) for name in ROUGE_TYPES}
            score = _number(item["score"]) if "score" in item else sum(scores.values()) / 3.0
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"document {data['id']!r}: candidate {k} needs numeric {', '.join(ROUGE_TYPES)} ({error})"
            ) from None
        bad = {name: value for name, value in {**scores, "score": score}.items() if not math.isfinite(value)}
        bad.update({name: value for name, value in scores.items() if math.isfinite(value) and not 0 <= value <= 1})
        if bad:
            raise ValueError(
                f"document {data['id']!r}: candidate {k} has {bad}; expected ROUGE F1 values in [0, 1] and a finite "
                "score"
            )
        candidates.append(Candidate(item["text"], score, system=system, **scores))
    extra = {k: v for k, v in data.items() if k not in ("id", "source", "reference", "candidates")}
    doc = SimCLSDocument(str(doc_id), data["source"], data["reference"], candidates, extra)
    check_document(doc, min_candidates)
    return doc


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def iter_simcls_jsonl(
    path: str | os.PathLike, min_candidates: int = MIN_CANDIDATES, encoding: str = "utf-8"
) -> Iterator[SimCLSDocument]:
    """Documents of a SimCLS JSONL file, validated; errors (:class:`DataFormatError`) name the file and line.

    Blank lines are skipped (a logged count); every other line must be a valid document.
    """
    for line_number, data in iter_jsonl(path, encoding):
        try:
            yield document_from_dict(data, min_candidates)
        except DataFormatError:
            raise
        except ValueError as error:
            raise DataFormatError(path, str(error), line_number) from None


def read_simcls_jsonl(
    path: str | os.PathLike, min_candidates: int = MIN_CANDIDATES, encoding: str = "utf-8"
) -> list[SimCLSDocument]:
    """All documents of a SimCLS JSONL file (see the module docstring for the format)."""
    docs = list(iter_simcls_jsonl(path, min_candidates, encoding))
    if not docs:
        raise DataFormatError(path, "the file holds no documents; expected one JSON document per line")
    return docs


def write_simcls_jsonl(docs: Iterable[SimCLSDocument], path: str | os.PathLike) -> int:
    """Write documents, one JSON object per line; returns how many were written."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


# -- builders: fairseq-generate ------------------------------------------------------------------


@dataclass
class GeneratedExample:
    """What ``fairseq-generate`` printed for one sample id."""

    source: str | None = None
    target: str | None = None
    hypotheses: list[tuple[float, str]] = field(default_factory=list)


def parse_fairseq_generate(lines: Iterable[str], hypothesis_prefix: str = "H") -> dict[int, GeneratedExample]:
    """Group ``fairseq-generate`` output by sample id.

    Reads ``S-<id>\\tsource``, ``T-<id>\\ttarget`` and ``<prefix>-<id>\\tscore\\thypothesis`` lines
    (``H`` is the hypothesis after ``--remove-bpe``; ``D`` the detokenised one when ``--tokenizer`` is
    set); every other line (``P-``, ``I-``, logging) is ignored. Hypotheses stay in the printed order.
    """
    if hypothesis_prefix not in ("H", "D"):
        raise ValueError(f"hypothesis_prefix must be 'H' or 'D', got {hypothesis_prefix!r}")
    examples: dict[int, GeneratedExample] = {}
    pattern = re.compile(r"^([STHD])-(\d+)\t(.*)$")
    for line in lines:
        match = pattern.match(line.rstrip("\n"))
        if not match:
            continue
        kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
        example = examples.setdefault(index, GeneratedExample())
        if kind == "S":
            example.source = rest
        elif kind == "T":
            example.target = rest
        elif kind == hypothesis_prefix:
            score, _, text = rest.partition("\t")
            try:
                example.hypotheses.append((float(score), text))
            except ValueError:
                raise ValueError(f"malformed {kind}- line for sample {index}: {line[:120]!r}") from None
    return examples


def documents_from_fairseq_generate(
    lines: Iterable[str],
    sources: Sequence[str] | None = None,
    references: Sequence[str] | None = None,
    hypothesis_prefix: str = "H",
    sentence_split: str = "punct",
    deduplicate: bool = True,
    skip_invalid: bool = False,
) -> list[SimCLSDocument]:
    """SimCLS documents from ``fairseq-generate`` output (candidates = its n-best list).

    ``sources``/``references``: untokenised texts line-aligned with the generated subset (sample id
    ``i`` is line ``i``), used instead of the ``S-``/``T-`` lines (which carry fairseq's tokenised,
    possibly truncated text). References and candidates are split into sentences with
    :func:`split_sentences` (``sentence_split``). Documents with an empty reference or fewer than two
    distinct candidates raise ``ValueError``, or are skipped with ``skip_invalid=True``.
    """
    examples = parse_fairseq_generate(lines, hypothesis_prefix)
    if not examples:
        raise ValueError(
            "no S-/T-/H- lines found: pass the stdout of fairseq-generate (not a log file of fairseq-train)"
        )
    docs = []
    for index in sorted(examples):
        example = examples[index]
        try:
            source = sources[index] if sources is not None else example.source
            reference = references[index] if references is not None else example.target
        except IndexError:
            raise ValueError(f"sample id {index} is beyond the given sources/references file") from None
        if source is None:
            raise ValueError(f"sample {index} has no S- line and no sources were given")
        if reference is None:
            raise ValueError(f"sample {index} has no T- line (generation without references?) and none were given")
        texts = ["\n".join(split_sentences(text, sentence_split)) for _, text in example.hypotheses]
        texts = [t for t in texts if t]
        systems = [f"beam{k}" for k in range(len(texts))]
        try:
            docs.append(
                make_document(
                    index,
                    source,
                    "\n".join(split_sentences(reference, sentence_split)),
                    texts,
                    systems,
                    deduplicate=deduplicate,
                )
            )
        except ValueError:
            if not skip_invalid:
                raise
    if not docs:
        raise ValueError("no valid document: every sample had an empty reference or fewer than two candidates")
    return docs


# -- builders: REALSumm --------------------------------------------------------------------------

_TAGGED_SENTENCE = re.compile(r"<t>(.*?)</t>", re.S)


def strip_sentence_tags(text: str) -> str:
    """``"<t> a . </t> <t> b . </t>"`` → ``"a .\\nb ."`` (text without tags is returned stripped)."""
    sentences = [s.strip() for s in _TAGGED_SENTENCE.findall(text)]
    if not sentences:
        sentences = [text.replace("<t>", " ").replace("</t>", " ").strip()]
    return "\n".join(" ".join(s.split()) for s in sentences if s)


def realsumm_documents(
    data_dir: str | os.PathLike | None = None,
    kinds: Sequence[str] = ("abs", "ext"),
    deduplicate: bool = True,
    limit: int | None = None,
) -> list[SimCLSDocument]:
    """REALSumm's 100 CNN/DM test documents with the summaries of its systems as candidates.

    Reads ``summarization/realsumm_cnndm/{abs,ext}.pkl`` (Bhandari et al. 2020, "Re-evaluating Evaluation
    in Text Summarization", EMNLP 2020) under the data folder (``data_dir``, then ``$ST_CONTRAST_DATA``)
    and the aligned sources in ``selected_docs_for_human_eval/abs/ptr_generator/src.txt``. ``<t>``/``</t>``
    sentence tags become newlines. System names are ``abs/<system>`` or ``ext/<system>``; BART appears in
    both lists with the same output, and several extractive systems often pick the same sentences:
    ``deduplicate`` (default) keeps each distinct text once (18 to 24 per document), its ``system`` naming
    every system that produced it, comma-separated. ``limit`` keeps the first documents by id (scoring all
    ~2,300 candidates takes a while). Texts are lower-cased and tokenised, as published.
    """
    root = find_data_file(REALSUMM_DIR, data_dir)
    assert root is not None
    sources_path = Path(root) / REALSUMM_SOURCES
    sources = read_lines(sources_path) if sources_path.is_file() else None
    merged: dict[int, dict[str, Any]] = {}
    for kind in kinds:
        path = Path(root) / f"{kind}.pkl"
        if not path.is_file():
            raise FileNotFoundError(f"REALSumm file {path} is missing (kinds must be among 'abs', 'ext')")
        with open(path, "rb") as handle:
            table = pickle.load(handle)  # the published data set (trusted input)
        if not isinstance(table, dict):
            raise DataFormatError(path, f"expected a dict of documents, got {type(table).__name__}")
        for key, item in table.items():
            try:
                doc_id = int(item.get("doc_id", key))
                reference = item["ref_summ"]
                systems = [
                    (f"{kind}/{system.removesuffix('.txt')}", value["system_summary"])
                    for system, value in item["system_summaries"].items()
                ]
                if not isinstance(reference, str) or not all(isinstance(text, str) for _, text in systems):
                    raise TypeError("the reference and the system summaries must be strings")
            except (AttributeError, KeyError, TypeError, ValueError) as error:
                raise DataFormatError(
                    path,
                    f"malformed REALSumm entry ({error!r}); expected {{doc_id, ref_summ, system_summaries: "
                    "{system: {system_summary, ...}}}",
                    where=repr(key),
                ) from None
            entry = merged.setdefault(doc_id, {"reference": reference, "systems": []})
            if entry["reference"] != reference:
                raise DataFormatError(
                    path, f"document {doc_id}'s reference differs from the one in another kind's file", where=repr(key)
                )
            entry["systems"].extend(systems)
    docs = []
    for doc_id in sorted(merged)[:limit]:
        entry = merged[doc_id]
        if sources is None or doc_id >= len(sources):
            raise FileNotFoundError(f"no source text for REALSumm document {doc_id} in {sources_path}")
        names = [name for name, _ in entry["systems"]]
        texts = [strip_sentence_tags(text) for _, text in entry["systems"]]
        docs.append(
            make_document(
                doc_id,
                strip_sentence_tags(sources[doc_id]),
                strip_sentence_tags(entry["reference"]),
                texts,
                names,
                deduplicate=deduplicate,
            )
        )
    return docs


def candidate_counts(docs: Iterable[SimCLSDocument]) -> Counter[int]:
    """How many documents have each number of candidates (for a summary line in logs)."""
    return Counter(len(doc.candidates) for doc in docs)
