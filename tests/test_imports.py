"""The import structure of ``cnn``, read with ``ast`` (nothing is imported): the graph
(``cnn.models``) knows neither the loop nor saving, no function imports ``cnn`` to dodge a
cycle, and the modules import each other without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cnn"

# Function-level imports of cnn modules that are allowed, with the reason: none today.
ALLOWED_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imported(node, current: str, is_package: bool) -> list[str]:
    """The cnn modules an import statement names (``from cnn import backend`` ->
    ``cnn.backend``; relative imports resolved)."""
    known = modules()
    names = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = current if is_package else current.rsplit(".", 1)[0]
            for _ in range(node.level - 1):
                package = package.rsplit(".", 1)[0]
            base = f"{package}.{base}" if base else package
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                 for alias in node.names]
    return [name for name in names if name == "cnn" or name.startswith("cnn.")]


def module_level_imports(path: Path) -> list[str]:
    name = module_name(path)
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        statements = [node]
        if isinstance(node, (ast.If, ast.Try)):
            statements = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
        for statement in statements:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                found += imported(statement, name, path.name == "__init__.py")
    return found


def function_level_imports(path: Path) -> list[tuple[str, int]]:
    name = module_name(path)
    tree = ast.parse(path.read_text())
    found = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for target in imported(node, name, path.name == "__init__.py"):
                        found.append((target, node.lineno))
    return found


def test_the_graph_imports_neither_the_loop_nor_saving():
    offenders = []
    for name, path in modules().items():
        if name == "cnn.models" or name.startswith("cnn.models."):
            for target in module_level_imports(path) + [t for t, _ in function_level_imports(path)]:
                if target.startswith(("cnn.training", "cnn.saving")):
                    offenders.append(f"{name} imports {target}")
    assert not offenders, offenders


def test_no_function_imports_a_cnn_module():
    offenders = [f"{name}:{line} imports {target}"
                 for name, path in modules().items()
                 for target, line in function_level_imports(path)
                 if (name, target) not in ALLOWED_FUNCTION_IMPORTS]
    assert not offenders, offenders


def test_the_modules_import_each_other_without_cycles():
    """Edges: module -> each cnn module it imports at module level, and a package's
    ``__init__`` -> its own modules. The root ``cnn/__init__.py`` is left out: it is the
    facade that loads the loop and saving (every ``import cnn.x`` runs it first)."""
    graph = {name: set() for name in modules()}
    for name, path in modules().items():
        for target in module_level_imports(path):
            if target != "cnn" and target in graph and target != name:
                graph[name].add(target)
    graph.pop("cnn")
    for edges in graph.values():
        edges.discard("cnn")
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_user_facing_imports_of_the_seed_keep_working():
    import cnn.models

    assert {"Model", "Sequential", "load_model", "NonFiniteLossError",
            "ModelFileError"} <= {name for name in cnn.models.__all__ if hasattr(cnn.models, name)}
    from cnn.training.errors import NonFiniteLossError

    assert cnn.models.NonFiniteLossError is NonFiniteLossError
