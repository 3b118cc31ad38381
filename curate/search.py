"""k-nearest-frame search over a workspace embedding (``Workspace.search``).

The neighbours come from an :class:`index.vectors.VectorIndex` built from one version of the
embedding table and cached per ``(workspace, table, version, metric)``; a where-filter builds (and
caches) an index over the matching frames only, keyed by the filter and the ``samples`` version it
read, so results are exact for flat indexes whatever the filter's selectivity.

Complexity: building an index is O(N d) time and memory (N frames of dimension d, or the M frames
matching the filter); a query is O(N d) (flat). The cache keeps at most ``MAX_CACHED`` indexes
(least recently used evicted), so memory is O(MAX_CACHED * N * d).
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

from curate.store_queries import require_embedding, require_samples
from index.store import Store

if TYPE_CHECKING:
    from index.vectors import VectorIndex

__all__ = ["search", "clear_cache", "MAX_CACHED", "MAX_K", "METRICS"]

logger = logging.getLogger(__name__)

#: Indexes kept in the cache.
MAX_CACHED = 8
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


def _cached_index(
    store: Store,
    table: str,
    version: int,
    metric: str,
    where: Optional[str],
    samples_version: Optional[int],
) -> Optional["VectorIndex"]:
    """The index of ``table@version`` (restricted to frames matching ``where``); None if empty."""
    from index.vectors import VectorIndex

    key = (str(store.path), table, int(version), metric, where, samples_version)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        # Built under the lock: concurrent searches of one key build it once.
        if where is None:
            ids, vecs = store.read_vectors(table, version=version)
        else:
            # Only the rows the filter allows are read (hashed join on ids, rows fetched by id).
            allowed = store.ids(T.SAMPLES, where=where, version=samples_version)
            vecs, found = store.gather_vectors(table, allowed, version=version)
            ids = allowed
            if not found.all():
                ids, vecs = allowed[found], vecs[found]
        if len(ids) == 0:
            index = None
        else:
            index = VectorIndex.build(vecs, ids=ids, metric=metric, kind="flat", device="cpu")
        _cache[key] = index
        while len(_cache) > MAX_CACHED:
            _cache.popitem(last=False)
        logger.info("built search index %s@%d (%s, where=%r): %d vectors",
                    table, version, metric, where, 0 if index is None else index.ntotal)
        return index


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

    Returns
    -------
    SearchResult

    Raises
    ------
    InvalidInputError
        Neither or both of ``ids``/``vectors``, bad ``k``/``metric``, wrongly shaped vectors.
    NotFoundError
        Unknown embedding; query ids without a vector.
    index.errors.FilterError
        Invalid ``where``.

    Notes
    -----
    Time O(N d) to build an index (cached), O(Q N d) per call; memory O(N d).
    """
    k = _check_k(k)
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
    results: list[Neighbors] = []
    drop_self = exclude_self and ids is not None
    if ids is not None and where is None and index is not None:
        # Query rows are in this index: the public id search, no table read.
        try:
            distances, rows = index.search_ids(query_ids, k, exclude_self=exclude_self)
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
            distances, rows = index.search(queries, k + 1 if drop_self else k)
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
    )


def _missing_queries(missing: list, embedding: str, version: int) -> NotFoundError:
    return NotFoundError(
        f"{len(missing)} query frame id(s) have no {embedding!r} vector (version {version}): "
        f"{', '.join(repr(m) for m in missing[:5])}; check the ids, or run `curate embed` for them"
    )


def _finite(value: float) -> float:
    if not math.isfinite(value):  # pragma: no cover - padding is dropped above
        raise InvalidInputError("non-finite distance in search result")
    return value
