"""Downloads for users with a network: public data sets fetched once into the cache, with a progress bar.

Nothing here runs unless asked (``download=True``, ``ST_CONTRAST_DOWNLOAD=1`` or a direct call). Files are
written to a temporary name in the destination folder and renamed into place, so an interrupted download
never leaves a truncated file where a loader would find it.
"""

from __future__ import annotations

import logging
import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.request import Request, urlopen

from st_contrast.data import paths
from st_contrast.data.reading import DataFormatError

logger = logging.getLogger(__name__)

#: The original STS Benchmark release (Cer et al. 2017), as linked from the STS wiki.
STSB_URL = "http://ixa2.si.ehu.es/stswiki/images/4/48/Stsbenchmark.tar.gz"
STSB_FILES: tuple[str, ...] = ("sts-train.csv", "sts-dev.csv", "sts-test.csv")
STSB_OPTIONAL_FILES: tuple[str, ...] = ("LICENSE.txt", "readme.txt")
STSB_RELATIVE_DIR = "sts/stsbenchmark"


def download_file(
    url: str,
    destination: str | os.PathLike,
    timeout: float = 60.0,
    show_progress_bar: bool = True,
    chunk_size: int = 1 << 16,
    validate: Callable[[Path], Any] | None = None,
) -> Path:
    """Download ``url`` to ``destination`` with a tqdm progress bar; atomic (temporary file, then rename).

    Args:
        url: an ``http(s)://`` (or ``file://``) address.
        destination: the file to create or replace; its folder is created.
        timeout: seconds to wait for the server on connect and on each read.
        show_progress_bar: show a tqdm bar (bytes; the total comes from ``Content-Length`` when sent).
        chunk_size: bytes read at a time.
        validate: called on the downloaded (temporary) file before it is renamed into place; when it raises,
            nothing is left at ``destination`` (e.g. an HTML error page instead of the data). A
            :class:`~st_contrast.data.reading.DataFormatError` it raises is re-raised naming ``url``.

    Returns:
        ``destination`` as a :class:`~pathlib.Path`.
    """
    from tqdm.auto import tqdm

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urlopen(Request(url, headers={"User-Agent": "st-contrast"}), timeout=timeout) as response,
        ):
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=destination.name, disable=not show_progress_bar
            ) as bar:
                while chunk := response.read(chunk_size):
                    out.write(chunk)
                    bar.update(len(chunk))
        if total is not None and os.path.getsize(temporary) != total:
            raise OSError(f"Download of {url} was cut short: got {os.path.getsize(temporary)} of {total} bytes.")
        if validate is not None:
            _validated(validate, Path(temporary), f"{url} (downloaded)")
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


def download_sts_benchmark(
    cache_dir: str | os.PathLike | None = None,
    url: str = STSB_URL,
    force: bool = False,
    timeout: float = 60.0,
    show_progress_bar: bool = True,
) -> Path:
    """Download the original STS Benchmark release and extract its three splits into the cache.

    The archive (``Stsbenchmark.tar.gz``) is saved under ``<cache>/downloads/``, and
    ``stsbenchmark/sts-{train,dev,test}.csv`` (plus its licence and readme when present) are extracted to
    ``<cache>/data/sts/stsbenchmark/``, where :func:`st_contrast.evaluation.load_sts_benchmark` finds them.
    Each file is written under a temporary name and renamed into place. Only those members are read from
    the archive; nothing else is extracted.

    Args:
        cache_dir: the cache folder; default :func:`st_contrast.data.cache_dir` (``$ST_CONTRAST_CACHE``, else
            ``~/.cache/st-contrast``). Loaders only look in the default one, so pass a folder here only
            if you also point ``ST_CONTRAST_CACHE`` (or ``data_dir=<folder>/data``) at it.
        url: where to fetch the archive from (a mirror, or a local server).
        force: download and extract again even if the three files are already there.
        timeout: seconds to wait for the server on connect and on each read.
        show_progress_bar: show a tqdm progress bar.

    Returns:
        The folder holding ``sts-train.csv``, ``sts-dev.csv`` and ``sts-test.csv``.

    Raises:
        ValueError: the archive lacks one of the three files or holds one twice.
        DataFormatError: a split is not a valid STS-B file (checked with
            :func:`st_contrast.evaluation.read_sts_file` before it is renamed into place, so a malformed split
            never reaches the cache); the message names ``archive!member`` and the line.
        OSError: the download failed (e.g. ``urllib.error.URLError``) or was cut short.
    """
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    target = root / "data" / STSB_RELATIVE_DIR
    if not force and all((target / name).is_file() for name in STSB_FILES):
        return target
    archive = root / "downloads" / (PurePosixPath(url.split("?", 1)[0]).name or "Stsbenchmark.tar.gz")
    logger.info(f"Downloading the STS Benchmark from {url} to {archive}")
    download_file(url, archive, timeout=timeout, show_progress_bar=show_progress_bar)

    from st_contrast.evaluation.sts import read_sts_file

    wanted = set(STSB_FILES) | set(STSB_OPTIONAL_FILES)
    found: set[str] = set()
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            member_path = PurePosixPath(member.name)
            # read by name, never extract by the archive's own paths (no path traversal)
            if not member.isfile() or member_path.name not in wanted or member_path.parent.name != "stsbenchmark":
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            if member_path.name in found:
                raise ValueError(
                    f"The archive from {url} holds {member_path.name} twice; expected the original STS Benchmark "
                    "release, with one file per split."
                )
            handle, temporary = tempfile.mkstemp(dir=target, prefix=f".{member_path.name}.", suffix=".part")
            try:
                with os.fdopen(handle, "wb") as out, source:
                    while chunk := source.read(1 << 16):
                        out.write(chunk)
                if member_path.name in STSB_FILES:  # a malformed split never reaches the cache
                    _validated(read_sts_file, Path(temporary), f"{archive}!{member.name}")
                os.replace(temporary, target / member_path.name)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            found.add(member_path.name)
    missing = [name for name in STSB_FILES if name not in found]
    if missing:
        raise ValueError(
            f"The archive from {url} does not hold stsbenchmark/{', stsbenchmark/'.join(missing)}; is it the "
            "original STS Benchmark release (Stsbenchmark.tar.gz)?"
        )
    logger.info(f"STS Benchmark extracted to {target}")
    return target


def _validated(validate: Callable[[Path], Any], file: Path, name: str) -> None:
    """Run ``validate(file)``; a :class:`DataFormatError` is re-raised under ``name`` (not the temporary file)."""
    try:
        validate(file)
    except DataFormatError as error:
        raise DataFormatError(name, error.reason, error.line, error.column, error.where) from None
