"""ProbCover at scale: fixed-nprobe IVF defaults, chunked CSR work, measured approximation loss."""

from __future__ import annotations

import numpy as np
import pytest

from curate.selectors import ProbCover
from curate.selectors import _neighbors
from curate.selectors._neighbors import (
    SELECTOR_NPROBE,
    CSRGraph,
    build_index,
    range_graph,
    selector_nlist,
    transpose_csr,
)
from curate.selectors.probcover import greedy_max_coverage, normalize_rows


def blobs(n: int = 3000, d: int = 16, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d)) * 2.0
    return (centers[rng.integers(20, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def reference_transpose(g: CSRGraph, n_cols: int) -> CSRGraph:
    src = np.repeat(np.arange(g.n, dtype=np.int32), np.diff(g.ptr))
    order = np.argsort(g.idx, kind="stable")
    ptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(np.bincount(g.idx, minlength=n_cols), out=ptr[1:])
    return CSRGraph(ptr, src[order])


@pytest.mark.parametrize("max_edges", [1, 5, 97, 10**9])
def test_chunked_transpose_equals_reference(max_edges: int) -> None:
    rng = np.random.default_rng(0)
    n = 300
    deg = rng.integers(0, 12, size=n)
    deg[[3, 77]] = 0
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(deg, out=ptr[1:])
    idx = np.concatenate([np.sort(rng.choice(n, size=k, replace=False)) for k in deg]).astype(np.int32)
    g = CSRGraph(ptr, idx)
    got = transpose_csr(g, n, max_edges=max_edges)
    want = reference_transpose(g, n)
    assert np.array_equal(got.ptr, want.ptr) and np.array_equal(got.idx, want.idx)


def test_greedy_in_small_edge_chunks_equals_one_chunk(monkeypatch) -> None:
    xn = normalize_rows(blobs())
    index = build_index(xn, kind="flat")
    g = range_graph(index, xn, 0.35)
    lab = np.zeros(g.n, dtype=bool)
    lab[:7] = True
    w = np.random.default_rng(1).random(g.n)
    big = [greedy_max_coverage(g, transpose_csr(g, g.n), lab, 60, weights=ww) for ww in (None, w)]
    monkeypatch.setattr(_neighbors, "EDGE_CHUNK", 50)
    small = [greedy_max_coverage(g, transpose_csr(g, g.n, max_edges=50), lab, 60, weights=ww)
             for ww in (None, w)]
    for a, b in zip(big, small):
        assert a[0].tolist() == b[0].tolist()
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])


def test_selector_ivf_defaults_scale_with_sqrt_n() -> None:
    assert selector_nlist(1_000_000) == 2000
    assert selector_nlist(10_000_000) == 6325
    xn = normalize_rows(blobs(4000))
    index = build_index(xn, kind="ivf")
    assert index.nlist == selector_nlist(4000) and index.nprobe == SELECTOR_NPROBE


def test_ivf_probcover_reports_its_measured_loss() -> None:
    x = blobs(4000)
    sel = ProbCover(delta=0.4, index_kind="ivf", nlist=64, nprobe=2).select(x, 40, seed=0)
    approx = sel.info["approximation"]
    assert approx["index"] == "ivf" and approx["nprobe"] == 2 and approx["nlist"] == 64
    assert approx["sample_rows"] == 500
    assert 0.0 < approx["edge_recall"] <= 1.0 + 1e-6
    # the graph can only miss edges: exact coverage of the same picks is at least the graph's
    assert approx["coverage_gap"] >= -1e-9
    # exhaustive IVF (every list probed) equals exact: recall 1, no coverage gap
    full = ProbCover(delta=0.4, index_kind="ivf", nlist=64, nprobe=64).select(x, 40, seed=0)
    exact = ProbCover(delta=0.4, index_kind="flat").select(x, 40, seed=0)
    assert full.info["approximation"]["edge_recall"] == pytest.approx(1.0, abs=1e-3)
    assert full.info["approximation"]["coverage_gap"] == pytest.approx(0.0, abs=1e-3)
    assert full.indices.tolist() == exact.indices.tolist()
    assert "approximation" not in exact.info  # exact graph: nothing to measure
    none = ProbCover(delta=0.4, index_kind="ivf", nlist=64, nprobe=2, loss_sample=None)
    assert "approximation" not in none.select(x, 40, seed=0).info
