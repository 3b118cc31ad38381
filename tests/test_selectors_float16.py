"""Half-precision pools: k-center, ProbCover and TypiClust take float16 vectors as they are.

(a) Their picks and gains equal those of the exact float32 upcast (``x.astype(np.float32)``) bit
for bit, ties included, on every path: naive and pruned k-center (labeled rows, duplicated
rows), ProbCover on the flat index and on the IVF join (forced on small data with
``index_kind="ivf"`` and a small ``nlist``, as tests/test_neighbors_join.py does), TypiClust
(full, sampled and float16-code k-means; normalised rows), and the kernels underneath.

(b) Selecting from a float16 pool allocates well under one float32 copy of it (tracemalloc sees
numpy's buffers; FAISS's own C++ buffers are not traced). Fixed-size work blocks (the IVF
join's distance block, FAISS search blocks) are shrunk where the pools are kept small for speed,
so that the bound measures what grows with ``N * d``.
"""

from __future__ import annotations


import numpy as np
import pytest
from memtrace import peak_extra  # tests/memtrace.py

from curate.selectors import KCenterGreedy, ProbCover, TypiClust, UncertaintyProbCover
from curate.selectors import _distances, _ivf_join, _kcenter_pruned, _kmeans, kcenter
from curate.selectors._distances import (
    Float32Rows,
    min_sq_dist_to_set,
    sq_dist_to_point,
    squared_norms,
)
from curate.selectors._ivf_join import IVFJoin
from curate.selectors._kmeans import kmeans, search_block_rows
from curate.selectors.probcover import normalize_rows, normalized_rows_view


def _pool(n: int, d: int, clusters: int = 12, seed: int = 0, dup: int = 0) -> np.ndarray:
    """Clustered float16 rows; the last ``dup`` rows repeat earlier ones (exact ties)."""
    rng = np.random.default_rng(seed)
    cent = rng.standard_normal((clusters, d)) * 2.0
    x = cent[rng.integers(0, clusters, n)] + rng.standard_normal((n, d)) * 0.6
    if dup:
        x[n - dup :] = x[rng.choice(n - dup, dup, replace=False)]
    return x.astype(np.float16)


def _same(sel, x16: np.ndarray, budget: int, **kw):
    """Run ``sel`` on the float16 pool and on its float32 upcast; assert equal results."""
    a = sel.select(x16, budget, **kw)
    b = sel.select(x16.astype(np.float32), budget, **kw)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.gains, b.gains)
    return a, b


@pytest.fixture
def small_blocks(monkeypatch):
    """Upcast blocks of a few hundred rows, so small pools cross many block boundaries."""
    for mod in (_distances, kcenter, _kcenter_pruned):
        monkeypatch.setattr(mod, "UPCAST_ROWS", 777)
    monkeypatch.setattr(_distances, "NORM_BLOCK_BYTES", 8 * 333 * 16)


# ----------------------------------------------------------------------------- kernels
def test_kernels_on_float16_equal_their_float32_upcast(small_blocks) -> None:
    x16 = _pool(5000, 33, dup=50)
    x32 = x16.astype(np.float32)
    n16, n32 = squared_norms(x16), squared_norms(x32)
    np.testing.assert_array_equal(n16, n32)
    for c in (x16[7], x16[4999]):
        np.testing.assert_array_equal(sq_dist_to_point(x16, n16, c),
                                      sq_dist_to_point(x32, n32, c.astype(np.float32)))
    lab = np.arange(0, 5000, 97)
    np.testing.assert_array_equal(min_sq_dist_to_set(x16, x16[lab], max_rows=777),
                                  min_sq_dist_to_set(x32, x32[lab], max_rows=777))


def test_normalized_view_equals_normalize_rows() -> None:
    x16 = _pool(3000, 20)
    x16[5] = 0  # an all-zero row stays zero
    view = normalized_rows_view(x16)
    full = normalize_rows(x16.astype(np.float32))
    rows = np.array([5, 0, 2999, 17, 17])
    np.testing.assert_array_equal(view[0:3000], full)
    np.testing.assert_array_equal(view[rows], full[rows])
    np.testing.assert_array_equal(view[17], full[17])
    mask = np.zeros(3000, dtype=bool)
    mask[::7] = True
    np.testing.assert_array_equal(view[mask], full[mask])
    # a float32 base is read in place and never written
    base = x16.astype(np.float32)
    keep = base.copy()
    Float32Rows(base, np.sqrt(squared_norms(base)) + 1)[0:100]
    np.testing.assert_array_equal(base, keep)


