"""The package's layers, read from the source with ``ast``: who may import whom, and no cycles.

Every ``import`` and ``from ... import`` in ``interp_magics/`` counts, also inside functions
(a lazy import is still a dependency) and relative ones (resolved against their package);
only imports under ``if TYPE_CHECKING:`` are skipped, since they never run.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "interp_magics"
ROOT = "interp_magics"

# Which layer each module belongs to, by the first component below the package.
LAYER_OF = {
    "core": "core",
    "attention": "analyses",
    "stats": "analyses",
    "patching": "analyses",
    "probes": "analyses",
    "store": "analyses",
    "lens": "analyses",
    "circuits": "analyses",
    "intervene": "analyses",
    "steering": "analyses",
    "features": "analyses",
    "toy": "analyses",
    "testing": "analyses",
    "exercises": "analyses",
    "widgets": "widgets",
    "rigor": "rigor",
    "jupyter": "jupyter",
    "version": "base",
    "": "base",  # interp_magics/__init__.py: lazy public names and the extension entry points
}

# The layers a layer may import from (DESIGN.md, "Layers"). The rigor checker reads
# notebooks without running them and runs inside the server: it reads only the torch-free
# ledger records from core (the torch closure test below keeps that true).
ALLOWED = {
    "base": {"base", "core", "jupyter"},
    "core": {"base", "core"},
    "analyses": {"base", "core", "analyses"},
    "widgets": {"base", "core", "analyses", "widgets"},
    "rigor": {"base", "core", "rigor"},
    "jupyter": {"base", "core", "analyses", "widgets", "rigor", "jupyter"},
}

FRONT_END = {"IPython", "ipywidgets", "anywidget", "comm", "traitlets", "ipykernel"}
JUPYTER = {"jupyter_server", "jupyter_core", "tornado", "nbclient", "nbformat", "notebook"}
HEAVY = {"torch", "numpy", "transformers", "sklearn", "scipy", "pandas", "matplotlib"}

# Third-party imports each layer must never make (directly).
FORBIDDEN = {
    "core": FRONT_END | JUPYTER,
    "analyses": FRONT_END | JUPYTER,
    "widgets": JUPYTER | {"IPython"},
    "rigor": HEAVY | {"anywidget", "ipywidgets", "comm"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Return every module of the package by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Return the absolute names ``node`` imports (submodules where they exist)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    names = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        names.append(sub if sub in modules() else target)
    return names


@cache
def imports_of(module: str) -> frozenset[str]:
    """Return every absolute module name ``module`` imports (outside TYPE_CHECKING)."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(_resolve(module, path.name == "__init__.py", node))
    return frozenset(found)


def layer(module: str) -> str:
    """Return the layer of an interp_magics module."""
    rest = module.removeprefix(ROOT).lstrip(".")
    return LAYER_OF[rest.split(".")[0]]


def internal_edges() -> dict[str, set[str]]:
    """Return the import graph between the package's own modules."""
    return {
        m: {i for i in imports_of(m) if i == ROOT or i.startswith(ROOT + ".")} for m in modules()
    }


def test_every_module_has_a_layer():
    assert {m: layer(m) for m in modules()}  # raises KeyError for a folder without a layer


def test_relative_imports_are_resolved():
    # The reader itself: these edges exist in the source and must be found.
    assert "interp_magics.patching.api" in imports_of("interp_magics.patching")  # `.` in __init__
    assert "interp_magics.core.events" in imports_of("interp_magics.patching.api")  # `..`
    assert "interp_magics.core.records" in imports_of("interp_magics.core.events")
    assert "interp_magics.jupyter.state" in imports_of("interp_magics.jupyter.magics")


@pytest.mark.parametrize("module", sorted(modules()))
def test_layers_import_only_from_the_layers_above(module):
    own = layer(module)
    wrong = {
        target: layer(target)
        for target in internal_edges()[module]
        if layer(target) not in ALLOWED[own]
    }
    assert not wrong, f"{module} ({own} layer) imports {wrong}"
    third_party = {i.split(".")[0] for i in imports_of(module)}
    bad = third_party & FORBIDDEN.get(own, set())
    assert not bad, f"{module} ({own} layer) imports {sorted(bad)}"


def test_widgets_import_no_magics():
    for module in modules():
        if layer(module) == "widgets":
            assert not any(i.startswith("IPython.core.magic") for i in imports_of(module))


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(internal_edges().get(current, ()))
    return seen


@pytest.mark.parametrize("module", ["interp_magics.jupyter.server", "interp_magics.rigor"])
def test_the_server_and_the_checker_never_import_torch(module):
    reached = _closure(module)
    heavy = {
        m: sorted({i.split(".")[0] for i in imports_of(m)} & HEAVY)
        for m in reached
        if m in modules()
    }
    assert not {m: h for m, h in heavy.items() if h}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(internal_edges()) == []


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
