"""FAISS nearest-neighbour indexes over embedding vectors.

:class:`VectorIndex` builds an exact flat index (small and medium N) or an IVF-Flat index (large
N) from an (N, d) float32 matrix, optionally with the row ids, and answers k-NN and range queries
with the same conventions as the numpy references in :mod:`index._exact`:

* ``"l2"`` and ``"cosine"`` return Euclidean distances (FAISS works with squared distances; we
  take the square root), ascending. ``"cosine"`` L2-normalises a copy of the vectors and of every
  query, so its distance is ``sqrt(2 - 2 cos)``.
* ``"ip"`` returns inner products, descending.
* Within a result row, equal distances are ordered by lower index.
* ``k > ntotal``: the missing slots are padded with index ``-1`` and distance ``inf`` (``-inf``
  for ``"ip"``). IVF can also pad when the probed lists hold fewer than ``k`` vectors.
* Range search is strict: ``d < radius`` (FAISS compares ``d**2 < radius**2``) for
  ``"l2"``/``"cosine"``; ``ip > radius`` for ``"ip"``. Results are CSR (``lims``, distances,
  indices) sorted by index within each query.

GPU: with ``device="auto"`` and a FAISS build that sees a GPU (``faiss.get_num_gpus() > 0``) a GPU
copy answers :meth:`VectorIndex.search`; the CPU index is kept for :meth:`range_search` (FAISS GPU
has no range search for these indexes) and for ``k > 2048`` (the FAISS GPU limit).

Memory: the index holds one float32 copy of the vectors, O(N * d) (plus O(N) for the IVF direct
map and the id lookup). :meth:`VectorIndex.build_streamed` builds from chunks instead of one
matrix (never a full float32 copy outside FAISS) and can store the vectors as float16 inside
FAISS (``storage="fp16"``: ``IndexScalarQuantizer`` / ``IndexIVFScalarQuantizer`` with
``QT_fp16``), about N * d * 2 bytes. Queries are processed in chunks, so temporary memory stays bounded; the
outputs are O(Q * k) for k-NN and O(result) for range search.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np

from index._exact import METRICS, normalize_rows
from index.errors import DeviceError, NotFoundError, SchemaError

logger = logging.getLogger(__name__)

__all__ = ["VectorIndex", "import_faiss"]

#: ``kind="auto"`` builds an exact flat index up to this many vectors, IVF-Flat above.
FLAT_MAX_DEFAULT = 100_000
#: How :meth:`VectorIndex.build_streamed` stores the vectors inside FAISS.
STORAGES = ("float32", "fp16")
#: Largest training sample :meth:`VectorIndex.build_streamed` keeps (rows).
STREAM_TRAIN_MAX = 262_144
#: Training points per IVF list :meth:`VectorIndex.build_streamed` aims for (FAISS warns < 39).
STREAM_TRAIN_PER_LIST = 64
_FP16_MAX = float(np.finfo(np.float16).max)
#: Queries per FAISS call in :meth:`VectorIndex.search`.
_SEARCH_CHUNK = 8192
#: Queries per FAISS call in :meth:`VectorIndex.range_search`.
_RANGE_CHUNK = 1024
#: FAISS GPU indexes support k (and nprobe) up to this value.
_GPU_MAX_K = 2048

_threads_configured = False


def import_faiss() -> Any:
    """Import FAISS or raise an ImportError that says what to install."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is a declared dependency
        raise ImportError(
            "index.vectors needs FAISS: install it with `pip install faiss-cpu` "
            "(or `pip install faiss-gpu-cu12` on a CUDA machine)."
        ) from exc
    return faiss


faiss = import_faiss()


def _configure_threads() -> None:
    """Give FAISS the CPUs this process may use, unless OMP_NUM_THREADS says otherwise."""
    global _threads_configured
    if _threads_configured:
        return
    _threads_configured = True
    if os.environ.get("OMP_NUM_THREADS"):
        return  # the OpenMP runtime already honours it
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    faiss.omp_set_num_threads(max(1, available))


def _num_gpus() -> int:
    getter = getattr(faiss, "get_num_gpus", None)
    return int(getter()) if getter is not None else 0


