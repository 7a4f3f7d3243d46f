"""Downloads into the cache, against a local HTTP server on 127.0.0.1 (never the real network)."""

from __future__ import annotations

import functools
import io
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from st_contrast.data import download
from st_contrast.data.reading import DataFormatError
from st_contrast.evaluation import load_sts_benchmark

ROWS = {
    "train": "main-captions\tMSRvid\t2012train\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.\n"
    'main-news\theadlines\t2013\t0002\t1.200\tHe said "no.\tShe left.\tsrc-a\tsrc-b\n',
    "dev": "main-captions\tMSRvid\t2012test\t0003\t4.400\tA man plays.\tA man is playing.\n"
    "main-captions\tMSRvid\t2012test\t0004\t0.500\tA cat.\tA car.\n",
    "test": "main-forums\tanswers\t2015\t0005\t2.500\tA girl is styling her hair.\tA girl is brushing her hair.\n"
    "main-forums\tanswers\t2015\t0006\t3.000\tOne.\tTwo.\n"
    "main-forums\tanswers\t2015\t0007\t1.000\tThree.\tFour.\n",
}


def _build_archive(path: Path, splits=("train", "dev", "test"), rows=None, extra=()) -> None:
    rows = {**ROWS, **(rows or {})}
    with tarfile.open(path, "w:gz") as tar:
        members = [(f"stsbenchmark/sts-{split}.csv", rows[split]) for split in splits]
        members += [("stsbenchmark/LICENSE.txt", "CC BY-SA 4.0\n"), ("../outside.txt", "must not be written\n")]
        for name, text in [*members, *extra]:
            data = text.encode("utf-8") if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@pytest.fixture
