"""ProbCover and its uncertainty-weighted variant against the paper's definition (dense, N <= 300)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest

from curate.errors import InvalidInputError
from curate.selectors import ProbCover, UncertaintyProbCover
from curate.selectors._kmeans import kmeans
from curate.selectors._neighbors import build_index, knn, range_graph, transpose_csr
from curate.selectors.probcover import build_ball_graph, delta_from_purity, normalize_rows


def dense_distances(x: np.ndarray) -> np.ndarray:
    xn = x.astype(np.float64)
    xn /= np.linalg.norm(xn, axis=1, keepdims=True)
    return np.sqrt(np.maximum(((xn[:, None, :] - xn[None, :, :]) ** 2).sum(-1), 0.0))


def naive_probcover(
    dist: np.ndarray,
    budget: int,
    labeled: np.ndarray,
    delta: float,
    seed: int,
    weights: Optional[np.ndarray] = None,
) -> list[int]:
    """Dense N x N adjacency, full recount of every ball's value at every pick."""
    adj = dist < delta
    n = len(dist)
    w = np.ones(n) if weights is None else weights
    covered = adj[labeled].any(axis=0)
    taken = labeled.copy()
    picks: list[int] = []
    for step in range(budget):
        value = (adj[:, ~covered] * w[~covered]).sum(axis=1).astype(np.float64)
        value[taken] = -np.inf
        p = int(np.argmax(value))
        if not value[p] > 0:
            rng = np.random.default_rng(seed)
            rest = rng.choice(np.flatnonzero(~taken), size=budget - step, replace=False)
            return picks + [int(r) for r in rest]
        picks.append(p)
        taken[p] = True
        covered |= adj[p]
    return picks


def safe_delta(dist: np.ndarray, near: float) -> float:
    """A delta close to ``near`` that is far (relative to float32 round-off) from any distance."""
    d = np.unique(dist[np.triu_indices(len(dist), 1)])
    i = int(np.searchsorted(d, near))
    for j in sorted(range(max(i - 50, 0), min(i + 50, d.size - 1)), key=lambda j: abs(j - i)):
        if d[j + 1] - d[j] > 1e-4:
            return float((d[j] + d[j + 1]) / 2)
    raise AssertionError("no gap found")


@pytest.fixture
def blobs() -> np.ndarray:
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(6, 12)) * 2.5
    x = centers[rng.integers(6, size=240)] + rng.normal(size=(240, 12))
    return x.astype(np.float32)


@pytest.mark.parametrize("n_labeled", [0, 1, 15])
@pytest.mark.parametrize("near", [0.35, 0.8])
def test_probcover_equals_dense_definition(blobs: np.ndarray, n_labeled: int, near: float) -> None:
    dist = dense_distances(blobs)
    delta = safe_delta(dist, near)
    labeled = np.zeros(len(blobs), dtype=bool)
    labeled[np.random.default_rng(2).choice(len(blobs), n_labeled, replace=False)] = True
    got = ProbCover(delta=delta, index_kind="flat").select(blobs, 30, labeled=labeled, seed=4)
    assert got.indices.tolist() == naive_probcover(dist, 30, labeled, delta, seed=4)
    # gains are the newly covered counts; coverage is the covered fraction
    adj = dist < delta
    covered = adj[labeled].any(axis=0)
    for p, g in zip(got.indices, got.gains):
        assert g == (adj[p] & ~covered).sum()
        covered |= adj[p]
    assert got.info["coverage"] == pytest.approx(covered.mean())
    assert got.info["graph_edges"] == adj.sum()


def test_probcover_random_fallback_once_everything_is_covered(blobs: np.ndarray) -> None:
    dist = dense_distances(blobs)
    delta = safe_delta(dist, 1.2)
    got = ProbCover(delta=delta, index_kind="flat").select(blobs, 60, seed=9)
    assert got.info["coverage"] == 1.0
    assert got.info["fallbacks"] > 0
    assert (got.gains[-got.info["fallbacks"] :] == 0).all()
    assert got.indices.tolist() == naive_probcover(dist, 60, np.zeros(240, bool), delta, seed=9)
    other = ProbCover(delta=delta, index_kind="flat").select(blobs, 60, seed=10)
    assert other.indices.tolist() != got.indices.tolist()  # the fallback really is seeded


