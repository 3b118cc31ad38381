"""The HTTP service's edges: token matrix, path confinement, body size limit, error mapping.

A real uvicorn server on 127.0.0.1 (background thread) over a copy of the embedded template
workspace; requests with httpx, no mocks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import curate
from curate.auth import (
    AuthenticationError,
    PermissionDeniedError,
    TokenSet,
    add_token,
    digest,
    load_tokens,
    parse_token_spec,
)
from curate.errors import BudgetError, InvalidInputError, NotFoundError
from curate.server import BackgroundServer, create_app
from index.errors import FilterError

READ_TOKEN = "read-token-0123"
WRITE_TOKEN = "write-token-4567"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedded_template: Path, synth_root: Path) -> Iterator[BackgroundServer]:
    path = tmp_path_factory.mktemp("auth") / "ws"
    shutil.copytree(embedded_template, path)
    app = create_app(path, {READ_TOKEN: "read", WRITE_TOKEN: "write"},
                     data_roots=[synth_root.parent], max_body_bytes=LIMIT, use_env_tokens=False)
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _h(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


READ_CALLS = [
    ("GET", "/v1/info", None),
    ("GET", "/v1/runs", None),
    ("GET", "/v1/embeddings", None),
    ("GET", "/v1/frames/count", None),
    ("POST", "/v1/frames", {"columns": ["id"]}),
    ("POST", "/v1/search", {"embedding": "bev-hist", "ids": ["000000"], "k": 2}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/scores", None),
    ("GET", "/v1/labeled", None),
]
WRITE_CALLS = [
    ("POST", "/v1/label", {"ids": ["000000"]}),
    ("POST", "/v1/select", {"strategy": "random", "budget": 1, "embedding": "bev-hist"}),
    ("POST", "/v1/jobs/embed", {"model": "bev-hist"}),
    ("POST", "/v1/ingest", {"kind": "kitti", "root": "kitti"}),
    ("POST", "/v1/labels/import", {"paths": ["kitti/training/label_2/000000.txt"]}),
    ("POST", "/v1/embeddings/fuse", {"sources": ["bev-hist"], "name": "f"}),
    ("POST", "/v1/scores/p1", {"ids": ["000000"], "columns": {"entropy_mean": [0.5]}}),
    ("POST", "/v1/runs/run-000001/export", {"format": "csv", "path": "x.csv"}),
]


@pytest.mark.parametrize("method,path,body", READ_CALLS + WRITE_CALLS)
def test_no_or_bad_token_is_401_with_a_message(http: httpx.Client, method: str, path: str, body: dict) -> None:
    for headers in ({}, _h("not-a-token"), {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        r = http.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        err = r.json()["error"]
        assert err["type"] == "AuthenticationError" and err["message"]


@pytest.mark.parametrize("method,path,body", WRITE_CALLS)
def test_read_token_on_a_write_is_403(http: httpx.Client, method: str, path: str, body: dict) -> None:
    r = http.request(method, path, json=body, headers=_h(READ_TOKEN))
    assert r.status_code == 403, r.text
    assert "write" in r.json()["detail"]


@pytest.mark.parametrize("method,path,body", READ_CALLS)
def test_read_and_write_tokens_may_read(http: httpx.Client, method: str, path: str, body: dict) -> None:
    for token in (READ_TOKEN, WRITE_TOKEN):
        r = http.request(method, path, json=body, headers=_h(token))
        assert r.status_code == 200, r.text


def test_health_and_openapi_are_public(http: httpx.Client) -> None:
    assert http.get("/health").json()["status"] == "ok"
    schema = http.get("/openapi.json").json()
    assert "/v1/select" in schema["paths"] and "/v1/search" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_write_token_can_write(server: BackgroundServer) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    report = ws.label(["000001"])
    assert report.labeled_total >= 1 and "000001" in ws.labeled_ids()


@pytest.mark.parametrize("root", ["/etc", "../../..", "kitti/../../..", "/", "..", "kitti/../../../etc/passwd"])
def test_ingest_outside_data_roots_is_refused(server: BackgroundServer, root: str) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    before = ws.count()
    with pytest.raises(PermissionDeniedError, match="outside the folders"):
        ws.ingest({"kind": "kitti", "root": root})
    assert ws.count() == before


def test_symlink_out_of_a_data_root_is_refused(server: BackgroundServer, synth_root: Path, tmp_path: Path) -> None:
    link = synth_root.parent / "escape-link"
    link.symlink_to(tmp_path, target_is_directory=True)
    try:
        ws = curate.connect(server.url, token=WRITE_TOKEN)
        with pytest.raises(PermissionDeniedError):
            ws.ingest({"kind": "folder", "root": "escape-link"})
    finally:
        link.unlink()


def test_ingest_inside_a_data_root_by_relative_path(server: BackgroundServer, synth_root: Path) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    before = ws.count()
    report = ws.ingest({"kind": "kitti", "root": synth_root.name})
    assert report.frames_seen == before and report.frames_total == before  # upsert: no new rows


@pytest.mark.parametrize("path", ["../x.csv", "/tmp/x.csv", "a/../../x.csv", "../../../../etc/x.csv", "."])
def test_server_side_export_stays_in_exports(server: BackgroundServer, path: str) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    run = ws.select("random", 2, embedding="bev-hist", seed=1)
    with pytest.raises((PermissionDeniedError, InvalidInputError)):
        ws.export_on_server(run.run_id, "csv", path)
    assert ws.export_on_server(run.run_id, "csv", "sub/dir/ok.csv") == "sub/dir/ok.csv"


def test_label_files_outside_roots_are_refused(server: BackgroundServer) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    with pytest.raises(PermissionDeniedError, match="label path"):
        ws.import_labels(["kitti/../../../etc/hostname"])


def test_every_route_but_health_needs_a_token(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            public = path == "/health"
            assert bool(op.get("security")) != public, (method, path)


def test_checkpoint_path_outside_roots_is_refused(server: BackgroundServer) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    with pytest.raises(PermissionDeniedError, match="checkpoint"):
        ws.submit_embed("recon-tiny", checkpoint="/etc/passwd")


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    ids = [f"{i:06d}" for i in range(LIMIT // 8)]
    r = http.post("/v1/label", json={"ids": ids}, headers=_h(WRITE_TOKEN))
    assert r.status_code == 413
    assert "limit" in r.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"ids": ['
        for _ in range(LIMIT // 1000 + 2):
            yield b'"' + b"a" * 1000 + b'",'
        yield b'"b"]}'

    r = http.post("/v1/label", content=chunks(), headers={**_h(WRITE_TOKEN), "Content-Type": "application/json"})
    assert r.status_code == 413


def test_body_under_the_limit_passes(server: BackgroundServer) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    with pytest.raises(NotFoundError, match="not frames of this workspace"):
        ws.label([f"missing-{i}" for i in range(500)])


def test_errors_come_back_as_the_same_classes(server: BackgroundServer) -> None:
    ws = curate.connect(server.url, token=WRITE_TOKEN)
    with pytest.raises(BudgetError, match="larger than"):
        ws.select("kcenter", 10_000, embedding="bev-hist")
    with pytest.raises(NotFoundError, match="no run 'run-999999'"):
        ws.run("run-999999")
    with pytest.raises(FilterError, match="invalid where-filter") as info:
        ws.count("weather ===")
    assert info.value.where == "weather ==="
    with pytest.raises(NotFoundError, match="unknown strategy|valid"):
        ws.select("no-such-strategy", 1, embedding="bev-hist")
    with pytest.raises(NotFoundError, match="no embedding named"):
        ws.search("nope", ids=["000000"])


@pytest.mark.parametrize("body", [
    {"strategy": "random"},
    {"strategy": "random", "budget": "x", "embedding": "bev-hist"},
    {"strategy": "random", "budget": 1, "embedding": "bev-hist", "bogus": 1},
    [],
    "not json",
])
def test_malformed_bodies_are_422_with_a_message(http: httpx.Client, body: object) -> None:
    r = http.post("/v1/select", content=json.dumps(body) if body != "not json" else b"{nope",
                  headers={**_h(WRITE_TOKEN), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("invalid request")


def test_unknown_route_is_404_with_a_message(http: httpx.Client) -> None:
    r = http.get("/v1/nothing-here", headers=_h(READ_TOKEN))
    assert r.status_code == 404 and "no route" in r.json()["detail"]


# ---------------------------------------------------------------------- auth module
def test_token_set_checks_scope_and_rejects_unknown() -> None:
    tokens = TokenSet.from_mapping({"a": "read", "b": "write"})
    assert tokens.check("Bearer a", "read").scope == "read"
    assert tokens.check("bearer  b ", "write").scope == "write"
    with pytest.raises(PermissionDeniedError):
        tokens.check("Bearer a", "write")
    for header in (None, "", "Bearer", "Token a", "Bearer c", "Bearer ab"):
        with pytest.raises(AuthenticationError):
            tokens.check(header, "read")


def test_tokens_file_env_and_args_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = add_token(tmp_path, scope="write", name="ci")
    stored = json.loads((tmp_path / "tokens.json").read_text())["tokens"]
    assert stored == [{"name": "ci", "scope": "write", "sha256": digest(secret)}]
    assert secret not in (tmp_path / "tokens.json").read_text()
    monkeypatch.setenv("CURATE_TOKENS", "env-r:read, env-w:write")
    tokens = load_tokens(tmp_path, {"arg": "read"})
    assert len(tokens) == 4
    assert tokens.check(f"Bearer {secret}", "write").name == "ci"
    assert tokens.check("Bearer env-w", "write").scope == "write"
    with pytest.raises(PermissionDeniedError):
        tokens.check("Bearer arg", "write")


@pytest.mark.parametrize("spec", ["tok", "tok:admin", ":read"])
def test_bad_token_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_token_spec(spec)


def test_server_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no tokens configured"):
        create_app(tmp_path / "ws", use_env_tokens=False)


def test_corrupt_tokens_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "tokens.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="tokens file"):
        load_tokens(tmp_path)
