"""The embedding job on Ray (``engine="ray"``): an actor pool with one model per worker.

How it runs
    1. The driver plans like the single-process job (:mod:`curate.jobs.embed`): it compares the
       metadata of an existing table ``emb_<name>`` with the embedder's (name, config,
       dimension, modality, weights checksum, precision) and keeps only the frames still
       missing (an Arrow hash join of the ids, O(N)); a different model replaces the table.
    2. Ray Data reads those frames' ``(id, lidar_path | image_paths)`` rows in blocks whose size
       is a multiple of ``batch_size``, so every batch holds the same frames as in the
       single-process job. An actor pool of ``workers`` actors (one GPU each when the cluster
       has GPUs, else ``CPUs / workers`` torch threads each) builds the model once per actor
       and, per batch, reads each frame with :func:`curate.jobs.embed.read_frame` (the same
       per-frame reader, with its errors) and embeds the batch.
    3. The driver receives the vectors and writes every ``write_every`` of them to the same
       table with the same metadata as the single-process job (one atomic, upsert-by-id
       LanceDB commit each), so the two engines can resume each other's tables.

Interruptions
    A killed worker: Ray restarts the actor and retries its batches; a killed driver loses only
    its unflushed buffer (< ``write_every`` vectors). Committed rows are complete and unique
    (upsert by id), so a rerun computes exactly the missing ids.

Bad frames
    The single-process job's policy, through the same code: each actor reads frames with
    :func:`curate.jobs.embed.read_frame` and embeds with its ``_embed_batch`` (a rejected batch
    is retried frame by frame). ``on_error="skip"`` (default): bad frames are recorded in the
    ``problems`` table (stage ``embed:<name>``, file, reason), the others are written, and a
    rerun retries them and clears their rows when they succeed; frames kept with NaN/inf points
    dropped get a ``warning`` row. ``on_error="fail"``: the first bad frame the driver receives
    stops the job with :class:`FrameReadError` after the vectors received before it are written.

Costs
    Driver: O(N) ids for the plan, O(write_every * dim) buffered vectors; the frame rows of the
    job travel once through Ray's object store (about 100 bytes per frame). Workers: one model
    each plus ``batch_size`` decoded frames. Time is the embedder's, divided by the workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa

from curate import _tables as T
from curate.api import EmbedReport, Problem
from curate.errors import InvalidInputError
from curate.jobs.embed import (EmbedJob, FrameReadError, _embed_batch, _file_of,
                               _resolve_precision, read_frame)
from curate.jobs._commit import (EmbedPlan, VectorCommitter, embed_report, missing_ids,
                                 plan_embedding)
from curate.progress import progress_bar
from index.store import Store

__all__ = ["run_ray_embed_job", "missing_ids"]

logger = logging.getLogger(__name__)

#: Most frames per Ray Data block (rounded down to a multiple of the batch size).
MAX_BLOCK_FRAMES = 1024
#: Blocks per worker at least, so that every actor gets work and progress is smooth.
MIN_BLOCKS_PER_WORKER = 4

EmbedderSource = Union[Any, Callable[[], Any]]


class _EmbedWorker:
    """Ray Data actor: one embedder, reads and embeds batches of ``(id, path)`` rows."""

    def __init__(self, source: EmbedderSource, device: str, precision: str, threads: int,
                 modality: str, weights_sha256: str, on_error: str) -> None:
        import ray
        import torch

        torch.set_num_threads(max(1, int(threads)))
        if isinstance(source, ray.ObjectRef):
            source = ray.get(source)
        emb = source() if callable(source) and not hasattr(source, "embed") else source
        if str(emb.weights_sha256()) != weights_sha256:
            raise RuntimeError(
                f"the Ray worker built embedder {emb.name!r} with weights {emb.weights_sha256()}, "
                f"the driver has {weights_sha256}; the workers must see the same checkpoint files"
            )
        self.emb = emb.to(device)
        self.device = str(self.emb.device)
        self.precision = precision
        self.modality = modality
        self.on_error = on_error

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Read and embed one batch: the single-process job's per-frame reader and batch embed.

        Returns per frame its vector (zeros for a bad frame), ``kind`` (``""``,
        ``"FrameReadError"`` or ``"EmbedderError"``), ``reason``, ``file`` and the NaN/inf
        points dropped; ``fatal`` carries the error of ``on_error="fail"`` for the driver.
        """
        ids = [str(i) for i in batch["id"]]
        values = list(batch["path"])
        n = len(ids)
        kind, reason = [""] * n, [""] * n
        dropped = np.zeros(n, dtype=np.int64)
        payloads, good = [], []
        for k, frame_id in enumerate(ids):
            lidar = values[k] if self.modality == "points" else None
            images = list(values[k]) if self.modality == "image" and values[k] is not None else None
            counts: dict[str, int] = {}
            try:
                payloads.append(read_frame(frame_id, self.modality, lidar, images, counts=counts))
                good.append(k)
                dropped[k] = int(counts.get("nonfinite_points", 0))
            except FrameReadError as exc:
                kind[k], reason[k] = "FrameReadError", str(exc)
        vectors = np.zeros((n, int(self.emb.dim)), dtype=np.float32)
        fatal = ""
        try:
            out, rejected = _embed_batch(self.emb, [ids[k] for k in good], payloads,
                                         self.precision, self.device, self.on_error)
        except InvalidInputError as exc:  # on_error="fail": the driver raises it
            out, rejected, fatal = None, [], str(exc)
        if out is not None:
            refused = dict(rejected)
            kept = [k for k in good if ids[k] not in refused]
            if kept:
                vectors[np.asarray(kept)] = out
            for k in good:
                if ids[k] in refused:
                    kind[k], reason[k] = "EmbedderError", refused[ids[k]]
        return {
            "id": np.asarray(ids, dtype=object),
            "vector": vectors,
            "kind": np.asarray(kind, dtype=object),
            "reason": np.asarray(reason, dtype=object),
            "file": np.asarray([_file_of(v) or "" for v in values], dtype=object),
            "dropped": dropped,
            "fatal": np.asarray([fatal] * n, dtype=object),
        }


