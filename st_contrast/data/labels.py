"""Label maps: class names ↔ ids, saved with a trained model so evaluation uses the same ids.

``st-contrast train`` writes :data:`LABEL_MAP_FILE` (``label_map.json``) into the output folder of every run
whose data has class labels (labelled text, CLINC150, relation bags)::

    {"label_names": ["greeting", "weather"], "label_column": "label", "text_column": "text", "task": "..."}

``label_names[i]`` names class ``i``. Evaluation (``st-contrast evaluate ood``, ``evaluate re``, the train
command's own evaluation) reads it back with :func:`load_label_map` and maps its files' labels through
:func:`label_ids`, so an unknown label is an error rather than a silently new class.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

LABEL_MAP_FILE = "label_map.json"


def save_label_map(folder: str | os.PathLike, label_names: Sequence[str], **extra: Any) -> Path:
    """Write ``label_map.json`` (``label_names`` in id order plus ``extra`` fields) into ``folder``."""
    names = [str(name) for name in label_names]
    if len(set(names)) != len(names):
        raise ValueError(f"label names must be distinct, got {names}")
    path = Path(folder) / LABEL_MAP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    value = {"label_names": names, **{k: v for k, v in extra.items() if v is not None}}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def load_label_map(path: str | os.PathLike) -> dict[str, Any]:
    """The label map in ``path`` (a ``label_map.json`` file or a folder holding one).

    Raises:
        FileNotFoundError: there is no label map there.
        DataFormatError: the file is not a JSON object with a list of distinct string ``label_names``.
    """
    from st_contrast.data.reading import DataFormatError, read_json

    file = Path(path)
    if file.is_dir():
        file = file / LABEL_MAP_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: no label map (st-contrast train writes {LABEL_MAP_FILE} next to a model trained on labels)"
        )
    value = read_json(file)
    names = value.get("label_names") if isinstance(value, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise DataFormatError(file, "expected a JSON object whose 'label_names' is a list of distinct strings")
    return value


def label_ids(labels: Iterable[Any], label_names: Sequence[str], where: str = "labels") -> list[int]:
    """Each label's id in ``label_names`` (a label may also be given as its id); an unknown one is an error."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = []
    for position, label in enumerate(labels):
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(label_names):
            ids.append(label)
        elif str(label) in index:
            ids.append(index[str(label)])
        else:
            preview = ", ".join(list(label_names)[:10]) + (", ..." if len(label_names) > 10 else "")
            raise ValueError(
                f"{where}[{position}]: unknown label {label!r}; the model was trained on {len(label_names)} labels "
                f"({preview})"
            )
    return ids
