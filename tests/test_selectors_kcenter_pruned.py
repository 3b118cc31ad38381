"""Pruned exact k-center equals the naive greedy pick for pick, ties and duplicates included."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import InvalidInputError
from curate.selectors import KCenterGreedy
from curate.selectors import _kcenter_pruned


def clustered(n: int, d: int, seed: int, spread: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(12, d))
    return (centers[rng.integers(12, size=n)] + rng.normal(scale=spread, size=(n, d))).astype(
        np.float32
    )


def tied(n: int, d: int, seed: int) -> np.ndarray:
    """Integer grid points: many exact duplicates and many exactly equal distances."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3, size=(n, d)).astype(np.float32)


def near_duplicate_runs(n: int, d: int, seed: int) -> np.ndarray:
    """Runs of identical and almost identical rows (a drive's consecutive frames)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=3.0, size=(n // 20 + 1, d))
    x = np.repeat(base, 20, axis=0)[:n]
    jitter = rng.normal(scale=1e-3, size=(n, d)) * (rng.random(n) < 0.5)[:, None]
    return (x + jitter).astype(np.float32)


def both(x, budget, *, labeled=None, seed=0, **kw):
    a = KCenterGreedy(algorithm="naive", **kw).select(x, budget, labeled=labeled, seed=seed)
    b = KCenterGreedy(algorithm="pruned", **kw).select(x, budget, labeled=labeled, seed=seed)
    return a, b


def assert_same(a, b) -> None:
    assert a.indices.tolist() == b.indices.tolist()
    assert np.array_equal(a.gains, b.gains)  # bit for bit, not approximately
    assert a.info["coverage_radius"] == b.info["coverage_radius"]
    assert a.info["stopped_early"] == b.info["stopped_early"]
    assert b.info["algorithm"] == "pruned" and a.info["algorithm"] == "naive"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [clustered, tied, near_duplicate_runs])
@pytest.mark.parametrize("n_labeled", [0, 1, 25])
def test_pruned_equals_naive(make, dtype: str, n_labeled: int) -> None:
    x = make(3000, 8, seed=3)
    labeled = np.zeros(len(x), dtype=bool)
    labeled[np.random.default_rng(5).choice(len(x), n_labeled, replace=False)] = True
    a, b = both(x, 400, labeled=labeled, seed=4, dtype=dtype, n_clusters=40)
    assert_same(a, b)


@pytest.mark.parametrize("d", [1, 3, 17, 64])
def test_pruned_equals_naive_odd_dims(d: int) -> None:
    # row alignment differs between the gathered copy and the original for odd d
    x = clustered(2000, d, seed=d)
    assert_same(*both(x, 300, seed=1, n_clusters=30))


def test_all_rows_identical() -> None:
    x = np.ones((500, 4), dtype=np.float32)
    a, b = both(x, 50, seed=2, n_clusters=10)
    assert_same(a, b)
    assert a.info["coverage_radius"] == 0.0


@pytest.mark.parametrize("n_clusters", [1, 2, 7, 300, 3000])
def test_any_partition_gives_the_same_picks(n_clusters: int) -> None:
    x = tied(3000, 6, seed=8)
    lab = np.zeros(len(x), dtype=bool)
    lab[:3] = True
    assert_same(*both(x, 250, labeled=lab, n_clusters=n_clusters))


def test_min_distance_stop_equal() -> None:
    x = clustered(3000, 8, seed=9)
    a, b = both(x, 2000, seed=0, min_distance=1.0, n_clusters=50)
    assert a.info["stopped_early"]
    assert_same(a, b)


@pytest.mark.parametrize("gather, full", [(7, 0.5), (100_000, 1.0), (64, 0.0)])
def test_blocks_and_full_passes(monkeypatch, gather: int, full: float) -> None:
    # small gather blocks, never a full pass, always a full pass: same picks
    monkeypatch.setattr(_kcenter_pruned, "GATHER_ROWS", gather)
    monkeypatch.setattr(_kcenter_pruned, "FULL_PASS_FRACTION", full)
    x = near_duplicate_runs(2500, 12, seed=6)
    assert_same(*both(x, 300, seed=3, n_clusters=25))


def test_pruning_skips_work_on_clustered_data() -> None:
    x = clustered(20_000, 16, seed=1, spread=0.2)
    lab = np.zeros(len(x), dtype=bool)
    lab[0] = True
    a, b = both(x, 500, labeled=lab, n_clusters=100)
    assert_same(a, b)
    # after the first few picks cover the 12 groups, picks touch a small part of the rows
    assert b.info["pruning"]["touched_fraction"] < 0.25
    assert b.info["pruning"]["clusters"] >= 50


def test_auto_uses_pruned_on_large_pools_only() -> None:
    small = clustered(1000, 4, seed=0)
    assert KCenterGreedy().select(small, 100).info["algorithm"] == "naive"
    big = clustered(33_000, 256, seed=0)  # 8.4M numbers, budget >= sqrt(N) = 182
    assert KCenterGreedy().select(big, 100).info["algorithm"] == "naive"
    sel = KCenterGreedy().select(big, 190)
    assert sel.info["algorithm"] == "pruned"
    ref = KCenterGreedy(algorithm="naive").select(big, 190)
    assert sel.indices.tolist() == ref.indices.tolist()


def test_pruned_rejects_torch() -> None:
    with pytest.raises(InvalidInputError, match="numpy backend"):
        KCenterGreedy(algorithm="pruned", backend="torch")
    with pytest.raises(InvalidInputError, match="algorithm must be one of"):
        KCenterGreedy(algorithm="fast")
