"""k-nearest-frame search over a workspace embedding (``Workspace.search``).

The neighbours come from an :class:`index.vectors.VectorIndex` built from one version of the
embedding table and cached per ``(workspace, table, version, metric)``; a where-filter builds (and
caches) an index over the matching frames only, keyed by the filter and the ``samples`` version it
read.

Two kinds of index, chosen by the number of frames M the search covers (the table, or the frames
the filter allows):

* M <= ``SEARCH_FLAT_MAX``: exact. A flat float32 index; unfiltered it is filled chunk by chunk
  from :meth:`index.store.Store.iter_vectors` (one copy, inside FAISS), filtered from the matching
  rows only (:meth:`~index.store.Store.gather_vectors`).
* M > ``SEARCH_FLAT_MAX``: approximate. An IVF index whose vectors are stored as float16 inside
  FAISS (``IndexIVFScalarQuantizer``, ``QT_fp16``), built streamed
  (:meth:`index.vectors.VectorIndex.build_streamed`): a first pass over the table draws a seeded
  training sample, k-means trains ``search_nlist(M)`` (~sqrt(M)) lists, a second pass adds the
  vectors chunk by chunk. Queries probe ``nprobe`` lists (default
  :func:`index.vectors.default_nprobe`, or the caller's ``nprobe=``). Every result says which
  index answered (``index_kind``, ``index_storage``, ``nlist``, ``nprobe``).

Why 1M: a flat float32 index holds M * d * 4 bytes (1 GiB at 1M x 256) and scans all M vectors
per query; ``benchmarks/search_scale.py`` measures both kinds (first-search build time, query
latency, recall@10 against flat, index bytes) in ``benchmarks/results/search_scale-200000.json``.
Up to 1M rows the flat index is exact, needs no training and its build is only the table read;
above, its memory (10 GiB at 10M x 256, with the float32 table read) and per-query cost grow
linearly, while the fp16 IVF index holds about M * (2 d + 16) bytes and scans about
``nprobe * M / nlist`` vectors per query.

Complexity: flat build O(M d) time, memory O(M d) (4 bytes per component); query O(M d). IVF
build: two streamed passes O(M d) + k-means O(n_train * nlist * d) per iteration + assignment
O(M * nlist * d); memory the index (M * (2 d + 16) bytes) + one chunk of ``STREAM_ROWS`` rows +
the training sample (<= 64 * nlist rows); query O((nlist + nprobe * M / nlist) d). The cache
keeps at most ``MAX_CACHED`` indexes and evicts least recently used ones while the cached indexes
hold more than ``MAX_CACHED_BYTES`` (the newest is always kept).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from curate import _tables as T
from curate.api import Neighbors, SearchResult
from curate.errors import InvalidInputError, NotFoundError
from index.errors import NotFoundError as IndexNotFoundError
from index.errors import SchemaError

from curate.store_queries import require_embedding, require_samples
from index.store import Store

if TYPE_CHECKING:
    from index.vectors import VectorIndex

__all__ = ["search", "clear_cache", "search_nlist", "MAX_CACHED", "MAX_CACHED_BYTES", "MAX_K",
           "METRICS", "SEARCH_FLAT_MAX", "STREAM_ROWS"]

logger = logging.getLogger(__name__)

#: Indexes kept in the cache.
MAX_CACHED = 8
#: Bytes the cached indexes may hold together before the least recently used are evicted.
MAX_CACHED_BYTES = 6 * 2**30
#: Above this many frames a search uses the approximate fp16 IVF index instead of exact flat
#: (see the module docstring for why 1M).
SEARCH_FLAT_MAX = 1_000_000
#: Rows per chunk when an index is filled from the embedding table.
STREAM_ROWS = 65_536
#: Largest ``k`` accepted.
MAX_K = 10_000
#: Distance / similarity measures (see :mod:`index.vectors`).
METRICS = ("l2", "cosine", "ip")

_cache: "OrderedDict[tuple, VectorIndex]" = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Drop every cached index."""
    with _cache_lock:
        _cache.clear()


