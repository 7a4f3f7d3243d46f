"""``download_senteval`` and ``load_sts_suite(download=True)`` against a local HTTP server (never the network)."""

from __future__ import annotations

import functools
import io
import tarfile
from pathlib import Path

import pytest

from st_contrast.data import senteval
from st_contrast.data.reading import DataFormatError
from st_contrast.data.senteval import CACHE_SUBDIR, STS_SUITE_TASKS, download_senteval, load_sts_suite, task_files
from tests.data.test_download import empty_cache, http_root  # noqa: F401 - fixtures
from tests.evaluation.senteval_utils import write_senteval


def _archive(source: Path, path: Path, prefix: str = "", drop=(), replace=None, gz=False) -> None:
    """A tar of ``source`` (a downstream folder) under ``prefix``, with other SentEval tasks and a traversal."""
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        files = [p for p in sorted(source.rglob("*")) if p.is_file()]
        members = [(p.relative_to(source).as_posix(), p.read_bytes()) for p in files]
        members += [("MR/rt-polarity.pos", b"unused\n"), ("../outside.txt", b"must not be written\n")]
        for name, data in members:
            if name in drop:
                continue
            data = (replace or {}).get(name, data)
            info = tarfile.TarInfo(name if name.startswith("..") else prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def release(tmp_path):
    source = tmp_path / "release"
    write_senteval(source)
    return source


@pytest.mark.parametrize(("prefix", "gz"), [("", False), ("downstream/", True)])
def test_download_extracts_the_suite_into_the_cache(http_root, empty_cache, release, prefix, gz, monkeypatch):  # noqa: F811
    root, base = http_root
    _archive(release, root / "senteval.tar", prefix=prefix, gz=gz)
    folder = download_senteval(url=f"{base}/senteval.tar", show_progress_bar=False, timeout=10)
    assert folder == empty_cache / CACHE_SUBDIR
    wanted = sorted(relative for task in STS_SUITE_TASKS for relative in task_files(task))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == wanted
    assert (folder / wanted[0]).read_bytes() == (release / wanted[0]).read_bytes()
    assert not list(empty_cache.rglob("outside.txt")) and not list(empty_cache.rglob("*.part"))
    monkeypatch.delenv("ST_CONTRAST_SENTEVAL", raising=False)
    assert list(load_sts_suite()) == list(STS_SUITE_TASKS)  # found in the cache without any setting
    (root / "senteval.tar").unlink()  # cached: no second request
    assert download_senteval(url=f"{base}/senteval.tar", show_progress_bar=False) == folder


def test_load_downloads_only_when_asked(http_root, empty_cache, release, monkeypatch):  # noqa: F811
    root, base = http_root
    _archive(release, root / "senteval.tar")
    monkeypatch.delenv("ST_CONTRAST_SENTEVAL", raising=False)
    calls = []
    original = senteval.download_senteval

    def local(**kwargs):
        calls.append(kwargs)
        return original(url=f"{base}/senteval.tar", show_progress_bar=False, timeout=10)

    monkeypatch.setattr(senteval, "download_senteval", local)
    with pytest.raises(FileNotFoundError, match="--download"):
        load_sts_suite(["sts15"])
    assert calls == []
    assert len(load_sts_suite(["sts15"], download=True)["sts15"].subsets) == 5
    monkeypatch.setenv("ST_CONTRAST_DOWNLOAD", "1")
    assert set(load_sts_suite(["sickr"])) == {"sickr"} and len(calls) == 1  # already cached


def test_an_incomplete_archive_leaves_nothing(http_root, empty_cache, release):  # noqa: F811
    root, base = http_root
    _archive(release, root / "senteval.tar", drop={"SICK/SICK_test_annotated.txt"})
    with pytest.raises(ValueError, match=r"lacks 1 of the STS suite's files \(SICK/SICK_test_annotated.txt\)"):
        download_senteval(url=f"{base}/senteval.tar", show_progress_bar=False, timeout=10)
    assert not (empty_cache / CACHE_SUBDIR).exists()
    assert not [p for p in (empty_cache / "senteval").iterdir()]


def test_a_malformed_file_never_reaches_the_cache(http_root, empty_cache, release):  # noqa: F811
    root, base = http_root
    bad = {"STS/STS14-en-test/STS.gs.images.txt": b"1\n9\n"}
    _archive(release, root / "senteval.tar", replace=bad)
    with pytest.raises(DataFormatError, match=r"senteval.tar!STS/STS14-en-test/STS.gs.images.txt: 2 lines, but"):
        download_senteval(url=f"{base}/senteval.tar", show_progress_bar=False, timeout=10)
    assert not (empty_cache / CACHE_SUBDIR).exists()


def test_download_shows_a_progress_bar(http_root, empty_cache, release, capsys):  # noqa: F811
    root, base = http_root
    _archive(release, root / "senteval.tar")
    functools.partial(download_senteval, url=f"{base}/senteval.tar", timeout=10)()
    assert "senteval.tar" in capsys.readouterr().err
