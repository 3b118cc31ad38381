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
#: A float16 pool (or a :class:`curate.selectors._distances.Float32Rows` view) whose k-means
#: trains on every row is upcast whole up to this many float32 bytes; above it FAISS trains on
#: the float16 codes, decoding one block at a time (see :func:`kmeans`).
FULL_UPCAST_BYTES = 32 * 1024 * 1024
#: Target float32 bytes of one decoded / upcast block of a float16 pool.
BLOCK_BYTES = 8 * 1024 * 1024


def search_block_rows(n: int, d: int, target_bytes: Optional[int] = None) -> int:
    """Rows per block for FAISS flat searches of the rows of a float16 pool, upcast per block,
    that give every row the result of one search over all ``n`` rows.

    FAISS's flat L2 search computes distances with BLAS in query blocks of
    ``faiss.cvar.distance_compute_blas_query_bs`` (4096) rows, and switches to a SIMD loop when a
    call has fewer than ``distance_compute_blas_threshold / d`` rows. A block size that is a
    multiple of the query block keeps the same BLAS blocks; it is chosen (about ``target_bytes``
    of float32) so that the last block is either empty or long enough for BLAS as well. Returns
    ``n`` (one block) for small ``n``.
    """
    import faiss

    target_bytes = BLOCK_BYTES if target_bytes is None else int(target_bytes)
    qbs = max(1, int(faiss.cvar.distance_compute_blas_query_bs))
    thr = int(faiss.cvar.distance_compute_blas_threshold)
    min_rows = max(qbs, -(-thr // max(1, d)), 64)
    m0 = max(1, -(-min_rows // qbs), int(target_bytes // (4 * max(1, d) * qbs)))
    for m in range(m0, m0 + 64):
        b = m * qbs
        if n <= b:
            return n
        if n % b == 0 or n % b >= min_rows:
            return b
    return n  # pragma: no cover - some m in 64 consecutive values leaves a long tail


def _faiss_subsample(n: int, take: int, seed: int) -> np.ndarray:
    """The rows FAISS's k-means trains on when it subsamples ``n`` rows to ``take``: the first
    ``take`` entries of ``faiss.rand_perm(n, seed)``, in that order (``Clustering::train`` with
    the default ``use_faster_subsampling = False``). O(N) time and int32 memory."""
    import faiss

    perm = np.empty(n, dtype=np.int32)
    faiss.rand_perm(faiss.swig_ptr(perm), n, int(seed))
    return perm[:take].astype(np.int64)


def _rows32(x, rows) -> np.ndarray:
    """Rows of ``x`` (an array or a row view) as C-contiguous float32 (exact upcast)."""
    return np.ascontiguousarray(np.asarray(x[rows], dtype=np.float32))


def _train_encoded_fp16(x16: np.ndarray, k: int, cp) -> np.ndarray:
    """FAISS k-means over every row of the float16 array ``x16`` without a float32 copy.

    The rows are handed to ``Clustering::train_encoded`` as float16 codes of a ``QT_fp16``
    scalar quantizer (its decoder is the exact float16 -> float32 conversion) and decoded
    :func:`search_block_rows` rows at a time; the assignment searches then use the BLAS blocks
    of one search over all rows, the centroid sums read the decoded rows in row order, and the
    seeded initialisation draws the same rows: the centroids equal those of ``km.train`` on the
    float32 upcast. Memory: one decoded block plus O(N) assignments.
    """
    import faiss

    n, d = x16.shape
    clus = faiss.Clustering(d, int(k), cp)
    clus.decode_block_size = int(search_block_rows(n, d))
    codec = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16)
    index = faiss.IndexFlatL2(d)
    clus.train_encoded(np.ascontiguousarray(x16).view(np.uint8), codec, index)
    return faiss.vector_float_to_array(clus.centroids).reshape(int(k), d)


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
    x : numpy.ndarray or Float32Rows
        ``(N, d)`` C-contiguous float32; or float16, or a
        :class:`curate.selectors._distances.Float32Rows` view (e.g. lazily normalised float16
        rows): then only the training sample and one block of rows at a time are upcast, and the
        result equals that of the float32 rows bit for bit (see Notes).
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
    O(N + k*d) beyond ``x`` (FAISS blocks its distance work) plus, for float32, FAISS's copy of
    a subsampled training set (``T`` rows).

    Half-precision rows (float16 or a ``Float32Rows`` view) give the labels and centroids of
    their float32 rows bit for bit, without a float32 copy of all rows:

    - training on a sample (``N > T``): the sample is the one FAISS draws
      (:func:`_faiss_subsample`, ``rand_perm`` with the same seed, same order), upcast (``T``
      rows of float32), so FAISS trains on the same numbers;
    - training on every row: a float16 array above :data:`FULL_UPCAST_BYTES` trains on its
      float16 codes (:func:`_train_encoded_fp16`, one decoded block at a time); smaller inputs,
      and a ``Float32Rows`` view with divisors (its rows are not float16 numbers), are upcast
      whole: ``N x d`` float32, the one case with a full float32 copy (ProbCover's purity k-means
      trains on every row only up to ``purity_kmeans_sample * k`` rows, 10k by default);
    - the final assignment searches :func:`search_block_rows` rows at a time (FAISS's BLAS
      query blocks of a single search).
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
    raw32 = isinstance(x, np.ndarray) and x.dtype == np.float32
    if raw32:
        km.train(np.ascontiguousarray(x))
    else:
        # FAISS subsamples when n > k * max_points_per_centroid: draw its sample here, same seed
        take = int(k) * int(per_centroid)
        if n > take:
            km.train(_rows32(x, _faiss_subsample(n, take, km.cp.seed)))
        elif isinstance(x, np.ndarray) and x.dtype == np.float16 and n * d * 4 > FULL_UPCAST_BYTES:
            km.centroids = _train_encoded_fp16(x, int(k), km.cp)
        else:
            km.train(_rows32(x, slice(0, n)))
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    flat = faiss.IndexFlatL2(d)
    flat.add(centroids)
    if raw32:
        _, assign = flat.search(np.ascontiguousarray(x), 1)
        return assign[:, 0].astype(np.int64), centroids
    labels = np.empty(n, dtype=np.int64)
    step = search_block_rows(n, d)
    for s in range(0, n, step):  # upcast block by block: memory one block
        _, a = flat.search(_rows32(x, slice(s, s + step)), 1)
        labels[s : s + step] = a[:, 0]
    return labels, centroids
