"""SentEval's ``data/downstream`` layout for the STS suite: STS12-16, STS-B and SICK-R, and its download.

The seven sets SimCSE, SG-OPT and ConSERT report, in the layout SentEval's (and SimCSE's) download scripts
leave on disk, relative to the ``downstream`` folder:

* ``STS/STS12-en-test/`` ... ``STS/STS16-en-test/``: per subset, ``STS.input.<subset>.txt`` (two tab-separated
  sentences a line) and ``STS.gs.<subset>.txt`` (the gold score of the pair on the same line; an empty line
  means the pair has no gold score, and it is skipped and counted, as SentEval does);
* ``STS/STSBenchmark/sts-test.csv``: the STS Benchmark's test split (tab-separated, score in column 5,
  sentences in columns 6 and 7);
* ``SICK/SICK_test_annotated.txt``: tab-separated with the header
  ``pair_ID sentence_A sentence_B relatedness_score entailment_judgment``.

**Decoding.** Every file is read through :mod:`st_contrast.data.reading`'s rules (a UTF-8 BOM dropped, ``\\n``
and ``\\r\\n`` line ends, gzip, NUL bytes refused, ``file:line`` errors), with one addition: the STS files of
2012-2016 come from many sources and some of their lines are not valid UTF-8, so each **line** is decoded as
UTF-8 and a line that is not valid UTF-8 is decoded as Windows-1252 (``cp1252``, which for bytes 0xA0-0xFF is
Latin-1; a byte that cp1252 leaves undefined is taken as its Latin-1 code point), so no byte is dropped or
replaced. How many lines needed it, and the first one, is logged (a warning). ``fallback_encoding=None``
refuses such a line instead (a :class:`~st_contrast.data.reading.DataFormatError` naming file, line and byte).

Sentences are whitespace-normalised (``" ".join(text.split())``), which is what SentEval's tokenised input
amounts to once SimCSE's batcher joins the tokens again.
"""

from __future__ import annotations

import codecs
import gzip
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from st_contrast.data import paths
from st_contrast.data.reading import GZIP_MAGIC, UTF8_BOM, DataFormatError, check_number, open_binary

logger = logging.getLogger(__name__)

ENV_SENTEVAL = "ST_CONTRAST_SENTEVAL"
ENV_DOWNLOAD = "ST_CONTRAST_DOWNLOAD"
#: SimCSE's packaging of SentEval's downstream data (the files its paper's numbers come from).
SENTEVAL_URL = "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/senteval.tar"
#: The cache sub-folder the download is extracted to (``<cache>/senteval/downstream``).
CACHE_SUBDIR = "senteval/downstream"

#: The STS years: their folder and subsets (STS13's SMT subset is not distributed).
STS_YEARS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sts12": ("STS/STS12-en-test", ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews")),
    "sts13": ("STS/STS13-en-test", ("FNWN", "headlines", "OnWN")),
    "sts14": ("STS/STS14-en-test", ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news")),
    "sts15": (
        "STS/STS15-en-test",
        ("answers-forums", "answers-students", "belief", "headlines", "images"),
    ),
    "sts16": (
        "STS/STS16-en-test",
        ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
    ),
}
STSB_TEST_FILE = "STS/STSBenchmark/sts-test.csv"
SICK_TEST_FILE = "SICK/SICK_test_annotated.txt"
SICK_COLUMNS = ("pair_ID", "sentence_A", "sentence_B", "relatedness_score", "entailment_judgment")

#: The suite's tasks in SimCSE's table order.
STS_SUITE_TASKS: tuple[str, ...] = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr")
#: How each task is named in tables.
TASK_NAMES: dict[str, str] = {
    "sts12": "STS12",
    "sts13": "STS13",
    "sts14": "STS14",
    "sts15": "STS15",
    "sts16": "STS16",
    "stsb": "STS-B",
    "sickr": "SICK-R",
}
_ALIASES = {
    "sts-b": "stsb",
    "stsbenchmark": "stsb",
    "sick-r": "sickr",
    "sick": "sickr",
    "sickrelatedness": "sickr",
}
#: Gold score scales: STS 0-5, SICK relatedness 1-5.
STS_SCALE = (0.0, 5.0)
SICK_SCALE = (1.0, 5.0)

Pair = tuple[str, str, float]