@pytest.mark.parametrize("n_labeled", [0, 10])
def test_weighted_probcover_equals_dense_definition(blobs: np.ndarray, n_labeled: int) -> None:
    dist = dense_distances(blobs)
    delta = safe_delta(dist, 0.6)
    u = np.random.default_rng(3).random(len(blobs))
    u[::7] = 0.0
    labeled = np.zeros(len(blobs), dtype=bool)
    labeled[:n_labeled] = True
    sel = UncertaintyProbCover(delta=delta, index_kind="flat")
    got = sel.select(blobs, 40, labeled=labeled, scores={"unc": u}, seed=1)
    assert got.indices.tolist() == naive_probcover(dist, 40, labeled, delta, seed=1, weights=u)
    with pytest.raises(InvalidInputError, match="non-negative"):
        sel.select(blobs, 5, scores=-u)


def test_graph_from_knn_plus_partial_range_search_equals_dense(blobs: np.ndarray) -> None:
    dist = dense_distances(blobs)
    delta = safe_delta(dist, 0.5)
    xn = normalize_rows(blobs)
    index = build_index(xn, kind="flat")
    nn = knn(index, xn, 6)  # many balls are larger than 6: they go through the range search
    g = build_ball_graph(xn, delta, index=index, knn_result=nn)
    dense = dist < delta
    assert (np.diff(g.ptr) > 6).any() and (np.diff(g.ptr) < 6).any()
    for i in range(len(blobs)):
        assert g.idx[g.ptr[i] : g.ptr[i + 1]].tolist() == np.flatnonzero(dense[i]).tolist()
    rev = transpose_csr(range_graph(index, xn, delta), len(blobs))
    for j in range(len(blobs)):
        assert rev.idx[rev.ptr[j] : rev.ptr[j + 1]].tolist() == np.flatnonzero(dense[:, j]).tolist()


def brute_purity_delta(dist: np.ndarray, labels: np.ndarray, alpha: float) -> float:
    """Largest delta among all pairwise distances with fraction of pure balls >= alpha."""
    other = labels[:, None] != labels[None, :]
    best = 0.0
    for cand in np.unique(dist)[::-1]:  # purity only grows as delta shrinks: first hit is largest
        if np.mean(~(other & (dist < cand)).any(axis=1)) >= alpha:
            best = float(cand)
            break
    return best


@pytest.mark.parametrize("k_nn", [3, 32])
def test_auto_delta_matches_brute_force_purity(blobs: np.ndarray, k_nn: int) -> None:
    x = blobs[:150]
    dist = dense_distances(x)
    xn = normalize_rows(x)
    labels, _ = kmeans(xn, 8, seed=0)
    index = build_index(xn, kind="flat")
    nn = knn(index, xn, k_nn)
    delta, purity, refined = delta_from_purity(xn, labels, *nn, alpha=0.9)
    assert delta == pytest.approx(brute_purity_delta(dist, labels, 0.9), abs=1e-5)
    assert purity >= 0.9
    if k_nn == 3:
        assert refined > 0  # the lower bounds from 3 neighbours were not enough on their own
    grid = np.linspace(0.05, 1.0, 20)
    gdelta, _, _ = delta_from_purity(xn, labels, *nn, alpha=0.9, grid=grid)
    assert gdelta == max(g for g in grid if g <= delta + 1e-6)


def test_auto_delta_selection_reports_its_choices(blobs: np.ndarray) -> None:
    sel = ProbCover(delta="auto", purity_clusters=6, alpha=0.95, index_kind="flat")
    got = sel.select(blobs, 12, seed=0)
    info = got.info
    assert info["purity"] >= 0.95 and info["purity_clusters"] == 6
    assert set(info["seconds"]) == {"kmeans", "index", "knn", "purity", "graph", "greedy"}
    assert all(v >= 0 for v in info["seconds"].values())
    assert 0 < info["delta"] < 2
    assert 0 < info["coverage"] <= 1 and info["graph_edges"] >= len(blobs)  # self edges
    # the same delta given explicitly builds the graph by range search: same coverage run
    fixed = ProbCover(delta=info["delta"] * (1 + 1e-6), index_kind="flat").select(blobs, 12, seed=0)
    assert fixed.info["graph_edges"] >= info["graph_edges"]