def _blocks(store: Store, todo: list[str], modality: str, rows_per_block: int,
            segment: int) -> list[pa.Table]:
    """``(id, path)`` tables of ``rows_per_block`` frames, in ``todo`` order."""
    column = "image_paths" if modality == "image" else "lidar_path"
    out: list[pa.Table] = []
    for begin in range(0, len(todo), segment):
        part = todo[begin:begin + segment]
        rows = store.read(T.SAMPLES, columns=["id", column], ids=part)
        by_id = dict(zip(rows["id"].to_pylist(), rows[column].to_pylist()))
        values = [by_id.get(i) for i in part]
        kind = pa.list_(pa.string()) if modality == "image" else pa.string()
        table = pa.table({"id": pa.array(part, pa.string()), "path": pa.array(values, kind)})
        out.extend(table.slice(o, rows_per_block) for o in range(0, table.num_rows, rows_per_block))
    return out


def _placement(ray: Any, device: str, workers: Optional[int]) -> tuple[str, int, float, int]:
    """``(actor device, workers, GPUs per actor, torch threads per actor)`` for this cluster."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    wants_cuda = device.startswith("cuda")
    if wants_cuda and gpus == 0:
        raise InvalidInputError(
            f"device={device!r} but the Ray cluster has no GPU; use device='auto' or 'cpu'"
        )
    use_gpu = gpus > 0 and device in ("auto", "cuda")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise InvalidInputError(f"workers must be a positive integer; got {workers!r}")
    if use_gpu:
        n = workers or gpus
        return "cuda", n, 1.0, max(1, cpus // n)
    if device.startswith("cuda"):
        return device, workers or 1, 0.0, 1
    n = workers or cpus
    return "cpu", n, 0.0, max(1, cpus // n)


def run_ray_embed_job(
    store: Store,
    emb: Any,
    job: EmbedJob,
    *,
    build: Optional[Callable[[], Any]] = None,
    address: Optional[str] = None,
    workers: Optional[int] = None,
) -> EmbedReport:
    """Embed every frame of ``samples`` that lacks a vector from ``emb``, on Ray.

    Parameters
    ----------
    store : index.store.Store
        Workspace store (the driver writes to it; workers only read frame files).
    emb : embedders.Embedder
        The embedder; its metadata (and weights checksum) is the table's.
    job : EmbedJob
        Settings of the single-process job (``num_workers`` is ignored: each actor reads its own
        frames).
    build : callable, optional
        Zero-argument picklable callable that builds the same embedder in each actor (e.g.
        ``functools.partial(build_embedder, "recon-tiny")``); default: ``emb`` itself is
        shipped to the actors. Actors check the weights checksum against ``emb``'s.
    address : str, optional
        Ray cluster to join; default: the cluster this process is connected to, else a local
        cluster sized to this machine, stopped afterwards.
    workers : int, optional
        Actors (default: one per GPU, else one per CPU of the cluster).

    Returns
    -------
    EmbedReport

    Raises
    ------
    FrameReadError
        ``on_error="fail"`` and a frame's file is missing or corrupt (after writing the vectors
        received before it).
    InvalidInputError
        Bad settings, or ``on_error="fail"`` and the embedder rejects a frame.
    curate._ray.RayUnavailableError
        ``address`` cannot be reached.
    """
    from curate._ray import ray_session

    job.validate()
    start = time.perf_counter()
    modality = str(getattr(emb, "modality", "points"))
    if modality not in ("points", "image"):
        raise InvalidInputError(
            f"embedder {emb.name!r} has modality {modality!r}; the job reads 'points' or 'image'"
        )
    with ray_session(address) as ray:
        actor_device, n_workers, gpus_each, threads = _placement(ray, job.device, workers)
        precision = _resolve_precision(job.precision, actor_device)
        plan = plan_embedding(store, emb, job.name, precision, job.dtype)
        todo = plan.todo
        logger.info("embedding %d frames with %s on Ray (%d %s workers, %d threads each, %s), "
                    "%d already done", len(todo), emb.name, n_workers, actor_device, threads,
                    precision, plan.skipped)
        computed, n_bad = 0, 0
        if todo:
            computed, n_bad = _run(ray, store, emb, job, plan, modality, build, actor_device,
                                   precision, n_workers, gpus_each, threads)
    return embed_report(store, emb, job.name, plan, computed, n_bad, start)


def _run(ray: Any, store: Store, emb: Any, job: EmbedJob, plan: EmbedPlan, modality: str,
         build: Optional[Callable[[], Any]], device: str, precision: str, n_workers: int,
         gpus_each: float, threads: int) -> tuple[int, int]:
    """Stream the vectors of ``todo`` from the actor pool into ``table``; (written, bad frames).

    Bad frames follow ``job.on_error`` exactly as in :func:`curate.jobs.embed.run_embed_job`:
    ``"skip"`` records them in ``problems`` (stage ``embed:<name>``, with file and reason) and
    clears the rows of frames that now succeed; ``"fail"`` writes what was computed and raises
    :class:`FrameReadError` (or :class:`InvalidInputError` for a frame the embedder rejects).
    """
    todo, meta = plan.todo, plan.meta
    per_worker = -(-len(todo) // (n_workers * MIN_BLOCKS_PER_WORKER))
    rows_per_block = max(1, min(MAX_BLOCK_FRAMES, per_worker) // job.batch_size) * job.batch_size
    segment = max(rows_per_block, (job.segment_size // rows_per_block) * rows_per_block)
    blocks = _blocks(store, todo, modality, rows_per_block, segment)
    source = ray.put(build if build is not None else emb)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_progress = False
    ds = ray.data.from_arrow(blocks).map_batches(
        _EmbedWorker,
        fn_constructor_args=(source, device, precision, threads, modality,
                             meta["weights_sha256"], job.on_error),
        batch_size=job.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=n_workers),
        num_cpus=threads if gpus_each == 0 else 1,
        num_gpus=gpus_each or None,
    )  # Ray Data restarts killed actors and retries their batches (max_restarts=-1 by default)
    stage = plan.stage
    out = VectorCommitter(store, plan, job.dtype)
    problems = out.problems

    with progress_bar(total=len(todo), desc=f"embed {job.name} (ray)", unit="frame",
                      enable=job.progress) as bar:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                ids = [str(i) for i in batch["id"].tolist()]
                kinds = batch["kind"].tolist()
                reasons = batch["reason"].tolist()
                files = batch["file"].tolist()
                dropped = np.asarray(batch["dropped"]).tolist()
                fatal = [f for f in batch["fatal"].tolist() if f]
                if fatal:
                    raise InvalidInputError(fatal[0])
                ok = np.asarray([not k for k in kinds], dtype=bool)
                for frame_id, kind, reason, file, drop in zip(ids, kinds, reasons, files, dropped):
                    if kind == "FrameReadError" and job.on_error == "fail":
                        raise FrameReadError(reason)
                    if kind:
                        out.bad += 1
                        problems.append(Problem(frame_id=frame_id, stage=stage, kind=kind,
                                                file=file or None, reason=reason))
                    elif drop:
                        problems.append(Problem(
                            frame_id=frame_id, stage=stage, severity="warning",
                            kind="nonfinite_points", file=file or None, count=int(drop),
                            reason=f"{drop} points with NaN/inf values (no returns) dropped"))
                    else:
                        out.ok_ids.append(frame_id)
                if ok.any():
                    out.add([i for i, good in zip(ids, ok) if good],
                            np.asarray(batch["vector"], dtype=np.float32)[ok])
                if out.buffered >= job.write_every or len(problems) >= job.write_every:
                    out.flush()
                bar.update(len(ids))
        except BaseException:
            out.flush_after_error(job.name)
            raise
        out.finish()
    return out.computed, out.bad
