"""The compiled ``fpsample`` FPS backend gives exactly the indices of the pure-torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedders.layers.grouping import (
    PointGrouper,
    farthest_point_sample,
    list_fps_backends,
    resolve_fps_backend,
)

pytest.importorskip("fpsample", reason="fpsample not installed (pip install curate[fast])")


def _cloud(rng: np.random.Generator, kind: int, batch: int, n: int) -> np.ndarray:
    """Random clouds of five kinds: plain, integer grid (ties), near-zero mix, degenerate."""
    if kind == 0:  # generic, no ties
        return rng.normal(size=(batch, n, 3)).astype(np.float32) * 10
    if kind == 1:  # integer coordinates: many exactly equal distances and duplicates
        return rng.integers(-2, 3, size=(batch, n, 3)).astype(np.float32)
    if kind == 2:  # about 30% of the points inside the 1e-3 ball around the origin
        x = rng.normal(size=(batch, n, 3)).astype(np.float32)
        x[:, rng.random(n) < 0.3] *= 0.01
        return x
    if kind == 3:  # point 0 at the origin (ineligible but always the start), coarse grid
        x = rng.integers(-1, 2, size=(batch, n, 3)).astype(np.float32)
        x[:, 0] = 0.0
        return x
    # half the points near zero, the rest on a tiny grid with many duplicates
    x = rng.integers(-1, 2, size=(batch, n, 3)).astype(np.float32)
    x[:, rng.random(n) < 0.5] = 0.01
    return x


def test_fpsample_backend_is_registered_and_auto_picks_it_on_cpu() -> None:
    assert "fpsample" in list_fps_backends()
    assert resolve_fps_backend(torch.zeros(1, 4, 3)) == "fpsample"
    assert resolve_fps_backend(torch.zeros(1, 4, 3, dtype=torch.float64)) == "torch"
    assert resolve_fps_backend(torch.zeros(1, 4, 3), "torch") == "torch"


@pytest.mark.parametrize("kind", range(5))
def test_fpsample_matches_torch_on_many_random_clouds(kind: int) -> None:
    rng = np.random.default_rng(100 + kind)
    for _ in range(60):
        n = int(rng.integers(1, 160))
        m = int(rng.integers(1, 2 * n + 2))  # also m > N (repeats)
        xyz = torch.from_numpy(_cloud(rng, kind, 2, n))
        expected = farthest_point_sample(xyz, m, backend="torch")
        got = farthest_point_sample(xyz, m, backend="fpsample")
        assert got.dtype == torch.long and got.shape == (2, m)
        assert torch.equal(got, expected), (kind, n, m)


def test_fpsample_handles_the_kernel_edge_rules() -> None:
    # Every point near zero: the official op returns index 0 throughout.
    near = torch.full((1, 10, 3), 0.01)
    assert farthest_point_sample(near, 5, backend="fpsample")[0].tolist() == [0] * 5
    # Ineligible start, duplicates, m beyond the eligible points: lowest eligible index repeats.
    pts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [1, 0, 0], [0.01, 0, 0], [0, 2, 0]]])
    expected = farthest_point_sample(pts, 8, backend="torch")
    assert torch.equal(farthest_point_sample(pts, 8, backend="fpsample"), expected)
    assert 0 not in expected[0, 1:].tolist() and 3 not in expected[0].tolist()
    # Exact ties in distance go to the lowest index.
    square = torch.tensor([[[1.0, 1, 0], [-1, 1, 0], [1, -1, 0], [-1, -1, 0], [3, 3, 0]]])
    assert torch.equal(
        farthest_point_sample(square, 5, backend="fpsample"),
        farthest_point_sample(square, 5, backend="torch"),
    )


def test_fpsample_falls_back_where_it_could_differ() -> None:
    rng = np.random.default_rng(7)
    # Squared extent beyond the 1e10 start distance: the reference caps distances at 1e10.
    huge = torch.from_numpy(rng.normal(size=(1, 50, 3)).astype(np.float32) * 1e6)
    assert torch.equal(
        farthest_point_sample(huge, 20, backend="fpsample"),
        farthest_point_sample(huge, 20, backend="torch"),
    )
    # float64 input runs the reference arithmetic.
    double = torch.from_numpy(rng.normal(size=(2, 40, 3)))
    assert torch.equal(
        farthest_point_sample(double, 10, backend="fpsample"),
        farthest_point_sample(double, 10, backend="torch"),
    )


def test_point_grouper_defaults_to_auto_with_identical_groups() -> None:
    xyz = torch.from_numpy(np.random.default_rng(3).normal(size=(2, 300, 3)).astype(np.float32))
    auto = PointGrouper(16, 8)
    reference = PointGrouper(16, 8, fps_backend="torch")
    assert auto.fps_backend == "auto"
    for got, expected in zip(auto(xyz), reference(xyz)):
        assert torch.equal(got, expected)
