"""The embedding job: every frame of ``samples`` through an embedder into an embedding table.

How it runs
    1. The job compares the metadata of an existing table ``emb_<name>`` (embedder, config,
       dimension, modality, weights checksum, precision) with the embedder's. Equal: only frames
       without a vector are computed (resume). Different: every frame is recomputed and the
       first write replaces the table in a new version, so vectors of two models (or two
       precisions) are never mixed in one table version.
    2. The ids still to do are taken in *segments* (``segment_size`` frames): the segment's file
       paths are read from the store in one query, and a pool of ``num_workers`` reader
       *threads* reads the files (point clouds, or a frame's camera images for
       ``modality == "image"`` embedders) ahead, handed out in order, ``batch_size`` frames at a
       time. Threads, not forked processes: LanceDB is loaded by then and forking it risks a
       deadlock; the readers are numpy / PIL I/O that release the GIL.
    3. The main process embeds each batch on the embedder's device (``"auto"`` = CUDA when
       present, with fp16 autocast there unless ``precision="fp32"``), buffers the vectors and
       writes every ``write_every`` vectors (one atomic LanceDB commit each).

Interruptions
    A ``kill -9`` loses only the unflushed buffer (< ``write_every`` vectors); committed rows are
    complete and unique (upsert by id), so running the job again computes exactly the missing
    ids. Bad frames (file missing or corrupt, fewer than ``MIN_FINITE_POINTS`` finite points
    once NaN/inf points, i.e. no returns, are dropped, or rejected by the embedder): with
    ``on_error="skip"`` (default) each is recorded in the ``problems`` table with its file and
    reason and the job goes on (it has no vector, so the next run retries it and clears its row
    when it succeeds); frames kept with NaN/inf points dropped get a ``warning`` row with the
    count. With ``on_error="fail"`` the first bad frame stops the job with
    :class:`FrameReadError` naming the frame and the file, after the vectors computed before it
    have been written; fix or remove the file and run again to resume.

Costs
    Memory O(segment_size) paths + O(write_every * dim) buffered vectors + O(batch_size) decoded
    frames (x ``num_workers`` prefetch); the id bookkeeping is O(N) strings (one hashed join). Time is dominated
    by the embedder.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from curate import _tables as T
from curate.api import EmbedReport, Problem
from curate.errors import CorruptDataError, CurateError, InvalidInputError, NotFoundError
from curate.jobs._commit import VectorCommitter, embed_report, plan_embedding
from curate.problems import check_on_error
from curate.progress import progress_bar
from curate.sources.pointcloud import read_points_counted
from index.store import VECTOR_DTYPES, Store

__all__ = ["EmbedJob", "FrameReadError", "run_embed_job", "default_num_workers", "read_frame"]

logger = logging.getLogger(__name__)

#: Frames whose paths are read from the store at once.
DEFAULT_SEGMENT = 4096
PRECISIONS = ("auto", "fp32", "fp16")


class FrameReadError(CorruptDataError):
    """A frame's point cloud or camera image is missing or unreadable (names frame and file)."""


