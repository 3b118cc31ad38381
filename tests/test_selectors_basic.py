"""Random and KCenterGreedy against their definitions, plus the shared input validation."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import BudgetError, InvalidInputError, NotFoundError
from curate.selectors import KCenterGreedy, Random, create_selector, list_selectors
from curate.selectors._distances import min_sq_dist_to_set


def naive_kcenter(x: np.ndarray, budget: int, labeled: np.ndarray, seed: int) -> list[int]:
    """Greedy k-center straight from the definition, with a dense distance matrix."""
    x64 = x.astype(np.float64)
    dist = np.sqrt(((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1))
    centers = list(np.flatnonzero(labeled))
    picks: list[int] = []
    candidates = np.flatnonzero(~labeled)
    if not centers:
        rng = np.random.default_rng(seed)
        first = int(candidates[rng.integers(candidates.size)])
        picks.append(first)
        centers.append(first)
    while len(picks) < budget:
        mind = dist[:, centers].min(axis=1)
        mind[centers] = -1
        picks.append(int(np.argmax(mind)))
        centers.append(picks[-1])
    return picks


@pytest.fixture
def pool() -> np.ndarray:
    rng = np.random.default_rng(7)
    centers = rng.normal(scale=5.0, size=(6, 8))
    return (centers[rng.integers(6, size=300)] + rng.normal(size=(300, 8))).astype(np.float32)


@pytest.mark.parametrize("n_labeled", [0, 1, 12])
def test_kcenter_equals_naive_definition(pool: np.ndarray, n_labeled: int) -> None:
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[np.random.default_rng(1).choice(len(pool), n_labeled, replace=False)] = True
    got = KCenterGreedy().select(pool, 25, labeled=labeled, seed=3)
    assert got.indices.tolist() == naive_kcenter(pool, 25, labeled, seed=3)
    assert not labeled[got.indices].any()
    assert len(set(got.indices.tolist())) == 25


def test_kcenter_gains_are_nonincreasing_distances(pool: np.ndarray) -> None:
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[:3] = True
    sel = KCenterGreedy().select(pool, 30, labeled=labeled)
    assert np.all(np.diff(sel.gains) <= 1e-5)
    centers = np.concatenate([np.flatnonzero(labeled), sel.indices])
    radius = np.sqrt(min_sq_dist_to_set(pool, pool[centers]).max())
    assert sel.info["coverage_radius"] == pytest.approx(radius, rel=1e-4)
    # each gain is the distance of the pick to the centers chosen before it
    for k, idx in enumerate(sel.indices):
        prev = np.concatenate([np.flatnonzero(labeled), sel.indices[:k]])
        d = np.sqrt(min_sq_dist_to_set(pool[idx : idx + 1], pool[prev])[0])
        assert sel.gains[k] == pytest.approx(d, rel=1e-4, abs=1e-4)


def test_kcenter_min_distance_stops_early(pool: np.ndarray) -> None:
    full = KCenterGreedy().select(pool, 60, labeled=[0])
    threshold = float(full.gains[20])
    short = KCenterGreedy(min_distance=threshold + 1e-3).select(pool, 60, labeled=[0])
    assert short.info["stopped_early"]
    assert short.indices.tolist() == full.indices[: len(short)].tolist()
    assert len(short) <= 21


def test_kcenter_beats_random_on_coverage(pool: np.ndarray) -> None:
    kc = KCenterGreedy().select(pool, 20, seed=0)
    rnd = Random().select(pool, 20, seed=0)
    r_rnd = np.sqrt(min_sq_dist_to_set(pool, pool[rnd.indices]).max())
    assert kc.info["coverage_radius"] < r_rnd


@pytest.mark.parametrize("selector", [Random(), KCenterGreedy()])
def test_deterministic_and_never_labeled(pool: np.ndarray, selector) -> None:
    labeled = np.arange(0, 300, 7)
    a = selector.select(pool, 40, labeled=labeled, seed=11)
    b = selector.select(pool, 40, labeled=labeled, seed=11)
    assert a.indices.tolist() == b.indices.tolist()
    assert len(a) == 40 and len(set(a.indices.tolist())) == 40
    assert not set(a.indices.tolist()) & set(labeled.tolist())


def test_random_seed_changes_picks(pool: np.ndarray) -> None:
    assert Random().select(pool, 20, seed=1).indices.tolist() != Random().select(pool, 20, seed=2).indices.tolist()


@pytest.mark.parametrize("selector", [Random(), KCenterGreedy()])
def test_bad_inputs(pool: np.ndarray, selector) -> None:
    with pytest.raises(BudgetError, match="larger than the 300"):
        selector.select(pool, 301)
    with pytest.raises(BudgetError, match="empty"):
        selector.select(np.zeros((0, 8), np.float32), 1)
    bad = pool.copy()
    bad[17, 3] = np.nan
    with pytest.raises(InvalidInputError, match="row 17"):
        selector.select(bad, 5)
    bad[17, 3] = np.inf
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        selector.select(bad, 5)
    with pytest.raises(InvalidInputError, match="2-D"):
        selector.select(pool[0], 1)
    with pytest.raises(InvalidInputError, match="labeled mask"):
        selector.select(pool, 1, labeled=np.zeros(10, dtype=bool))
    with pytest.raises(BudgetError, match="no unlabeled"):
        selector.select(pool, 1, labeled=np.ones(len(pool), dtype=bool))
    with pytest.raises(BudgetError, match="non-negative"):
        selector.select(pool, -1)


def test_registry_lists_names_in_errors() -> None:
    assert {"random", "kcenter"} <= set(list_selectors())
    assert isinstance(create_selector("kcenter", min_distance=0.5), KCenterGreedy)
    with pytest.raises(NotFoundError, match="kcenter") as err:
        create_selector("kcentre")
    assert "random" in str(err.value)
    with pytest.raises(InvalidInputError, match="bad parameters"):
        create_selector("random", nonsense=1)


def test_min_sq_dist_to_set_matches_dense() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    c = rng.normal(size=(70, 16)).astype(np.float32)
    dense = ((x[:, None, :].astype(np.float64) - c[None].astype(np.float64)) ** 2).sum(-1).min(1)
    got = min_sq_dist_to_set(x, c, budget_bytes=4 * 16 * 70)  # force many small blocks
    np.testing.assert_allclose(got, dense, rtol=1e-4, atol=1e-4)
