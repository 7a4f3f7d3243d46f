"""Relation extraction data: readers, entity marking, bags, pseudo-bags and held-out splits, CIL rows.

Two sources, read from the shared data folder (``relation/`` under ``ST_CONTRAST_DATA``) or a given path:

* **FewRel 2.0's NYT set** (``fewrel_val_nyt.json``): distantly supervised New York Times sentences,
  25 relations × 100, with head and tail token positions. Every entity pair occurs once, so its natural
  bags (sentences grouped by entity pair) hold one sentence each.
* **SemEval-2010 Task 8** (``semeval2010_task8.tar.gz``, read from the tarball as published): 8,000
  training and 2,717 test sentences with ``<e1>``/``<e2>`` tags and 19 directed labels (``Other`` is the
  "no relation" class).

A :class:`RelationInstance` is a tokenized sentence with its head and tail spans. :func:`mark_entities`
turns it into text with entity markers (``[E1] head [/E1] ... [E2] tail [/E2]``, the tokens that
:func:`st_contrast.modules.entity_pooling.build_relation_encoder` adds to the tokenizer).

Bags: :func:`group_bags` groups sentences by (head, tail, relation) as in multi-instance learning;
:func:`pseudo_bags` groups ``k`` sentences of the same relation, the grouping to train with when natural
bags hold one sentence; :func:`split_bags` holds out whole bags. :func:`cil_dataset` / :func:`cil_examples`
produce the columns :class:`st_contrast.losses.CILLoss` expects: one row per bag,
``sentence_1 .. sentence_k, augmented, label``.
"""

from __future__ import annotations

import os
import random
import re
import tarfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from st_contrast.data.paths import find_data_file
from st_contrast.data.reading import DataFormatError, decode_bytes, read_json, read_text, split_lines

FEWREL_NYT_FILE = "relation/fewrel_val_nyt.json"
SEMEVAL_FILE = "relation/semeval2010_task8.tar.gz"
SEMEVAL_MEMBERS = {
    "train": "SemEval2010_task8_all_data/SemEval2010_task8_training/TRAIN_FILE.TXT",
    "test": "SemEval2010_task8_all_data/SemEval2010_task8_testing_keys/TEST_FILE_FULL.TXT",
}
#: SemEval-2010 Task 8's "no relation" label
SEMEVAL_NA = "Other"


@dataclass(frozen=True)
class RelationInstance:
    """One sentence with a head and a tail entity.

    Attributes:
        tokens: the sentence's words.
        head: ``(start, end)`` token span of the head mention (end exclusive).
        tail: ``(start, end)`` token span of the tail mention (end exclusive).
        relation: the (distant or gold) relation label.
        head_id: identity of the head entity (a Wikidata id for FewRel, the lower-cased mention otherwise).
        tail_id: identity of the tail entity.
        uid: the source's id for the sentence.
    """

    tokens: tuple[str, ...]
    head: tuple[int, int]
    tail: tuple[int, int]
    relation: str
    head_id: str = ""
    tail_id: str = ""
    uid: str = ""

    def __post_init__(self) -> None:
        n = len(self.tokens)
        for name, (start, end) in (("head", self.head), ("tail", self.tail)):
            if not 0 <= start < end <= n:
                raise ValueError(
                    f"RelationInstance {self.uid or ''}: {name} span {(start, end)} is not a non-empty span of the "
                    f"{n} tokens"
                )
        if self.head[0] < self.tail[1] and self.tail[0] < self.head[1]:
            raise ValueError(f"RelationInstance {self.uid or ''}: head {self.head} and tail {self.tail} overlap")

    @property
    def head_text(self) -> str:
        return " ".join(self.tokens[self.head[0] : self.head[1]])

    @property
    def tail_text(self) -> str:
        return " ".join(self.tokens[self.tail[0] : self.tail[1]])

    def entity_positions(self) -> set[int]:
        """Token indices inside the head or the tail mention."""
        return set(range(*self.head)) | set(range(*self.tail))


