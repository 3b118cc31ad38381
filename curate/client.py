"""HTTP client of ``curate serve``: :class:`RemoteWorkspace`, the same methods as the workspace.

``curate.connect("http://host:port", token=...)`` returns a :class:`RemoteWorkspace`. Its methods
take the same arguments and return the same types as :class:`curate.workspace.Workspace`
(pydantic models from :mod:`curate.api`, Arrow tables, numpy arrays), and errors raised by the
server come back as the *same exception classes with the same messages* (``NotFoundError``,
``BudgetError``, ``index.errors.FilterError``, ...), so a script or the CLI behaves identically
against both.

Where the two necessarily differ (documented per method):

* ``ingest(source)`` sends the source's kind, root and options (a reader object of a registered
  source kind, :mod:`curate.sources.registry`, or a :class:`~curate.api.SourceSpec`); the server
  reads the files, and only below its data roots (``curate serve --data-root DIR``).
* ``export(run_id, fmt, out)`` writes ``out`` on the *client* machine (the server renders the file
  and sends its bytes); :meth:`RemoteWorkspace.export_on_server` writes inside the server's
  workspace ``exports/`` folder instead.
* ``embed(...)``, ``loop(...)``, ``pretrain(...)`` and ``pretrain_image(...)`` start a background
  job on the server and wait for it (same result types as locally); ``submit_embed``,
  ``submit_loop`` and ``submit_pretrain`` return at once with a :class:`~curate.api.JobStatus`
  (``job``, ``jobs``, ``wait`` follow it). Config paths are server paths below its data roots,
  and a loop's detector is the one its config names (no detector objects over HTTP).

The class implements :class:`curate.interface.WorkspaceAPI`. Methods that are one plain call
are generated from the operation table (:mod:`curate.operations`, ``client="generated"``)
through one generic call, :meth:`RemoteWorkspace._invoke`; the others are written below, and the
table marks them as hand-written.

Wire protocol: JSON request bodies (derived from the signatures, :mod:`curate.requests`), JSON
results, Arrow IPC streams for tables and vectors, bearer-token auth. Errors are JSON objects
``{"detail": message, "error": {"type", "module", "message", "attrs"}}``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

import numpy as np

from curate.api import (
    EmbeddingEvaluation,
    EmbedReport,
    IngestReport,
    JobStatus,
    RunRecord,
    SearchResult,
    SelectionResult,
    SourceSpec,
)
from curate.errors import InvalidInputError, NotFoundError
from curate.interface import WorkspaceAPI
from curate.progress import Progress
from curate.reports import ImportReport, LoopReport, PretrainReport, RoundReport
from curate.operations import ARROW as ARROW_KIND
from curate.operations import DOWNLOAD as DOWNLOAD_KIND
from curate.operations import GENERATED, OPERATIONS, operation, operation_for
from curate.wire import (  # noqa: F401  (re-exported: the client's public error classes)
    ARROW_STREAM,
    JobInterruptedError,
    RemoteNotSupportedError,
    ServiceBusyError,
    ServiceError,
    decode_floats,
    encode_floats,
    error_from_response,
    table_from_ipc,
)

__all__ = [
    "RemoteWorkspace",
    "ServiceError",
    "ServiceBusyError",
    "RemoteNotSupportedError",
    "JobInterruptedError",
    "encode_floats",
    "decode_floats",
    "ARROW_STREAM",
    "is_url",
    "import_httpx",
]

if TYPE_CHECKING:  # annotations only: the same as Workspace's (tests/test_congruence.py)
    from curate.selectors.base import Selector
    from curate.sources.base import Source

logger = logging.getLogger(__name__)

def is_url(value: Any) -> bool:
    """Whether ``value`` names an HTTP(S) service rather than a directory."""
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def import_httpx() -> Any:
    """Import httpx or raise an ImportError that says what to install."""
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the curate HTTP client needs httpx, a dependency of curate: reinstall it "
            "(pip install -e . in a checkout, or pip install curate)"
        ) from exc
    return httpx


def _source_spec(source: Any, batch_size: int) -> SourceSpec:
    """A :class:`SourceSpec` for a reader object of a registered source, a SourceSpec or a dict."""
    if isinstance(source, SourceSpec):
        return source.model_copy(update={"batch_size": batch_size})
    if isinstance(source, dict):
        return SourceSpec(**{"batch_size": batch_size, **source})
    try:
        return SourceSpec.of(source, batch_size=batch_size)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"a remote workspace ingests a registered source object or a SourceSpec (kind + "
            f"server-side root); the server reads the files itself. {exc}"
        ) from None


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data: numpy arrays and scalars, paths, and any iterable (sequences,
    generators) become plain lists, numbers and strings."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_jsonable(v) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def _result_type(api: str) -> Any:
    """A pydantic TypeAdapter for the declared return type of the interface method ``api``."""
    from pydantic import TypeAdapter

    return TypeAdapter(typing.get_type_hints(getattr(WorkspaceAPI, api))["return"])


def _generated_method(api: str) -> Any:
    """The client method of the interface method ``api``: bind the arguments to its declared
    signature and make the one generic call (:meth:`RemoteWorkspace._invoke`)."""
    declared = getattr(WorkspaceAPI, api)
    signature = inspect.signature(declared)

    def method(self: "RemoteWorkspace", /, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self")
        return self._invoke(api, arguments)

    method.__name__ = api
    method.__qualname__ = f"RemoteWorkspace.{api}"
    method.__doc__ = declared.__doc__
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__operation__ = operation_for(api).name  # type: ignore[attr-defined]
    return method


class RemoteWorkspace(WorkspaceAPI):
    """A curate workspace served by ``curate serve``, used over HTTP.

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://127.0.0.1:8000``.
    token : str, optional
        Bearer token (default: ``$CURATE_TOKEN``).
    timeout : float
        Seconds to wait for one response (writes wait for the server's single writer).
    poll_interval : float
        Seconds between job status polls in :meth:`embed`.

    Examples
    --------
    >>> ws = curate.connect("http://127.0.0.1:8000", token="...")   # doctest: +SKIP
    >>> ws.select("kcenter", 10, embedding="bev-hist").ids          # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        token: Optional[str] = None,
        timeout: float = 600.0,
        poll_interval: float = 0.2,
    ) -> None:
        httpx = import_httpx()
        if not is_url(url):
            raise InvalidInputError(f"{url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        token = token if token is not None else os.environ.get("CURATE_TOKEN")
        headers = {"User-Agent": "curate-client"}
        if token:
            headers["Authorization"] = f"Bearer {token.strip()}"
        self.poll_interval = float(poll_interval)
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"RemoteWorkspace({self.url!r})"

    def __getattr__(self, name: str) -> Any:
        """A clear error for workspace methods without a route (none today; kept for new ones)."""
        from curate.workspace import Workspace

        if not name.startswith("_") and hasattr(Workspace, name):
            raise RemoteNotSupportedError(
                f"Workspace.{name} is not available over HTTP: run it on the server host against "
                "the workspace directory (curate.connect(DIR))"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> "RemoteWorkspace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        httpx = import_httpx()
        try:
            response = self._client.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise ServiceError(
                f"cannot reach the curate server at {self.url} ({type(exc).__name__}: {exc}); "
                "is `curate serve` running there?"
            ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text[:500] or response.reason_phrase}
            raise error_from_response(response.status_code, body)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _call(self, name: str, /, *, json: Any = None, params: Any = None, **path_params: str) -> Any:
        """Call the operation ``name`` of the table (:mod:`curate.operations`): its method and path
        come from there; returns the decoded JSON, an Arrow table for ``arrow`` operations, the
        response itself for ``download`` ones."""
        op = operation(name)
        path = op.path.format(**{k: _quote(str(v)) for k, v in path_params.items()})
        response = self._request(op.method, path, json=json, params=params)
        if op.kind == DOWNLOAD_KIND:
            return response
        return table_from_ipc(response.content) if op.kind == ARROW_KIND else response.json()

    def _invoke(self, api: str, arguments: dict[str, Any]) -> Any:
        """The one generic call behind every generated method: the arguments of the interface
        method ``api`` go as path parameters, query parameters (GET) or the JSON body (POST) of
        the operation serving it, and the answer comes back as the declared return type."""
        op = operation_for(api)
        values = {name: _jsonable(value) for name, value in arguments.items()}
        path = {name: values.pop(name) for name in op.path_params}
        if op.method == "GET":
            query = {k: v for k, v in values.items() if v is not None}
            answer = self._call(op.name, params=query or None, **path)
        else:
            answer = self._call(op.name, json=values, **path)
        if op.result is not None:
            answer = answer[op.result]
        if op.kind == ARROW_KIND:
            return answer
        return _result_type(api).validate_python(answer)

    # ------------------------------------------------------------------ service
    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ...}`` of the server (no token needed)."""
        return self._json("GET", "/health")

    def info(self) -> dict[str, Any]:
        """Workspace summary: package version, frames, embeddings, runs."""
        return self._call("info")

    # ------------------------------------------------------------------ frames
    def ingest(self, source: Source, *, batch_size: int = 2000, progress: Optional[bool] = None,
               on_error: str = "skip") -> IngestReport:
        """Ingest a source that the *server* reads (its root must be under a server data root).

        ``source`` is a ``KittiSource``/``FolderSource`` (its root, split, prefix and pattern are
        sent), a :class:`~curate.api.SourceSpec` or a dict of one. ``progress`` is accepted for
        congruence and ignored (the server logs progress).
        """
        spec = _source_spec(source, batch_size).model_copy(update={"on_error": on_error})
        return IngestReport(**self._call("ingest", json=spec.model_dump()))

    # ------------------------------------------------------------------ labels
    # ------------------------------------------------------------------ embeddings
    def submit_embed(
        self,
        model: str,
        *,
        name: Optional[str] = None,
        batch_size: int = 8,
        write_every: int = 256,
        device: str = "auto",
        num_workers: Optional[int] = None,
        precision: str = "auto",
        dtype: str = "float32",
        on_error: str = "skip",
        **config: Any,
    ) -> JobStatus:
        """Start an embedding job on the server; returns its status at once.

        ``num_workers=None`` reads frames in the job's own thread on the server (0 reader
        processes).
        """
        if not isinstance(model, str):
            raise InvalidInputError(
                "a remote workspace embeds with a registry name (see `curate models`), "
                f"not a {type(model).__name__} object"
            )
        body = {"model": model, "name": name, "batch_size": batch_size, "write_every": write_every,
                "device": device, "num_workers": num_workers, "precision": precision, "dtype": dtype, "on_error": on_error,
                "config": config}
        return JobStatus(**self._call("submit_embed", json=body))

    def job(self, job_id: str) -> JobStatus:
        """Status and progress of a job."""
        return JobStatus(**self._call("job", job_id=job_id))

    def jobs(self) -> list[JobStatus]:
        """Every job the server knows since it started, oldest first."""
        return [JobStatus(**j) for j in self._call("jobs")]

    def wait(self, job_id: str, *, progress: Optional[bool] = None) -> JobStatus:
        """Poll a job until it finishes; re-raise its error (same class and message) if it failed."""
        from curate.progress import progress_bar

        status = self.job(job_id)
        unit = {"loop": "round", "pretrain": "step"}.get(status.kind, "frame")
        with progress_bar(total=status.total, desc=f"job {job_id}", unit=unit, enable=progress) as bar:
            while status.state in ("queued", "running"):
                time.sleep(self.poll_interval)
                status = self.job(job_id)
                if status.total is not None and bar.total != status.total:
                    bar.total = status.total
                if status.done is not None and status.done > bar.n:
                    bar.update(status.done - bar.n)
        if status.state in ("failed", "interrupted"):
            raise error_from_response(500, {"error": status.error or {}})
        return status

    # ------------------------------------------------------------------ loop and pretraining
    def submit_loop(self, config: Any = None, *, stop_after: Optional[int] = None, **options: Any) -> JobStatus:
        """Start (or resume) an active-learning loop on the server; returns its job status at once.

        ``config``: a :class:`curate.loop.LoopConfig`, a dict of its fields, or the path of a
        JSON / YAML file *on the server* (below its data roots); ``options`` override fields.
        """
        from curate.loop.config import LoopConfig

        for name in ("detector", "on_round"):
            if name in options:
                raise InvalidInputError(
                    f"a remote workspace cannot send a {name} object to the server (the config's "
                    "'detector' field names the detector; RemoteWorkspace.loop takes on_round)"
                )
        if isinstance(config, LoopConfig):
            config = config.model_dump()
        elif isinstance(config, Path):
            config = str(config)
        body = {"config": config, "options": options, "stop_after": stop_after}
        return JobStatus(**self._call("submit_loop", json=body))

    def loop(self, config: Any = None, **options: Any) -> LoopReport:
        """Run (or resume) an active-learning loop on the server and wait for it.

        Same arguments and result (:class:`curate.loop.LoopReport`) as ``Workspace.loop``;
        ``stop_after`` is honoured; ``on_round`` is called, once the job finished, with each
        round this call ran; ``detector`` objects cannot be sent (the config names the
        detector). Paths in the config are server paths below its data roots.
        """
        on_round = options.pop("on_round", None)
        stop_after = options.pop("stop_after", None)
        if "detector" in options:
            raise InvalidInputError(
                "a remote workspace cannot send a detector object; the server builds the "
                "detector named by the config's 'detector' field"
            )
        status = self.submit_loop(config, stop_after=stop_after, **options)
        result = decode_floats(self.wait(status.job_id, progress=False).result or {})
        rounds = [RoundReport(**r) for r in result.get("rounds", [])]
        report = LoopReport(name=result["name"], rounds=rounds, resumed_from=int(result.get("resumed_from", 0)))
        if on_round is not None:
            for rnd in rounds[report.resumed_from:]:
                on_round(rnd)
        return report

    def submit_pretrain(self, config: Any = None) -> JobStatus:
        """Start (or resume) self-supervised pretraining on the server; returns its job status.

        ``config``: a nested dict (the TOML layout), a ``PretrainConfig``, or the path of a TOML
        file *on the server* (below its data roots); None = the defaults.
        """
        return JobStatus(**self._call("submit_pretrain", json={"config": self._config_body(config)}))

    def pretrain_image(self, config: Any = None, *, progress: Progress = None) -> PretrainReport:
        """Self-supervised training of the image embedder on the server (``Workspace.pretrain_image``).

        ``config``: a nested dict, an ``ImagePretrainConfig`` or a TOML path *on the server*.
        Returns a :class:`curate.pretraining.PretrainReport` (server paths).
        """
        body = {"config": self._config_body(config)}
        status = JobStatus(**self._call("submit_pretrain_image", json=body))
        final = self.wait(status.job_id, progress=progress)
        return PretrainReport(**decode_floats(final.result or {}))

    @staticmethod
    def _config_body(config: Any) -> Any:
        """A config as JSON: dicts and server paths as they are, config objects via ``to_dict``."""
        if isinstance(config, Path):
            return str(config)
        if config is None or isinstance(config, (dict, str)):
            return config
        to_dict = getattr(config, "to_dict", None)
        if to_dict is None:
            raise InvalidInputError(
                f"a config must be a dict, a TOML path on the server or a config object, not "
                f"{type(config).__name__}"
            )
        return to_dict()

    def pretrain(self, config: Any = None, *, progress: Progress = None) -> PretrainReport:
        """Pretrain on the server's frames and wait (same result as ``Workspace.pretrain``).

        Returns a :class:`curate.pretraining.PretrainReport`; its paths are server paths inside
        the workspace (``checkpoints/<name>/``), usable as ``checkpoint=`` in :meth:`embed`
        when the workspace lies below a server data root.
        """
        status = self.submit_pretrain(config)
        final = self.wait(status.job_id, progress=progress)
        return PretrainReport(**decode_floats(final.result or {}))

    def embed(
        self,
        model: Any,
        *,
        name: Optional[str] = None,
        batch_size: int = 8,
        write_every: int = 256,
        device: str = "auto",
        progress: Progress = None,
        num_workers: Optional[int] = None,
        precision: str = "auto",
        dtype: str = "float32",
        on_error: str = "skip",
        engine: str = "local",
        address: Optional[str] = None,
        workers: Optional[int] = None,
        **config: Any,
    ) -> EmbedReport:
        """Embed every frame on the server (a background job) and wait for it.

        Same arguments and result as :meth:`curate.workspace.Workspace.embed`, except that
        ``model`` must be a registry name. A ``checkpoint`` path is read on the server and must
        be under its data roots. The server runs the single-process engine only: ``engine="ray"``
        is refused here (run ``curate embed --engine ray`` on a machine that opens the workspace
        directly).
        """
        if engine != "local" or address is not None or workers is not None:
            raise InvalidInputError(
                f"embed: engine={engine!r} (address, workers) is not available over HTTP; the server "
                "embeds with engine='local'. Run `curate embed --engine ray --workspace DIR` where the "
                "workspace directory (or its object-storage URI) is reachable"
            )
        status = self.submit_embed(model, name=name, batch_size=batch_size, write_every=write_every,
                                   device=device, num_workers=num_workers, precision=precision,
                                   dtype=dtype, on_error=on_error,
                                   **config)
        final = self.wait(status.job_id, progress=progress)
        return EmbedReport(**(final.result or {}))

    def vectors(
        self, embedding: str, ids: Optional[Sequence[str]] = None, *, version: Optional[int] = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of an embedding (all rows sorted by id, or the given ids in order)."""
        body = {"ids": None if ids is None else [str(i) for i in ids], "version": version}
        table = self._call("vectors", name=embedding, json=body)
        out_ids = np.asarray(table.column("id").to_pylist(), dtype=object)
        column = table.column("vector").combine_chunks()
        dim = column.type.list_size
        flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        return out_ids, np.ascontiguousarray(flat.reshape(len(out_ids), dim))

    # ------------------------------------------------------------------ selection
    def select(
        self,
        strategy: Union[str, Selector],
        budget: int,
        *,
        embedding: str,
        where: Optional[str] = None,
        seed: int = 0,
        score_run: Optional[str] = None,
        shards: Optional[int] = None,
        engine: str = "local",
        **params: Any,
    ) -> SelectionResult:
        """Choose ``budget`` unlabeled frames and store the run (see ``Workspace.select``).

        A selector object is sent as its registry name and constructor parameters, so it must be
        a registered strategy.
        """
        from curate.selectors import Selector

        if isinstance(strategy, Selector):
            if params:
                raise InvalidInputError("pass parameters to the selector's constructor, not to select()")
            name, params = strategy.name, strategy.params()
        else:
            name = str(strategy)
        body = {"strategy": name, "budget": budget, "embedding": embedding, "where": where,
                "seed": seed, "score_run": score_run, "params": params}
        if shards is not None or engine != "local":
            body.update(shards=shards, engine=engine)
        return SelectionResult(**self._call("select", json=body))

    def runs(
        self,
        kind: Optional[str] = None,
        *,
        run_ids: Optional[Sequence[str]] = None,
        where: Optional[str] = None,
    ) -> list[RunRecord]:
        """Stored runs, oldest first, optionally filtered (see ``Workspace.runs``)."""
        if run_ids is not None and not list(run_ids):
            return []
        params: dict[str, Any] = {}
        if kind is not None:
            params["kind"] = kind
        if run_ids is not None:
            params["run_id"] = [str(i) for i in run_ids]
        if where is not None:
            params["where"] = where
        return [RunRecord(**r) for r in self._call("runs", params=params or None)]

    # ------------------------------------------------------------------ search
    def search(
        self,
        embedding: str,
        *,
        ids: Optional[Sequence[str]] = None,
        vectors: Any = None,
        k: int = 10,
        where: Optional[str] = None,
        metric: str = "l2",
        exclude_self: bool = True,
        version: Optional[int] = None,
        nprobe: Optional[int] = None,
    ) -> SearchResult:
        """The ``k`` nearest frames of query frame ids or query vectors (see ``Workspace.search``)."""
        if isinstance(ids, str):
            raise InvalidInputError("ids must be a list of frame ids, not a single string")
        if nprobe is not None and (isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer))
                                   or nprobe < 1):  # JSON would turn true into 1
            raise InvalidInputError(f"nprobe must be a positive integer, got {nprobe!r}")
        if vectors is not None:
            matrix = np.asarray(vectors, dtype=np.float64)
            if not np.isfinite(matrix).all():
                raise InvalidInputError("query vectors contain NaN or inf")
            vectors = (matrix[None, :] if matrix.ndim == 1 else matrix).tolist()
        body = {"embedding": embedding, "ids": None if ids is None else [str(i) for i in ids],
                "vectors": vectors, "k": k, "where": where, "metric": metric,
                "exclude_self": exclude_self, "version": version,
                "nprobe": None if nprobe is None else int(nprobe)}
        return SearchResult(**self._call("search", json=body))

    # ------------------------------------------------------------------ export
    def export(
        self,
        run_id: str,
        fmt: str,
        out: Union[str, Path],
        *,
        base_url: Optional[str] = None,
        path_root: Optional[str] = None,
    ) -> Path:
        """Write the selection of ``run_id`` to ``out`` on this (the client's) machine.

        The server renders the file (and, for formats without an embedded run record, the sidecar
        ``<out>.manifest.json``, written next to ``out``); ``path_root`` is a server path.
        """
        out = Path(out)
        params = {"format": fmt, "filename": out.name or "export"}
        params.update({k: v for k, v in (("base_url", base_url), ("path_root", path_root)) if v is not None})
        response = self._call("export_download", run_id=run_id, params=params)  # errors first, as locally
        if not out.parent.exists():
            raise InvalidInputError(f"cannot write {str(out)!r}: directory {str(out.parent)!r} does not exist")
        if out.is_dir():
            raise InvalidInputError(f"cannot write {str(out)!r}: it is a directory; give a file name")
        files = [(out, response.content)]
        if response.headers.get("x-curate-manifest") == "sidecar":
            from curate.export import manifest_path

            side = self._call("export_download", run_id=run_id, params={**params, "part": "manifest"}).content
            files.append((manifest_path(out), side))
        for target, data in files:  # temporary names, renamed into place
            tmp = target.with_name(f".{target.name}.part")
            tmp.write_bytes(data)
            tmp.replace(target)
        return out

    def export_on_server(
        self,
        run_id: str,
        fmt: str,
        path: str,
        *,
        base_url: Optional[str] = None,
        path_root: Optional[str] = None,
    ) -> str:
        """Write the export inside the server workspace's ``exports/`` folder; returns its path there."""
        body = {"format": fmt, "path": str(path), "base_url": base_url, "path_root": path_root}
        return str(self._call("export_on_server", run_id=run_id, json=body)["path"])

    # ------------------------------------------------------------------ scores
    def write_scores(
        self,
        run: str,
        ids: Sequence[str],
        columns: Any,
        *,
        predictions: Optional[Sequence[Any]] = None,
    ) -> int:
        """Store per-frame score columns of the prediction run ``run``; returns the table version.

        Raw ``predictions`` are not sent over HTTP: run the detector loop on the server for them.
        """
        if predictions is not None:
            raise InvalidInputError(
                "a remote workspace stores score columns only; pass predictions=None "
                "(raw detections are kept by loops that run on the server)"
            )
        body = {"ids": [str(i) for i in ids],
                "columns": {str(k): np.asarray(v, dtype=np.float64).tolist() for k, v in dict(columns).items()}}
        return int(self._call("write_scores", run=run, json=body)["version"])

    def scores(self, run: str, ids: Optional[Sequence[str]] = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(frame ids, {column: values})`` of the stored score run ``run`` (aligned with ``ids``)."""
        body = {"ids": None if ids is None else [str(i) for i in ids]}
        table = self._call("read_scores", run=run, json=body)
        frame_ids = np.asarray(table.column("frame_id").to_pylist(), dtype=object)
        return frame_ids, {name: table.column(name).to_numpy().astype(np.float64)
                           for name in table.column_names if name != "frame_id"}

    # ------------------------------------------------------------------ labels import, fusion
    def import_labels(
        self,
        paths: Union[str, Path, Sequence[Union[str, Path]]],
        *,
        format: str = "kitti",
        prefix: Optional[str] = None,
    ) -> ImportReport:
        """Import annotation files that the *server* reads (below its data roots).

        Returns a :class:`curate.labels_import.ImportReport`, as the workspace does.
        """
        items = [paths] if isinstance(paths, (str, Path)) else list(paths)
        body = {"paths": [str(p) for p in items], "format": format, "prefix": prefix}
        return ImportReport(**self._call("import_labels", json=body))

    def fuse(
        self,
        sources: Sequence[str],
        *,
        name: str = "fused",
        weights: Optional[Sequence[float]] = None,
        method: str = "concat",
        progress: Optional[bool] = None,
    ) -> EmbedReport:
        """Combine stored embeddings into the embedding ``name`` (see ``Workspace.fuse``)."""
        if isinstance(sources, str):  # the workspace's own message
            raise InvalidInputError(f"sources must be a non-empty list of embedding names, got {sources!r}")
        body = {"sources": list(sources), "name": name,
                "weights": None if weights is None else [float(w) for w in weights], "method": method}
        return EmbedReport(**self._call("fuse", json=body))


    def evaluate_embeddings(
        self,
        names: Sequence[str],
        *,
        k: int = 10,
        window: int = 5,
        columns: Optional[Sequence[str]] = None,
        labels: str = "labeled",
        where: Optional[str] = None,
        duplicate_threshold: float = 0.98,
        test_fraction: float = 0.3,
        seed: int = 0,
        out: Optional[Union[str, Path]] = None,
    ) -> EmbeddingEvaluation:
        """Judge embeddings side by side (see ``Workspace.evaluate_embeddings``).

        Runs here, in the client, over this client's ``vectors`` / ``frames`` / ``boxes`` calls
        (the whole vectors travel; no server route yet). ``out`` is a path on this machine.
        """
        from curate.embedding_eval import evaluate_embeddings

        known = set(self.embeddings())
        for name in names:
            if name not in known:
                raise NotFoundError(f"no embedding {name!r} in this workspace (have: {sorted(known)})")
        return evaluate_embeddings(self, names, k=k, window=window, columns=columns, labels=labels,
                                   where=where, duplicate_threshold=duplicate_threshold,
                                   test_fraction=test_fraction, seed=seed, out=out)


for _op in OPERATIONS:  # the generated methods (the rest of the interface is written above)
    if _op.client == GENERATED and _op.api is not None:
        setattr(RemoteWorkspace, _op.api, _generated_method(_op.api))


def _quote(segment: str) -> str:
    from urllib.parse import quote

    if not isinstance(segment, str) or not segment:
        raise InvalidInputError(f"expected a non-empty name, got {segment!r}")
    return quote(segment, safe="")