# ----------------------------------------------------------------------------- k-means
@pytest.mark.parametrize(
    "n, d, k, kw",
    [
        (4000, 16, 8, {}),  # every row, upcast whole (small)
        (30000, 24, 60, {}),  # sampled training: FAISS's own sample, drawn here
        (6000, 16, 10, {"sample_per_cluster": 100, "n_init": 2}),
    ],
)
def test_kmeans_float16_equals_float32(n: int, d: int, k: int, kw: dict) -> None:
    x16 = _pool(n, d, seed=n)
    a, b = kmeans(x16, k, seed=3, **kw), kmeans(x16.astype(np.float32), k, seed=3, **kw)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("n, d", [(4096 * 5 + 3, 64), (30000, 32), (50001, 8), (4096 * 7, 40)])
def test_kmeans_on_float16_codes_in_blocks_equals_float32(monkeypatch, n: int, d: int) -> None:
    """Training on every row of a big float16 pool decodes its codes one block at a time (forced
    here on small pools); the blocks keep FAISS's BLAS query blocks, tails included."""
    monkeypatch.setattr(_kmeans, "FULL_UPCAST_BYTES", 0)
    monkeypatch.setattr(_kmeans, "BLOCK_BYTES", 1)
    b = search_block_rows(n, d)
    assert b < n and (n % b == 0 or n % b >= 4096)
    x16 = _pool(n, d, seed=d)
    a, ref = kmeans(x16, 7, seed=2, n_init=2), kmeans(x16.astype(np.float32), 7, seed=2, n_init=2)
    np.testing.assert_array_equal(a[0], ref[0])
    np.testing.assert_array_equal(a[1], ref[1])


# ----------------------------------------------------------------------------- k-center
@pytest.mark.parametrize("algorithm", ["naive", "pruned"])
@pytest.mark.parametrize("labeled", [None, "some"])
def test_kcenter_float16_equals_float32(small_blocks, algorithm: str, labeled) -> None:
    x16 = _pool(6000, 24, dup=300)
    lab = None if labeled is None else np.arange(0, 6000, 301)
    sel = KCenterGreedy(algorithm=algorithm, n_clusters=40)
    a, _ = _same(sel, x16, 120, labeled=lab, seed=4)
    assert a.info["algorithm"] == algorithm


def test_kcenter_float16_ties_and_real_block_sizes() -> None:
    """Above one upcast block (32k rows) with the module's own constants; duplicated rows make
    exact ties, broken by the lowest row on both dtypes."""
    x16 = _pool(70000, 8, clusters=30, dup=5000)
    lab = np.arange(0, 70000, 9001)
    for algorithm in ("naive", "pruned"):
        a, _ = _same(KCenterGreedy(algorithm=algorithm), x16, 300, labeled=lab, seed=1)
        assert a.info["coverage_radius"] > 0


def test_kcenter_float16_float64_dtype_and_stop() -> None:
    x16 = _pool(2000, 12, dup=100)
    _same(KCenterGreedy(dtype="float64"), x16, 40, labeled=[0, 1, 2], seed=0)
    _same(KCenterGreedy(min_distance=2.0), x16, 200, seed=0)


def test_kcenter_torch_cpu_float16_equals_float32() -> None:
    pytest.importorskip("torch")
    x16 = _pool(3000, 16, dup=100)
    _same(KCenterGreedy(backend="torch", device="cpu"), x16, 30, labeled=[3, 9], seed=2)


# ----------------------------------------------------------------------------- ProbCover
@pytest.mark.parametrize("kw", [{}, {"delta": 0.45}, {"delta_grid": [0.3, 0.4, 0.5]}])
def test_probcover_flat_float16_equals_float32(kw: dict) -> None:
    x16 = _pool(1500, 16, dup=60)
    a, b = _same(ProbCover(**kw), x16, 25, labeled=np.arange(0, 1500, 150), seed=3)
    assert a.info["delta"] == b.info["delta"] and a.info["coverage"] == b.info["coverage"]


@pytest.mark.parametrize(
    "kw",
    [
        {"nlist": 12, "nprobe": 4},  # approximate join, purity radii from the join
        {"nlist": 12, "nprobe": 12},  # every list probed
        {"nlist": 16, "nprobe": 3, "delta": 0.4, "loss_sample": 300},
        {"nlist": 12, "nprobe": 4, "purity_sample": 500, "purity_kmeans_sample": 100},
    ],
)
def test_probcover_ivf_join_float16_equals_float32(kw: dict) -> None:
    x16 = _pool(3000, 16, dup=100)
    sel = ProbCover(index_kind="ivf", **kw)
    a, b = _same(sel, x16, 30, labeled=np.arange(0, 3000, 211), seed=1)
    assert a.info["approximation"]["method"] == "ivf-join"
    for key in ("delta", "coverage", "graph_edges", "approximation"):
        assert a.info[key] == b.info[key]


def test_weighted_probcover_float16_equals_float32() -> None:
    x16 = _pool(2500, 16)
    u = np.random.default_rng(1).random(2500)
    _same(UncertaintyProbCover(delta=0.5, index_kind="ivf", nlist=10, nprobe=3), x16, 20,
          scores=u, seed=0)


