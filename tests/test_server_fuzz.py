"""Fuzzed requests generated from the published OpenAPI schema (schemathesis + hypothesis).

A real server on 127.0.0.1 over a copy of the embedded template; for every operation a bounded
number of valid-by-schema and invalid-by-schema requests (with a write token, so writes are
exercised too). No response may be a 5xx, and every 4xx must carry a message. The run is bounded
(``EXAMPLES`` per operation and mode, no example database) and stops by itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from curate.server import BackgroundServer, create_app

TOKEN = "fuzz-write-token"
EXAMPLES = 12
#: Routes whose valid requests start long training jobs (the default pretraining runs for
#: thousands of steps). They are fuzzed like every other route, against a second server over an
#: *empty* workspace: every check of the request (body, config, paths, detector name, worker
#: caps) runs, and the last check before queueing (frames / the embedding exist) refuses, so no
#: job ever starts; the test asserts that none was queued.
LONG_JOBS = {"/v1/jobs/loop", "/v1/jobs/pretrain", "/v1/jobs/pretrain-image"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedded_template: Path, synth_root: Path) -> Iterator[BackgroundServer]:
    path = tmp_path_factory.mktemp("fuzz") / "ws"
    shutil.copytree(embedded_template, path)
    app = create_app(path, {TOKEN: "write"}, data_roots=[synth_root.parent], use_env_tokens=False,
                     max_body_bytes=1024 * 1024)
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Iterator[BackgroundServer]:
    """A server over an empty workspace (for LONG_JOBS: validated, never queued)."""
    path = tmp_path_factory.mktemp("fuzz-empty") / "ws"
    app = create_app(path, {TOKEN: "write"}, data_roots=[synth_root.parent], use_env_tokens=False,
                     max_body_bytes=1024 * 1024)
    with BackgroundServer(app) as srv:
        yield srv


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def _has_inputs(operation: Any) -> bool:
    return bool(list(operation.iter_parameters())) or bool(list(operation.body))


def _check(response: Any, label: str) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        message = body.get("detail")
        assert isinstance(message, str) and message.strip(), f"{label}: 4xx without a message: {body}"
        assert body["error"]["message"], f"{label}: no error.message: {body}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_requests_never_get_a_5xx(server: BackgroundServer, empty_server: BackgroundServer,
                                        mode: GenerationMode) -> None:
    operations = _operations(server.url)
    assert len(operations) >= 15
    assert LONG_JOBS <= {op.path for op in operations}  # every route is fuzzed, none skipped
    headers = {"Authorization": f"Bearer {TOKEN}"}
    seen: dict[int, int] = {}
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path} ({mode.value})"
        target = empty_server if operation.path in LONG_JOBS else server

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            response = case.call(base_url=target.url, headers=headers, timeout=60)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            _check(response, label)

        try:
            fuzz()
        except Unsatisfiable:
            # nothing to make invalid (no parameters and no body, e.g. GET /health)
            assert mode == GenerationMode.NEGATIVE and not _has_inputs(operation), label
    jobs = httpx.get(f"{empty_server.url}/v1/jobs", headers=headers, timeout=60).json()
    assert jobs == [], f"a fuzzed long-job request was queued: {jobs}"
    assert sum(seen.values()) >= len(operations)
    assert any(400 <= s < 500 for s in seen), seen  # the fuzzer did reach the error paths
