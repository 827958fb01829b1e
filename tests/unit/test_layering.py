"""The package's layers, and the one direction its imports may point.

    values (errors, config, models, policy, ...) → store → runtime → facade (Queue) →
    edges (api, lab, bench, cli)

A module imports from its own layer or the layers before it, never after. Every import
counts: at the top, inside a function, and under ``if TYPE_CHECKING`` (a cycle hidden by a
function-local import is still a cycle). Read from the source with :mod:`ast`, so nothing
is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "queuelab"

VALUES = (
    "errors",
    "extras",
    "bounds",
    "config",
    "clock",
    "models",
    "limits",
    "policy",
    "tasks",
    "submission",
    "ids",
    "looper",
    "schedules",
    "logs",
    "throttles",
)
FACADE = ("queue", "arguments", "stats", "explain", "testing", "periodic")
# Rank of each layer; a module may import ranks <= its own.
RANKS = {"values": 0, "store": 1, "runtime": 2, "facade": 3, "edge": 4}
# Edges are independent of each other, except these (a tool that serves or measures another).
EDGE_TO_EDGE = {
    ("bench", "api"),  # the API benchmark starts the real server
    ("cli", "lab"),  # `queuelab demo` and `queuelab simulate`
    ("lab", "api"),  # the control panel's "Start API" (the design card's "launchable HTTP API")
    ("main", "cli"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[str, str]:
    """(layer, group): group tells edges apart (api, lab, bench, cli)."""
    parts = module.split(".")
    if len(parts) == 1:
        return ("facade", "package")  # queuelab/__init__: public names, never an edge
    head = parts[1]
    if head in VALUES:
        return ("values", head)
    if head in ("store", "runtime"):
        return (head, head)
    if head in FACADE:
        return ("facade", head)
    if head == "__main__":
        return ("edge", "main")
    if head in ("cli_jobs", "cli_schedules"):  # the CLI's job and schedule commands: one edge with queuelab.cli
        return ("edge", "cli")
    return ("edge", head)


def imports_of(path: Path) -> set[str]:
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> set[str]:
    """Every queuelab module the source imports, wherever the import statement is
    (``package``: the package it is in, for relative imports)."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "queuelab"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] != "queuelab":
                continue
            for alias in node.names:  # `from queuelab import lab` imports the module queuelab.lab
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_graph_was_read() -> None:
    assert "queuelab.runtime.worker" in GRAPH
    assert "queuelab.store.leases" in GRAPH["queuelab.runtime.worker"] or any(
        m.startswith("queuelab.store") for m in GRAPH["queuelab.runtime.worker"]
    )
    assert len(GRAPH) > 60


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module: str) -> None:
    layer, group = layer_of(module)
    wrong = []
    for target in sorted(GRAPH[module]):
        their_layer, their_group = layer_of(target)
        if target == "queuelab" and layer != "edge":
            wrong.append(f"{target} (the package's public names: import the module that defines the name)")
        elif RANKS[their_layer] > RANKS[layer]:
            wrong.append(f"{target} ({their_layer} is above {layer})")
        elif layer == their_layer == "edge" and group != their_group and (group, their_group) not in EDGE_TO_EDGE:
            wrong.append(f"{target} (edges do not import each other: {group} -> {their_group})")
    assert wrong == [], f"{module} ({layer}) imports against the layering: {wrong}"


def test_no_import_cycles() -> None:
    """Between modules, counting every import; a package's __init__ re-exporting its own
    submodules is the only loop allowed (it is how a package names its contents)."""
    edges = {
        m: {t for t in targets if t in GRAPH and not _reexport(m, t) and not _reexport(t, m)}
        for m, targets in GRAPH.items()
    }
    cycles = [sorted(c) for c in _strongly_connected(edges) if len(c) > 1]
    assert cycles == []


def _reexport(package: str, module: str) -> bool:
    return (PACKAGE.parent.joinpath(*package.split("."), "__init__.py")).exists() and module.startswith(package + ".")


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_a_hidden_cycle_is_seen() -> None:
    """The checker itself: a function-local import and a TYPE_CHECKING import are edges."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from queuelab.runtime.worker import Worker\n"
        "def f():\n    from queuelab.lab import plots\n"
    )
    assert imports_in(source, "queuelab.store") == {"queuelab.runtime.worker", "queuelab.lab.plots"}


# -- the facade is the only door ---------------------------------------------------------------
#
# The edges call Queue, never what is behind it. The checks are by attribute name (ast has no
# types), which is enough: no edge has another reason to read an attribute called `runtime`.

EDGES = ("api", "lab", "bench", "cli", "main")
PAST_THE_FACADE = ("runtime", "_runtime")  # Queue._runtime (was Queue.runtime)
STORE_DOOR = ("bench",)  # the edges that measure the store itself, through Queue.database
EDGE_MODULES = sorted(m for m in GRAPH if layer_of(m)[0] == "edge" and layer_of(m)[1] in EDGES)


def source_of(module: str) -> str:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()


def reaches_past_the_facade(source: str, *, store_door: bool = False) -> list[str]:
    """Each ``x.runtime`` / ``x._runtime`` read in the source (``queuelab.runtime`` as a
    module path aside) and, unless ``store_door``, each ``x.database`` where x is not self."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        owner = ast.unparse(node.value)
        if node.attr in PAST_THE_FACADE and owner != "queuelab":
            found.append((node.lineno, f"{owner}.{node.attr}"))
        elif node.attr == "database" and not store_door and owner != "self":
            found.append((node.lineno, f"{owner}.database (the bench's door to the store)"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_the_edges_were_found() -> None:
    assert {"queuelab.api.app", "queuelab.lab.frames", "queuelab.bench.floor", "queuelab.cli"} <= set(EDGE_MODULES)


@pytest.mark.parametrize("module", EDGE_MODULES)
def test_the_edges_go_through_the_facade(module: str) -> None:
    """The API, lab, bench and CLI call Queue: not its runtime, and not queuelab.testing
    (the tests' door); only the bench reads Queue.database."""
    store_door = layer_of(module)[1] in STORE_DOOR
    assert reaches_past_the_facade(source_of(module), store_door=store_door) == []
    assert "queuelab.testing" not in GRAPH[module]


def test_a_reach_past_the_facade_is_seen() -> None:
    """The checker itself."""
    source = (
        "import queuelab.runtime.pool\n"
        "q.runtime.db\nqueue._runtime.clock.now()\nself.q.runtime\n"
        "queuelab.runtime.pool.Pool\nself.database.value\nq.database.read()\n"
    )
    assert reaches_past_the_facade(source) == [
        "line 2: q.runtime",
        "line 3: queue._runtime",
        "line 4: self.q.runtime",
        "line 7: q.database (the bench's door to the store)",
    ]
    assert reaches_past_the_facade("q.database.read()\n", store_door=True) == []
