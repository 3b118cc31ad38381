"""TypiClust against a naive implementation of the paper's algorithm on the same clusters."""

from __future__ import annotations

import numpy as np
import pytest

from curate.selectors import TypiClust
from curate.selectors._kmeans import kmeans
from curate.selectors.typiclust import cluster_visit_order, typicality


def naive_typiclust(
    x: np.ndarray, clusters: np.ndarray, labeled: np.ndarray, budget: int, knn_k: int = 20
) -> list[int]:
    """The reference loop: dense distances, typicality recomputed at every visit."""
    labels = clusters.copy()
    ids, sizes = np.unique(clusters, return_counts=True)
    lab_counts = np.array([(clusters[labeled] == c).sum() for c in ids])
    rows = [(lab_counts[i], -sizes[i], ids[i]) for i in range(len(ids)) if sizes[i] > 5]
    order = [r[2] for r in sorted(rows)]
    labels[labeled] = -1
    picks: list[int] = []
    for i in range(budget):
        c = order[i % len(order)]
        idx = np.flatnonzero(labels == c)
        feats = x[idx].astype(np.float64)
        d = np.sqrt(((feats[:, None] - feats[None]) ** 2).sum(-1))
        k = min(knn_k, len(idx) // 2)
        if k >= 1:
            nearest = np.sort(d, axis=1)[:, 1 : k + 1]
            typ = 1.0 / (nearest.mean(axis=1) + 1e-5)
        else:
            typ = np.zeros(len(idx))
        pick = int(idx[int(np.argmax(typ))])
        picks.append(pick)
        labels[pick] = -1
    return picks


@pytest.fixture
def pool() -> np.ndarray:
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(5, 10)) * 4
    sizes = [60, 45, 30, 12, 4]
    x = np.concatenate([c + rng.normal(size=(s, 10)) for c, s in zip(centers, sizes)])
    return x.astype(np.float32)


@pytest.mark.parametrize("n_labeled", [0, 7])
@pytest.mark.parametrize("budget", [4, 13])
def test_typiclust_equals_naive_on_the_same_clusters(
    pool: np.ndarray, n_labeled: int, budget: int
) -> None:
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[np.random.default_rng(0).choice(len(pool), n_labeled, replace=False)] = True
    sel = TypiClust(max_clusters=6)
    k = sel.n_clusters(len(pool), n_labeled, budget)
    clusters = kmeans(pool, k, seed=5)[0]
    got = sel.select(pool, budget, labeled=labeled, seed=5)
    assert got.indices.tolist() == naive_typiclust(pool, clusters, labeled, budget)
    given = sel.select(pool, budget, labeled=labeled, clusters=clusters)
    assert given.indices.tolist() == got.indices.tolist()


def test_typiclust_revisits_clusters_and_drops_small_ones(pool: np.ndarray) -> None:
    clusters = np.repeat(np.arange(5), [60, 45, 30, 12, 4])  # the true blobs
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[:3] = True  # cluster 0 has labels: visited last
    got = TypiClust().select(pool, 10, labeled=labeled, clusters=clusters)
    assert got.indices.tolist() == naive_typiclust(pool, clusters, labeled, 10)
    assert got.info["clusters_used"] == 4 and got.info["clusters_dropped"] == 1
    assert not np.isin(got.indices, np.flatnonzero(clusters == 4)).any()
    assert cluster_visit_order(clusters, labeled, 5, 5).tolist() == [1, 2, 3, 0]


def test_typicality_is_inverse_mean_knn_distance() -> None:
    x = np.array([[0.0], [1.0], [3.0], [7.0]], dtype=np.float32)
    got = typicality(x, 2)
    want = 1.0 / (np.array([(1 + 3) / 2, (1 + 2) / 2, (2 + 3) / 2, (4 + 6) / 2]) + 1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_kmeans_is_seeded_and_switches_to_sampled_training() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    a, ca = kmeans(x, 60, seed=1)
    b, cb = kmeans(x, 60, seed=1)
    assert (a == b).all() and np.array_equal(ca, cb)
    assert set(np.unique(a)) <= set(range(60))
    # labels are the nearest centroids
    d = ((x[:, None] - ca[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.take_along_axis(d, a[:, None], 1)[:, 0], d.min(axis=1))


def test_kmeans_sample_per_cluster_trains_on_a_seeded_sample() -> None:
    from curate.errors import InvalidInputError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    a, ca = kmeans(x, 60, seed=1, sample_per_cluster=8, n_iter=5)
    b, cb = kmeans(x, 60, seed=1, sample_per_cluster=8, n_iter=5)
    assert (a == b).all() and np.array_equal(ca, cb)
    _, full = kmeans(x, 60, seed=1, n_iter=5)
    assert not np.array_equal(ca, full)  # 480 training rows, not the 3000
    d = ((x[:, None] - ca[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.take_along_axis(d, a[:, None], 1)[:, 0], d.min(axis=1))
    with pytest.raises(InvalidInputError, match="sample_per_cluster"):
        kmeans(x, 3, sample_per_cluster=0)


@pytest.mark.parametrize("n_labeled", [0, 30])
@pytest.mark.parametrize("knn_k", [3, 20])
def test_incremental_typicality_equals_recomputing_every_visit(n_labeled: int, knn_k: int) -> None:
    # clusters of 40-900 rows, visited many times each: the kept lists run out and get refreshed
    rng = np.random.default_rng(12)
    centers = rng.normal(size=(6, 8)) * 5
    sizes = [900, 500, 300, 120, 40, 6]
    x = np.concatenate([c + rng.normal(size=(s, 8)) for c, s in zip(centers, sizes)])
    x = x.astype(np.float32)
    clusters = np.repeat(np.arange(6), sizes)
    lab = np.zeros(len(x), dtype=bool)
    lab[rng.choice(len(x), n_labeled, replace=False)] = True
    a = TypiClust(knn_k=knn_k, incremental=True).select(x, 400, labeled=lab, clusters=clusters)
    b = TypiClust(knn_k=knn_k, incremental=False).select(x, 400, labeled=lab, clusters=clusters)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_allclose(a.gains, b.gains, rtol=1e-9)


def test_incremental_typiclust_exhausts_small_clusters_like_the_reference() -> None:
    # budget larger than the kept clusters: clusters run empty, then the row-order fallback
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    clusters = np.repeat(np.arange(4), [20, 20, 16, 4])  # the 4-row cluster is dropped
    a = TypiClust(incremental=True).select(x, 58, clusters=clusters)
    b = TypiClust(incremental=False).select(x, 58, clusters=clusters)
    assert a.indices.tolist() == b.indices.tolist()
    assert a.info["fallbacks"] == b.info["fallbacks"] > 0
