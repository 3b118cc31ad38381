"""ProbCover (Yehuda et al., NeurIPS 2022): max coverage of delta-balls for low-budget labeling.

Features are L2-normalised. The directed delta-ball graph has an edge ``x -> y`` whenever
``d(x, y) < delta`` (self edges included). Balls of labeled rows count as covered. Each pick is the
candidate whose ball holds the most uncovered rows (lowest row on ties); covering its members
decrements the out-degree of every ball that contains them, through the reverse (CSC) adjacency,
so the whole greedy run touches every edge at most twice. Once nothing is left to cover the
remaining picks are seeded-random (``info["fallbacks"]``).

The graph is sparse (CSR, int32 columns) and is built from FAISS neighbour queries through
:class:`index.vectors.VectorIndex`; there is never an ``N x N`` matrix.

``delta="auto"`` applies the paper's purity rule (Yehuda et al. 2022, Sec. 4 "choosing delta"):
pseudo-labels from k-means with ``k`` = the number of classes (``purity_clusters``, default 10);
the ball of ``x`` is pure when every member shares ``x``'s cluster; delta is the largest radius
whose fraction of pure balls is at least ``alpha = 0.95``. Nothing here reads a label: the rule
only needs the class count.

The pseudo-labels must be a converged k-means of the quality the paper used (scikit-learn
``KMeans``: full Lloyd iterations, several restarts). On the Fashion-MNIST benchmark
(``benchmarks/al_quality.py``) a cheap k-means (10 iterations on 64 rows per cluster) gave a
noisier partition, more impure balls, delta 0.565 instead of 0.60, and a ProbCover level with
random at 10 labels; the rule is steep there (accuracy at 10 labels moved from 33% to 50% between
those two deltas). So the purity k-means runs ``purity_kmeans_iter`` = 25 Lloyd iterations on up
to ``purity_kmeans_sample`` = 1000 seeded rows per cluster (every row up to 10k rows at k = 10;
the partition was identical to a full-data k-means there) and keeps the best of
``purity_kmeans_restarts`` = 3 seeded restarts by k-means objective; every row is then assigned
to its nearest centroid. The previous default ``k = labeled + budget`` (TypiClust's clustering,
not ProbCover's) is gone: ``k`` grows the number of impure balls and shrinks delta towards the
nearest-neighbour distance, where balls hold one or two rows and coverage means nothing.

The purity rule needs ``k`` near the number of natural clusters. Drive-like embeddings have far
more (scene types, drives, runs of near-duplicates) than the 10 classes it assumes: on them it
chose delta 1.28 on unit vectors, one ball held a sixth of the pool, 149 of 200 picks were random
fallbacks after everything was covered, and the graph had 10M edges at 20k rows (quadratic).
So ``delta="auto"`` takes the smaller of the purity delta and :func:`ball_cap_delta`, the radius
at which the median ball holds ``max_ball`` rows (default 64), which also bounds the graph near
``N * max_ball`` edges. ``max_ball`` was chosen on a tuning split (drive-like pools, seed 11,
20k x 256, 1% budget) by the mean distance from every row to its nearest pick, among 8..128;
on the test split (seed 12) 64 gives 0.073 against 0.133 for the purity rule alone and 0.159 for
random, every scene type and drive hit, coverage 0.74, 1.25M edges
(``benchmarks/results/probcover_delta.json``, ``python -m benchmarks.probcover_delta``).

Purity is computed without any ``N x N`` matrix: the ball of ``x`` is pure exactly when
``delta <= r(x)`` with ``r(x)`` the distance from ``x`` to the nearest row of another cluster, so
the fraction of pure balls is ``mean(r >= delta)`` and the largest delta with purity ``>= alpha``
is read off the sorted ``r`` in one pass (or the largest value of ``delta_grid`` satisfying it).
``r`` comes from one kNN search; rows whose ``k`` neighbours all share their cluster only give a
lower bound and are resolved exactly (chunked brute force) when that bound could change the
answer. The same kNN results give the graph for every ball with fewer than ``k`` members; only
the larger balls need a range search. Above ``purity_sample`` rows (100k) the purity fraction is
measured on a seeded sample of query rows (radii still exact against all rows) and the graph comes
from one range search, so the kNN never runs over every row of a large (IVF-indexed) pool.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._csr import EdgeBudget
from curate.selectors._distances import Float32Rows, block_rows, squared_norms
from curate.selectors._graph_memory import ball_graph_budget, resolve_graph_limit
from curate.selectors._kmeans import kmeans
from curate.selectors._neighbors import (
    FLAT_MAX,
    CSRGraph,
    build_neighbors,
    gather_rows,
    is_approximate,
    knn_other_label_rows,
    knn_rows,
    nearest_other_label_rows,
    range_graph_rows,
    row_chunks,
    transpose_csr,
)
from curate.selectors._scores import get_uncertainty
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = [
    "ProbCover",
    "UncertaintyProbCover",
    "normalize_rows",
    "normalized_rows_view",
    "purity_radii",
    "delta_from_purity",
    "purity_sample_rows",
    "purity_labels",
    "ball_cap_delta",
    "build_ball_graph",
    "greedy_max_coverage",
    "approximation_loss",
]

logger = logging.getLogger(__name__)

#: Largest distance between two unit vectors; a delta above it connects everything.
_MAX_UNIT_DIST = 2.0
#: Default k of the purity k-means: the paper's "number of classes" when it is not given.
PURITY_CLUSTERS = 10
#: Lloyd iterations, training rows per cluster and restarts of the purity k-means.
PURITY_KMEANS_ITER = 25
PURITY_KMEANS_SAMPLE = 1000
PURITY_KMEANS_RESTARTS = 3
#: ``delta="auto"`` caps delta where the median ball holds this many rows (:func:`ball_cap_delta`).
MAX_BALL = 64


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise the rows of ``x`` (float32 copy; all-zero rows stay zero; a float16 ``x`` is
    upcast exactly). O(N*d)."""
    norms = np.sqrt(squared_norms(x))
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