@dataclass
class STSTaskData:
    """One task of the suite: its subsets' ``(sentence1, sentence2, gold)`` pairs and what was skipped.

    Attributes:
        task: the task key (``"sts12"``, ..., ``"stsb"``, ``"sickr"``).
        subsets: subset name -> pairs, in file order (STS-B and SICK-R have one subset, ``"test"``).
        unscored: subset name -> pairs skipped because their gold line is empty.
        files: the files read.
    """

    task: str
    subsets: dict[str, list[Pair]]
    unscored: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return TASK_NAMES[self.task]

    def __len__(self) -> int:
        return sum(len(pairs) for pairs in self.subsets.values())


def task_key(name: str) -> str:
    """The task key for a user's name of it (``STS12``, ``sts-b``, ``STSBenchmark``, ``SICK-R``, ...)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in STS_SUITE_TASKS:
        known = ", ".join(TASK_NAMES[task] for task in STS_SUITE_TASKS)
        raise ValueError(f"unknown STS task {name!r}; choose from {known} (any case; also sts-b, sick-r)")
    return key


def task_keys(names: Iterable[str] | str | None) -> list[str]:
    """Task keys in suite order for a list (or a comma-separated string) of names; ``None``: all seven."""
    if names is None:
        return list(STS_SUITE_TASKS)
    if isinstance(names, str):
        names = [part for part in names.split(",")]
    wanted = {task_key(name) for name in names if str(name).strip()}
    if not wanted:
        raise ValueError("no STS task named; choose from " + ", ".join(TASK_NAMES.values()))
    return [task for task in STS_SUITE_TASKS if task in wanted]


def task_files(task: str) -> list[str]:
    """The files a task reads, relative to the ``downstream`` folder."""
    task = task_key(task)
    if task in STS_YEARS:
        folder, subsets = STS_YEARS[task]
        return [f"{folder}/STS.{kind}.{subset}.txt" for subset in subsets for kind in ("input", "gs")]
    return [STSB_TEST_FILE if task == "stsb" else SICK_TEST_FILE]


# ---------------------------------------------------------------------------------------------
# Lines, decoded per line with a fallback
# ---------------------------------------------------------------------------------------------


def _decode_fallback(raw: bytes, encoding: str, name: str, line: int) -> str:
    """``raw`` in ``encoding``; for cp1252, the five bytes it leaves undefined are taken as Latin-1."""
    if codecs.lookup(encoding).name == "cp1252":
        return "".join(chr(b) if b < 0x80 else _cp1252_or_latin1(b) for b in raw)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise DataFormatError(
            name, f"the line is neither UTF-8 nor {encoding} ({error.reason}); pass the file's encoding", line=line
        ) from None


def _cp1252_or_latin1(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


def read_senteval_lines(path: str | os.PathLike, fallback_encoding: str | None = "cp1252") -> list[str]:
    """Every line of a SentEval file (blank lines kept, for line-aligned files), decoded line by line.

    Only ``\\n`` and ``\\r\\n`` end a line (a stray ``\\r`` must not shift the pairs against the gold lines); a
    final line end does not start another line. A line that is not valid UTF-8 is decoded with
    ``fallback_encoding`` (see the module's docstring) and counted in a logged warning.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: a NUL byte; a line that is not UTF-8 when ``fallback_encoding`` is ``None``; corrupt gzip.
    """
    name = str(path)
    with open_binary(path) as handle:
        try:
            data = handle.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise DataFormatError(
                name, f"the gzip data is corrupt or cut short ({error}); expected a whole file"
            ) from None
    offset = 0
    if data.startswith(UTF8_BOM):
        data, offset = data[len(UTF8_BOM) :], len(UTF8_BOM)
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    lines: list[str] = []
    fallback_lines: list[int] = []
    for number, raw in enumerate(pieces, start=1):
        start, offset = offset, offset + len(raw) + 1
        body = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            if fallback_encoding is None:
                raise DataFormatError(
                    name,
                    f"byte(s) {body[error.start : error.start + 4].hex(' ')} at byte offset {start + error.start} "
                    f"cannot be decoded as UTF-8 ({error.reason}); expected UTF-8 text (or read it with "
                    "fallback_encoding='cp1252')",
                    line=number,
                    column=len(body[: error.start].decode("utf-8", errors="replace")) + 1,
                ) from None
            text = _decode_fallback(body, fallback_encoding, name, number)
            fallback_lines.append(number)
        if "\x00" in text:
            raise DataFormatError(
                name,
                "a NUL byte (\\x00) in the text: this looks like a binary file; expected a text file",
                line=number,
                column=text.index("\x00") + 1,
            )
        lines.append(text)
    if fallback_lines:
        logger.warning(
            f"{name}: {len(fallback_lines)} line(s) are not valid UTF-8 (first: line {fallback_lines[0]}); decoded "
            f"them as {fallback_encoding}."
        )
    return lines


def _normalise(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def read_sts_subset(
    input_path: str | os.PathLike, gold_path: str | os.PathLike, fallback_encoding: str | None = "cp1252"
) -> tuple[list[Pair], int]:
    """One STS12-16 subset: ``STS.input.<subset>.txt`` and ``STS.gs.<subset>.txt``, line by line.

    Returns:
        The scored ``(sentence1, sentence2, gold)`` pairs in file order, and the number of unscored pairs (empty
        gold line) that were skipped.

    Raises:
        DataFormatError: the two files have different numbers of lines; an input line without exactly two
            tab-separated sentences, or with an empty sentence, where the pair has a gold score; a gold score
            that is not a finite number in [0, 5]; no scored pair at all.
    """
    inputs = read_senteval_lines(input_path, fallback_encoding)
    golds = read_senteval_lines(gold_path, fallback_encoding)
    if len(inputs) != len(golds):
        raise DataFormatError(
            gold_path,
            f"{len(golds)} lines, but {input_path} has {len(inputs)}; expected one gold line (a score, or empty for "
            "an unscored pair) per sentence pair",
        )
    pairs: list[Pair] = []
    unscored = 0
    for number, (line, gold) in enumerate(zip(inputs, golds), start=1):
        if not gold.strip():
            unscored += 1
            continue
        score = check_number(gold.strip(), gold_path, "the gold score", number, low=STS_SCALE[0], high=STS_SCALE[1])
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataFormatError(
                input_path, f"expected two tab-separated sentences, got {len(fields)} field(s)", line=number
            )
        first, second = _normalise(fields[0]), _normalise(fields[1])
        if not first or not second:
            raise DataFormatError(input_path, "a sentence is empty; expected two sentences", line=number)
        pairs.append((first, second, score))
    if not pairs:
        raise DataFormatError(gold_path, f"no scored pair ({unscored} empty gold lines); expected gold scores")
    return pairs, unscored


def read_stsb_test(path: str | os.PathLike, fallback_encoding: str | None = "cp1252") -> list[Pair]:
    """``STS/STSBenchmark/sts-test.csv`` of the SentEval layout (the columns of STS-B's own release)."""
    pairs: list[Pair] = []
    blank = 0
    for number, line in enumerate(read_senteval_lines(path, fallback_encoding), start=1):
        if not line.strip():
            blank += 1
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise DataFormatError(
                path,
                f"expected at least 7 tab-separated columns (genre, file, year, id, score, s1, s2), got {len(fields)}",
                line=number,
            )
        score = check_number(fields[4].strip(), path, "the score column", number, low=STS_SCALE[0], high=STS_SCALE[1])
        first, second = _normalise(fields[5]), _normalise(fields[6])
        if not first or not second:
            raise DataFormatError(path, "a sentence is empty; expected two sentences (columns 6 and 7)", line=number)
        pairs.append((first, second, score))
    if not pairs:
        raise DataFormatError(path, "no sentence pair; expected tab-separated STS-B rows")
    if blank:
        logger.warning(f"{path}: skipped {blank} blank line(s).")
    return pairs


def read_sick_test(path: str | os.PathLike, fallback_encoding: str | None = "cp1252") -> list[Pair]:
    """``SICK/SICK_test_annotated.txt``: the header ``pair_ID sentence_A sentence_B relatedness_score ...``."""
    pairs: list[Pair] = []
    header: list[str] | None = None
    blank = 0
    for number, line in enumerate(read_senteval_lines(path, fallback_encoding), start=1):
        if not line.strip():
            blank += 1
            continue
        fields = line.split("\t")
        if header is None:
            header = [name.strip() for name in fields]
            missing = [name for name in SICK_COLUMNS[1:4] if name not in header]
            if missing:
                raise DataFormatError(
                    path,
                    f"the header {header} lacks {missing}; expected the tab-separated header {' '.join(SICK_COLUMNS)}",
                    line=number,
                )
            columns = [header.index(name) for name in SICK_COLUMNS[1:4]]
            continue
        if len(fields) != len(header):
            raise DataFormatError(
                path, f"the row has {len(fields)} fields, the header {len(header)} ({' '.join(header)})", line=number
            )
        first, second = _normalise(fields[columns[0]]), _normalise(fields[columns[1]])
        score = check_number(
            fields[columns[2]].strip(), path, "relatedness_score", number, low=SICK_SCALE[0], high=SICK_SCALE[1]
        )
        if not first or not second:
            raise DataFormatError(path, "a sentence is empty; expected sentence_A and sentence_B", line=number)
        pairs.append((first, second, score))
    if header is None:
        raise DataFormatError(path, "the file is empty; expected a header, then one pair per line")
    if not pairs:
        raise DataFormatError(path, "no pair after the header; expected one pair per line")
    if blank:
        logger.warning(f"{path}: skipped {blank} blank line(s).")
    return pairs


def read_sts_task(task: str, folder: str | os.PathLike, fallback_encoding: str | None = "cp1252") -> STSTaskData:
    """Read one task of the suite from a ``downstream`` folder (see :func:`task_files` for the paths)."""
    task = task_key(task)
    root = Path(folder)
    missing = missing_files(task, root)
    if missing:
        raise FileNotFoundError(f"{TASK_NAMES[task]}: expected {', '.join(str(p) for p in missing)}")
    data = STSTaskData(task, {})
    if task in STS_YEARS:
        relative, subsets = STS_YEARS[task]
        for subset in subsets:
            input_path = root / relative / f"STS.input.{subset}.txt"
            gold_path = root / relative / f"STS.gs.{subset}.txt"
            pairs, unscored = read_sts_subset(input_path, gold_path, fallback_encoding)
            data.subsets[subset], data.unscored[subset] = pairs, unscored
            data.files += [input_path, gold_path]
        skipped = sum(data.unscored.values())
        if skipped:
            logger.info(f"{TASK_NAMES[task]}: skipped {skipped} unscored pair(s) (empty gold lines).")
    else:
        path = root / task_files(task)[0]
        reader = read_stsb_test if task == "stsb" else read_sick_test
        data.subsets["test"], data.unscored["test"] = reader(path, fallback_encoding), 0
        data.files.append(path)
    return data


def missing_files(task: str, folder: str | os.PathLike) -> list[Path]:
    """The files of ``task`` that are not in ``folder``."""
    return [Path(folder) / relative for relative in task_files(task) if not (Path(folder) / relative).is_file()]


# ---------------------------------------------------------------------------------------------
# Where the folder is, and the whole suite
# ---------------------------------------------------------------------------------------------


def _downstream(folder: Path) -> Path:
    """``folder`` itself, or its ``data/downstream`` / ``downstream`` sub-folder when that holds the data."""
    for candidate in (folder, folder / "data" / "downstream", folder / "downstream"):
        if (candidate / "STS").is_dir() or (candidate / "SICK").is_dir():
            return candidate
    return folder


def senteval_dirs(senteval_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order: ``senteval_dir``, ``$ST_CONTRAST_SENTEVAL``, ``<cache>/senteval/downstream``.

    Each may be the ``downstream`` folder itself (holding ``STS/`` and ``SICK/``), a SentEval checkout (its
    ``data/downstream``) or a folder with a ``downstream`` sub-folder.
    """
    folders = []
    if senteval_dir is not None:
        folders.append(Path(senteval_dir))
    if os.environ.get(ENV_SENTEVAL):
        folders.append(Path(os.environ[ENV_SENTEVAL]))
    folders.append(paths.cache_dir() / CACHE_SUBDIR)
    return [_downstream(folder) for folder in folders]


def _download_requested(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in {"1", "true", "yes"}


def find_senteval_dir(tasks: Sequence[str], senteval_dir: str | os.PathLike | None = None) -> Path | None:
    """The first searched folder that holds every file of ``tasks``, or ``None``."""
    for folder in senteval_dirs(senteval_dir):
        if not any(missing_files(task, folder) for task in tasks):
            return folder
    return None


def load_sts_suite(
    tasks: Iterable[str] | str | None = None,
    senteval_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    fallback_encoding: str | None = "cp1252",
    show_progress_bar: bool = True,
) -> dict[str, STSTaskData]:
    """Read the STS suite's tasks (default all seven) from SentEval's ``data/downstream`` layout.

    The folder is the first of :func:`senteval_dirs` holding every requested file. When none does and a download
    is requested (``download=True``, or ``ST_CONTRAST_DOWNLOAD=1`` when ``download`` is ``None``), SimCSE's
    packaging of SentEval's data is downloaded into the cache first (:func:`download_senteval`).

    Returns:
        task key -> :class:`STSTaskData`, in the suite's order.

    Raises:
        FileNotFoundError: a requested task's files are nowhere; the message lists, per task, the files expected
            in the first folder searched and how to get them.
        DataFormatError: a malformed file (file and line).
    """
    keys = task_keys(tasks)
    folder = find_senteval_dir(keys, senteval_dir)
    if folder is None and _download_requested(download):
        download_senteval(show_progress_bar=show_progress_bar)
        folder = find_senteval_dir(keys, senteval_dir)
    if folder is None:
        searched = senteval_dirs(senteval_dir)
        first = searched[0]
        lines = []
        for task in keys:
            missing = missing_files(task, first)
            if missing:
                shown = ", ".join(str(path) for path in missing[:2]) + (
                    f" (and {len(missing) - 2} more)" if len(missing) > 2 else ""
                )
                lines.append(f"{TASK_NAMES[task]}: expected {shown}")
        raise FileNotFoundError(
            f"STS suite data not found. {'; '.join(lines)}. Searched: {', '.join(str(f) for f in searched)}. Point "
            f"--senteval-dir (senteval_dir=) or {ENV_SENTEVAL} at SentEval's data/downstream folder, pass "
            "--download (download=True) to fetch it into the cache, or choose the tasks you have with --tasks."
        )
    logger.info(f"Reading the STS suite from {folder}")
    return {task: read_sts_task(task, folder, fallback_encoding) for task in keys}


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------


def _member_relative(name: str) -> str | None:
    """The path under ``downstream`` of an archive member (``[prefix/]STS/...`` or ``[prefix/]SICK/...``)."""
    parts = PurePosixPath(name).parts
    for index, part in enumerate(parts):
        if part in ("STS", "SICK"):
            return "/".join(parts[index:])
    return None


def download_senteval(
    cache_dir: str | os.PathLike | None = None,
    url: str = SENTEVAL_URL,
    force: bool = False,
    timeout: float = 60.0,
    show_progress_bar: bool = True,
) -> Path:
    """Download SentEval's downstream data (SimCSE's ``senteval.tar``) and extract the STS suite's files.

    The archive is saved under ``<cache>/downloads/`` with a tqdm progress bar; only the suite's files (STS12-16
    inputs and gold scores, STS-B test, SICK test) are read from it, by name (``[prefix/]STS/...`` and
    ``[prefix/]SICK/...``), into a temporary folder, where every task is read with the readers above; only then
    is the folder renamed to ``<cache>/senteval/downstream``, so a malformed or partial archive never reaches the
    cache. Nothing is fetched when the files are already there (unless ``force``).

    Args:
        cache_dir: the cache folder; default :func:`st_contrast.data.cache_dir`.
        url: where to fetch the archive from (a mirror, or a local server); a ``.tar`` or ``.tar.gz``.
        force: download and extract again.
        timeout: seconds to wait for the server on connect and on each read.
        show_progress_bar: show the download's progress bar.

    Returns:
        The ``downstream`` folder.

    Raises:
        ValueError: the archive lacks some of the suite's files (they are listed).
        DataFormatError: a file of the archive is malformed (``archive!member:line``).
        OSError: the download failed or was cut short.
    """
    from st_contrast.data.download import download_file

    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    target = root / CACHE_SUBDIR
    wanted = {relative for task in STS_SUITE_TASKS for relative in task_files(task)}
    if not force and all((target / relative).is_file() for relative in wanted):
        return target
    archive = root / "downloads" / (PurePosixPath(url.split("?", 1)[0]).name or "senteval.tar")
    logger.info(f"Downloading SentEval's downstream data from {url} to {archive}")
    download_file(url, archive, timeout=timeout, show_progress_bar=show_progress_bar)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".downstream.", suffix=".part"))
    try:
        found: set[str] = set()
        with open(archive, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
        with tarfile.open(archive, "r:gz" if compressed else "r:*") as tar:
            for member in tar:
                relative = _member_relative(member.name)
                if not member.isfile() or relative not in wanted:
                    continue  # read by name, never extract by the archive's own paths (no path traversal)
                if relative in found:
                    raise ValueError(f"The archive from {url} holds {relative} twice; expected SentEval's data.")
                source = tar.extractfile(member)
                if source is None:
                    continue
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with open(destination, "wb") as out, source:
                    shutil.copyfileobj(source, out, 1 << 16)
                found.add(relative)
        missing = sorted(wanted - found)
        if missing:
            raise ValueError(
                f"The archive from {url} lacks {len(missing)} of the STS suite's files ({', '.join(missing[:4])}"
                f"{', ...' if len(missing) > 4 else ''}); expected SentEval's data/downstream (STS/ and SICK/)."
            )
        for task in STS_SUITE_TASKS:  # a malformed file never reaches the cache
            try:
                read_sts_task(task, staging)
            except DataFormatError as error:
                member = os.path.relpath(error.path, staging).replace(os.sep, "/")
                raise DataFormatError(f"{archive}!{member}", error.reason, error.line, error.column) from None
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info(f"STS suite files extracted to {target}")
    return target
