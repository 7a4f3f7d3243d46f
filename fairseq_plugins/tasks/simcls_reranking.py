"""SimCLS stage two: learn to re-rank summary candidates, with ``fairseq-train``.

Liu & Liu (2021), "SimCLS: A Simple Framework for Contrastive Learning of Abstractive Summarization",
ACL 2021, https://arxiv.org/abs/2106.01890.

Data: a folder with ``train.jsonl``, ``valid.jsonl`` (and any other ``--valid-subset``) in the format of
:mod:`st_contrast.data.simcls` (source, reference, candidates sorted best first with their ROUGE), as
written by ``st-contrast simcls-build-data``. Texts are tokenised when loaded (no binarisation step):

* ``--pretrained-encoder PATH`` (a local Hugging Face model folder, e.g. roberta-base as in the paper, or
  a sentence-transformers folder such as all-MiniLM-L6-v2): its tokenizer, with its own ``[CLS]``/``<s>``
  first token; the model ``simcls_scorer`` loads the same encoder.
* otherwise texts are split on whitespace (tokenise/BPE them beforehand, as for the summariser) and
  looked up in ``DATA/dict.txt``; ``<s>`` is prepended so that the first token is a dedicated one.

Documents are truncated to ``--max-source-positions`` tokens (512 in the paper) and candidates and
references to ``--max-candidate-positions`` (120 in the official training code). One batch is
``--batch-size`` documents with all their candidates; the paper trains with one document per step and
accumulates gradients (``--update-freq``). ``--num-train-candidates K`` scores a random K-subset of each
training document's candidates per epoch (kept in rank order; margins then count ranks in the subset),
a cost saving that the paper does not use (it keeps 16); 0 keeps all.

Validation (criterion ``simcls_ranking``) reports the ROUGE-1/2/Lsum of the candidate each document's
highest score selects, from the scores stored in the file, plus the oracle and a random choice. Use
``--best-checkpoint-metric rouge_mean --maximize-best-checkpoint-metric`` to keep the best re-ranker.

Training::

    st-contrast fairseq-train data/ --task simcls_reranking --arch simcls_scorer --criterion simcls_ranking \\
        --pretrained-encoder /models/roberta-base --batch-size 1 --update-freq 12 --optimizer adam --lr 2e-5 \\
        --max-epoch 5 --best-checkpoint-metric rouge_mean --maximize-best-checkpoint-metric

Inference: ``st-contrast simcls-rerank --checkpoint checkpoints/checkpoint_best.pt --input test.jsonl``
(:func:`rerank`).
"""

# No `from __future__ import annotations` here: fairseq builds its CLI from the config dataclass's
# field types at runtime, and string annotations break that (fairseq.dataclass.utils.interpret_dc_type).
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from fairseq.data import Dictionary, FairseqDataset, data_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask
from omegaconf import II, MISSING

from st_contrast.data.reading import DataFormatError, iter_jsonl
from st_contrast.data.simcls import SimCLSDocument, iter_simcls_jsonl

from .._registry import register_task_once
from ..criterions.simcls_ranking import select_best_candidate

logger = logging.getLogger(__name__)


@dataclass
class RerankItem:
    """One document to score: token ids and, when known, the candidates' ROUGE (rouge1, rouge2, rougeLsum)."""

    id: str
    source: torch.Tensor
    candidates: list[torch.Tensor]
    reference: Optional[torch.Tensor] = None  # noqa: UP045
    rouge: Optional[torch.Tensor] = None  # noqa: UP045


@dataclass
class SimCLSRerankingConfig(FairseqDataclass):
    data: str = field(
        default=MISSING,
        metadata={"help": "folder with {split}.jsonl files in st-contrast's SimCLS format (and dict.txt without "
                  "--pretrained-encoder)"},
    )  # fmt: skip
    pretrained_encoder: Optional[str] = field(  # noqa: UP045 (fairseq parses typing.Optional only)
        default=None,
        metadata={
            "help": "local Hugging Face encoder folder (e.g. roberta-base): its tokenizer is used here and "
            "simcls_scorer loads its weights; without it, whitespace tokens and DATA/dict.txt with a fairseq "
            "transformer encoder"
        },
    )
    max_source_positions: int = field(default=512, metadata={"help": "documents are truncated to this many tokens"})
    max_candidate_positions: int = field(
        default=120, metadata={"help": "candidates and references are truncated to this many tokens"}
    )
    num_train_candidates: int = field(
        default=0,
        metadata={"help": "score a random subset of this many candidates per training document and epoch, kept in "
                  "rank order (0: all; the paper uses all 16)"},
    )  # fmt: skip
    seed: int = II("common.seed")


