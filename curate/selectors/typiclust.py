"""TypiClust (Hacohen et al., ICML 2022): the most typical row of each uncovered cluster.

1. Cluster all rows (labeled and unlabeled) with seeded k-means into
   ``min(n_labeled + budget, max_clusters)`` clusters (full k-means up to 50 clusters, sampled
   "mini-batch" training above, see :mod:`curate.selectors._kmeans`).
2. Drop clusters of ``min_cluster_size`` (5) rows or fewer.
3. Order clusters by labeled count ascending, then size descending (then cluster id), and visit
   them round-robin. At each visit pick the most typical remaining unlabeled row of the cluster,
   typicality being ``1 / mean distance to its k nearest neighbours`` among the cluster's remaining
   unlabeled rows, ``k = min(knn, remaining // 2)`` (the reference implementation, which also
   removes labeled and picked rows from the cluster before measuring typicality).

Typicality of a cluster is computed with a FAISS kNN inside the cluster, and recomputed only
when the cluster is visited again (its rows changed).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._kmeans import kmeans
from curate.selectors._neighbors import build_index, knn
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = ["TypiClust", "typicality", "typiclust_order", "cluster_visit_order"]

logger = logging.getLogger(__name__)

#: Added to the mean distance (reference implementation) so duplicates do not divide by zero.
_EPS = 1e-5
#: Clusters up to this size use a dense in-cluster distance block instead of a FAISS index.
_DENSE_MAX = 1448


def typicality(x: np.ndarray, k: int) -> np.ndarray:
    """``1 / (mean distance to the k nearest other rows + 1e-5)`` for every row of ``x``.

    Exact; O(n^2 d) time. Memory O(n^2) for ``n <= 1448`` (a dense block of at most 16 MiB),
    else O(n*k) with a flat FAISS index. ``k`` must be in ``[1, n-1]``.
    """
    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise InvalidInputError(f"typicality needs 1 <= k <= n-1; got k={k} for n={n}")
    if n <= _DENSE_MAX:
        # small cluster: an n x n block (at most 16 MiB) is cheaper than building an index
        x64 = x.astype(np.float64)
        sq = np.einsum("ij,ij->i", x64, x64)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (x64 @ x64.T)
        np.fill_diagonal(d2, np.inf)
        near = np.partition(d2, k - 1, axis=1)[:, :k]
        return 1.0 / (np.sqrt(np.maximum(near, 0.0)).mean(axis=1) + _EPS)
    index = build_index(x, kind="flat")
    dist, ind = knn(index, x, k + 1)
    # drop each row itself (first column unless a duplicate at distance 0 came first)
    is_self = ind == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    rest = dist[~is_self].reshape(n, k).astype(np.float64)
    return 1.0 / (rest.mean(axis=1) + _EPS)


def _float32_rows(x, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of ``x`` (array or row view) as C-contiguous float32 (exact upcast)."""
    return np.ascontiguousarray(np.asarray(x[rows], dtype=np.float32))


def cluster_visit_order(
    clusters: np.ndarray, labeled: np.ndarray, n_clusters: int, min_cluster_size: int
) -> np.ndarray:
    """Cluster ids kept (size > ``min_cluster_size``) in visiting order.

    Order: labeled count ascending, size descending, cluster id ascending.
    """
    sizes = np.bincount(clusters, minlength=n_clusters)
    lab_counts = np.bincount(clusters[labeled], minlength=n_clusters)
    ids = np.flatnonzero(sizes > min_cluster_size)
    order = np.lexsort((ids, -sizes[ids], lab_counts[ids]))
    return ids[order]


#: Rows per chunk of the neighbour selection inside one distance block of :class:`_ClusterKNN`.
_PART_ROWS = 256
#: Neighbours kept per row beyond ``knn_k`` by the incremental typicality (slack before a row's
#: list must be recomputed because picks removed its neighbours).
LIST_SLACK = 4


