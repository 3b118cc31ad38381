"""The layout-keeping ``svm-bev`` feature: grid pooling against a brute-force loop, the pooled
vector's definition, the embedder option, and the default scene tokenization."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embedders import EmbedderError, create_embedder
from embedders.models.recon import bev_grid_pool, feature_dim, pool_features

TINY_SCENE = {"num_points": 128, "num_group": 8, "group_size": 16, "voxel_size": 0.0}


def _grid_reference(patches: np.ndarray, centers: np.ndarray, grid: int, half: float) -> np.ndarray:
    """Loop over frames, cells and patches: mean token of the patches whose centre is in a cell."""
    batch, count, dim = patches.shape
    out = np.zeros((batch, grid, grid, dim), dtype=np.float64)
    for b in range(batch):
        for i in range(grid):
            for j in range(grid):
                members = []
                for g in range(count):
                    x, y = centers[b, g, 0], centers[b, g, 1]
                    ci = min(grid - 1, max(0, math.floor((x / half + 1) / 2 * grid)))
                    cj = min(grid - 1, max(0, math.floor((y / half + 1) / 2 * grid)))
                    if (ci, cj) == (i, j):
                        members.append(patches[b, g])
                if members:
                    out[b, i, j] = np.mean(members, axis=0)
    return out.reshape(batch, -1)


@pytest.mark.parametrize("grid", [1, 2, 3, 5])
def test_bev_grid_pool_matches_brute_force(grid: int) -> None:
    rng = np.random.default_rng(grid)
    patches = rng.normal(size=(3, 17, 6)).astype(np.float32)
    centers = rng.uniform(-0.9, 0.9, size=(3, 17, 3)).astype(np.float32)
    centers[0, 0, :2] = (2.0, -3.0)  # outside the square: clamped to a border cell
    half = 0.7
    got = bev_grid_pool(torch.from_numpy(patches), torch.from_numpy(centers), grid, half)
    assert got.shape == (3, grid * grid * 6)
    np.testing.assert_allclose(got.numpy(), _grid_reference(patches, centers, grid, half),
                               rtol=1e-5, atol=1e-6)
    if grid == 5:
        assert (got.numpy() == 0).any()  # 17 patches cannot fill 25 cells of every frame


def test_svm_bev_is_two_unit_parts() -> None:
    rng = np.random.default_rng(0)
    tokens = torch.from_numpy(rng.normal(size=(2, 3 + 9, 4)).astype(np.float32))
    centers = torch.from_numpy(rng.uniform(-1, 1, size=(2, 9, 3)).astype(np.float32))
    got = pool_features(tokens, "svm-bev", centers=centers, bev_grid=2, half_extent=1.0).numpy()
    assert got.shape == (2, feature_dim("svm-bev", 4, 2)) == (2, (2 + 4) * 4)
    svm = pool_features(tokens, "svm").numpy()
    grid = bev_grid_pool(tokens[:, 3:], centers, 2, 1.0).numpy()
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = np.concatenate([unit(svm), unit(grid)], axis=1) / math.sqrt(2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(EmbedderError, match="needs the patch centres"):
        pool_features(tokens, "svm-bev")


def test_embedder_option_dim_config_and_validation() -> None:
    emb = create_embedder("recon-tiny", feature="svm-bev", bev_grid=4, project_dim=0, **TINY_SCENE)
    assert emb.dim == (2 + 16) * 192
    assert emb.config()["bev_grid"] == 4 and emb.config()["feature"] == "svm-bev"
    again = create_embedder("recon-tiny", **emb.config())
    assert again.dim == emb.dim
    with pytest.raises(EmbedderError, match="bev_grid=0 must be an integer >= 1"):
        create_embedder("recon-tiny", feature="svm-bev", bev_grid=0)
    with pytest.raises(EmbedderError, match="svm-bev"):
        create_embedder("recon-tiny", feature="bev")


def test_defaults_are_the_documented_scene_tokenization() -> None:
    config = create_embedder("recon-tiny").config()
    assert (config["num_points"], config["num_group"], config["group_size"]) == (2048, 128, 32)
    assert (config["crop"], config["half_extent"], config["voxel_size"]) == ("square", 25.6, 0.2)
    assert (config["remove_ground"], config["normalize"]) == (False, "sensor")
    assert (config["feature"], config["bev_grid"], config["project_dim"]) == ("svm-bev", 8, 1024)
