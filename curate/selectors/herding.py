"""MaxHerding (Bae, Noh, Sutherland, ECCV 2024) and UHerding (Bae, Sutherland, Oliveira, ICLR 2025).

Generalized coverage of a set ``S`` over the pool ``X`` (labeled and unlabeled rows together)::

    C(S) = 1/N * sum_{x in X} w(x) * max_{s in S} k(x, s)

with ``w = 1`` for MaxHerding. The labeled rows are in ``S`` from the start and the greedy run adds
the candidate with the largest gain ``sum_x w(x) * max(k(x, c) - m(x), 0)``, ``m(x)`` being the
current best kernel value of ``x``; ties go to the lowest row. This follows the official code
(github.com/BorealisAI/uherding, ``deep-al/pycls/al/herding.py`` and ``uherding.py``):

* features are L2-normalised and ``d`` is the Euclidean distance between them;
* kernels (``r = d / h``): ``rbf`` ``exp(-r^2)`` (the official default), ``tophat`` ``r < 1``,
  ``student`` ``(1 + r^2 / 0.5)^(-0.75)``, ``laplace`` ``exp(-r)``, ``cauchy`` ``1 / (1 + r^2)``,
  ``rational`` ``(1 + r^2 / 2)^(-1)``. The official ``cauchy`` and ``rational`` ignore the
  bandwidth; here they scale with it and equal the official ones at ``h = 1``. The official
  ``negnorm`` (``-d``) is not offered: it is negative, so with no labeled rows every gain is 0;
* the bandwidth ``h`` defaults to the official 1.0 (``delta=1.0`` of ``run_budget.sh``);
* UHerding weights every row by its margin uncertainty ``1 - (p1 - p2)`` (0 on labeled rows),
  with all weights 1 while nothing is labeled, and (``adaptive_bandwidth``, the official
  ``-p true``) sets ``h`` to the smallest positive distance between two labeled rows. As labels
  grow that distance shrinks, the kernel tends to a spike, the gain of ``c`` tends to ``w(c)``
  and UHerding tends to margin sampling; with few labels it is MaxHerding weighted by
  uncertainty. That is the official interpolation; nothing else changes with the budget.

UHerding, compared line by line with the official ``UHerding.select_samples`` (``-a
uherding_margin -s true -p true`` of its README): the kernel is rbf on the L2-normalised
self-supervised features (``UNC_FEATURE``; the classifier's features only when both feature
options say ``classifier``), never mixed with the classifier's probabilities (the probability /
embedding mixing in the official ``Sampling.badge`` belongs to BADGE-herding, another method);
the weights are the margin ``1 - (p1 - p2)`` of ``softmax(logits / T)`` of the classifier trained
on all labeled rows, 0 on labeled rows, fixed during the round (picks keep their weight; their
gain vanishes as ``m = 1``); ``T`` comes from the caller (the official ``-s true``: lowest ECE over
``1.0, 1.1, ..., 19.9`` on the last 30% of the labeled rows for a model fit on the first 70%,
:func:`benchmarks.al_quality.fit_temperature`); the official ``delta_scale`` (hard-coded 1.0 there)
is the ``bandwidth_scale`` parameter here, default 1.0. Differences: no random candidate subset
(the official code keeps at most ~35k candidates; here every row is one), the lowest row wins
exact ties (the official code takes the first row of a random permutation), and
:func:`labeled_min_distance` finds the pair by a float32 FAISS 2-NN before recomputing it in
float64 (the official one takes the minimum of the float32 ``cdist``). The tests replay
cumulative rounds against a port of the official round and get the same picks and bandwidths;
``benchmarks/al_quality.py --check-official`` does the same on the Fashion-MNIST benchmark pool
(``benchmarks/results/al_quality-fmnist-uherding-official.json``).

The official code builds the full ``N x N`` kernel and draws a random subset of at most ~35k
candidates. Here:

* ``method="exact"``: the exact objective without any ``N x N`` matrix. The first gains are
  computed in blocks of rows against all rows (O(N^2 d) time, O(N d + 2**20) memory); then
  lazy greedy: gains only fall as picks are added (the objective is submodular), so an old gain
  is an upper bound, and each step recomputes exactly, in chunks of ``EXACT_CHUNK`` rows, only
  the stale rows whose bound could still beat the best exact gain. Same picks, gains and ties
  as ``dense``. The wide official kernel leaves many near-equal gains, so many rows are
  recomputed per pick: slower than ``dense`` where ``dense`` fits in memory (timings in
  ``benchmarks/results/al_quality-fmnist-speed.json`` and ``al_quality-10k-speed.json``).
* ``method="dense"``: the exact objective on the full quantised ``N x N`` int32 kernel, with
  exact incremental gain updates (only rows whose ``m`` rose are revisited). O(N^2) memory, so
  it refuses pools above ``dense_max_rows``. It is the reference of the tests.
* ``method="sparse"``: every row's kernel is restricted to its ``knn_k`` nearest
  neighbours (through :func:`curate.selectors._neighbors.build_neighbors` and ``knn_rows``: a
  flat FAISS index up to ``FLAT_MAX`` rows, a GPU copy when FAISS sees one; above, the IVF join
  of :mod:`curate.selectors._ivf_join`, one GEMM per list), self included; the candidates
  are the rows appearing in those lists (every row, through its self edge). Gains are updated
  incrementally through the reverse lists: picking ``s`` raises ``m(x)`` for the rows ``x``
  listing ``s``, and only the ``knn_k`` candidates of those rows change gain. Labeled rows enter
  exactly: ``m(x)`` starts at the kernel of ``x``'s nearest labeled row (a FAISS search over the
  labeled rows), whether or not it is among ``x``'s neighbours.
* ``method="auto"`` (default): ``exact`` up to ``exact_max_rows`` (20 000) rows, ``sparse``
  above.

Where the sparse method loses: only in the kernel truncation. Candidates are not restricted
(every row is one through its self edge) and its greedy is exact on the truncated kernel (equal
to dense whenever the lists are complete, tested). But the official rbf kernel with h = 1 on
unit vectors is ``exp(-d^2) >= exp(-4) = 0.018`` for every pair, so no ``knn_k < N`` holds every
kernel value: the far part of each row's kernel (everything beyond its ``knn_k``-th neighbour)
counts as 0. It matters most for the first picks, whose gains come from far rows, and it
changes which of many near-equal candidates wins: the picks differ while the coverage they reach
stays close (``loss @10 / @30 / @50 %`` and ``loss vs exact %`` of the sparse rows in
``benchmarks/results/al_quality-fmnist-speed.json``). Each herding curve is one deterministic
pick set, so such a swap moves accuracy at 30-50 labels by a few points either way; on the
Fashion-MNIST pool the sparse picks score 67.4 / 72.7% at 30 / 50 labels against 70.4 / 75.0%
for the exact ones (``al_quality-fmnist-part-sparse.json``, ``al_quality-fmnist-part-ours.json``).
That is why ``auto`` runs the exact method wherever it is affordable.

Exactness: kernel values are integers in units of ``2**-24`` and row weights in units of
``2**-b`` of the largest weight (``b = min(24, 38 - ceil(log2(N + 1)))``), so every gain is an
exact int64 sum, the incremental updates equal a full recount and the dense and sparse runs
break ties identically. Distances of listed pairs are recomputed in float64 (not FAISS's float32)
so both methods quantise the same values.

Bandwidth rule (``bandwidth="auto"``, label-free): ``h`` is the median, over a seeded sample of
1000 query rows, of the distance to the ``m``-th nearest row of a seeded sample of ``P =
min(N, 20000)`` rows, with ``m = round(P / (labeled + budget))``: the radius at which the
``labeled + budget`` kernels would each hold an equal share of the pool. It reads no label and
depends only on the vectors, the budget and the seed. ``benchmarks/al_quality.py --tune`` checks
it against the official 1.0 on a tuning split of the Fashion-MNIST training images disjoint from
the benchmark pool, scored on other training images, never on test accuracy
(``benchmarks/results/al_quality-fmnist-tune.json``): over 10-200 labels the mean accuracy was
62.7% for ``auto``, 62.9% for 1.0, 61.1 / 62.3 / 63.2% for 0.5 / 0.75 / 1.5 and 56.9% for random.
MaxHerding is insensitive to the bandwidth there and the rule does not beat the official value,
so the default stays 1.0; ``auto`` is the choice when a narrower, budget-scaled kernel is wanted
(it also makes the sparse lists cover more of the kernel).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Optional, Union

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._csr import segment_positions
from curate.selectors._distances import squared_norms, squared_norms64
from curate.selectors._ivf_join import IVFJoin
from curate.selectors._neighbors import build_index, build_neighbors, knn, knn_rows
from curate.selectors._scores import get_uncertainty
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = [
    "MaxHerding",
    "UHerding",
    "KERNELS",
    "kernel_values",
    "auto_bandwidth",
    "labeled_min_distance",
    "generalized_coverage",
    "margin_uncertainty",
]

logger = logging.getLogger(__name__)

#: Kernel values are integers in units of 2**-KERNEL_BITS.
KERNEL_BITS = 24
_KSCALE = float(2**KERNEL_BITS)
#: Official default bandwidth (``delta=1.0`` in the official ``run_budget.sh``).
DEFAULT_BANDWIDTH = 1.0
#: Sample sizes of the ``bandwidth="auto"`` rule.
AUTO_SAMPLE = 20_000
AUTO_QUERIES = 1000
#: Largest pool of ``method="dense"`` (an N x N int32 kernel: 1.6 GB at 20k rows).
DENSE_MAX_ROWS = 20_000
#: Largest pool on which ``method="auto"`` runs the exact method (sparse above).
EXACT_MAX_ROWS = 20_000
#: Stale rows recomputed at once by the exact method (doubling within a step).
EXACT_CHUNK = 64
#: Listed pairs per block when building the sparse kernel (bounds its temporaries).
PAIRS_PER_BLOCK = 1 << 22
#: Rows per block when computing distances.
_BLOCK = 1024

KERNELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rbf": lambda r: np.exp(-(r**2)),
    "tophat": lambda r: (r < 1.0).astype(np.float64),
    "student": lambda r: (1.0 + r**2 / 0.5) ** (-0.75),
    "laplace": lambda r: np.exp(-r),
    "cauchy": lambda r: 1.0 / (1.0 + r**2),
    "rational": lambda r: 1.0 / (1.0 + r**2 / 2.0),
}
_METHODS = ("auto", "exact", "sparse", "dense")
_TRANSFORMS = ("identity", "one_minus")


def _check_kernel(kernel: Any) -> str:
    if kernel not in KERNELS:
        raise InvalidInputError(
            f"unknown herding kernel {kernel!r}; valid kernels: {', '.join(sorted(KERNELS))}"
        )
    return str(kernel)


def _check_bandwidth(bandwidth: Any) -> Union[float, str]:
    if isinstance(bandwidth, str):
        if bandwidth == "auto":
            return bandwidth
        raise InvalidInputError(
            f"bandwidth must be a positive number or 'auto'; got {bandwidth!r}"
        )
    ok = isinstance(bandwidth, (int, float, np.floating, np.integer)) and not isinstance(
        bandwidth, bool
    )
    if not ok or not math.isfinite(float(bandwidth)) or float(bandwidth) <= 0:
        raise InvalidInputError(
            f"bandwidth must be a positive finite number (official default {DEFAULT_BANDWIDTH}) "
            f"or 'auto'; got {bandwidth!r}"
        )
    return float(bandwidth)


def kernel_values(
    d: np.ndarray, kernel: str, bandwidth: float, threshold: float = 0.0
) -> np.ndarray:
    """Quantised kernel of distances ``d``: int64 in units of ``2**-24``, 0 below ``threshold``."""
    k = KERNELS[kernel](np.asarray(d, dtype=np.float64) / bandwidth)
    q = np.floor(k * _KSCALE + 0.5).astype(np.int64)
    if threshold > 0:
        q[k < threshold] = 0
    return q


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.sqrt(squared_norms(x))
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


def _pair_dist(x: np.ndarray, n2: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 distances of the row pairs ``(a[i], b[i])``, in blocks; exact 0 on ``a == b``.

    ``x`` may be float32: gathered blocks are cast to float64, never the whole matrix.
    """
    out = np.empty(a.shape[0], dtype=np.float64)
    step = max(1024, (1 << 24) // (8 * x.shape[1]))  # ~16 MiB of gathered rows per side
    for s in range(0, a.shape[0], step):
        aa, bb = a[s : s + step], b[s : s + step]
        dot = np.einsum("ij,ij->i", x[aa].astype(np.float64), x[bb].astype(np.float64))
        d2 = n2[aa] + n2[bb] - 2.0 * dot
        out[s : s + step] = np.sqrt(np.maximum(d2, 0.0))
    out[a == b] = 0.0
    return out


def _weight_bits(n: int) -> int:
    bits = min(24, 62 - KERNEL_BITS - int(math.ceil(math.log2(n + 1))))
    if bits < 8:
        raise InvalidInputError(f"pool of {n} rows is too large for exact int64 gains")
    return bits


def _quantize_weights(w: Optional[np.ndarray], n: int) -> tuple[np.ndarray, float]:
    """int64 weights and the float value of one unit (``None``: all ones, unit 1)."""
    if w is None:
        return np.ones(n, dtype=np.int64), 1.0
    top = float(w.max()) if w.size else 0.0
    if top <= 0:
        return np.zeros(n, dtype=np.int64), 1.0
    scale = float(2 ** _weight_bits(n))
    return np.floor(w / top * scale + 0.5).astype(np.int64), top / scale


def generalized_coverage(
    vectors: np.ndarray,
    rows: np.ndarray,
    *,
    kernel: str = "rbf",
    bandwidth: float = DEFAULT_BANDWIDTH,
    weights: Optional[np.ndarray] = None,
) -> float:
    """Exact ``1/N sum_x w(x) max_{s in rows} k(x, s)`` on L2-normalised ``vectors`` (float64).

    O(N * |rows| * d) time in blocks, O(N + block * |rows|) memory. 0 for no rows.
    """
    kernel = _check_kernel(kernel)
    bandwidth = float(_check_bandwidth(bandwidth))
    xn = _normalize(np.asarray(vectors, dtype=np.float32)).astype(np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    n = xn.shape[0]
    if rows.size == 0:
        return 0.0
    n2 = (xn * xn).sum(axis=1)
    s = xn[rows]
    best = np.empty(n, dtype=np.float64)
    for b in range(0, n, _BLOCK):
        d2 = n2[b : b + _BLOCK, None] + n2[rows][None, :] - 2.0 * (xn[b : b + _BLOCK] @ s.T)
        k = KERNELS[kernel](np.sqrt(np.maximum(d2, 0.0)) / bandwidth)
        best[b : b + _BLOCK] = k.max(axis=1)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    return float((w * best).mean())


def auto_bandwidth(
    xn: np.ndarray, n_cover: int, *, seed: int = 0, sample: int = AUTO_SAMPLE,
    queries: int = AUTO_QUERIES,
) -> tuple[float, int]:
    """The label-free bandwidth rule (see the module docstring); returns ``(h, m)``.

    O(Q * P * d) time with ``P = min(N, sample)`` and ``Q = min(P, queries)``, O(block * P)
    memory. Deterministic for a seed.
    """
    n = xn.shape[0]
    if n < 2:
        return DEFAULT_BANDWIDTH, 1
    rng = np.random.default_rng([int(seed), 0xB4])
    p_rows = np.sort(rng.choice(n, size=min(n, int(sample)), replace=False))
    p = p_rows.size
    q_pos = np.sort(rng.choice(p, size=min(p, int(queries)), replace=False))
    m = int(min(max(1, round(p / max(1, int(n_cover)))), p - 1))
    pts = xn[p_rows].astype(np.float64)
    n2 = (pts * pts).sum(axis=1)
    radii = np.empty(q_pos.size, dtype=np.float64)
    for b in range(0, q_pos.size, 256):
        qq = q_pos[b : b + 256]
        d2 = n2[qq, None] + n2[None, :] - 2.0 * (pts[qq] @ pts.T)
        d2[np.arange(qq.size), qq] = 0.0
        # position 0 is the query itself: the m-th other row is at sorted position m
        radii[b : b + 256] = np.sqrt(np.maximum(np.partition(d2, m, axis=1)[:, m], 0.0))
    h = float(np.median(radii))
    if not h > 0:
        positive = radii[radii > 0]
        h = float(positive.min()) if positive.size else DEFAULT_BANDWIDTH
    return h, m


def labeled_min_distance(xn: np.ndarray, labeled_rows: np.ndarray) -> Optional[float]:
    """Smallest positive distance between two labeled rows (UHerding's adaptive bandwidth).

    Duplicates are dropped first (the official code skips zero distances), then a FAISS 2-NN
    among the distinct labeled rows; distances recomputed in float64. ``None`` with fewer than two
    distinct labeled rows. O(L log L * d) for the deduplication plus the 2-NN search.
    """
    if labeled_rows.size < 2:
        return None
    lab = np.unique(xn[labeled_rows], axis=0)
    if lab.shape[0] < 2:
        return None
    lab = np.ascontiguousarray(lab, dtype=np.float32)
    index = build_index(lab, kind="flat")
    _, ind = knn(index, lab, 2)
    a = np.arange(lab.shape[0])
    b = np.where(ind[:, 0] == a, ind[:, 1], ind[:, 0])
    d = _pair_dist(lab, squared_norms64(lab), a, b)
    d = d[d > 0]
    return float(d.min()) if d.size else None


def margin_uncertainty(
    probs: np.ndarray, temperature: float = 1.0, *, logits: bool = False
) -> np.ndarray:
    """Margin uncertainty ``1 - (p1 - p2)`` per row of class probabilities (or logits / T).

    Parameters
    ----------
    probs : numpy.ndarray
        ``(N, C)`` probabilities, or logits with ``logits=True``.
    temperature : float
        Softmax temperature applied to logits (the official temperature scaling).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InvalidInputError(f"margin needs an (N, C >= 2) array; got shape {p.shape}")
    if logits:
        z = p / float(temperature)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def _fallback(avail: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([int(seed), 0x4E])
    return rng.choice(np.flatnonzero(avail), size=count, replace=False).astype(np.int64)


def _masked_argmax(g: np.ndarray, avail: np.ndarray) -> int:
    return int(np.argmax(np.where(avail, g, -1)))


# ------------------------------------------------------------------------------------- dense
def _kernel_block(x64: np.ndarray, n2: np.ndarray, rows: Any, cols: Any, kernel: str,
                  h: float, threshold: float) -> np.ndarray:
    """Quantised kernel ``k(x_rows, x_cols)`` as int64 ``(len(rows), len(cols))``.

    ``rows`` / ``cols`` are slices or index arrays of the float64 normalised rows ``x64``; the
    distance of a row to itself is exactly 0. The dense and the exact method both read their
    kernel values here, so they quantise the same distances.
    """
    r = np.arange(x64.shape[0])[rows]
    c = np.arange(x64.shape[0])[cols]
    d2 = n2[r, None] + n2[None, c] - 2.0 * (x64[rows] @ x64[cols].T)
    d = np.sqrt(np.maximum(d2, 0.0))
    d[r[:, None] == c[None, :]] = 0.0
    return kernel_values(d, kernel, h, threshold)


def _rows_per_block(n_cols: int) -> int:
    """Rows per kernel block so that a block holds about ``2**20`` values (O(chunk) memory)."""
    return max(1, min(_BLOCK, (1 << 20) // max(1, n_cols)))


def _dense_kernel(xn: np.ndarray, kernel: str, h: float, threshold: float) -> np.ndarray:
    n = xn.shape[0]
    x64 = xn.astype(np.float64)
    n2 = (x64 * x64).sum(axis=1)
    kq = np.empty((n, n), dtype=np.int32)
    for b in range(0, n, _BLOCK):
        kq[b : b + _BLOCK] = _kernel_block(x64, n2, slice(b, b + _BLOCK), slice(None), kernel, h,
                                           threshold)
    return kq


def _take_best(
    g: np.ndarray, avail: np.ndarray, picks: list[int], gains: list[int], budget: int, seed: int
) -> Optional[int]:
    """One greedy step on exact gains ``g``: the available row of largest gain (lowest on ties),
    appended to ``picks`` / ``gains`` and made unavailable; ``None`` once no gain is positive,
    after filling the rest of the budget with seeded random picks."""
    p = _masked_argmax(g, avail)
    if not (avail[p] and g[p] > 0):
        rest = _fallback(avail, budget - len(picks), seed)
        picks.extend(int(v) for v in rest)
        gains.extend([0] * rest.size)
        return None
    picks.append(p)
    gains.append(int(g[p]))
    avail[p] = False
    return p


def _dense_greedy(
    kq: np.ndarray, m: np.ndarray, wq: np.ndarray, avail: np.ndarray, budget: int, seed: int
) -> tuple[list[int], list[int], int]:
    """Exact greedy on the full kernel; O(N^2) to start, O(changed rows * N) per pick."""
    n = kq.shape[0]
    g = np.zeros(n, dtype=np.int64)
    for b in range(0, n, _BLOCK):
        g += wq[b : b + _BLOCK] @ np.maximum(kq[b : b + _BLOCK] - m[b : b + _BLOCK, None], 0)
    picks: list[int] = []
    gains: list[int] = []
    for step in range(budget):
        p = _take_best(g, avail, picks, gains, budget, seed)
        if p is None:
            return picks, gains, budget - step
        col = kq[:, p].astype(np.int64)
        xs = np.flatnonzero(col > m)
        for b in range(0, xs.size, _BLOCK):
            r = xs[b : b + _BLOCK]
            rows = kq[r].astype(np.int64)
            old = np.maximum(rows - m[r, None], 0)
            new = np.maximum(rows - col[r, None], 0)
            g -= wq[r] @ (old - new)
        m[xs] = col[xs]
    return picks, gains, 0


# ------------------------------------------------------------------------------------- exact
def _exact_gains(x64: np.ndarray, n2: np.ndarray, cols: Optional[np.ndarray], m: np.ndarray,
                 wq: np.ndarray, kernel: str, h: float, threshold: float) -> np.ndarray:
    """Exact gains ``sum_x w(x) max(k(x, c) - m(x), 0)`` of the rows ``cols`` (int64; ``None``:
    every row).

    The kernel is computed in blocks of rows against ``cols``: O(N * |cols| * d) time,
    O(2**20 + N) memory.
    """
    n = x64.shape[0]
    size = n if cols is None else cols.size
    sel = slice(None) if cols is None else cols
    g = np.zeros(size, dtype=np.int64)
    step = _rows_per_block(size)
    for b in range(0, n, step):
        kb = _kernel_block(x64, n2, slice(b, b + step), sel, kernel, h, threshold)
        g += wq[b : b + step] @ np.maximum(kb - m[b : b + step, None], 0)
    return g


def _exact_best(x64: np.ndarray, n2: np.ndarray, lab_rows: np.ndarray, kernel: str, h: float,
                threshold: float) -> np.ndarray:
    """``m(x)``: best quantised kernel value of each row over the labeled rows (0 with none)."""
    n = x64.shape[0]
    m = np.zeros(n, dtype=np.int64)
    if lab_rows.size == 0:
        return m
    step = _rows_per_block(lab_rows.size)
    for b in range(0, n, step):
        m[b : b + step] = _kernel_block(x64, n2, slice(b, b + step), lab_rows, kernel, h,
                                        threshold).max(axis=1)
    return m


def _exact_greedy(
    x64: np.ndarray, n2: np.ndarray, kernel: str, h: float, threshold: float, m: np.ndarray,
    wq: np.ndarray, avail: np.ndarray, budget: int, seed: int, chunk: int,
) -> tuple[list[int], list[int], int, int]:
    """Exact greedy without the N x N kernel: lazy evaluation of exact gains in chunks.

    Gains only fall as ``m`` rises (the objective is submodular), so a gain computed at an
    earlier step is an upper bound. Each step takes the available row of largest bound (lowest
    row on ties); when its bound was computed at this step it is the exact greedy pick (every
    other bound is at most its value, and a tie with a lower row would have been taken first),
    otherwise the ``chunk`` stale rows of largest bound are recomputed (doubling the chunk while
    the step goes on). Picks, gains and ties equal :func:`_dense_greedy` on the same quantised
    kernel. O(N^2 d) time for the first gains, then O(N d) per recomputed row and per pick;
    O(N d + 2**20) memory. Returns picks, gains, fallbacks and the number of recomputed rows.
    """
    n = x64.shape[0]
    g = _exact_gains(x64, n2, None, m, wq, kernel, h, threshold)
    stamp = np.zeros(n, dtype=np.int64)  # step at which g[row] was computed
    picks: list[int] = []
    gains: list[int] = []
    recomputed = 0
    for step in range(budget):
        size = chunk
        while True:
            p = _masked_argmax(g, avail)
            if stamp[p] == step or not (avail[p] and g[p] > 0):
                break
            stale = np.flatnonzero(avail & (stamp != step))
            if stale.size > size:
                top = np.argpartition(-g[stale], size - 1)[:size]
                stale = np.sort(stale[top])
            g[stale] = _exact_gains(x64, n2, stale, m, wq, kernel, h, threshold)
            stamp[stale] = step
            recomputed += int(stale.size)
            size = min(2 * size, 1 << 14)
        p = _take_best(g, avail, picks, gains, budget, seed)
        if p is None:
            return picks, gains, budget - step, recomputed
        col = np.empty(n, dtype=np.int64)
        rstep = _rows_per_block(1)
        for b in range(0, n, rstep):
            col[b : b + rstep] = _kernel_block(x64, n2, slice(b, b + rstep), np.array([p]),
                                               kernel, h, threshold)[:, 0]
        np.maximum(m, col, out=m)
    return picks, gains, 0, recomputed


# ------------------------------------------------------------------------------------ sparse
class _KnnKernel:
    """Row-restricted kernel: CSR forward lists (row -> candidates) and reverse lists."""

    __slots__ = ("fwd_ptr", "fwd_idx", "fwd_kq", "rev_ptr", "rev_src", "rev_kq", "truncated")

    def __init__(self, xn: np.ndarray, kernel: str, h: float, threshold: float, knn_k: int,
                 index_kind: str, nprobe: Optional[int], nlist: Optional[int], seed: int,
                 clock: "_Clock") -> None:
        n = xn.shape[0]
        k = min(int(knn_k), n)
        index = build_neighbors(xn, kind=index_kind, nprobe=nprobe, nlist=nlist, seed=seed)
        clock.stage("index")
        dist64 = None
        if isinstance(index, IVFJoin):  # float64 pair distances from the join's cached blocks
            dist64, ind = index.knn(k, float64=True)
        else:
            _, ind = knn_rows(index, xn, k)
        del index
        clock.stage("knn")
        n2 = squared_norms64(xn)
        fwd_counts = np.zeros(n, dtype=np.int64)
        idx_parts: list[np.ndarray] = []
        kq_parts: list[np.ndarray] = []
        truncated = 0
        step = max(1, PAIRS_PER_BLOCK // k)  # rows per block
        for s0 in range(0, n, step):
            blk = ind[s0 : s0 + step]
            rows = np.arange(s0, s0 + blk.shape[0], dtype=np.int64)
            has_self = (blk == rows[:, None]).any(axis=1)
            if not has_self.all():  # approximate search (or > k duplicates) missed the row
                blk[~has_self, -1] = rows[~has_self]
                if dist64 is not None:
                    dist64[rows[~has_self], -1] = 0.0
            valid = blk >= 0
            src = np.repeat(rows, valid.sum(axis=1))
            dst = blk[valid]
            if dist64 is None:
                d = _pair_dist(xn, n2, src, dst)
            else:
                d = dist64[s0 : s0 + blk.shape[0]][valid]
            kq = kernel_values(d, kernel, h, threshold)
            if k < n:
                # a row's list is complete when its farthest listed row has kernel value 0 (after
                # the threshold): the kernel decreases with distance, so unlisted rows have 0 too
                counts = valid.sum(axis=1)  # >= 1 per row: the self edge
                dmax = np.maximum.reduceat(d, np.cumsum(counts) - counts)
                truncated += int(np.count_nonzero(
                    (kernel_values(dmax, kernel, h, threshold) > 0) | (counts < k)))
            keep = kq > 0
            fwd_counts[s0 : s0 + blk.shape[0]] = np.bincount(
                src[keep] - s0, minlength=blk.shape[0])
            idx_parts.append(dst[keep].astype(np.int32))
            kq_parts.append(kq[keep].astype(np.int32))
        del ind, dist64
        self.truncated = truncated
        self.fwd_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(fwd_counts, out=self.fwd_ptr[1:])
        self.fwd_idx = np.concatenate(idx_parts)
        self.fwd_kq = np.concatenate(kq_parts)
        del idx_parts, kq_parts
        order = np.argsort(self.fwd_idx, kind="stable")
        rev_counts = np.bincount(self.fwd_idx, minlength=n).astype(np.int64)
        self.rev_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(rev_counts, out=self.rev_ptr[1:])
        self.rev_kq = self.fwd_kq[order]
        self.rev_src = np.repeat(np.arange(n, dtype=np.int32), fwd_counts)[order]
        del order
        clock.stage("kernel")

    @property
    def n_edges(self) -> int:
        return int(self.fwd_idx.shape[0])


def _sparse_greedy(
    kk: _KnnKernel, m: np.ndarray, wq: np.ndarray, avail: np.ndarray, budget: int, seed: int
) -> tuple[list[int], list[int], int]:
    """Exact greedy on the restricted kernel with incremental gains.

    O(E) to start; per pick O(N) for the argmax plus ``knn_k`` edges per row whose ``m`` rose.
    """
    n = m.shape[0]
    src = kk.rev_src
    contrib = wq[src] * np.maximum(kk.rev_kq.astype(np.int64) - m[src], 0)
    csum = np.concatenate(([0], np.cumsum(contrib)))
    g = csum[kk.rev_ptr[1:]] - csum[kk.rev_ptr[:-1]]
    del contrib, csum
    picks: list[int] = []
    gains: list[int] = []
    for step in range(budget):
        p = _take_best(g, avail, picks, gains, budget, seed)
        if p is None:
            return picks, gains, budget - step
        lo, hi = kk.rev_ptr[p], kk.rev_ptr[p + 1]
        xs = kk.rev_src[lo:hi].astype(np.int64)
        ks = kk.rev_kq[lo:hi].astype(np.int64)
        up = ks > m[xs]
        xs, ks = xs[up], ks[up]
        if xs.size:
            pos = segment_positions(kk.fwd_ptr, xs)
            lens = kk.fwd_ptr[xs + 1] - kk.fwd_ptr[xs]
            kv = kk.fwd_kq[pos].astype(np.int64)
            old = np.maximum(kv - np.repeat(m[xs], lens), 0)
            new = np.maximum(kv - np.repeat(ks, lens), 0)
            dec = np.repeat(wq[xs], lens) * (old - new)
            np.subtract.at(g, kk.fwd_idx[pos], dec)
            m[xs] = ks
    return picks, gains, 0


def _initial_best(
    xn: np.ndarray, lab_rows: np.ndarray, kernel: str, h: float, threshold: float
) -> np.ndarray:
    """``m(x)``: quantised kernel of each row's nearest labeled row (0 with none)."""
    n = xn.shape[0]
    m = np.zeros(n, dtype=np.int64)
    if lab_rows.size == 0:
        return m
    lab = np.ascontiguousarray(xn[lab_rows])
    kk = min(4, lab_rows.size)
    index = build_index(lab, kind="flat")
    _, ind = knn(index, xn, kk)
    src = np.repeat(np.arange(n, dtype=np.int64), kk)
    dst = lab_rows[np.maximum(ind.reshape(-1), 0)]
    d = _pair_dist(xn, squared_norms64(xn), src, dst).reshape(n, kk)
    d[ind < 0] = np.inf
    m = kernel_values(d.min(axis=1), kernel, h, threshold)
    m[lab_rows] = kernel_values(np.zeros(1), kernel, h, threshold)[0]
    return m


class _Clock:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self.t
        self.t = now


class MaxHerding(Selector):
    """Greedy maximisation of generalized coverage (MaxHerding); see the module docstring.

    Parameters
    ----------
    bandwidth : float or "auto"
        Kernel bandwidth ``h`` on L2-normalised features (official default 1.0), or ``"auto"`` for
        the label-free rule of the module docstring.
    kernel : str
        ``rbf`` (default), ``tophat``, ``student``, ``laplace``, ``cauchy`` or ``rational``.
    method : {"auto", "exact", "sparse", "dense"}
        ``"exact"``: the exact greedy by lazy chunked gains, no N x N matrix (O(N^2 d) time);
        ``"sparse"``: the neighbour-restricted kernel (any N; see the module docstring for its
        loss); ``"auto"`` (default): exact up to ``exact_max_rows`` rows, sparse above;
        ``"dense"``: the full kernel in memory (N <= ``dense_max_rows``), the tests' reference.
    knn_k : int
        Neighbours per row of the sparse kernel (self included).
    threshold : float
        Kernel values below it count as 0 (every method).
    index_kind, nprobe, nlist :
        FAISS index of the sparse kNN (``"auto"``: exact flat up to 100k rows, IVF above).
    dense_max_rows : int
        Largest pool accepted by ``method="dense"``.
    exact_max_rows : int
        Largest pool on which ``method="auto"`` is exact.

    Notes
    -----
    ``info``: ``bandwidth``, ``kernel``, ``method``, ``coverage`` / ``initial_coverage`` (mean
    best kernel value under the objective optimised), ``fallbacks`` (seeded random picks once no
    candidate has a positive gain), sparse: ``knn_k``, ``edges``, ``rows_truncated``,
    ``lists_complete``; ``seconds`` per stage. Gains are the increase of ``C(S)`` per pick.

    Cost, sparse: one FAISS kNN (O(N^2 d) exact flat, sub-quadratic with IVF), O(N k d) for the
    float64 distances, O(N k) memory for the lists (int32 indices and values, both directions),
    greedy O(budget * N + k * rows whose best value rose). Exact: O(N^2 d) for the first gains,
    O(N d) per recomputed row and per pick, O(N d) memory. Dense: O(N^2 d) time and O(N^2)
    memory. No ``N x N`` matrix in the exact and sparse methods (``auto`` picks one of them).
    """

    name = "maxherding"

    def __init__(
        self,
        bandwidth: Union[float, str] = DEFAULT_BANDWIDTH,
        kernel: str = "rbf",
        method: str = "auto",
        knn_k: int = 64,
        threshold: float = 0.0,
        index_kind: str = "auto",
        nprobe: Optional[int] = None,
        nlist: Optional[int] = None,
        dense_max_rows: int = DENSE_MAX_ROWS,
        exact_max_rows: int = EXACT_MAX_ROWS,
    ) -> None:
        self.bandwidth = _check_bandwidth(bandwidth)
        self.kernel = _check_kernel(kernel)
        if method not in _METHODS:
            raise InvalidInputError(f"method must be one of {_METHODS}; got {method!r}")
        self.method = method
        if int(knn_k) < 2:
            raise InvalidInputError(f"knn_k must be >= 2; got {knn_k!r}")
        self.knn_k = int(knn_k)
        if not (math.isfinite(float(threshold)) and 0.0 <= float(threshold) < 1.0):
            raise InvalidInputError(f"threshold must lie in [0, 1); got {threshold!r}")
        self.threshold = float(threshold)
        if index_kind not in ("auto", "flat", "ivf"):
            raise InvalidInputError(
                f"index_kind must be 'auto', 'flat' or 'ivf'; got {index_kind!r}"
            )
        self.index_kind = index_kind
        self.nprobe = None if nprobe is None else int(nprobe)
        self.nlist = None if nlist is None else int(nlist)
        self.dense_max_rows = int(dense_max_rows)
        self.exact_max_rows = int(exact_max_rows)

    # hooks of UHerding
    def _weights(
        self, scores: ScoresLike, n: int, labeled: np.ndarray
    ) -> tuple[Optional[np.ndarray], dict]:
        return None, {}

    def _bandwidth(
        self, xn: np.ndarray, labeled: np.ndarray, budget: int, seed: int
    ) -> tuple[float, dict]:
        if self.bandwidth == "auto":
            h, m = auto_bandwidth(xn, int(labeled.sum()) + budget, seed=seed)
            return h, {"bandwidth_rule": "auto", "bandwidth_neighbours": m}
        return float(self.bandwidth), {}

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` rows by greedy generalized coverage; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled)
        n = inp.vectors.shape[0]
        weights, info = self._weights(scores, n, inp.labeled)
        method = self.method
        if method == "auto":
            method = "exact" if n <= self.exact_max_rows else "sparse"
        if method == "dense" and n > self.dense_max_rows:
            raise InvalidInputError(
                f"method='dense' builds an N x N kernel; {n} rows exceed dense_max_rows="
                f"{self.dense_max_rows}: use method='exact' or 'sparse'"
            )
        clock = _Clock()
        xn = _normalize(inp.vectors)
        h, hinfo = self._bandwidth(xn, inp.labeled, inp.budget, seed)
        info.update(hinfo)
        clock.stage("bandwidth")
        if inp.budget == 0:
            info.update(bandwidth=h, kernel=self.kernel, method=method, fallbacks=0)
            return Selection(np.empty(0, np.int64), np.empty(0, np.float64), info)
        lab_rows = np.flatnonzero(inp.labeled)
        wq, unit = _quantize_weights(weights, n)
        avail = ~inp.labeled
        if method == "exact":
            x64 = xn.astype(np.float64)
            n2 = (x64 * x64).sum(axis=1)
            m = _exact_best(x64, n2, lab_rows, self.kernel, h, self.threshold)
            clock.stage("labeled")
            m0 = float(m.mean()) / _KSCALE
            picks, gains, fallbacks, recomputed = _exact_greedy(
                x64, n2, self.kernel, h, self.threshold, m, wq, avail, inp.budget, seed,
                EXACT_CHUNK)
            del x64
            info.update(gains_recomputed=recomputed)
        elif method == "dense":
            kq = _dense_kernel(xn, self.kernel, h, self.threshold)
            clock.stage("kernel")
            m = np.zeros(n, np.int64)
            if lab_rows.size:
                m = kq[:, lab_rows].max(axis=1).astype(np.int64)
            m0 = float(m.mean()) / _KSCALE
            picks, gains, fallbacks = _dense_greedy(kq, m, wq, avail, inp.budget, seed)
            del kq
        else:
            kk = _KnnKernel(xn, self.kernel, h, self.threshold, self.knn_k, self.index_kind,
                            self.nprobe, self.nlist, seed, clock)
            m = _initial_best(xn, lab_rows, self.kernel, h, self.threshold)
            clock.stage("labeled")
            m0 = float(m.mean()) / _KSCALE
            picks, gains, fallbacks = _sparse_greedy(kk, m, wq, avail, inp.budget, seed)
            info.update(
                knn_k=min(self.knn_k, n), edges=kk.n_edges, rows_truncated=kk.truncated,
                lists_complete=kk.truncated == 0,
            )
        clock.stage("greedy")
        info.update(
            bandwidth=h,
            kernel=self.kernel,
            method=method,
            threshold=self.threshold,
            initial_coverage=m0,
            coverage=float(m.mean()) / _KSCALE,
            fallbacks=int(fallbacks),
            seconds=clock.seconds,
        )
        if fallbacks:
            logger.info("%s: %d seeded random picks (no positive gain left)", self.name, fallbacks)
        return Selection(
            indices=np.asarray(picks, dtype=np.int64),
            gains=np.asarray(gains, dtype=np.float64) * (unit / _KSCALE / n),
            info=info,
        )


class UHerding(MaxHerding):
    """Uncertainty herding: generalized coverage weighted by margin uncertainty.

    Parameters
    ----------
    score : str, optional
        Score column when ``scores`` is a mapping (the margin uncertainty ``1 - (p1 - p2)``, see
        :func:`margin_uncertainty`); values must be non-negative.
    score_transform : {"identity", "one_minus"}
        ``"one_minus"`` reads a margin ``p1 - p2`` (e.g. the workspace's ``margin_min``) and uses
        ``1 - value``.
    adaptive_bandwidth : bool
        Official ``adaptive_delta``: ``h`` = smallest positive distance between two labeled rows
        times ``bandwidth_scale`` (with fewer than two distinct labeled rows, ``bandwidth`` is
        used).
    bandwidth_scale : float
        The official ``delta_scale`` (hard-coded to 1.0 in the official code, the default here):
        multiplies the adaptive bandwidth. Larger values keep UHerding closer to MaxHerding for
        more rounds; smaller values move it towards margin sampling sooner. Ignored without
        ``adaptive_bandwidth``. ``benchmarks/al_quality.py --tune --tune-what uherding-scale``
        measures it on a tuning split.
    **kwargs
        The parameters of :class:`MaxHerding` (``bandwidth`` is the fallback of the adaptive
        rule).

    Notes
    -----
    With no labeled rows every weight is 1 (the official code: no model, no uncertainty), so the
    first round is MaxHerding; scores are still required and checked. Labeled rows weigh 0.
    ``info["uncertainty"]`` says which weights were used. Same cost as :class:`MaxHerding`, plus
    the deduplication and a 2-NN search over the labeled rows for the adaptive bandwidth.
    """

    name = "uherding"
    needs_scores = True

    def __init__(
        self,
        score: Optional[str] = None,
        score_transform: str = "identity",
        adaptive_bandwidth: bool = True,
        bandwidth_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        ok = isinstance(bandwidth_scale, (int, float, np.floating, np.integer)) and not isinstance(
            bandwidth_scale, bool
        )
        if not ok or not math.isfinite(float(bandwidth_scale)) or float(bandwidth_scale) <= 0:
            raise InvalidInputError(
                "bandwidth_scale must be a positive finite number (the official delta_scale, "
                f"default 1.0); got {bandwidth_scale!r}"
            )
        if score_transform not in _TRANSFORMS:
            raise InvalidInputError(
                f"score_transform must be one of {_TRANSFORMS}; got {score_transform!r}"
            )
        self.score = score
        self.score_transform = score_transform
        self.adaptive_bandwidth = bool(adaptive_bandwidth)
        self.bandwidth_scale = float(bandwidth_scale)

    def _weights(
        self, scores: ScoresLike, n: int, labeled: np.ndarray
    ) -> tuple[Optional[np.ndarray], dict]:
        one_minus = self.score_transform == "one_minus"
        u = get_uncertainty(
            scores, self.score, n, who=self.name, one_minus=one_minus,
            hint="" if one_minus else " (is the score a margin? set score_transform='one_minus')",
        )
        if not labeled.any():
            return None, {"uncertainty": "uniform (no labeled rows)"}
        u = u.copy()
        u[labeled] = 0.0
        return u, {"uncertainty": "scores"}

    def _bandwidth(
        self, xn: np.ndarray, labeled: np.ndarray, budget: int, seed: int
    ) -> tuple[float, dict]:
        if self.adaptive_bandwidth:
            h = labeled_min_distance(xn, np.flatnonzero(labeled))
            if h is not None:
                return h * self.bandwidth_scale, {
                    "bandwidth_rule": "labeled_min_distance",
                    "bandwidth_scale": self.bandwidth_scale,
                }
        return super()._bandwidth(xn, labeled, budget, seed)
