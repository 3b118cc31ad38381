"""Exact greedy k-center with cluster-level triangle-inequality pruning.

The naive greedy (:func:`curate.selectors.kcenter.greedy_kcenter`) reads every row once per pick
to update ``dist`` (squared distance of each row to its nearest center). Most of those updates
change nothing: a row far from the new center keeps its old distance. Here the rows are
partitioned once (seeded FAISS k-means on a sample, every row then assigned to its nearest
centroid ``m_k``) and every cluster keeps

- ``R_k``: the largest distance of a member to ``m_k`` (fixed), and ``nmax_k`` its largest norm;
- ``cmax_k``: the largest ``dist`` of its non-center members, ``cfirst_k`` the lowest row holding it.

A new center ``c`` can lower ``dist`` of a member ``x`` of cluster ``k`` only when
``d(x, c) < sqrt(dist[x]) <= sqrt(cmax_k)``; by the triangle inequality
``d(x, c) >= d(c, m_k) - R_k``, so clusters with ``(d(c, m_k) - R_k)^2 > cmax_k + err_k`` are
skipped. ``err_k`` bounds the rounding error of the naive kernel's float arithmetic
(``|x|^2 - 2 x.c + |c|^2`` in float32: at most ``(2d + 10) u (nmax_k + |c|)^2`` with ``u`` the
unit roundoff), so a skipped row is one whose *computed* distance could not be below its stored
``dist``: ``np.minimum`` would have left it unchanged, and the stored distances, hence every pick
and every tie, are bit-for-bit those of the naive loop. Touched clusters are updated with the
same kernel (:func:`curate.selectors._distances.sq_dist_to_point`) on their gathered rows, in row
blocks of bounded size; when more than half the rows would be touched, one contiguous pass over
all rows is cheaper and is used instead.

The pick is the largest ``cmax_k`` (ties: the lowest ``cfirst_k``), i.e. the naive
``argmax(dist)`` with its lowest-row tie rule.

Time: partition O(iter * 64 K * K * d + N K d) once; per pick O(K d) for the bounds plus
O(T d) for the ``T`` rows of touched clusters (``T = N`` in the worst case, e.g. for the first
pick without labeled rows or on data with no cluster structure). Memory O(N + K d) beyond ``x``
plus one gathered block (at most :data:`GATHER_ROWS` rows); no copy of ``x``. A float16 ``x`` (a
half-precision pool) is read as it is: the partition's k-means upcasts its training sample and
one block of rows at a time, the distances upcast each gathered block (or each
:data:`curate.selectors._distances.UPCAST_ROWS` rows of a full pass) with the same kernels, so
its picks equal those of its float32 upcast bit for bit.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import numpy as np

from curate.selectors._distances import (
    UPCAST_ROWS,
    min_sq_dist_to_set,
    sq_dist_to_point,
    squared_norms,
)

__all__ = ["pruned_greedy_kcenter", "default_n_clusters", "PrunedStats"]

logger = logging.getLogger(__name__)

#: Rows per gathered block of touched clusters (bounds the temporary copy: 32k x d floats).
GATHER_ROWS = 32768
#: Fraction of rows above which one contiguous pass is used instead of gathering.
FULL_PASS_FRACTION = 0.5
#: k-means of the partition: Lloyd iterations and training rows per cluster.
PARTITION_ITER = 10
PARTITION_SAMPLE = 64


def default_n_clusters(n: int) -> int:
    """Clusters of the partition: ``sqrt(N)``, at most ``N // 16`` (at least 1)."""
    return int(max(1, min(int(math.sqrt(n)), n // 16)))


class PrunedStats(dict):
    """Diagnostics of a pruned run: clusters, touched rows per pick, full passes."""


def _partition(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means labels (int64) and float64 centroids; only affects speed, never picks."""
    from curate.selectors._kmeans import kmeans

    # float16 goes to kmeans as it is (it upcasts its training sample and one block at a time)
    x32 = x if x.dtype in (np.float32, np.float16) else np.ascontiguousarray(x, dtype=np.float32)
    labels, centroids = kmeans(
        x32, k, seed=seed, n_iter=PARTITION_ITER, sample_per_cluster=PARTITION_SAMPLE
    )
    return labels, centroids.astype(np.float64)


def _segments_max(vals: np.ndarray, rows: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment (non-empty, starting at ``starts``) the max of ``vals`` and the lowest row of
    ``rows`` (ascending within a segment) holding it."""
    seg_max = np.maximum.reduceat(vals, starts)
    lens = np.diff(np.append(starts, vals.shape[0]))
    hit = vals == np.repeat(seg_max, lens)
    big = np.iinfo(np.int64).max
    first = np.minimum.reduceat(np.where(hit, rows, big), starts)
    return seg_max, first


def _gather_ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for each (s, l), in O(output)."""
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    return offsets + np.arange(total, dtype=np.int64)


def pruned_greedy_kcenter(
    x: np.ndarray,
    labeled: np.ndarray,
    budget: int,
    *,
    first_pick: Optional[int] = None,
    stop_sq: Optional[float] = None,
    n_clusters: Optional[int] = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, float, bool, dict[str, Any]]:
    """Greedy k-center identical to the naive numpy loop, with pruning; see the module docstring.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, d)`` C-contiguous float32 or float64 (the distances' precision), or float16 (a
        half-precision pool: float32 distances, every read upcast per block; the picks of
        ``x.astype(np.float32)`` bit for bit).
    labeled : numpy.ndarray
        Boolean mask of the initial centers.
    budget : int
        Number of picks.
    first_pick : int, optional
        First pick when no row is labeled (gain ``inf``).
    stop_sq : float, optional
        Stop once the best squared distance falls below this.
    n_clusters : int, optional
        Clusters of the partition (default :func:`default_n_clusters`).
    seed : int
        Seed of the partition's k-means (changes speed only, never the picks).

    Returns
    -------
    picks, gains, radius, stopped_early
        As :func:`curate.selectors.kcenter.greedy_kcenter`.
    stats : dict
        ``clusters``, ``touched_rows_per_pick`` (mean), ``full_passes``, ``partition_seconds``.
    """
    import time

    n, d = x.shape
    t0 = time.perf_counter()
    norms = squared_norms(x)
    dist = min_sq_dist_to_set(x, x[labeled], x_norms=norms, max_rows=UPCAST_ROWS)  # as the naive
    dist[labeled] = -1.0
    ft = dist.dtype.type
    u = float(np.finfo(dist.dtype).eps) / 2.0
    gamma = (2.0 * d + 10.0) * u + 1e-12

    k = int(n_clusters) if n_clusters is not None else default_n_clusters(n)
    k = max(1, min(k, n))
    labels, cent = _partition(x, k, seed)
    # drop empty clusters so that every segment is non-empty
    sizes = np.bincount(labels, minlength=k)
    keep = np.flatnonzero(sizes > 0)
    remap = np.full(k, -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    labels = remap[labels]
    cent = cent[keep]
    sizes = sizes[keep]
    k = int(keep.size)
    perm = np.argsort(labels, kind="stable")  # rows grouped by cluster, ascending within
    seg = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(sizes, out=seg[1:])
    # radius and largest norm per cluster, in float64, in row blocks
    radius_k = np.zeros(k, dtype=np.float64)
    nmax_k = np.zeros(k, dtype=np.float64)
    step = 8192
    for s in range(0, n, step):
        blk = x[s : s + step].astype(np.float64)
        lab = labels[s : s + step]
        np.maximum.at(nmax_k, lab, np.sqrt(np.einsum("ij,ij->i", blk, blk)))
        blk -= cent[lab]
        np.maximum.at(radius_k, lab, np.sqrt(np.einsum("ij,ij->i", blk, blk)))
    radius_k = radius_k * (1 + 1e-9) + 1e-12
    cent_norm2 = np.einsum("ij,ij->i", cent, cent)
    cmax, cfirst = _segments_max(dist[perm], perm, seg[:-1])
    partition_s = time.perf_counter() - t0

    picks: list[int] = []
    gains: list[float] = []
    stopped = False
    touched_total = 0
    full_passes = 0
    any_labeled = bool(labeled.any())
    scratch: Optional[np.ndarray] = None
    for step_i in range(budget):
        if step_i == 0 and not any_labeled:
            pick = int(first_pick)  # type: ignore[arg-type]
            gain = float("inf")
        else:
            best = cmax.max()
            tied = cmax == best
            pick = int(cfirst[tied].min())
            best = float(best)
            if stop_sq is not None and best < stop_sq:
                stopped = True
                break
            gain = float(np.sqrt(max(best, 0.0)))
        picks.append(pick)
        gains.append(gain)
        c = x[pick]
        c64 = c.astype(np.float64)
        c_norm = float(np.sqrt(c64 @ c64))
        dcm = np.sqrt(np.maximum(cent_norm2 - 2.0 * (cent @ c64) + c_norm * c_norm, 0.0))
        # direct difference where cancellation could matter (near centroids): cheap, K x d
        near = dcm < 1e-3 * (c_norm + np.sqrt(cent_norm2)) + 1e-6
        if near.any():
            diff = cent[near] - c64
            dcm[near] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        lb = np.maximum(dcm * (1 - 1e-7) - radius_k, 0.0)
        err = gamma * (nmax_k + c_norm) ** 2
        touch = (lb * lb - err <= cmax) & (cmax >= 0)
        lab_k = int(labels[pick])
        touch[lab_k] = True  # the pick's own cluster: its dist becomes -1
        tk = np.flatnonzero(touch)
        lens = seg[tk + 1] - seg[tk]
        n_touch = int(lens.sum())
        touched_total += n_touch
        if n_touch > FULL_PASS_FRACTION * n:
            full_passes += 1
            if scratch is None:
                scratch = np.empty(n, dtype=dist.dtype)
            sq_dist_to_point(x, norms, c, out=scratch)
            np.minimum(dist, scratch, out=dist)
            dist[pick] = ft(-1.0)
            cmax, cfirst = _segments_max(dist[perm], perm, seg[:-1])
            continue
        pos = _gather_ranges(seg[tk], lens)
        rows = perm[pos]
        for s in range(0, rows.size, GATHER_ROWS):
            r = rows[s : s + GATHER_ROWS]
            sd = sq_dist_to_point(x[r], norms[r], c)
            dist[r] = np.minimum(dist[r], sd)
        dist[pick] = ft(-1.0)
        starts = np.zeros(tk.size, dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        cmax[tk], cfirst[tk] = _segments_max(dist[rows], rows, starts)
    remaining = cmax[cmax >= 0]
    radius = float(np.sqrt(remaining.max())) if remaining.size else 0.0
    n_picks = max(1, len(picks))
    stats = {
        "clusters": k,
        "touched_rows_per_pick": touched_total / n_picks,
        "touched_fraction": touched_total / n_picks / n,
        "full_passes": full_passes,
        "partition_seconds": partition_s,
    }
    return (
        np.asarray(picks, dtype=np.int64),
        np.asarray(gains, dtype=np.float64),
        radius,
        stopped,
        stats,
    )
