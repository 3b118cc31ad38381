"""Seeded k-means with FAISS, used by TypiClust and by ProbCover's purity rule for delta.

Up to :data:`FULL_KMEANS_MAX_CLUSTERS` clusters, Lloyd iterations run on every row (the
``KMeans`` of the papers). Above it, each Lloyd iteration runs on a seeded random sample of
``SAMPLE_PER_CLUSTER`` rows per cluster (the scalable stand-in for mini-batch k-means that the
papers use there), and every row is then assigned to its nearest centroid exactly.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from curate.errors import InvalidInputError

__all__ = ["kmeans", "FULL_KMEANS_MAX_CLUSTERS"]

logger = logging.getLogger(__name__)

#: Above this many clusters, k-means trains on a sample (mini-batch regime).
FULL_KMEANS_MAX_CLUSTERS = 50
#: Rows per cluster used for training in the sampled regime.
SAMPLE_PER_CLUSTER = 256
#: Lloyd iterations.
N_ITER = 25
#: Rows per block when a non-float32 ``x`` (float16) is upcast for the final assignment.
ASSIGN_BLOCK_ROWS = 65_536


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    n_iter: int = N_ITER,
    sample_per_cluster: Optional[int] = None,
    n_init: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the rows of ``x`` into ``k`` clusters.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, d)`` C-contiguous float32, or float16 (then only the training sample and one
        block of rows at a time are upcast).
    k : int
        Number of clusters, ``1 <= k <= N``.
    seed : int
        Seed of the initialisation and of the training sample.
    n_iter : int
        Lloyd iterations.
    sample_per_cluster : int, optional
        Train on at most this many seeded random rows per cluster whatever ``k`` is (default:
        every row up to 50 clusters, ``SAMPLE_PER_CLUSTER`` above). ProbCover's purity rule uses
        its own value (:data:`curate.selectors.probcover.PURITY_KMEANS_SAMPLE`).
    n_init : int
        Independent seeded restarts; the run with the lowest k-means objective is kept (the
        ``n_init`` of scikit-learn's ``KMeans``). Default 1.

    Returns
    -------
    labels : numpy.ndarray
        int64 ``(N,)`` cluster of every row (nearest centroid, lowest centroid on ties).
    centroids : numpy.ndarray
        float32 ``(k, d)``.

    Notes
    -----
    Time O(n_init * n_iter * T * k * d) with ``T = N`` (k <= 50) or ``T = min(N, 256 k)`` (or
    ``min(N, sample_per_cluster * k)``) plus O(N*k*d) for the final assignment; memory
    O(N + k*d) beyond ``x`` (FAISS blocks its distance work).
    """
    import faiss

    n, d = x.shape
    if not 1 <= k <= n:
        raise InvalidInputError(f"k-means needs 1 <= k <= N; got k={k} for N={n} rows")
    if int(n_init) < 1:
        raise InvalidInputError(f"k-means needs n_init >= 1; got {n_init!r}")
    if sample_per_cluster is not None:
        if int(sample_per_cluster) < 1:
            raise InvalidInputError(f"sample_per_cluster must be >= 1; got {sample_per_cluster!r}")
        per_centroid = int(sample_per_cluster)
    elif k <= FULL_KMEANS_MAX_CLUSTERS:
        per_centroid = -(-n // k) + 1
    else:
        per_centroid = SAMPLE_PER_CLUSTER
    km = faiss.Kmeans(
        d,
        int(k),
        niter=int(n_iter),
        seed=int(seed) % (2**31 - 1),
        max_points_per_centroid=int(per_centroid),
        min_points_per_centroid=1,
        nredo=int(n_init),
        verbose=False,
    )
    if x.dtype == np.float32:
        km.train(np.ascontiguousarray(x))
    else:
        # Another dtype (a float16 pool): upcast only the training sample, never all of x.
        # FAISS would subsample to ``per_centroid * k`` rows itself; do it here, seeded.
        take = min(n, per_centroid * int(k))
        sample = x if take == n else x[np.sort(
            np.random.default_rng(int(seed)).choice(n, size=take, replace=False))]
        km.train(np.ascontiguousarray(sample, dtype=np.float32))
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    flat = faiss.IndexFlatL2(d)
    flat.add(centroids)
    if x.dtype == np.float32:
        _, assign = flat.search(np.ascontiguousarray(x), 1)
        return assign[:, 0].astype(np.int64), centroids
    labels = np.empty(n, dtype=np.int64)
    for s in range(0, n, ASSIGN_BLOCK_ROWS):  # upcast block by block: memory one block
        _, a = flat.search(np.ascontiguousarray(x[s : s + ASSIGN_BLOCK_ROWS], dtype=np.float32), 1)
        labels[s : s + ASSIGN_BLOCK_ROWS] = a[:, 0]
    return labels, centroids
