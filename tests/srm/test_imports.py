"""The package's import graph: every module imports, no module reaches into another's private
names, and no two modules import each other (not even for type hints), so each module can be
read, tested and moved on its own (issue 27)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import srm

SRM = Path(srm.__file__).resolve().parent
# Alembic's scripts run against a migration context when imported, and ``__main__`` runs the CLI.
SKIPPED = ("srm.store.migrations", "srm.cli.__main__")


def module_paths() -> dict[str, Path]:
    """Every module of ``srm`` by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(SRM.rglob("*.py")):
        parts = path.relative_to(SRM.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(SKIPPED):
            found[name] = path
    return found


MODULES = module_paths()


def srm_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, module, name)`` for every ``from srm... import name`` and ``import srm...`` in
    the file (``name`` None), wherever it stands: in a function or under TYPE_CHECKING too."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "srm":
                found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names if a.name.startswith("srm")]
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_module_imports_another_modules_private_names() -> None:
    private = [
        f"{path.relative_to(SRM.parent)}:{line}: from {module} import {name}"
        for own, path in MODULES.items()
        for line, module, name in srm_imports(path)
        if name is not None
        and name.startswith("_")
        and not (name.startswith("__") and name.endswith("__"))  # __version__ is public
        and module != own
    ]
    assert private == [], "make the name public, or move what both need:\n" + "\n".join(private)


def test_no_import_circles() -> None:
    """No module imports, however indirectly, one that imports it (type-only imports count:
    a circle kept for type hints is still two modules that cannot be read apart)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for own, path in MODULES.items():
        for _, module, name in srm_imports(path):
            target = f"{module}.{name}" if f"{module}.{name}" in MODULES else module
            if target in MODULES and target != own:
                edges[own].add(target)
    circles = [group for group in strongly_connected(edges) if len(group) > 1]
    assert circles == [], f"import circles: {circles}"


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of a directed graph (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_the_circle_check_finds_a_circle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"],
        ["d"],
    ]


#: The longest a module of ``srm`` or ``webapp`` may be: longer ones mix concerns (issue 27).
MAX_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    """Every module of the package and the app (migrations included) fits in one sitting."""
    root = SRM.parent
    long = {
        str(path.relative_to(root)): lines
        for folder in (SRM, root / "webapp")
        for path in sorted(folder.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
