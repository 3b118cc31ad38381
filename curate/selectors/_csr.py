"""Compact sparse graphs for the selectors: CSR adjacency (int64 row pointers, int32 columns),
its transpose and row gathers, all in O(E + N) memory.

Split from :mod:`curate.selectors._neighbors` so that the neighbour queries
(:mod:`curate.selectors._neighbors`, :mod:`curate.selectors._ivf_join`) both build on it
without importing each other.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from curate.errors import ResourceLimitError

__all__ = [
    "CSRGraph", "EDGE_CHUNK", "EdgeBudget", "gather_rows", "row_chunks", "segment_positions",
    "transpose_csr",
]

#: Edges per chunk when transposing or scanning a CSR graph (bounds temporaries to ~16M edges).
EDGE_CHUNK = 1 << 24


class CSRGraph:
    """A sparse directed graph in CSR form: row ``i``'s neighbours are ``idx[ptr[i]:ptr[i+1]]``.

    Attributes
    ----------
    ptr : numpy.ndarray
        int64 ``(N + 1,)`` row pointers.
    idx : numpy.ndarray
        int32 ``(E,)`` column indices, ascending within each row.
    """

    __slots__ = ("ptr", "idx")

    def __init__(self, ptr: np.ndarray, idx: np.ndarray) -> None:
        self.ptr = ptr
        self.idx = idx

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.ptr.shape[0] - 1)

    @property
    def n_edges(self) -> int:
        """Number of stored edges."""
        return int(self.idx.shape[0])

    def degrees(self) -> np.ndarray:
        """int64 out-degree of every row."""
        return np.diff(self.ptr)


class EdgeBudget:
    """A running count of the edges a graph builder has found, with a hard ceiling.

    The builders (:func:`curate.selectors._neighbors.range_graph`,
    :meth:`curate.selectors._ivf_join.IVFJoin.range_graph`) call :meth:`add` after every block,
    so a graph that would outgrow memory stops within one block of the ceiling, with
    ``advice`` in the error, instead of being killed by the kernel.

    Parameters
    ----------
    max_edges : int
        Edges allowed in all.
    advice : str
        What the user can do (appended to the error message).
    """

    __slots__ = ("max_edges", "advice", "count")

    def __init__(self, max_edges: int, advice: str = "") -> None:
        self.max_edges = int(max_edges)
        self.advice = advice
        self.count = 0

    def add(self, edges: int) -> None:
        """Count ``edges`` more; raise :class:`curate.errors.ResourceLimitError` past the ceiling."""
        self.count += int(edges)
        if self.count > self.max_edges:
            raise ResourceLimitError(
                f"the delta-ball graph passed {self.max_edges:,} edges, the most this process "
                f"can hold, while it was being built. {self.advice}".rstrip()
            )


def row_chunks(g: CSRGraph, max_edges: Optional[int] = None):
    """Yield ``(r0, r1)`` row ranges of ``g`` holding at most ``max_edges`` (default
    :data:`EDGE_CHUNK`) edges each (a row with more edges forms its own range)."""
    max_edges = EDGE_CHUNK if max_edges is None else int(max_edges)
    r0 = 0
    n = g.n
    while r0 < n:
        limit = g.ptr[r0] + max_edges
        r1 = int(np.searchsorted(g.ptr, limit, side="right")) - 1
        r1 = min(max(r1, r0 + 1), n)
        yield r0, r1
        r0 = r1


def transpose_csr(g: CSRGraph, n_cols: int, *, max_edges: Optional[int] = None) -> CSRGraph:
    """Reverse adjacency (CSC of ``g``): row ``j`` lists every ``i`` with edge ``i -> j``.

    O(E log(chunk) + N) time: a counting sort done in row chunks of at most ``max_edges`` edges,
    each chunk's edges sorted stably by column and scattered after the columns' earlier entries.
    Memory O(E) int32 for the result plus O(N + chunk); rows come out sorted ascending.
    ``max_edges`` defaults to :data:`EDGE_CHUNK`.
    """
    counts = np.bincount(g.idx, minlength=n_cols).astype(np.int64)
    ptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    out = np.empty(g.n_edges, dtype=np.int32)
    fill = ptr[:-1].copy()
    for r0, r1 in row_chunks(g, max_edges):
        e0, e1 = int(g.ptr[r0]), int(g.ptr[r1])
        if e1 == e0:
            continue
        cols = g.idx[e0:e1]
        src = np.repeat(np.arange(r0, r1, dtype=np.int32), np.diff(g.ptr[r0 : r1 + 1]))
        order = np.argsort(cols, kind="stable")
        cs = cols[order].astype(np.int64)
        first = np.flatnonzero(np.concatenate(([True], cs[1:] != cs[:-1])))
        run = np.diff(np.append(first, cs.size))
        rank = np.arange(cs.size, dtype=np.int64) - np.repeat(first, run)
        out[fill[cs] + rank] = src[order]
        fill[cs[first]] += run
    return CSRGraph(ptr, out)


def segment_positions(ptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions ``ptr[r]..ptr[r+1]`` of the CSR rows ``rows`` (any order, repeats allowed),
    concatenated, as int64. O(output)."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = ptr[rows]
    lens = ptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    return offsets + np.arange(total, dtype=np.int64)


def gather_rows(g: CSRGraph, rows: np.ndarray) -> np.ndarray:
    """Concatenate the neighbour lists of ``rows`` (any order, repeats allowed) in O(output)."""
    return g.idx[segment_positions(g.ptr, rows)]
