"""The import structure: ``workflows`` may import ``pipeline``, never the reverse (the CLI,
which builds workflows, aside); the numeric models never import nipype; no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("pipeline", "workflows")
#: the package of ``pipeline`` allowed to import ``workflows`` (it builds and runs them)
BUILDS_WORKFLOWS = "pipeline.cli"


def _modules() -> dict:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            mods[name] = path
    return mods


def _imports(name: str, path: Path) -> set:
    """Every module of this project that ``name`` imports, at any depth of the file
    (function-level imports count: they are still dependencies)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def _graph() -> dict:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for imp in _imports(name, path):
            while imp and imp not in mods:  # pipeline.metadata.dce_metadata -> module
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                deps.add(imp)
        graph[name] = deps
    return graph


def test_workflows_import_pipeline_never_the_reverse():
    graph = _graph()
    wrong = {
        m: sorted(d for d in deps if d.startswith("workflows"))
        for m, deps in graph.items()
        if m.startswith("pipeline") and not m.startswith(BUILDS_WORKFLOWS)
    }
    assert not {m: d for m, d in wrong.items() if d}, wrong


def test_numeric_models_do_not_import_nipype():
    for path in sorted((ROOT / "pipeline" / "models").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not [n for n in names if n.split(".")[0] == "nipype"], path


def test_no_import_circle():
    graph = _graph()
    # package __init__ files import nothing of their own here; a cycle through one would be
    # a real cycle too
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_a_circle():
    """The circle finder is not vacuous: the old bids -> preflight -> workflows.base -> bids
    circle is found when planted in a copy of the graph."""
    graph = _graph()
    assert graph["pipeline.plan"] >= {"pipeline.bids", "pipeline.metadata"}
    assert "pipeline.plan" in graph["pipeline.preflight"]
    planted = {k: set(v) for k, v in graph.items()}
    planted["pipeline.bids"].add("pipeline.preflight")
    planted["pipeline.preflight"].add("workflows.base")
    planted["workflows.base"].add("pipeline.bids")
    seen = []

    def visit(node, path):
        for dep in planted.get(node, ()):
            if dep in path:
                seen.append(path[path.index(dep) :])
                return
            if len(path) < 6:
                visit(dep, path + [dep])

    visit("pipeline.bids", ["pipeline.bids"])
    assert seen
