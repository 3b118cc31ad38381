"""The routes of the server, one handler per operation of :mod:`curate.operations`.

:func:`register_routes` adds every operation of the table to the app at the method, path and
token scope the table declares. An operation that is one workspace call gets the generic handler
(:func:`generic_handler`: arguments from the path, the query or the derived body, see
:mod:`curate.requests`); the others (path confinement, jobs, downloads, two-phase select) have a
handler written here and registered with :func:`handles` under the operation's name (a handler
without a declared operation is an error at import). Handlers get the :class:`~curate.server.state.ServerState` as a dependency; writes
go through ``state.writing()`` (the single writer), background jobs through ``state.jobs``.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pyarrow as pa
from fastapi import Depends, FastAPI, Query, Request, Response

from curate import _tables as T
from curate._version import __version__
from curate.api import (
    IngestReport,
    JobStatus,
    RunRecord,
    SelectionResult,
    SourceSpec,
)
from curate.errors import InvalidInputError, NotFoundError
from curate.auth import WRITE
from curate.interface import WorkspaceAPI
from curate.operations import ARROW, JOB, OPERATIONS, Operation, operation
from curate.requests import (
    annotation_of,
    is_str_type,
    wire_type,
    MAX_STRING,
    REQUESTS,
    EmbedRequest,
    ExportRequest,
    LabelImportRequest,
    LoopRequest,
    PretrainRequest,
    ScoresReadRequest,
    SelectRequest,
    VectorsRequest,
)
from curate.server.jobs import Job
from curate.server.security import (
    authorise,
    check_loop_detector,
    check_workers,
    confine_loop_config,
    confine_path,
    export_target,
    plain_file_name,
    plain_name,
)
from curate.server.state import ServerState
from curate.store_queries import require_embedding, require_samples
from curate.wire import ARROW_STREAM, EXPORT_MEDIA, encode_floats, table_to_ipc

__all__ = ["handles", "register_routes", "server_state", "HANDLERS"]

logger = logging.getLogger(__name__)

#: Selections planned outside the writer lock before one is computed under it.
_SELECT_ATTEMPTS = 3


@dataclass(frozen=True)
class Handler:
    """The server side of one operation: its function and extra FastAPI route options."""

    fn: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)


#: Operation name -> its handler (filled by :func:`handles` below).
HANDLERS: dict[str, Handler] = {}


def handles(name: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the handler of the operation ``name``."""
    operation(name)  # must be declared in the table

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in HANDLERS:
            raise ValueError(f"operation {name!r} has two handlers")
        HANDLERS[name] = Handler(fn, options)
        return fn

    return register


def server_state(request: Request) -> ServerState:
    """The :class:`ServerState` of the app serving ``request`` (a FastAPI dependency)."""
    return request.app.state.curate


def generic_handler(op: Operation) -> Handler:
    """The handler of an operation that is one workspace call (no server-side checks).

    Path parameters and query parameters (GET) or the derived body (POST, :data:`REQUESTS`) are
    the arguments of the interface method ``op.api``; a write holds the single writer; the
    answer is the method's result (under ``op.result`` when the table names a key, an Arrow
    stream for ``arrow`` operations).
    """
    if op.api is None:
        raise RuntimeError(f"operation {op.name!r} serves no interface method; write its handler")
    api = op.api
    declared = inspect.signature(getattr(WorkspaceAPI, api))
    params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)
              for name in op.path_params]
    body = REQUESTS.get(op.name)
    if op.method == "GET":
        for param in list(declared.parameters.values())[1:]:
            if param.name in op.path_params:
                continue
            tp = wire_type(annotation_of(getattr(WorkspaceAPI, api), param.name))
            default = None if param.default is inspect.Parameter.empty else param.default
            limits = {"max_length": MAX_STRING} if is_str_type(tp) else {}
            params.append(inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, annotation=tp,
                                            default=Query(default=default, **limits)))
    elif body is not None:
        params.append(inspect.Parameter("req", inspect.Parameter.KEYWORD_ONLY, annotation=body))
    params.append(inspect.Parameter("state", inspect.Parameter.KEYWORD_ONLY, annotation=ServerState,
                                    default=Depends(server_state)))

    def handle(**kwargs: Any) -> Any:
        state = kwargs.pop("state")
        req = kwargs.pop("req", None)
        if req is not None:
            kwargs.update({field: getattr(req, field) for field in type(req).model_fields})
        if "progress" in declared.parameters:  # no bars on the server
            kwargs["progress"] = False
        if op.scope == WRITE:
            with state.writing() as ws:
                result = getattr(ws, api)(**kwargs)
        else:
            result = getattr(state.workspace, api)(**kwargs)
        if op.kind == ARROW:
            return _arrow_response(result)
        return {op.result: result} if op.result is not None else result

    handle.__name__ = op.name
    handle.__doc__ = (getattr(WorkspaceAPI, api).__doc__ or "").strip().split("\n")[0]
    handle.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return Handler(handle, {"tags": ["workspace"]})


