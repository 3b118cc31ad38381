"""Chunked Euclidean distance kernels shared by the selectors.

Nothing here ever materialises an ``N x N`` (or ``N x K`` for large ``K``) matrix: work is done in
row blocks whose size is chosen so that one block of pairwise products stays within a fixed memory
budget.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["squared_norms", "squared_norms64", "min_sq_dist_to_set", "sq_dist_to_point", "block_rows"]

logger = logging.getLogger(__name__)

#: Memory budget (bytes) for one block of pairwise float32 products.
BLOCK_BYTES = 64 * 1024 * 1024


def block_rows(n_cols: int, budget_bytes: int = BLOCK_BYTES) -> int:
    """Number of rows per block so that ``rows x n_cols`` float32 fits in ``budget_bytes``."""
    return max(1, int(budget_bytes // (4 * max(1, n_cols))))


def squared_norms(x: np.ndarray) -> np.ndarray:
    """Row-wise squared L2 norms, accumulated in float64, returned as float32 (float64 for a
    float64 ``x``).

    O(N*d) time, O(N) extra memory (rows are processed in blocks).
    """
    out = np.empty(x.shape[0], dtype=np.float64 if x.dtype == np.float64 else np.float32)
    step = block_rows(x.shape[1])
    for start in range(0, x.shape[0], step):
        blk = x[start : start + step].astype(np.float64, copy=False)
        out[start : start + step] = np.einsum("ij,ij->i", blk, blk)
    return out


def squared_norms64(x: np.ndarray) -> np.ndarray:
    """float64 squared norms of the rows of float32 ``x``, in row blocks (no float64 copy of
    ``x``). O(N d) time, O(N) memory."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for s in range(0, x.shape[0], 65536):
        blk = x[s : s + 65536].astype(np.float64)
        out[s : s + 65536] = (blk * blk).sum(axis=1)
    return out


def sq_dist_to_point(
    x: np.ndarray, x_norms: np.ndarray, c: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Squared Euclidean distance of every row of ``x`` to the point ``c``.

    Uses ``|x|^2 - 2 x.c + |c|^2`` with one matrix-vector product (memory-bandwidth bound: one
    pass over ``x``), clamped at 0. O(N*d) time, O(N) memory.

    The product is ``numpy.einsum`` (a single-threaded SIMD loop) rather than BLAS ``sgemv``: it
    reads ``x`` at full memory bandwidth from one core, while multi-threaded OpenBLAS ``sgemv``
    was measured 2-3x slower (and 10x on small ``N``) on a shared 2-core machine where its threads
    compete with other processes.
    """
    ft = np.float64 if x.dtype == np.float64 else np.float32  # float64 only when x is
    c = np.ascontiguousarray(c, dtype=ft)
    c_norm = ft(np.dot(c.astype(np.float64), c.astype(np.float64)))
    if out is None:
        out = np.empty(x.shape[0], dtype=ft)
    np.einsum("ij,j->i", x, c, out=out)
    out *= ft(-2.0)
    out += x_norms
    out += c_norm
    np.maximum(out, ft(0.0), out=out)
    return out


def min_sq_dist_to_set(
    x: np.ndarray,
    centers: np.ndarray,
    *,
    x_norms: np.ndarray | None = None,
    budget_bytes: int = BLOCK_BYTES,
) -> np.ndarray:
    """Squared distance from every row of ``x`` to its nearest row of ``centers``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, d)`` float32.
    centers : numpy.ndarray
        ``(K, d)`` float32; ``K = 0`` gives ``inf`` everywhere.
    x_norms : numpy.ndarray, optional
        Precomputed :func:`squared_norms` of ``x``.
    budget_bytes : int
        Memory budget of one block of products.

    Returns
    -------
    numpy.ndarray
        float32 ``(N,)``.

    Notes
    -----
    O(N*K*d) time; memory O(N + block), blocks of rows of ``x`` against blocks of ``centers``.
    """
    n = x.shape[0]
    ft = np.float64 if x.dtype == np.float64 else np.float32  # float64 only when x is
    best = np.full(n, np.inf, dtype=ft)
    if centers.shape[0] == 0 or n == 0:
        return best
    if x_norms is None:
        x_norms = squared_norms(x)
    c_norms = squared_norms(centers)
    k_step = min(centers.shape[0], 4096)
    n_step = block_rows(k_step, budget_bytes)
    for k0 in range(0, centers.shape[0], k_step):
        cb = centers[k0 : k0 + k_step]
        cn = c_norms[k0 : k0 + k_step]
        for n0 in range(0, n, n_step):
            prod = x[n0 : n0 + n_step] @ cb.T
            prod *= ft(-2.0)
            prod += x_norms[n0 : n0 + n_step, None]
            prod += cn[None, :]
            np.minimum(best[n0 : n0 + n_step], prod.min(axis=1), out=best[n0 : n0 + n_step])
    np.maximum(best, ft(0.0), out=best)
    return best
