"""Chunked Euclidean distance kernels shared by the selectors.

Nothing here ever materialises an ``N x N`` (or ``N x K`` for large ``K``) matrix: work is done in
row blocks whose size is chosen so that one block of pairwise products stays within a fixed memory
budget.

Half-precision pools: every kernel here also takes a float16 ``x`` and upcasts it block by block
(at most :data:`UPCAST_ROWS` rows, or the block the float32 path already uses), never the whole
array. float16 -> float32 is exact and the kernels give a row the same value whatever block it
sits in (``einsum`` row products; BLAS products on the same block shapes as the float32 path), so
the results are bit-for-bit those of ``x.astype(np.float32)``. :class:`Float32Rows` wraps a
float16 pool (optionally divided by per-row norms: lazily L2-normalised rows) for code that
gathers rows by index.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = [
    "squared_norms",
    "squared_norms64",
    "min_sq_dist_to_set",
    "sq_dist_to_point",
    "block_rows",
    "Float32Rows",
    "as_float32",
    "UPCAST_ROWS",
]

logger = logging.getLogger(__name__)

#: Memory budget (bytes) for one block of pairwise float32 products.
BLOCK_BYTES = 64 * 1024 * 1024
#: float64 bytes per block of the squared-norm kernels (4096 rows at d = 256).
NORM_BLOCK_BYTES = 8 * 1024 * 1024
#: Rows per upcast block of a float16 ``x`` in the single-pass kernels (32k x 256 float32 is
#: 32 MiB).
UPCAST_ROWS = 32768


def as_float32(a: np.ndarray) -> np.ndarray:
    """``a`` as float32 (no copy when it already is; float16 is upcast exactly)."""
    return np.asarray(a, dtype=np.float32) if a.dtype == np.float16 else a


class Float32Rows:
    """Read-only float32 view of the rows of a float16 (or float32) ``(N, d)`` array.

    Indexing (a slice, an index array or a boolean mask over rows, or one row) returns a new
    float32 array: the selected rows upcast exactly, then divided by ``divisors[rows]`` when
    divisors are given. With ``divisors = sqrt(squared_norms(x))`` (zeros replaced by 1) the rows
    equal those of :func:`curate.selectors.probcover.normalize_rows` bit for bit (the same
    float32 division, element by element), so a normalised pool needs no float32 copy.

    Only indexing and ``shape`` are offered: code that needs the whole float32 matrix must ask
    for it explicitly (``rows[0:n]``). Memory per access: the selected rows in float32.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, base: np.ndarray, divisors: np.ndarray | None = None) -> None:
        self.base = base
        self.divisors = None if divisors is None else np.asarray(divisors, dtype=np.float32)
        self.shape = base.shape

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key):
        raw = self.base[key]
        blk = np.asarray(raw, dtype=np.float32)
        if self.divisors is None:
            return blk
        div = self.divisors[key]
        div = div[..., None] if np.ndim(div) else div
        if blk is raw or np.may_share_memory(blk, self.base):
            return blk / div  # float32 rows read in place: divide into a new array
        return np.divide(blk, div, out=blk)  # our upcast copy: the same division, in place