def register_routes(app: FastAPI) -> None:
    """Add one route per operation of the table, with the scope the table declares; operations
    without a hand-written handler get the generic one (:func:`generic_handler`)."""
    for op in OPERATIONS:
        handler = HANDLERS.get(op.name) or generic_handler(op)
        options = dict(handler.options)
        if op.kind == JOB:
            options.setdefault("response_model", JobStatus)
            options.setdefault("status_code", 202)
            options.setdefault("tags", ["jobs"])
        elif op.kind == ARROW:
            options.setdefault("responses", {200: {"content": {ARROW_STREAM: {}}}})
        app.add_api_route(op.path, handler.fn, methods=[op.method], name=op.name,
                          dependencies=[Depends(authorise(op.scope))], **options)


def _arrow_response(table: pa.Table) -> Response:
    return Response(content=table_to_ipc(table), media_type=ARROW_STREAM)


def _vectors_table(ids: Any, vectors: Any) -> pa.Table:
    n, dim = vectors.shape
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table({"id": pa.array([str(i) for i in ids], type=pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})


def _build_source(spec: SourceSpec, roots: list[Path]) -> Any:
    """The reader of a source spec, its root confined to the server's data roots."""
    return spec.build(confine_path(spec.root, roots, "data root"))


# ---------------------------------------------------------------- service
@handles("info", tags=["service"])
def info(state: ServerState = Depends(server_state)) -> dict[str, Any]:
    """Package version, frames, labeled frames, embeddings and runs of the workspace."""
    frames = state.workspace.count()
    return {
        "version": __version__,
        "workspace": state.workspace.path.name,
        "frames": frames,
        "labeled": state.workspace.count("labeled = true") if frames else 0,
        "embeddings": state.workspace.embeddings(),
        "runs": state.workspace.store.count(T.RUNS) if state.workspace.store.has_table(T.RUNS) else 0,
    }


# ---------------------------------------------------------------- frames
@handles("ingest", response_model=IngestReport, tags=["frames"])
def ingest(spec: SourceSpec, state: ServerState = Depends(server_state)) -> IngestReport:
    """Ingest a KITTI-format dataset or a folder of point clouds under a server data root."""
    source = _build_source(spec, state.data_roots)
    with state.writing() as w:
        return w.ingest(source, batch_size=spec.batch_size, progress=False, on_error=spec.on_error)


# ---------------------------------------------------------------- embeddings
@handles("vectors", tags=["embeddings"],
          responses={200: {"content": {ARROW_STREAM: {}}}})
def vectors(name: str, req: VectorsRequest, state: ServerState = Depends(server_state)) -> Response:
    """Ids and vectors of an embedding as an Arrow IPC stream (``id``, ``vector``)."""
    ids, vecs = state.workspace.vectors(name, req.ids, version=req.version)
    return _arrow_response(_vectors_table(ids, vecs))


@handles("submit_embed", response_model=JobStatus, status_code=202,
          tags=["jobs"])
def submit_embed(req: EmbedRequest, state: ServerState = Depends(server_state)) -> JobStatus:
    """Start an embedding job; poll ``GET /v1/jobs/{job_id}``."""
    from curate.embedding import build_embedder
    from curate.jobs.embed import EmbedJob

    config = dict(req.config)
    if "checkpoint" in config:
        if not isinstance(config["checkpoint"], str):
            raise InvalidInputError("config.checkpoint must be a path string")
        config["checkpoint"] = str(confine_path(config["checkpoint"], state.data_roots, "checkpoint"))
    require_samples(state.workspace.store)
    emb = build_embedder(req.model, **config)  # validates model and config before queueing
    name = req.name or emb.name
    # Reader threads are off by default on the server (one job at a time, no oversubscription).
    num_workers = 0 if req.num_workers is None else req.num_workers
    check_workers(num_workers, "num_workers")
    EmbedJob(name=name, batch_size=req.batch_size, write_every=req.write_every, device=req.device,
             num_workers=num_workers, precision=req.precision, dtype=req.dtype,
             on_error=req.on_error).validate()
    ws = state.workspace

    def run(job: Job) -> dict:
        report = ws.embed(emb, name=name, batch_size=req.batch_size, write_every=req.write_every,
                          device=req.device, progress=job.reporter("frame"), num_workers=num_workers,
                          precision=req.precision, dtype=req.dtype, on_error=req.on_error)
        return report.model_dump()

    return state.jobs.submit("embed", req.model_dump(), run)


@handles("submit_loop", response_model=JobStatus, status_code=202,
          tags=["jobs"])
def submit_loop(req: LoopRequest, state: ServerState = Depends(server_state)) -> JobStatus:
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
        config = str(confine_path(config, state.data_roots, "loop config"))
    cfg = load_loop_config(config, **options)  # validates before queueing
    cfg = confine_loop_config(cfg, state.data_roots, state.workspace.path)
    check_loop_detector(cfg)
    require_embedding(state.workspace.store, cfg.embedding)
    last = cfg.rounds if req.stop_after is None else min(req.stop_after, cfg.rounds)

    ws = state.workspace

    def run(job: Job) -> dict:
        job.advance(min(last, len(loop_rounds(ws, cfg.name))), last)  # rounds stored before (resume)

        def on_round(report: Any) -> None:
            job.advance(min(last, report.round + 1), last)

        report = ws.loop(cfg, stop_after=req.stop_after, on_round=on_round)
        return encode_floats(report.model_dump())

    return state.jobs.submit("loop", req.model_dump(), run)


def _submit_training(req: PretrainRequest, state: ServerState, load: Callable[[Any], Any],
                     train: Callable[..., Any]) -> JobStatus:
    """Queue a pretraining job: confine a config path, ``load`` it (validates before queueing),
    then run ``train(cfg, progress=...)`` with progress counted in training steps."""
    config: Any = req.config
    if isinstance(config, str):
        config = str(confine_path(config, state.data_roots, "pretraining config"))
    cfg = load(config)
    plain_name(cfg.name, "pretraining name")
    require_samples(state.workspace.store)

    def run(job: Job) -> dict:
        job.advance(0, int(cfg.train.steps))
        return encode_floats(train(cfg, progress=job.reporter("step")).model_dump())

    return state.jobs.submit("pretrain", req.model_dump(), run)


@handles("submit_pretrain", response_model=JobStatus, status_code=202,
          tags=["jobs"])
def submit_pretrain(req: PretrainRequest, state: ServerState = Depends(server_state)) -> JobStatus:
    """Start (or resume) self-supervised pretraining; poll ``GET /v1/jobs/{job_id}``.

    Progress counts training steps; the result is a ``curate.pretraining.PretrainReport``.
    """
    from curate.pretraining import read_config

    return _submit_training(req, state, read_config, state.workspace.pretrain)


@handles("submit_pretrain_image", response_model=JobStatus, status_code=202,
          tags=["jobs"])
def submit_pretrain_image(req: PretrainRequest, state: ServerState = Depends(server_state)) -> JobStatus:
    """Start (or resume) self-supervised training of the image embedder (``pretrain_image``).

    Progress counts training steps; the result is a ``curate.pretraining.PretrainReport``.
    """
    from embedders import EmbedderError
    from embedders.pretrain_image import load_image_config

    def load(config: Any) -> Any:
        try:
            return load_image_config(config)
        except EmbedderError as exc:
            raise InvalidInputError(str(exc)) from exc

    return _submit_training(req, state, load, state.workspace.pretrain_image)


@handles("jobs", response_model=list[JobStatus], tags=["jobs"])
def jobs(state: ServerState = Depends(server_state)) -> list[JobStatus]:
    """Jobs since the server started, oldest first."""
    return state.jobs.list()


@handles("job", response_model=JobStatus, tags=["jobs"])
def job(job_id: str, state: ServerState = Depends(server_state)) -> JobStatus:
    """Status and progress of one job."""
    return state.jobs.get(job_id)


# ---------------------------------------------------------------- selection and runs
@handles("select", response_model=SelectionResult, tags=["selection"])
def select(req: SelectRequest, state: ServerState = Depends(server_state)) -> SelectionResult:
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
        params["policy"] = str(confine_path(str(params["policy"]), [state.workspace.path.resolve(), *state.data_roots],
                                        "mgral policy"))
    args = dict(embedding=req.embedding, where=req.where, seed=req.seed, score_run=req.score_run,
                **params)
    if req.shards is not None or req.engine != "local":
        args.update(shards=req.shards, engine=req.engine)
    for attempt in range(_SELECT_ATTEMPTS):
        planned = state.workspace.plan_selection(req.strategy, req.budget, **args)
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
@handles("read_scores", tags=["scores"],
          responses={200: {"content": {ARROW_STREAM: {}}}})
def read_scores(run: str, req: ScoresReadRequest, state: ServerState = Depends(server_state)) -> Response:
    """Scores of a run as an Arrow IPC stream: ``frame_id`` and one float64 column per score."""
    ids, columns = state.workspace.scores(run, req.ids)
    table = pa.table({"frame_id": pa.array([str(i) for i in ids], type=pa.string()),
                      **{name: pa.array(values, type=pa.float64()) for name, values in columns.items()}})
    return _arrow_response(table)


@handles("runs", response_model=list[RunRecord], tags=["selection"])
def runs(
    kind: Optional[str] = Query(default=None, min_length=1, max_length=64,
                                description="only runs of this kind (selection, loop)"),
    run_id: Optional[list[str]] = Query(default=None, description="only these run ids (repeatable)"),
    where: Optional[str] = Query(default=None, max_length=8192,
                                 description="SQL filter on runs columns"),
    state: ServerState = Depends(server_state),
) -> list[RunRecord]:
    """Stored runs, oldest first (filters are pushed down to the table scan)."""
    return state.workspace.runs(kind, run_ids=run_id, where=where)


@handles("export_download", tags=["export"],
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
    state: ServerState = Depends(server_state),
) -> Response:
    """A run's export rendered on the server, sent as the body (``part=manifest``: its sidecar).

    The header ``X-Curate-Manifest: sidecar`` says that the format has a sidecar manifest.
    """
    from curate.export import manifest_path

    name = plain_file_name(filename or f"{run_id}.{format}")
    options = {k: v for k, v in (("base_url", base_url), ("path_root", path_root)) if v is not None}
    with tempfile.TemporaryDirectory(prefix="curate-export-") as tmp:
        out = Path(tmp) / name
        state.workspace.export(run_id, format, out, **options)
        side = manifest_path(out)
        has_side = side.is_file()
        if part == "manifest" and not has_side:
            raise NotFoundError(f"format {format!r} embeds its manifest; there is no sidecar")
        data = (side if part == "manifest" else out).read_bytes()
    media = "application/json" if part == "manifest" else EXPORT_MEDIA.get(format, "application/octet-stream")
    return Response(content=data, media_type=media,
                    headers={"X-Curate-Manifest": "sidecar" if has_side else "embedded"})


@handles("export_on_server", tags=["export"])
def export_on_server(run_id: str, req: ExportRequest, state: ServerState = Depends(server_state)) -> dict[str, str]:
    """Write a run's export inside ``<workspace>/exports`` (path relative to it)."""
    target = export_target(req.path, state.exports_root)
    options = {k: v for k, v in (("base_url", req.base_url), ("path_root", req.path_root)) if v is not None}
    with state.writing() as w:
        target.parent.mkdir(parents=True, exist_ok=True)
        w.export(run_id, req.format, target, **options)
    return {"path": target.relative_to(state.exports_root).as_posix()}


# ---------------------------------------------------------------- label import
@handles("import_labels", tags=["labels"])
def import_labels(req: LabelImportRequest, state: ServerState = Depends(server_state)) -> dict[str, Any]:
    """Import annotation files (KITTI label_2) read on the server, below its data roots."""
    from curate.labels_import import resolve_label_files

    paths = [str(confine_path(p, state.data_roots, "label path")) for p in req.paths]
    # the files of a folder are confined one by one (a file may link out of the folder)
    paths = [str(confine_path(str(f), state.data_roots, "label file")) for f in resolve_label_files(paths)]
    with state.writing() as w:
        report = w.import_labels(paths, format=req.format, prefix=req.prefix)
    return report.model_dump()