class _ClusterKNN:
    """Sorted nearest-neighbour lists of one cluster's remaining rows, updated as rows leave.

    Each row keeps its ``kk = knn_k + LIST_SLACK`` nearest other rows (exact, float64 distances
    ascending). Removing a row drops it from every list that holds it; a list left with fewer
    than the ``k`` valid entries typicality needs (while more rows remain) is recomputed exactly
    against the remaining rows. The first valid entries of a list are always the true nearest
    remaining rows, so typicality equals a from-scratch computation.

    The rows are not kept: ``x`` is the pool (float32, float16, or a
    :class:`curate.selectors._distances.Float32Rows` view) and ``rows`` the cluster's rows in it
    (default: all rows of ``x``); every recomputation gathers the rows it needs and upcasts them
    to float64 (exact), the same numbers in the same block shapes as a float64 copy of the
    cluster would give.

    Memory O(s * kk) (float64 distances, int32 positions) kept, plus O(s d) float64 and one
    distance block (at most 32 MiB of float64) while the lists are (re)computed; time O(s^2 d) once (in row blocks), then O(s * kk + r * s * d) per
    removal with ``r`` the lists recomputed (a handful).
    """

    def __init__(self, x, knn_k: int, rows: Optional[np.ndarray] = None) -> None:
        self.pool = x
        s = x.shape[0] if rows is None else int(rows.shape[0])
        self.rows = np.arange(s, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.alive = np.ones(s, dtype=bool)
        self.remaining = s
        self.kk = min(knn_k + LIST_SLACK, s - 1)
        self.dist = np.full((s, max(self.kk, 0)), np.inf)
        self.ind = np.full((s, max(self.kk, 0)), -1, dtype=np.int32)
        x64 = self._gather(np.arange(s))
        self.sq = np.einsum("ij,ij->i", x64, x64)
        if self.kk > 0:
            self._refresh(np.arange(s), x64)

    def _gather(self, pos: np.ndarray) -> np.ndarray:
        """float64 rows of the cluster at positions ``pos`` (exact upcast)."""
        return np.asarray(self.pool[self.rows[pos]], dtype=np.float64)

    def _refresh(self, rows: np.ndarray, x64: Optional[np.ndarray] = None) -> None:
        """Recompute the lists of ``rows`` against every remaining row (exact, blocks).

        ``x64`` is the whole cluster in float64 when the caller has it (construction)."""
        cand = np.flatnonzero(self.alive)
        kk = min(self.kk, cand.size - 1)
        step = max(1, (4 << 20) // max(1, cand.size))  # 32 MiB of float64 per block
        self.dist[rows] = np.inf
        self.ind[rows] = -1
        if kk <= 0:
            return
        xc = x64[cand] if x64 is not None else self._gather(cand)
        for s0 in range(0, rows.size, step):
            r = rows[s0 : s0 + step]
            xr = x64[r] if x64 is not None else self._gather(r)
            d2 = self.sq[r][:, None] + self.sq[cand][None, :] - 2.0 * (xr @ xc.T)
            del xr
            # not its own neighbour (cand is sorted; a refreshed row is alive, so in cand)
            at = np.minimum(np.searchsorted(cand, r), cand.size - 1)
            own = cand[at] == r
            d2[np.flatnonzero(own), at[own]] = np.inf
            # per-row selection in row chunks: no int64 index array of the whole block
            part = np.empty((r.size, kk), dtype=np.int64)
            for c0 in range(0, r.size, _PART_ROWS):
                part[c0 : c0 + _PART_ROWS] = np.argpartition(
                    d2[c0 : c0 + _PART_ROWS], kk - 1, axis=1)[:, :kk]
            dd = np.take_along_axis(d2, part, axis=1)
            del d2
            order = np.argsort(dd, axis=1, kind="stable")
            self.dist[r, :kk] = np.sqrt(np.maximum(np.take_along_axis(dd, order, axis=1), 0.0))
            self.ind[r, :kk] = cand[np.take_along_axis(part, order, axis=1)]

    def remove(self, j: int, k_next: int) -> None:
        """Drop row ``j``; make sure every remaining list holds ``k_next`` valid entries."""
        self.alive[j] = False
        self.remaining -= 1
        self.dist[j] = np.inf
        self.ind[j] = -1
        hit_r, hit_c = np.nonzero(self.ind == j)
        if hit_r.size:
            self.dist[hit_r, hit_c] = np.inf
            self.ind[hit_r, hit_c] = -1
            order = np.argsort(self.dist[hit_r], axis=1, kind="stable")
            self.dist[hit_r] = np.take_along_axis(self.dist[hit_r], order, axis=1)
            self.ind[hit_r] = np.take_along_axis(self.ind[hit_r], order, axis=1)
        if k_next >= 1:  # k_next <= (remaining - 1) // 2 < kk
            short = self.alive & ~np.isfinite(self.dist[:, k_next - 1])
            if short.any():
                self._refresh(np.flatnonzero(short))

    def typicality(self, k: int) -> np.ndarray:
        """Typicality of every row (``-inf`` for removed rows) with ``k`` neighbours."""
        t = np.full(self.alive.shape[0], -np.inf)
        rows = np.flatnonzero(self.alive)
        if k < 1:
            t[rows] = 0.0
            return t
        near = np.ascontiguousarray(self.dist[rows, :k])
        t[rows] = 1.0 / (near.mean(axis=1) + _EPS)
        return t


def typiclust_order(
    x: np.ndarray,
    clusters: np.ndarray,
    labeled: np.ndarray,
    budget: int,
    *,
    knn_k: int = 20,
    min_cluster_size: int = 5,
    incremental: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """TypiClust picks given the cluster of every row.

    Parameters
    ----------
    x : numpy.ndarray or Float32Rows
        ``(N, d)`` float32, or float16 / a :class:`curate.selectors._distances.Float32Rows` view
        (half-precision pools: a cluster's rows are gathered and upcast when it is measured,
        exactly, so the picks are those of the float32 rows).
    clusters : numpy.ndarray
        int ``(N,)`` cluster ids in ``[0, K)``.
    labeled : numpy.ndarray
        Boolean mask.
    budget : int
        Number of picks.
    knn_k : int
        Upper bound of the typicality neighbourhood.
    min_cluster_size : int
        Clusters with at most this many rows are dropped.
    incremental : bool
        Keep each cluster's neighbour lists between visits and update them as rows are picked
        (:class:`_ClusterKNN`, default) instead of recomputing the cluster's typicality at every
        visit (the reference implementation's loop). Same picks (up to float64 rounding of equal
        typicalities).

    Returns
    -------
    picks, gains : numpy.ndarray
        Rows in pick order and the typicality of each pick (0 for a lone remaining row).
    info : dict
        ``clusters_used``, ``clusters_dropped``, ``fallbacks`` (random-order picks made once
        every kept cluster was exhausted).

    Notes
    -----
    Incremental: O(sum_c s_c^2 d) once over the visited clusters plus O(s_c * (knn_k + d)) per
    pick, memory O(N * knn_k) for the lists of visited clusters (12 bytes per entry) plus
    O(s_c d) float64 for the cluster being (re)measured; no copy of the visited clusters' rows
    is kept. Per visit
    (``incremental=False``): O(sum over visits of s^2 d), memory O(N + s*knn_k). ``s_c = N / K``
    with ``K <= max_clusters`` clusters, so the per-row cost grows with ``N / K``.
    """
    n_clusters = int(clusters.max()) + 1 if clusters.size else 0
    order = cluster_visit_order(clusters, labeled, n_clusters, min_cluster_size)
    available = ~labeled
    by_cluster = np.argsort(clusters, kind="stable")  # rows grouped by cluster, ascending
    bounds = np.zeros(n_clusters + 1, dtype=np.int64)
    np.cumsum(np.bincount(clusters, minlength=n_clusters), out=bounds[1:])
    members: dict[int, np.ndarray] = {}
    cache: dict[int, np.ndarray] = {}
    lists: dict[int, _ClusterKNN] = {}
    picks: list[int] = []
    gains: list[float] = []
    active = [int(c) for c in order]
    pos = 0
    while len(picks) < budget and active:
        c = active[pos % len(active)]
        if c not in members:
            rows_c = by_cluster[bounds[c] : bounds[c + 1]]
            members[c] = rows_c[available[rows_c]]
        rows = members[c]
        if incremental:
            if c not in lists:
                if rows.size == 0:
                    active.remove(c)
                    continue
                lists[c] = _ClusterKNN(x, knn_k, rows)
            lst = lists[c]
            if lst.remaining == 0:
                active.remove(c)
                del lists[c]
                continue
            t = lst.typicality(min(knn_k, lst.remaining // 2))
            j = int(np.argmax(t))
            pick = int(rows[j])
            picks.append(pick)
            gains.append(float(t[j]))
            available[pick] = False
            lst.remove(j, min(knn_k, (lst.remaining - 1) // 2))
            pos += 1
            continue
        if rows.size == 0:
            active.remove(c)
            continue  # same position now points at the next cluster
        if c not in cache:
            k = min(knn_k, rows.size // 2)
            cache[c] = typicality(_float32_rows(x, rows), k) if k >= 1 else np.zeros(rows.size)
        t = cache[c]
        j = int(np.argmax(t))
        pick = int(rows[j])
        picks.append(pick)
        gains.append(float(t[j]))
        available[pick] = False
        members[c] = np.delete(rows, j)
        del cache[c]
        pos += 1
    fallbacks = budget - len(picks)
    if fallbacks:
        # every kept cluster is exhausted: take the rest of the pool in row order
        rest = np.flatnonzero(available)[:fallbacks]
        picks.extend(int(v) for v in rest)
        gains.extend([0.0] * rest.size)
    info = {
        "clusters_used": int(order.size),
        "clusters_dropped": int(np.count_nonzero(np.bincount(clusters, minlength=n_clusters)))
        - int(order.size),
        "fallbacks": int(fallbacks),
    }
    return np.asarray(picks, np.int64), np.asarray(gains, np.float64), info


class TypiClust(Selector):
    """TypiClust: typical rows of the largest clusters that hold the fewest labeled rows.

    Parameters
    ----------
    max_clusters : int
        Cap on the number of k-means clusters (the paper's 500).
    knn_k : int
        Typicality neighbourhood (20 in the paper), capped at half the cluster.
    min_cluster_size : int
        Clusters of this many rows or fewer are dropped (5 in the paper).
    normalize : bool
        L2-normalise the features before clustering (for cosine-trained embeddings).
    incremental : bool
        Keep and update each cluster's neighbour lists across visits (default) instead of
        recomputing its typicality at every visit; see :func:`typiclust_order`.

    Notes
    -----
    Time: k-means O(iter * T * K * d) plus O(N*K*d) for the assignment, and the in-cluster kNN
    O(sum s_c^2 d) over the visited clusters. Memory O(N*d + N*knn_k); no N x N matrix.

    Half-precision pools (:attr:`accepts_float16`): float16 ``vectors`` are read as they are,
    never as a float32 copy: the k-means upcasts its training sample (or decodes the float16
    rows block by block when it trains on every row, see :func:`curate.selectors._kmeans.kmeans`)
    and assigns one block at a time; each visited cluster's rows are gathered and upcast when
    its typicality is (re)computed; ``normalize=True`` divides gathered rows by their norms on
    the fly (:class:`curate.selectors._distances.Float32Rows`), except that a k-means over every
    row (at most 50 clusters) of normalised rows upcasts them whole. The picks and gains equal
    those of ``vectors.astype(np.float32)`` bit for bit.
    """

    name = "typiclust"
    #: float16 pools are upcast per block / per cluster (see Notes): no float32 copy of the pool.
    accepts_float16 = True

    def __init__(
        self,
        max_clusters: int = 500,
        knn_k: int = 20,
        min_cluster_size: int = 5,
        normalize: bool = False,
        incremental: bool = True,
    ) -> None:
        if int(max_clusters) < 1:
            raise InvalidInputError(f"max_clusters must be >= 1; got {max_clusters!r}")
        if int(knn_k) < 1:
            raise InvalidInputError(f"knn_k must be >= 1; got {knn_k!r}")
        if int(min_cluster_size) < 0:
            raise InvalidInputError(f"min_cluster_size must be >= 0; got {min_cluster_size!r}")
        self.max_clusters = int(max_clusters)
        self.knn_k = int(knn_k)
        self.min_cluster_size = int(min_cluster_size)
        self.normalize = bool(normalize)
        self.incremental = bool(incremental)

    def n_clusters(self, n_rows: int, n_labeled: int, budget: int) -> int:
        """``min(n_labeled + budget, max_clusters)``, at least 1 and at most ``n_rows``."""
        return max(1, min(n_labeled + budget, self.max_clusters, n_rows))

    def cluster(self, x: np.ndarray, k: int, seed: int) -> np.ndarray:
        """Seeded k-means labels of the rows of ``x`` (after the optional normalisation; float32,
        float16 or a row view, see :func:`curate.selectors._kmeans.kmeans`)."""
        return kmeans(x, k, seed=seed)[0]

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
        clusters: Optional[np.ndarray] = None,
    ) -> Selection:
        """Pick ``budget`` typical rows, round-robin over clusters; see :class:`Selector`.

        ``clusters`` (optional, keyword-only) gives precomputed cluster ids per row instead of
        running k-means.
        """
        inp = validate_inputs(vectors, budget, labeled, keep_float16=True)
        x = inp.vectors
        if self.normalize:
            from curate.selectors.probcover import normalize_rows, normalized_rows_view

            # a float16 pool is normalised lazily, per gathered block (same float32 numbers)
            x = normalized_rows_view(x) if x.dtype == np.float16 else normalize_rows(x)
        k = self.n_clusters(x.shape[0], int(inp.labeled.sum()), inp.budget)
        if clusters is None:
            clusters = self.cluster(x, k, seed)
        else:
            clusters = np.asarray(clusters)
            if clusters.shape != (x.shape[0],) or not np.issubdtype(clusters.dtype, np.integer):
                raise InvalidInputError(
                    f"clusters must be an integer array with one id per row ({x.shape[0]}); got "
                    f"dtype {clusters.dtype} and shape {clusters.shape}"
                )
            if clusters.size and clusters.min() < 0:
                raise InvalidInputError("cluster ids must be >= 0")
            clusters = clusters.astype(np.int64)
        picks, gains, info = typiclust_order(
            x,
            clusters,
            inp.labeled,
            inp.budget,
            knn_k=self.knn_k,
            min_cluster_size=self.min_cluster_size,
            incremental=self.incremental,
        )
        info["n_clusters"] = int(k)
        return Selection(indices=picks, gains=gains, info=info)