def test_delta_validation() -> None:
    for bad in (0.0, -1.0, float("nan"), "big"):
        with pytest.raises(InvalidInputError, match="delta"):
            ProbCover(delta=bad)
    with pytest.raises(InvalidInputError, match="alpha"):
        ProbCover(alpha=1.5)


def brute_sampled_purity_delta(
    dist: np.ndarray, labels: np.ndarray, rows: np.ndarray, alpha: float
) -> float:
    """Largest pairwise distance with fraction of pure balls >= alpha, over the rows ``rows``."""
    other = (labels[rows][:, None] != labels[None, :])
    for cand in np.unique(dist)[::-1]:
        if np.mean(~(other & (dist[rows] < cand)).any(axis=1)) >= alpha:
            return float(cand)
    return 0.0


@pytest.mark.parametrize("k_nn", [3, 32])
def test_sampled_purity_matches_brute_force_on_the_sample(blobs: np.ndarray, k_nn: int) -> None:
    from curate.selectors.probcover import purity_labels, purity_sample_rows

    dist = dense_distances(blobs)
    sel = ProbCover(delta="auto", purity_clusters=6, alpha=0.9, index_kind="flat",
                    purity_sample=90, knn_k=k_nn, max_ball=None)
    got = sel.select(blobs, 10, seed=3)
    assert got.info["purity_sample"] == 90
    # the selector's pseudo-labels: the purity k-means settings
    labels, _ = purity_labels(normalize_rows(blobs), 6, seed=3)
    rows = purity_sample_rows(len(blobs), 90, 3)
    assert rows.size == 90 and np.unique(rows).size == 90
    want = brute_sampled_purity_delta(dist, labels, rows, 0.9)
    assert got.info["delta"] == pytest.approx(want, abs=1e-5)
    assert got.info["purity"] >= 0.9
    # the graph is the full range search at that delta: edge count equals the dense count
    margin = np.abs(dist - got.info["delta"]) > 1e-5
    assert margin.all() or got.info["graph_edges"] >= int((dist < got.info["delta"] - 1e-5).sum())
    assert got.info["graph_edges"] <= int((dist < got.info["delta"] + 1e-5).sum())
    # a sample as large as the pool is the unsampled rule
    full = ProbCover(delta="auto", purity_clusters=6, alpha=0.9, index_kind="flat",
                     purity_sample=None, knn_k=k_nn, max_ball=None).select(blobs, 10, seed=3)
    same = ProbCover(delta="auto", purity_clusters=6, alpha=0.9, index_kind="flat",
                     purity_sample=len(blobs), knn_k=k_nn, max_ball=None).select(blobs, 10, seed=3)
    assert "purity_sample" not in same.info
    assert same.indices.tolist() == full.indices.tolist()


def test_purity_options_validation() -> None:
    with pytest.raises(InvalidInputError, match="purity_sample"):
        ProbCover(purity_sample=0)
    with pytest.raises(InvalidInputError, match="purity_kmeans"):
        ProbCover(purity_kmeans_iter=0)
    with pytest.raises(InvalidInputError, match="purity_kmeans_restarts"):
        ProbCover(purity_kmeans_restarts=0)
    with pytest.raises(InvalidInputError, match="purity_clusters"):
        ProbCover(purity_clusters=1)


