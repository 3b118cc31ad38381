"""``curate serve``: the workspace API over HTTP (FastAPI), with bearer tokens and one writer.

:func:`create_app` returns a FastAPI application serving one workspace directory. Every route maps
to one :class:`~curate.workspace.Workspace` method and returns the same pydantic result models
(:mod:`curate.api`), which :class:`curate.client.RemoteWorkspace` turns back into the same Python
objects. Adding a workspace method to the service is one route here and one client method.

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

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import queue
import tempfile
import threading
import uuid
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Optional, Sequence, Union

import pyarrow as pa

from curate import _tables as T
from curate._version import __version__
from curate.api import (
    BoxesRequest,
    EmbedReport,
    EmbedRequest,
    ExportRequest,
    FramesRequest,
    FuseRequest,
    IngestReport,
    JobStatus,
    LabelReport,
    LabelImportRequest,
    LabelRequest,
    LoopRequest,
    PretrainRequest,
    Problem,
    RunRecord,
    ScoresReadRequest,
    ScoresWriteRequest,
    SearchRequest,
    SearchResult,
    SelectionResult,
    SelectRequest,
    SourceSpec,
    VectorsRequest,
)
from curate.auth import (
    READ,
    WRITE,
    PermissionDeniedError,
    TokenSet,
    load_tokens,
)
from curate.confine import confine
from curate.operations import operation
from curate.errors import CurateError, InvalidInputError, NotFoundError
from curate.store_queries import require_embedding, require_samples
from curate.wire import (
    ARROW_STREAM,
    EXPORT_MEDIA,
    ServiceBusyError,
    encode_floats,
    error_payload,
    status_for,
    table_to_ipc,
)

__all__ = ["create_app", "route_scope", "import_fastapi", "DEFAULT_MAX_BODY_BYTES", "ServerState", "JobManager",
           "JobJournal", "JOBS_FILE"]

logger = logging.getLogger(__name__)

#: Default request body limit (bytes).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Most reader processes an embedding job may ask for.
_MAX_WORKERS = 16
#: Selections planned outside the writer lock before one is computed under it.
_SELECT_ATTEMPTS = 3
#: Seconds between saves of a running job's progress to the job journal.
_PROGRESS_SAVE_S = 1.0
#: Finished jobs remembered for ``GET /v1/jobs``.
_MAX_JOBS_KEPT = 1000


def import_fastapi() -> Any:
    """Import FastAPI or raise an ImportError that says what to install."""
    try:
        import fastapi
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("curate serve needs FastAPI and uvicorn, dependencies of curate: reinstall it "
                          "(pip install -e . in a checkout, or pip install curate)") from exc
    return fastapi


# Route signatures are resolved from module globals (``from __future__ import annotations``).
fastapi = import_fastapi()
from fastapi import Depends, Query, Request, Response  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- errors
# ---------------------------------------------------------------------- paths
def _confine(raw: str, roots: Sequence[Path], what: str) -> Path:
    """Resolve ``raw`` (relative paths against the first root) and require it inside ``roots``."""
    return confine(raw, roots, what)


def _plain_name(name: str, what: str) -> str:
    """Require a name usable as one path component (no separators, not ``.``/``..``)."""
    if (not name or "/" in name or "\\" in name or "\x00" in name or name in (".", "..")
            or name.startswith("~")):
        raise InvalidInputError(
            f"{what} {name!r} must be a plain name (it names a folder on the server); "
            "use letters, digits, '-', '_' or '.'"
        )
    return name


def _confine_loop_config(cfg: Any, roots: Sequence[Path], workspace: Path) -> Any:
    """The loop config with its paths resolved and confined (read paths: data roots; work_dir:
    data roots or the workspace)."""
    _plain_name(cfg.name, "loop name")
    changes: dict[str, Any] = {}
    for field in ("label_dir", "pretrained"):
        value = getattr(cfg, field)
        if value is not None:
            changes[field] = str(_confine(str(value), roots, f"loop {field}"))
    if cfg.work_dir is not None:
        changes["work_dir"] = str(_confine(str(cfg.work_dir), [workspace.resolve(), *roots],
                                           "loop work_dir"))
    return cfg.model_copy(update=changes) if changes else cfg


def _check_loop_detector(cfg: Any) -> None:
    """Refuse a loop config whose detector could run code or oversubscribe the server.

    Over HTTP ``detector`` must be a registered name (:data:`DETECTOR_CONFIGS`): a path would
    reach ``mmengine.Config.fromfile``, which *executes* the file (and its ``_base_`` files).
    Worker counts in ``detector_options`` are capped like the embed route's ``num_workers``.
    """
    from curate.loop.mm3d.configs import DETECTOR_CONFIGS, list_detector_configs

    if cfg.detector not in DETECTOR_CONFIGS:
        raise InvalidInputError(
            f"loop detector {cfg.detector!r} is not a registered detector name; over HTTP the "
            f"field 'detector' must be one of: {', '.join(list_detector_configs())} (config files "
            "are executed by mmengine, so the server accepts none)"
        )
    for key in ("num_workers", "workers"):
        if key not in cfg.detector_options:
            continue
        value = cfg.detector_options[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_WORKERS:
            raise InvalidInputError(
                f"loop detector_options.{key} must be an integer from 0 to {_MAX_WORKERS} on this "
                f"server, got {value!r}"
            )


# ---------------------------------------------------------------------- jobs
#: Journal of the jobs of a workspace (JSON lines, one job each, rewritten atomically).
JOBS_FILE = "jobs.jsonl"
#: How to pick up each kind of job again after a server restart.
_RESUME_HINTS = {
    "embed": "submit the same embed job again: it resumes, only frames without a vector are computed",
    "loop": "submit the same loop again (same name and config): it skips the rounds stored in runs "
            "and resumes at the next one",
    "pretrain": "submit the same pretraining again (same name): it resumes from the last checkpoint",
}


class _Job:
    def __init__(self, kind: str, params: dict[str, Any]) -> None:
        self.job_id = f"job-{uuid.uuid4().hex[:12]}"
        self.kind = kind
        self.params = params
        self.state = "queued"
        self.done: Optional[int] = None
        self.total: Optional[int] = None
        self.result: Optional[dict[str, Any]] = None
        self.error: Optional[dict[str, Any]] = None
        self.created_at = _now()
        self.finished_at: Optional[str] = None
        self.progress: Optional[Callable[[], tuple[Optional[int], Optional[int]]]] = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "_Job":
        """A job read back from the journal (a :class:`JobStatus` as a dict)."""
        status = JobStatus(**record)
        job = cls(status.kind, dict(status.params))
        job.job_id, job.state, job.done, job.total = status.job_id, status.state, status.done, status.total
        job.result, job.error = status.result, status.error
        job.created_at, job.finished_at = status.created_at, status.finished_at
        return job

    def status(self) -> JobStatus:
        done, total = self.done, self.total
        if self.state == "running" and self.progress is not None:
            try:
                done, total = self.progress()
            except Exception:  # progress is best effort; the job itself reports errors
                logger.debug("progress of %s unavailable", self.job_id, exc_info=True)
        return JobStatus(job_id=self.job_id, kind=self.kind, state=self.state, done=done,
                         total=total, params=self.params, result=self.result, error=self.error,
                         created_at=self.created_at, finished_at=self.finished_at)


class JobJournal:
    """The job records of a workspace in ``<workspace>/jobs.jsonl``, surviving server restarts.

    The whole file is rewritten (temporary file, fsync, ``os.replace``) at every state change,
    so a ``kill -9`` leaves either the old or the new journal, never a torn one. O(jobs kept)
    per write; at most ``_MAX_JOBS_KEPT`` records.

    Parameters
    ----------
    path : pathlib.Path
        The journal file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[_Job]:
        """Jobs of the journal, oldest first; unreadable lines are skipped with a warning."""
        if not self.path.is_file():
            return []
        jobs = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                jobs.append(_Job.from_record(json.loads(line)))
            except (ValueError, TypeError) as exc:
                logger.warning("%s line %d: not a job record (%s); skipped", self.path, number, exc)
        return jobs

    def save(self, jobs: Sequence[_Job]) -> None:
        """Write every job record (atomic replace)."""
        lines = [json.dumps(_persisted(j).model_dump(mode="json"), sort_keys=True) for j in jobs]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + ("\n" if lines else ""))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def _persisted(job: _Job) -> JobStatus:
    """The record written for a job: its status without calling the live progress function."""
    return JobStatus(job_id=job.job_id, kind=job.kind, state=job.state, done=job.done,
                     total=job.total, params=job.params, result=job.result, error=job.error,
                     created_at=job.created_at, finished_at=job.finished_at)


