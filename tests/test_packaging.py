"""The wheel and sdist carry what a user and a packager need (LICENSE, package data, the tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_build_wheel_and_sdist(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error::UserWarning:setuptools"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    wheel_names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel_names)
    assert "st_contrast/tiny_vocab.txt" in wheel_names
    assert not any(name.startswith("tests/") for name in wheel_names)
    with tarfile.open(sdist) as archive:
        sdist_names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "st_contrast/tiny_vocab.txt", "tests/conftest.py", "pyproject.toml"} <= sdist_names
    tracked_tests = subprocess.run(
        ["git", "ls-files", "tests/*.py"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if tracked_tests:  # a git checkout: every test file travels in the sdist
        assert set(tracked_tests) <= sdist_names
