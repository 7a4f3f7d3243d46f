"""No import cycles in st_contrast: a static check over the import graph, and fresh imports in random orders.

The graph is read from the source with ``ast``: an edge ``a -> b`` for every ``import b`` / ``from b import x``
in module ``a`` (``from package import module`` counts as an edge to the module). Imports under
``if TYPE_CHECKING:`` are left out: they never run. Two graphs are checked:

- the imports that run when the module is imported (module and class bodies): a cycle there is a bug;
- every import, function-level ones included (deferred imports only hide a cycle until the function runs):
  no cycle but the known ones listed in ``KNOWN_DEFERRED_CYCLES``, which may only shrink.
"""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "st_contrast"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


# modules tied by function-level imports both ways, outside the core packages; remove an entry once it is fixed
KNOWN_DEFERRED_CYCLES = [
    # read_sts_file checks a downloaded STS-B split; load_sts_benchmark downloads one on request
    {"st_contrast.data.download", "st_contrast.evaluation.sts"},
    # train_data is train's per-method half, split out for size; each uses the other's names inside functions
    {"st_contrast.cli.train", "st_contrast.cli.train_data"},
]


def _imports(name: str, path: Path, modules: dict[str, Path], deferred: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        # the longest known module that `target` names (a name imported from a module maps to the module)
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if not deferred and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := resolve(alias.name)) is not None:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                target = resolve(f"{source}.{alias.name}") if alias.name != "*" else None
                if target is None or target == resolve(source) or target == source.rpartition(".")[0]:
                    target = resolve(source)
                if target is not None:
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    """``module -> modules it imports``; with ``deferred``, function-level imports too."""
    modules = _modules()
    graph = {name: _imports(name, path, modules, deferred) for name, path in modules.items()}
    for name in modules:  # importing a.b.c runs a and a.b first: not a dependency to count as a cycle edge
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_relative_function_level_and_from_package_imports():
    graph = import_graph()
    assert "st_contrast.losses._checks" in graph["st_contrast.losses.simcse"]  # from ._checks import ...
    assert "st_contrast.losses.functional.infonce" in graph["st_contrast.losses.functional"]
    assert "st_contrast.losses.functional.distributed" in graph["st_contrast.losses.functional.infonce"]
    assert "st_contrast.modules.classifier" not in graph["st_contrast.losses.rdrop"]  # only inside __init__
    assert "st_contrast.modules.classifier" in import_graph(deferred=True)["st_contrast.losses.rdrop"]


def test_no_import_cycle_in_st_contrast():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_new_cycle_through_function_level_imports():
    graph = import_graph(deferred=True)
    while (cycle := find_cycle(graph)) is not None:
        assert set(cycle) in KNOWN_DEFERRED_CYCLES, "import cycle through function-level imports: " + " -> ".join(
            cycle
        )
        graph[cycle[-2]].discard(cycle[-1])


@pytest.mark.slow  # one interpreter importing every module (datasets, transformers, ...): ~30 s
def test_every_module_imports_fresh_in_a_shuffled_order(seed=0):
    """Each module imported first in its own interpreter would be slow; one interpreter per order, each module
    imported with everything it pulls in, in a shuffled order, catches a module that only works after another."""
    names = [n for n in _modules() if not n.startswith(f"{PACKAGE}.cli.__main__")]
    random.Random(seed).shuffle(names)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