def _interrupted_error(job: _Job) -> dict[str, Any]:
    hint = _RESUME_HINTS.get(job.kind, "submit it again")
    message = (f"job {job.job_id} ({job.kind}) was {job.state} when the server stopped "
               f"(killed or crashed); nothing of it runs any more. To finish it, {hint}")
    return {"type": "JobInterruptedError", "module": "curate.wire", "message": message,
            "attrs": {"job_id": job.job_id, "resume": hint}}


class JobManager:
    """Runs background jobs one at a time on a worker thread, each under the write lock.

    Job records are kept in a :class:`JobJournal` when ``journal`` is given: queued, running and
    finished jobs survive a restart, and jobs that were queued or running when the previous
    server died are marked ``interrupted`` (with how to resume them) when the manager starts.

    Parameters
    ----------
    write_lock : threading.Lock
        The server's single-writer lock.
    journal : JobJournal, optional
        Where job records are persisted (None: in memory only).
    """

    def __init__(self, write_lock: threading.Lock, journal: Optional[JobJournal] = None) -> None:
        self._write_lock = write_lock
        self._journal = journal
        self._queue: "queue.Queue[Optional[tuple[_Job, Callable[[_Job], dict]]]]" = queue.Queue()
        self._jobs: dict[str, _Job] = {}
        self._guard = threading.Lock()
        if journal is not None:
            stale = 0
            for job in journal.load():
                if job.state in ("queued", "running"):
                    job.error = _interrupted_error(job)
                    job.state = "interrupted"
                    job.finished_at = _now()
                    stale += 1
                self._jobs[job.job_id] = job
            if stale:
                logger.warning("%d job(s) were interrupted by the last server stop; GET /v1/jobs "
                               "lists them with how to resume", stale)
                self._save()
        self._running: Optional[_Job] = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._work, name="curate-jobs", daemon=True)
        self._thread.start()
        if journal is not None:
            threading.Thread(target=self._record_progress, name="curate-jobs-progress", daemon=True).start()

    def _record_progress(self) -> None:
        """Every ``_PROGRESS_SAVE_S`` seconds, persist the running job's progress (journal only)."""
        while not self._stopped.wait(_PROGRESS_SAVE_S):
            job = self._running
            if job is None or job.progress is None:
                continue
            try:
                done, total = job.progress()
            except Exception:  # noqa: BLE001 - progress is best effort
                continue
            if (done, total) != (job.done, job.total) and job.state == "running":
                job.done, job.total = done, total
                self._save()

    def _save(self) -> None:
        """Persist the job records (caller need not hold ``_guard``)."""
        if self._journal is None:
            return
        with self._guard:
            jobs = list(self._jobs.values())
            try:
                self._journal.save(jobs)
            except OSError:  # a full disk must not kill the jobs; the state stays in memory
                logger.exception("could not write the job journal %s", self._journal.path)

    def submit(self, kind: str, params: dict[str, Any], fn: Callable[[_Job], dict]) -> JobStatus:
        """Queue ``fn(job)`` (returns the result dict); returns the queued job's status."""
        job = _Job(kind, params)
        with self._guard:
            self._jobs[job.job_id] = job
            finished = [j for j in self._jobs.values() if j.finished_at]
            for old in finished[: max(0, len(self._jobs) - _MAX_JOBS_KEPT)]:
                del self._jobs[old.job_id]
        self._save()
        self._queue.put((job, fn))
        logger.info("queued %s (%s %s)", job.job_id, kind, params)
        return job.status()

    def get(self, job_id: str) -> JobStatus:
        """Status of one job (NotFoundError when unknown)."""
        with self._guard:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(
                f"no job {job_id!r} on this server (jobs of this workspace are kept in its "
                f"{JOBS_FILE}, the latest {_MAX_JOBS_KEPT}); GET /v1/jobs lists them"
            )
        return job.status()

    def list(self) -> list[JobStatus]:
        """Every job kept, oldest first."""
        with self._guard:
            jobs = list(self._jobs.values())
        return [j.status() for j in jobs]

    def stop(self) -> None:
        """Stop the worker after the running job."""
        self._stopped.set()
        self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, fn = item
            with self._write_lock:
                job.state = "running"
                self._running = job
                self._save()
                try:
                    job.result = fn(job)
                    job.state = "succeeded"
                    if job.total is not None:
                        job.done = job.total
                except BaseException as exc:  # noqa: BLE001 - a job must never kill the worker
                    if status_for(exc) == 500:
                        logger.exception("job %s failed", job.job_id)
                    else:
                        logger.warning("job %s failed: %s", job.job_id, exc)
                    job.error = error_payload(exc)["error"]
                    job.state = "failed"
                finally:
                    if job.progress is not None and job.state == "failed":
                        try:  # keep how far it got
                            job.done, job.total = job.progress()
                        except Exception:  # noqa: BLE001 - best effort
                            pass
                    job.progress = None
                    job.finished_at = _now()
                    self._running = None
                    self._save()


