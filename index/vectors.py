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
map and the id lookup). Queries are processed in chunks, so temporary memory stays bounded; the
outputs are O(Q * k) for k-NN and O(result) for range search.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from index._exact import METRICS, normalize_rows
from index.errors import DeviceError, NotFoundError, SchemaError

logger = logging.getLogger(__name__)

__all__ = ["VectorIndex", "import_faiss"]

#: ``kind="auto"`` builds an exact flat index up to this many vectors, IVF-Flat above.
FLAT_MAX_DEFAULT = 100_000
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
    ) -> None:
        self._cpu = cpu_index
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
        return (f"VectorIndex(kind={self.kind!r}, metric={self.metric!r}, ntotal={self.ntotal}, "
                f"dim={self.dim}{extra}, on_gpu={self.on_gpu})")

    # ----------------------------------------------------------------- search
    def _prepare_queries(self, queries: Any) -> np.ndarray:
        matrix = _as_matrix(queries, "queries", dim=self.dim)
        if self.metric == "cosine":
            matrix = _normalised(matrix, "queries")
        return matrix

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed vectors of each query.

        Parameters
        ----------
        queries : numpy.ndarray
            (Q, d) finite numbers.
        k : int
            Neighbours per query; ``k > ntotal`` pads with index -1 / distance inf (-inf for ip).

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
        return self._search_prepared(self._prepare_queries(queries), k)

    def _search_prepared(self, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n_query = matrix.shape[0]
        kk = min(k, self.ntotal)
        fill = -np.inf if self.metric == "ip" else np.inf
        distances = np.full((n_query, k), fill, dtype=np.float32)
        indices = np.full((n_query, k), -1, dtype=np.int64)
        engine = self._gpu if (self._gpu is not None and kk <= _GPU_MAX_K) else self._cpu
        for start in range(0, n_query, _SEARCH_CHUNK):
            chunk = matrix[start:start + _SEARCH_CHUNK]
            dist, idx = engine.search(chunk, kk)
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
        self, query_ids: Sequence[Any] | np.ndarray, k: int, exclude_self: bool = True
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
        rows = self.rows_of(query_ids)
        matrix = np.ascontiguousarray(self._reconstruct(rows), dtype=np.float32)
        if not exclude_self:
            return self._search_prepared(matrix, k)
        distances, indices = self._search_prepared(matrix, k + 1)
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
