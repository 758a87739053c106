"""No two modules of the package import each other, directly or through others.

Imports inside functions count too: a lazy import hides a cycle from Python, not from the reader
who must carry both modules. A package's `__init__` re-exporting its own submodules is not a
dependency of those submodules on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ropd

SRC = Path(ropd.__file__).parent.parent


def modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "ropd").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules `path` imports anywhere in its body."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "ropd":
                found |= {resolve(f"{node.module}.{a.name}") for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {resolve(a.name) for a in node.names if a.name.split(".")[0] == "ropd"}
    return {name for name in found if name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return out


def test_no_module_imports_one_that_imports_it_back() -> None:
    known = modules()
    graph = {
        name: {d for d in imports(path, known) if d != name and not d.startswith(name + ".")}
        for name, path in known.items()
    }
    assert "ropd.llm.client" in graph and "ropd.llm.probe" in graph["ropd.llm.connect"]
    assert cycles(graph) == []


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
