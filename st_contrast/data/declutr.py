"""DeCLUTR's span sampler: anchors and their nearby positives cut from long documents.

Giorgi, Nitski, Wang and Bader, *DeCLUTR: Deep Contrastive Learning for Unsupervised Textual
Representations*, ACL 2021 (https://arxiv.org/abs/2006.03659), section 2.2. For every document of
``n`` tokens (``n >= num_anchors * max_span * 2``):

1. The document is cut into a grid of ``max_span``-wide cells starting at ``0, max_span, 2·max_span, ...``.
   Each anchor picks one remaining cell (uniformly; only the first or last one when so few cells are left
   that a uniform pick could exhaust them), then the picked cell and its nearest remaining neighbours are
   removed, so anchors never overlap and are spread over the document.
2. Anchor length ``l_a = int(Beta(4, 2)·(max_span − min_span) + min_span)``; its start is uniform among the
   positions that keep it inside its cell.
3. For each anchor, ``num_positives`` positives of length ``l_p = int(Beta(2, 4)·(max_span − min_span) +
   min_span)`` start uniformly in ``[max(0, a_start − l_p), min(a_end, n − l_p)]``: adjacent to, overlapping
   or subsumed by the anchor (``strategy="adjacent-overlapping-subsumed"``, the paper's). ``"subsuming"``
   draws ``l_p`` up to the anchor's length and keeps the positive inside the anchor; ``"adjacent"`` puts the
   positive right before or right after the anchor.

Positions are drawn with numpy for many documents at once (:meth:`DeCLUTRSpanSampler.sample_positions`);
cutting the text is the only per-document Python work.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from st_contrast.data.reading import DataFormatError, iter_lines, log_skipped

logger = logging.getLogger(__name__)

Strategy = Literal["adjacent-overlapping-subsumed", "subsuming", "adjacent"]
OnShort = Literal["error", "skip", "shrink"]
Unit = Literal["words", "tokens"]
STRATEGIES = ("adjacent-overlapping-subsumed", "subsuming", "adjacent")


def declutr_column_names(num_anchors: int = 2, num_positives: int = 2) -> list[str]:
    """The text columns :class:`~st_contrast.losses.DeCLUTRLoss` expects, in order.

    ``anchor_0 .. anchor_{A-1}``, then the positives of anchor 0 (``positive_0_0 .. positive_0_{P-1}``),
    then those of anchor 1, and so on: ``A·(1 + P)`` columns.
    """
    anchors = [f"anchor_{a}" for a in range(num_anchors)]
    positives = [f"positive_{a}_{p}" for a in range(num_anchors) for p in range(num_positives)]
    return anchors + positives


@dataclass
class SpanPositions:
    """Token positions drawn for ``D`` documents (all arrays ``int64``; ends are exclusive).

    ``anchor_starts``/``anchor_lengths`` are ``(D, A)``; ``positive_starts``/``positive_lengths`` are
    ``(D, A, P)``; ``num_tokens`` is ``(D,)``; ``max_span``/``min_span`` are ``(D,)`` (they differ from
    the sampler's only for documents shrunk with ``on_short="shrink"``).
    """

    num_tokens: np.ndarray
    max_span: np.ndarray
    min_span: np.ndarray
    anchor_starts: np.ndarray
    anchor_lengths: np.ndarray
    positive_starts: np.ndarray
    positive_lengths: np.ndarray


@dataclass
class DeCLUTRSample:
    """One document's spans: ``anchors[a]`` and its positives ``positives[a]`` (a list of ``P`` strings)."""

    anchors: list[str]
    positives: list[list[str]]

    def texts(self) -> list[str]:
        """The texts in the column order of :func:`declutr_column_names`."""
        return self.anchors + [text for group in self.positives for text in group]


class DeCLUTRSpanSampler:
    def __init__(
        self,
        num_anchors: int = 2,
        num_positives: int = 2,
        min_span: int = 32,
        max_span: int = 512,
        strategy: Strategy = "adjacent-overlapping-subsumed",
        tokenizer: Any = None,
        on_short: OnShort = "error",
        seed: int | None = None,
        unit: Unit | None = None,
        model: Any = None,
    ) -> None:
        """DeCLUTR's anchor/positive span sampler (Giorgi et al., ACL 2021, sec. 2.2); see the module docstring.

        Args:
            num_anchors: anchors ``A`` per document (the paper's 2). The anchors of one document are each
                other's hard negatives in the loss.
            num_positives: positives ``P`` per anchor (the paper's 2); the loss averages their embeddings.
            min_span: shortest span, in tokens (the paper's 32).
            max_span: longest span, in tokens (the paper's 512). A document needs ``A·max_span·2`` tokens.
            strategy: ``"adjacent-overlapping-subsumed"`` (the paper's), ``"subsuming"`` (positives inside the
                anchor) or ``"adjacent"`` (positives right before or after the anchor).
            tokenizer: ``None`` for whitespace tokens (``str.split``, as the paper), a callable
                ``str -> list[str]`` (spans are the tokens joined with spaces), or a Hugging Face fast tokenizer
                (e.g. ``model.tokenizer``): spans are then measured in the model's own tokens and cut from the
                original text with its character offsets, so ``max_span + 2 <= max_seq_length`` means no span
                is ever truncated.
            on_short: what to do with a document shorter than ``A·max_span·2`` tokens: ``"error"`` (raise,
                naming the document and the length needed), ``"skip"`` it, or ``"shrink"`` the spans for that
                document to ``max_span' = n // (2A)`` and ``min_span' = max(1, min_span·max_span'/max_span)``.
                Documents too short for even 1-token spans are skipped. :attr:`counts` reports each.
            seed: seed of the sampler's own ``numpy.random.Generator`` (draws are reproducible).
            unit: what a span length counts. ``"tokens"``: the subword tokens of a Hugging Face fast tokenizer
                (``tokenizer=`` or ``model=``), as every released DeCLUTR config does; ``"words"``: whitespace
                tokens (the paper's description), or a callable tokenizer's tokens. ``None`` (default): ``"tokens"``
                whenever a fast tokenizer is available (given, or the model's), else ``"words"``.
            model: the SentenceTransformer to train; its tokenizer (``model.tokenizer``) is then used as
                ``tokenizer`` (pass one of the two, not both), so spans are measured in the model's own subword
                tokens by default. A warning is logged when ``max_span`` plus the special tokens exceeds
                ``model.max_seq_length`` (the encoder would truncate the longest spans).

        Raises:
            ValueError: for invalid settings (each message says what is allowed).

        Example:
            ::

                from st_contrast.data.declutr import DeCLUTRSpanSampler, read_wikitext_articles

                sampler = DeCLUTRSpanSampler(min_span=16, max_span=126, model=model, on_short="skip", seed=0)
                dataset = sampler.dataset(read_wikitext_articles("wikitext2_valid.txt"))  # spans in model tokens
                print(sampler.report())   # "sampled 60, skipped 0, shrunk 0 document(s) (...)"
        """
        for name, value, low in (
            ("num_anchors", num_anchors, 1),
            ("num_positives", num_positives, 1),
            ("min_span", min_span, 1),
            ("max_span", max_span, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if min_span > max_span:
            raise ValueError(f"min_span must be <= max_span, got min_span={min_span} and max_span={max_span}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}")
        if on_short not in ("error", "skip", "shrink"):
            raise ValueError(f"on_short must be 'error', 'skip' or 'shrink', got {on_short!r}")
        if tokenizer is not None and not callable(tokenizer):
            raise ValueError(f"tokenizer must be None, a callable or a Hugging Face tokenizer, got {tokenizer!r}")
        if unit not in (None, "words", "tokens"):
            raise ValueError(f"unit must be 'tokens' (subword tokens), 'words' (whitespace) or None, got {unit!r}")
        if model is not None:
            if tokenizer is not None:
                raise ValueError("pass either model (its tokenizer is used) or tokenizer, not both")
            if unit != "words":
                from st_contrast.modeling import tokenizer_of

                tokenizer = tokenizer_of(model, "DeCLUTRSpanSampler(model=...) measuring spans in subword tokens")
        fast = tokenizer is not None and bool(getattr(tokenizer, "is_fast", False))
        if unit is None:
            unit = "tokens" if fast else "words"
        elif unit == "tokens" and not fast:
            raise ValueError(
                "unit='tokens' counts a Hugging Face fast tokenizer's subword tokens: pass model=model or "
                f"tokenizer=model.tokenizer (a fast tokenizer), got tokenizer={tokenizer!r}"
            )
        elif unit == "words" and fast:
            raise ValueError(
                "unit='words' counts whitespace tokens, but a Hugging Face tokenizer was given; drop it, or use "
                "unit='tokens'"
            )
        self.unit: Unit = unit
        if model is not None and unit == "tokens":
            limit = getattr(model, "max_seq_length", None)
            specials = tokenizer.num_special_tokens_to_add() if hasattr(tokenizer, "num_special_tokens_to_add") else 2
            if isinstance(limit, int) and max_span + specials > limit:
                logger.warning(
                    "DeCLUTRSpanSampler: max_span=%d plus %d special tokens exceeds the model's max_seq_length=%d, "
                    "so the longest spans will be truncated by the encoder",
                    max_span,
                    specials,
                    limit,
                )
        self.num_anchors = int(num_anchors)
        self.num_positives = int(num_positives)
        self.min_span = int(min_span)
        self.max_span = int(max_span)
        self.strategy = strategy
        self.tokenizer = tokenizer
        self.on_short = on_short
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.counts: Counter[str] = Counter(sampled=0, skipped=0, shrunk=0)

    # --------------------------------------------------------------------------------------------
    # Lengths and positions (numpy, vectorised over documents)
    # --------------------------------------------------------------------------------------------

    @property
    def min_document_length(self) -> int:
        """Tokens a document needs without shrinking: ``num_anchors · max_span · 2``."""
        return self.num_anchors * self.max_span * 2

    @property
    def column_names(self) -> list[str]:
        return declutr_column_names(self.num_anchors, self.num_positives)

    def _span_limits(self, num_tokens: np.ndarray, names: Sequence[Any] | None = None) -> tuple[np.ndarray, ...]:
        """Per-document ``(keep, max_span, min_span)``, applying ``on_short``."""
        num_tokens = np.asarray(num_tokens, dtype=np.int64)
        need = self.min_document_length
        short = num_tokens < need
        max_span = np.full(num_tokens.shape, self.max_span, dtype=np.int64)
        min_span = np.full(num_tokens.shape, self.min_span, dtype=np.int64)
        keep = np.ones(num_tokens.shape, dtype=bool)
        if not short.any():
            return keep, max_span, min_span
        if self.on_short == "error":
            index = int(np.flatnonzero(short)[0])
            name = names[index] if names is not None else f"#{index}"
            raise ValueError(
                f"document {name} has {int(num_tokens[index])} tokens, but DeCLUTR needs at least {need} "
                f"(num_anchors·max_span·2 = {self.num_anchors}·{self.max_span}·2). Lower max_span, or pass "
                "on_short='skip' to drop short documents or on_short='shrink' to scale their spans down."
            )
        if self.on_short == "skip":
            keep &= ~short
            return keep, max_span, min_span
        shrunk = num_tokens[short] // (2 * self.num_anchors)
        max_span[short] = shrunk
        min_span[short] = np.maximum(1, (self.min_span * shrunk) // self.max_span)
        keep &= max_span >= 1
        return keep, max_span, min_span

    def sample_positions(
        self, num_tokens: Sequence[int] | np.ndarray, names: Sequence[Any] | None = None
    ) -> tuple[np.ndarray, SpanPositions]:
        """Draw span positions for documents of the given token counts (no text needed).

        Returns ``(kept, positions)``: the indices of the documents that were sampled (all of them unless
        ``on_short="skip"``/``"shrink"`` dropped some) and their :class:`SpanPositions`. Updates
        :attr:`counts`.
        """
        num_tokens = np.asarray(num_tokens, dtype=np.int64).reshape(-1)
        keep, max_span, min_span = self._span_limits(num_tokens, names)
        short = num_tokens < self.min_document_length
        self.counts["skipped"] += int((~keep).sum())
        self.counts["shrunk"] += int((short & keep).sum()) if self.on_short == "shrink" else 0
        kept = np.flatnonzero(keep)
        self.counts["sampled"] += int(kept.size)
        n, hi, lo = num_tokens[kept], max_span[kept], min_span[kept]
        return kept, self._draw(n, hi, lo)

    def _draw(self, n: np.ndarray, max_span: np.ndarray, min_span: np.ndarray) -> SpanPositions:
        rng = self.rng
        docs, anchors, positives = n.shape[0], self.num_anchors, self.num_positives
        if docs == 0:
            empty = np.zeros((0, anchors), dtype=np.int64)
            empty3 = np.zeros((0, anchors, positives), dtype=np.int64)
            return SpanPositions(n, max_span, min_span, empty, empty.copy(), empty3, empty3.copy())
        span_range = (max_span - min_span)[:, None]
        # anchor lengths skew long (Beta(4, 2)), positive lengths skew short (Beta(2, 4))
        anchor_lengths = (rng.beta(4.0, 2.0, size=(docs, anchors)) * span_range).astype(np.int64) + min_span[:, None]

        # the grid of anchor cells: starts 0, max, 2·max, ... up to n − max
        num_cells = (n - max_span) // np.maximum(max_span, 1) + 1
        width = int(num_cells.max()) if docs else 0
        cells = np.arange(width, dtype=np.int64)[None, :]
        available = cells < num_cells[:, None]
        rows = np.arange(docs)
        anchor_starts = np.empty((docs, anchors), dtype=np.int64)
        for i in range(anchors):
            remaining = available.sum(axis=1)
            left = anchors - i
            # few cells left: take the first or last one so that the later anchors still find a cell
            scarce = remaining // left < left
            uniform = np.minimum((rng.random(docs) * remaining).astype(np.int64), remaining - 1)
            edge = np.where(rng.random(docs) < 0.5, 0, remaining - 1)
            pick = np.where(scarce, edge, uniform)  # index among the remaining cells
            rank = np.cumsum(available, axis=1) - 1
            chosen = np.argmax(available & (rank == pick[:, None]), axis=1)
            if not available[rows, chosen].all():  # pragma: no cover - impossible for n >= A·max·2
                raise RuntimeError("DeCLUTRSpanSampler ran out of anchor cells; please report this with the settings")
            # remove the picked cell and its nearest remaining neighbours
            available &= ~((rank >= pick[:, None] - 1) & (rank <= pick[:, None] + 1))
            slack = max_span - anchor_lengths[:, i] + 1
            offset = (rng.random(docs) * slack).astype(np.int64)
            anchor_starts[:, i] = chosen * max_span + np.minimum(offset, slack - 1)
        anchor_ends = anchor_starts + anchor_lengths

        shape = (docs, anchors, positives)
        a_start, a_end, a_len = anchor_starts[..., None], anchor_ends[..., None], anchor_lengths[..., None]
        n3, lo3, hi3 = n[:, None, None], min_span[:, None, None], max_span[:, None, None]
        beta = rng.beta(2.0, 4.0, size=shape)
        if self.strategy == "subsuming":
            lengths = (beta * (a_len - lo3)).astype(np.int64) + lo3
            low, high = a_start, a_end - lengths
            starts = low + np.minimum((rng.random(shape) * (high - low + 1)).astype(np.int64), high - low)
        elif self.strategy == "adjacent":
            room = np.maximum(a_start, n3 - a_end)
            longest = np.minimum(hi3, room)
            shortest = np.minimum(lo3, longest)
            lengths = (beta * (longest - shortest)).astype(np.int64) + shortest
            before_ok = a_start - lengths >= 0
            after_ok = a_end + lengths <= n3
            take_before = before_ok & (~after_ok | (rng.random(shape) < 0.5))
            starts = np.where(take_before, a_start - lengths, a_end)
        else:
            lengths = (beta * (hi3 - lo3)).astype(np.int64) + lo3
            low = np.maximum(0, a_start - lengths)
            high = np.minimum(a_end, n3 - lengths)
            starts = low + np.minimum((rng.random(shape) * (high - low + 1)).astype(np.int64), high - low)
        return SpanPositions(n, max_span, min_span, anchor_starts, anchor_lengths, starts, lengths)

    # --------------------------------------------------------------------------------------------
    # Text
    # --------------------------------------------------------------------------------------------

    def _tokenize(self, document: str) -> tuple[list[str] | None, np.ndarray | None, np.ndarray | None]:
        """``(tokens, None, None)`` for a plain callable tokenizer, else ``(None, starts, ends)`` (characters)."""
        tokenizer = self.tokenizer
        if tokenizer is None:
            starts, ends = whitespace_token_offsets(document)
            return None, starts, ends
        if getattr(tokenizer, "is_fast", False):
            encoding = tokenizer(
                document,
                add_special_tokens=False,
                return_offsets_mapping=True,
                return_attention_mask=False,
                truncation=False,
                verbose=False,
            )
            offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
            return None, offsets[:, 0], offsets[:, 1]
        return list(tokenizer(document)), None, None

    def sample_documents(self, documents: Iterable[str], names: Sequence[Any] | None = None) -> list[DeCLUTRSample]:
        """Sample anchors and positives from each document; skipped documents are left out.

        ``names`` (e.g. titles or file paths) are used in the error for a short document; by default a
        document is named by its index.
        """
        documents = list(documents)
        wrong = next((i for i, document in enumerate(documents) if not isinstance(document, str)), None)
        if wrong is not None:
            raise TypeError(
                f"documents must be strings, got {type(documents[wrong]).__name__} at index {wrong}; read files "
                "with read_wikitext_articles or read_sentences first"
            )
        if names is not None and len(names) != len(documents):
            raise ValueError(f"names must have one entry per document ({len(documents)}), got {len(names)}")
        tokenized = [self._tokenize(document) for document in documents]
        lengths = [len(tokens) if tokens is not None else len(starts) for tokens, starts, _ in tokenized]
        if names is None:
            names = [f"#{i} ({_preview(d)})" for i, d in enumerate(documents)]
        kept, positions = self.sample_positions(lengths, names)
        samples = []
        for row, index in enumerate(kept.tolist()):
            tokens, starts, ends = tokenized[index]
            if tokens is not None:

                def cut(start: int, length: int, tokens=tokens) -> str:
                    return " ".join(tokens[start : start + length])
            else:
                # slice the original text: no per-token string objects, whitespace inside a span kept as written
                def cut(start: int, length: int, text=documents[index], starts=starts, ends=ends) -> str:
                    return text[int(starts[start]) : int(ends[start + length - 1])]

            a_starts, a_lengths = positions.anchor_starts[row].tolist(), positions.anchor_lengths[row].tolist()
            p_starts, p_lengths = positions.positive_starts[row].tolist(), positions.positive_lengths[row].tolist()
            samples.append(
                DeCLUTRSample(
                    anchors=[cut(s, n) for s, n in zip(a_starts, a_lengths)],
                    positives=[[cut(s, n) for s, n in zip(starts, lens)] for starts, lens in zip(p_starts, p_lengths)],
                )
            )
        return samples

    def sample(self, document: str, name: Any = None) -> DeCLUTRSample | None:
        """Sample one document (``None`` if it was skipped as too short)."""
        samples = self.sample_documents([document], None if name is None else [name])
        return samples[0] if samples else None

    def columns(
        self, documents: Iterable[str], samples_per_document: int = 1, names: Sequence[Any] | None = None
    ) -> dict[str, list[str]]:
        """The training columns (see :func:`declutr_column_names`) as a dict of lists.

        ``samples_per_document > 1`` draws fresh spans several times per document (the official reader
        draws new spans each epoch; with a static dataset, use this or rebuild the dataset per epoch).
        """
        if (
            isinstance(samples_per_document, bool)
            or not isinstance(samples_per_document, int)
            or samples_per_document < 1
        ):
            raise ValueError(f"samples_per_document must be an integer >= 1, got {samples_per_document!r}")
        documents = list(documents)
        names_ = list(names) if names is not None else None
        columns: dict[str, list[str]] = {name: [] for name in self.column_names}
        for _ in range(samples_per_document):
            for sample in self.sample_documents(documents, names_):
                for name, text in zip(self.column_names, sample.texts()):
                    columns[name].append(text)
        if self.counts["skipped"] or self.counts["shrunk"]:
            logger.info("DeCLUTRSpanSampler: %s", self.report())
        return columns

    def dataset(self, documents: Iterable[str], samples_per_document: int = 1, names: Sequence[Any] | None = None):
        """A ``datasets.Dataset`` with the columns :class:`~st_contrast.losses.DeCLUTRLoss` expects (Trainer)."""
        from datasets import Dataset

        return Dataset.from_dict(self.columns(documents, samples_per_document, names))

    def input_examples(
        self, documents: Iterable[str], samples_per_document: int = 1, names: Sequence[Any] | None = None
    ) -> list:
        """``InputExample``\\ s whose ``texts`` follow the same column order (for ``model.fit``)."""
        from sentence_transformers.readers import InputExample

        columns = self.columns(documents, samples_per_document, names)
        rows = zip(*columns.values())
        return [InputExample(texts=list(texts)) for texts in rows]

    def report(self) -> str:
        """How many documents were sampled, skipped and shrunk so far."""
        c = self.counts
        return (
            f"sampled {c['sampled']}, skipped {c['skipped']}, shrunk {c['shrunk']} document(s) "
            f"(min length without shrinking: {self.min_document_length} tokens)"
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "num_anchors": self.num_anchors,
            "num_positives": self.num_positives,
            "min_span": self.min_span,
            "max_span": self.max_span,
            "strategy": self.strategy,
            "tokenizer": None if self.tokenizer is None else type(self.tokenizer).__name__,
            "on_short": self.on_short,
            "seed": self.seed,
            "unit": self.unit,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config_dict().items())
        return f"{type(self).__name__}({args})"


# every character ``str.split()`` splits on
_WHITESPACE = np.zeros(0x3001, dtype=bool)
_WHITESPACE[[c for c in range(0x3001) if chr(c).isspace()]] = True


def whitespace_token_offsets(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Character ``(starts, ends)`` of the tokens of ``text.split()``, without building the token strings.

    Finding the boundaries with numpy costs about what ``str.split()`` does, but builds no per-token string
    objects, and each span is then one slice of the original text instead of a ``" ".join`` of hundreds of
    tokens.
    """
    if not text:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if text.isascii():
        codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        word = codes > 32
        if (codes < 28).any():  # control characters: only \t\n\v\f\r and \x1c-\x1f are whitespace
            word |= (codes < 9) | ((codes > 13) & (codes < 28))
    else:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        word = ~(_WHITESPACE[np.minimum(codes, 0x3000)] & (codes <= 0x3000))
    # +1 where a token starts, -1 one past where it ends; they alternate, so the non-zeros pair up
    flags = word.view(np.int8)
    edges = np.empty(flags.shape[0] + 1, dtype=np.int8)
    edges[0], edges[-1] = flags[0], -flags[-1]
    np.subtract(flags[1:], flags[:-1], out=edges[1:-1])
    changes = np.flatnonzero(edges)
    return changes[0::2], changes[1::2]


def _preview(text: str, width: int = 40) -> str:
    text = " ".join(text[: width * 2].split())
    return repr(text[:width] + ("..." if len(text) > width else ""))


# ------------------------------------------------------------------------------------------------
# WikiText articles
# ------------------------------------------------------------------------------------------------

_TITLE = re.compile(r"^ = ([^=].*?) = $")
_HEADING = re.compile(r"^ (= )+.*( =)+ $")
_WIKITEXT_JOINS = ((" @-@ ", "-"), (" @.@ ", "."), (" @,@ ", ","))
_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]}%]|'(?:s|t|m|d|re|ve|ll))(?=\s|$)")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detokenize_wikitext(text: str) -> str:
    """Undo WikiText's tokenisation artefacts (``3 @.@ 5`` → ``3.5``, ``word ,`` → ``word,``); ``<unk>`` stays."""
    for old, new in _WIKITEXT_JOINS:
        text = text.replace(old, new)
    text = _SPACE_BEFORE.sub(r"\1", text)
    return _SPACE_AFTER.sub(r"\1", text)


def read_wikitext_articles(
    path: str | os.PathLike,
    detokenize: bool = True,
    with_titles: bool = False,
    encoding: str = "utf-8",
) -> list[str] | list[tuple[str, str]]:
    """Read a WikiText(-2/-103) file as one document per article.

    A line `` = Title = `` starts an article; section headings (`` = = Section = = ``) and blank lines are
    dropped; the article's paragraphs are joined with newlines. Lines before the first title (text of no
    article) and articles without any paragraph are skipped, with a logged count (a warning).
    ``detokenize`` applies :func:`detokenize_wikitext`. With ``with_titles`` the result is a list of
    ``(title, text)``. The file is read with :mod:`st_contrast.data.reading`'s rules (strict UTF-8, a BOM
    dropped, ``\\r\\n`` line ends).

    Args:
        path: the WikiText file.
        detokenize: undo WikiText's tokenisation (``3 @.@ 5`` → ``3.5``).
        with_titles: return ``(title, text)`` pairs.
        encoding: the file's encoding (UTF-8 by default).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: (a ``ValueError``) the file has no `` = Title = `` line (it is not WikiText), no
            article has any text, or a byte is not valid in ``encoding`` (file, line and byte offset).
    """
    articles: list[tuple[str, list[str]]] = []
    orphan_lines = 0
    for _, line in iter_lines(path, encoding):
        title = _TITLE.match(line)
        if title:
            articles.append((title.group(1).strip(), []))
            continue
        if not line.strip() or _HEADING.match(line):
            continue
        if not articles:
            orphan_lines += 1
            continue
        articles[-1][1].append(detokenize_wikitext(line.strip()) if detokenize else line.strip())
    if not articles:
        raise DataFormatError(path, "no ' = Title = ' line: it does not look like a WikiText file")
    result = [(title, "\n".join(paragraphs)) for title, paragraphs in articles if paragraphs]
    if not result:
        raise DataFormatError(path, f"none of the {len(articles)} articles has any text; expected paragraphs")
    log_skipped(
        logger,
        path,
        len(result),
        "articles",
        {"lines before the first title": orphan_lines, "articles without text": len(articles) - len(result)},
    )
    return result if with_titles else [text for _, text in result]


def declutr_dataset(
    documents: Iterable[str],
    sampler: DeCLUTRSpanSampler | None = None,
    samples_per_document: int = 1,
    **sampler_kwargs: Any,
):
    """Shortcut: ``(sampler or DeCLUTRSpanSampler(**sampler_kwargs)).dataset(documents, samples_per_document)``."""
    if sampler is not None and sampler_kwargs:
        raise ValueError("pass either a sampler or sampler keyword arguments, not both")
    sampler = sampler or DeCLUTRSpanSampler(**sampler_kwargs)
    return sampler.dataset(documents, samples_per_document)


def declutr_input_examples(
    documents: Iterable[str],
    sampler: DeCLUTRSpanSampler | None = None,
    samples_per_document: int = 1,
    **sampler_kwargs: Any,
) -> list:
    """Shortcut for :meth:`DeCLUTRSpanSampler.input_examples` (``model.fit``)."""
    if sampler is not None and sampler_kwargs:
        raise ValueError("pass either a sampler or sampler keyword arguments, not both")
    sampler = sampler or DeCLUTRSpanSampler(**sampler_kwargs)
    return sampler.input_examples(documents, samples_per_document)
