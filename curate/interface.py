"""The workspace API, declared once: :class:`WorkspaceAPI`, every operation's signature and docstring.

Two classes implement it, with the same signatures (tests/test_api_structure.py compares
``inspect.signature`` of every operation on the three):

* :class:`curate.workspace.Workspace`, in process, over a workspace directory;
* :class:`curate.client.RemoteWorkspace`, over HTTP against ``curate serve``; its methods come
  from the operation table (:mod:`curate.operations`) through one generic call, except the
  hand-written ones the table marks as such.

Which HTTP route serves which method, and its scope and kind, is declared in
:mod:`curate.operations`; the request bodies of the routes are derived from these signatures
(:mod:`curate.requests`).

Not part of the API: :meth:`Workspace.plan_selection` / :meth:`Workspace.store_selection` (the
server's two-phase select, :data:`LOCAL_ONLY`) and the remote client's job control and server-side
paths (:data:`REMOTE_ONLY`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np
import pyarrow as pa

from curate.api import (
    EmbeddingEvaluation,
    EmbedReport,
    IngestReport,
    LabelReport,
    Problem,
    RunRecord,
    SearchResult,
    SelectionResult,
)
from curate.progress import Progress
from curate.reports import ImportReport, LoopReport, PretrainReport

if TYPE_CHECKING:
    from curate.selectors.base import Selector
    from curate.sources.base import Source

__all__ = ["WorkspaceAPI", "OPERATION_NAMES", "LOCAL_ONLY", "REMOTE_ONLY"]

#: Public methods only the in-process workspace has (the server's two-phase select: planned
#: outside the writer lock, stored under it).
LOCAL_ONLY = frozenset({"plan_selection", "store_selection"})
#: Public methods only the HTTP client has: job control, the server's health and summary, exports
#: written on the server, closing the connection.
REMOTE_ONLY = frozenset({"close", "export_on_server", "health", "info", "job", "jobs", "submit_embed",
                         "submit_loop", "submit_pretrain", "wait"})


@runtime_checkable
class WorkspaceAPI(Protocol):
    """The curate workspace API (see the module docstring); ``curate.connect`` returns one."""

    def ingest(
        self, source: Source, *, batch_size: int = 2000, progress: Optional[bool] = None,
        on_error: str = "skip",
    ) -> IngestReport:
        """Add (or update) every frame of ``source`` in ``samples`` and its boxes in ``labels``.

        Upsert by frame id: ingesting the same data twice changes nothing, and the label state
        of frames already in the workspace is kept. With ``on_error="fail"``, if the source
        raises part-way (a corrupt file, say), the tables are restored to the versions they had
        before the call.

        Parameters
        ----------
        source : Source
            Iterable of :class:`~curate.sources.base.FrameRecord`.
        batch_size : int
            Frames per write.
        progress : bool, optional
            Show a progress bar (default: when stderr is a terminal).
        on_error : {"skip", "fail"}
            ``"skip"`` (default): a frame the source cannot read (sources with a
            ``records(on_error=)`` method: folders, KITTI, nuScenes) is recorded in the ``problems`` table
            (:meth:`problems`) with its file and reason, and the ingest goes on; frames that
            ingest fine clear their earlier ingest problems. ``"fail"``: the first bad frame
            stops the ingest and rolls it back.

        Returns
        -------
        IngestReport

        Notes
        -----
        Memory O(batch_size); time O(frames).
        """
        ...

    def count(self, where: Optional[str] = None) -> int:
        """Number of frames (matching ``where``)."""
        ...

    def frames(
        self,
        *,
        where: Optional[str] = None,
        columns: Optional[Sequence[str]] = None,
        ids: Optional[Sequence[str]] = None,
        version: Optional[int] = None,
    ) -> pa.Table:
        """Rows of ``samples`` (optionally filtered, restricted to ``ids`` or at a version)."""
        ...

    def boxes(self, frame_ids: Sequence[str], *, labeled_only: bool = True) -> pa.Table:
        """Boxes of the given frames; by default only for frames marked labeled."""
        ...

    def label(self, ids: Iterable[str]) -> LabelReport:
        """Mark frames as labeled: their stored boxes now count as labels and selectors skip them.

        Unknown ids raise :class:`NotFoundError` (listing up to five) and change nothing.
        """
        ...

    def labeled_ids(self) -> list[str]:
        """Ids of the frames marked labeled, sorted."""
        ...

    def problems(self, *, stage: Optional[str] = None, severity: Optional[str] = None) -> list[Problem]:
        """Bad frames recorded by ingest and embedding jobs run with ``on_error="skip"``.

        Parameters
        ----------
        stage : str, optional
            ``"ingest"`` or ``"embed:<embedding>"``; default every stage.
        severity : {"error", "warning"}, optional
            ``"error"``: skipped frames; ``"warning"``: frames kept with NaN/inf points dropped.

        Returns
        -------
        list of Problem
            Sorted by stage, then frame id. A frame that succeeds on a later run of its stage
            is no longer listed.
        """
        ...

    def embeddings(self) -> list[str]:
        """Names of the embeddings stored in this workspace (internal caches left out)."""
        ...

    def versions(self) -> dict[str, int]:
        """Current version of the workspace's tables, to pin reads (``version=``) to.

        Keys: ``samples``, ``labels``, ``runs``, ``scores`` (those that exist) and
        ``embedding:<name>`` for each embedding. O(tables).
        """
        ...

    def embedding_info(self, name: str) -> dict[str, str]:
        """Schema metadata (embedder, config, weights checksum) of the embedding ``name``."""
        ...

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
        """Embed every frame with ``model`` into the embedding table ``name``.

        Parameters
        ----------
        model : str or embedders.Embedder
            Registry name (``curate embed --model``) or an embedder object.
        name : str, optional
            Embedding name (default: the embedder's registry name).
        batch_size : int
            Frames per forward pass.
        write_every : int
            Vectors buffered before a write; an interruption loses at most this many.
        device : str
            ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        progress : bool or callable, optional
            Show a progress bar (default: when stderr is a terminal); a callable is called as
            ``progress(done, total, "frame")`` instead (:data:`curate.progress.Progress`).
        num_workers : int, optional
            Processes reading the frame files (default ``min(2, CPUs)``; 0 = in this process).
        precision : {"auto", "fp32", "fp16"}
            ``auto`` = fp16 autocast on CUDA, fp32 on CPU (recorded in the table metadata).
        dtype : {"float32", "float16"}
            Storage type of the vectors (recorded in the table metadata as ``dtype``; float16
            halves the table, reads upcast to float32 chunk by chunk).
        on_error : {"skip", "fail"}
            ``"skip"`` (default): a frame whose file is missing or corrupt, or left with too few
            points after dropping NaN/inf points, is recorded in ``problems`` and the job goes
            on (the next run retries it); ``"fail"``: the first such frame stops the job.
        engine : {"local", "ray"}
            ``ray`` runs :func:`curate.jobs.ray_engine.run_ray_embed_job` (an actor pool with
            one model per worker; same table, metadata and vectors; needs ``curate[ray]``).
        address : str, optional
            Ray cluster to join (``engine="ray"``); default: a local cluster for the job.
        workers : int, optional
            Ray actors (default: one per GPU, else one per CPU of the cluster).
        **config
            Embedder configuration when ``model`` is a name.

        Returns
        -------
        EmbedReport

        Notes
        -----
        Runs :func:`curate.jobs.embed.run_embed_job`. Only frames without a vector from the same
        model (same name, config, weights checksum and precision) are computed, so an
        interrupted job (even ``kill -9``) resumes where it stopped. A different model replaces
        the table's vectors in a new version; vectors of two models are never mixed in one
        table. Image embedders read each frame's ``image_paths``.
        """
        ...

    def fuse(
        self,
        sources: Sequence[str],
        *,
        name: str = "fused",
        weights: Optional[Sequence[float]] = None,
        method: str = "concat",
        progress: Optional[bool] = None,
    ) -> EmbedReport:
        """Combine embeddings of the same frames into one embedding ``name`` (see :mod:`curate.fusion`).

        Each source vector is L2-normalised and multiplied by its weight; ``method="concat"``
        concatenates, ``method="mean"`` averages (equal dims). The table metadata records the
        method, the sources with their table versions and weights checksums. Frames missing
        from a source raise :class:`NotFoundError` and nothing is written.
        """
        ...

    def vectors(
        self, embedding: str, ids: Optional[Sequence[str]] = None, *, version: Optional[int] = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of an embedding (all rows sorted by id, or the given ids in order)."""
        ...

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
        """Choose ``budget`` unlabeled frames and store the run.

        Parameters
        ----------
        strategy : str or Selector
            A selector object, or a registry name (``random``, ``kcenter``, ...) built with
            ``**params``.
        budget : int
            Frames to select.
        embedding : str
            Embedding the selector works on.
        where : str, optional
            SQL filter on ``samples`` columns restricting the candidates (labeled frames are
            always used as context, whatever the filter).
        seed : int
            Seed of the selector: same data versions + same config + same seed = same ids.
        score_run : str, optional
            Stored prediction run (:meth:`scores`) whose per-frame scores are passed to the
            selector as ``scores=`` (every column, by name; labeled rows get 0). Required by
            uncertainty and hybrid strategies.
        shards : int, optional
            Run the strategy as :class:`curate.selectors.Sharded` over this many partitions
            (stored as strategy ``sharded``; ``info`` reports the loss against the unsharded
            strategy on pools up to 200k frames).
        engine : {"local", "ray"}
            Where the shards run: worker processes, or Ray tasks (``curate[ray]``).

        Returns
        -------
        SelectionResult
        """
        ...

    def reproduce(self, run_id: str) -> list[str]:
        """Recompute a stored run at the table versions it read; returns the ids (not stored).

        Same data versions + same config + same seed give the same ids, so the result equals
        ``run(run_id).ids`` unless the selector's code changed.
        """
        ...

    def write_scores(
        self,
        run: str,
        ids: Sequence[str],
        columns: Any,
        *,
        predictions: Optional[Sequence[Any]] = None,
    ) -> int:
        """Store per-frame scores (``columns``: name -> values aligned with ``ids``) of the
        prediction run ``run`` in the ``scores`` table (upsert by run and frame id); optional
        :class:`~curate.scores_table.FramePrediction` per frame keep the raw detections.

        Unknown frame ids raise :class:`NotFoundError` and write nothing. Returns the table version.
        """
        ...

    def scores(self, run: str, ids: Optional[Sequence[str]] = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(frame ids, {column: values})`` of the stored score run ``run`` (aligned with ``ids``)."""
        ...

    def score_runs(self) -> list[str]:
        """Names of the stored score (prediction) runs."""
        ...

    def loop(self, config: Any = None, **options: Any) -> LoopReport:
        """Run (or resume) an active-learning detector loop; see :func:`curate.loop.run_loop`.

        ``config`` is a :class:`curate.loop.LoopConfig`, a dict or a path to a YAML/JSON file;
        ``options`` override its fields. Returns a :class:`curate.reports.LoopReport`.
        """
        ...

    def runs(
        self,
        kind: Optional[str] = None,
        *,
        run_ids: Optional[Sequence[str]] = None,
        where: Optional[str] = None,
    ) -> list[RunRecord]:
        """Stored runs, oldest first, optionally filtered.

        Parameters
        ----------
        kind : str, optional
            Only runs of this kind (``selection``, ``loop``); pushed down as a where-filter.
        run_ids : sequence of str, optional
            Only these runs (unknown ids are skipped); pushed down as an ``id IN`` filter.
        where : str, optional
            SQL filter on ``runs`` columns (``strategy = 'kcenter'``, ...).

        Returns
        -------
        list of RunRecord
            Sorted by run id (= creation order). Without filters every row is read (O(runs));
            with them only the matching rows are decoded.
        """
        ...

    def run(self, run_id: str) -> RunRecord:
        """The stored run ``run_id``."""
        ...

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
        """The ``k`` nearest frames of query frame ids or query vectors (FAISS, cached index).

        ``where`` restricts the neighbours to frames matching the filter. Up to
        :data:`curate.search.SEARCH_FLAT_MAX` frames the index is exact (flat); above, an
        approximate fp16 IVF index probing ``nprobe`` lists (the result's ``index_kind``,
        ``nlist`` and ``nprobe`` say which answered). See :func:`curate.search.search` for the
        parameters; O(N d) to build the index of a table version (cached), O(Q N d) per call
        (flat).
        """
        ...

    def export(
        self,
        run_id: str,
        fmt: str,
        out: Union[str, Path],
        *,
        base_url: Optional[str] = None,
        path_root: Optional[str] = None,
    ) -> Path:
        """Write the selection of ``run_id`` to ``out`` (see :data:`curate.export.EXPORT_FORMATS`).

        ``base_url`` / ``path_root`` map file paths to URLs in the ``labelstudio`` format. Formats
        without room for the run record get a sidecar ``<out>.manifest.json``.
        """
        ...

    def import_labels(
        self,
        paths: Union[str, Path, Sequence[Union[str, Path]]],
        *,
        format: str = "kitti",
        prefix: Optional[str] = None,
    ) -> ImportReport:
        """Import annotation files as labels and mark their frames labeled.

        Thin wrapper of :func:`curate.labels_import.import_labels` (validates every file before
        writing anything; returns an :class:`~curate.reports.ImportReport`).
        """
        ...

    def pretrain(self, config: Any = None, *, progress: Progress = None) -> PretrainReport:
        """Self-supervised ReCon pretraining on this workspace's frames.

        Thin wrapper of :func:`curate.pretraining.pretrain`: ``config`` is a TOML path, a dict
        or a :class:`embedders.pretrain.PretrainConfig` (None = the tiny defaults); checkpoints
        go to ``<workspace>/checkpoints/<name>/`` and an interrupted run resumes from
        ``last.pt``. Returns a :class:`~curate.reports.PretrainReport`; embed with
        ``ws.embed(report.model, name=..., checkpoint=report.checkpoint, **report.embed_options)``.
        """
        ...

    def pretrain_image(self, config: Any = None, *, progress: Progress = None) -> PretrainReport:
        """Self-supervised (SimCLR) training of the ``image-ssl`` embedder on this pool's cameras.

        ``config`` is a TOML path, a dict or an :class:`embedders.pretrain_image.ImagePretrainConfig`
        (None = defaults; keys in :mod:`embedders.pretrain_image.config`). Every camera image of
        the frames matching ``[data] where`` (or only the first, ``cameras = "first"``) is decoded
        once into ``<workspace>/pretrain_cache/`` and trained on; checkpoints go to
        ``<workspace>/checkpoints/<name>/`` and an interrupted run resumes from ``last.pt``.
        Returns a :class:`~curate.reports.PretrainReport`; embed with
        ``ws.embed("image-ssl", name=..., checkpoint=report.checkpoint)``.
        """
        ...

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
        """Judge several embeddings of this pool side by side; see :mod:`curate.embedding_eval`.

        Without labels: temporal near-duplicate recall, cross-drive retrieval statistics, revisit
        recall (frames with place metadata), kNN agreement with metadata ``columns``, duplicate
        clusters; with labels (``labels="labeled"`` or ``"all"``): ridge probes of class presence
        and counts on held-out drives. Returns a :class:`~curate.api.EmbeddingEvaluation`
        (``.table()`` prints it); ``out`` also writes it as JSON.
        """
        ...


#: Names of the operations of the API, in declaration order.
OPERATION_NAMES: tuple[str, ...] = tuple(
    name for name, value in vars(WorkspaceAPI).items() if callable(value) and not name.startswith("_")
)
