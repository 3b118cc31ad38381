"""Nothing outside :class:`curate.workspace.Workspace` reaches into its private members.

Helpers take a ``Store`` (with :mod:`curate.store_queries` for the shared checks) or call public
workspace methods. Checked on the source of ``curate/`` and ``benchmarks/``: an attribute access
``x._name`` is refused when ``_name`` is a private member of ``Workspace`` and ``x`` is not
``self``/``cls``, or when ``x`` is a variable named like a workspace (``ws``, ``workspace``,
``self.workspace``...) whatever the member.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "curate" / "workspace.py"
WORKSPACE_NAMES = {"ws", "workspace", "local", "_ws", "_workspace", "local_workspace"}


def workspace_private_members(source: str) -> set[str]:
    """Private methods of ``class Workspace`` and the private attributes it assigns on ``self``."""
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Workspace")
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "self" and isinstance(node.ctx, ast.Store)):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def _terminal_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def private_accesses(source: str, filename: str, private: set[str]) -> list[str]:
    """``file:line: expr._name`` for each reach into a workspace's private members."""
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.endswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
            continue
        if node.attr in private or _terminal_name(owner) in WORKSPACE_NAMES:
            found.append((node.lineno, node.col_offset, f"{filename}:{node.lineno}: {ast.unparse(node)}"))
    return [text for _, _, text in sorted(found)]


def test_no_module_calls_private_workspace_members() -> None:
    private = workspace_private_members(WORKSPACE.read_text())
    assert {"_require_samples", "_require_embedding", "_next_run_id"} <= private
    found = []
    for folder in ("curate", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != WORKSPACE:
                found += private_accesses(path.read_text(), str(path.relative_to(ROOT)), private)
    assert not found, "private Workspace members used outside Workspace:\n" + "\n".join(found)


def test_the_scan_finds_private_calls() -> None:
    private = {"_require_samples", "_next_run_id"}
    source = (
        "def f(ws, workspace, other, self):\n"
        "    ws._require_samples()\n"
        "    run = other.store._next_run_id()\n"
        "    workspace._cache.clear()\n"
        "    self.workspace._whatever\n"
        "    self._require_samples()\n"
        "    other._own_private\n"
        "    ws.__class__\n"
    )
    found = private_accesses(source, "m.py", private)
    assert [f.split(": ", 1)[1] for f in found] == [
        "ws._require_samples", "other.store._next_run_id", "workspace._cache", "self.workspace._whatever",
    ]
