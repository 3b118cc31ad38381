"""Structure of the API packages, checked on the source: the server and the HTTP client share
:mod:`curate.wire` and never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

CURATE = Path(__file__).resolve().parents[1] / "curate"


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_server_and_client_do_not_import_each_other() -> None:
    assert not {m for m in _imports(CURATE / "server.py") if m.startswith("curate.client")}
    assert not {m for m in _imports(CURATE / "client.py") if m.startswith("curate.server")}
    assert "curate.wire" in _imports(CURATE / "server.py") and "curate.wire" in _imports(CURATE / "client.py")


def test_wire_imports_neither_server_nor_client() -> None:
    assert not {m for m in _imports(CURATE / "wire.py") if m.startswith(("curate.server", "curate.client"))}
