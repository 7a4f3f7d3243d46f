from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bench_workdir(tmp_path_factory):
    """One model folder for every test of these presets: the cpu-smoke model (its WordPiece vocabulary is trained
    on the corpus) is built once per session, not once per test."""
    return tmp_path_factory.mktemp("bench-models")
