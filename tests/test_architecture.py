"""The layering is a rule, not a hope: imports point down (or sideways within a layer),
never up, and no two modules import each other, however indirectly. Modules stay small
enough to read and functions short enough to follow (the limits of issue 10).

The graph is read from the source with ``ast``, so imports inside functions and under
``TYPE_CHECKING`` count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = {
    "baton": ROOT / "runtime" / "baton",
    "baton_operator": ROOT / "operator" / "baton_operator",
}

# Bottom to top: a module may import its own layer or a lower one.
LAYERS: list[tuple[str, ...]] = [
    ("baton.core",),
    ("baton.spec",),
    ("baton.flow", "baton.registry", "baton.schedule"),
    ("baton.repository",),
    ("baton.items",),
    ("baton.step",),
    ("baton.executors",),
    ("baton.launch", "baton.explore"),
    ("baton_operator.k8s",),
    (
        "baton_operator.config",
        "baton_operator.manifests",
        "baton_operator.jobstatus",
        "baton_operator.patching",
        "baton_operator.metrics",
        "baton_operator.ticker",
        "baton_operator.workqueue",
        "baton_operator.tenancy",
        "baton_operator.pgbouncer",
        "baton_operator.valuefrom",
        "baton_operator.podtemplate",
    ),
    ("baton_operator.reconcile",),
    (
        "baton_operator.applier",
        "baton_operator.loop",
        "baton_operator.prefetch",
        "baton_operator.dispatch",
        "baton_operator.retention",
        "baton_operator.schedule",
    ),
    ("baton_operator.handlers", "baton_operator.schedule.handlers"),
    ("baton.cli", "baton.__main__"),
]
# The flat facades import (lazily) from every layer on purpose.
FACADES = {"baton", "baton_operator"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
GENERATED = ("baton.repository.migrations",)


def modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = (package, *path.relative_to(root).with_suffix("").parts)
            name = ".".join(parts).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = modules()


def imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The project modules ``name`` imports (resolved to the deepest existing module)."""
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno


def layer(name: str) -> int | None:
    best: tuple[int, int] | None = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = name == prefix or name.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    return None if best is None else best[0]


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports(m, p)} for m, p in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if m not in FACADES and layer(m) is None] == []


def test_imports_point_down() -> None:
    upward = []
    for name, path in MODULES.items():
        if name in FACADES:
            continue
        mine = layer(name)
        assert mine is not None
        for target, line in imports(name, path):
            theirs = layer(target)
            if target in FACADES or (theirs is not None and theirs > mine):
                upward.append(f"{path.relative_to(ROOT)}:{line}: {name} -> {target}")
    assert upward == []


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: every component with more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    edges = {m: t for m, t in graph().items() if m not in FACADES}
    assert strongly_connected(edges) == []


def test_the_checks_catch_what_they_should() -> None:
    """The two detectors themselves: a cycle is found, an upward edge is ranked up."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("baton.core.status") < layer("baton.repository.engine")  # type: ignore[operator]
    assert layer("baton_operator.reconcile.decide") > layer("baton_operator.k8s.cluster")  # type: ignore[operator]


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not m.startswith(GENERATED)))
def test_modules_and_functions_stay_small(name: str) -> None:
    path = MODULES[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} is too long"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES  # type: ignore[operator]
    ]
    assert long == [], f"{path.relative_to(ROOT)}: {long}"