def normalized_rows_view(x: np.ndarray) -> Float32Rows:
    """The rows of :func:`normalize_rows` without the float32 copy: a
    :class:`curate.selectors._distances.Float32Rows` view that upcasts and divides the rows it
    is indexed with (bit for bit the rows of ``normalize_rows(x)``). For float16 pools.
    O(N*d) time for the norms, O(N) memory."""
    norms = np.sqrt(squared_norms(x))
    norms[norms == 0] = 1.0
    return Float32Rows(x, norms)


def _nearest_other_label(x: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact distance from each of ``rows`` to the nearest row with a different label.

    Chunked brute force: O(len(rows)*N*d) time, O(block*N) memory. ``inf`` when no such row.
    """
    out = np.full(rows.shape[0], np.inf, dtype=np.float64)
    if rows.size == 0:
        return out
    norms = squared_norms(x)
    step = block_rows(x.shape[0])
    for s in range(0, rows.shape[0], step):
        r = rows[s : s + step]
        d2 = x[r] @ x.T
        d2 *= np.float32(-2.0)
        d2 += norms[None, :]
        d2 += norms[r][:, None]
        d2[labels[None, :] == labels[r][:, None]] = np.inf
        out[s : s + step] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def purity_radii(
    x: np.ndarray,
    labels: np.ndarray,
    nn_dist: np.ndarray,
    nn_ind: np.ndarray,
    rows: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the nearest row of another cluster, from a kNN result.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, d)`` float32 rows (used only by :func:`delta_from_purity` refinement).
    labels : numpy.ndarray
        Cluster of every row.
    nn_dist, nn_ind : numpy.ndarray
        ``(Q, k)`` kNN distances (ascending) and indices (``-1`` for missing) of the query rows.
    rows : numpy.ndarray, optional
        The ``Q`` query rows (default: all ``N`` rows in order).

    Returns
    -------
    r : numpy.ndarray
        float64 ``(Q,)``: the exact radius where a row of another cluster is among the ``k``
        neighbours, else the lower bound ``nn_dist[:, -1]``.
    exact : numpy.ndarray
        bool ``(Q,)``, which entries of ``r`` are exact.
    """
    if rows is None:
        rows = np.arange(x.shape[0])
    valid = nn_ind >= 0
    other = valid & (labels[np.where(valid, nn_ind, 0)] != labels[rows][:, None])
    has_other = other.any(axis=1)
    first = np.argmax(other, axis=1)
    r = nn_dist[np.arange(nn_ind.shape[0]), first].astype(np.float64)
    # all k neighbours share the cluster: r >= distance of the k-th neighbour (inf if the index
    # had fewer than k rows, which means there is no other row at all)
    last = np.where(valid, nn_dist, -np.inf).max(axis=1).astype(np.float64)
    full = valid.all(axis=1)
    r[~has_other] = np.where(full[~has_other], last[~has_other], np.inf)
    exact = has_other | ~full
    return r, exact


def _largest_pure_delta(r: np.ndarray, alpha: float, grid: Optional[np.ndarray]) -> float:
    """Largest delta with ``mean(r >= delta) >= alpha`` (over ``grid`` when given, else exact)."""
    n = r.shape[0]
    need = max(1, int(math.ceil(alpha * n - 1e-9)))
    if grid is None:
        return float(np.sort(r)[::-1][need - 1])
    ok = [float(g) for g in grid if np.count_nonzero(r >= g) >= need]
    return max(ok) if ok else 0.0


def delta_from_purity(
    x: np.ndarray,
    labels: np.ndarray,
    nn_dist: np.ndarray,
    nn_ind: np.ndarray,
    *,
    alpha: float = 0.95,
    grid: Optional[np.ndarray] = None,
    rows: Optional[np.ndarray] = None,
    refine: Optional[Callable[[np.ndarray], np.ndarray]] = None,
) -> tuple[float, float, int]:
    """Largest delta whose fraction of pure balls is ``>= alpha``.

    With ``rows`` (the query rows of the kNN result, a sample of all rows) the fraction is
    measured over those rows only: every radius is still exact against *all* rows, so this is
    the purity rule estimated on a sample (the quantile's rank error is ``sqrt(a(1-a)/Q)``).

    Lower bounds from the kNN are refined exactly (chunked brute force over all rows) only for
    rows whose bound is below the current answer, until no bound can change it. ``refine``
    (query row positions -> radii) replaces the brute force, e.g. with the approximate filtered
    IVF search of :func:`curate.selectors._neighbors.nearest_other_label_rows` on large pools.

    Returns
    -------
    delta : float
        The chosen delta (0 when no positive delta reaches ``alpha``).
    purity : float
        Fraction of pure balls at ``delta``.
    refined : int
        Number of rows whose radius needed the brute-force refinement.

    Notes
    -----
    O(N log N) for the sort plus O(R*N*d) for ``R`` refined rows.
    """
    r, exact = purity_radii(x, labels, nn_dist, nn_ind, rows)
    query_rows = np.arange(x.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    grid = None if grid is None else np.asarray(grid, dtype=np.float64)
    refined = 0
    while True:
        delta = _largest_pure_delta(r, alpha, grid)
        # a censored row with bound <= delta may have a larger true r (raising delta) or be the
        # row that decides it: resolve those exactly; bounds above delta cannot change it
        if grid is None:
            unsure = np.flatnonzero(~exact & (r <= delta))
        else:  # only the next grid value could still become feasible
            above = grid[grid > delta]
            nxt = float(above.min()) if above.size else -np.inf
            unsure = np.flatnonzero(~exact & (r < nxt))
        if unsure.size == 0:
            break
        if refine is None:
            r[unsure] = _nearest_other_label(x, labels, query_rows[unsure])
        else:  # never below the kNN's own bound (an approximate search may miss rows)
            r[unsure] = np.maximum(refine(query_rows[unsure]), r[unsure])
        exact[unsure] = True
        refined += int(unsure.size)
    purity = float(np.mean(r >= delta)) if delta > 0 else 0.0
    return delta, purity, refined


def purity_labels(
    xn: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    n_iter: int = PURITY_KMEANS_ITER,
    sample_per_cluster: int = PURITY_KMEANS_SAMPLE,
    n_init: int = PURITY_KMEANS_RESTARTS,
) -> tuple[np.ndarray, np.ndarray]:
    """The k-means pseudo-labels (and centroids) of the purity rule; see the module docstring.

    O(n_init * n_iter * min(N, sample_per_cluster * k) * k * d + N*k*d) time, O(N + k*d) memory.
    """
    return kmeans(
        xn, k, seed=seed, n_iter=n_iter, sample_per_cluster=sample_per_cluster, n_init=n_init
    )


def purity_sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """The sorted seeded sample of ``min(size, n)`` query rows used by ``purity_sample``."""
    rng = np.random.default_rng([int(seed), 0x9C])
    return np.sort(rng.choice(n, size=min(int(size), n), replace=False))


def ball_cap_delta(nn_dist: np.ndarray, nn_ind: np.ndarray, max_ball: int) -> float:
    """Median over the query rows of the distance to their ``max_ball``-th neighbour (self
    included): at this delta the median ball holds fewer than ``max_ball`` rows.

    ``delta="auto"`` takes the smaller of this and the purity delta. On data with many more
    natural clusters than ``purity_clusters`` (drive-like embeddings: scene types, drives, runs
    of near-duplicates), the purity rule alone picks a radius spanning several clusters (1.28 on
    unit vectors, a few balls cover everything) and a graph of O(N^2 / k) edges; the cap keeps the
    balls local and the graph at about ``N * max_ball`` edges. ``inf`` when no row has that many
    neighbours. O(Q) after the kNN.
    """
    m = int(max_ball)
    if nn_dist.ndim != 2 or nn_dist.shape[1] < m:
        return float("inf")
    col = nn_dist[:, m - 1]
    ok = (nn_ind[:, m - 1] >= 0) & np.isfinite(col)
    return float(np.median(col[ok])) if ok.any() else float("inf")


def _graph_from_knn(
    nn_dist: np.ndarray, nn_ind: np.ndarray, delta: float
) -> tuple[CSRGraph, np.ndarray]:
    """Edges ``d < delta`` from a kNN result; also the rows whose ball may exceed ``k``."""
    keep = (nn_ind >= 0) & (nn_dist < delta)
    counts = keep.sum(axis=1).astype(np.int64)
    k = nn_ind.shape[1]
    incomplete = np.flatnonzero(counts == k)
    ptr = np.zeros(nn_ind.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    cols = np.where(keep, nn_ind, np.iinfo(np.int64).max)
    cols.sort(axis=1)
    idx = cols[keep.sum(axis=1)[:, None] > np.arange(k)[None, :]].astype(np.int32)
    return CSRGraph(ptr, idx), incomplete


def _replace_rows(g: CSRGraph, rows: np.ndarray, sub: CSRGraph) -> CSRGraph:
    """Return ``g`` with the rows ``rows`` replaced by the rows of ``sub`` (same order)."""
    counts = np.diff(g.ptr)
    counts[rows] = np.diff(sub.ptr)
    ptr = np.zeros_like(g.ptr)
    np.cumsum(counts, out=ptr[1:])
    idx = np.empty(int(ptr[-1]), dtype=np.int32)
    keep_rows = np.ones(g.n, dtype=bool)
    keep_rows[rows] = False
    old_rows = np.flatnonzero(keep_rows)
    # scatter unchanged rows
    src = gather_rows(g, old_rows)
    dst = gather_rows(CSRGraph(ptr, np.arange(ptr[-1], dtype=np.int64)), old_rows)
    idx[dst] = src
    dst_new = gather_rows(CSRGraph(ptr, np.arange(ptr[-1], dtype=np.int64)), rows)
    idx[dst_new] = sub.idx
    return CSRGraph(ptr, idx)


def _ensure_self_edges(g: CSRGraph) -> CSRGraph:
    """Add ``i -> i`` where an approximate search missed it (keeps rows sorted).

    The check runs in edge chunks (O(chunk) temporaries); only rows missing their self edge are
    rebuilt.
    """
    has_self = np.zeros(g.n, dtype=bool)
    for r0, r1 in row_chunks(g):
        e0, e1 = int(g.ptr[r0]), int(g.ptr[r1])
        rows = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(g.ptr[r0 : r1 + 1]))
        has_self[rows[g.idx[e0:e1] == rows]] = True
    missing = np.flatnonzero(~has_self)
    if missing.size == 0:
        return g
    logger.debug("adding %d missing self edges", missing.size)
    lists = [np.union1d(g.idx[g.ptr[r] : g.ptr[r + 1]], [r]) for r in missing]
    ptr = np.zeros(missing.size + 1, dtype=np.int64)
    np.cumsum([v.size for v in lists], out=ptr[1:])
    sub = CSRGraph(ptr, np.concatenate(lists).astype(np.int32))
    return _replace_rows(g, missing, sub)


def build_ball_graph(
    xn: np.ndarray,
    delta: float,
    *,
    index: Any = None,
    knn_result: Optional[tuple[np.ndarray, np.ndarray]] = None,
    index_kind: str = "auto",
    nprobe: Optional[int] = None,
    seed: int = 0,
    budget: Optional[EdgeBudget] = None,
) -> CSRGraph:
    """The delta-ball graph of ``xn`` in CSR form: row ``x`` lists every ``y`` with ``d(x,y) < delta``.

    Parameters
    ----------
    xn : numpy.ndarray
        ``(N, d)`` float32 (normalised) rows.
    delta : float
        Ball radius (strict).
    index : index.vectors.VectorIndex, optional
        Index over ``xn``; built when needed and not given.
    knn_result : tuple, optional
        A kNN ``(dist, ind)`` over ``xn``; balls smaller than ``k`` are read from it and only the
        others are range-searched.
    index_kind, nprobe, seed
        Passed to :meth:`VectorIndex.build`.
    budget : EdgeBudget, optional
        Counts the edges as they are found and raises
        :class:`curate.errors.ResourceLimitError` past its ceiling
        (:func:`curate.selectors._graph_memory.ball_graph_budget`).

    Notes
    -----
    Time: one range search (FAISS, exact O(N^2 d) or approximate with ``index_kind="ivf"``).
    Memory O(N + E), E the number of edges, stored as int32.
    """
    if knn_result is not None:
        g, incomplete = _graph_from_knn(knn_result[0], knn_result[1], delta)
        if budget is not None:  # the incomplete rows' kNN edges are replaced, not kept
            budget.add(g.n_edges - int(np.diff(g.ptr)[incomplete].sum()))
        if incomplete.size:
            if index is None:
                index = build_neighbors(xn, kind=index_kind, nprobe=nprobe, seed=seed)
            sub = range_graph_rows(index, xn, delta, incomplete, budget=budget)
            g = _replace_rows(g, incomplete, sub)
    else:
        if index is None:
            index = build_neighbors(xn, kind=index_kind, nprobe=nprobe, seed=seed)
        g = range_graph_rows(index, xn, delta, budget=budget)
    return _ensure_self_edges(g)


def approximation_loss(
    xn: np.ndarray,
    graph: CSRGraph,
    covered: np.ndarray,
    centers: np.ndarray,
    delta: float,
    *,
    sample: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """Measure an approximate ball graph against exact distances on a seeded sample of rows.

    Returns ``sample_rows``, ``edge_recall`` (graph edges / exact edges over the sampled balls),
    ``coverage_graph_sample`` / ``coverage_exact_sample`` (sampled rows covered by ``centers``
    according to the graph / exactly, ``d < delta``) and ``coverage_gap`` (exact minus graph).

    O(sample * (N + len(centers)) * d) time in row blocks, O(sample * block) memory.
    """
    n = xn.shape[0]
    rng = np.random.default_rng([int(seed), 0x105])
    rows = np.sort(rng.choice(n, size=min(int(sample), n), replace=False))
    q = xn[rows]
    qn = squared_norms(q)
    d2max = np.float32(delta) * np.float32(delta)
    exact_deg = np.zeros(rows.size, dtype=np.int64)
    step = block_rows(rows.size)
    norms = squared_norms(xn)
    for s0 in range(0, n, step):
        blk = xn[s0 : s0 + step]
        d2 = q @ blk.T
        d2 *= np.float32(-2.0)
        d2 += qn[:, None]
        d2 += norms[None, s0 : s0 + step]
        exact_deg += np.count_nonzero(d2 < d2max, axis=1)
    graph_deg = graph.ptr[rows + 1] - graph.ptr[rows]
    centers = np.asarray(centers, dtype=np.int64)
    hit = np.zeros(rows.size, dtype=bool)
    if centers.size:
        c = xn[centers]
        cn = squared_norms(c)
        for s0 in range(0, centers.size, step):
            d2 = q @ c[s0 : s0 + step].T
            d2 *= np.float32(-2.0)
            d2 += qn[:, None]
            d2 += cn[None, s0 : s0 + step]
            hit |= (d2 < d2max).any(axis=1)
    cov_graph = float(covered[rows].mean()) if rows.size else 0.0
    cov_exact = float(hit.mean()) if rows.size else 0.0
    return {
        "sample_rows": int(rows.size),
        "edge_recall": float(graph_deg.sum() / max(1, int(exact_deg.sum()))),
        "coverage_graph_sample": cov_graph,
        "coverage_exact_sample": cov_exact,
        "coverage_gap": cov_exact - cov_graph,
    }


def _flat_neighbors(index_kind: str, n: int) -> bool:
    """Whether :func:`curate.selectors._neighbors.build_neighbors` builds an exact flat index."""
    return index_kind == "flat" or (index_kind == "auto" and n <= FLAT_MAX)


class _StageClock:
    """Wall seconds (``seconds``) and process CPU seconds (``cpu_seconds``) per named stage, each
    stage measured from the previous one (CPU next to wall: on a shared machine the wall clock
    mostly measures the load)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._last = time.perf_counter()
        self._last_cpu = time.process_time()

    def stage(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._last, 4)
        self.cpu_seconds[name] = round(self.cpu_seconds.get(name, 0.0) + cpu - self._last_cpu, 4)
        self._last, self._last_cpu = now, cpu
        logger.debug("stage %s done after %.2f s", name, self.seconds[name])


def _fixed_point(w: np.ndarray) -> np.ndarray:
    """Weights as int64 fixed point, so incremental sums are exact (ties stay ties).

    The scale leaves room for a sum over all rows: ``n * max < 2**62``.
    """
    n = max(w.shape[0], 1)
    top = float(w.max()) if w.size else 0.0
    if top <= 0:
        return np.zeros(w.shape[0], dtype=np.int64)
    bits = min(40, 62 - int(np.ceil(np.log2(n + 1))))
    return np.rint(w * (2.0**bits / top)).astype(np.int64)


def _int_bincount(rows: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 weighted bincount (``np.bincount`` would sum in float64)."""
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, rows, weights)
    return out


#: Rows per block of the greedy's block-maximum argmax.
_ARGMAX_BLOCK = 1024


def greedy_max_coverage(
    graph: CSRGraph,
    reverse: CSRGraph,
    labeled: np.ndarray,
    budget: int,
    *,
    weights: Optional[np.ndarray] = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Greedy max coverage over the balls of ``graph`` with incremental value updates.

    Parameters
    ----------
    graph : CSRGraph
        Ball members of every row (out-edges).
    reverse : CSRGraph
        Balls containing every row (in-edges, :func:`transpose_csr` of ``graph``).
    labeled : numpy.ndarray
        Boolean mask; labeled balls start covered and labeled rows are never picked.
    budget : int
        Number of picks (``<=`` number of unlabeled rows).
    weights : numpy.ndarray, optional
        Non-negative value of covering each row (uncertainty); default 1 (plain ProbCover).
    seed : int
        Seed of the random fallback.

    Returns
    -------
    picks : numpy.ndarray
        int64 rows in pick order.
    gains : numpy.ndarray
        float64 value newly covered by each pick (0 for fallbacks).
    covered : numpy.ndarray
        Boolean mask of covered rows after the picks.
    fallbacks : int
        Number of random picks made once no ball had any value left.

    Notes
    -----
    Time O(E + N) to initialise, then per pick O(N / 1024) for the argmax over block maxima plus
    the edges of the newly covered rows and a rescan of the blocks they touch (every edge is
    touched once over the whole run): O(E log E + budget * N / 1024) in total.
    Memory O(N) beyond the two graphs. Ball values are exact int64 (weights in fixed point with
    2**-40 relative resolution), so incremental updates equal a full recount and ties go to the
    lowest row.
    """
    n = graph.n
    w = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, np.float64)
    wq = _fixed_point(w)
    covered = np.zeros(n, dtype=bool)
    lab_rows = np.flatnonzero(labeled)
    if lab_rows.size:
        covered[gather_rows(graph, lab_rows)] = True
    value = np.zeros(n, dtype=np.int64)
    for r0, r1 in row_chunks(graph):  # O(chunk) temporaries, never O(E) int64
        e0, e1 = int(graph.ptr[r0]), int(graph.ptr[r1])
        cols = graph.idx[e0:e1]
        rows = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(graph.ptr[r0 : r1 + 1]))
        live = ~covered[cols]
        if weights is None:
            value[r0:r1] = np.bincount(rows[live] - r0, minlength=r1 - r0)
        else:
            value[r0:r1] = _int_bincount(rows[live] - r0, wq[cols[live]], r1 - r0)
    value[labeled] = -1
    # argmax through per-block maxima: O(N / B + B * dirty blocks) per pick instead of O(N);
    # padding holds -2 (below the -1 of taken rows), first block / first row on ties
    nb = max(1, -(-n // _ARGMAX_BLOCK))
    padded = np.full(nb * _ARGMAX_BLOCK, -2, dtype=np.int64)
    padded[:n] = value
    value = padded[:n]  # a view: updates below go to the blocks too
    blocks = padded.reshape(nb, _ARGMAX_BLOCK)
    bmax = blocks.max(axis=1)
    picks: list[int] = []
    gains: list[float] = []
    fallbacks = 0
    for step in range(budget):
        bi = int(np.argmax(bmax))
        p = bi * _ARGMAX_BLOCK + int(np.argmax(blocks[bi]))
        if value[p] <= 0:
            rng = np.random.default_rng(seed)
            pool = np.flatnonzero(value >= 0)
            rest = rng.choice(pool, size=budget - step, replace=False)
            picks.extend(int(v) for v in rest)
            gains.extend([0.0] * (budget - step))
            fallbacks = budget - step
            break
        members = graph.idx[graph.ptr[p] : graph.ptr[p + 1]]
        new = members[~covered[members]]
        covered[new] = True
        picks.append(p)
        gains.append(float(w[new].sum()))
        value[p] = -1
        dirty = [bi]
        if new.size:
            balls = gather_rows(reverse, new)
            if weights is None:
                np.subtract.at(value, balls, 1)
            else:
                lens = reverse.ptr[new + 1] - reverse.ptr[new]
                np.subtract.at(value, balls, np.repeat(wq[new], lens))
            dirty = np.unique(np.append(balls // _ARGMAX_BLOCK, bi))
        bmax[dirty] = blocks[dirty].max(axis=1)
    return np.asarray(picks, np.int64), np.asarray(gains, np.float64), covered, fallbacks


class ProbCover(Selector):
    """ProbCover: greedily cover the most uncovered points with delta-balls.

    Parameters
    ----------
    delta : float or "auto"
        Ball radius on L2-normalised features (strict ``d < delta``), or ``"auto"`` for the
        purity rule (see the module docstring).
    alpha : float
        Purity threshold of ``delta="auto"``.
    purity_clusters : int
        k of the k-means pseudo-labels of ``delta="auto"``: the number of classes, as in the
        paper (default 10; clipped to ``N``).
    delta_grid : sequence of float, optional
        Restrict ``delta="auto"`` to these candidates (the paper's grid); default: the exact
        largest delta.
    knn_k : int
        Neighbours per row in the kNN search of ``delta="auto"`` (default 128). It does not
        change the result (radii censored by the kNN are resolved exactly); it trades the kNN's
        O(N*k) memory against the rows needing exact refinement and the balls needing a range
        search: at 50k x 256 the purity and graph stages took 6.0 + 2.8 s at k = 32 and
        0.9 + 0.4 s at k = 128, the kNN 11.8 vs 12.9 s.
    index_kind : {"auto", "flat", "ivf"}
        Neighbour searches: ``"flat"`` is exact (FAISS); ``"ivf"`` (``"auto"`` above
        ``FLAT_MAX`` rows) is the IVF join in blocks of :mod:`curate.selectors._ivf_join`.
    nprobe : int, optional
        IVF lists probed (approximate search).
    nlist : int, optional
        IVF lists (default ``2 sqrt(N)``, :func:`curate.selectors._neighbors.selector_nlist`).
    purity_kmeans_iter, purity_kmeans_sample, purity_kmeans_restarts : int
        Lloyd iterations (25), training rows per cluster (1000) and seeded restarts (3, the best
        objective is kept) of the purity k-means; see the module docstring for why a cheaper
        k-means is not good enough.
    loss_sample : int or None
        When the graph comes from an approximate (IVF) index, this many seeded rows (default 500)
        are checked against an exact brute-force range search and the result goes to
        ``info["approximation"]``: ``edge_recall`` (edges found / exact edges of the sampled
        balls), ``coverage_graph_sample`` and ``coverage_exact_sample`` (the fraction of the
        sampled rows covered according to the graph and exactly, by the same picks) and their
        difference ``coverage_gap``; plus ``nlist`` and ``nprobe``. Cost O(loss_sample * N * d).
        ``None`` skips it.
    max_ball : int or None
        ``delta="auto"`` takes the smaller of the purity delta and the radius at which the median
        ball holds ``max_ball`` rows (:func:`ball_cap_delta`; default :data:`MAX_BALL`, clipped to
        ``knn_k``); this keeps delta meaningful when the data has far more natural clusters
        than ``purity_clusters``, and bounds the graph near ``N * max_ball`` edges. ``None``:
        the purity rule alone.
    purity_sample : int or None
        Above this many rows (default 100k) ``delta="auto"`` measures purity on a seeded sample
        of this many query rows (:func:`purity_sample_rows`; each radius still exact against all
        rows) instead of a kNN of every row, and the graph comes from one range search. ``None``
        always uses every row.
    max_graph_bytes : int, "auto" or None
        Memory the delta-ball graph may take while it is built. Before the build the edge count
        is estimated from the balls of 1000 seeded rows and priced by
        :func:`curate.selectors._graph_memory.graph_bytes` (about 28 bytes per edge); a graph
        over the limit raises :class:`curate.errors.ResourceLimitError` naming ``shards=`` (the
        default ``max_ball`` keeps the median ball near 64 rows: about ``64 N`` edges), and the
        build itself
        stops past the limit should the estimate be low. ``"auto"`` (default): 90% of the
        memory available when the selection starts. ``None``: no check.

    Notes
    -----
    ``info``: ``delta``, ``coverage`` (fraction of all rows covered after the picks),
    ``initial_coverage``, ``fallbacks``, ``graph_edges``, ``mean_degree``; with
    ``delta="auto"`` also ``purity``, ``purity_clusters``, ``purity_refined``, when sampled
    ``purity_sample``, and ``purity_radii="ivf"`` when the radii came from the approximate
    filtered IVF search (IVF index, large pools); ``seconds``: wall time per stage (kmeans,
    index, knn, purity, graph, greedy).

    Time: one FAISS kNN (auto delta) or range search, O(N^2 d) exact or sub-quadratic with IVF;
    k-means O(iter*min(N, 64 k)*k*d + N*k*d); greedy O(E + budget*N). Memory
    O(N*d + E + N*knn_k); no N x N matrix.

    Half-precision pools (:attr:`accepts_float16`): float16 ``vectors`` are taken as they are.
    With the IVF join (``index_kind="ivf"``, or ``"auto"`` above ``FLAT_MAX`` rows) the
    normalised rows are never materialised: :func:`normalized_rows_view` upcasts and divides the
    rows each block gathers (the purity k-means its training sample and one block at a time, the
    join its lists and candidates, the loss check its sample and row blocks), so the pool is held
    once, in float16. The exact flat index (``"flat"``, or ``"auto"`` up to ``FLAT_MAX`` rows)
    needs the float32 normalised rows, as FAISS keeps its own float32 copy anyway: there the
    float16 pool is normalised into one float32 copy. Either way picks, gains and ``info``
    equal those of ``vectors.astype(np.float32)`` bit for bit.
    """

    name = "probcover"
    _weighted = False
    #: float16 pools are normalised per gathered block on the IVF path (see Notes).
    accepts_float16 = True

    def __init__(
        self,
        delta: Union[float, str] = "auto",
        alpha: float = 0.95,
        purity_clusters: int = PURITY_CLUSTERS,
        delta_grid: Optional[Sequence[float]] = None,
        knn_k: int = 128,
        index_kind: str = "auto",
        nprobe: Optional[int] = None,
        nlist: Optional[int] = None,
        purity_kmeans_iter: int = PURITY_KMEANS_ITER,
        purity_kmeans_sample: int = PURITY_KMEANS_SAMPLE,
        purity_kmeans_restarts: int = PURITY_KMEANS_RESTARTS,
        purity_sample: Optional[int] = 100_000,
        loss_sample: Optional[int] = 500,
        max_ball: Optional[int] = MAX_BALL,
        max_graph_bytes: Union[int, str, None] = "auto",
    ) -> None:
        if isinstance(delta, str):
            if delta != "auto":
                raise InvalidInputError(f"delta must be a positive number or 'auto'; got {delta!r}")
        elif not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
            raise InvalidInputError(f"delta must be a positive number or 'auto'; got {delta!r}")
        if not 0.0 < float(alpha) <= 1.0:
            raise InvalidInputError(f"alpha must lie in (0, 1]; got {alpha!r}")
        if int(purity_clusters) < 2:
            raise InvalidInputError(f"purity_clusters must be >= 2; got {purity_clusters!r}")
        if int(knn_k) < 2:
            raise InvalidInputError(f"knn_k must be >= 2; got {knn_k!r}")
        self.delta = delta if isinstance(delta, str) else float(delta)
        self.alpha = float(alpha)
        self.purity_clusters = int(purity_clusters)
        self.delta_grid = None if delta_grid is None else [float(v) for v in delta_grid]
        self.knn_k = int(knn_k)
        self.index_kind = index_kind
        self.nprobe = None if nprobe is None else int(nprobe)
        self.nlist = None if nlist is None else int(nlist)
        if min(int(purity_kmeans_iter), int(purity_kmeans_sample), int(purity_kmeans_restarts)) < 1:
            raise InvalidInputError(
                "purity_kmeans_iter, purity_kmeans_sample and purity_kmeans_restarts must be "
                f">= 1; got {purity_kmeans_iter!r}, {purity_kmeans_sample!r}, "
                f"{purity_kmeans_restarts!r}"
            )
        self.purity_kmeans_iter = int(purity_kmeans_iter)
        self.purity_kmeans_sample = int(purity_kmeans_sample)
        self.purity_kmeans_restarts = int(purity_kmeans_restarts)
        if purity_sample is not None and int(purity_sample) < 1:
            raise InvalidInputError(f"purity_sample must be >= 1 or None; got {purity_sample!r}")
        self.purity_sample = None if purity_sample is None else int(purity_sample)
        if loss_sample is not None and int(loss_sample) < 1:
            raise InvalidInputError(f"loss_sample must be >= 1 or None; got {loss_sample!r}")
        self.loss_sample = None if loss_sample is None else int(loss_sample)
        if max_ball is not None and int(max_ball) < 2:
            raise InvalidInputError(f"max_ball must be >= 2 or None; got {max_ball!r}")
        self.max_ball = None if max_ball is None else int(max_ball)
        if max_graph_bytes != "auto":
            resolve_graph_limit(max_graph_bytes)  # validates; "auto" is read at select time
        self.max_graph_bytes = max_graph_bytes

    def _weights(self, scores: ScoresLike, n: int) -> Optional[np.ndarray]:
        return None

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` rows by greedy delta-ball coverage; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled, keep_float16=True)
        weights = self._weights(scores, inp.vectors.shape[0])
        n = inp.vectors.shape[0]
        if inp.vectors.dtype == np.float16 and not _flat_neighbors(self.index_kind, n):
            # the IVF join gathers rows per block: normalise them on the fly, no float32 copy
            xn = normalized_rows_view(inp.vectors)
        else:
            xn = normalize_rows(inp.vectors)
        info: dict[str, Any] = {}
        clock = _StageClock()
        index = None
        knn_result = None
        if self.delta == "auto":
            k_clusters = min(self.purity_clusters, n)
            labels, _ = purity_labels(
                xn,
                k_clusters,
                seed=seed,
                n_iter=self.purity_kmeans_iter,
                sample_per_cluster=self.purity_kmeans_sample,
                n_init=self.purity_kmeans_restarts,
            )
            clock.stage("kmeans")
            index = build_neighbors(
                xn, kind=self.index_kind, nprobe=self.nprobe, nlist=self.nlist, seed=seed
            )
            clock.stage("index")
            grid = None if self.delta_grid is None else np.asarray(self.delta_grid)
            if self.purity_sample is not None and n > self.purity_sample:
                # purity estimated on a seeded sample of query rows (radii exact against all
                # rows); the graph then comes from one range search over every row
                qrows = purity_sample_rows(n, self.purity_sample, seed)
                info["purity_sample"] = int(qrows.size)
            else:
                qrows = None
            # an IVF join also returns each query's nearest other-label distance (same GEMMs)
            qd, qi, other = knn_other_label_rows(index, xn, min(self.knn_k, n), labels, qrows)
            query_knn = (qd, qi)
            if qrows is None:
                knn_result = query_knn
            clock.stage("knn")
            refine = None
            if other is not None:  # IVF join: approximate radii, computed with the kNN
                at = np.full(n, -1, dtype=np.int64)
                at[np.arange(n) if qrows is None else qrows] = np.arange(other.shape[0])

                def refine(rows: np.ndarray) -> np.ndarray:
                    return other[at[rows]]

                info["purity_radii"] = "ivf"
            elif is_approximate(index):  # FAISS IVF index: filtered search per unsure row

                def refine(rows: np.ndarray) -> np.ndarray:
                    return nearest_other_label_rows(index, xn, rows, labels)

                info["purity_radii"] = "ivf"
            delta, purity, refined = delta_from_purity(
                xn, labels, query_knn[0], query_knn[1], alpha=self.alpha, grid=grid, rows=qrows,
                refine=refine,
            )
            clock.stage("purity")
            if not np.isfinite(delta):
                delta = _MAX_UNIT_DIST * (1 + 1e-6)
            if delta <= 0:
                positive = query_knn[0][query_knn[0] > 0]
                delta = float(positive.min()) if positive.size else _MAX_UNIT_DIST * (1 + 1e-6)
                logger.warning(
                    "no positive delta reaches purity %.2f (many duplicate rows across "
                    "clusters); using the smallest neighbour distance %.4g",
                    self.alpha,
                    delta,
                )
            info.update(
                purity=purity, purity_clusters=k_clusters, purity_refined=refined
            )
            if self.max_ball is not None:
                cap = ball_cap_delta(query_knn[0], query_knn[1], min(self.max_ball, self.knn_k, n))
                info.update(delta_purity=float(delta), delta_ball_cap=cap,
                            delta_rule="purity")
                if 0 < cap < delta:
                    delta = cap
                    info["delta_rule"] = f"ball cap (median ball < {self.max_ball} rows)"
        else:
            delta = float(self.delta)
        if index is None:
            index = build_neighbors(
                xn, kind=self.index_kind, nprobe=self.nprobe, nlist=self.nlist, seed=seed
            )
            clock.stage("index")
        knobs = (f", or a smaller delta (now {delta:.4g})" if self.delta != "auto"
                 else f", or a smaller max_ball (now {self.max_ball})" if self.max_ball else "")
        budget = ball_graph_budget(
            lambda rows, b: range_graph_rows(index, xn, delta, rows, budget=b),
            n, delta, resolve_graph_limit(self.max_graph_bytes), who=self.name, seed=seed,
            knobs=knobs,
        )
        graph = build_ball_graph(
            xn,
            delta,
            index=index,
            knn_result=knn_result,
            index_kind=self.index_kind,
            nprobe=self.nprobe,
            seed=seed,
            budget=budget,
        )
        reverse = transpose_csr(graph, n)
        clock.stage("graph")
        initial = np.zeros(n, dtype=bool)
        lab_rows = np.flatnonzero(inp.labeled)
        if lab_rows.size:
            initial[gather_rows(graph, lab_rows)] = True
        picks, gains, covered, fallbacks = greedy_max_coverage(
            graph, reverse, inp.labeled, inp.budget, weights=weights, seed=seed
        )
        info.update(
            delta=float(delta),
            coverage=float(covered.mean()),
            initial_coverage=float(initial.mean()),
            fallbacks=int(fallbacks),
            graph_edges=graph.n_edges,
            mean_degree=graph.n_edges / n,
        )
        clock.stage("greedy")
        if is_approximate(index) and self.loss_sample is not None:
            info["approximation"] = approximation_loss(
                xn, graph, covered, np.concatenate([lab_rows, picks]), delta,
                sample=self.loss_sample, seed=seed,
            )
            info["approximation"].update(index="ivf", nlist=int(index.nlist),
                                         nprobe=int(index.nprobe),
                                         method=getattr(index, "method", "ivf-per-query"))
            clock.stage("loss")
        info["seconds"] = clock.seconds
        info["cpu_seconds"] = clock.cpu_seconds
        logger.info("%s on %d rows: stage seconds %s (cpu %s)", self.name, n, clock.seconds,
                    clock.cpu_seconds)
        if fallbacks:
            logger.info("%s: %d random fallback picks (everything covered)", self.name, fallbacks)
        return Selection(indices=picks, gains=gains, info=info)


class UncertaintyProbCover(ProbCover):
    """Uncertainty-weighted ProbCover: a ball is worth the summed uncertainty of its uncovered rows.

    Same graph, purity rule and incremental updates as :class:`ProbCover`; the per-pick gain is
    the uncertainty newly covered. Random fallback once no ball holds uncertainty.

    Parameters
    ----------
    score : str, optional
        Score column (when ``scores`` is a mapping); values must be non-negative.
    **kwargs
        The parameters of :class:`ProbCover`.
    """

    name = "probcover_weighted"
    needs_scores = True
    _weighted = True

    def __init__(self, score: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.score = score

    def _weights(self, scores: ScoresLike, n: int) -> Optional[np.ndarray]:
        return get_uncertainty(scores, self.score, n, who=self.name)
