"""All-rows neighbour queries by an IVF join in blocks: one GEMM per inverted list.

The selectors need neighbours of (nearly) every row of a pool: MaxHerding's kNN lists, ProbCover's
delta-ball graph and its purity radii. Querying a FAISS ``IndexIVFFlat`` row by row scans
``nprobe`` lists per query without BLAS (``3079 s`` of kNN at 1M x 256,
``benchmarks/results/al_quality-1m-speed.json`` before this module). Here the rows are assigned
to ``nlist`` k-means lists once; then for each list ``c`` its member rows form one query block and
the rows of the ``nprobe`` lists whose centroids are nearest to centroid ``c`` (``c`` included)
form the candidate block. Squared distances ``|q|^2 + |x|^2 - 2 q.x`` come from one float32 GEMM
per (chunk of the) block, then top-k by ``argpartition`` (kNN), a threshold (range graph, CSR) or
a label-masked minimum (nearest row of another label).

The flops are those of the per-query IVF search, ``O(N * nprobe * N / nlist * d)``, but at BLAS
speed. The approximation differs from it: the candidate lists are chosen by the query's *list*
(its centroid's nearest lists) rather than by the query itself, so a row near the border of its
list can miss neighbours that a per-query probe would reach. :func:`knn_recall` and
:func:`range_recall` measure the loss against brute force on a seeded sample; with
``nprobe = nlist`` every row is a candidate and the join is exact (up to float32 rounding, as
FAISS's own flat search).

Memory: the ``(N, d)`` rows are read in place (gathered per block), plus O(N) for the list
assignment and norms, O(:data:`BLOCK_PAIRS`) per block, and the outputs (``O(Q k)`` for kNN,
``O(E)`` int32 for a range graph).

Half-precision pools: ``x`` may be float16 or a :class:`curate.selectors._distances.Float32Rows`
view (e.g. ProbCover's lazily normalised float16 rows). Every read gathers rows and converts
them to float32 (exactly) before any arithmetic, in the same blocks as for float32 rows, so the
results equal those of the float32 rows bit for bit and no float32 copy of the pool is made
(the training sample of :meth:`IVFJoin.build` is ``min(N, train_per_list * nlist)`` rows).
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._csr import CSRGraph, row_chunks, segment_positions, transpose_csr
from curate.selectors._distances import squared_norms64

__all__ = ["IVFJoin", "knn_recall", "range_recall", "BLOCK_PAIRS"]

logger = logging.getLogger(__name__)

#: Query x candidate pairs per distance block (float32: 32 MiB per block).
BLOCK_PAIRS = 1 << 23
#: Rows per block of the exact (brute-force) references.
_REF_BLOCK = 4096
#: Rows per block of the list assignment in :meth:`IVFJoin.build` (one FAISS search each; a
#: float16 pool is upcast one block at a time: 64 MiB of float32 at d = 256).
ASSIGN_ROWS = 65536


def _sq_norms(x: np.ndarray) -> np.ndarray:
    """float32 squared row norms, in row blocks (``x`` may be a memory map, float16 or a row
    view; a row's norm does not depend on its block). O(N d) time, O(N) memory plus one block of
    16k rows."""
    out = np.empty(x.shape[0], dtype=np.float32)
    for s in range(0, x.shape[0], 16384):
        b = np.asarray(x[s : s + 16384], dtype=np.float32)
        out[s : s + b.shape[0]] = np.einsum("ij,ij->i", b, b)
        del b  # one block alive at a time
    return out


class IVFJoin:
    """Rows of ``x`` grouped into IVF lists, with block joins of every list against its probes.

    Build with :meth:`build`; the queries of :meth:`knn`, :meth:`range_graph` and
    :meth:`nearest_other_label` are rows of ``x`` itself (a self-join), given as row positions.

    Attributes
    ----------
    x : numpy.ndarray or Float32Rows
        The ``(N, d)`` rows (not copied): float32, float16 or a row view; read as float32.
    centroids : numpy.ndarray
        ``(nlist, d)`` float32 list centroids.
    assign : numpy.ndarray
        int32 ``(N,)`` list of every row.
    order, ptr : numpy.ndarray
        Rows sorted by list (ascending within a list) and the int64 ``(nlist + 1,)`` list pointers:
        list ``c`` holds ``order[ptr[c]:ptr[c+1]]``.
    probes : numpy.ndarray
        int64 ``(nlist, nprobe)``: the lists whose centroids are nearest to each centroid, the
        list itself first.
    nlist, nprobe : int
    kind : str
        ``"ivf"`` (duck-typed with :class:`index.vectors.VectorIndex` for ``info`` reporting).
    """

    kind = "ivf"
    method = "ivf-join"
    faiss_index = None

    def __init__(self, x: np.ndarray, centroids: np.ndarray, assign: np.ndarray,
                 nprobe: int, max_candidates: Optional[int] = None) -> None:
        n = x.shape[0]
        self.x = x
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.nlist = int(self.centroids.shape[0])
        self.nprobe = int(min(max(1, nprobe), self.nlist))
        self.assign = np.asarray(assign, dtype=np.int32)
        self.order = np.argsort(self.assign, kind="stable").astype(np.int64)
        self.ptr = np.zeros(self.nlist + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.assign, minlength=self.nlist), out=self.ptr[1:])
        self.norms = _sq_norms(x)
        self.max_candidates = None if max_candidates is None else int(max_candidates)
        self.probes = self._probe_lists()
        self.n = n

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        x: np.ndarray,
        *,
        nlist: int,
        nprobe: int,
        seed: int = 0,
        train_per_list: int = 64,
        niter: int = 10,
        max_candidates: Optional[int] = None,
    ) -> "IVFJoin":
        """Train ``nlist`` k-means centroids on a seeded sample and assign every row.

        Training: FAISS k-means, ``niter`` iterations on ``min(N, train_per_list * nlist)``
        seeded rows, O(niter * train_per_list * nlist^2 * d). Assignment: one flat (BLAS) search
        of the centroids, O(N * nlist * d), in row blocks of :data:`ASSIGN_ROWS`.
        ``max_candidates`` caps the rows a list is joined with: its nearest probe lists are kept
        while their rows fit (the list itself always), so a few oversized lists (k-means on runs
        of near-duplicates) do not dominate the cost; ``None`` keeps all ``nprobe`` lists.
        """
        import faiss

        n, d = x.shape
        nlist = int(min(max(1, nlist), n))
        if nprobe < 1:
            raise InvalidInputError(f"nprobe must be >= 1; got {nprobe!r}")
        n_train = min(n, int(train_per_list) * nlist)
        rng = np.random.default_rng([int(seed), 0x1F])
        train = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else None
        sample = np.ascontiguousarray(x[0:n] if train is None else x[train], dtype=np.float32)
        if nlist == 1:
            centroids = sample.mean(axis=0, keepdims=True)
        else:
            km = faiss.Kmeans(d, nlist, niter=int(niter), seed=int(seed) % (2**31 - 1),
                              min_points_per_centroid=1, max_points_per_centroid=10**9,
                              spherical=False)
            km.train(sample)
            centroids = km.centroids
        del sample
        quant = faiss.IndexFlatL2(d)
        quant.add(np.ascontiguousarray(centroids, dtype=np.float32))
        assign = np.empty(n, dtype=np.int32)
        step = ASSIGN_ROWS
        for s in range(0, n, step):
            _, a = quant.search(np.ascontiguousarray(x[s : s + step], dtype=np.float32), 1)
            assign[s : s + a.shape[0]] = a[:, 0]
        logger.info("IVF join over %d x %d rows: nlist %d, nprobe %d, trained on %d rows",
                    n, d, nlist, min(nprobe, nlist), n_train)
        return cls(x, centroids, assign, nprobe, max_candidates)

    def _probe_lists(self) -> np.ndarray:
        """Each list's ``nprobe`` nearest lists by centroid distance, itself first. O(nlist^2 d)."""
        import faiss

        c = self.centroids
        if self.nprobe >= self.nlist:
            near = np.tile(np.arange(self.nlist, dtype=np.int64), (self.nlist, 1))
        else:
            _, near = faiss.knn(c, c, self.nprobe)
            near = near.astype(np.int64)
        own = np.arange(self.nlist, dtype=np.int64)
        out = np.full((self.nlist, self.nprobe), -1, dtype=np.int64)
        sizes = np.diff(self.ptr)
        for i in range(self.nlist):  # O(nlist * nprobe): put the list itself first
            rest = near[i][near[i] != i]
            out[i, 0] = own[i]
            out[i, 1:] = rest[: self.nprobe - 1]
            if self.max_candidates is not None:  # nearest lists while their rows fit the cap
                keep = max(1, int(np.searchsorted(np.cumsum(sizes[out[i]]), self.max_candidates,
                                                  side="right")))
                out[i, keep:] = -1
        return out

    # ------------------------------------------------------------------ blocks
    def members(self, c: int) -> np.ndarray:
        """Rows of list ``c`` (ascending)."""
        return self.order[self.ptr[c] : self.ptr[c + 1]]

    def candidates(self, c: int, lists: Optional[np.ndarray] = None, *,
                   ascending: bool = True) -> np.ndarray:
        """Rows of the probe lists of list ``c`` (or of ``lists``), ascending (or list by list)."""
        lists = self.probes[c][self.probes[c] >= 0] if lists is None else lists
        parts = np.concatenate([self.order[self.ptr[p] : self.ptr[p + 1]] for p in lists])
        return np.sort(parts) if ascending else parts

    def symmetric_probes(self) -> list[np.ndarray]:
        """For each list ``a``, the lists ``b >= a`` with ``b`` among ``a``'s probes or ``a`` among
        ``b``'s, ascending: every unordered probe pair once. O(nlist * nprobe log)."""
        a = np.repeat(np.arange(self.nlist, dtype=np.int64), self.probes.shape[1])
        b = self.probes.reshape(-1)
        a, b = a[b >= 0], b[b >= 0]
        key = np.unique(np.minimum(a, b) * self.nlist + np.maximum(a, b))
        lo, hi = key // self.nlist, key % self.nlist
        cuts = np.searchsorted(lo, np.arange(self.nlist + 1))
        return [hi[cuts[c] : cuts[c + 1]] for c in range(self.nlist)]

    def _blocks(self, query_mask: Optional[np.ndarray], cand_key: Optional[np.ndarray] = None,
                probe_sets: Optional[list] = None):
        """Yield ``(q_rows, cand_rows, s, qn)`` per query chunk of one list: ``s`` the float32
        ``(q, C)`` partial squared distances ``|x|^2 - 2 q.x`` against the list's candidates and
        ``qn`` the queries' squared norms (``d^2 = s + qn[:, None]``), from one GEMM of augmented
        rows ``[-2q, 1] . [x, |x|^2]``; chunked to at most :data:`BLOCK_PAIRS` pairs. Candidates
        come ascending by row, or by ``(cand_key[row], row)`` when ``cand_key`` is given, or list
        by list with ``probe_sets`` (explicit lists per list, as :meth:`symmetric_probes`)."""
        x = self.x
        d = x.shape[1]
        for c in range(self.nlist):
            q_rows = self.members(c)
            if query_mask is not None:
                q_rows = q_rows[query_mask[q_rows]]
            if q_rows.size == 0:
                continue
            cand = self.candidates(c, None if probe_sets is None else probe_sets[c],
                                   ascending=probe_sets is None)
            if cand_key is not None:
                cand = cand[np.argsort(cand_key[cand], kind="stable")]
            xc = np.empty((cand.size, d + 1), dtype=np.float32)
            xc[:, :d] = x[cand]
            xc[:, d] = self.norms[cand]
            step = max(1, BLOCK_PAIRS // max(1, cand.size))
            for s in range(0, q_rows.size, step):
                qr = q_rows[s : s + step]
                q = np.empty((qr.size, d + 1), dtype=np.float32)
                np.multiply(np.asarray(x[qr], dtype=np.float32), np.float32(-2.0), out=q[:, :d])
                q[:, d] = 1.0
                yield qr, cand, q @ xc.T, self.norms[qr]

    @staticmethod
    def _query_positions(n: int, rows: Optional[np.ndarray]):
        """(mask over rows or None, position of each row in the output, number of queries)."""
        if rows is None:
            return None, None, n
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise InvalidInputError(f"query rows must lie in [0, {n}); got {rows.min()}..{rows.max()}")
        if np.unique(rows).size != rows.size:
            raise InvalidInputError("query rows must not repeat")
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        pos = np.full(n, -1, dtype=np.int64)
        pos[rows] = np.arange(rows.size, dtype=np.int64)
        return mask, pos, int(rows.size)

    # ------------------------------------------------------------------ queries
    def knn(self, k: int, rows: Optional[np.ndarray] = None, *,
            float64: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``k`` nearest candidates (Euclidean distance, ascending) of every row or of ``rows``.

        Returns float32 ``(Q, k)`` distances and int64 ``(Q, k)`` indices in the order of
        ``rows`` (``-1`` / ``inf`` where fewer than ``k`` candidates). Ties at equal distance go
        to the lower row. O(Q * C * d) time for ``C`` candidates per list, O(Q k) memory.

        With ``float64=True`` the distances of the chosen pairs are recomputed in float64 from
        the block's rows (``|a|^2 + |b|^2 - 2 a.b``, exactly 0 for a row and itself), as
        :func:`curate.selectors.herding._pair_dist` computes them from the whole matrix: the rows
        are still in cache, so this costs a fraction of a gather over the pool. The order stays
        the float32 one.
        """
        dist, ind, _ = self._knn(k, rows, None, float64=float64)
        return dist, ind

    def knn_other_label(
        self, k: int, labels: np.ndarray, rows: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`knn` and :meth:`nearest_other_label` from the same blocks (one GEMM for both).

        Returns ``(dist, ind, other)``; ``other`` is float64 ``(Q,)``, the distance to the nearest
        candidate of another label (``inf`` if none). Ties in the kNN go to the lower
        ``(label, row)``. The candidates are ordered by label so that the per-label minima are
        one ``minimum.reduceat`` pass over each block.
        """
        labels = np.asarray(labels)
        if labels.shape[0] != self.n:
            raise InvalidInputError(f"labels must have one entry per row ({self.n}); got "
                                    f"{labels.shape[0]}")
        return self._knn(k, rows, labels)

    def _knn(self, k: int, rows: Optional[np.ndarray], labels: Optional[np.ndarray], *,
             float64: bool = False):
        k = int(k)
        if k < 1:
            raise InvalidInputError(f"k must be >= 1; got {k!r}")
        mask, pos, q = self._query_positions(self.n, rows)
        n2 = squared_norms64(self.x) if float64 else None
        dist = np.full((q, k), np.inf, dtype=np.float64 if float64 else np.float32)
        ind = np.full((q, k), -1, dtype=np.int64)
        other = None if labels is None else np.full(q, np.inf, dtype=np.float64)
        for qr, cand, sc, qn in self._blocks(mask, labels):
            at = qr if pos is None else pos[qr]
            if labels is not None:
                other[at] = _min_other_label(sc, qn, labels[qr], labels[cand])
            kk = min(k, cand.size)
            if kk < cand.size:
                part = np.argpartition(sc, kk - 1, axis=1)[:, :kk]
            else:
                part = np.broadcast_to(np.arange(cand.size), sc.shape).copy()
            pd = np.take_along_axis(sc, part, axis=1)
            pd += qn[:, None]
            np.maximum(pd, np.float32(0.0), out=pd)
            # ascending distance, then ascending candidate position
            o = _row_lexsort(pd, part)
            part = np.take_along_axis(part, o, axis=1)
            pd = np.take_along_axis(pd, o, axis=1)
            ind[at, :kk] = cand[part]
            if float64:
                dist[at, :kk] = _pair_dist64(self.x, n2, qr, cand[part])
            else:
                dist[at, :kk] = np.sqrt(pd)
        return dist, ind, other

    def range_graph(self, radius: float, rows: Optional[np.ndarray] = None, *,
                    symmetric: bool = True, budget=None):
        """Every candidate ``j`` with ``d(x_i, x_j) < radius`` for every row (or ``rows``).

        Returns a :class:`curate.selectors._csr.CSRGraph` with one row per query (in the
        order of ``rows``), columns ascending. O(Q * C * d) time, O(Q + E) memory (int32 columns).

        Over all rows (``rows=None``) with ``symmetric=True`` (default) each unordered pair of
        probe lists is joined once (:meth:`symmetric_probes`) and every edge found is kept in both
        directions: the exact graph is symmetric, so this finds a superset of the directed
        join's edges (never a false one) with about half its GEMM work.

        ``budget`` (a :class:`curate.selectors._csr.EdgeBudget`) counts the edges block by
        block and raises past its ceiling, before the CSR is assembled.
        """
        if not np.isfinite(radius) or radius <= 0:
            raise InvalidInputError(f"range radius must be a positive finite number; got {radius!r}")
        r2 = np.float32(radius) * np.float32(radius)
        if rows is None and symmetric and self.nprobe < self.nlist:
            return self._symmetric_range_graph(r2, budget)
        mask, pos, q = self._query_positions(self.n, rows)
        counts = np.zeros(q, dtype=np.int64)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for qr, cand, sc, qn in self._blocks(mask):
            hit = sc < (r2 - qn)[:, None]
            at = qr if pos is None else pos[qr]
            counts[at] = hit.sum(axis=1)
            _, col = _hits(hit)  # row-major: columns ascend within a query
            if budget is not None:
                budget.add(col.size)
            parts.append((at, cand[col].astype(np.int32)))
        return _assemble(q, counts, parts)

    def _symmetric_range_graph(self, r2: np.float32, budget=None):
        """All-rows range graph from each unordered probe-list pair once; see :meth:`range_graph`.

        Block ``a`` joins list ``a``'s rows with the lists ``b >= a`` of :meth:`symmetric_probes`:
        hits inside list ``a`` are found in both directions by the square ``a x a`` part; hits
        into lists ``b > a`` are also stored reversed (a transpose of those edges). The two edge
        sets of a row are disjoint (lists ``>=`` vs ``<`` the row's own) and merged sorted.
        """
        n = self.n
        counts = np.zeros(n, dtype=np.int64)
        off_counts = np.zeros(n, dtype=np.int64)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        off_parts: list[tuple[np.ndarray, np.ndarray]] = []
        for qr, cand, sc, qn in self._blocks(None, probe_sets=self.symmetric_probes()):
            hit = sc < (r2 - qn)[:, None]
            counts[qr] = hit.sum(axis=1)
            r, col = _hits(hit)
            cols = cand[col].astype(np.int32)
            parts.append((qr, cols))
            off = self.assign[cols] != self.assign[qr[0]]
            off_counts[qr] = np.bincount(r[off], minlength=qr.size)
            off_parts.append((qr, cols[off]))
            if budget is not None:  # both directions of the cross-list hits are kept
                budget.add(cols.size + int(off.sum()))
        fwd = _assemble(n, counts, parts)
        back = transpose_csr(_assemble(n, off_counts, off_parts), n)
        return _merge_rows(fwd, back, n)

    def nearest_other_label(self, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Distance from each of ``rows`` to its nearest candidate with a different label.

        ``inf`` where no candidate has another label (an over-estimate, like the filtered IVF
        search it replaces). float64 ``(len(rows),)``. O(Q * C * d) time; candidates ordered by
        label, one ``minimum.reduceat`` per block.
        """
        labels = np.asarray(labels)
        mask, pos, q = self._query_positions(self.n, rows)
        out = np.full(q, np.inf, dtype=np.float64)
        for qr, cand, sc, qn in self._blocks(mask, labels):
            at = qr if pos is None else pos[qr]
            out[at] = _min_other_label(sc, qn, labels[qr], labels[cand])
        return out


def _min_other_label(sc: np.ndarray, qn: np.ndarray, qlab: np.ndarray,
                     clab: np.ndarray) -> np.ndarray:
    """Per query, the distance to the nearest candidate of another label.

    ``clab`` must be sorted (candidates grouped by label): the minimum of each label's segment
    comes from one ``minimum.reduceat`` pass, then the query's own label is masked out of the
    small ``(q, labels)`` matrix. O(q * C) time.
    """
    if clab.size == 0:
        return np.full(sc.shape[0], np.inf)
    starts = np.flatnonzero(np.concatenate(([True], clab[1:] != clab[:-1])))
    seg = np.minimum.reduceat(sc, starts, axis=1)
    seg[qlab[:, None] == clab[starts][None, :]] = np.inf
    best = seg.min(axis=1).astype(np.float64) + qn
    return np.sqrt(np.maximum(best, 0.0))


def _hits(hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D boolean block (row-major), through ``flatnonzero`` (several times
    faster on sparse blocks)."""
    flat = np.flatnonzero(hit)
    r = flat // hit.shape[1]
    return r, flat - r * hit.shape[1]


def _assemble(q: int, counts: np.ndarray, parts: list):
    """CSR from per-block ``(query positions, concatenated columns)`` parts, freeing each part
    as it is scattered (peak about one copy of the edges)."""
    ptr = np.zeros(q + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    idx = np.empty(int(ptr[-1]), dtype=np.int32)
    parts.reverse()
    while parts:
        at, cols = parts.pop()
        idx[segment_positions(ptr, at)] = cols
        del at, cols
    return CSRGraph(ptr, idx)


def _merge_rows(a, b, n: int):
    """Row-wise union of two CSR graphs with disjoint rows' columns; columns sorted per row.

    In row chunks of at most ``EDGE_CHUNK`` edges: each chunk's edges keyed ``row * n + col``
    and sorted. O(E log chunk) time, O(E + chunk) memory.
    """
    da, db = np.diff(a.ptr), np.diff(b.ptr)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(da + db, out=ptr[1:])
    idx = np.empty(int(ptr[-1]), dtype=np.int32)
    for r0, r1 in row_chunks(CSRGraph(ptr, idx)):
        local = np.arange(r1 - r0, dtype=np.int64)
        ka = np.repeat(local, da[r0:r1]) * n + a.idx[a.ptr[r0] : a.ptr[r1]]
        kb = np.repeat(local, db[r0:r1]) * n + b.idx[b.ptr[r0] : b.ptr[r1]]
        key = np.concatenate((ka, kb))
        del ka, kb
        key.sort()
        idx[ptr[r0] : ptr[r1]] = key % n
    return CSRGraph(ptr, idx)


def _pair_dist64(x: np.ndarray, n2: np.ndarray, qr: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """float64 distances ``d(x[qr[i]], x[nb[i, j]])`` of one block, in chunks of query rows.

    Same formula and reduction as ``herding._pair_dist`` (``einsum`` of float64 rows), exactly 0
    where ``nb == qr``. The neighbour rows of a block come from the few lists it probes (cache).
    """
    m, kk = nb.shape
    out = np.empty((m, kk), dtype=np.float64)
    step = max(1, (1 << 21) // max(1, kk * x.shape[1]))  # ~16 MiB of float64 rows per side
    for s in range(0, m, step):
        a = qr[s : s + step]
        b = nb[s : s + step]
        xa = np.repeat(x[a].astype(np.float64), kk, axis=0)
        xb = x[b.reshape(-1)].astype(np.float64)
        dot = np.einsum("ij,ij->i", xa, xb).reshape(a.size, kk)
        d2 = n2[a][:, None] + n2[b] - 2.0 * dot
        out[s : s + step] = np.sqrt(np.maximum(d2, 0.0))
    out[nb == qr[:, None]] = 0.0
    return out


def _row_lexsort(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Per-row order by ``primary`` then ``secondary`` (both ``(m, k)``). O(m k log k)."""
    o = np.argsort(secondary, axis=1, kind="stable")
    p = np.take_along_axis(primary, o, axis=1)
    o2 = np.argsort(p, axis=1, kind="stable")
    return np.take_along_axis(o, o2, axis=1)


# ---------------------------------------------------------------------- measured loss
def _exact_d2(x: np.ndarray, norms: np.ndarray, q_rows: np.ndarray, s0: int, s1: int) -> np.ndarray:
    q = np.asarray(x[q_rows], dtype=np.float32)
    b = np.asarray(x[s0:s1], dtype=np.float32)
    d2 = q @ b.T
    d2 *= np.float32(-2.0)
    d2 += norms[q_rows][:, None]
    d2 += norms[s0:s1][None, :]
    return np.maximum(d2, 0.0)


def knn_recall(x: np.ndarray, ind: np.ndarray, rows: np.ndarray, k: Optional[int] = None) -> float:
    """Recall@k of approximate kNN lists ``ind`` (``(len(rows), >=k)``) against brute force.

    The exact ``k``-th neighbour distance of each of ``rows`` comes from a chunked scan of all
    rows; a listed neighbour counts as found when its exact distance is at most that (so ties at
    the k-th place are not counted as misses). Recall = found / (len(rows) * k).
    O(len(rows) * N * d) time, O(len(rows) * (k + block)) memory.
    """
    rows = np.asarray(rows, dtype=np.int64)
    ind = np.asarray(ind)
    n = x.shape[0]
    k = min(ind.shape[1] if k is None else int(k), n)
    if rows.size == 0:
        return 1.0
    norms = _sq_norms(x)
    best = np.full((rows.size, k), np.inf, dtype=np.float32)
    for s0 in range(0, n, _REF_BLOCK):
        s1 = min(n, s0 + _REF_BLOCK)
        cd = np.concatenate([best, _exact_d2(x, norms, rows, s0, s1)], axis=1)
        best = np.partition(cd, k - 1, axis=1)[:, :k]
    kth = best.max(axis=1)
    have = ind[:, :k]
    ok = have >= 0
    q = np.asarray(x[rows], dtype=np.float32)
    safe = np.where(ok, have, 0)
    hv = np.asarray(x[safe.reshape(-1)], dtype=np.float32).reshape(rows.size, k, -1)
    d2 = norms[rows][:, None] + norms[safe] - 2.0 * np.einsum("qkd,qd->qk", hv, q)
    found = ok & (np.maximum(d2, 0.0) <= kth[:, None] * (1 + 1e-5) + 1e-6)
    return float(np.count_nonzero(found)) / float(rows.size * k)


def range_recall(x: np.ndarray, graph, radius: float, rows: np.ndarray,
                 graph_rows: Optional[np.ndarray] = None) -> float:
    """Edge recall of a range graph against a brute-force range search on ``rows``.

    ``graph`` row ``i`` belongs to query ``graph_rows[i]`` (default: row ``i``). Returns
    (edges found) / (exact edges ``d < radius``) over the sampled rows, 1.0 when there are none.
    O(len(rows) * N * d) time in row blocks.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = x.shape[0]
    norms = _sq_norms(x)
    r2 = np.float32(radius) * np.float32(radius)
    if graph_rows is None:
        gpos = rows
    else:
        lookup = np.full(n, -1, dtype=np.int64)
        lookup[np.asarray(graph_rows, dtype=np.int64)] = np.arange(len(graph_rows))
        gpos = lookup[rows]
        if (gpos < 0).any():
            raise InvalidInputError("range_recall: some sampled rows are not rows of the graph")
    exact_total = 0
    found = 0
    exact_cols: list[list[np.ndarray]] = [[] for _ in range(rows.size)]
    for s0 in range(0, n, _REF_BLOCK):
        s1 = min(n, s0 + _REF_BLOCK)
        hit = _exact_d2(x, norms, rows, s0, s1) < r2
        for r in np.flatnonzero(hit.any(axis=1)):
            exact_cols[r].append(np.flatnonzero(hit[r]) + s0)
    for r in range(rows.size):
        want = np.concatenate(exact_cols[r]) if exact_cols[r] else np.empty(0, np.int64)
        have = graph.idx[graph.ptr[gpos[r]] : graph.ptr[gpos[r] + 1]]
        exact_total += want.size
        found += np.intersect1d(want, have).size
    return 1.0 if exact_total == 0 else float(found) / exact_total