def default_num_workers() -> int:
    """``min(2, usable CPUs)``: reader threads of the embedding job by default."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(2, cpus))


def _read_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise NotFoundError(f"image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise CorruptDataError(f"image file {path} cannot be decoded ({exc})") from None


def read_frame(frame_id: str, modality: str, lidar_path: Optional[str],
               image_paths: Optional[Sequence[str]], *, counts: Optional[dict] = None,
               sweeps: int = 0, extra: Optional[str] = None) -> Any:
    """Read what an embedder of ``modality`` takes for one frame.

    Returns the ``(N, 4)`` point cloud for ``"points"`` (NaN/inf points, i.e. no returns,
    dropped; their number goes to ``counts["nonfinite_points"]`` when ``counts`` is given), the
    list of ``(H, W, 3)`` uint8 camera images for ``"image"``. With ``sweeps > 0`` the points are
    the key frame plus up to ``sweeps`` preceding sweeps recorded in ``extra`` (nuScenes frames),
    in the key frame's coordinates, as ``(N, 5)`` ``x, y, z, intensity, time_lag``
    (:func:`curate.sources.nuscenes_points.aggregate_sweeps`).

    Raises
    ------
    FrameReadError
        Missing or corrupt file; the message names the frame and the file.
    """
    if modality == "image":
        paths = list(image_paths or [])
        if not paths:
            raise FrameReadError(
                f"frame {frame_id!r} has no camera images (image_paths is empty); an image "
                "embedder needs at least one — ingest the images or embed with a point model"
            )
        images = []
        for camera, path in enumerate(paths):
            try:
                images.append(_read_image(path))
            except CurateError as exc:
                raise FrameReadError(
                    f"frame {frame_id!r}, camera {camera}: {exc}; fix or restore the file and "
                    "run the embedding again (vectors already written are kept)"
                ) from None
        return images
    if not lidar_path:
        raise FrameReadError(f"frame {frame_id!r} has no lidar_path")
    try:
        if sweeps > 0:
            from curate.sources.nuscenes_points import aggregate_sweeps, frame_sweeps

            recorded, key_timestamp = frame_sweeps(extra)
            return aggregate_sweeps(lidar_path, recorded, key_timestamp, sweeps)
        points, dropped = read_points_counted(lidar_path)
        if counts is not None:
            counts["nonfinite_points"] = dropped
        return points
    except CurateError as exc:
        raise FrameReadError(
            f"frame {frame_id!r}: {exc}; fix or restore the file and run the embedding again "
            "(vectors already written are kept)"
        ) from None


class _FrameFiles:
    """Map-style dataset over one segment: item ``i`` is ``(id, payload or None, error or None)``.

    Read errors are returned, not raised, so the main process can write the vectors computed so
    far before it stops with a clean message.
    """

    def __init__(self, ids: list[str], lidar: list[Optional[str]],
                 images: list[Optional[list[str]]], modality: str, sweeps: int = 0,
                 extras: Optional[list[Optional[str]]] = None) -> None:
        self.ids = ids
        self.lidar = lidar
        self.images = images
        self.modality = modality
        self.sweeps = sweeps
        self.extras = extras

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, Any, Optional[str], int]:
        """``(id, payload or None, error or None, NaN/inf points dropped)``."""
        frame_id = self.ids[index]
        counts: dict[str, int] = {}
        try:
            payload = read_frame(frame_id, self.modality, self.lidar[index], self.images[index],
                                 counts=counts, sweeps=self.sweeps,
                                 extra=self.extras[index] if self.extras is not None else None)
        except FrameReadError as exc:
            return frame_id, None, str(exc), 0
        return frame_id, payload, None, int(counts.get("nonfinite_points", 0))


@dataclass
class EmbedJob:
    """Configuration of one embedding job (see the module docstring).

    Attributes
    ----------
    name : str
        Embedding (table ``emb_<name>``) to fill.
    batch_size : int
        Frames per forward pass.
    write_every : int
        Vectors buffered before a write (the most a ``kill -9`` can lose).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    num_workers : int or None
        Reader threads; None = :func:`default_num_workers`; 0 reads in the calling thread.
    precision : {"auto", "fp32", "fp16"}
        ``"auto"`` = fp16 autocast on CUDA, fp32 on CPU. Recorded in the table metadata.
    segment_size : int
        Frames whose paths are fetched from the store at once.
    progress : bool or None
        Progress bar (default: when stderr is a terminal).
    dtype : {"float32", "float16"}
        Storage type of the vectors (float16 recorded in the table metadata as ``dtype``).
    on_error : {"skip", "fail"}
        ``"skip"``: bad frames (missing / corrupt file, too few finite points, rejected by the
        embedder) are recorded in the ``problems`` table and the job goes on; ``"fail"``: the
        first one stops the job (after writing the vectors computed before it).
    """

    name: str
    batch_size: int = 8
    write_every: int = 256
    device: str = "auto"
    num_workers: Optional[int] = None
    precision: str = "auto"
    segment_size: int = DEFAULT_SEGMENT
    progress: Optional[bool] = None
    dtype: str = "float32"
    on_error: str = "skip"

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` naming the first bad setting."""
        for field_name in ("batch_size", "write_every", "segment_size"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{field_name} must be a positive integer, got {value!r}")
        if self.num_workers is not None and (
            isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int)
            or self.num_workers < 0
        ):
            raise InvalidInputError(
                f"num_workers must be a non-negative integer, got {self.num_workers!r}"
            )
        if self.precision not in PRECISIONS:
            raise InvalidInputError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.dtype not in VECTOR_DTYPES:
            raise InvalidInputError(
                f"dtype must be one of {', '.join(VECTOR_DTYPES)}, got {self.dtype!r}"
            )
        check_on_error(self.on_error)


