"""``curate serve``: the workspace API over HTTP (FastAPI), with bearer tokens and one writer.

:func:`create_app` returns a FastAPI application serving one workspace directory. Every route maps
to one :class:`~curate.workspace.Workspace` method and returns the same pydantic result models
(:mod:`curate.api`), which :class:`curate.client.RemoteWorkspace` turns back into the same Python
objects. Each route is an operation of :mod:`curate.operations` (method, path, scope, kind).

Modules, one responsibility each: :mod:`~curate.server.app` (assembly), :mod:`~curate.server.routes`
(the handlers, registered from the operation table), :mod:`~curate.server.jobs` (background jobs
and their journal), :mod:`~curate.server.security` (tokens and scopes, path confinement, body
limits, caps), :mod:`~curate.server.state` (workspace, writer lock), :mod:`~curate.server.errors`
(JSON error answers), :mod:`~curate.server.serving` (uvicorn: ``curate serve``, a background
server for tests, ``python -m curate.server``).

Guarantees
----------
* Auth: ``Authorization: Bearer TOKEN`` (:mod:`curate.auth`); no/unknown token -> 401, a read
  token on a write route -> 403. ``/health`` and the OpenAPI schema (``/openapi.json``,
  ``/docs``) are public.
* One writer: every route that changes the workspace, and every background job, holds one lock;
  reads run concurrently (LanceDB reads are safe next to a writer, each write is one commit).
  A write waits at most ``write_wait_s`` for the lock, then answers 503. ``select`` computes its
  selection *outside* the lock at pinned table versions and takes the lock only to check that the
  versions are unchanged and append the run record (it plans again when a write came between).
* Request bodies larger than ``max_body_bytes`` (16 MiB default) are refused with 413 before
  they are parsed.
* Paths: ingest roots and checkpoint files must resolve (symlinks followed) inside the server's
  data roots; server-side exports stay inside ``<workspace>/exports``. Anything else -> 403.
* Errors: curate / index / embedder errors become JSON ``{"detail", "error": {"type", "module",
  "message", "attrs"}}`` with 404 (not found), 422 (bad input), 401/403 (auth), 413 (size),
  503 (busy); unexpected failures are logged and answered 500 without internals.

Background jobs (embedding, the detector loop, pretraining) run one at a time on a worker thread
and hold the write lock. Their records are journaled in ``<workspace>/jobs.jsonl`` (rewritten
atomically at every state change, progress saved every second), so ``GET /v1/jobs`` survives a
restart; a job that was queued or running when the server died is listed as ``interrupted``, with
how to resume it: submitting it again resumes (an embedding job computes only the frames without a
vector, a loop skips its stored rounds, pretraining continues from ``last.pt``).
"""

from curate.server.app import create_app, import_fastapi
from curate.server.jobs import JOBS_FILE, JobJournal, JobManager
from curate.server.security import DEFAULT_MAX_BODY_BYTES, route_scope
from curate.server.serving import BackgroundServer, serve
from curate.server.state import ServerState

__all__ = ["create_app", "serve", "BackgroundServer", "route_scope", "import_fastapi",
           "DEFAULT_MAX_BODY_BYTES", "ServerState", "JobManager", "JobJournal", "JOBS_FILE"]