@dataclass
class Bag:
    """Sentences that share a key (an entity pair, or a pseudo-bag id) and a relation label."""

    key: tuple[str, ...]
    relation: str
    instances: list[RelationInstance] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.instances)


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def read_fewrel_nyt(
    path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None, encoding: str = "utf-8"
) -> list[RelationInstance]:
    """FewRel 2.0's NYT domain set: ``{relation: [{tokens, h: [name, id, [[positions]]], t: ...}]}``.

    The first mention of each entity is used (its positions, consecutive token indices, give the span; later
    mentions are ignored). Relations keep FewRel's Wikidata property ids (``P413``, ...).

    Raises:
        FileNotFoundError: the file is nowhere.
        DataFormatError: (a ``ValueError``) the file is not valid JSON (file, line and column), or an item is
            malformed: no token list of strings, an entity without ``[name, id, [[positions]]]``, positions
            that are not consecutive token indices, or spans outside the sentence or overlapping (the
            message names the file and the item, e.g. ``P413[7]``).
    """
    path = path or find_data_file(FEWREL_NYT_FILE, data_dir)
    data = read_json(path, encoding)
    if not isinstance(data, dict):
        raise DataFormatError(
            path, f"expected a JSON object mapping relations to lists of sentences, got {type(data).__name__}"
        )
    instances = []
    for relation, items in data.items():
        if not isinstance(items, list):
            raise DataFormatError(path, f"expected a list of sentences, got {type(items).__name__}", where=relation)
        for index, item in enumerate(items):
            try:
                instances.append(_fewrel_instance(item, relation, index))
            except (KeyError, IndexError, TypeError, ValueError) as error:
                detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
                raise DataFormatError(
                    path,
                    f"malformed FewRel item ({detail}); expected {{tokens: [...], h: [name, id, [[positions]]], "
                    "t: [...]}",
                    where=f"{relation}[{index}]",
                ) from None
    return instances


def _fewrel_instance(item: Any, relation: str, index: int) -> RelationInstance:
    if not isinstance(item, dict):
        raise TypeError(f"the item is a {type(item).__name__}, not an object")
    tokens = item["tokens"]
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise TypeError("tokens must be a list of strings")
    entities = []
    for key in ("h", "t"):
        entity = item[key]
        if not isinstance(entity, list) or len(entity) < 3:
            raise TypeError(f"{key!r} must be [name, id, [[positions], ...]]")
        entities.append((str(entity[1]), _fewrel_span(entity[2], key)))
    (head_id, head), (tail_id, tail) = entities
    return RelationInstance(tuple(tokens), head, tail, relation, head_id, tail_id, f"{relation}/{index}")


def _fewrel_span(mentions: Sequence[Sequence[int]], key: str = "h") -> tuple[int, int]:
    if not isinstance(mentions, list) or not mentions or not isinstance(mentions[0], list) or not mentions[0]:
        raise TypeError(f"{key!r} has no mention positions")
    positions = list(mentions[0])
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in positions):
        raise TypeError(f"{key!r} positions must be token indices (integers), got {positions}")
    start = min(positions)
    if sorted(positions) != list(range(start, start + len(positions))):
        raise ValueError(f"{key!r} positions {positions} are not consecutive token indices")
    return start, start + len(positions)


_TAG = re.compile(r"(</?e[12]>)")
_WORD = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")
_SENTENCE_LINE = re.compile(r"(\d+)\t(.*)")
_LABEL_LINE = re.compile(r"Other|[A-Za-z]+-[A-Za-z]+\((?:e1,e2|e2,e1)\)")


