"""The import graph of ``curate`` (and of ``index`` / ``embedders``), built from the source.

Every import statement counts: at module level, inside functions and under ``if TYPE_CHECKING:``.
A lazy import inside a function still says "this module needs that one", so a cycle closed by a
function-level import is a cycle. Imports of packages outside the project (torch, mmdet3d, ray)
are not edges of the graph at all.

What is not an edge: the package ``__init__`` Python runs before a submodule (``a.b.c`` runs
``a.b`` first). That is how Python loads packages, not a dependency the submodule declares; an
explicit ``from a.b import name`` inside ``a.b.c`` is an edge to ``a.b``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]

Edges = dict[str, dict[str, list[tuple[str, int]]]]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` below ``root``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _targets(module: str, is_package: bool, node: ast.AST, known: set[str]) -> list[str]:
    """The project modules one import statement names (the longest known module of each name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # ``from pkg import sub`` names the module pkg.sub when there is one, else pkg
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                 for alias in node.names]
    out = []
    for name in names:
        parts = name.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        if parts:
            out.append(".".join(parts))
    return out


def import_graph(modules: dict[str, Path], root: Path) -> Edges:
    """``edges[a][b]`` = the ``(file, line)`` of every import of ``b`` in ``a`` (a != b)."""
    known = set(modules)
    edges: Edges = {m: {} for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path.name == "__init__.py", node, known):
                    if target != module:
                        where = (str(path.relative_to(root)), node.lineno)
                        edges[module].setdefault(target, []).append(where)
    return edges


def strongly_connected(edges: Edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, O(V + E))."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def one_cycle(edges: Edges, component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (BFS)."""
    inside = set(component)
    start = component[0]
    parent: dict[str, Optional[str]] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(edges.get(v, {})):
                if w not in inside:
                    continue
                if w == start:
                    path = [v]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])  # type: ignore[arg-type]
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")  # pragma: no cover


def describe_cycles(edges: Edges) -> str:
    """Every cycle found, one per strongly connected component, with the import lines."""
    lines = []
    for component in strongly_connected(edges):
        cycle = one_cycle(edges, component)
        lines.append(f"cycle among {len(component)} modules ({', '.join(component)}):")
        for a, b in zip(cycle, cycle[1:]):
            file, line = edges[a][b][0]
            lines.append(f"    {a} -> {b}   ({file}:{line})")
    return "\n".join(lines)


def test_curate_has_no_import_cycle() -> None:
    edges = import_graph(module_files(ROOT, "curate"), ROOT)
    assert len(edges) > 50 and sum(len(t) for t in edges.values()) > 100  # the graph was read
    report = describe_cycles(edges)
    assert not report, "import cycles in curate (lazy imports count):\n" + report


def test_index_and_embedders_never_import_curate_or_each_other() -> None:
    for package, forbidden in (("index", ("curate", "embedders")), ("embedders", ("curate", "index"))):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                         else [])
                bad = [n for n in names if n.split(".")[0] in forbidden]
                assert not bad, f"{path.relative_to(ROOT)}:{node.lineno} imports {bad[0]}"


def test_each_package_has_no_import_cycle() -> None:
    for package in ("index", "embedders"):
        edges = import_graph(module_files(ROOT, package), ROOT)
        report = describe_cycles(edges)
        assert not report, f"import cycles in {package}:\n" + report


def test_the_checker_finds_lazy_and_type_only_cycles(tmp_path: Path) -> None:
    """The graph counts function-level and TYPE_CHECKING imports, relative ones included."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.c import C\n")
    (pkg / "a.py").write_text("def f():\n    from pkg.b import g\n    return g\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    (pkg / "sub" / "c.py").write_text("from .. import b\nclass C: pass\n")
    (pkg / "sub" / "d.py").write_text("from . import C\n")  # package, not a cycle with sub
    edges = import_graph(module_files(tmp_path, "pkg"), tmp_path)
    assert set(edges["pkg.sub.c"]) == {"pkg.b"} and set(edges["pkg.sub.d"]) == {"pkg.sub"}
    assert strongly_connected(edges) == [["pkg.a", "pkg.b"]]
    report = describe_cycles(edges)
    assert "pkg.a -> pkg.b   (pkg/a.py:2)" in report and "pkg.b -> pkg.a   (pkg/b.py:3)" in report
    # a package importing its submodule and that submodule importing the package is a cycle
    (pkg / "sub" / "c.py").write_text("from pkg.sub import d\nclass C: pass\n")
    edges = import_graph(module_files(tmp_path, "pkg"), tmp_path)
    assert ["pkg.sub", "pkg.sub.c", "pkg.sub.d"] in strongly_connected(edges)
