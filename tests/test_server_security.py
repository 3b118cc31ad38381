"""Security edges of ``curate serve`` that a write token must not cross.

A real uvicorn server on 127.0.0.1 over a copy of the embedded template; raw httpx requests.

* a loop job may not name a Python file as its detector (mmengine would execute it);
* worker counts of a loop's detector are capped;
* symlinks below a data root that point outside it are refused for every path field and reader.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from curate.server import BackgroundServer, create_app

WRITE_TOKEN = "security-write-token"
HEADERS = {"Authorization": f"Bearer {WRITE_TOKEN}"}


@pytest.fixture
def served(tmp_path: Path, embedded_template: Path) -> Iterator[tuple[httpx.Client, Path, Path]]:
    """(client, data root, workspace) of a fresh server; the data root is empty."""
    ws_path, root = tmp_path / "ws", tmp_path / "data"
    shutil.copytree(embedded_template, ws_path)
    root.mkdir()
    app = create_app(ws_path, {WRITE_TOKEN: "write"}, data_roots=[root], use_env_tokens=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60, headers=HEADERS) as http:
        yield http, root, ws_path


def _evil_config(root: Path, marker: Path) -> Path:
    """A Python 'detector config' below the data root that writes ``marker`` when executed."""
    evil = root / "evil_detector.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('pwned')\nmodel = dict(type='x')\n")
    return evil


def _jobs(http: httpx.Client) -> list[dict]:
    r = http.get("/v1/jobs")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("relative", [False, True])
def test_loop_detector_python_file_is_refused(served: tuple, tmp_path: Path, relative: bool) -> None:
    http, root, _ = served
    marker = tmp_path / "marker.txt"
    evil = _evil_config(root, marker)
    detector = evil.name if relative else str(evil)
    body = {"config": {"name": "evil", "embedding": "bev-hist", "detector": detector,
                       "initial": 2, "budget": 1, "rounds": 1}, "options": {}, "stop_after": 1}
    r = http.post("/v1/jobs/loop", json=body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert "detector" in r.json()["detail"]
    assert _jobs(http) == []
    time.sleep(0.5)
    assert not marker.exists()


def test_loop_detector_in_a_config_file_is_refused(served: tuple, tmp_path: Path) -> None:
    import json

    http, root, _ = served
    marker = tmp_path / "marker.txt"
    evil = _evil_config(root, marker)
    (root / "loop.json").write_text(json.dumps({"name": "evil", "embedding": "bev-hist",
                                                "detector": str(evil)}))
    r = http.post("/v1/jobs/loop", json={"config": "loop.json", "options": {}})
    assert 400 <= r.status_code < 500 and "detector" in r.json()["detail"], r.text
    r = http.post("/v1/jobs/loop", json={"config": "loop.json", "options": {"detector": "x.py"}})
    assert 400 <= r.status_code < 500 and "detector" in r.json()["detail"], r.text
    assert _jobs(http) == [] and not marker.exists()


@pytest.mark.parametrize("value", [64, -1, "8", 1.5, True])
def test_loop_detector_worker_count_is_capped(served: tuple, value: object) -> None:
    http, _, _ = served
    body = {"config": {"name": "w", "embedding": "bev-hist", "detector": "pointpillars-tiny",
                       "detector_options": {"num_workers": value}}, "options": {}}
    r = http.post("/v1/jobs/loop", json=body)
    assert r.status_code == 422, r.text
    assert "detector_options.num_workers" in r.json()["detail"]
    assert _jobs(http) == []
