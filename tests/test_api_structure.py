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


def _server_imports() -> set[str]:
    return set().union(*(_imports(p) for p in (CURATE / "server").glob("*.py")))


def test_server_and_client_do_not_import_each_other() -> None:
    assert not {m for m in _server_imports() if m.startswith("curate.client")}
    assert not {m for m in _imports(CURATE / "client.py") if m.startswith("curate.server")}
    assert "curate.wire" in _server_imports() and "curate.wire" in _imports(CURATE / "client.py")


def test_wire_imports_neither_server_nor_client() -> None:
    assert not {m for m in _imports(CURATE / "wire.py") if m.startswith(("curate.server", "curate.client"))}


def test_the_server_registers_exactly_the_operation_table(tmp_path: Path) -> None:
    from curate.operations import KINDS, OPERATIONS
    from curate.server import create_app, route_scope

    app = create_app(tmp_path / "ws", {"t": "write"}, use_env_tokens=False)
    served = {(r.name, m, r.path, route_scope(r)) for r in app.routes if route_scope(r)
              for m in r.methods if m != "HEAD"}
    declared = {(op.name, op.method, op.path, op.scope) for op in OPERATIONS}
    assert served == declared
    assert len({op.name for op in OPERATIONS}) == len(OPERATIONS)
    assert all(op.kind in KINDS for op in OPERATIONS)


def test_the_client_names_no_route_path() -> None:
    """The HTTP client reaches every operation through the table (``_call(name)``)."""
    source = (CURATE / "client.py").read_text()
    assert '"/v1' not in source and "'/v1" not in source


#: Public methods only the local workspace has: the server's two-phase select (planned outside
#: the writer lock, stored under it). Only the remote client has: job control and server paths.
LOCAL_ONLY = {"plan_selection", "store_selection"}
REMOTE_ONLY = {"close", "export_on_server", "health", "info", "job", "jobs", "submit_embed",
               "submit_loop", "submit_pretrain", "wait"}


def test_workspace_and_http_client_have_the_same_signatures() -> None:
    import inspect

    from curate.client import RemoteWorkspace
    from curate.workspace import Workspace

    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    local, remote = public(Workspace), public(RemoteWorkspace)
    assert local - remote == LOCAL_ONLY, "a new Workspace method needs its HTTP client method"
    assert remote - local == REMOTE_ONLY
    for name in sorted(local & remote):
        a = inspect.signature(getattr(Workspace, name))
        b = inspect.signature(getattr(RemoteWorkspace, name))
        assert str(a) == str(b), f"{name}: Workspace{a} != RemoteWorkspace{b}"
