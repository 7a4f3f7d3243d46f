"""CLINC150 (Larson et al., EMNLP 2019): 150 intents plus out-of-scope (OOS) queries, for OOD detection.

The file is the public ``data_full.json`` (keys ``train``/``val``/``test`` with 100/20/30 queries per intent,
and ``oos_train``/``oos_val``/``oos_test`` with 100/100/1,000 out-of-scope queries; items ``[text, intent]``).
It is looked up as ``intent/clinc150_data_full.json`` under the data folders (see
:func:`st_contrast.data.paths.find_data_file`), or downloaded into the cache with ``download=True``.

Every item is checked: a ``[text, intent]`` pair of strings, ``oos`` as the intent of the out-of-scope splits,
and no validation or test intent that the training split lacks; anything else is refused with the split
and index (``train[12]``). Items whose text is empty or whitespace are skipped, as every other reader skips
empty texts, and how many per split is logged (a warning).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from st_contrast.data.reading import DataFormatError, read_json

logger = logging.getLogger(__name__)

CLINC_RELATIVE_PATH = "intent/clinc150_data_full.json"
CLINC_URL = "https://raw.githubusercontent.com/clinc/oos-eval/master/data/data_full.json"
IN_DOMAIN_SPLITS = ("train", "val", "test")
OOS_SPLITS = ("oos_train", "oos_val", "oos_test")
OOS_LABEL = "oos"


@dataclass
class ClincData:
    """CLINC150 with intents mapped to ids ``0..len(label_names)-1`` (sorted by name).

    ``train``/``val``/``test`` hold ``(text, label_id)`` pairs of the kept intents; ``oos_*`` hold the
    out-of-scope texts. Queries of intents left out by ``num_intents`` are in ``unseen_*`` (usable as
    extra OOD data: "unseen intents" in the OOD literature).
    """

    label_names: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    test: list[tuple[str, int]]
    oos_train: list[str]
    oos_val: list[str]
    oos_test: list[str]
    unseen_train: list[str] = field(default_factory=list)
    unseen_val: list[str] = field(default_factory=list)
    unseen_test: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def dataset(self, split: str = "train") -> Any:
        """A ``datasets.Dataset`` with columns ``sentence`` and ``label`` (class id) for the Trainer."""
        from datasets import Dataset

        examples = self._split(split)
        return Dataset.from_dict({"sentence": [t for t, _ in examples], "label": [y for _, y in examples]})

    def input_examples(self, split: str = "train") -> list[Any]:
        """``InputExample(texts=[text], label=id)`` for ``model.fit`` with a DataLoader."""
        from sentence_transformers import InputExample

        return [InputExample(texts=[text], label=label) for text, label in self._split(split)]

    def _split(self, split: str) -> list[tuple[str, int]]:
        if split not in IN_DOMAIN_SPLITS:
            raise ValueError(f"split must be one of {IN_DOMAIN_SPLITS} (labelled in-domain data), got {split!r}")
        return getattr(self, split)


def load_clinc150(
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    num_intents: int | None = None,
    intents: Sequence[str] | None = None,
    max_per_intent: int | None = None,
    seed: int = 0,
    download: bool = False,
    encoding: str = "utf-8",
) -> ClincData:
    """Read CLINC150 ``data_full.json`` into a :class:`ClincData`.

    Args:
        path: the JSON file; by default ``intent/clinc150_data_full.json`` under the data folders.
        data_dir: a data folder to search first.
        num_intents: keep a random subset of this many intents (chosen with ``seed``), e.g. to budget CPU.
        intents: keep exactly these intents (names); exclusive with ``num_intents``.
        max_per_intent: keep at most this many *training* queries per intent (the first ones in file order);
            validation and test splits are kept whole.
        seed: seed of the intent subset.
        download: when the file is not found locally, download it from the public repository
            (``CLINC_URL``) into the cache folder.
        encoding: the file's encoding (UTF-8 by default; a BOM is dropped).

    Returns:
        The kept intents (sorted names → ids), their labelled splits, and the out-of-scope texts. Items with
        an empty text are skipped (a logged count per split).

    Raises:
        FileNotFoundError: the file is nowhere (the message says how to get it).
        DataFormatError: (a ``ValueError``) the file is not valid JSON (file, line and column), lacks a split,
            or holds an item that is not a ``[text, intent]`` pair of strings, an out-of-scope item whose intent
            is not ``oos``, or a validation/test intent the training split lacks (file and ``split[index]``).
        ValueError: contradictory or out-of-range arguments.
    """
    file = _locate(path, data_dir, download)
    raw = read_json(file, encoding)
    if not isinstance(raw, dict):
        raise DataFormatError(
            file, f"expected a JSON object with the splits {IN_DOMAIN_SPLITS + OOS_SPLITS}, got {type(raw).__name__}"
        )
    missing = [key for key in IN_DOMAIN_SPLITS + OOS_SPLITS if key not in raw]
    if missing:
        raise DataFormatError(file, f"this is not CLINC150 data_full.json: it lacks the key(s) {missing}")
    ignored = sorted(set(raw) - set(IN_DOMAIN_SPLITS + OOS_SPLITS))
    if ignored:
        logger.warning(f"{file}: ignored the key(s) {ignored}; CLINC150's splits are {IN_DOMAIN_SPLITS + OOS_SPLITS}.")
    splits, empty = _checked_splits(file, raw)
    train_intents = {intent for _, (_, intent) in splits["train"]}
    for split in ("val", "test"):
        for index, (_, intent) in splits[split]:
            if intent not in train_intents:
                raise DataFormatError(
                    file,
                    f"the intent {intent!r} does not occur in train; expected the same intents in every split",
                    where=f"{split}[{index}]",
                )
    all_intents = sorted(train_intents - {OOS_LABEL})
    if intents is not None and num_intents is not None:
        raise ValueError("give either intents (names) or num_intents (a random subset), not both")
    if intents is not None:
        unknown = sorted(set(intents) - set(all_intents))
        if unknown:
            raise ValueError(f"unknown CLINC150 intent(s) {unknown[:5]}; the file has {len(all_intents)} intents")
        kept = sorted(set(intents))
    elif num_intents is not None:
        if not 2 <= num_intents <= len(all_intents):
            raise ValueError(f"num_intents must be between 2 and {len(all_intents)}, got {num_intents}")
        kept = sorted(random.Random(seed).sample(all_intents, num_intents))
    else:
        kept = all_intents
    if max_per_intent is not None and max_per_intent < 1:
        raise ValueError(f"max_per_intent must be >= 1, got {max_per_intent}")
    ids = {name: i for i, name in enumerate(kept)}
    data = ClincData(label_names=kept, train=[], val=[], test=[], oos_train=[], oos_val=[], oos_test=[])
    for split in IN_DOMAIN_SPLITS:
        seen: dict[str, int] = {}
        for _, (text, intent) in splits[split]:
            if intent == OOS_LABEL:
                getattr(data, f"oos_{split}").append(text)
            elif intent in ids:
                if split == "train" and max_per_intent is not None:
                    seen[intent] = seen.get(intent, 0) + 1
                    if seen[intent] > max_per_intent:
                        continue
                getattr(data, split).append((text, ids[intent]))
            else:
                getattr(data, f"unseen_{split}").append(text)
    for split in OOS_SPLITS:
        getattr(data, split).extend(text for _, (text, _) in splits[split])
    if any(empty.values()):
        counts = ", ".join(f"{split}: {count}" for split, count in empty.items() if count)
        logger.warning(f"{file}: skipped {sum(empty.values())} item(s) with an empty text ({counts}).")
    return data


def _checked_splits(file: Path, raw: dict[str, Any]) -> tuple[dict[str, list[tuple[int, tuple[str, str]]]], dict]:
    """Each split's ``(index, (text, intent))`` items, validated; empty texts left out and counted per split."""
    splits: dict[str, list[tuple[int, tuple[str, str]]]] = {}
    empty: dict[str, int] = {}
    for split in IN_DOMAIN_SPLITS + OOS_SPLITS:
        items = raw[split]
        if not isinstance(items, list):
            raise DataFormatError(
                file, f"expected a list of [text, intent] items, got {type(items).__name__}", where=split
            )
        kept: list[tuple[int, tuple[str, str]]] = []
        empty[split] = 0
        for index, item in enumerate(items):
            where = f"{split}[{index}]"
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
                raise DataFormatError(
                    file, f"expected a [text, intent] pair of strings, got {str(item)[:80]!r}", where=where
                )
            text, intent = item
            if not intent.strip():
                raise DataFormatError(file, "the intent is empty; expected an intent name (or 'oos')", where=where)
            if split in OOS_SPLITS and intent != OOS_LABEL:
                raise DataFormatError(
                    file, f"the intent {intent!r} in an out-of-scope split; expected {OOS_LABEL!r}", where=where
                )
            if not text.strip():
                empty[split] += 1
                continue
            kept.append((index, (text, intent)))
        splits[split] = kept
    return splits, empty


def _locate(path: str | os.PathLike | None, data_dir: str | os.PathLike | None, download: bool) -> Path:
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"CLINC150 file {str(file)!r} does not exist")
        return file
    from st_contrast.data.paths import cache_dir, find_data_file

    found = find_data_file(CLINC_RELATIVE_PATH, data_dir, required=False)
    if found is not None:
        return found
    target = cache_dir() / "data" / CLINC_RELATIVE_PATH
    if not download:
        raise FileNotFoundError(
            f"CLINC150 ({CLINC_RELATIVE_PATH}) was not found in the data folders. Pass path=... or data_dir=..., set "
            f"ST_CONTRAST_DATA, or call load_clinc150(download=True) to fetch {CLINC_URL} into {target}."
        )
    from st_contrast.data.download import download_file

    return download_file(CLINC_URL, target, validate=read_json)  # an error page never lands in the cache