def read_semeval2010(
    split: Literal["train", "test"] = "train",
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    encoding: str = "utf-8",
) -> list[RelationInstance]:
    """SemEval-2010 Task 8 (official release), read straight from its tarball (or from an extracted file).

    ``path`` may be the ``.tar.gz`` (the split's member is read) or the split's own text file
    (``TRAIN_FILE.TXT`` or ``TEST_FILE_FULL.TXT``; the unlabelled ``TEST_FILE.txt`` is refused). The label
    keeps its direction (``Component-Whole(e2,e1)``); ``e1`` is always the head. Words are split on
    whitespace and punctuation; entities are the words between the tags. The format is checked line by line
    (see :func:`parse_semeval2010`); errors name the file (``archive!member`` inside the tarball) and line.
    """
    if split not in SEMEVAL_MEMBERS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = path or find_data_file(SEMEVAL_FILE, data_dir)
    if str(path).endswith((".tar.gz", ".tgz", ".tar")):
        member_name = SEMEVAL_MEMBERS[split]
        try:
            with tarfile.open(path) as archive:
                try:
                    member = archive.extractfile(member_name)
                except KeyError:
                    member = None
                if member is None:
                    raise DataFormatError(
                        path, f"the archive has no file {member_name!r}; expected the official SemEval-2010 release"
                    )
                data = member.read()
        except tarfile.TarError as error:
            raise DataFormatError(path, f"cannot read it as a tar archive ({error}); expected a .tar.gz") from None
        name = f"{path}!{member_name}"
        text = decode_bytes(data, name, encoding)
    else:
        name = str(path)
        text = read_text(path, encoding)
    return parse_semeval2010(text, name)


def parse_semeval2010(text: str, name: str = "SemEval-2010") -> list[RelationInstance]:
    """Parse SemEval-2010 Task 8's 4-line format (``id<TAB>"sentence"``, label, comment, blank).

    Every example is a sentence line (``ID<TAB>"... <e1>x</e1> ... <e2>y</e2> ..."``; one pair of enclosing
    quotes is removed, quotes inside the sentence are kept), a label line (``Other`` or
    ``Relation(e1,e2)``/``Relation(e2,e1)``), then ``Comment...`` lines up to a blank line. Blank lines
    between examples are allowed; any other line is a :class:`~st_contrast.data.reading.DataFormatError`
    naming ``name`` and the line (so a missing label line is never taken from the next sentence).

    Args:
        text: the file's text.
        name: the file's name, for error messages.
    """
    lines = split_lines(text)
    instances = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        match = _SENTENCE_LINE.fullmatch(line)
        if match is None:
            raise DataFormatError(name, f"expected a sentence line 'ID<TAB>\"sentence\"', got {line[:60]!r}", i + 1)
        uid, sentence = match.group(1), match.group(2).strip()
        if len(sentence) >= 2 and sentence[0] == sentence[-1] == '"':
            sentence = sentence[1:-1]
        label = lines[i + 1].strip() if i + 1 < len(lines) else None
        if label is None or not _LABEL_LINE.fullmatch(label):
            found = "the end of the file" if label is None else repr(label[:60]) if label else "a blank line"
            hint = ""
            if label and _SENTENCE_LINE.fullmatch(label):
                hint = " (is this the unlabelled TEST_FILE.txt? read TEST_FILE_FULL.TXT, which has the labels)"
            raise DataFormatError(
                name,
                f"sentence {uid} is followed by {found}, not a relation label such as 'Cause-Effect(e1,e2)' or "
                f"'Other'{hint}",
                i + 2,
            )
        try:
            instances.append(_parse_tagged(sentence, label, uid))
        except ValueError as error:
            raise DataFormatError(name, str(error), i + 1) from None
        i += 2
        while i < len(lines) and lines[i].strip():
            if not lines[i].lstrip().startswith("Comment"):
                raise DataFormatError(
                    name,
                    f"expected a 'Comment:' line or a blank line after the label of sentence {uid}, got "
                    f"{lines[i].strip()[:60]!r}",
                    i + 1,
                )
            i += 1
    if not instances:
        raise DataFormatError(name, "no example; expected SemEval-2010 Task 8's 4-line examples")
    return instances