def _resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        raise InvalidInputError("precision='fp16' needs a CUDA device; use precision='fp32' on CPU")
    return precision


def _autocast(precision: str, device: str) -> contextlib.AbstractContextManager[Any]:
    if precision != "fp16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type="cuda", dtype=torch.float16)


def _segments(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    for begin in range(0, len(ids), size):
        yield list(ids[begin : begin + size])


def _loader(dataset: _FrameFiles, batch_size: int, num_workers: int) -> Iterator[list[Any]]:
    """Batches of ``dataset`` in order, read by ``num_workers`` threads (0: in this thread).

    A thread pool, not forked worker processes: the job runs after LanceDB is loaded, and forking
    then risks a deadlock (LanceDB warns about it). The readers are numpy / PIL file I/O, which
    release the GIL. At most ``2 * num_workers`` batches are read ahead (memory O(batch_size *
    num_workers) frames); unread batches are cancelled when the consumer stops early.
    """
    starts = iter(range(0, len(dataset), batch_size))

    def read(begin: int) -> list[Any]:
        return [dataset[i] for i in range(begin, min(len(dataset), begin + batch_size))]

    if not num_workers:
        for begin in starts:
            yield read(begin)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="curate-embed-read")
    pending: deque = deque(pool.submit(read, b) for b in itertools.islice(starts, 2 * num_workers))
    try:
        while pending:
            batch = pending.popleft().result()
            following = next(starts, None)
            if following is not None:
                pending.append(pool.submit(read, following))
            yield batch
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def run_embed_job(store: Store, emb: Any, job: EmbedJob) -> EmbedReport:
    """Embed every frame of ``samples`` that lacks a vector from ``emb`` (see module docstring).

    Parameters
    ----------
    store : index.store.Store
        Workspace store.
    emb : embedders.Embedder
        The embedder (its ``modality`` decides what is read: ``"points"`` or ``"image"``).
    job : EmbedJob
        Job settings.

    Returns
    -------
    EmbedReport

    Raises
    ------
    FrameReadError
        A frame's file is missing or corrupt (after writing what was computed before it).
    InvalidInputError
        Bad settings, or the embedder rejects a frame (the message names the frames).
    """
    job.validate()
    start = time.perf_counter()
    modality = str(getattr(emb, "modality", "points"))
    if modality not in ("points", "image"):
        raise InvalidInputError(
            f"embedder {emb.name!r} has modality {modality!r}; the job reads 'points' or 'image'"
        )
    from embedders import EmbedderError

    try:
        emb.to(job.device)
    except EmbedderError as exc:
        raise InvalidInputError(str(exc)) from exc
    device = str(emb.device)
    precision = _resolve_precision(job.precision, device)
    num_workers = default_num_workers() if job.num_workers is None else job.num_workers
    plan = plan_embedding(store, emb, job.name, precision, job.dtype)
    todo, stage = plan.todo, plan.stage
    logger.info("embedding %d frames with %s on %s (%s, %d reader threads), %d already done",
                len(todo), emb.name, device, precision, num_workers, plan.skipped)
    out = VectorCommitter(store, plan, job.dtype)
    problems = out.problems

    columns = ["id", "image_paths"] if modality == "image" else ["id", "lidar_path"]
    sweeps = int(emb.config().get("sweeps", 0) or 0) if modality == "points" else 0
    if sweeps > 0:
        columns.append("extra")
    with progress_bar(total=len(todo), desc=f"embed {job.name}", unit="frame",
                      enable=job.progress) as bar:
        try:
            for segment in _segments(todo, job.segment_size):
                rows = store.read(T.SAMPLES, columns=columns, ids=segment)
                by_id = dict(zip(rows["id"].to_pylist(), rows[columns[1]].to_pylist()))
                values = [by_id.get(i) for i in segment]
                extras = None
                if sweeps > 0:
                    extra_by_id = dict(zip(rows["id"].to_pylist(), rows["extra"].to_pylist()))
                    extras = [extra_by_id.get(i) for i in segment]
                dataset = _FrameFiles(
                    segment,
                    values if modality == "points" else [None] * len(segment),
                    values if modality == "image" else [None] * len(segment),
                    modality, sweeps, extras,
                )
                for batch in _loader(dataset, job.batch_size, num_workers):
                    n_read = len(batch)
                    good = []
                    for frame_id, payload, error, dropped in batch:
                        if error is None:
                            good.append((frame_id, payload, dropped))
                        elif job.on_error == "fail":
                            raise FrameReadError(error)
                        else:
                            out.bad += 1
                            problems.append(Problem(
                                frame_id=frame_id, stage=stage, kind="FrameReadError",
                                file=_file_of(by_id.get(frame_id)), reason=error))
                    ids = [g[0] for g in good]
                    payloads = [g[1] for g in good]
                    vectors, rejected = _embed_batch(emb, ids, payloads, precision, device,
                                                     job.on_error)
                    for frame_id, reason in rejected:
                        out.bad += 1
                        problems.append(Problem(
                            frame_id=frame_id, stage=stage, kind="EmbedderError",
                            file=_file_of(by_id.get(frame_id)), reason=reason))
                    refused = dict(rejected)
                    kept = [g for g in good if g[0] not in refused] if refused else good
                    for frame_id, _, dropped in kept:
                        if dropped:
                            problems.append(Problem(
                                frame_id=frame_id, stage=stage, severity="warning",
                                kind="nonfinite_points", file=_file_of(by_id.get(frame_id)),
                                count=dropped,
                                reason=f"{dropped} points with NaN/inf values (no returns) dropped"))
                        else:
                            out.ok_ids.append(frame_id)
                    out.add([g[0] for g in kept], vectors)
                    if out.buffered >= job.write_every:
                        out.flush()
                    bar.update(n_read)
        except BaseException:
            # Keep what was computed (also on Ctrl-C); a kill -9 cannot run this.
            out.flush_after_error(job.name)
            raise
        out.finish()
    return embed_report(store, emb, job.name, plan, out.computed, out.bad, start)