class SimCLSRerankingDataset(FairseqDataset):
    """Documents with their candidates; batches of whole documents (see the module docstring)."""

    def __init__(self, items: Sequence[RerankItem], pad: int, shuffle: bool, num_candidates: int = 0, seed: int = 1):
        self.items = list(items)
        self.pad = pad
        self.shuffle = shuffle
        self.num_candidates = int(num_candidates)
        self.seed = int(seed)
        self.epoch = 1
        self.sizes = np.array(
            [len(it.source) + sum(len(c) for c in self._cands_for_size(it)) + _len(it.reference) for it in self.items],
            dtype=np.int64,
        )

    def _cands_for_size(self, item: RerankItem) -> list[torch.Tensor]:
        if 0 < self.num_candidates < len(item.candidates):
            return sorted(item.candidates, key=len, reverse=True)[: self.num_candidates]
        return item.candidates

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def can_reuse_epoch_itr_across_epochs(self) -> bool:
        return False  # the candidate subsets change with the epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        order = list(range(len(item.candidates)))
        if 0 < self.num_candidates < len(order):
            with data_utils.numpy_seed(self.seed, self.epoch, index):
                order = sorted(np.random.choice(len(order), self.num_candidates, replace=False).tolist())
        return {
            "id": index,
            "source": item.source,
            "reference": item.reference,
            "candidates": [item.candidates[k] for k in order],
            "rouge": None if item.rouge is None else item.rouge[order],
        }

    def num_tokens(self, index: int) -> int:
        return int(self.sizes[index])

    def size(self, index: int) -> int:
        return int(self.sizes[index])

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        # fairseq 0.12's batching silently drops the last, partial batch whenever --required-batch-size-multiple
        # (default 8) is above 1, e.g. one document per epoch at the paper's batch size of 1. The multiple only
        # rounds batch shapes for GPU kernels, which whole documents with their candidates do not have: use 1.
        return super().batch_by_size(indices, max_tokens, max_sentences, 1)

    def ordered_indices(self) -> np.ndarray:
        if self.shuffle:
            indices = np.random.permutation(len(self))
        else:
            indices = np.arange(len(self))
        return indices[np.argsort(self.sizes[indices], kind="mergesort")]

    def collater(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        if not samples:
            return {}
        batch, n = len(samples), max(len(s["candidates"]) for s in samples)
        length = max(len(c) for s in samples for c in s["candidates"])
        candidates = torch.full((batch, n, length), self.pad, dtype=torch.long)
        mask = torch.zeros(batch, n, dtype=torch.bool)
        for b, s in enumerate(samples):
            for k, tokens in enumerate(s["candidates"]):
                candidates[b, k, : len(tokens)] = tokens
                mask[b, k] = True
        net_input: dict[str, Any] = {
            "src_tokens": data_utils.collate_tokens([s["source"] for s in samples], self.pad, left_pad=False),
            "candidate_tokens": candidates,
        }
        if all(s["reference"] is not None for s in samples):
            net_input["reference_tokens"] = data_utils.collate_tokens(
                [s["reference"] for s in samples], self.pad, left_pad=False
            )
        sample: dict[str, Any] = {
            "id": torch.tensor([s["id"] for s in samples]),
            "nsentences": batch,
            "ntokens": int(net_input["src_tokens"].ne(self.pad).sum() + candidates.ne(self.pad).sum()),
            "net_input": net_input,
            "candidate_mask": mask,
        }
        if all(s["rouge"] is not None for s in samples):
            rouge = torch.zeros(batch, n, 3)
            for b, s in enumerate(samples):
                rouge[b, : len(s["rouge"])] = s["rouge"]
            sample["candidate_rouge"] = rouge
        return sample


def _len(tensor: Optional[torch.Tensor]) -> int:  # noqa: UP045
    return 0 if tensor is None else len(tensor)


@register_task_once("simcls_reranking", dataclass=SimCLSRerankingConfig)
class SimCLSRerankingTask(FairseqTask):
    """Re-ranking of summary candidates for SimCLS (see the module docstring)."""

    cfg: SimCLSRerankingConfig

    def __init__(self, cfg: SimCLSRerankingConfig, dictionary: Optional[Dictionary], tokenizer=None):  # noqa: UP045
        super().__init__(cfg)
        self.dictionary = dictionary
        self.tokenizer = tokenizer
        if tokenizer is not None:
            if tokenizer.pad_token_id is None:
                raise ValueError(f"the tokenizer of {cfg.pretrained_encoder} has no padding token")
            self.pad_idx = int(tokenizer.pad_token_id)
        else:
            assert dictionary is not None
            self.pad_idx = dictionary.pad()

    @classmethod
    def setup_task(cls, cfg: SimCLSRerankingConfig, **kwargs):
        for name in ("max_source_positions", "max_candidate_positions"):
            if getattr(cfg, name) < 2:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 2, got {getattr(cfg, name)}")
        if cfg.num_train_candidates == 1 or cfg.num_train_candidates < 0:
            raise ValueError(f"--num-train-candidates must be 0 (all) or >= 2, got {cfg.num_train_candidates}")
        if cfg.pretrained_encoder:
            tokenizer = load_tokenizer(cfg.pretrained_encoder)
            logger.info("tokenizer of %s (%d types)", cfg.pretrained_encoder, len(tokenizer))
            return cls(cfg, None, tokenizer)
        data = cfg.data.split(os.pathsep)[0]
        path = os.path.join(data, "dict.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no {path}: give --pretrained-encoder PATH (a Hugging Face encoder folder) or put the fairseq "
                "dictionary of your tokenised texts there (`st-contrast simcls-build-data ... --write-dict`)"
            )
        dictionary = Dictionary.load(path)
        logger.info("dictionary %s: %d types", path, len(dictionary))
        return cls(cfg, dictionary)

    # -- tokenisation ---------------------------------------------------------------------------
    def encode(self, text: str, max_tokens: int) -> torch.Tensor:
        """Token ids of a text whose sentences are separated by newlines, first token ``[CLS]``/``<s>``."""
        flat = " ".join(text.split())
        if self.tokenizer is not None:
            ids = self.tokenizer(flat, truncation=True, max_length=max_tokens)["input_ids"]
            return torch.tensor(ids, dtype=torch.long)
        assert self.dictionary is not None
        body = self.dictionary.encode_line(flat, add_if_not_exist=False, append_eos=False).long()
        body = body[: max_tokens - 2]
        return torch.cat([body.new_tensor([self.dictionary.bos()]), body, body.new_tensor([self.dictionary.eos()])])

    def item_from_texts(
        self,
        doc_id: str,
        source: str,
        candidates: Sequence[str],
        reference: Optional[str] = None,  # noqa: UP045
        rouge: Optional[Sequence[Sequence[float]]] = None,  # noqa: UP045
    ) -> RerankItem:
        cand = self.cfg.max_candidate_positions
        return RerankItem(
            id=str(doc_id),
            source=self.encode(source, self.cfg.max_source_positions),
            candidates=[self.encode(c, cand) for c in candidates],
            reference=None if reference is None else self.encode(reference, cand),
            rouge=None if rouge is None else torch.tensor(rouge, dtype=torch.float),
        )

    def item_from_document(self, doc: SimCLSDocument) -> RerankItem:
        return self.item_from_texts(
            doc.id,
            doc.source,
            [c.text for c in doc.candidates],
            doc.reference,
            [[c.rouge1, c.rouge2, c.rougeLsum] for c in doc.candidates],
        )

    def build_dataset(self, items: Sequence[RerankItem], train: bool = False) -> SimCLSRerankingDataset:
        return SimCLSRerankingDataset(
            items,
            pad=self.pad_idx,
            shuffle=train,
            num_candidates=self.cfg.num_train_candidates if train else 0,
            seed=int(self.cfg.seed),
        )

    # -- fairseq interface ----------------------------------------------------------------------
    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs) -> None:
        data = self.cfg.data.split(os.pathsep)[0]
        path = os.path.join(data, f"{split}.jsonl")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {path}: simcls_reranking reads DATA/{{split}}.jsonl files")
        items = [self.item_from_document(doc) for doc in iter_simcls_jsonl(path)]
        if not items:
            raise ValueError(f"{path} holds no documents")
        n_cands = [len(it.candidates) for it in items]
        logger.info("%s: %d documents, %d-%d candidates each", path, len(items), min(n_cands), max(n_cands))
        self.datasets[split] = self.build_dataset(items, train=split == "train")

    def max_positions(self):
        return None  # texts are truncated when tokenised

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary


