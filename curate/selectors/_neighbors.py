"""Neighbour queries for the selectors, through :class:`index.vectors.VectorIndex`.

Selectors never build an ``N x N`` matrix: kNN and range (delta-ball) queries go through the
FAISS-backed vector index, processed in query blocks so that the raw FAISS results of one block
stay small, and range results are packed into a compact CSR graph (int64 row pointers, int32
columns).
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._csr import (
    EDGE_CHUNK,
    CSRGraph,
    EdgeBudget,
    gather_rows,
    row_chunks,
    transpose_csr,
)
from curate.selectors._ivf_join import IVFJoin

__all__ = [
    "CSRGraph",
    "build_index",
    "build_neighbors",
    "is_approximate",
    "knn_rows",
    "knn_other_label_rows",
    "range_graph_rows",
    "knn",
    "nearest_other_label_ivf",
    "range_graph",
    "transpose_csr",
    "gather_rows",
    "row_chunks",
    "EDGE_CHUNK",
]

logger = logging.getLogger(__name__)

#: Queries per block of range / kNN search.
QUERY_BLOCK = 16384
#: Rows above which ``kind="auto"`` builds an IVF index. An exact (flat) index makes every
#: neighbour query O(N d); at 50k x 256 the IVF graph (selector defaults) lost 0.00 coverage
#: points against the exact one at 2.5x less time (results/probcover-ivf-vs-exact-50k.json), and a
#: flat ProbCover at 100k x 256 did not finish in 1500 s under load 17 (results/scale-100000.json).
FLAT_MAX = 50_000
#: IVF training rows per list and k-means iterations of :func:`build_index`.
IVF_TRAIN_PER_LIST = 64
IVF_TRAIN_ITER = 10
#: Selector IVF defaults: ``nlist = 2 sqrt(N)`` lists and a fixed ``nprobe``, so a query scans
#: ``nlist * d`` centroid coordinates plus about ``nprobe * N / nlist = 4 sqrt(N)`` rows: per-row
#: cost O(sqrt(N) d) instead of the O(N d / 8) of the index package's ``nprobe = nlist / 8``.
SELECTOR_NLIST_PER_SQRT_N = 2.0
SELECTOR_NPROBE = 8
#: The IVF join (:func:`build_neighbors`) joins a list with its nearest probe lists only while
#: their rows fit ``SELECTOR_CANDIDATE_CAP * nprobe * N / nlist`` (the list itself always): k-means
#: lists over runs of near-duplicates are uneven (1M drive-like rows, 2000 lists: 34 to 6800 rows,
#: 10.5k candidates per row instead of 4000), and a few oversized lists dominated the cost. A cap
#: of 1x cost recall on 200k Gaussian clusters (kNN recall 0.987 -> 0.863) while saving 35% on
#: drive-like rows at equal recall (tuning pools, seeds 0/1, not the reported ones); 2x only
#: trims the oversized lists.
SELECTOR_CANDIDATE_CAP = 2.0


def selector_nlist(n: int) -> int:
    """IVF lists of the selectors' index: ``2 sqrt(N)``, at least 1, at most ``N // 39``."""
    return int(max(1, min(int(round(SELECTOR_NLIST_PER_SQRT_N * math.sqrt(n))), n // 39)))


def build_index(
    x: np.ndarray,
    *,
    kind: str = "auto",
    nprobe: Optional[int] = None,
    nlist: Optional[int] = None,
    seed: int = 0,
):
    """Build an L2 :class:`index.vectors.VectorIndex` over ``x`` (float32, C-contiguous).

    Flat (exact) up to :data:`FLAT_MAX` rows with ``kind="auto"``. IVF defaults:
    :func:`selector_nlist` lists and :data:`SELECTOR_NPROBE` probes (cost per query
    O(sqrt(N) d), see :data:`SELECTOR_NPROBE`). IVF-Flat indexes are trained
    here on a seeded sample of :data:`IVF_TRAIN_PER_LIST` (64) rows per list rather than the
    index package's 256: the training k-means costs ``O(iter * 64 * nlist^2 * d)``, which at
    1M x 256 with 2048 lists is 1.4 TFLOP instead of 5.5 (minutes on two cores) for lists that
    only steer an approximate search. The raw FAISS index is kept as ``index.faiss_index`` for
    filtered searches (:func:`nearest_other_label_ivf`).
    """
    from index.vectors import VectorIndex

    n, d = x.shape
    if kind == "flat" or (kind == "auto" and n <= FLAT_MAX):
        return VectorIndex.build(x, metric="l2", kind="flat", seed=seed)
    if kind not in ("auto", "ivf"):
        raise InvalidInputError(f"index_kind must be 'auto', 'flat' or 'ivf'; got {kind!r}")
    import faiss

    nlist = min(selector_nlist(n) if nlist is None else int(nlist), n)
    n_train = min(n, IVF_TRAIN_PER_LIST * nlist)
    rng = np.random.default_rng([int(seed), 0x1F])
    train = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
    quantizer = faiss.IndexFlatL2(d)
    raw = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
    raw.cp.seed = int(seed) % (2**31 - 1)
    raw.cp.niter = IVF_TRAIN_ITER
    raw.cp.min_points_per_centroid = 1
    raw.train(np.ascontiguousarray(x[train]))
    raw.add(np.ascontiguousarray(x))
    raw.nprobe = min(nlist, SELECTOR_NPROBE if nprobe is None else int(nprobe))
    index = VectorIndex(cpu_index=raw, metric="l2", kind="ivf", dim=d, ids=None, use_gpu=False,
                        nlist=nlist)
    index.faiss_index = raw
    index.nprobe = raw.nprobe
    logger.info("IVF index over %d x %d rows: nlist %d, nprobe %d, trained on %d rows",
                n, d, nlist, raw.nprobe, n_train)
    return index


def build_neighbors(
    x: np.ndarray,
    *,
    kind: str = "auto",
    nprobe: Optional[int] = None,
    nlist: Optional[int] = None,
    seed: int = 0,
):
    """Neighbour structure for all-rows queries over ``x`` (the selectors' self-joins).

    Exact (a flat :class:`index.vectors.VectorIndex`) with ``kind="flat"`` or up to
    :data:`FLAT_MAX` rows with ``kind="auto"``; otherwise an
    :class:`curate.selectors._ivf_join.IVFJoin` with :func:`selector_nlist` lists and
    :data:`SELECTOR_NPROBE` probes (or ``nlist`` / ``nprobe``), trained like :func:`build_index`
    (:data:`IVF_TRAIN_PER_LIST` rows per list, :data:`IVF_TRAIN_ITER` iterations). The join
    answers every row's query with one GEMM per list instead of one IVF scan per row: the same
    O(N * nprobe * N / nlist * d) flops at BLAS speed (at 100k x 256: 4.8 s of CPU for a
    64-NN of every row, against 14 s for a per-query IVF search of a fifth of them), with a
    recall measured by :func:`curate.selectors._ivf_join.knn_recall`. Query through
    :func:`knn_rows`, :func:`range_graph_rows` and :func:`nearest_other_label_rows`.
    """
    n = x.shape[0]
    if kind == "flat" or (kind == "auto" and n <= FLAT_MAX):
        return build_index(x, kind="flat", seed=seed)
    if kind not in ("auto", "ivf"):
        raise InvalidInputError(f"index_kind must be 'auto', 'flat' or 'ivf'; got {kind!r}")
    nlist = min(selector_nlist(n) if nlist is None else int(nlist), n)
    nprobe = SELECTOR_NPROBE if nprobe is None else int(nprobe)
    cap = int(math.ceil(SELECTOR_CANDIDATE_CAP * min(nprobe, nlist) * math.ceil(n / nlist)))
    return IVFJoin.build(x, nlist=nlist, nprobe=nprobe, seed=seed,
                         train_per_list=IVF_TRAIN_PER_LIST, niter=IVF_TRAIN_ITER,
                         max_candidates=cap)


def is_approximate(index) -> bool:
    """True for an approximate neighbour structure (IVF join or FAISS IVF index)."""
    return isinstance(index, IVFJoin) or getattr(index, "faiss_index", None) is not None


def knn_rows(index, x: np.ndarray, k: int, rows: Optional[np.ndarray] = None):
    """k nearest neighbours of the rows ``rows`` of ``x`` (all rows by default) among all rows.

    ``index`` is what :func:`build_neighbors` (or :func:`build_index`) returned over ``x``.
    Returns float32 ``(Q, k)`` Euclidean distances and int64 ``(Q, k)`` indices, like :func:`knn`.
    """
    if isinstance(index, IVFJoin):
        return index.knn(k, rows)
    return knn(index, x if rows is None else x[rows], k)


def knn_other_label_rows(index, x: np.ndarray, k: int, labels: np.ndarray,
                         rows: Optional[np.ndarray] = None):
    """:func:`knn_rows` plus, for an IVF join, each query's distance to the nearest row of another
    label from the same blocks (one GEMM for both); ``None`` in its place for other indexes."""
    if isinstance(index, IVFJoin):
        return index.knn_other_label(k, labels, rows)
    dist, ind = knn_rows(index, x, k, rows)
    return dist, ind, None


def range_graph_rows(index, x: np.ndarray, radius: float,
                     rows: Optional[np.ndarray] = None, *,
                     budget: Optional[EdgeBudget] = None) -> "CSRGraph":
    """Delta-ball graph of the rows ``rows`` of ``x`` (all by default); see :func:`range_graph`.
    ``budget`` counts the edges found and stops the build past its ceiling."""
    if isinstance(index, IVFJoin):
        return index.range_graph(radius, rows, budget=budget)
    return range_graph(index, x if rows is None else x[rows], radius, budget=budget)


def nearest_other_label_rows(index, x: np.ndarray, rows: np.ndarray,
                             labels: np.ndarray) -> np.ndarray:
    """Approximate distance from each of ``rows`` to the nearest row of another label.

    Through the IVF join's label-masked block minimum, or :func:`nearest_other_label_ivf` for a
    FAISS IVF index. ``inf`` where the probed lists hold no other label.
    """
    if isinstance(index, IVFJoin):
        return index.nearest_other_label(rows, labels)
    return nearest_other_label_ivf(index, x[rows], labels[rows], labels)


def nearest_other_label_ivf(
    index, queries: np.ndarray, qlabels: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Approximate distance from each query to the nearest indexed row of another label.

    One filtered FAISS search (k=1) per label present among the queries: the IVF index of
    :func:`build_index` scans its ``nprobe`` nearest lists and skips rows of the query's own label
    (``IDSelectorBitmap``). Rows whose probed lists hold no other label get ``inf`` (an
    over-estimate; such rows lie deep inside their cluster). O(Q * nprobe * N / nlist * d) time,
    O(N / 8) memory for the bitmap.
    """
    import faiss

    raw = index.faiss_index
    n = labels.shape[0]
    out = np.full(queries.shape[0], np.inf, dtype=np.float64)
    for lab in np.unique(qlabels):
        sel_rows = np.flatnonzero(qlabels == lab)
        bits = np.packbits((labels != lab).astype(np.uint8), bitorder="little")
        selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
        params = faiss.SearchParametersIVF(sel=selector, nprobe=int(raw.nprobe))
        for s in range(0, sel_rows.size, QUERY_BLOCK):
            rows = sel_rows[s : s + QUERY_BLOCK]
            d2, ind = raw.search(np.ascontiguousarray(queries[rows]), 1, params=params)
            ok = ind[:, 0] >= 0
            out[rows[ok]] = np.sqrt(np.maximum(d2[ok, 0].astype(np.float64), 0.0))
    return out


def knn(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (Euclidean, not squared) of ``queries``, in query blocks.

    Returns float32 ``(q, k)`` distances and int64 ``(q, k)`` indices (``-1`` where the index
    has fewer than ``k`` rows reachable). O(q*k) memory.
    """
    q = queries.shape[0]
    dist = np.empty((q, k), dtype=np.float32)
    ind = np.empty((q, k), dtype=np.int64)
    for s in range(0, q, QUERY_BLOCK):
        d, i = index.search(queries[s : s + QUERY_BLOCK], k)
        dist[s : s + QUERY_BLOCK] = d
        ind[s : s + QUERY_BLOCK] = i
    return dist, ind


def range_graph(index, queries: np.ndarray, radius: float, *,
                budget: Optional[EdgeBudget] = None) -> CSRGraph:
    """Delta-ball graph: row ``i`` lists every indexed row ``j`` with ``d(q_i, x_j) < radius``.

    Parameters
    ----------
    index : index.vectors.VectorIndex
        Index over the ``N`` rows (exact or approximate).
    queries : numpy.ndarray
        ``(q, d)`` float32.
    radius : float
        Euclidean (not squared) radius, strict inequality.
    budget : EdgeBudget, optional
        Counts the edges block by block and raises past its ceiling (before the CSR is
        assembled).

    Returns
    -------
    CSRGraph
        ``q`` rows; columns sorted ascending within a row.

    Notes
    -----
    Memory O(q + E) with int32 columns; FAISS results are converted block by block.
    """
    if not np.isfinite(radius) or radius <= 0:
        raise InvalidInputError(f"range radius must be a positive finite number; got {radius!r}")
    q = queries.shape[0]
    counts = np.zeros(q, dtype=np.int64)
    parts: list[np.ndarray] = []
    for s in range(0, q, QUERY_BLOCK):
        lims, _dist, ind = index.range_search(queries[s : s + QUERY_BLOCK], float(radius))
        lims = np.asarray(lims, dtype=np.int64)
        ind = np.asarray(ind)
        nq = lims.shape[0] - 1
        counts[s : s + nq] = np.diff(lims)
        if budget is not None:
            budget.add(int(lims[-1]))
        # VectorIndex.range_search returns indices ascending within each query
        parts.append(ind.astype(np.int32))
    ptr = np.zeros(q + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    # assemble part by part, freeing each: peak ~ one copy of the edges plus one block
    idx = np.empty(int(ptr[-1]), dtype=np.int32)
    at = 0
    parts.reverse()
    while parts:
        part = parts.pop()
        idx[at : at + part.size] = part
        at += part.size
        del part
    return CSRGraph(ptr, idx)