def block_rows(n_cols: int, budget_bytes: int = BLOCK_BYTES) -> int:
    """Number of rows per block so that ``rows x n_cols`` float32 fits in ``budget_bytes``."""
    return max(1, int(budget_bytes // (4 * max(1, n_cols))))


def squared_norms(x: np.ndarray) -> np.ndarray:
    """Row-wise squared L2 norms, accumulated in float64, returned as float32 (float64 for a
    float64 ``x``).

    O(N*d) time, O(N) extra memory: rows are processed in blocks of at most
    :data:`NORM_BLOCK_BYTES` of float64 (a row's norm does not depend on its block). ``x`` may be
    float16 or a :class:`Float32Rows` view.
    """
    out = np.empty(x.shape[0], dtype=np.float64 if x.dtype == np.float64 else np.float32)
    step = max(1, NORM_BLOCK_BYTES // (8 * max(1, x.shape[1])))
    for start in range(0, x.shape[0], step):
        blk = x[start : start + step].astype(np.float64, copy=False)
        out[start : start + step] = np.einsum("ij,ij->i", blk, blk)
        del blk  # one block alive at a time
    return out


def squared_norms64(x: np.ndarray) -> np.ndarray:
    """float64 squared norms of the rows of float32 (or float16) ``x``, in row blocks of at most
    :data:`NORM_BLOCK_BYTES` of float64 (no float64 copy of ``x``). O(N d) time, O(N) memory."""
    out = np.empty(x.shape[0], dtype=np.float64)
    step = max(1, NORM_BLOCK_BYTES // (8 * max(1, x.shape[1])))
    for s in range(0, x.shape[0], step):
        blk = x[s : s + step].astype(np.float64)
        out[s : s + step] = (blk * blk).sum(axis=1)
        del blk
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

    A float16 ``x`` is upcast in blocks of :data:`UPCAST_ROWS` rows (memory: one block); the
    einsum gives each row the same value in any block, so the result equals that of
    ``x.astype(np.float32)``.
    """
    ft = np.float64 if x.dtype == np.float64 else np.float32  # float64 only when x is
    c = np.ascontiguousarray(c, dtype=ft)
    c_norm = ft(np.dot(c.astype(np.float64), c.astype(np.float64)))
    if out is None:
        out = np.empty(x.shape[0], dtype=ft)
    if x.dtype == np.float16:
        for s in range(0, x.shape[0], UPCAST_ROWS):
            blk = x[s : s + UPCAST_ROWS].astype(np.float32)
            np.einsum("ij,j->i", blk, c, out=out[s : s + blk.shape[0]])
            del blk  # one block alive at a time
    else:
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
    max_rows: int | None = None,
) -> np.ndarray:
    """Squared distance from every row of ``x`` to its nearest row of ``centers``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, d)`` float32 (float64, or float16: upcast per block, see the module docstring).
    centers : numpy.ndarray
        ``(K, d)``, same dtype as ``x``; ``K = 0`` gives ``inf`` everywhere.
    x_norms : numpy.ndarray, optional
        Precomputed :func:`squared_norms` of ``x``.
    budget_bytes : int
        Memory budget of one block of products.
    max_rows : int, optional
        Cap on the rows of ``x`` per block (default: none for float32 / float64, which are read
        in place; :data:`UPCAST_ROWS` for float16, which is upcast per block). BLAS products can
        round differently for differently shaped blocks, so callers that must give a float16
        pool the values of its float32 upcast pass the same cap for both.

    Returns
    -------
    numpy.ndarray
        float32 ``(N,)``.

    Notes
    -----
    O(N*K*d) time; memory O(N + block), blocks of rows of ``x`` against blocks of ``centers``
    (a float16 ``x`` and ``centers`` are upcast per block: the same GEMM shapes as for their
    float32 upcast, hence the same values).
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
    if max_rows is None and x.dtype == np.float16:
        max_rows = UPCAST_ROWS
    if max_rows is not None:
        n_step = max(1, min(n_step, int(max_rows)))
    for k0 in range(0, centers.shape[0], k_step):
        cb = as_float32(centers[k0 : k0 + k_step])
        cn = c_norms[k0 : k0 + k_step]
        for n0 in range(0, n, n_step):
            prod = None  # one product block alive at a time
            prod = as_float32(x[n0 : n0 + n_step]) @ cb.T
            prod *= ft(-2.0)
            prod += x_norms[n0 : n0 + n_step, None]
            prod += cn[None, :]
            np.minimum(best[n0 : n0 + n_step], prod.min(axis=1), out=best[n0 : n0 + n_step])
    np.maximum(best, ft(0.0), out=best)
    return best
