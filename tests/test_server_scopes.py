"""Token scopes proven on the app's own route table (not on a hand-kept list of calls).

Every route of :func:`curate.server.create_app` except the public ones: no token -> 401; a read
token on a write route -> 403; a read token on a read route -> 2xx. A route added without a scope,
or a read route without an example request below, fails these tests.
A real uvicorn server on 127.0.0.1 over a copy of the embedded template.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from curate.server import BackgroundServer, create_app, route_scope

READ_TOKEN = "scopes-read-token"
WRITE_TOKEN = "scopes-write-token"
PUBLIC = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

#: An example request of every read route: (path parameters, query, JSON body). ``{run_id}``,
#: ``{job_id}`` and ``{run}`` are filled with objects the fixture creates.
READ_EXAMPLES: dict[tuple[str, str], tuple[dict[str, str], dict[str, Any], Any]] = {
    ("GET", "/v1/info"): ({}, {}, None),
    ("GET", "/v1/frames/count"): ({}, {"where": "frame_index >= 0"}, None),
    ("POST", "/v1/frames"): ({}, {}, {"columns": ["id"]}),
    ("POST", "/v1/boxes"): ({}, {}, {"frame_ids": ["000000"]}),
    ("GET", "/v1/labeled"): ({}, {}, None),
    ("GET", "/v1/embeddings"): ({}, {}, None),
    ("GET", "/v1/embeddings/{name}"): ({"name": "bev-hist"}, {}, None),
    ("POST", "/v1/embeddings/{name}/vectors"): ({"name": "bev-hist"}, {}, {"ids": ["000000"]}),
    ("GET", "/v1/jobs"): ({}, {}, None),
    ("GET", "/v1/jobs/{job_id}"): ({}, {}, None),
    ("GET", "/v1/scores"): ({}, {}, None),
    ("POST", "/v1/scores/{run}/read"): ({}, {}, {"ids": ["000000"]}),
    ("GET", "/v1/runs"): ({}, {}, None),
    ("GET", "/v1/runs/{run_id}"): ({}, {}, None),
    ("GET", "/v1/runs/{run_id}/reproduce"): ({}, {}, None),
    ("GET", "/v1/runs/{run_id}/export"): ({}, {"format": "csv"}, None),
    ("POST", "/v1/search"): ({}, {}, {"embedding": "bev-hist", "ids": ["000000"], "k": 2}),
    ("GET", "/v1/problems"): ({}, {"severity": "error"}, None),
    ("GET", "/v1/versions"): ({}, None, None),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedded_template: Path,
           synth_root: Path) -> Iterator[tuple[Any, httpx.Client, dict[str, str]]]:
    """(app, client, objects) with a stored run, a score run and a finished job."""
    path = tmp_path_factory.mktemp("scopes") / "ws"
    shutil.copytree(embedded_template, path)
    app = create_app(path, {READ_TOKEN: "read", WRITE_TOKEN: "write"}, data_roots=[synth_root.parent],
                     use_env_tokens=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        w = {"Authorization": f"Bearer {WRITE_TOKEN}"}
        run = http.post("/v1/select", json={"strategy": "random", "budget": 2, "embedding": "bev-hist"},
                        headers=w).json()["run"]["run_id"]
        assert http.post("/v1/scores/p1", json={"ids": ["000000"], "columns": {"entropy_mean": [0.5]}},
                         headers=w).status_code == 200
        job = http.post("/v1/jobs/embed", json={"model": "bev-hist"}, headers=w).json()["job_id"]
        for _ in range(600):
            if http.get(f"/v1/jobs/{job}", headers=w).json()["state"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        yield app, http, {"run_id": run, "job_id": job, "run": "p1"}


def _routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, route) of every route of the app, HEAD left out."""
    rows = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                rows.append((method, route.path, route))
    return rows


def _url(template: str, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: params.get(m.group(1), "x"), template)


def test_every_route_is_public_or_has_a_scope(served: tuple) -> None:
    app = served[0]
    rows = _routes(app)
    assert len(rows) > 25
    for method, path, route in rows:
        scope = route_scope(route)
        assert (scope is None) == (path in PUBLIC), (method, path, scope)
        assert scope in (None, "read", "write")


def test_no_token_is_401_on_every_route(served: tuple) -> None:
    app, http, objects = served
    for method, path, route in _routes(app):
        if path in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = http.request(method, _url(path, objects), json={} if method == "POST" else None,
                             headers=headers)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json()["error"]["type"] == "AuthenticationError"


def test_read_token_on_every_write_route_is_403(served: tuple) -> None:
    app, http, objects = served
    writes = [(m, p) for m, p, r in _routes(app) if route_scope(r) == "write"]
    assert len(writes) >= 10
    for method, path in writes:
        r = http.request(method, _url(path, objects), json={},
                         headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert "write" in r.json()["detail"]


def test_read_token_succeeds_on_every_read_route(served: tuple) -> None:
    app, http, objects = served
    reads = [(m, p) for m, p, r in _routes(app) if route_scope(r) == "read"]
    missing = sorted(set(reads) - set(READ_EXAMPLES))
    assert not missing, f"read routes without an example request in READ_EXAMPLES: {missing}"
    for method, path in reads:
        params, query, body = READ_EXAMPLES[(method, path)]
        r = http.request(method, _url(path, {**objects, **params}), params=query, json=body,
                         headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert 200 <= r.status_code < 300, (method, path, r.status_code, r.text[:300])