# ---------------------------------------------------------------------- state
class ServerState:
    """What one app serves: the workspace, tokens, roots, the writer lock and the jobs.

    Parameters
    ----------
    workspace_path : path
    tokens : TokenSet
    data_roots : sequence of path
    write_wait_s : float
    """

    def __init__(self, workspace_path: Union[str, Path], tokens: TokenSet,
                 data_roots: Sequence[Union[str, Path]], write_wait_s: float) -> None:
        from curate.workspace import Workspace

        self.workspace = Workspace(workspace_path)
        self.tokens = tokens
        self.data_roots = [Path(r).expanduser().resolve() for r in data_roots]
        self.exports_root = (self.workspace.path / "exports").resolve()
        self.write_lock = threading.Lock()
        self.write_wait_s = float(write_wait_s)
        self.jobs = JobManager(self.write_lock, JobJournal(self.workspace.path / JOBS_FILE))

    @contextmanager
    def writing(self) -> Iterator[Any]:
        """Hold the single-writer lock (waits up to ``write_wait_s``, then ServiceBusyError)."""
        if not self.write_lock.acquire(timeout=self.write_wait_s):
            raise ServiceBusyError(
                f"the workspace is busy with another write (waited {self.write_wait_s:.0f} s); "
                "retry later, or check GET /v1/jobs for a long job"
            )
        try:
            yield self.workspace
        finally:
            self.write_lock.release()


# ---------------------------------------------------------------------- helpers
def _arrow_response(table: pa.Table) -> Any:
    return Response(content=table_to_ipc(table), media_type=ARROW_STREAM)