def load_tokenizer(path: str):
    """The tokenizer of a local Hugging Face model folder (never downloads)."""
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"--pretrained-encoder {path!r} is not a folder; pass a local Hugging Face model folder "
            "(downloads are not attempted)"
        )
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


# -- inference ------------------------------------------------------------------------------------


def read_rerank_inputs(path: str) -> list[dict[str, Any]]:
    """Documents to re-rank: SimCLS JSONL lines, where references and candidate scores may be missing.

    Each line needs ``source`` and ``candidates`` (strings, or objects with a ``text``); ``id`` defaults to
    the line number minus one and ``reference`` (newline-separated sentences) is used to report ROUGE
    when present. Read through :mod:`st_contrast.data.reading`: a BOM is dropped, ``\\r\\n`` ends a line,
    blank lines are skipped (and counted in a warning), and a byte that is not UTF-8, a line that is not JSON
    or a record without what is needed is a :class:`~st_contrast.data.reading.DataFormatError` at ``file:line``.
    """
    docs = []
    for number, data in iter_jsonl(path):
        if not isinstance(data, dict) or "source" not in data or "candidates" not in data:
            raise DataFormatError(path, "needs 'source' and 'candidates'; expected one JSON object per line", number)
        if not isinstance(data["candidates"], list):
            raise DataFormatError(path, "'candidates' must be a list of strings or of objects with 'text'", number)
        texts = []
        for candidate in data["candidates"]:
            if isinstance(candidate, dict) and "text" not in candidate:
                raise DataFormatError(path, "a candidate object has no 'text'", number)
            texts.append(str(candidate["text"]) if isinstance(candidate, dict) else str(candidate))
        if not texts:
            raise DataFormatError(path, "no candidates to choose from; expected at least one", number)
        reference = data.get("reference")
        if reference is not None and not str(reference).strip():
            raise DataFormatError(path, "the reference is empty (leave the key out instead)", number)
        docs.append({"id": str(data.get("id", number - 1)), "source": str(data["source"]), "candidates": texts,
                     "reference": reference})  # fmt: skip
    if not docs:
        raise DataFormatError(path, "holds no documents; expected one JSON object per line")
    return docs


