"""The IVF join in blocks (curate/selectors/_ivf_join.py) against brute force on small data."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import InvalidInputError
from curate.selectors import _ivf_join
from curate.selectors._ivf_join import IVFJoin, knn_recall, range_recall
from curate.selectors._neighbors import (
    build_index,
    build_neighbors,
    knn,
    knn_rows,
    nearest_other_label_rows,
    range_graph,
    range_graph_rows,
)
from curate.selectors.herding import MaxHerding
from curate.selectors.probcover import ProbCover, _nearest_other_label, normalize_rows


def _blobs(n: int = 3000, d: int = 24, centres: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    x = c[rng.integers(0, centres, n)] + 0.35 * rng.normal(size=(n, d))
    return normalize_rows(x.astype(np.float32))


def _exact_d2(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    sq = (x64 * x64).sum(1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * x64 @ x64.T, 0.0)


@pytest.fixture(scope="module")
def xn() -> np.ndarray:
    return _blobs()


@pytest.fixture(scope="module")
def d2(xn: np.ndarray) -> np.ndarray:
    return _exact_d2(xn)


def test_exhaustive_join_knn_equals_brute_force(xn: np.ndarray, d2: np.ndarray) -> None:
    join = IVFJoin.build(xn, nlist=16, nprobe=16, seed=0)
    dist, ind = join.knn(10)
    want = np.argsort(d2, axis=1, kind="stable")[:, :10]
    # squared: sqrt magnifies the float32 rounding of a zero self distance to ~3e-4
    np.testing.assert_allclose(dist.astype(np.float64) ** 2, np.take_along_axis(d2, want, 1),
                               atol=2e-6)
    # same ids wherever the 10th and 11th exact distances are not a float32 near-tie
    kth = np.sort(d2, axis=1)[:, 9:11]
    clear = (kth[:, 1] - kth[:, 0]) > 1e-4
    assert clear.mean() > 0.9
    for r in np.flatnonzero(clear):
        assert set(ind[r].tolist()) == set(want[r].tolist())
    assert (ind[:, 0] == np.arange(len(xn))).mean() > 0.99  # self first (no duplicates here)
    rows = np.arange(0, len(xn), 7)
    assert knn_recall(xn, ind[rows], rows) == pytest.approx(1.0)


def test_join_knn_of_some_rows_equals_those_rows_of_all(xn: np.ndarray) -> None:
    join = IVFJoin.build(xn, nlist=20, nprobe=3, seed=1)
    dist, ind = join.knn(8)
    rows = np.array([2999, 5, 17, 1000, 3])  # any order
    sd, si = join.knn(8, rows)
    # same candidates; a GEMM of another shape may round the last float32 bit differently
    np.testing.assert_array_equal(si, ind[rows])
    np.testing.assert_allclose(sd.astype(np.float64) ** 2, dist[rows].astype(np.float64) ** 2,
                               atol=2e-6)


def test_approximate_join_lists_true_distances_and_reports_recall(
    xn: np.ndarray, d2: np.ndarray
) -> None:
    join = IVFJoin.build(xn, nlist=40, nprobe=3, seed=0)
    dist, ind = join.knn(16)
    ok = ind >= 0
    # every listed pair carries its true distance, ascending
    true = d2[np.arange(len(xn))[:, None], np.where(ok, ind, 0)]
    np.testing.assert_allclose(dist[ok].astype(np.float64) ** 2, true[ok], atol=2e-6)
    assert (np.diff(np.where(ok, dist, np.inf), axis=1)[:, :-1] >= -1e-6).all()
    rows = np.arange(0, len(xn), 5)
    rec = knn_recall(xn, ind[rows], rows)
    # independent recall: fraction of listed rows no farther than the exact 16th distance
    kth = np.sort(d2[rows], axis=1)[:, 15]
    listed = d2[rows[:, None], np.where(ok[rows], ind[rows], 0)]
    want = float(((listed <= kth[:, None] + 1e-6) & ok[rows]).sum()) / (rows.size * 16)
    assert rec == pytest.approx(want, abs=2e-3)
    assert 0.5 < rec < 1.0  # approximate: loses some neighbours, finds most
    # the per-query FAISS IVF search with the same lists is the peer; both measured the same way
    index = build_index(xn, kind="ivf", nlist=40, nprobe=3, seed=0)
    _, pind = knn(index, xn[rows], 16)
    peer = knn_recall(xn, pind, rows)
    assert 0.5 < peer <= 1.0
    # the exact lists have recall 1; with 4 of 16 entries replaced by far rows, 12/16
    exact = np.argsort(d2[rows], axis=1, kind="stable")[:, :16]
    assert knn_recall(xn, exact, rows) == pytest.approx(1.0)
    exact[:, 12:] = np.argmax(d2[rows], axis=1)[:, None]
    assert knn_recall(xn, exact, rows) == pytest.approx(12 / 16, abs=1e-3)


def test_exhaustive_join_range_graph_equals_brute_force(xn: np.ndarray, d2: np.ndarray) -> None:
    radius = 0.45
    join = IVFJoin.build(xn, nlist=16, nprobe=16, seed=0)
    g = join.range_graph(radius)
    exact = d2 < radius * radius
    got = np.zeros_like(exact)
    rows = np.repeat(np.arange(g.n), np.diff(g.ptr))
    got[rows, g.idx] = True
    diff = np.argwhere(got != exact)
    # only float32 boundary cases may differ
    assert np.all(np.abs(np.sqrt(d2[diff[:, 0], diff[:, 1]]) - radius) < 1e-5)
    for r in range(0, g.n, 97):  # columns ascending within each row
        seg = g.idx[g.ptr[r] : g.ptr[r + 1]]
        assert (np.diff(seg) > 0).all()
    assert range_recall(xn, g, radius, np.arange(0, len(xn), 11)) == pytest.approx(1.0, abs=1e-3)
    # same graph as the flat FAISS range search
    flat = range_graph(build_index(xn, kind="flat"), xn, radius)
    assert abs(flat.n_edges - g.n_edges) <= len(diff) + 2


def test_approximate_range_graph_has_no_false_edges(xn: np.ndarray, d2: np.ndarray) -> None:
    radius = 0.45
    join = IVFJoin.build(xn, nlist=40, nprobe=2, seed=0)
    rows = np.arange(0, len(xn), 3)
    g = join.range_graph(radius, rows)
    src = rows[np.repeat(np.arange(g.n), np.diff(g.ptr))]
    assert (np.sqrt(d2[src, g.idx]) < radius + 1e-5).all()
    rec = range_recall(xn, g, radius, rows[::4], graph_rows=rows)
    exact_edges = (d2[rows[::4]] < radius * radius).sum()
    got_edges = sum(g.ptr[i + 1] - g.ptr[i] for i in range(0, g.n, 4))
    assert rec == pytest.approx(got_edges / exact_edges, abs=2e-3)
    assert 0.3 < rec < 1.0


def test_block_size_does_not_change_results(monkeypatch, xn: np.ndarray) -> None:
    join = IVFJoin.build(xn, nlist=12, nprobe=4, seed=3)
    d_big, i_big = join.knn(9)
    g_big = join.range_graph(0.5)
    monkeypatch.setattr(_ivf_join, "BLOCK_PAIRS", 1000)
    d_small, i_small = join.knn(9)
    g_small = join.range_graph(0.5)
    # chunked GEMMs may round the last float32 bit differently: equal up to near-ties
    assert (i_big == i_small).mean() > 0.999
    np.testing.assert_allclose(d_big.astype(np.float64) ** 2, d_small.astype(np.float64) ** 2,
                               atol=2e-6)
    assert abs(g_big.n_edges - g_small.n_edges) <= 2
    assert (np.diff(g_big.ptr) == np.diff(g_small.ptr)).mean() > 0.999


def test_join_is_deterministic_for_a_seed(xn: np.ndarray) -> None:
    a = IVFJoin.build(xn, nlist=30, nprobe=4, seed=5)
    b = IVFJoin.build(xn, nlist=30, nprobe=4, seed=5)
    np.testing.assert_array_equal(a.assign, b.assign)
    np.testing.assert_array_equal(a.knn(12)[1], b.knn(12)[1])


def test_exhaustive_nearest_other_label_equals_brute_force(xn: np.ndarray) -> None:
    labels = np.random.default_rng(0).integers(0, 4, len(xn))
    rows = np.arange(1, len(xn), 9)
    join = IVFJoin.build(xn, nlist=10, nprobe=10, seed=0)
    got = join.nearest_other_label(rows, labels)
    np.testing.assert_allclose(got, _nearest_other_label(xn, labels, rows), atol=2e-4)
    few = IVFJoin.build(xn, nlist=40, nprobe=1, seed=0).nearest_other_label(rows, labels)
    assert (few >= got - 2e-4).all()  # fewer candidates can only over-estimate


def test_dispatch_flat_below_flat_max_and_join_above(xn: np.ndarray) -> None:
    flat = build_neighbors(xn, kind="auto")
    assert not isinstance(flat, IVFJoin)
    join = build_neighbors(xn, kind="ivf", nlist=16, nprobe=16)
    assert isinstance(join, IVFJoin)
    rows = np.arange(0, len(xn), 13)
    fd, _ = knn_rows(flat, xn, 5, rows)
    jd, _ = knn_rows(join, xn, 5, rows)
    np.testing.assert_allclose(fd.astype(np.float64) ** 2, jd.astype(np.float64) ** 2, atol=2e-6)
    fg = range_graph_rows(flat, xn, 0.4, rows)
    jg = range_graph_rows(join, xn, 0.4, rows)
    np.testing.assert_array_equal(fg.ptr, jg.ptr)
    labels = (np.arange(len(xn)) % 3).astype(np.int64)
    np.testing.assert_allclose(nearest_other_label_rows(join, xn, rows, labels),
                               _nearest_other_label(xn, labels, rows), atol=2e-4)


def test_bad_queries_raise_clear_errors(xn: np.ndarray) -> None:
    join = IVFJoin.build(xn, nlist=8, nprobe=2, seed=0)
    with pytest.raises(InvalidInputError, match="repeat"):
        join.knn(3, np.array([1, 1]))
    with pytest.raises(InvalidInputError, match="lie in"):
        join.knn(3, np.array([len(xn)]))
    with pytest.raises(InvalidInputError, match="k must be"):
        join.knn(0)
    with pytest.raises(InvalidInputError, match="radius"):
        join.range_graph(float("nan"))
    with pytest.raises(InvalidInputError, match="index_kind"):
        build_neighbors(xn, kind="hnsw")


def test_exhaustive_join_selectors_pick_as_flat() -> None:
    x = _blobs(2500, d=16, centres=8, seed=4)
    flat = MaxHerding(method="sparse", knn_k=32, index_kind="flat").select(x, 25, seed=0)
    join = MaxHerding(method="sparse", knn_k=32, index_kind="ivf", nlist=12, nprobe=12).select(
        x, 25, seed=0)
    assert join.indices.tolist() == flat.indices.tolist()
    pflat = ProbCover(delta=0.35, index_kind="flat").select(x, 25, seed=0)
    pjoin = ProbCover(delta=0.35, index_kind="ivf", nlist=12, nprobe=12).select(x, 25, seed=0)
    assert pjoin.indices.tolist() == pflat.indices.tolist()
    assert pjoin.info["approximation"]["method"] == "ivf-join"


def test_fused_knn_and_other_label_equal_the_separate_queries(xn: np.ndarray) -> None:
    labels = np.random.default_rng(2).integers(0, 5, len(xn))
    join = IVFJoin.build(xn, nlist=30, nprobe=4, seed=0)
    rows = np.arange(3, len(xn), 4)
    dist, ind, other = join.knn_other_label(12, labels, rows)
    sd, si = join.knn(12, rows)
    np.testing.assert_allclose(dist.astype(np.float64) ** 2, sd.astype(np.float64) ** 2,
                               atol=2e-6)
    assert (ind == si).mean() > 0.999  # candidate order differs: only exact ties may swap
    np.testing.assert_allclose(other, join.nearest_other_label(rows, labels), atol=1e-6)
    exact = _nearest_other_label(xn, labels, rows)
    assert (other >= exact - 2e-4).all()
    full = IVFJoin.build(xn, nlist=30, nprobe=30, seed=0).knn_other_label(12, labels, rows)[2]
    np.testing.assert_allclose(full, exact, atol=2e-4)


def test_symmetric_range_graph_is_a_symmetric_superset_of_the_directed_one(
    xn: np.ndarray, d2: np.ndarray
) -> None:
    radius = 0.45
    join = IVFJoin.build(xn, nlist=40, nprobe=3, seed=0)
    directed = join.range_graph(radius, symmetric=False)
    sym = join.range_graph(radius)

    def edges(g):
        src = np.repeat(np.arange(g.n, dtype=np.int64), np.diff(g.ptr))
        return set((src * g.n + g.idx).tolist()), src

    es, src = edges(sym)
    ed, _ = edges(directed)
    assert ed <= es and len(es) > len(ed)
    assert es == {(j % sym.n) * sym.n + j // sym.n for j in es}  # symmetric
    assert (np.sqrt(d2[src, sym.idx]) < radius + 1e-5).all()  # no false edge
    for r in range(0, sym.n, 37):
        assert (np.diff(sym.idx[sym.ptr[r] : sym.ptr[r + 1]]) > 0).all()
    rows = np.arange(0, len(xn), 9)
    assert range_recall(xn, sym, radius, rows) >= range_recall(xn, directed, radius, rows)
    # every pair of probe lists once
    pairs = join.symmetric_probes()
    assert sum(p.size for p in pairs) < join.nlist * join.nprobe
    assert all((p >= a).all() and a in p for a, p in enumerate(pairs))


def test_symmetric_range_graph_chunked_merge(monkeypatch, xn: np.ndarray) -> None:
    from curate.selectors import _neighbors

    join = IVFJoin.build(xn, nlist=25, nprobe=4, seed=2)
    want = join.range_graph(0.5)
    monkeypatch.setattr(_neighbors, "EDGE_CHUNK", 64)
    got = join.range_graph(0.5)
    np.testing.assert_array_equal(want.ptr, got.ptr)
    np.testing.assert_array_equal(want.idx, got.idx)


def test_float64_join_distances_equal_herding_pair_distances(xn: np.ndarray) -> None:
    from curate.selectors._distances import squared_norms64
    from curate.selectors.herding import _pair_dist

    join = IVFJoin.build(xn, nlist=20, nprobe=3, seed=0)
    d32, ind = join.knn(10)
    d64, ind64 = join.knn(10, float64=True)
    np.testing.assert_array_equal(ind, ind64)
    src = np.repeat(np.arange(len(xn)), 10)
    want = _pair_dist(xn, squared_norms64(xn), src, ind.reshape(-1)).reshape(len(xn), 10)
    np.testing.assert_allclose(d64, want, rtol=0, atol=1e-12)
    assert (d64[ind == np.arange(len(xn))[:, None]] == 0).all()
    np.testing.assert_allclose(d64 ** 2, d32.astype(np.float64) ** 2, atol=2e-6)


def test_candidate_cap_keeps_own_list_and_only_trims(xn: np.ndarray) -> None:
    full = IVFJoin.build(xn, nlist=30, nprobe=6, seed=0)
    capped = IVFJoin.build(xn, nlist=30, nprobe=6, seed=0, max_candidates=300)
    sizes = np.diff(capped.ptr)
    for c in range(capped.nlist):
        kept = capped.probes[c][capped.probes[c] >= 0]
        assert kept[0] == c and kept.tolist() == full.probes[c][: kept.size].tolist()
        assert kept.size == 1 or sizes[kept].sum() <= 300
    # never a false neighbour: capped lists are a subset of the full ones' candidates
    d, i = capped.knn(5)
    dd, ii = full.knn(5)
    assert (d[:, -1] >= dd[:, -1] - 1e-6).all()


def test_ivf_join_benchmark_smoke(tmp_path) -> None:
    """``python -m benchmarks.ivf_join`` at a tiny size writes every method's row."""
    import json

    from bench_run import run_benchmark  # tests/bench_run.py

    run_benchmark("benchmarks.ivf_join", ["--n", "3000", "--dim", "16", "--k", "8",
                                          "--sample", "50", "--timed", "300", "--coverage",
                                          "--budget", "20", "--name", "ivf_join-smoke"], tmp_path)
    res = json.loads((tmp_path / "ivf_join-smoke.json").read_text())
    methods = [(r["pool"], r["method"]) for r in res["rows"]]
    for pool in ("drive", "gaussian"):
        for m in ("ivf join", "ivf per-query (peer)", "exact (peer)"):
            assert (pool, m) in methods
    assert all(0.0 <= r["knn recall"] <= 1.0 for r in res["rows"])
    assert set(res["extra"]) == {"drive", "gaussian"}