def _vectors_table(ids: Any, vectors: Any) -> pa.Table:
    n, dim = vectors.shape
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table({"id": pa.array([str(i) for i in ids], type=pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})


def _build_source(spec: SourceSpec, roots: Sequence[Path]) -> Any:
    root = _confine(spec.root, roots, "data root")
    if spec.kind == "kitti":
        from curate.sources.kitti import KittiSource

        if spec.pattern is not None:
            raise InvalidInputError("pattern applies to folder sources only")
        return KittiSource(root, split=spec.split, prefix=spec.prefix)
    if spec.kind == "nuscenes":
        from curate.sources.nuscenes import NuScenesSource

        if spec.pattern is not None:
            raise InvalidInputError("pattern applies to folder sources only")
        return NuScenesSource(root, version=spec.version, prefix=spec.prefix)
    from curate.sources.folder import FolderSource

    return FolderSource(root, pattern=spec.pattern, prefix=spec.prefix)


class _BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 before the app sees them."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _reject(self, send: Any, size: str) -> None:
        body = json.dumps({
            "detail": f"request body {size} is larger than the server limit of {self.max_bytes} bytes",
            "error": {"type": "InvalidInputError", "module": "curate.errors", "attrs": {},
                      "message": f"request body {size} is larger than the server limit of "
                                 f"{self.max_bytes} bytes; send fewer ids or vectors per request"},
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.max_bytes:
                await self._reject(send, f"of {size} bytes")
                return
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._reject(send, f"of more than {total} bytes")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        await self.app(scope, _replay(chunks, None, receive), send)


def _replay(chunks: list[bytes], final: Optional[dict], receive: Any = None) -> Any:
    """A ``receive`` that hands out the buffered body once, then defers to the real one."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            if final is not None:
                return final
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        if receive is not None:
            return await receive()
        return {"type": "http.disconnect"}

    return replay


def route_scope(route: Any) -> Optional[str]:
    """The token scope (``read`` / ``write``) a route of :func:`create_app` requires; None: public."""
    for dep in getattr(route, "dependencies", None) or []:
        scope = getattr(dep.dependency, "scope", None)
        if scope is not None:
            return scope
    return None


# ---------------------------------------------------------------------- the app
def create_app(
    workspace_path: Union[str, Path],
    tokens: Union[None, TokenSet, Mapping[str, str]] = None,
    *,
    data_roots: Sequence[Union[str, Path]] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    write_wait_s: float = 300.0,
    use_env_tokens: bool = True,
) -> Any:
    """Build the FastAPI application that serves the workspace at ``workspace_path``.

    Parameters
    ----------
    workspace_path : str or pathlib.Path
        Workspace directory (created when missing).
    tokens : TokenSet or mapping of secret -> scope, optional
        Accepted tokens in addition to ``<workspace>/tokens.json`` and ``$CURATE_TOKENS``.
    data_roots : sequence of paths
        Directories whose files ingest and embedder checkpoints may read.
    max_body_bytes : int
        Largest accepted request body (413 above).
    write_wait_s : float
        How long a write waits for the single writer before answering 503.
    use_env_tokens : bool
        Whether to read ``$CURATE_TOKENS``.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    InvalidInputError
        No token configured at all (the server would refuse every request).
    """
    if isinstance(max_body_bytes, bool) or int(max_body_bytes) < 1:
        raise InvalidInputError(f"max_body_bytes must be a positive integer, got {max_body_bytes!r}")
    token_set = load_tokens(workspace_path, tokens, use_env=use_env_tokens)
    if not len(token_set):
        raise InvalidInputError(
            "no tokens configured: give tokens (curate serve --token-write T / --token-read T, "
            "$CURATE_TOKENS='T:write', or curate.auth.add_token(workspace)) so that clients can "
            "authenticate"
        )
    state = ServerState(workspace_path, token_set, data_roots, write_wait_s)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        state.jobs.stop()

    app = fastapi.FastAPI(
        title="curate",
        version=__version__,
        description="Embedding-first data curation for LiDAR perception: the workspace API.",
        lifespan=lifespan,
    )
    app.state.curate = state
    app.add_middleware(_BodyLimit, max_bytes=int(max_body_bytes))
    bearer = HTTPBearer(auto_error=False, description="a read or write token")

    def _authorise(needed: str) -> Callable:
        def check(request: Request, credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
            state.tokens.check(request.headers.get("authorization"), needed)

        check.scope = needed  # type: ignore[attr-defined]  # read by route_scope() and the tests
        return check

    read = [Depends(_authorise(READ))]
    write = [Depends(_authorise(WRITE))]

    def route(name: str, **options: Any) -> Callable:
        """Register the handler of the operation ``name`` at the method, path and token scope the
        operation table (:mod:`curate.operations`) declares for it."""
        op = operation(name)
        return app.api_route(op.path, methods=[op.method], name=name,
                             dependencies=read if op.scope == READ else write, **options)
    ws = state.workspace

    # ---------------------------------------------------------------- error handlers
    def _error_response(exc: BaseException) -> JSONResponse:
        status = status_for(exc)
        if status == 500:
            logger.error("error serving a request", exc_info=exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_payload(exc), status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def _on_error(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(exc)

    for cls in (CurateError, ValueError, KeyError, LookupError):
        app.add_exception_handler(cls, _on_error)
    try:
        from index.errors import StoreError

        app.add_exception_handler(StoreError, _on_error)
    except ImportError:  # pragma: no cover
        pass

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        message = "invalid request: " + "; ".join(parts) if parts else "invalid request"
        return JSONResponse(
            {"detail": message, "error": {"type": "InvalidInputError", "module": "curate.errors",
                                          "message": message, "attrs": {}}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}; see /docs"
        module, name = ("curate.errors", "NotFoundError") if exc.status_code == 404 else \
            ("curate.errors", "InvalidInputError")
        return JSONResponse({"detail": message, "error": {"type": name, "module": module,
                                                           "message": message, "attrs": {}}},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # ---------------------------------------------------------------- service
    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness probe (no token needed)."""
        return {"status": "ok", "version": __version__}

    @route("info", tags=["service"])
    def info() -> dict[str, Any]:
        """Package version, frames, labeled frames, embeddings and runs of the workspace."""
        frames = ws.count()
        return {
            "version": __version__,
            "workspace": ws.path.name,
            "frames": frames,
            "labeled": ws.count("labeled = true") if frames else 0,
            "embeddings": ws.embeddings(),
            "runs": ws.store.count(T.RUNS) if ws.store.has_table(T.RUNS) else 0,
        }

    # ---------------------------------------------------------------- frames
    @route("ingest", response_model=IngestReport, tags=["frames"])
    def ingest(spec: SourceSpec) -> IngestReport:
        """Ingest a KITTI-format dataset or a folder of point clouds under a server data root."""
        source = _build_source(spec, state.data_roots)
        with state.writing() as w:
            return w.ingest(source, batch_size=spec.batch_size, progress=False, on_error=spec.on_error)

    @route("count", tags=["frames"])
    def count(where: Optional[str] = Query(default=None, max_length=8192)) -> dict[str, int]:
        """Number of frames matching ``where``."""
        return {"count": ws.count(where)}

    @route("frames", tags=["frames"],
              responses={200: {"content": {ARROW_STREAM: {}}}})
    def frames(req: FramesRequest) -> Response:
        """Rows of ``samples`` as an Arrow IPC stream."""
        return _arrow_response(ws.frames(where=req.where, columns=req.columns, ids=req.ids,
                                         version=req.version))

    @route("boxes", tags=["frames"],
              responses={200: {"content": {ARROW_STREAM: {}}}})
    def boxes(req: BoxesRequest) -> Response:
        """Boxes of frames as an Arrow IPC stream."""
        return _arrow_response(ws.boxes(req.frame_ids, labeled_only=req.labeled_only))

    # ---------------------------------------------------------------- labels
    @route("label", response_model=LabelReport, tags=["labels"])
    def label(req: LabelRequest) -> LabelReport:
        """Mark frames as labeled."""
        with state.writing() as w:
            return w.label(req.ids)

    @route("labeled", tags=["labels"])
    def labeled() -> list[str]:
        """Ids of labeled frames, sorted."""
        return ws.labeled_ids()

    # ---------------------------------------------------------------- embeddings
    @route("embeddings", tags=["embeddings"])
    def embeddings() -> list[str]:
        """Embedding names."""
        return ws.embeddings()

    @route("embedding_info", tags=["embeddings"])
    def embedding_info(name: str) -> dict[str, str]:
        """Schema metadata of one embedding."""
        return ws.embedding_info(name)

    @route("vectors", tags=["embeddings"],
              responses={200: {"content": {ARROW_STREAM: {}}}})
    def vectors(name: str, req: VectorsRequest) -> Response:
        """Ids and vectors of an embedding as an Arrow IPC stream (``id``, ``vector``)."""
        ids, vecs = ws.vectors(name, req.ids, version=req.version)
        return _arrow_response(_vectors_table(ids, vecs))

    @route("submit_embed", response_model=JobStatus, status_code=202,
              tags=["jobs"])
    def submit_embed(req: EmbedRequest) -> JobStatus:
        """Start an embedding job; poll ``GET /v1/jobs/{job_id}``."""
        from curate.embedding import build_embedder, embedder_metadata
        from curate.jobs.embed import EmbedJob

        config = dict(req.config)
        if "checkpoint" in config:
            if not isinstance(config["checkpoint"], str):
                raise InvalidInputError("config.checkpoint must be a path string")
            config["checkpoint"] = str(_confine(config["checkpoint"], state.data_roots, "checkpoint"))
        require_samples(ws.store)
        emb = build_embedder(req.model, **config)  # validates model and config before queueing
        name = req.name or emb.name
        # Reader threads are off by default on the server (one job at a time, no oversubscription).
        num_workers = 0 if req.num_workers is None else req.num_workers
        if num_workers > _MAX_WORKERS:
            raise InvalidInputError(f"num_workers must be at most {_MAX_WORKERS} on this server, got {num_workers}")
        EmbedJob(name=name, batch_size=req.batch_size, write_every=req.write_every, device=req.device,
                 num_workers=num_workers, precision=req.precision, dtype=req.dtype,
                 on_error=req.on_error).validate()

        def run(job: _Job) -> dict:
            meta = embedder_metadata(emb)
            table = T.embedding_table(name)
            job.total = ws.count()

            def progress() -> tuple[Optional[int], Optional[int]]:
                if not ws.store.has_table(table):
                    return 0, job.total
                stored = ws.store.table_metadata(table)
                same = all(stored.get(k) == meta[k] for k in ("weights_sha256", "config"))
                return (ws.store.count(table) if same else 0), job.total

            job.progress = progress
            report = ws.embed(emb, name=name, batch_size=req.batch_size, write_every=req.write_every,
                              device=req.device, progress=False, num_workers=num_workers,
                              precision=req.precision, dtype=req.dtype, on_error=req.on_error)
            return report.model_dump()

        return state.jobs.submit("embed", req.model_dump(), run)

    @route("submit_loop", response_model=JobStatus, status_code=202,
              tags=["jobs"])
    def submit_loop(req: LoopRequest) -> JobStatus:
        """Start (or resume) an active-learning loop; poll ``GET /v1/jobs/{job_id}``.

        Progress counts rounds; the result is the loop report (``curate.loop.LoopReport``).
        """
        from curate.loop import loop_rounds
        from curate.loop.config import load_loop_config

        options = dict(req.options)
        for name in ("detector", "on_round"):
            if name in options:
                raise InvalidInputError(
                    f"{name} cannot be sent over HTTP; the server builds the detector named by "
                    "the config's 'detector' field"
                )
        config: Any = req.config
        if isinstance(config, str):
            config = str(_confine(config, state.data_roots, "loop config"))
        cfg = load_loop_config(config, **options)  # validates before queueing
        cfg = _confine_loop_config(cfg, state.data_roots, ws.path)
        _check_loop_detector(cfg)
        require_embedding(ws.store, cfg.embedding)
        last = cfg.rounds if req.stop_after is None else min(req.stop_after, cfg.rounds)

        def run(job: _Job) -> dict:
            job.total = last
            job.done = min(last, len(loop_rounds(ws, cfg.name)))  # rounds stored before (resume)

            def on_round(report: Any) -> None:
                job.done = min(last, report.round + 1)

            report = ws.loop(cfg, stop_after=req.stop_after, on_round=on_round)
            return encode_floats(report.model_dump())

        return state.jobs.submit("loop", req.model_dump(), run)

    @route("submit_pretrain", response_model=JobStatus, status_code=202,
              tags=["jobs"])
    def submit_pretrain(req: PretrainRequest) -> JobStatus:
        """Start (or resume) self-supervised pretraining; poll ``GET /v1/jobs/{job_id}``.

        Progress counts training steps; the result is a ``curate.pretraining.PretrainReport``.
        """
        from curate.pretraining import CHECKPOINT_DIR, read_config
        from embedders.pretrain.trainer import LOSS_LOG

        config: Any = req.config
        if isinstance(config, str):
            config = str(_confine(config, state.data_roots, "pretraining config"))
        cfg = read_config(config)  # validates before queueing
        _plain_name(cfg.name, "pretraining name")
        require_samples(ws.store)
        log = ws.path / CHECKPOINT_DIR / cfg.name / LOSS_LOG

        def run(job: _Job) -> dict:
            job.total = int(cfg.train.steps)

            def progress() -> tuple[Optional[int], Optional[int]]:
                if not log.is_file():
                    return 0, job.total
                with open(log, "rb") as fh:
                    return min(job.total or 0, sum(1 for _ in fh)), job.total

            job.progress = progress
            return encode_floats(ws.pretrain(cfg, progress=False).model_dump())

        return state.jobs.submit("pretrain", req.model_dump(), run)

    @route("submit_pretrain_image", response_model=JobStatus, status_code=202,
              tags=["jobs"])
    def submit_pretrain_image(req: PretrainRequest) -> JobStatus:
        """Start (or resume) self-supervised training of the image embedder (``pretrain_image``).

        The result is a ``curate.pretraining.PretrainReport``.
        """
        from embedders import EmbedderError
        from embedders.pretrain_image import load_image_config

        config: Any = req.config
        if isinstance(config, str):
            config = str(_confine(config, state.data_roots, "pretraining config"))
        try:
            cfg = load_image_config(config)  # validates before queueing
        except EmbedderError as exc:
            raise InvalidInputError(str(exc)) from exc
        _plain_name(cfg.name, "pretraining name")
        require_samples(ws.store)

        def run(job: _Job) -> dict:
            return encode_floats(ws.pretrain_image(cfg, progress=False).model_dump())

        return state.jobs.submit("pretrain", req.model_dump(), run)

    @route("jobs", response_model=list[JobStatus], tags=["jobs"])
    def jobs() -> list[JobStatus]:
        """Jobs since the server started, oldest first."""
        return state.jobs.list()

    @route("job", response_model=JobStatus, tags=["jobs"])
    def job(job_id: str) -> JobStatus:
        """Status and progress of one job."""
        return state.jobs.get(job_id)

    # ---------------------------------------------------------------- selection and runs
    @route("select", response_model=SelectionResult, tags=["selection"])
    def select(req: SelectRequest) -> SelectionResult:
        """Run a selection strategy and store the run.

        The selection is computed *outside* the writer lock at pinned table versions (snapshot
        isolation: the run records those versions and ``reproduce`` recomputes it exactly); the
        lock is held only to check the plan and append the run record. When writes came in
        between, the plan is still stored unless one of its picks was labeled or removed
        meanwhile (:meth:`PlannedSelection.conflicts`, O(budget)); then it is planned again (up
        to ``_SELECT_ATTEMPTS`` times, then once more under the lock). So no stored run hands
        out a frame that is already labeled, and busy label traffic does not starve selects.
        """
        params = dict(req.params)
        if params.get("policy") is not None:  # mgral's policy checkpoint: a file the server reads
            params["policy"] = str(_confine(str(params["policy"]), [ws.path.resolve(), *state.data_roots],
                                            "mgral policy"))
        args = dict(embedding=req.embedding, where=req.where, seed=req.seed, score_run=req.score_run,
                    **params)
        if req.shards is not None or req.engine != "local":
            args.update(shards=req.shards, engine=req.engine)
        for attempt in range(_SELECT_ATTEMPTS):
            planned = ws.plan_selection(req.strategy, req.budget, **args)
            with state.writing() as w:
                if planned.is_current(w.store):
                    return w.store_selection(planned)
                stale = planned.conflicts(w.store)
                if not stale:  # other writes came in, none touched the picks: the snapshot stands
                    return w.store_selection(planned)
            logger.debug("select: tables changed while planning and %d picks were labeled or removed "
                         "(attempt %d), planning again", len(stale), attempt + 1)
        with state.writing() as w:
            return w.select(req.strategy, req.budget, **args)

    # ---------------------------------------------------------------- scores
    @route("score_runs", tags=["scores"])
    def score_runs() -> list[str]:
        """Names of the stored score (prediction) runs."""
        return ws.score_runs()

    @route("write_scores", tags=["scores"])
    def write_scores(run: str, req: ScoresWriteRequest) -> dict[str, int]:
        """Store per-frame score columns of the prediction run ``run`` (upsert by run and frame)."""
        with state.writing() as w:
            return {"version": int(w.write_scores(run, req.ids, req.columns))}

    @route("read_scores", tags=["scores"],
              responses={200: {"content": {ARROW_STREAM: {}}}})
    def read_scores(run: str, req: ScoresReadRequest) -> Response:
        """Scores of a run as an Arrow IPC stream: ``frame_id`` and one float64 column per score."""
        ids, columns = ws.scores(run, req.ids)
        table = pa.table({"frame_id": pa.array([str(i) for i in ids], type=pa.string()),
                          **{name: pa.array(values, type=pa.float64()) for name, values in columns.items()}})
        return _arrow_response(table)

    @route("runs", response_model=list[RunRecord], tags=["selection"])
    def runs(
        kind: Optional[str] = Query(default=None, min_length=1, max_length=64,
                                    description="only runs of this kind (selection, loop)"),
        run_id: Optional[list[str]] = Query(default=None, description="only these run ids (repeatable)"),
        where: Optional[str] = Query(default=None, max_length=8192,
                                     description="SQL filter on runs columns"),
    ) -> list[RunRecord]:
        """Stored runs, oldest first (filters are pushed down to the table scan)."""
        return ws.runs(kind, run_ids=run_id, where=where)

    @route("run", response_model=RunRecord, tags=["selection"])
    def run(run_id: str) -> RunRecord:
        """One stored run."""
        return ws.run(run_id)

    @route("reproduce", tags=["selection"])
    def reproduce(run_id: str) -> dict[str, list[str]]:
        """Recompute a run at the versions it read (not stored)."""
        return {"ids": ws.reproduce(run_id)}

    @route("export_download", tags=["export"],
             responses={200: {"content": {m: {} for m in sorted(set(EXPORT_MEDIA.values()))}}})
    def export_download(
        run_id: str,
        format: str = Query(min_length=1, max_length=64),
        filename: Optional[str] = Query(default=None, min_length=1, max_length=255,
                                        description="file name recorded in the manifest"),
        part: str = Query(default="file", pattern="^(file|manifest)$",
                          description="the export file, or its sidecar manifest"),
        base_url: Optional[str] = Query(default=None, min_length=1, max_length=2048),
        path_root: Optional[str] = Query(default=None, min_length=1, max_length=4096),
    ) -> Response:
        """A run's export rendered on the server, sent as the body (``part=manifest``: its sidecar).

        The header ``X-Curate-Manifest: sidecar`` says that the format has a sidecar manifest.
        """
        from curate.export import manifest_path

        name = filename or f"{run_id}.{format}"
        if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
            raise InvalidInputError(f"filename {name!r} must be a plain file name")
        options = {k: v for k, v in (("base_url", base_url), ("path_root", path_root)) if v is not None}
        with tempfile.TemporaryDirectory(prefix="curate-export-") as tmp:
            out = Path(tmp) / name
            ws.export(run_id, format, out, **options)
            side = manifest_path(out)
            has_side = side.is_file()
            if part == "manifest" and not has_side:
                raise NotFoundError(f"format {format!r} embeds its manifest; there is no sidecar")
            data = (side if part == "manifest" else out).read_bytes()
        media = "application/json" if part == "manifest" else EXPORT_MEDIA.get(format, "application/octet-stream")
        return Response(content=data, media_type=media,
                        headers={"X-Curate-Manifest": "sidecar" if has_side else "embedded"})

    @route("export_on_server", tags=["export"])
    def export_on_server(run_id: str, req: ExportRequest) -> dict[str, str]:
        """Write a run's export inside ``<workspace>/exports`` (path relative to it)."""
        raw = req.path
        if "\x00" in raw or Path(raw).is_absolute():
            raise PermissionDeniedError(
                f"export path {raw!r} must be relative to the workspace exports/ folder"
            )
        state.exports_root.mkdir(parents=True, exist_ok=True)
        target = _confine(raw, [state.exports_root], "export path")
        if target == state.exports_root:
            raise InvalidInputError("export path names the exports/ folder itself; add a file name")
        options = {k: v for k, v in (("base_url", req.base_url), ("path_root", req.path_root)) if v is not None}
        with state.writing() as w:
            target.parent.mkdir(parents=True, exist_ok=True)
            w.export(run_id, req.format, target, **options)
        return {"path": target.relative_to(state.exports_root).as_posix()}

    # ---------------------------------------------------------------- label import
    @route("import_labels", tags=["labels"])
    def import_labels(req: LabelImportRequest) -> dict[str, Any]:
        """Import annotation files (KITTI label_2) read on the server, below its data roots."""
        from curate.labels_import import resolve_label_files

        paths = [str(_confine(p, state.data_roots, "label path")) for p in req.paths]
        # the files of a folder are confined one by one (a file may link out of the folder)
        paths = [str(_confine(str(f), state.data_roots, "label file")) for f in resolve_label_files(paths)]
        with state.writing() as w:
            report = w.import_labels(paths, format=req.format, prefix=req.prefix)
        return report.model_dump()

    # ---------------------------------------------------------------- fusion
    @route("fuse", response_model=EmbedReport, tags=["embeddings"])
    def fuse(req: FuseRequest) -> EmbedReport:
        """Combine stored embeddings (L2-normalised, weighted; concat or mean) into a new one."""
        with state.writing() as w:
            return w.fuse(req.sources, name=req.name, weights=req.weights, method=req.method,
                          progress=False)

    # ---------------------------------------------------------------- search
    @route("search", response_model=SearchResult, tags=["search"])
    def search(req: SearchRequest) -> SearchResult:
        """k nearest frames of frame ids or query vectors, optionally among frames matching ``where``."""
        return ws.search(req.embedding, ids=req.ids, vectors=req.vectors, k=req.k, where=req.where,
                         metric=req.metric, exclude_self=req.exclude_self, version=req.version)

    @route("problems", response_model=list[Problem], tags=["frames"])
    def problems(
        stage: Optional[str] = Query(default=None, min_length=1, max_length=256,
                                     description="ingest or embed:<embedding>"),
        severity: Optional[str] = Query(default=None, pattern="^(error|warning)$"),
    ) -> list[Problem]:
        """Bad frames recorded by ingest and embedding jobs run with ``on_error="skip"``."""
        return ws.problems(stage=stage, severity=severity)

    logger.info("serving workspace %s (%d tokens, data roots: %s)", ws.path, len(token_set),
                ", ".join(str(r) for r in state.data_roots) or "none")
    return app


def serve(
    workspace_path: Union[str, Path],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tokens: Union[None, TokenSet, Mapping[str, str]] = None,
    data_roots: Sequence[Union[str, Path]] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
) -> None:
    """Run the app with uvicorn until interrupted (what ``curate serve`` calls)."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("curate serve needs uvicorn, a dependency of curate: reinstall it "
                          "(pip install -e . in a checkout, or pip install curate)") from exc
    app = create_app(workspace_path, tokens, data_roots=data_roots, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=int(port), log_level=log_level)


class BackgroundServer:
    """A uvicorn server for ``app`` on a background thread (loopback by default).

    Used by tests, benchmarks and notebooks; ``curate serve`` runs uvicorn in the foreground.

    Parameters
    ----------
    app : ASGI application
    host : str
    port : int
        0 picks a free port; :attr:`url` tells which.

    Examples
    --------
    >>> with BackgroundServer(create_app(path, {"t": "write"})) as server:   # doctest: +SKIP
    ...     ws = curate.connect(server.url, token="t")
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self._config = uvicorn.Config(app, host=host, port=int(port), log_level=log_level,
                                      lifespan="on")
        self._server = uvicorn.Server(self._config)
        self._thread: Optional[threading.Thread] = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        """Start serving; returns when the socket listens (RuntimeError after ``timeout``)."""
        import time

        self._thread = threading.Thread(target=self._server.run, name="curate-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the curate server did not start (see the log above)")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _main(argv: Sequence[str]) -> int:
    """``python -m curate.server WORKSPACE [DATA_ROOT ...]``: serve on a free loopback port.

    Tokens come from ``$CURATE_TOKENS`` / the tokens file; prints ``CURATE_SERVER_URL <url>`` once
    listening (tests and benchmarks start servers this way and read the line).
    """
    import signal
    import sys

    if not argv:
        print("usage: python -m curate.server WORKSPACE [DATA_ROOT ...]", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("CURATE_LOG_LEVEL", "WARNING").upper())
    port = int(os.environ.get("CURATE_PORT", "0"))
    server = BackgroundServer(create_app(argv[0], data_roots=argv[1:]), port=port,
                              log_level=os.environ.get("CURATE_LOG_LEVEL", "warning").lower())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"CURATE_SERVER_URL {server.url}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses in the tests
    import sys

    sys.exit(_main(sys.argv[1:]))
