"""Where data lives: an explicit path, then ``ST_CONTRAST_DATA``, then a cache folder (with download).

The layout under a data directory is the one of the project's shared data folder, e.g.
``sts/stsbenchmark/sts-test.csv`` or ``unlabeled/wiki_sentences.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA = "ST_CONTRAST_DATA"
ENV_CACHE = "ST_CONTRAST_CACHE"


def cache_dir() -> Path:
    """``$ST_CONTRAST_CACHE``, else ``$XDG_CACHE_HOME/st-contrast``, else ``~/.cache/st-contrast``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "st-contrast"


def data_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for data, in order."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get(ENV_DATA):
        dirs.append(Path(os.environ[ENV_DATA]))
    dirs.append(cache_dir() / "data")
    return dirs


def find_data_file(relative: str, data_dir: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """Find ``relative`` under the data folders; raise a ``FileNotFoundError`` saying where we looked."""
    for folder in data_dirs(data_dir):
        candidate = folder / relative
        if candidate.exists():
            return candidate
    if not required:
        return None
    searched = ", ".join(str(d) for d in data_dirs(data_dir))
    raise FileNotFoundError(
        f"Could not find {relative!r} in any data folder ({searched}). Pass data_dir=..., set {ENV_DATA} to a "
        "folder that holds it, or use the downloader for data sets that have one."
    )
