"""Where data is found: an explicit folder, then ST_CONTRAST_DATA, then the cache."""

from __future__ import annotations

import pytest

from st_contrast.data.paths import cache_dir, data_dirs, find_data_file


def test_cache_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("ST_CONTRAST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "st-contrast"


def test_data_dirs_and_find_data_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_CONTRAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ST_CONTRAST_DATA", str(tmp_path / "env"))
    assert data_dirs(tmp_path / "explicit") == [tmp_path / "explicit", tmp_path / "env", tmp_path / "cache" / "data"]
    for folder in ("env", "cache/data"):
        (tmp_path / folder / "sub").mkdir(parents=True)
        (tmp_path / folder / "sub" / "f.txt").write_text(folder, encoding="utf-8")
    assert find_data_file("sub/f.txt") == tmp_path / "env" / "sub" / "f.txt"  # the environment before the cache
    assert find_data_file("sub/none.txt", required=False) is None
    with pytest.raises(FileNotFoundError, match=r"'sub/none.txt' in any data folder .*env.*cache"):
        find_data_file("sub/none.txt")