def _parse_tagged(sentence: str, relation: str, uid: str) -> RelationInstance:
    tokens: list[str] = []
    spans: dict[str, list[int]] = {}
    for piece in _TAG.split(sentence):
        if _TAG.fullmatch(piece):
            name = piece.strip("</>")
            spans.setdefault(name, []).append(len(tokens))
        else:
            tokens.extend(_WORD.findall(piece))
    if len(spans.get("e1", [])) != 2 or len(spans.get("e2", [])) != 2:
        raise ValueError(f"SemEval-2010 sentence {uid}: expected one <e1>...</e1> and one <e2>...</e2>")
    head, tail = tuple(spans["e1"]), tuple(spans["e2"])
    instance_tokens = tuple(tokens)
    head_id = " ".join(instance_tokens[head[0] : head[1]]).lower()
    tail_id = " ".join(instance_tokens[tail[0] : tail[1]]).lower()
    return RelationInstance(instance_tokens, head, tail, relation, head_id, tail_id, uid)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Entity markers
# ---------------------------------------------------------------------------------------------


def mark_entities(
    instance: RelationInstance,
    markers: Sequence[str] | None = None,
    max_words: int | None = None,
) -> str:
    """The sentence as text with entity markers: ``... [E1] head [/E1] ... [E2] tail [/E2] ...``.

    Args:
        instance: the sentence.
        markers: head start, head end, tail start, tail end (default: ``ENTITY_MARKERS``).
        max_words: when set, context words far from the entities are cropped so that at most
            ``max_words`` words remain (the entities are always kept; the words between them too unless they
            alone exceed ``max_words``, when the middle is cut), so the markers survive the encoder's truncation.
    """
    if markers is None:
        from st_contrast.modules.entity_pooling import ENTITY_MARKERS

        markers = ENTITY_MARKERS
    tokens = list(instance.tokens)
    kept = _kept_positions(instance, max_words)
    out: list[str] = []
    for i in range(len(tokens) + 1):
        # an end marker and a start marker can meet at one index; end markers go first
        for position, marker in ((instance.head[1], markers[1]), (instance.tail[1], markers[3])):
            if position == i:
                out.append(marker)
        for position, marker in ((instance.head[0], markers[0]), (instance.tail[0], markers[2])):
            if position == i:
                out.append(marker)
        if i < len(tokens) and i in kept:
            out.append(tokens[i])
    return " ".join(out)