def http_root(tmp_path):
    """Serve a folder on 127.0.0.1 from a thread; yields (folder, base URL); shuts down after the test."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(cache))
    monkeypatch.delenv("ST_CONTRAST_DATA", raising=False)
    monkeypatch.delenv("ST_CONTRAST_DOWNLOAD", raising=False)
    return cache


def test_download_extracts_the_three_splits(http_root, empty_cache):
    root, base = http_root
    _build_archive(root / "Stsbenchmark.tar.gz")
    folder = download.download_sts_benchmark(url=f"{base}/Stsbenchmark.tar.gz", show_progress_bar=False, timeout=10)
    assert folder == empty_cache / "data" / "sts" / "stsbenchmark"
    assert sorted(p.name for p in folder.iterdir()) == ["LICENSE.txt", "sts-dev.csv", "sts-test.csv", "sts-train.csv"]
    assert (folder / "sts-train.csv").read_text(encoding="utf-8") == ROWS["train"]
    assert not (empty_cache / "data" / "sts" / "outside.txt").exists()
    assert not list(empty_cache.rglob("*.part"))
    assert len(load_sts_benchmark("test")) == 3
    # already there: no second request (the server's file is gone, yet this succeeds)
    (root / "Stsbenchmark.tar.gz").unlink()
    assert download.download_sts_benchmark(url=f"{base}/Stsbenchmark.tar.gz", show_progress_bar=False) == folder


def test_load_downloads_only_when_asked(http_root, empty_cache, monkeypatch):
    root, base = http_root
    _build_archive(root / "Stsbenchmark.tar.gz")
    calls = []
    original = download.download_sts_benchmark

    def local_download(**kwargs):
        calls.append(kwargs)
        return original(url=f"{base}/Stsbenchmark.tar.gz", show_progress_bar=False, timeout=10)

    monkeypatch.setattr(download, "download_sts_benchmark", local_download)
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_sts_benchmark("dev")
    assert calls == []
    assert load_sts_benchmark("dev", download=True) == [
        ("A man plays.", "A man is playing.", 4.4),
        ("A cat.", "A car.", 0.5),
    ]
    assert len(calls) == 1


def test_environment_variable_turns_download_on(http_root, empty_cache, monkeypatch):
    root, base = http_root
    _build_archive(root / "Stsbenchmark.tar.gz")
    monkeypatch.setattr(
        download,
        "download_sts_benchmark",
        functools.partial(download.download_sts_benchmark, url=f"{base}/Stsbenchmark.tar.gz", show_progress_bar=False),
    )
    monkeypatch.setenv("ST_CONTRAST_DOWNLOAD", "1")
    assert len(load_sts_benchmark("train")) == 2
    # an explicit download=False wins over the environment
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(empty_cache.parent / "other-cache"))
    with pytest.raises(FileNotFoundError):
        load_sts_benchmark("train", download=False)


def test_failed_download_leaves_nothing_behind(http_root, empty_cache):
    from urllib.error import HTTPError

    _, base = http_root
    with pytest.raises(HTTPError):
        download.download_sts_benchmark(url=f"{base}/missing.tar.gz", show_progress_bar=False, timeout=10)
    assert not (empty_cache / "data" / "sts" / "stsbenchmark" / "sts-test.csv").exists()
    assert not list(empty_cache.rglob("*.part")) and not list(empty_cache.rglob("missing.tar.gz"))


def test_archive_without_the_splits_is_rejected(http_root, empty_cache):
    root, base = http_root
    _build_archive(root / "other.tar.gz", splits=("train",))
    with pytest.raises(ValueError, match="does not hold stsbenchmark/sts-dev.csv, stsbenchmark/sts-test.csv"):
        download.download_sts_benchmark(url=f"{base}/other.tar.gz", show_progress_bar=False, timeout=10)


def test_download_file_shows_progress(http_root, tmp_path, capsys):
    root, base = http_root
    (root / "blob.bin").write_bytes(b"x" * 200_000)
    target = download.download_file(f"{base}/blob.bin", tmp_path / "out" / "blob.bin", chunk_size=4096)
    assert target.read_bytes() == b"x" * 200_000
    assert "blob.bin" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rows", "extra", "error", "message"),
    [
        ({"dev": ROWS["dev"].replace("4.400", "nan")}, (), DataFormatError, r"!stsbenchmark/sts-dev.csv:1: the score"),
        ({"test": b"x\tx\tx\tx\t1.0\t\xff\tb\n"}, (), DataFormatError, r"!stsbenchmark/sts-test.csv:1:\d+: byte"),
        ({}, (("other/stsbenchmark/sts-dev.csv", ROWS["dev"]),), ValueError, "holds sts-dev.csv twice"),
    ],
)
def test_a_malformed_split_never_reaches_the_cache(http_root, empty_cache, rows, extra, error, message):
    root, base = http_root
    _build_archive(root / "Stsbenchmark.tar.gz", rows=rows, extra=extra)
    with pytest.raises(error, match=message):
        download.download_sts_benchmark(url=f"{base}/Stsbenchmark.tar.gz", show_progress_bar=False, timeout=10)
    folder = empty_cache / "data" / "sts" / "stsbenchmark"
    assert not list(empty_cache.rglob("*.part"))
    assert not any((folder / f"sts-{split}.csv").exists() for split in rows)  # the malformed split is not there


def test_download_file_validates_before_it_renames(http_root, tmp_path):
    from st_contrast.data.reading import read_json

    root, base = http_root
    (root / "data_full.json").write_text("<html>rate limited</html>\n", encoding="utf-8")
    target = tmp_path / "cache" / "data_full.json"
    with pytest.raises(DataFormatError, match=r"data_full.json \(downloaded\):1:1: invalid JSON"):
        download.download_file(f"{base}/data_full.json", target, show_progress_bar=False, validate=read_json)
    assert not target.exists() and not list(target.parent.iterdir())
    (root / "data_full.json").write_text('{"train": []}', encoding="utf-8")
    assert download.download_file(f"{base}/data_full.json", target, validate=read_json).read_text() == '{"train": []}'
