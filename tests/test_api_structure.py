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


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


def test_every_operation_has_one_signature_on_the_interface_workspace_and_client() -> None:
    """``inspect.signature`` of every declared operation is the same on the Protocol, on
    ``Workspace`` and on the HTTP client; every public method of either is an operation of the
    interface or one of the few declared local-only / remote-only ones."""
    import inspect

    from curate.client import RemoteWorkspace
    from curate.interface import LOCAL_ONLY, OPERATION_NAMES, REMOTE_ONLY, WorkspaceAPI
    from curate.workspace import Workspace

    declared = set(OPERATION_NAMES)
    assert len(declared) > 20
    assert _public(Workspace) - declared == LOCAL_ONLY, "a public Workspace method must be declared"
    assert _public(RemoteWorkspace) - declared == REMOTE_ONLY
    for name in OPERATION_NAMES:
        want = inspect.signature(getattr(WorkspaceAPI, name))
        for cls in (Workspace, RemoteWorkspace):
            assert name in vars(cls), f"{cls.__name__} does not implement {name}"
            got = inspect.signature(getattr(cls, name))
            assert str(got) == str(want), f"{name}: {cls.__name__}{got} != WorkspaceAPI{want}"
    assert issubclass(Workspace, WorkspaceAPI) and issubclass(RemoteWorkspace, WorkspaceAPI)


def test_every_interface_method_is_served_by_the_table() -> None:
    """Each interface method has an operation (``api=``) or is computed in the client; the
    client's generated methods are exactly the operations marked ``generated``, every other one
    is written in the client's class body."""
    import ast

    from curate.client import RemoteWorkspace
    from curate.interface import OPERATION_NAMES
    from curate.operations import CLIENT_SIDE, GENERATED, OPERATIONS

    served = {op.api: op for op in OPERATIONS if op.api is not None}
    assert len(served) == len([op for op in OPERATIONS if op.api is not None]), "two routes serve one method"
    assert set(OPERATION_NAMES) == set(served) | CLIENT_SIDE and not set(served) & CLIENT_SIDE
    tree = ast.parse((CURATE / "client.py").read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RemoteWorkspace")
    written = {n.name for n in body.body if isinstance(n, ast.FunctionDef)}
    generated = {api for api, op in served.items() if op.client == GENERATED}
    assert len(generated) >= 10
    for api in OPERATION_NAMES:
        method = getattr(RemoteWorkspace, api)
        if api in generated:
            assert api not in written and method.__operation__ == served[api].name
        else:
            assert api in written, f"{api} is neither generated nor written in the client"


def test_request_bodies_are_derived_from_the_signatures() -> None:
    """A derived body has the method's arguments as fields, with their defaults."""
    import inspect

    from curate.interface import WorkspaceAPI
    from curate.operations import OPERATIONS, operation
    from curate.requests import REQUESTS, LoopRequest, ExportRequest
    from curate.api import SourceSpec

    hand_written = {SourceSpec, LoopRequest, ExportRequest}
    assert set(REQUESTS) <= {op.name for op in OPERATIONS}
    for name, model in REQUESTS.items():
        if model in hand_written:
            continue
        params = inspect.signature(getattr(WorkspaceAPI, operation(name).api)).parameters
        for field, info in model.model_fields.items():
            assert field in params, f"{model.__name__}.{field} is no argument of {operation(name).api}"
            default = params[field].default
            if default is not inspect.Parameter.empty and params[field].kind is not inspect.Parameter.VAR_KEYWORD:
                assert info.default == default, f"{model.__name__}.{field}"
        assert len(model.model_fields) >= len(params) - 5  # only a few arguments stay local


def test_an_operation_added_in_three_places_works_locally_and_over_http(tmp_path: Path,
                                                                        embedded_template: Path) -> None:
    """``versions`` was added as its implementation, its declaration in the interface and one
    line of the operation table: the route, its scope, the client method and the congruence
    come from those."""
    import shutil

    import curate
    from curate.server import BackgroundServer, create_app

    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    local = curate.connect(path)
    want = local.versions()
    assert want["samples"] >= 1 and "embedding:bev-hist" in want
    with BackgroundServer(create_app(path, {"t": "read"}, use_env_tokens=False)) as server:
        assert curate.connect(server.url, token="t").versions() == want


def test_docstrings_are_the_interface_ones() -> None:
    """Each operation's docstring is written once, on the interface: ``Workspace`` (which
    subclasses it) inherits it rather than repeating it, and the client's generated methods
    carry it."""
    import inspect

    from curate.client import RemoteWorkspace
    from curate.interface import OPERATION_NAMES, WorkspaceAPI
    from curate.workspace import Workspace

    for name in OPERATION_NAMES:
        declared = inspect.getdoc(getattr(WorkspaceAPI, name))
        assert declared, f"WorkspaceAPI.{name} has no docstring"
        assert getattr(Workspace, name).__doc__ is None, f"Workspace.{name} repeats the interface docstring"
        assert inspect.getdoc(getattr(Workspace, name)) == declared
        if hasattr(getattr(RemoteWorkspace, name), "__operation__"):
            assert inspect.getdoc(getattr(RemoteWorkspace, name)) == declared