def score_items(model, dataset: SimCLSRerankingDataset, batch_size: int = 4) -> tuple[list[int], list[list[float]]]:
    """Scores of every candidate of every document with ``model`` (a ``simcls_scorer``), and each choice.

    Returns the index of the highest-scoring candidate per document (in the dataset's candidate order)
    and the scores. Runs without gradients on the model's device; the model is put in eval mode.
    """
    model.eval()
    device = next(model.parameters()).device
    chosen: list[int] = []
    all_scores: list[list[float]] = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            net_input = {k: v.to(device) for k, v in batch["net_input"].items() if k != "reference_tokens"}
            scores = model(**net_input)["candidate_scores"].float().cpu()
            mask = batch["candidate_mask"]
            chosen += select_best_candidate(scores, mask).tolist()
            all_scores += [row[m].tolist() for row, m in zip(scores, mask)]
    return chosen, all_scores


def rerank(
    checkpoint: str,
    input_path: str,
    output_path: str,
    output_format: str = "jsonl",
    batch_size: int = 4,
    pretrained_encoder: Optional[str] = None,  # noqa: UP045
    cpu: bool = False,
) -> dict[str, Any]:
    """Score every candidate with a trained ``simcls_scorer`` checkpoint and write the choice per document.

    Reads ``input_path`` (see :func:`read_rerank_inputs`) and writes to ``output_path`` (``"-"``: stdout)
    one JSON object per document (``id``, ``index`` of the chosen candidate in the input order, ``summary``
    and all ``scores``), or with ``output_format="text"`` the chosen summary per line (sentences joined by
    spaces). ``pretrained_encoder`` replaces the encoder folder saved in the checkpoint (if it moved); the
    model runs on CUDA when available unless ``cpu``. Returns ``{"documents": n, "rouge": ...}``, where
    ``rouge`` is :func:`st_contrast.evaluation.rouge.corpus_rouge` of the choices on the documents with a
    reference (``None`` when none has one). ``st-contrast simcls-rerank`` runs this in a child process.
    """
    from fairseq import checkpoint_utils

    from st_contrast.evaluation.rouge import corpus_rouge

    if output_format not in ("jsonl", "text"):
        raise ValueError(f"output_format must be 'jsonl' or 'text', got {output_format!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    overrides = {"pretrained_encoder": pretrained_encoder} if pretrained_encoder else None
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides=overrides)
    if not isinstance(task, SimCLSRerankingTask):
        raise ValueError(f"{checkpoint} was trained with task {type(task).__name__}, not simcls_reranking")
    model = models[0].eval()
    if torch.cuda.is_available() and not cpu:
        model = model.cuda()
    docs = read_rerank_inputs(input_path)
    items = [task.item_from_texts(d["id"], d["source"], d["candidates"]) for d in docs]
    chosen, all_scores = score_items(model, task.build_dataset(items), batch_size)
    out = sys.stdout if output_path == "-" else open(output_path, "w", encoding="utf-8")
    try:
        for doc, index, scores in zip(docs, chosen, all_scores):
            summary = doc["candidates"][index]
            if output_format == "text":
                out.write(" ".join(summary.split()) + "\n")
            else:
                record = {"id": doc["id"], "index": index, "summary": summary, "scores": scores}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    with_ref = [(d["reference"], d["candidates"][i]) for d, i in zip(docs, chosen) if d["reference"]]
    rouge = corpus_rouge([r for r, _ in with_ref], [c for _, c in with_ref]) if with_ref else None
    return {"documents": len(docs), "rouge": rouge}