def _kept_positions(instance: RelationInstance, max_words: int | None) -> set[int] | range:
    """Word positions :func:`mark_entities` keeps: all, a window around the entities, or two windows."""
    n = len(instance.tokens)
    if max_words is None or n <= max_words:
        return range(n)
    if max_words < 1:
        raise ValueError(f"max_words must be positive, got {max_words}")
    core_start = min(instance.head[0], instance.tail[0])
    core_end = max(instance.head[1], instance.tail[1])
    if core_end - core_start <= max_words:
        budget = max_words - (core_end - core_start)
        left = min(core_start, budget // 2)
        right = min(n - core_end, budget - left)
        left = min(core_start, budget - right)
        return range(core_start - left, core_end + right)
    # the entities are far apart: keep each with the words on the side facing the other
    first, second = sorted([instance.head, instance.tail])
    budget = max(0, max_words - (first[1] - first[0]) - (second[1] - second[0]))
    after_first = budget // 2
    before_second = budget - after_first
    kept = set(range(first[0], min(first[1] + after_first, second[0])))
    kept |= set(range(max(second[0] - before_second, first[1]), second[1]))
    return kept


# ---------------------------------------------------------------------------------------------
# Bags
# ---------------------------------------------------------------------------------------------


def group_bags(instances: Iterable[RelationInstance]) -> list[Bag]:
    """Multi-instance bags: sentences grouped by (head entity, tail entity, relation), in first-seen order."""
    bags: dict[tuple[str, ...], Bag] = {}
    for instance in instances:
        key = (
            instance.head_id or instance.head_text.lower(),
            instance.tail_id or instance.tail_text.lower(),
            instance.relation,
        )
        bag = bags.get(key)
        if bag is None:
            bag = bags[key] = Bag(key, instance.relation)
        bag.instances.append(instance)
    return list(bags.values())


def pseudo_bags(instances: Iterable[RelationInstance] | Iterable[Bag], size: int, seed: int = 0) -> list[Bag]:
    """Bags of ``size`` sentences of the same relation (the last bag of a relation may be smaller).

    Used to train the bag-level objective when the natural (entity-pair) bags hold one sentence, as in
    FewRel's NYT set. Sentences are shuffled per relation with ``seed``; bags come out relation by relation
    in sorted relation order, then shuffled together with the same seed.
    """
    if int(size) < 1:
        raise ValueError(f"pseudo-bag size must be >= 1, got {size}")
    by_relation: dict[str, list[RelationInstance]] = defaultdict(list)
    for item in instances:
        members = item.instances if isinstance(item, Bag) else [item]
        for instance in members:
            by_relation[instance.relation].append(instance)
    rng = random.Random(seed)
    bags = []
    for relation in sorted(by_relation):
        members = list(by_relation[relation])
        rng.shuffle(members)
        for index in range(0, len(members), size):
            bags.append(Bag(("pseudo", relation, str(index // size)), relation, members[index : index + size]))
    rng.shuffle(bags)
    return bags


def split_bags(bags: Sequence[Bag], test_fraction: float = 0.2, seed: int = 0) -> tuple[list[Bag], list[Bag]]:
    """Hold out whole bags: ``(train, test)``, stratified by relation, seeded.

    Each relation with at least two bags keeps at least one in each part, so every held-out relation was
    seen in training.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    by_relation: dict[str, list[Bag]] = defaultdict(list)
    for bag in bags:
        by_relation[bag.relation].append(bag)
    rng = random.Random(seed)
    train, test = [], []
    for relation in sorted(by_relation):
        members = list(by_relation[relation])
        rng.shuffle(members)
        n_test = int(round(len(members) * test_fraction))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        else:
            n_test = 0
        test.extend(members[:n_test])
        train.extend(members[n_test:])
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def relation_ids(items: Iterable[RelationInstance] | Iterable[Bag], na: str | None = None) -> dict[str, int]:
    """A relation → id mapping (sorted names; the "no relation" label ``na``, when given, gets id 0)."""
    names = {item.relation for item in items}
    ordered = sorted(names - {na}) if na is not None else sorted(names)
    if na is not None:
        ordered = [na, *ordered]
    return {name: index for index, name in enumerate(ordered)}


def relation_id(relation_to_id: dict[str, int], relation: str) -> int:
    try:
        return relation_to_id[relation]
    except KeyError:
        known = ", ".join(sorted(relation_to_id)[:10])
        raise ValueError(
            f"unknown relation {relation!r}: it is not in the relation-to-id mapping ({len(relation_to_id)} "
            f"relations: {known}{', ...' if len(relation_to_id) > 10 else ''}). Build the mapping with "
            "relation_ids(...) over the training and test data together."
        ) from None


# ---------------------------------------------------------------------------------------------
# CIL rows: one row per bag
# ---------------------------------------------------------------------------------------------


def cil_rows(
    bags: Sequence[Bag],
    relation_to_id: dict[str, int],
    bag_size: int,
    augment: Callable[[RelationInstance, int], RelationInstance] | None = None,
    seed: int = 0,
    max_words: int | None = 64,
    markers: Sequence[str] | None = None,
    augment_all: bool = False,
) -> list[dict[str, Any]]:
    """Rows ``{sentence_1, ..., sentence_k, augmented, label}`` for :class:`st_contrast.losses.CILLoss`.

    Each bag becomes one row of exactly ``bag_size`` marked sentences. One instance, drawn with ``seed``,
    is the bag's *anchor*: it comes first (``sentence_1``) and ``augmented`` is its positive view
    (``augment(anchor, row_seed)``, e.g. a :class:`st_contrast.views.TfidfSubstitution`). Bags larger than
    ``bag_size`` are subsampled; smaller bags are filled by repeating their sentences in order (a repeated
    sentence counts again in the selective attention, a documented approximation). Without ``augment`` the
    ``augmented`` column repeats the anchor (the positive then differs only by dropout).

    ``augment_all=True`` gives every sentence its own view, ``augmented_1 .. augmented_k`` in place of
    ``augmented`` (for ``CILLoss(anchors="all")``, the official code's every-instance anchors); the first
    view is the one ``augment_all=False`` writes.
    """
    if int(bag_size) < 1:
        raise ValueError(f"bag_size must be >= 1, got {bag_size}")
    rng = random.Random(seed)
    rows = []
    for index, bag in enumerate(bags):
        if not bag.instances:
            raise ValueError(f"bag {index} ({bag.key}) has no sentences")
        label = relation_id(relation_to_id, bag.relation)
        members = list(bag.instances)
        anchor_index = rng.randrange(len(members))
        members = members[anchor_index:] + members[:anchor_index]
        if len(members) > bag_size:
            members = [members[0], *rng.sample(members[1:], bag_size - 1)]
        filled = [members[i % len(members)] for i in range(bag_size)]
        anchor = filled[0]
        positive = augment(anchor, seed * 1_000_003 + index) if augment is not None else anchor
        row: dict[str, Any] = {
            f"sentence_{i + 1}": mark_entities(instance, markers, max_words) for i, instance in enumerate(filled)
        }
        if augment_all:
            for i, instance in enumerate(filled):
                view = positive if i == 0 else instance
                if i > 0 and augment is not None:
                    view = augment(instance, (seed * 1_000_003 + index) * 1_009 + i)
                row[f"augmented_{i + 1}"] = mark_entities(view, markers, max_words)
        else:
            row["augmented"] = mark_entities(positive, markers, max_words)
        row["label"] = label
        rows.append(row)
    return rows


def cil_dataset(
    bags: Sequence[Bag],
    relation_to_id: dict[str, int],
    bag_size: int,
    augment: Callable[[RelationInstance, int], RelationInstance] | None = None,
    seed: int = 0,
    max_words: int | None = 64,
    markers: Sequence[str] | None = None,
    augment_all: bool = False,
):
    """:func:`cil_rows` as a ``datasets.Dataset`` (for ``SentenceTransformerTrainer``)."""
    from datasets import Dataset

    rows = cil_rows(bags, relation_to_id, bag_size, augment, seed, max_words, markers, augment_all)
    views = [f"augmented_{i + 1}" for i in range(bag_size)] if augment_all else ["augmented"]
    columns = list(rows[0]) if rows else [*(f"sentence_{i + 1}" for i in range(bag_size)), *views, "label"]
    return Dataset.from_dict({column: [row[column] for row in rows] for column in columns})


def cil_examples(
    bags: Sequence[Bag],
    relation_to_id: dict[str, int],
    bag_size: int,
    augment: Callable[[RelationInstance, int], RelationInstance] | None = None,
    seed: int = 0,
    max_words: int | None = 64,
    markers: Sequence[str] | None = None,
    augment_all: bool = False,
) -> list:
    """:func:`cil_rows` as ``InputExample``s (for ``model.fit``).

    ``model.fit`` drops the label column when every label is 0, so a data set of a single relation
    with id 0 reaches the loss without labels (``CILLoss`` then raises); use at least two relations.
    """
    from sentence_transformers.readers import InputExample

    examples = []
    for row in cil_rows(bags, relation_to_id, bag_size, augment, seed, max_words, markers, augment_all):
        label = row.pop("label")
        examples.append(InputExample(texts=list(row.values()), label=label))
    return examples


def bag_texts(
    bags: Sequence[Bag], max_words: int | None = 64, markers: Sequence[str] | None = None
) -> list[list[str]]:
    """The marked sentences of each bag (for evaluation)."""
    return [[mark_entities(instance, markers, max_words) for instance in bag.instances] for bag in bags]
