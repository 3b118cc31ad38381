"""Brute-force nearest-neighbour references in numpy.

These are the ground truth the FAISS paths in :mod:`index.vectors` are tested against, and are
fine to use directly for small inputs. They follow the same output conventions as
:class:`index.vectors.VectorIndex`:

* ``"l2"``: Euclidean distances (not squared), ascending.
* ``"cosine"``: both sides are L2-normalised (zero vectors stay zero), then as ``"l2"``; the
  distance is ``sqrt(2 - 2 cos)``.
* ``"ip"``: inner products, descending.
* Ties are broken by the lower base index.
* ``k`` larger than the base: missing slots hold index ``-1`` and distance ``inf`` (``-inf`` for
  ``"ip"``).
* Range search is strict: ``d < radius`` for ``"l2"``/``"cosine"`` (evaluated as
  ``d**2 < radius**2``, like FAISS), ``ip > radius`` for ``"ip"``; neighbours of each query are
  sorted by base index.

Arithmetic is float64. Work is chunked over queries so that at most about
:data:`_CHUNK_ELEMENTS` distances exist at once: time O(Q * N * d), memory O(N * d + N * chunk)
(never a full Q x N matrix for large inputs) plus the output.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["METRICS", "exact_knn", "exact_range_search", "normalize_rows"]

#: Metrics understood by the references and by :class:`index.vectors.VectorIndex`.
METRICS: tuple[str, ...] = ("l2", "cosine", "ip")
#: Upper bound on distance-matrix elements computed per query chunk (float64: 32 MiB).
_CHUNK_ELEMENTS = 1 << 22


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Return a copy of ``matrix`` with every non-zero row scaled to unit L2 norm.

    Zero rows stay zero. Time and memory O(n * d).
    """
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics are {', '.join(METRICS)}.")


def _prepare(base: np.ndarray, queries: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    _check_metric(metric)
    base = np.asarray(base, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    if base.ndim != 2 or queries.ndim != 2:
        raise ValueError(
            f"base and queries must be 2-D arrays, got shapes {base.shape} and {queries.shape}."
        )
    if base.shape[1] != queries.shape[1]:
        raise ValueError(
            f"dimension mismatch: base vectors are {base.shape[1]}-d, queries {queries.shape[1]}-d."
        )
    if metric == "cosine":
        base, queries = normalize_rows(base), normalize_rows(queries)
    return base, queries


def _chunk_rows(n_base: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_base))


def _scores(base: np.ndarray, base_sq: np.ndarray, chunk: np.ndarray, metric: str) -> np.ndarray:
    """(c, N) matrix where smaller is better: squared distances, or negated inner products."""
    products = chunk @ base.T
    if metric == "ip":
        return -products
    squared = np.einsum("ij,ij->i", chunk, chunk)[:, None] + base_sq[None, :] - 2.0 * products
    return np.maximum(squared, 0.0, out=squared)


def exact_knn(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str = "l2"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query among ``base``.

    Parameters
    ----------
    base : numpy.ndarray
        (N, d) base vectors.
    queries : numpy.ndarray
        (Q, d) query vectors.
    k : int
        Neighbours per query (>= 1). Slots beyond N are padded (index -1).
    metric : {"l2", "cosine", "ip"}
        See the module docstring.

    Returns
    -------
    distances : numpy.ndarray
        float32 (Q, k).
    indices : numpy.ndarray
        int64 (Q, k).

    Notes
    -----
    Time O(Q * N * d); memory O(N * d) plus at most ~4M float64 scores per chunk of queries.
    Selection uses ``argpartition`` (O(N) per query); rows with ties at the k-th score fall back
    to a stable sort of that row so the lower index wins.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    base, queries = _prepare(base, queries, metric)
    n_base, n_query = base.shape[0], queries.shape[0]
    k = int(k)
    kk = min(k, n_base)
    fill = -np.inf if metric == "ip" else np.inf
    distances = np.full((n_query, k), fill, dtype=np.float32)
    indices = np.full((n_query, k), -1, dtype=np.int64)
    if kk == 0 or n_query == 0:
        return distances, indices
    base_sq = np.einsum("ij,ij->i", base, base)
    step = _chunk_rows(n_base)
    for start in range(0, n_query, step):
        scores = _scores(base, base_sq, queries[start:start + step], metric)
        if kk < n_base:
            chosen = np.argpartition(scores, kk - 1, axis=1)[:, :kk]
            kth = np.take_along_axis(scores, chosen, axis=1).max(axis=1)
            tied = (scores <= kth[:, None]).sum(axis=1) > kk
            for row in np.flatnonzero(tied):
                chosen[row] = np.argsort(scores[row], kind="stable")[:kk]
        else:
            chosen = np.broadcast_to(np.arange(n_base), scores.shape).copy()
        values = np.take_along_axis(scores, chosen, axis=1)
        order = np.lexsort((chosen, values), axis=-1)
        chosen = np.take_along_axis(chosen, order, axis=1)
        values = np.take_along_axis(values, order, axis=1)
        stop = start + chosen.shape[0]
        indices[start:stop, :kk] = chosen
        distances[start:stop, :kk] = -values if metric == "ip" else np.sqrt(values)
    return distances, indices


def exact_range_search(
    base: np.ndarray, queries: np.ndarray, radius: float, metric: str = "l2"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All base vectors strictly within ``radius`` of each query.

    Parameters
    ----------
    base : numpy.ndarray
        (N, d) base vectors.
    queries : numpy.ndarray
        (Q, d) query vectors.
    radius : float
        ``d < radius`` for "l2"/"cosine" (Euclidean, not squared); ``ip > radius`` for "ip".
    metric : {"l2", "cosine", "ip"}

    Returns
    -------
    lims : numpy.ndarray
        int64 (Q + 1,); neighbours of query ``i`` are ``indices[lims[i]:lims[i + 1]]``.
    distances : numpy.ndarray
        float32, Euclidean distances (or inner products for "ip").
    indices : numpy.ndarray
        int64, sorted ascending within each query.

    Notes
    -----
    Time O(Q * N * d); memory O(N * d + result) plus at most ~4M float64 scores per chunk.
    """
    radius = float(radius)
    if not np.isfinite(radius):
        raise ValueError(f"radius must be a finite number, got {radius!r}.")
    base, queries = _prepare(base, queries, metric)
    n_base, n_query = base.shape[0], queries.shape[0]
    base_sq = np.einsum("ij,ij->i", base, base)
    counts = np.zeros(n_query, dtype=np.int64)
    dist_parts: list[np.ndarray] = []
    index_parts: list[np.ndarray] = []
    step = _chunk_rows(n_base)
    threshold = -radius if metric == "ip" else radius * radius
    for start in range(0, n_query, step):
        scores = _scores(base, base_sq, queries[start:start + step], metric)
        rows, cols = np.nonzero(scores < threshold)  # row-major: sorted by query then index
        counts[start:start + scores.shape[0]] = np.bincount(rows, minlength=scores.shape[0])
        values = scores[rows, cols]
        dist_parts.append((-values if metric == "ip" else np.sqrt(values)).astype(np.float32))
        index_parts.append(cols.astype(np.int64))
    lims = np.zeros(n_query + 1, dtype=np.int64)
    np.cumsum(counts, out=lims[1:])
    if not index_parts:
        return lims, np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
    return lims, np.concatenate(dist_parts), np.concatenate(index_parts)
