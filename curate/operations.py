"""The operation table of the HTTP API: every route declared once (method, path, scope, kind).

The server registers its routes from this table (:func:`curate.server.create_app` looks each
route up by name, so a route's method, path and token scope are written only here), and the
tests check scopes against it (tests/test_server_scopes.py, tests/test_api_structure.py).

Kinds
-----
``SYNC``
    JSON request, JSON result.
``JOB``
    Starts a background job; answers 202 with a :class:`~curate.api.JobStatus`.
``ARROW``
    Answers an Arrow IPC stream (:data:`curate.wire.ARROW_STREAM`).
``DOWNLOAD``
    Answers a file body (an export).

The public ``GET /health`` probe and the OpenAPI pages are not operations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from curate.auth import READ, WRITE
from curate.errors import NotFoundError

__all__ = ["Operation", "OPERATIONS", "SYNC", "JOB", "ARROW", "DOWNLOAD", "KINDS", "operation"]

logger = logging.getLogger(__name__)

SYNC, JOB, ARROW, DOWNLOAD = "sync", "job", "arrow", "download"
KINDS = (SYNC, JOB, ARROW, DOWNLOAD)


@dataclass(frozen=True)
class Operation:
    """One HTTP operation.

    Attributes
    ----------
    name : str
        Route name (the server's handler name).
    method : {"GET", "POST"}
    path : str
        URL path template (``{name}`` segments are path parameters).
    scope : {"read", "write"}
        Token scope the route needs.
    kind : {"sync", "job", "arrow", "download"}
    """

    name: str
    method: str
    path: str
    scope: str
    kind: str


#: Every operation of the API, in the order the server registers them.
OPERATIONS: tuple[Operation, ...] = (
    Operation("info", "GET", "/v1/info", READ, SYNC),
    Operation("ingest", "POST", "/v1/ingest", WRITE, SYNC),
    Operation("count", "GET", "/v1/frames/count", READ, SYNC),
    Operation("frames", "POST", "/v1/frames", READ, ARROW),
    Operation("boxes", "POST", "/v1/boxes", READ, ARROW),
    Operation("label", "POST", "/v1/label", WRITE, SYNC),
    Operation("labeled", "GET", "/v1/labeled", READ, SYNC),
    Operation("embeddings", "GET", "/v1/embeddings", READ, SYNC),
    Operation("embedding_info", "GET", "/v1/embeddings/{name}", READ, SYNC),
    Operation("vectors", "POST", "/v1/embeddings/{name}/vectors", READ, ARROW),
    Operation("submit_embed", "POST", "/v1/jobs/embed", WRITE, JOB),
    Operation("submit_loop", "POST", "/v1/jobs/loop", WRITE, JOB),
    Operation("submit_pretrain", "POST", "/v1/jobs/pretrain", WRITE, JOB),
    Operation("submit_pretrain_image", "POST", "/v1/jobs/pretrain-image", WRITE, JOB),
    Operation("jobs", "GET", "/v1/jobs", READ, SYNC),
    Operation("job", "GET", "/v1/jobs/{job_id}", READ, SYNC),
    Operation("select", "POST", "/v1/select", WRITE, SYNC),
    Operation("score_runs", "GET", "/v1/scores", READ, SYNC),
    Operation("write_scores", "POST", "/v1/scores/{run}", WRITE, SYNC),
    Operation("read_scores", "POST", "/v1/scores/{run}/read", READ, ARROW),
    Operation("runs", "GET", "/v1/runs", READ, SYNC),
    Operation("run", "GET", "/v1/runs/{run_id}", READ, SYNC),
    Operation("reproduce", "GET", "/v1/runs/{run_id}/reproduce", READ, SYNC),
    Operation("export_download", "GET", "/v1/runs/{run_id}/export", READ, DOWNLOAD),
    Operation("export_on_server", "POST", "/v1/runs/{run_id}/export", WRITE, SYNC),
    Operation("import_labels", "POST", "/v1/labels/import", WRITE, SYNC),
    Operation("fuse", "POST", "/v1/embeddings/fuse", WRITE, SYNC),
    Operation("search", "POST", "/v1/search", READ, SYNC),
    Operation("problems", "GET", "/v1/problems", READ, SYNC),
)

_BY_NAME = {op.name: op for op in OPERATIONS}


def operation(name: str) -> Operation:
    """The operation called ``name`` (NotFoundError listing the valid names)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise NotFoundError(f"no operation {name!r}; operations: {', '.join(sorted(_BY_NAME))}") from None
