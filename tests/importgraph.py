"""The project's import graph, read from the source (nothing is imported): cycles and layering rules.

Every import counts, wherever it stands: at module level, inside a function, or under `TYPE_CHECKING`
(a type-only circle is still two modules that cannot be understood apart). Importing `a.b.c` also runs
`a/__init__.py` and `a/b/__init__.py`, so a module depends on its target's parent packages too, except
the packages it lives in itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

Graph = dict[str, set[str]]


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under each top-level package folder of `root`."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _with_parents(name: str, known: Mapping[str, Path]) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known}


def import_graph(root: Path, packages: Iterable[str]) -> Graph:
    """For each project module, the project modules (and their parent packages) it imports."""
    known = module_files(root, packages)
    graph: Graph = {}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets |= _with_parents(alias.name, known)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node.module, node.level, name, is_package)
                targets |= _with_parents(base, known)
                for alias in node.names:
                    if f"{base}.{alias.name}" in known:  # `from pkg import module`
                        targets.add(f"{base}.{alias.name}")
        # A module's own packages are where it lives, loaded before it by Python: not a dependency of it.
        graph[name] = targets - _with_parents(name, known)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted; [] when there is none."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        # Iterative, so a deep import chain cannot hit Python's recursion limit.
        nonlocal counter
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def forbidden_imports(graph: Graph, rules: Mapping[str, Iterable[str]]) -> list[str]:
    """'importer -> imported' for each import from a top-level package into one its rule forbids."""
    found = []
    for importer, targets in sorted(graph.items()):
        banned = set(rules.get(importer.split(".")[0], ()))
        found += [f"{importer} -> {t}" for t in sorted(targets) if t.split(".")[0] in banned]
    return found
