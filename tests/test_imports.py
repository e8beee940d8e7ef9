"""The shape of the package, read from its imports with `ast`: no cycles, and the checks
see the input only through the model (forensics.read.model) and the member source
(forensics.read.source), never through the streaming core or a reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "forensics"
CHECKS = ("forensics.verify", "forensics.history", "forensics.compare", "forensics.render")
ALLOWED_READ = {"forensics.read.model", "forensics.read.source"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(path: Path, name: str, modules: dict[str, Path], *, top_level_only: bool) -> set[str]:
    """The forensics modules `path` imports (`from a import b` counts as a.b when that is a module).
    `top_level_only`: only the imports that run when the module is loaded (what makes a cycle)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if top_level_only and isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks never run
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    return {m for m in found if m in modules}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    return {n: _imports(p, n, modules, top_level_only=top_level_only) for n, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_walk_sees_the_package():
    graph = _graph(top_level_only=False)
    # the walk is not vacuous: it finds the wiring the architecture describes
    assert "forensics.read" in graph["forensics.pipeline"]
    assert "forensics.read.model" in graph["forensics.verify.blobs"]
    assert "forensics.read.source" in graph["forensics.history.copyhash"]


def test_no_import_cycle_between_modules():
    graph = _graph(top_level_only=True)
    # A package's __init__ runs before any of its modules: importing a.b imports a too.
    for n in list(graph):
        graph[n] = graph[n] | {m.rpartition(".")[0] for m in graph[n] if m.rpartition(".")[0] in graph and m != n}
        graph[n].discard(n)
        graph[n] -= {p for p in graph if n.startswith(p + ".")}  # a module's own packages are not a cycle
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_cycle_detection_works():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("check", CHECKS)
def test_checks_see_only_the_model_and_the_source(check):
    graph = _graph(top_level_only=False)  # a function-local import counts too
    bad = {
        f"{n} imports {m}"
        for n, deps in graph.items()
        if n == check or n.startswith(check + ".")
        for m in deps
        if m == "forensics.archive"
        or m.startswith("forensics.archive.")
        or ((m == "forensics.read" or m.startswith("forensics.read.")) and m not in ALLOWED_READ)
    }
    assert not bad, sorted(bad)