def search_nlist(n: int) -> int:
    """IVF lists of a search index over ``n`` frames: about sqrt(n), at least 39 rows per list.

    Fewer lists than :func:`index.vectors.default_nlist` (4 sqrt(n)) because the first search
    pays the build: assigning n vectors costs O(n * nlist * d) and k-means
    O(64 * nlist^2 * d) per iteration; at 10M x 256 that is ~3 200 lists instead of ~12 600.
    """
    return max(1, min(int(round(math.sqrt(n))), n // 39))


def _cached_index(
    store: Store,
    table: str,
    version: int,
    metric: str,
    where: Optional[str],
    samples_version: Optional[int],
) -> Optional["VectorIndex"]:
    """The index of ``table@version`` (restricted to frames matching ``where``); None if empty."""
    key = (str(store.path), table, int(version), metric, where, samples_version)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        # Built under the lock: concurrent searches of one key build it once.
        if where is None:
            index = _streamed_index(store, table, version, metric,
                                    store.count(table, version=version), allowed=None)
        else:
            # Only the rows the filter allows are read (hashed join on ids, rows fetched by id).
            allowed = store.ids(T.SAMPLES, where=where, version=samples_version)
            if len(allowed) > SEARCH_FLAT_MAX:
                index = _streamed_index(store, table, version, metric, len(allowed), allowed=allowed)
            else:
                index = _gathered_index(store, table, version, metric, allowed)
        _cache[key] = index
        _evict()
        logger.info("built search index %s@%d (%s, where=%r): %s",
                    table, version, metric, where, "empty" if index is None else repr(index))
        return index


def _evict() -> None:
    """Drop least recently used indexes beyond ``MAX_CACHED`` or ``MAX_CACHED_BYTES``."""
    def held() -> int:
        return sum(ix.index_bytes for ix in _cache.values() if ix is not None)

    while len(_cache) > MAX_CACHED or (len(_cache) > 1 and held() > MAX_CACHED_BYTES):
        _cache.popitem(last=False)


def _gathered_index(store: Store, table: str, version: int, metric: str,
                    allowed: np.ndarray) -> Optional["VectorIndex"]:
    """Exact flat index over the vectors of the ``allowed`` ids (read by id)."""
    from index.vectors import VectorIndex

    vecs, found = store.gather_vectors(table, allowed, version=version)
    ids = allowed
    if not found.all():
        ids, vecs = allowed[found], vecs[found]
    if len(ids) == 0:
        return None
    return VectorIndex.build(vecs, ids=ids, metric=metric, kind="flat", device="cpu")


def _streamed_index(store: Store, table: str, version: int, metric: str, rows: int,
                    allowed: Optional[np.ndarray]) -> Optional["VectorIndex"]:
    """Index over ``table@version`` (only the ``allowed`` ids when given) filled chunk by chunk:
    exact flat float32 for ``rows <= SEARCH_FLAT_MAX``, fp16 IVF above (``rows`` is the frame
    count the search covers, the table's or the filter's)."""
    from index.vectors import VectorIndex

    if rows == 0:
        return None
    # One hash set, built once (O(M)); each chunk is then an O(chunk) lookup. (Arrow's is_in
    # would hash the whole value set again for every chunk.)
    allowed_set = None if allowed is None else set(allowed.tolist())
    seen = [0]

    def chunks() -> Any:
        seen[0] = 0
        for ids, vecs in store.iter_vectors(table, version=version, batch_rows=STREAM_ROWS):
            if allowed_set is not None:
                keep = np.fromiter((i in allowed_set for i in ids.tolist()), dtype=bool, count=len(ids))
                if not keep.all():
                    ids, vecs = ids[keep], vecs[keep]
            seen[0] += len(ids)
            yield ids, vecs

    approximate = rows > SEARCH_FLAT_MAX
    try:
        return VectorIndex.build_streamed(
            chunks, metric=metric, kind="ivf" if approximate else "flat",
            storage="fp16" if approximate else "float32",
            nlist=search_nlist(rows) if approximate else None,
            expected_rows=rows if allowed is None else None, device="cpu", seed=0)
    except SchemaError:
        if seen[0] == 0:  # no allowed frame has a vector
            return None
        raise


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


def _query_matrix(vectors: Any, dim: int) -> np.ndarray:
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"query vectors are not a numeric (Q, {dim}) array: {exc}") from None
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != dim or matrix.shape[0] == 0:
        raise InvalidInputError(
            f"query vectors must have shape (Q, {dim}) with Q >= 1 to match the embedding; "
            f"got shape {tuple(matrix.shape)}"
        )
    if not np.isfinite(matrix).all():
        raise InvalidInputError("query vectors contain NaN or inf")
    return np.ascontiguousarray(matrix)


def search(
    store: Store,
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
    """The ``k`` nearest frames of each query frame id or query vector.

    Parameters
    ----------
    store : index.store.Store
        The workspace's store (``Workspace.search`` passes its own).
    embedding : str
        Embedding name.
    ids : sequence of str, optional
        Query frames (their stored vectors are the queries). Exactly one of ``ids`` and
        ``vectors``.
    vectors : array-like, optional
        (Q, d) or (d,) query vectors.
    k : int
        Neighbours per query (1 .. ``MAX_K``); fewer come back when fewer frames qualify.
    where : str, optional
        SQL filter on ``samples``: only matching frames are returned as neighbours (the query
        frames themselves need not match).
    metric : {"l2", "cosine", "ip"}
    exclude_self : bool
        Leave a query frame out of its own neighbours.
    version : int, optional
        Embedding table version (default: latest).
    nprobe : int, optional
        Lists the approximate (IVF) index probes for this call (more: higher recall, slower;
        clamped to its ``nlist``). Ignored by the exact flat index. Default
        :func:`index.vectors.default_nprobe`.

    Returns
    -------
    SearchResult
        ``index_kind`` says which index answered: ``"flat"`` (exact) or ``"ivf"`` (approximate,
        with its ``nlist`` and the ``nprobe`` used); ``index_storage`` how it keeps the vectors.

    Raises
    ------
    InvalidInputError
        Neither or both of ``ids``/``vectors``, bad ``k``/``metric``/``nprobe``, wrongly shaped
        vectors.
    NotFoundError
        Unknown embedding; query ids without a vector.
    index.errors.FilterError
        Invalid ``where``.

    Notes
    -----
    Time O(N d) to build an index (cached; see the module docstring for the IVF build),
    O(Q N d) per call (flat) or O(Q (nlist + nprobe N / nlist) d) (IVF); memory O(N d).
    """
    k = _check_k(k)
    if nprobe is not None and (isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer))
                               or nprobe < 1):
        raise InvalidInputError(f"nprobe must be a positive integer, got {nprobe!r}")
    if metric not in METRICS:
        raise InvalidInputError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    if (ids is None) == (vectors is None):
        raise InvalidInputError("give exactly one of ids= (query frames) or vectors= (query vectors)")
    table = require_embedding(store, embedding)
    if version is None:
        version = store.version(table)
    samples_version: Optional[int] = None
    if where is not None:
        require_samples(store)
        store.validate_where(T.SAMPLES, where)
        samples_version = store.version(T.SAMPLES)
    dim = int(store.schema(table, version=version).field("vector").type.list_size)
    queries: Optional[np.ndarray] = None
    if ids is not None:
        if isinstance(ids, str):
            raise InvalidInputError("ids must be a list of frame ids, not a single string")
        query_ids: list[Optional[str]] = [str(i) for i in ids]
        if not query_ids:
            raise InvalidInputError("ids is empty: give at least one query frame id")
    else:
        queries = _query_matrix(vectors, dim)
        query_ids = [None] * queries.shape[0]
    index = _cached_index(store, table, version, metric, where, samples_version)
    probe = int(nprobe) if (nprobe is not None and index is not None and index.kind == "ivf") else None
    results: list[Neighbors] = []
    drop_self = exclude_self and ids is not None
    if ids is not None and where is None and index is not None:
        # Query rows are in this index: the public id search, no table read.
        try:
            distances, rows = index.search_ids(query_ids, k, exclude_self=exclude_self, nprobe=probe)
        except IndexNotFoundError as exc:
            raise _missing_queries(exc.missing, embedding, version) from None
        drop_self = False
    else:
        if ids is not None:
            try:
                _, queries = store.read_vectors(table, ids=query_ids, version=version)
            except IndexNotFoundError as exc:
                raise _missing_queries(exc.missing, embedding, version) from None
        if index is None:
            distances = rows = None
        else:
            distances, rows = index.search(queries, k + 1 if drop_self else k, nprobe=probe)
    if index is None or rows is None:
        results = [Neighbors(query=q, ids=[], distances=[]) for q in query_ids]
    else:
        row_ids = index.ids
        for q, drow, rrow in zip(query_ids, distances, rows):
            valid = rrow >= 0
            found = [str(row_ids[r]) for r in rrow[valid]]
            dists = [float(d) for d in drow[valid]]
            if drop_self:
                if q in found:
                    pos = found.index(q)
                    del found[pos], dists[pos]
                found, dists = found[:k], dists[:k]
            results.append(Neighbors(query=q, ids=found, distances=[_finite(d) for d in dists]))
    return SearchResult(
        embedding=embedding,
        embedding_version=int(version),
        samples_version=samples_version,
        metric=metric,
        k=k,
        where=where,
        results=results,
        **_index_info(index, probe),
    )


def _index_info(index: Optional["VectorIndex"], nprobe: Optional[int]) -> dict[str, Any]:
    """What answered a search: kind, storage, and for IVF nlist and the nprobe used."""
    if index is None:
        return {}
    info: dict[str, Any] = {"index_kind": index.kind, "index_storage": index.storage}
    if index.kind == "ivf":
        info["nlist"] = int(index.nlist or 0)
        info["nprobe"] = int(min(nprobe, info["nlist"])) if nprobe is not None else index.nprobe
    return info


def _missing_queries(missing: list, embedding: str, version: int) -> NotFoundError:
    return NotFoundError(
        f"{len(missing)} query frame id(s) have no {embedding!r} vector (version {version}): "
        f"{', '.join(repr(m) for m in missing[:5])}; check the ids, or run `curate embed` for them"
    )


def _finite(value: float) -> float:
    if not math.isfinite(value):  # pragma: no cover - padding is dropped above
        raise InvalidInputError("non-finite distance in search result")
    return value
