"""k-center on the torch path (the CUDA code, run on CPU torch) and the weighted hybrid."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import InvalidInputError
from curate.selectors import KCenterGreedy, UncertaintyKCenter
from curate.selectors.kcenter import resolve_backend


def naive_weighted_kcenter(
    x: np.ndarray, budget: int, labeled: np.ndarray, w: np.ndarray, first: int
) -> list[int]:
    x64 = x.astype(np.float64)
    dist = np.sqrt(((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1))
    centers = list(np.flatnonzero(labeled))
    picks: list[int] = []
    if not centers:
        picks.append(first)
        centers.append(first)
    while len(picks) < budget:
        gain = dist[:, centers].min(axis=1) * w
        gain[centers] = -1
        picks.append(int(np.argmax(gain)))
        centers.append(picks[-1])
    return picks


@pytest.fixture
def pool() -> np.ndarray:
    rng = np.random.default_rng(11)
    centers = rng.normal(scale=4.0, size=(5, 16))
    return (centers[rng.integers(5, size=400)] + rng.normal(size=(400, 16))).astype(np.float32)


@pytest.mark.parametrize("n_labeled", [0, 9])
def test_torch_path_equals_numpy_path(pool: np.ndarray, n_labeled: int) -> None:
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[:n_labeled] = True
    a = KCenterGreedy(backend="numpy").select(pool, 40, labeled=labeled, seed=2)
    b = KCenterGreedy(backend="torch", device="cpu").select(pool, 40, labeled=labeled, seed=2)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_allclose(a.gains, b.gains, rtol=1e-5)
    assert a.info["coverage_radius"] == pytest.approx(b.info["coverage_radius"], rel=1e-5)
    assert b.info["backend"] == "torch"


def test_torch_path_min_distance_stop(pool: np.ndarray) -> None:
    a = KCenterGreedy(min_distance=5.0, backend="numpy").select(pool, 390, seed=0)
    b = KCenterGreedy(min_distance=5.0, backend="torch", device="cpu").select(pool, 390, seed=0)
    assert a.info["stopped_early"] and b.info["stopped_early"]
    assert a.indices.tolist() == b.indices.tolist()
    assert a.info["coverage_radius"] < 5.0 and len(a) < 390


def test_device_resolution() -> None:
    assert resolve_backend("auto", "cpu") == ("numpy", "cpu")
    assert resolve_backend("torch", "cpu") == ("torch", "cpu")
    import torch

    if not torch.cuda.is_available():
        assert resolve_backend("auto", "auto") == ("numpy", "cpu")
        with pytest.raises(InvalidInputError, match="no CUDA"):
            resolve_backend("auto", "cuda")
    with pytest.raises(InvalidInputError, match="backend"):
        KCenterGreedy(backend="jax")
    with pytest.raises(InvalidInputError, match="device"):
        KCenterGreedy(device="tpu")


@pytest.mark.parametrize("n_labeled", [0, 6])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_uncertainty_kcenter_equals_naive(pool: np.ndarray, n_labeled: int, backend: str) -> None:
    rng = np.random.default_rng(4)
    u = rng.random(len(pool))
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[:n_labeled] = True
    sel = UncertaintyKCenter(beta=2.0, backend=backend, device="cpu")
    got = sel.select(pool, 25, labeled=labeled, scores=u)
    first = int(np.argmax(np.where(labeled, -1, u)))
    assert got.indices.tolist() == naive_weighted_kcenter(pool, 25, labeled, u**2.0, first)


def test_uncertainty_kcenter_with_beta_zero_is_kcenter_after_the_first_pick(pool: np.ndarray) -> None:
    u = np.random.default_rng(1).random(len(pool))
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[[3, 50]] = True
    a = UncertaintyKCenter(beta=0.0).select(pool, 20, labeled=labeled, scores=u)
    b = KCenterGreedy().select(pool, 20, labeled=labeled)
    assert a.indices.tolist() == b.indices.tolist()
    with pytest.raises(InvalidInputError, match="non-negative"):
        UncertaintyKCenter().select(pool, 3, scores=-u)


def test_float64_kcenter_breaks_float32_near_ties_like_a_float64_reference() -> None:
    """Far from the origin the float32 expansion |x|^2 - 2x.c + |c|^2 loses the last digits:
    float64 picks equal the float64 brute force exactly, float32 picks drift away from it."""
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(300, 8)) * 0.05 + 300.0).astype(np.float32)
    labeled = np.zeros(len(x), dtype=bool)
    labeled[:2] = True
    want = naive_weighted_kcenter(x, 40, labeled, np.ones(len(x)), first=0)
    got64 = KCenterGreedy(dtype="float64").select(x, 40, labeled=labeled)
    assert got64.indices.tolist() == want
    assert got64.info["dtype"] == "float64"
    got32 = KCenterGreedy().select(x, 40, labeled=labeled)
    assert got32.indices.tolist() != want  # the precision effect float64 exists to remove
    with pytest.raises(InvalidInputError, match="dtype"):
        KCenterGreedy(dtype="float16")
    with pytest.raises(InvalidInputError, match="numpy"):
        KCenterGreedy(dtype="float64", backend="torch")
