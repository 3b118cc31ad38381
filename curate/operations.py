"""The operation table of the HTTP API: every route declared once (method, path, scope, kind).

The server registers its routes from this table (:func:`curate.server.routes.register_routes`:
a route's method, path and token scope are written only here), the HTTP client makes its
generated methods from it, and the tests check scopes against it (tests/test_server_scopes.py,
tests/test_api_structure.py).

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

Each operation names the method of the interface (:class:`curate.interface.WorkspaceAPI`) it
serves (``api``), and whether the HTTP client's method for it is generated from this table
(``client=GENERATED``: one generic call binds the arguments to the interface's signature, sends
them as path, query or body fields, and turns the answer into the declared return type) or
hand-written (``client=HAND_WRITTEN``: the exceptions, e.g. a job that is submitted and waited
for, or an argument that cannot travel as it is). Interface methods computed in the client from
other operations are listed in :data:`CLIENT_SIDE`.

The public ``GET /health`` probe and the OpenAPI pages are not operations.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Optional

from curate.auth import READ, WRITE
from curate.errors import NotFoundError

__all__ = ["Operation", "OPERATIONS", "SYNC", "JOB", "ARROW", "DOWNLOAD", "KINDS", "GENERATED",
           "HAND_WRITTEN", "CLIENT_SIDE", "operation", "operation_for"]

logger = logging.getLogger(__name__)

SYNC, JOB, ARROW, DOWNLOAD = "sync", "job", "arrow", "download"
KINDS = (SYNC, JOB, ARROW, DOWNLOAD)
GENERATED, HAND_WRITTEN = "generated", "hand-written"


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
    api : str, optional
        The interface method (:class:`curate.interface.WorkspaceAPI`) the route serves; None for
        routes of the HTTP service only (job control, server-side exports, the summary).
    client : {"generated", "hand-written"}
        How the HTTP client's method ``api`` is made (see the module docstring).
    result : str, optional
        Key of the JSON answer that holds the result (``{"count": 3}`` -> ``3``).
    """

    name: str
    method: str
    path: str
    scope: str
    kind: str
    api: Optional[str] = None
    client: str = HAND_WRITTEN
    result: Optional[str] = None

    @property
    def path_params(self) -> tuple[str, ...]:
        """Names of the path parameters (``{name}`` segments), in path order."""
        return tuple(re.findall(r"{(\w+)}", self.path))


#: Every operation of the API, in the order the server registers them.
OPERATIONS: tuple[Operation, ...] = (
    Operation("info", "GET", "/v1/info", READ, SYNC),
    Operation("ingest", "POST", "/v1/ingest", WRITE, SYNC, api="ingest"),
    Operation("count", "GET", "/v1/frames/count", READ, SYNC, api="count", client=GENERATED,
              result="count"),
    Operation("frames", "POST", "/v1/frames", READ, ARROW, api="frames", client=GENERATED),
    Operation("boxes", "POST", "/v1/boxes", READ, ARROW, api="boxes", client=GENERATED),
    Operation("label", "POST", "/v1/label", WRITE, SYNC, api="label", client=GENERATED),
    Operation("labeled", "GET", "/v1/labeled", READ, SYNC, api="labeled_ids", client=GENERATED),
    Operation("embeddings", "GET", "/v1/embeddings", READ, SYNC, api="embeddings", client=GENERATED),
    Operation("embedding_info", "GET", "/v1/embeddings/{name}", READ, SYNC, api="embedding_info",
              client=GENERATED),
    Operation("vectors", "POST", "/v1/embeddings/{name}/vectors", READ, ARROW, api="vectors"),
    Operation("submit_embed", "POST", "/v1/jobs/embed", WRITE, JOB, api="embed"),
    Operation("submit_loop", "POST", "/v1/jobs/loop", WRITE, JOB, api="loop"),
    Operation("submit_pretrain", "POST", "/v1/jobs/pretrain", WRITE, JOB, api="pretrain"),
    Operation("submit_pretrain_image", "POST", "/v1/jobs/pretrain-image", WRITE, JOB,
              api="pretrain_image"),
    Operation("jobs", "GET", "/v1/jobs", READ, SYNC),
    Operation("job", "GET", "/v1/jobs/{job_id}", READ, SYNC),
    Operation("select", "POST", "/v1/select", WRITE, SYNC, api="select"),
    Operation("score_runs", "GET", "/v1/scores", READ, SYNC, api="score_runs", client=GENERATED),
    Operation("write_scores", "POST", "/v1/scores/{run}", WRITE, SYNC, api="write_scores",
              result="version"),
    Operation("read_scores", "POST", "/v1/scores/{run}/read", READ, ARROW, api="scores"),
    Operation("runs", "GET", "/v1/runs", READ, SYNC, api="runs"),
    Operation("run", "GET", "/v1/runs/{run_id}", READ, SYNC, api="run", client=GENERATED),
    Operation("reproduce", "GET", "/v1/runs/{run_id}/reproduce", READ, SYNC, api="reproduce",
              client=GENERATED, result="ids"),
    Operation("export_download", "GET", "/v1/runs/{run_id}/export", READ, DOWNLOAD, api="export"),
    Operation("export_on_server", "POST", "/v1/runs/{run_id}/export", WRITE, SYNC),
    Operation("import_labels", "POST", "/v1/labels/import", WRITE, SYNC, api="import_labels"),
    Operation("fuse", "POST", "/v1/embeddings/fuse", WRITE, SYNC, api="fuse"),
    Operation("search", "POST", "/v1/search", READ, SYNC, api="search"),
    Operation("problems", "GET", "/v1/problems", READ, SYNC, api="problems", client=GENERATED),
    Operation("versions", "GET", "/v1/versions", READ, SYNC, api="versions", client=GENERATED),
)

#: Interface methods that the HTTP client computes itself from other operations (no route).
CLIENT_SIDE: frozenset[str] = frozenset({"evaluate_embeddings"})

_BY_NAME = {op.name: op for op in OPERATIONS}
_BY_API = {op.api: op for op in OPERATIONS if op.api is not None}


def operation(name: str) -> Operation:
    """The operation called ``name`` (NotFoundError listing the valid names)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise NotFoundError(f"no operation {name!r}; operations: {', '.join(sorted(_BY_NAME))}") from None


def operation_for(api: str) -> Operation:
    """The operation serving the interface method ``api`` (NotFoundError when none does)."""
    try:
        return _BY_API[api]
    except KeyError:
        raise NotFoundError(f"no operation serves the interface method {api!r}") from None