def test_ivf_join_on_float16_and_view_equals_float32() -> None:
    x16 = _pool(3000, 16)
    x32 = x16.astype(np.float32)
    a = IVFJoin.build(x16, nlist=20, nprobe=3, seed=1)
    b = IVFJoin.build(x32, nlist=20, nprobe=3, seed=1)
    np.testing.assert_array_equal(a.assign, b.assign)
    for ra, rb in zip(a.knn(8, float64=True), b.knn(8, float64=True)):
        np.testing.assert_array_equal(ra, rb)
    va = IVFJoin.build(normalized_rows_view(x16), nlist=20, nprobe=3, seed=1).range_graph(0.4)
    vb = IVFJoin.build(normalize_rows(x32), nlist=20, nprobe=3, seed=1).range_graph(0.4)
    np.testing.assert_array_equal(va.ptr, vb.ptr)
    np.testing.assert_array_equal(va.idx, vb.idx)


# ----------------------------------------------------------------------------- TypiClust
@pytest.mark.parametrize(
    "kw, n_labeled",
    [
        ({}, 5),  # k <= 50: k-means on every row
        ({"max_clusters": 80}, 70),  # k > 50: sampled k-means
        ({"normalize": True}, 5),
        ({"normalize": True, "max_clusters": 60}, 55),
        ({"incremental": False}, 5),
    ],
)
def test_typiclust_float16_equals_float32(kw: dict, n_labeled: int) -> None:
    x16 = _pool(20000, 16, clusters=40, dup=200)
    lab = np.random.default_rng(0).choice(20000, n_labeled, replace=False)
    _same(TypiClust(**kw), x16, 20, labeled=lab, seed=7)


def test_typiclust_float16_codes_path_equals_float32(monkeypatch) -> None:
    monkeypatch.setattr(_kmeans, "FULL_UPCAST_BYTES", 0)
    monkeypatch.setattr(_kmeans, "BLOCK_BYTES", 1)
    x16 = _pool(9000, 32, clusters=30)
    _same(TypiClust(), x16, 12, labeled=[1, 2, 3], seed=0)


# ----------------------------------------------------------------------------- memory


@pytest.mark.parametrize("algorithm, budget", [("naive", 20), ("pruned", 100)])
def test_kcenter_float16_pool_makes_no_float32_copy(algorithm: str, budget: int) -> None:
    x16 = _pool(400_000, 64, clusters=40)
    labeled = np.arange(5)
    res, extra = peak_extra(
        lambda: KCenterGreedy(algorithm=algorithm).select(x16, budget, labeled=labeled, seed=0))
    assert res.info["algorithm"] == algorithm and len(res.indices) == budget
    assert extra < 0.6 * x16.size * 4, (extra, x16.size * 4)


def test_probcover_ivf_float16_pool_makes_no_float32_copy(monkeypatch) -> None:
    # fixed-size blocks shrunk (the join's distance block, the list assignment's search block)
    monkeypatch.setattr(_ivf_join, "BLOCK_PAIRS", 1 << 20)
    monkeypatch.setattr(_ivf_join, "ASSIGN_ROWS", 8192)
    x16 = _pool(60_000, 256, clusters=200)
    labeled = np.arange(5)
    sel = ProbCover(index_kind="ivf", nlist=200, nprobe=3, purity_sample=2000, knn_k=16,
                    delta_grid=[0.2, 0.25], loss_sample=None)
    res, extra = peak_extra(lambda: sel.select(x16, 20, labeled=labeled, seed=0))
    assert len(res.indices) == 20 and res.info["delta"] > 0
    # the float32 path alone adds a normalised float32 copy (x16.size * 4 bytes)
    assert extra < 0.6 * x16.size * 4, (extra, x16.size * 4)


def test_typiclust_float16_pool_makes_no_float32_copy() -> None:
    x16 = _pool(200_000, 256, clusters=300)
    labeled = np.random.default_rng(0).choice(x16.shape[0], 195, replace=False)
    sel = TypiClust(max_clusters=200)  # k = 200: sampled k-means, 1000-row clusters
    res, extra = peak_extra(lambda: sel.select(x16, 5, labeled=labeled, seed=0))
    assert len(res.indices) == 5
    assert extra < 0.6 * x16.size * 4, (extra, x16.size * 4)


def test_kmeans_on_every_float16_row_makes_no_float32_copy() -> None:
    """TypiClust's k-means with at most 50 clusters trains on every row: float16 codes decoded
    one block at a time (FAISS's decode buffer is not traced; the rest is)."""
    x16 = _pool(200_000, 64, clusters=20)
    (labels, _), extra = peak_extra(lambda: kmeans(x16, 10, seed=0, n_iter=5))
    assert labels.shape == (200_000,)
    assert extra < 0.6 * x16.size * 4, (extra, x16.size * 4)
