"""fairseq_plugins depends on st_contrast only through public names, never on its command line (issue 18), checked
statically over every module of the package (ast), and each imported name exists."""

from __future__ import annotations

import ast
import importlib
import os

import fairseq_plugins

PACKAGE_DIR = os.path.dirname(fairseq_plugins.__file__)


def _st_contrast_imports(package_dir: str = PACKAGE_DIR) -> list[tuple[str, int, str, str | None]]:
    """``(file, line, module, name)`` for every import of st_contrast in fairseq_plugins (name None: ``import m``)."""
    found = []
    for folder, _, files in os.walk(package_dir):
        for file in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, file)
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found += [
                        (path, node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] == "st_contrast"
                    ]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    if node.module.split(".")[0] == "st_contrast":
                        found += [(path, node.lineno, node.module, a.name) for a in node.names]
    return found


def _problems(imports, package_dir: str = PACKAGE_DIR) -> list[str]:
    problems = []
    for path, line, module, name in imports:
        where = f"{os.path.relpath(path, package_dir)}:{line}"
        parts = module.split(".")
        if parts[:2] == ["st_contrast", "cli"]:
            problems.append(f"{where}: imports the command line ({module})")
        if any(part.startswith("_") for part in parts):
            problems.append(f"{where}: imports the private module {module}")
        if name is not None and name.startswith("_"):
            problems.append(f"{where}: imports the private name {module}.{name}")
        elif name is not None and name != "*":
            try:
                if not hasattr(importlib.import_module(module), name):
                    problems.append(f"{where}: {module} has no {name}")
            except ImportError:
                problems.append(f"{where}: cannot import {module}")
    return problems


def test_plugins_import_st_contrast_only_through_public_non_cli_names():
    imports = _st_contrast_imports()
    assert len(imports) >= 5  # the walk found the package's imports
    problems = _problems(imports)
    assert not problems, "\n".join(problems)


def test_the_check_sees_private_and_cli_imports(tmp_path):
    bad = tmp_path / "fairseq_plugins"
    bad.mkdir()
    (bad / "x.py").write_text(
        "from st_contrast.cli.simcls import run_rerank\nfrom st_contrast._example import y\n"
        "import st_contrast.losses\nfrom st_contrast.data.reading import _is_utf8\n"
        "from st_contrast.data import no_such_name\n"
    )
    found = {(module, name) for _, _, module, name in _st_contrast_imports(str(bad))}
    assert found == {("st_contrast.cli.simcls", "run_rerank"), ("st_contrast._example", "y"),
                     ("st_contrast.losses", None), ("st_contrast.data.reading", "_is_utf8"),
                     ("st_contrast.data", "no_such_name")}  # fmt: skip
    problems = _problems(_st_contrast_imports(str(bad)), str(bad))
    assert problems == [
        "x.py:1: imports the command line (st_contrast.cli.simcls)",
        "x.py:2: imports the private module st_contrast._example",
        "x.py:2: cannot import st_contrast._example",
        "x.py:4: imports the private name st_contrast.data.reading._is_utf8",
        "x.py:5: st_contrast.data has no no_such_name",
    ]