def test_auto_delta_default_is_the_papers_rule_with_ten_classes(blobs: np.ndarray) -> None:
    """Default: k-means with 10 clusters (the paper's k = number of classes), whatever the budget."""
    from curate.selectors.probcover import purity_labels

    x = blobs[:150]
    labels, _ = purity_labels(normalize_rows(x), 10, seed=2)
    want = brute_purity_delta(dense_distances(x), labels, 0.9)
    for budget in (5, 40):
        got = ProbCover(delta="auto", alpha=0.9, index_kind="flat").select(x, budget, seed=2)
        assert got.info["purity_clusters"] == 10
        assert got.info["delta_purity"] == pytest.approx(want, abs=1e-5)
        assert got.info["delta"] == pytest.approx(min(want, got.info["delta_ball_cap"]), abs=1e-5)


def test_purity_kmeans_restarts_keep_the_best_objective(blobs: np.ndarray) -> None:
    """n_init restarts never end with a worse k-means objective than the first run alone."""
    xn = normalize_rows(blobs)

    def objective(labels: np.ndarray) -> float:
        return float(sum(((xn[labels == c] - xn[labels == c].mean(0)) ** 2).sum()
                         for c in np.unique(labels)))

    worse = 0
    for seed in range(6):
        one = objective(kmeans(xn, 10, seed=seed, n_iter=3, n_init=1)[0])
        best = objective(kmeans(xn, 10, seed=seed, n_iter=3, n_init=5)[0])
        worse += best > one * (1 + 1e-4)
    assert worse == 0


def test_ivf_purity_radii_equal_brute_force_when_every_list_is_probed(blobs: np.ndarray) -> None:
    """The filtered IVF search of the purity radii, exhaustive (nprobe = nlist), is exact."""
    from curate.selectors._neighbors import nearest_other_label_ivf
    from curate.selectors.probcover import _nearest_other_label

    xn = normalize_rows(blobs)
    labels, _ = kmeans(xn, 6, seed=0)
    index = build_index(xn, kind="ivf", nlist=8, nprobe=8)
    rows = np.arange(0, len(xn), 3)
    got = nearest_other_label_ivf(index, xn[rows], labels[rows], labels)
    want = _nearest_other_label(xn, labels, rows)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # probing one list can only miss rows: never below the exact radius
    index.faiss_index.nprobe = 1
    few = nearest_other_label_ivf(index, xn[rows], labels[rows], labels)
    assert (few >= want - 1e-5).all()


def test_exhaustive_ivf_probcover_equals_the_flat_one(blobs: np.ndarray) -> None:
    flat = ProbCover(index_kind="flat", alpha=0.9).select(blobs, 15, seed=1)
    ivf = ProbCover(index_kind="ivf", nlist=8, nprobe=8, alpha=0.9).select(blobs, 15, seed=1)
    assert ivf.info["purity_radii"] == "ivf"
    assert ivf.info["delta"] == pytest.approx(flat.info["delta"], abs=1e-5)
    assert ivf.indices.tolist() == flat.indices.tolist()


def test_ball_cap_bounds_delta_where_purity_spans_clusters() -> None:
    """Many tight clusters, 10 pseudo-classes: purity alone gives a radius spanning clusters; the
    cap is the median distance to the max_ball-th neighbour (self included), checked by brute force."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 16))
    x = (centres[rng.integers(0, 40, 1200)] + 0.05 * rng.normal(size=(1200, 16))).astype(np.float32)
    pure = ProbCover(delta="auto", index_kind="flat", max_ball=None).select(x, 12, seed=0)
    capped = ProbCover(delta="auto", index_kind="flat", max_ball=16).select(x, 12, seed=0)
    d = dense_distances(x)
    want = float(np.median(np.sort(d, axis=1)[:, 15]))
    assert capped.info["delta_ball_cap"] == pytest.approx(want, abs=1e-4)
    assert capped.info["delta"] == pytest.approx(min(want, pure.info["delta"]), abs=1e-4)
    assert capped.info["delta"] < pure.info["delta"]
    assert capped.info["delta_rule"].startswith("ball cap")
    assert capped.info["graph_edges"] < pure.info["graph_edges"]
    # the graph is the exact range graph at the capped delta
    assert capped.info["graph_edges"] == int((d < capped.info["delta"]).sum()) or np.isclose(
        d, capped.info["delta"], atol=1e-5).any()
    with pytest.raises(InvalidInputError):
        ProbCover(max_ball=1)
