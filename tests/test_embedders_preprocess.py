"""Scene preprocessing and the bev-hist baseline against brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embedders import EmbedderError, PreprocessConfig, ScenePreprocessor, create_embedder
from embedders.layers.grouping import farthest_point_sample
from embedders.preprocess import crop_points, remove_ground, voxel_downsample


def scene(seed: int, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-35, 35, size=(n, 2))
    z = rng.uniform(-3.5, 1.5, size=(n, 1))
    return np.concatenate([xy, z], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("crop", ["square", "disk", "none"])
def test_crop_matches_explicit_rule(crop: str) -> None:
    points = scene(0)
    config = PreprocessConfig(crop=crop, normalize="centroid" if crop == "none" else "sensor")
    mask = crop_points(points, config)
    for (x, y, z), kept in zip(points.tolist(), mask.tolist(), strict=True):
        if crop == "none":
            expected = True
        elif crop == "square":
            expected = abs(x) <= 25.6 and abs(y) <= 25.6 and -3.0 <= z <= 1.0
        else:
            expected = x * x + y * y <= 25.6 * 25.6 and -3.0 <= z <= 1.0
        assert kept == expected


def test_voxel_downsample_matches_dictionary_reference() -> None:
    points = np.random.default_rng(1).uniform(-2, 2, size=(500, 3)).astype(np.float32)
    out = voxel_downsample(points, 0.7)
    groups: dict[tuple[int, int, int], list[np.ndarray]] = {}
    for p in points.astype(np.float64):
        groups.setdefault(tuple(np.floor(p / 0.7).astype(int)), []).append(p)
    expected = np.array([np.mean(groups[key], axis=0) for key in sorted(groups)], dtype=np.float32)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_remove_ground_matches_column_minimum_reference() -> None:
    points = scene(2, n=600)
    keep = remove_ground(points, cell=5.0, height=0.3)
    lowest: dict[tuple[int, int], float] = {}
    for x, y, z in points.astype(np.float64):
        key = (math.floor(x / 5.0), math.floor(y / 5.0))
        lowest[key] = min(lowest.get(key, np.inf), z)
    expected = [
        z > lowest[(math.floor(x / 5.0), math.floor(y / 5.0))] + 0.3
        for x, y, z in points.astype(np.float64)
    ]
    np.testing.assert_array_equal(keep, expected)
    assert 0 < keep.sum() < len(points)


# ----------------------------------------------------------------------------- the preprocessor


def test_default_output_is_fixed_size_inside_unit_sphere() -> None:
    pre = ScenePreprocessor()
    out = pre(scene(3, n=30000))
    assert out.shape == (1024, 3) and out.dtype == np.float32
    assert np.linalg.norm(out, axis=1).max() <= 1.0 + 1e-6


def test_sensor_normalisation_is_one_fixed_transform() -> None:
    # No voxelisation and more output points than input: every input point survives unchanged
    # apart from the fixed affine map, so positions stay comparable across frames.
    config = PreprocessConfig(voxel_size=0.0, num_points=64)
    points = np.array(
        [[10.0, -5.0, 0.0], [0.0, 0.0, -1.0], [25.6, 25.6, 1.0], [-3.0, 2.0, -3.0]], np.float32
    )
    out = ScenePreprocessor(config)(points)
    radius = math.sqrt(2 * 25.6**2 + 2.0**2)
    expected = (points - np.array([0.0, 0.0, -1.0], np.float32)) / radius
    np.testing.assert_allclose(out[:4], expected, rtol=1e-6)
    padded = {tuple(row) for row in out[4:].tolist()}
    assert padded <= {tuple(row) for row in expected.astype(np.float32).tolist()}
    assert math.isclose(
        float(np.linalg.norm(out[2])), math.sqrt(2 * 25.6**2 + 4) / radius, rel_tol=1e-6
    )
    # Translating the scene moves the output (no per-frame re-centring).
    shifted = ScenePreprocessor(config)(points - np.array([1.0, 0.0, 0.0], np.float32))
    np.testing.assert_allclose(
        shifted[:4] - out[:4], np.tile([-1.0 / radius, 0, 0], (4, 1)), atol=1e-6
    )


def test_random_sampling_is_seeded_by_seed_and_content() -> None:
    points = scene(4, n=5000)
    config = PreprocessConfig(voxel_size=0.0, num_points=256)
    a = ScenePreprocessor(config, seed=0)(points)
    np.testing.assert_array_equal(ScenePreprocessor(config, seed=0)(points.copy()), a)
    assert not np.array_equal(ScenePreprocessor(config, seed=1)(points), a)
    # A subset of the (normalised) cropped points, without repeats.
    assert len({tuple(row) for row in a.tolist()}) == 256
    full = ScenePreprocessor(PreprocessConfig(voxel_size=0.0, num_points=len(points)))(points)
    assert {tuple(row) for row in a.tolist()} <= {tuple(row) for row in full.tolist()}


def test_fps_sampling_uses_farthest_point_sample() -> None:
    points = scene(5, n=1500)
    config = PreprocessConfig(voxel_size=0.0, num_points=100, sampling="fps")
    out = ScenePreprocessor(config)(points)
    cropped = points[crop_points(points, config)]
    index = farthest_point_sample(torch.from_numpy(cropped)[None], 100)[0].numpy()
    expected = ScenePreprocessor(PreprocessConfig(voxel_size=0.0, num_points=len(cropped)))(
        cropped
    )[index]
    np.testing.assert_array_equal(out, expected)


def test_centroid_normalisation_for_objects() -> None:
    points = np.random.default_rng(6).normal(loc=100.0, size=(300, 3)).astype(np.float32)
    config = PreprocessConfig(crop="none", normalize="centroid", voxel_size=0.0, num_points=300)
    out = ScenePreprocessor(config)(points)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    assert math.isclose(float(np.linalg.norm(out, axis=1).max()), 1.0, rel_tol=1e-5)


def test_ground_removal_option_drops_ground_points() -> None:
    rng = np.random.default_rng(7)
    ground = np.concatenate([rng.uniform(-20, 20, (3000, 2)), np.full((3000, 1), -1.7)], 1)
    objects = np.concatenate([rng.uniform(-20, 20, (200, 2)), rng.uniform(-1.0, 0.5, (200, 1))], 1)
    points = np.concatenate([ground, objects]).astype(np.float32)
    config = PreprocessConfig(remove_ground=True, voxel_size=0.0, num_points=150)
    out = ScenePreprocessor(config)(points)
    z_metres = out[:, 2] * config.crop_radius + config.crop_center[2]
    assert z_metres.min() > -1.7 + 0.2


def test_preprocess_errors_name_the_cloud() -> None:
    far = scene(8) + np.float32(1000.0)
    with pytest.raises(
        EmbedderError, match=r"cloud 4: none of its 2000 points lies inside the crop"
    ):
        ScenePreprocessor()(far, index=4)
    flat = np.concatenate([np.random.default_rng(9).uniform(-5, 5, (50, 2)), np.zeros((50, 1))], 1)
    with pytest.raises(EmbedderError, match="cloud 2: ground removal left no points"):
        ScenePreprocessor(PreprocessConfig(remove_ground=True))(flat.astype(np.float32), index=2)


def test_preprocess_config_validation_and_options() -> None:
    assert PreprocessConfig.from_options({"half_extent": 40}).half_extent == 40.0
    with pytest.raises(EmbedderError, match=r"unknown preprocessing option\(s\) \['voxel'\]"):
        PreprocessConfig.from_options({"voxel": 0.1})
    with pytest.raises(EmbedderError, match="sampling='grid' is not one of"):
        PreprocessConfig(sampling="grid")
    with pytest.raises(EmbedderError, match="voxel_size=-1.0 must be >= 0"):
        PreprocessConfig(voxel_size=-1.0)
    with pytest.raises(EmbedderError, match="half_extent=nan must be a finite number"):
        PreprocessConfig(half_extent=float("nan"))


def test_process_batch_stacks_clouds() -> None:
    pre = ScenePreprocessor(PreprocessConfig(num_points=64))
    clouds = [scene(10), scene(11)]
    batch = pre.process_batch(clouds)
    assert batch.shape == (2, 64, 3)
    np.testing.assert_array_equal(batch[1], pre(clouds[1]))


# ----------------------------------------------------------------------------- bev-hist


def bev_reference(
    points: np.ndarray, grid: int, h: float, z_min: float, z_max: float, bins: int
) -> np.ndarray:
    counts = np.zeros((grid, grid))
    height = np.zeros((grid, grid))
    seen = np.zeros((grid, grid), bool)
    ranges = np.zeros(bins)
    for x, y, z in points.astype(np.float64):
        if not (abs(x) <= h and abs(y) <= h and z_min <= z <= z_max):
            continue
        col = min(int((x + h) / (2 * h) * grid), grid - 1)
        row = min(int((y + h) / (2 * h) * grid), grid - 1)
        counts[row, col] += 1
        scaled = (z - z_min) / (z_max - z_min)
        height[row, col] = scaled if not seen[row, col] else max(height[row, col], scaled)
        seen[row, col] = True
        ranges[min(int(math.hypot(x, y) / (h * math.sqrt(2)) * bins), bins - 1)] += 1

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    vector = np.concatenate(
        [unit(np.log1p(counts).ravel()), unit(height.ravel()), unit(np.log1p(ranges))]
    )
    return unit(vector)


def test_bev_hist_matches_loop_reference() -> None:
    points = scene(12, n=700)
    emb = create_embedder("bev-hist", grid=6, range_bins=5, half_extent=30.0)
    assert emb.dim == 2 * 36 + 5
    got = emb.embed([points])[0]
    np.testing.assert_allclose(
        got, bev_reference(points, 6, 30.0, -3.0, 1.0, 5), rtol=1e-5, atol=1e-6
    )
    assert math.isclose(float(np.linalg.norm(got)), 1.0, rel_tol=1e-5)


def test_bev_hist_default_dim_and_parameter_free_sha() -> None:
    emb = create_embedder("bev-hist")
    assert emb.dim == 528
    assert emb.weights_sha256() == create_embedder("bev-hist").weights_sha256()