def _resolve_device(device: str) -> bool:
    """Return whether to use a GPU copy for ``device`` ("auto", "cpu" or "cuda")."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    if device == "cpu":
        return False
    gpus = _num_gpus()
    if device == "cuda" and gpus == 0:
        raise DeviceError(
            "device='cuda' was requested but FAISS sees no GPU (this FAISS build has "
            f"{'no GPU support' if not hasattr(faiss, 'StandardGpuResources') else '0 GPUs'}). "
            "Install faiss-gpu-cu12 on a CUDA machine, or use device='cpu' / 'auto'."
        )
    return gpus > 0


def _as_matrix(values: Any, what: str, dim: int | None = None) -> np.ndarray:
    """Validate a 2-D finite numeric array and return it as C-contiguous float32."""
    matrix = np.asarray(values)
    if matrix.ndim != 2:
        hint = " (use x.reshape(1, -1) for a single vector)" if matrix.ndim == 1 else ""
        raise SchemaError(f"{what} must be a 2-D array (n, dim), got shape {matrix.shape}{hint}.")
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        raise SchemaError(f"{what} must be numeric, got dtype {matrix.dtype}.")
    if dim is not None and matrix.shape[1] != dim:
        raise SchemaError(
            f"dimension mismatch: the index holds {dim}-d vectors but {what} are "
            f"{matrix.shape[1]}-d; embed the queries with the same model as the index."
        )
    with np.errstate(over="ignore"):
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise SchemaError(
            f"{what} contain NaN or inf (first at row {row}, {int((~finite).sum())} row(s) in all)."
        )
    return matrix


def _normalised(matrix: np.ndarray, what: str) -> np.ndarray:
    """L2-normalised float32 copy for the cosine metric; zero rows are an error."""
    norms = np.linalg.norm(matrix, axis=1)
    zero = norms == 0
    if zero.any():
        raise SchemaError(
            f"cosine metric is undefined for zero vectors: {what} row {int(np.flatnonzero(zero)[0])} "
            f"is all zeros ({int(zero.sum())} such row(s)); use metric='l2' or drop them."
        )
    return np.ascontiguousarray(normalize_rows(matrix), dtype=np.float32)


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    return int(k)


def default_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: about 4 * sqrt(n), at least 39 training points per list."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


#: Most lists a default query probes: with nlist ~ 4 sqrt(N) a query then scans about
#: 16 sqrt(N) vectors, so its cost grows like sqrt(N) instead of N / 8.
MAX_DEFAULT_NPROBE = 64


def default_nprobe(nlist: int) -> int:
    """Lists probed per query by default: nlist / 8 clamped to [16, 64] (and to nlist).

    The earlier default, max(16, nlist / 8), scanned an eighth of the vectors per query: linear
    in N (at 3M rows the first searches took seconds). Measured at N = 100 000, d = 64
    (``benchmarks/results/ivf_nprobe-100000.json``, ``python -m benchmarks.ivf_nprobe``), nlist
    1265: drive-like clustered pools keep recall@10 = 1.0 at 0.56 ms per query (nlist / 8: 1.0 at
    1.48 ms; exact: 9.9 ms); structureless i.i.d. Gaussian data, the worst case, drops from 0.70
    to 0.46. Raise ``nprobe`` for more recall on such data.
    """
    return max(1, min(nlist, max(16, min(MAX_DEFAULT_NPROBE, int(math.ceil(nlist / 8))))))


class VectorIndex:
    """A FAISS k-NN / range-search index over a fixed set of vectors.

    Build it with :meth:`build` or :meth:`from_store`; see the module docstring for the result
    conventions.

    Attributes
    ----------
    ntotal : int
        Number of indexed vectors.
    dim : int
        Vector dimension.
    metric : {"l2", "cosine", "ip"}
    kind : {"flat", "ivf"}
    ids : numpy.ndarray or None
        Row ids (object array) when given at build time; ``indices`` returned by the searches are
        row positions, map them with ``ids[indices]`` (mind the ``-1`` padding).
    on_gpu : bool
        Whether searches run on a GPU copy.
    nlist, nprobe : int or None
        IVF parameters (None for flat); ``nprobe`` can be changed.
    storage : {"float32", "fp16"}
        How FAISS stores the vectors (``"fp16"`` only from :meth:`build_streamed`).
    source : dict or None
        ``{"table": ..., "version": ...}`` when built by :meth:`from_store`.
    """

    def __init__(
        self,
        *,
        cpu_index: Any,
        metric: str,
        kind: str,
        dim: int,
        ids: np.ndarray | None,
        use_gpu: bool,
        nlist: int | None = None,
        source: dict[str, Any] | None = None,
        storage: str = "float32",
    ) -> None:
        self._cpu = cpu_index
        self.storage = storage
        self.metric = metric
        self.kind = kind
        self.dim = dim
        self.ids = ids
        self.nlist = nlist
        self.source = source
        self._id_rows: dict[Any, int] | None = None
        self._gpu = None
        self._gpu_resources = None
        if use_gpu:
            self._gpu_resources = faiss.StandardGpuResources()
            self._gpu = faiss.index_cpu_to_gpu(self._gpu_resources, 0, cpu_index)
            logger.info("vector index copied to GPU 0")

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        *,
        ids: Sequence[Any] | np.ndarray | None = None,
        metric: Literal["l2", "cosine", "ip"] = "l2",
        kind: Literal["auto", "flat", "ivf"] = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        seed: int = 0,
        flat_max: int = FLAT_MAX_DEFAULT,
    ) -> VectorIndex:
        """Build an index over ``vectors``.

        Parameters
        ----------
        vectors : numpy.ndarray
            (N, d) finite numbers (copied to float32).
        ids : sequence, optional
            One unique id per row; enables :meth:`search_ids`.
        metric : {"l2", "cosine", "ip"}, default "l2"
        kind : {"auto", "flat", "ivf"}, default "auto"
            ``"auto"`` = exact flat for N <= ``flat_max``, IVF-Flat above.
        nlist : int, optional
            IVF lists; default :func:`default_nlist` (~4 sqrt(N)); clamped to N.
        nprobe : int, optional
            IVF lists probed per query; default :func:`default_nprobe`. ``nprobe == nlist`` is
            exhaustive (exact).
        device : {"auto", "cpu", "cuda"}, default "auto"
            ``"auto"`` uses a GPU copy for search when FAISS sees one; ``"cuda"`` without one
            raises :class:`~index.errors.DeviceError`.
        seed : int, default 0
            Seeds the IVF training subsample and k-means.
        flat_max : int, default 100_000
            Threshold of ``kind="auto"``.

        Returns
        -------
        VectorIndex

        Notes
        -----
        Flat: build O(N d). IVF: k-means on a seeded subsample of min(N, 256 * nlist) vectors
        (10 iterations, O(n_train * nlist * d) each), then O(N * nlist * d) to assign.
        Memory O(N d).
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid metrics are {', '.join(METRICS)}.")
        if kind not in ("auto", "flat", "ivf"):
            raise ValueError(f"kind must be 'auto', 'flat' or 'ivf', got {kind!r}.")
        use_gpu = _resolve_device(device)
        matrix = _as_matrix(vectors, "vectors")
        n, dim = matrix.shape
        if n == 0 or dim == 0:
            raise SchemaError(f"cannot build an index over an empty array of shape {matrix.shape}.")
        id_array = _check_ids(ids, n)
        if metric == "cosine":
            matrix = _normalised(matrix, "vectors")
        _configure_threads()
        if kind == "auto":
            kind = "flat" if n <= flat_max else "ivf"
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        if kind == "flat":
            if nlist is not None or nprobe is not None:
                logger.warning("nlist/nprobe are ignored for a flat index")
            cpu_index = faiss.IndexFlat(dim, faiss_metric)
            cpu_index.add(matrix)
            index = cls(cpu_index=cpu_index, metric=metric, kind="flat", dim=dim, ids=id_array,
                        use_gpu=use_gpu)
            logger.info("built flat %s index over %d x %d vectors", metric, n, dim)
            return index
        cpu_index, nlist = _build_ivf(matrix, faiss_metric, nlist, seed)
        index = cls(cpu_index=cpu_index, metric=metric, kind="ivf", dim=dim, ids=id_array,
                    use_gpu=use_gpu, nlist=nlist)
        index.nprobe = default_nprobe(nlist) if nprobe is None else nprobe
        logger.info("built IVF-Flat %s index over %d x %d vectors (nlist=%d, nprobe=%d)",
                    metric, n, dim, nlist, index.nprobe)
        return index

    @classmethod
    def build_streamed(
        cls,
        chunks: Callable[[], Iterable[tuple[Any, np.ndarray]]],
        *,
        metric: Literal["l2", "cosine", "ip"] = "l2",
        kind: Literal["flat", "ivf"] = "ivf",
        storage: Literal["float32", "fp16"] = "fp16",
        nlist: int | Callable[[int], int] | None = None,
        nprobe: int | None = None,
        train_max: int = STREAM_TRAIN_MAX,
        expected_rows: int | None = None,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        seed: int = 0,
    ) -> VectorIndex:
        """Build an index from a stream of ``(ids, vectors)`` chunks, one chunk in memory at a time.

        Parameters
        ----------
        chunks : callable
            ``chunks()`` returns a fresh iterable of ``(ids, vectors)`` pairs: ``ids`` a 1-D
            sequence (or None for an index without ids), ``vectors`` an (m, d) finite array. It
            must yield the same rows in the same order every time: ``kind="flat"`` calls it once,
            ``kind="ivf"`` twice (a sampling pass, then an adding pass).
        metric : {"l2", "cosine", "ip"}, default "l2"
        kind : {"flat", "ivf"}, default "ivf"
            ``"flat"``: exact (every vector scanned per query). ``"ivf"``: inverted lists.
        storage : {"float32", "fp16"}, default "fp16"
            How FAISS keeps the vectors: ``"fp16"`` halves the index (scalar quantizer
            ``QT_fp16``: ``IndexScalarQuantizer`` for flat, ``IndexIVFScalarQuantizer`` for IVF,
            which stores each vector's residual to its list centroid in float16); values beyond
            the float16 range (65504) raise :class:`~index.errors.SchemaError`.
        nlist : int or callable, optional
            IVF lists, or a function of the row count giving them; default :func:`default_nlist`.
            Clamped to [1, N].
        nprobe : int, optional
            IVF lists probed per query; default :func:`default_nprobe`.
        train_max : int, default ``STREAM_TRAIN_MAX``
            Largest k-means training sample: ``min(N, 64 * nlist, train_max)`` rows. The
            sampling pass keeps up to 1.25x that many rows; give ``nlist`` as an int (not a
            function of N) to bound it by ``64 * nlist`` instead of ``train_max``.
        expected_rows : int, optional
            Flat only: the number of rows the stream yields, when known: the index then allocates its
            storage once and encodes each chunk into it (FAISS's own ``add`` grows a vector by
            doubling, up to 1.5x the final bytes while it copies). A stream of another length
            raises :class:`~index.errors.SchemaError`.
        device : {"auto", "cpu", "cuda"}, default "auto"
        seed : int, default 0
            Seeds the training sample (the same rows for the same stream and seed, whatever the
            chunk sizes) and k-means.

        Returns
        -------
        VectorIndex

        Raises
        ------
        SchemaError
            An empty stream, chunks of different dimensions, NaN/inf, duplicate ids, fp16
            overflow, or a second pass that yields other rows than the first.

        Notes
        -----
        The training sample is a uniform random sample drawn in one pass by seeded priority keys
        (the ``n_train`` smallest of one uniform key per row), so N need not be known in
        advance. Time: flat O(N d); IVF O(N d) to sample, k-means O(n_train * nlist * d) per
        iteration (10), O(N * nlist * d) to assign. Memory: the index (N * d * 4 bytes float32,
        N * d * 2 fp16; IVF adds 16 bytes per vector for list ids and the direct map) + one chunk
        + the training sample (``1.25 * min(train_max, 64 * nlist) * d * 4`` bytes at most) + the
        ids (O(N)).
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid metrics are {', '.join(METRICS)}.")
        if kind not in ("flat", "ivf"):
            raise ValueError(f"kind must be 'flat' or 'ivf' for a streamed build, got {kind!r}.")
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}.")
        if isinstance(train_max, bool) or not isinstance(train_max, (int, np.integer)) or train_max < 1:
            raise ValueError(f"train_max must be a positive integer, got {train_max!r}.")
        use_gpu = _resolve_device(device)
        _configure_threads()
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        stream = _ChunkStream(metric, storage)
        if kind == "flat":
            if nlist is not None or nprobe is not None:
                logger.warning("nlist/nprobe are ignored for a flat index")
            cpu_index: Any = None
            filled = _PreallocatedFill(expected_rows)
            for matrix in stream.chunks(chunks()):
                if cpu_index is None:
                    cpu_index = (faiss.IndexFlat(stream.dim, faiss_metric) if storage == "float32"
                                 else faiss.IndexScalarQuantizer(stream.dim, faiss.ScalarQuantizer.QT_fp16,
                                                                 faiss_metric))
                filled.add(cpu_index, matrix)
            n = stream.finish_pass(expected=expected_rows)
            filled.finish(cpu_index)
            index = cls(cpu_index=cpu_index, metric=metric, kind="flat", dim=stream.dim,
                        ids=stream.ids(), use_gpu=use_gpu, storage=storage)
            logger.info("built flat %s index (%s) over %d x %d streamed vectors in %d chunks",
                        metric, storage, n, stream.dim, stream.chunk_count)
            return index
        # Pass 1: count the rows and keep a seeded uniform sample (the smallest keys). With a
        # fixed nlist the sample needs at most 64 * nlist rows; with a function of N, train_max.
        cap = train_max
        if nlist is not None and not callable(nlist):
            cap = min(train_max, STREAM_TRAIN_PER_LIST * max(1, int(nlist)))
        sampler = _PrioritySample(cap, seed)
        for matrix in stream.chunks(chunks()):
            sampler.offer(matrix)
        n = stream.finish_pass()
        nlist = _resolve_nlist(nlist, n)
        n_train = min(n, STREAM_TRAIN_PER_LIST * nlist, train_max)
        train = sampler.take(n_train)
        quantizer = faiss.IndexFlat(stream.dim, faiss_metric)
        if storage == "float32":
            cpu_index = faiss.IndexIVFFlat(quantizer, stream.dim, nlist, faiss_metric)
        else:
            cpu_index = faiss.IndexIVFScalarQuantizer(quantizer, stream.dim, nlist,
                                                      faiss.ScalarQuantizer.QT_fp16, faiss_metric)
        cpu_index.cp.seed = int(seed)
        cpu_index.train(train)
        del train, sampler
        # Pass 2: add chunk by chunk; the rows must be those of pass 1.
        for matrix in stream.chunks(chunks()):
            cpu_index.add(matrix)
        stream.finish_pass(expected=n)
        cpu_index.make_direct_map()  # for reconstruct_batch in search_ids; O(N) int64
        index = cls(cpu_index=cpu_index, metric=metric, kind="ivf", dim=stream.dim, ids=stream.ids(),
                    use_gpu=use_gpu, nlist=nlist, storage=storage)
        index.nprobe = default_nprobe(nlist) if nprobe is None else nprobe
        logger.info("built IVF %s index (%s) over %d x %d streamed vectors in %d chunks "
                    "(nlist=%d, nprobe=%d, %d training rows)", metric, storage, n, stream.dim,
                    stream.chunk_count, nlist, index.nprobe, n_train)
        return index

    @classmethod
    def from_store(
        cls, store: Any, table: str, *, version: int | None = None, **build_kwargs: Any
    ) -> VectorIndex:
        """Build from an embedding table of a Store-like object (anything with ``read_vectors``).

        The version is pinned first (``store.version(table)`` when the store has it) so the index
        matches exactly one table version, recorded in :attr:`source`.
        """
        if version is None and hasattr(store, "version"):
            version = store.version(table)
        ids, vectors = store.read_vectors(table, version=version)
        index = cls.build(vectors, ids=ids, **build_kwargs)
        index.source = {"table": table, "version": version}
        return index

    # ------------------------------------------------------------- properties
    @property
    def ntotal(self) -> int:
        """int: number of indexed vectors."""
        return int(self._cpu.ntotal)

    @property
    def index_bytes(self) -> int:
        """int: bytes the FAISS index holds: the vector codes (4 or 2 bytes per component), and
        for IVF the list ids and direct map (16 bytes per vector) and the centroids. The id array
        and its lookup (Python objects, O(N)) are not counted."""
        n = self.ntotal
        total = n * int(self._cpu.code_size)
        if self.kind == "ivf":
            total += n * 16 + int(self.nlist or 0) * self.dim * 4
        return int(total)

    @property
    def on_gpu(self) -> bool:
        """bool: whether :meth:`search` runs on a GPU copy."""
        return self._gpu is not None

    @property
    def nprobe(self) -> int | None:
        """int or None: IVF lists probed per query (None for flat)."""
        return int(self._cpu.nprobe) if self.kind == "ivf" else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind != "ivf":
            raise ValueError("nprobe only applies to IVF indexes.")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"nprobe must be a positive integer, got {value!r}.")
        value = int(min(value, self.nlist or value))
        self._cpu.nprobe = value
        if self._gpu is not None:
            self._gpu.nprobe = min(value, _GPU_MAX_K)

    def __repr__(self) -> str:
        extra = f", nlist={self.nlist}, nprobe={self.nprobe}" if self.kind == "ivf" else ""
        extra += f", storage={self.storage!r}" if self.storage != "float32" else ""
        return (f"VectorIndex(kind={self.kind!r}, metric={self.metric!r}, ntotal={self.ntotal}, "
                f"dim={self.dim}{extra}, on_gpu={self.on_gpu})")

    # ----------------------------------------------------------------- search
    def _prepare_queries(self, queries: Any) -> np.ndarray:
        matrix = _as_matrix(queries, "queries", dim=self.dim)
        if self.metric == "cosine":
            matrix = _normalised(matrix, "queries")
        return matrix

    def search(
        self, queries: np.ndarray, k: int, *, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed vectors of each query.

        Parameters
        ----------
        queries : numpy.ndarray
            (Q, d) finite numbers.
        k : int
            Neighbours per query; ``k > ntotal`` pads with index -1 / distance inf (-inf for ip).
        nprobe : int, optional
            IVF lists probed by this call only (clamped to ``nlist``; the index's own
            :attr:`nprobe` is left as it is, so concurrent callers do not interfere); runs on
            the CPU index. ValueError on a flat index.

        Returns
        -------
        distances : numpy.ndarray
            float32 (Q, k): Euclidean distances ascending (l2, cosine) or inner products
            descending (ip).
        indices : numpy.ndarray
            int64 (Q, k) row positions.

        Notes
        -----
        Flat: O(Q N d) time; IVF: O(Q (nlist + nprobe N / nlist) d). Queries are sent to FAISS in
        chunks of 8192.
        """
        k = _check_k(k)
        params = self._search_params(nprobe)
        return self._search_prepared(self._prepare_queries(queries), k, params)

    def _search_params(self, nprobe: int | None) -> Any:
        """FAISS search parameters for a per-call ``nprobe`` (None: the index's own)."""
        if nprobe is None:
            return None
        if self.kind != "ivf":
            raise ValueError("nprobe only applies to IVF indexes.")
        if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or nprobe < 1:
            raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}.")
        return faiss.SearchParametersIVF(nprobe=int(min(nprobe, self.nlist or nprobe)))

    def _search_prepared(
        self, matrix: np.ndarray, k: int, params: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        n_query = matrix.shape[0]
        kk = min(k, self.ntotal)
        fill = -np.inf if self.metric == "ip" else np.inf
        distances = np.full((n_query, k), fill, dtype=np.float32)
        indices = np.full((n_query, k), -1, dtype=np.int64)
        use_gpu = self._gpu is not None and kk <= _GPU_MAX_K and params is None
        engine = self._gpu if use_gpu else self._cpu
        for start in range(0, n_query, _SEARCH_CHUNK):
            chunk = matrix[start:start + _SEARCH_CHUNK]
            if params is None:
                dist, idx = engine.search(chunk, kk)
            else:
                dist, idx = engine.search(chunk, kk, params=params)
            stop = start + chunk.shape[0]
            distances[start:stop, :kk] = dist
            indices[start:stop, :kk] = idx
        return self._finish_knn(distances, indices)

    def _finish_knn(self, distances: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fix padding, take square roots, order ties by lower index (padding stays last)."""
        empty = indices < 0
        if self.metric == "ip":
            distances[empty] = -np.inf
            primary = -distances
        else:
            distances[empty] = np.inf
            np.sqrt(np.maximum(distances, 0, out=distances), out=distances)
            primary = distances
        tiebreak = np.where(empty, np.iinfo(np.int64).max, indices)
        order = np.lexsort((tiebreak, primary), axis=-1)
        return (np.take_along_axis(distances, order, axis=1),
                np.take_along_axis(indices, order, axis=1))

    def search_ids(
        self, query_ids: Sequence[Any] | np.ndarray, k: int, exclude_self: bool = True,
        *, nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of stored rows given by id.

        Parameters
        ----------
        query_ids : sequence
            Ids given at build time.
        k : int
            Neighbours per query.
        exclude_self : bool, default True
            Drop the query row itself from its result (if a duplicate vector pushes the row out
            of the top ``k + 1``, the last neighbour is dropped instead).
        nprobe : int, optional
            As in :meth:`search`.

        Returns
        -------
        distances, indices : numpy.ndarray
            As :meth:`search`; map indices to ids with ``index.ids[indices]``.

        Raises
        ------
        ValueError
            The index was built without ids.
        NotFoundError
            Unknown ids (lists up to five).
        """
        k = _check_k(k)
        params = self._search_params(nprobe)
        rows = self.rows_of(query_ids)
        matrix = np.ascontiguousarray(self._reconstruct(rows), dtype=np.float32)
        if not exclude_self:
            return self._search_prepared(matrix, k, params)
        distances, indices = self._search_prepared(matrix, k + 1, params)
        keep = indices != rows[:, None]
        no_self = keep.all(axis=1)
        keep[no_self, -1] = False
        n_query = len(rows)
        return distances[keep].reshape(n_query, k), indices[keep].reshape(n_query, k)

    def rows_of(self, query_ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Row positions (int64) of ``query_ids``; NotFoundError for unknown ids."""
        if self.ids is None:
            raise ValueError("this index was built without ids; pass ids= to VectorIndex.build.")
        if isinstance(query_ids, str):
            raise ValueError("query_ids must be a sequence of ids, not a single string.")
        if self._id_rows is None:
            self._id_rows = {value: row for row, value in enumerate(self.ids.tolist())}
        lookup = self._id_rows
        wanted = list(query_ids.tolist() if isinstance(query_ids, np.ndarray) else query_ids)
        missing = [value for value in wanted if value not in lookup]
        if missing:
            raise NotFoundError(list(dict.fromkeys(missing)), where="the vector index")
        return np.fromiter((lookup[value] for value in wanted), dtype=np.int64, count=len(wanted))

    def _reconstruct(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._cpu.reconstruct_batch(rows)

    def range_search(
        self, queries: np.ndarray, radius: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All indexed vectors strictly within ``radius`` of each query.

        Parameters
        ----------
        queries : numpy.ndarray
            (Q, d) finite numbers.
        radius : float
            Euclidean radius for l2/cosine (keeps ``d < radius``, evaluated as
            ``d**2 < radius**2``); for ip keeps ``ip > radius``.

        Returns
        -------
        lims : numpy.ndarray
            int64 (Q + 1,); neighbours of query ``i`` are ``indices[lims[i]:lims[i + 1]]``.
        distances : numpy.ndarray
            float32 Euclidean distances (inner products for ip).
        indices : numpy.ndarray
            int64, ascending within each query.

        Notes
        -----
        Always runs on the CPU index (FAISS GPU has no range search for these indexes). IVF is
        approximate: only the ``nprobe`` nearest lists are scanned. Queries are processed in
        chunks of 1024, so temporary memory is bounded; the result is O(total neighbours).
        """
        radius = float(radius)
        if not math.isfinite(radius):
            raise ValueError(f"radius must be a finite number, got {radius!r}.")
        matrix = self._prepare_queries(queries)
        n_query = matrix.shape[0]
        squared = self.metric != "ip"
        if squared and radius <= 0:
            return (np.zeros(n_query + 1, dtype=np.int64), np.empty(0, dtype=np.float32),
                    np.empty(0, dtype=np.int64))
        threshold = radius * radius if squared else radius
        counts = np.zeros(n_query, dtype=np.int64)
        dist_parts: list[np.ndarray] = []
        index_parts: list[np.ndarray] = []
        for start in range(0, n_query, _RANGE_CHUNK):
            chunk = matrix[start:start + _RANGE_CHUNK]
            lims, dist, idx = self._cpu.range_search(chunk, threshold)
            per_query = np.diff(lims).astype(np.int64)
            owner = np.repeat(np.arange(chunk.shape[0]), per_query)
            order = np.lexsort((idx, owner))
            dist = dist[order]
            if squared:
                dist = np.sqrt(np.maximum(dist, 0))
            dist_parts.append(dist.astype(np.float32, copy=False))
            index_parts.append(idx[order].astype(np.int64, copy=False))
            counts[start:start + chunk.shape[0]] = per_query
        lims_all = np.zeros(n_query + 1, dtype=np.int64)
        np.cumsum(counts, out=lims_all[1:])
        if not index_parts:
            return lims_all, np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        return lims_all, np.concatenate(dist_parts), np.concatenate(index_parts)


def _check_ids(ids: Any, n: int) -> np.ndarray | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        raise SchemaError("ids must be a sequence with one id per vector, not a single string.")
    array = np.asarray(ids, dtype=object) if not isinstance(ids, np.ndarray) else ids.astype(object)
    if array.ndim != 1 or len(array) != n:
        raise SchemaError(f"got {len(array)} ids for {n} vectors; pass exactly one id per row.")
    seen: set[Any] = set()
    for value in array.tolist():
        if value in seen:
            raise SchemaError(f"id {value!r} appears more than once; ids must be unique.")
        seen.add(value)
    return array


def _build_ivf(matrix: np.ndarray, faiss_metric: int, nlist: int | None, seed: int) -> tuple[Any, int]:
    """Train and fill an IVF-Flat index on a seeded subsample; returns (index, nlist)."""
    n, dim = matrix.shape
    if nlist is None:
        nlist = default_nlist(n)
    elif isinstance(nlist, bool) or not isinstance(nlist, (int, np.integer)) or nlist < 1:
        raise ValueError(f"nlist must be a positive integer, got {nlist!r}.")
    elif nlist > n:
        logger.warning("nlist=%d is larger than the %d vectors; using nlist=%d", nlist, n, n)
        nlist = n
    nlist = int(nlist)
    n_train = min(n, 256 * nlist)
    rng = np.random.default_rng(seed)
    train_rows = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
    quantizer = faiss.IndexFlat(dim, faiss_metric)
    # faiss's wrapper keeps a reference to the quantizer inside the IVF index (no dangling pointer)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
    index.cp.seed = int(seed)
    index.train(np.ascontiguousarray(matrix[train_rows]))
    index.add(matrix)
    index.make_direct_map()  # for reconstruct_batch in search_ids; O(N) int64
    return index, nlist


def _resolve_nlist(nlist: int | Callable[[int], int] | None, n: int) -> int:
    """IVF list count for ``n`` vectors from an int, a function of ``n`` or the default."""
    value = default_nlist(n) if nlist is None else (nlist(n) if callable(nlist) else nlist)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"nlist must be a positive integer, got {value!r}.")
    if value > n:
        logger.warning("nlist=%d is larger than the %d vectors; using nlist=%d", value, n, n)
        value = n
    return int(value)


class _ChunkStream:
    """Validates the chunks of one streamed build pass after pass; keeps the ids of the first.

    Every chunk is checked like :meth:`VectorIndex.build`'s matrix (2-D, finite, one dimension),
    normalised for ``cosine`` and range-checked for ``fp16``; a later pass must yield the same
    ids in the same order (checked per chunk, O(m)).
    """

    def __init__(self, metric: str, storage: str) -> None:
        self.metric = metric
        self.storage = storage
        self.dim: int | None = None
        self.chunk_count = 0
        self._passes = 0
        self._ids: list[np.ndarray] | None = []
        self._first_rows = 0
        self._rows = 0
        self._bounds: list[int] = [0]

    def chunks(self, source: Iterable[tuple[Any, np.ndarray]]) -> Iterable[np.ndarray]:
        """Yield each chunk of ``source`` as a checked C-contiguous float32 matrix."""
        self._rows = 0
        self.chunk_count = 0
        first = self._passes == 0
        for item in source:
            try:
                ids, vectors = item
            except (TypeError, ValueError):
                raise SchemaError("a streamed build needs (ids, vectors) pairs per chunk.") from None
            matrix = _as_matrix(vectors, f"vectors of chunk {self.chunk_count}", dim=self.dim)
            m = matrix.shape[0]
            if m == 0:
                continue
            if self.dim is None:
                if matrix.shape[1] == 0:
                    raise SchemaError("cannot build an index over 0-dimensional vectors.")
                self.dim = int(matrix.shape[1])
            chunk_ids = self._check_chunk_ids(ids, m, first)
            if self.metric == "cosine":
                matrix = _normalised(matrix, "vectors")
            if self.storage == "fp16":
                big = np.abs(matrix).max(axis=1) > _FP16_MAX
                if big.any():
                    row = self._rows + int(np.flatnonzero(big)[0])
                    raise SchemaError(
                        f"vectors exceed the float16 range (65504) at row {row}; build with "
                        "storage='float32'."
                    )
            if first and self._ids is not None and chunk_ids is not None:
                self._ids.append(chunk_ids)
                self._bounds.append(self._bounds[-1] + m)
            self._rows += m
            self.chunk_count += 1
            yield matrix

    def _check_chunk_ids(self, ids: Any, m: int, first: bool) -> np.ndarray | None:
        if ids is None:
            if first and self._rows == 0:
                self._ids = None
            elif self._ids is not None:
                raise SchemaError("some chunks have ids and others not; give ids with every chunk.")
            return None
        if self._ids is None:
            raise SchemaError("some chunks have ids and others not; give ids with every chunk.")
        if isinstance(ids, str):
            raise SchemaError("ids must be a sequence with one id per vector, not a single string.")
        array = np.asarray(ids, dtype=object) if not isinstance(ids, np.ndarray) else ids.astype(object)
        if array.ndim != 1 or len(array) != m:
            raise SchemaError(f"got {len(array)} ids for a chunk of {m} vectors; pass one id per row.")
        if not first:
            stored = self._slice(self._rows, self._rows + m)
            if len(stored) != m or not bool(np.all(stored == array)):
                raise SchemaError(
                    f"the second pass of a streamed build yielded other rows than the first at "
                    f"row {self._rows}; the source changed while the index was built."
                )
        return array

    def _slice(self, lo: int, hi: int) -> np.ndarray:
        """Ids of rows ``lo .. hi`` of the first pass (they may span several first-pass chunks)."""
        if self._ids is None:
            return np.empty(0, dtype=object)
        start = int(np.searchsorted(self._bounds, lo, side="right")) - 1
        parts = []
        chunk = start
        while chunk < len(self._ids) and self._bounds[chunk] < hi:
            a = max(lo, self._bounds[chunk]) - self._bounds[chunk]
            b = min(hi, self._bounds[chunk + 1]) - self._bounds[chunk]
            parts.append(self._ids[chunk][a:b])
            chunk += 1
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)

    def finish_pass(self, expected: int | None = None) -> int:
        """End a pass: its row count (SchemaError when empty or not ``expected``)."""
        self._passes += 1
        if self._rows == 0:
            raise SchemaError("cannot build an index over an empty stream of vectors.")
        if expected is not None and self._rows != expected:
            raise SchemaError(
                f"a streamed build pass yielded {self._rows} rows where {expected} were expected "
                "(announced, or yielded by the first pass); the source changed while the index "
                "was built."
            )
        return self._rows

    def ids(self) -> np.ndarray | None:
        """The first pass's ids as one object array, checked unique (hashed, O(N))."""
        if self._ids is None:
            return None
        array = np.concatenate(self._ids) if len(self._ids) > 1 else self._ids[0]
        self._ids = [array]
        self._bounds = [0, len(array)]
        return _check_ids(array, len(array))


class _PrioritySample:
    """A seeded uniform sample of a stream's rows: one uniform key per row, keep the smallest.

    The keys come from one generator in stream order, so the sample depends on the rows and the
    seed, not on the chunk sizes. Memory: at most ``1.25 * cap`` rows (plus one chunk).
    """

    def __init__(self, cap: int, seed: int) -> None:
        self.cap = int(cap)
        self._rng = np.random.default_rng(seed)
        self._keys: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._kept = 0
        self._threshold = np.inf

    def offer(self, matrix: np.ndarray) -> None:
        keys = self._rng.random(matrix.shape[0])
        mask = keys < self._threshold
        if not mask.any():
            return
        self._keys.append(keys[mask])
        self._rows.append(matrix[mask] if not mask.all() else matrix.copy())
        self._kept += int(mask.sum())
        if self._kept > self.cap + self.cap // 4:
            self._shrink(self.cap)

    def _shrink(self, size: int) -> None:
        keys = np.concatenate(self._keys)
        rows = np.concatenate(self._rows)
        order = np.argsort(keys, kind="stable")[:size]
        self._keys, self._rows = [keys[order]], [rows[order]]
        self._kept = len(order)
        if self._kept >= self.cap:
            self._threshold = float(keys[order[-1]])

    def take(self, n: int) -> np.ndarray:
        """The ``n`` rows of smallest key (n <= rows offered), in key order, C-contiguous."""
        self._shrink(n)
        return np.ascontiguousarray(self._rows[0])


class _PreallocatedFill:
    """Fills a flat FAISS index (``IndexFlat`` / ``IndexScalarQuantizer``) of a known row count:
    its code storage is sized once and each chunk is encoded (``sa_encode``) into its slice, so
    the build holds the final bytes plus one chunk. Without a row count, plain ``add``."""

    def __init__(self, rows: int | None) -> None:
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, (int, np.integer))
                                 or rows < 1):
            raise ValueError(f"expected_rows must be a positive integer, got {rows!r}.")
        self.rows = None if rows is None else int(rows)
        self.offset = 0
        self._view: np.ndarray | None = None

    def add(self, index: Any, matrix: np.ndarray) -> None:
        if self.rows is None:
            index.add(matrix)
            return
        size = int(index.code_size)
        if self._view is None:
            index.codes.resize(self.rows * size)
            self._view = faiss.rev_swig_ptr(index.codes.data(), self.rows * size)
        m = matrix.shape[0]
        if self.offset + m > self.rows:
            raise SchemaError(
                f"the stream yielded more than the {self.rows} rows announced (expected_rows); "
                "the source changed while the index was built."
            )
        self._view[self.offset * size:(self.offset + m) * size] = index.sa_encode(matrix).reshape(-1)
        self.offset += m

    def finish(self, index: Any) -> None:
        if self.rows is not None:
            # finish_pass(expected=rows) already checked the count.
            self._view = None
            index.ntotal = self.rows