def store_problems_of(store: Store, stage: str) -> list[Problem]:
    """The problems recorded for ``stage`` (for the end-of-job summary)."""
    from curate.problems import list_problems

    return list_problems(store, stage=stage)


def _file_of(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ", ".join(str(v) for v in value) or None


def _embed_batch(emb: Any, ids: list[str], payloads: list[Any], precision: str, device: str,
                 on_error: str) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Embed one batch; with ``on_error="skip"`` a rejected batch is retried frame by frame.

    Returns the float32 vectors of the accepted frames (in order) and ``(id, reason)`` of the
    rejected ones.
    """
    from embedders import EmbedderError

    if not ids:
        return np.zeros((0, int(emb.dim)), dtype=np.float32), []
    try:
        with _autocast(precision, device):
            return np.asarray(emb.embed(payloads, device="auto"), dtype=np.float32), []
    except EmbedderError as exc:
        if on_error == "fail":
            raise InvalidInputError(
                f"embedder {emb.name!r} rejected a frame of the batch {ids[0]}..{ids[-1]}: {exc}"
            ) from exc
    vectors, rejected = [], []
    for frame_id, payload in zip(ids, payloads):
        try:
            with _autocast(precision, device):
                vectors.append(np.asarray(emb.embed([payload], device="auto"), dtype=np.float32))
        except EmbedderError as exc:
            rejected.append((frame_id, f"embedder {emb.name!r} rejected the frame: {exc}"))
    dim = int(emb.dim)
    return (np.concatenate(vectors, axis=0) if vectors else np.zeros((0, dim), np.float32)), rejected
