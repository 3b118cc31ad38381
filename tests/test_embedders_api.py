"""The public embedder contract: registry, embed() shapes/determinism, config round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embedders import Embedder, EmbedderError, create_embedder, list_embedders

REQUIRED = ["bev-hist", "recon-base", "recon-small", "recon-tiny"]
# Cheap options per embedder so every registered name can be exercised in a unit test.
SMALL_OPTIONS: dict[str, dict] = {
    "bev-hist": {"grid": 8, "range_bins": 4},
    "recon-tiny": {"num_points": 128, "num_group": 8, "group_size": 16, "voxel_size": 0.5},
    "recon-small": {"num_points": 128, "num_group": 8, "group_size": 16, "voxel_size": 0.5},
    "recon-base": {"num_points": 64, "num_group": 4, "group_size": 16, "voxel_size": 0.5},
}


def scene(seed: int, n: int = 400, columns: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-22, 22, size=(n, 2))
    z = rng.uniform(-2.5, 0.8, size=(n, 1))
    parts = [xy, z, rng.uniform(0, 1, size=(n, 1))] if columns == 4 else [xy, z]
    return np.concatenate(parts, axis=1).astype(np.float32)


@pytest.fixture(scope="module", params=REQUIRED)
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return create_embedder(request.param, **SMALL_OPTIONS[request.param])


def test_list_embedders_is_sorted_and_complete() -> None:
    names = list_embedders()
    assert names == sorted(names)
    assert set(REQUIRED) <= set(names)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(
        EmbedderError, match="unknown embedder .recon-huge.; valid names: bev-hist, "
    ) as info:
        create_embedder("recon-huge")
    assert isinstance(info.value, ValueError)
    for name in REQUIRED:
        assert name in str(info.value)


@pytest.mark.parametrize("name", REQUIRED)
def test_unknown_option_is_named(name: str) -> None:
    with pytest.raises(
        EmbedderError, match=r"unknown option\(s\) \['voxel_sise'\]; valid options: .*"
    ):
        create_embedder(name, voxel_sise=0.1)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("recon-tiny", {"feature": "mean"}, "feature='mean' is not one of"),
        ("recon-tiny", {"crop": "circle"}, "crop='circle' is not one of"),
        ("recon-tiny", {"num_points": 0}, "num_points=0 must be a positive integer"),
        ("recon-tiny", {"seed": -1}, "seed=-1 must be an integer >= 0"),
        ("recon-tiny", {"num_points": 8, "group_size": 16}, "group_size=16 exceeds num_points=8"),
        ("recon-tiny", {"z_min": 1.0, "z_max": 0.0}, "z_max=0.0 must be greater than z_min=1.0"),
        ("recon-tiny", {"crop": "none"}, "normalize='sensor' needs a crop"),
        ("bev-hist", {"grid": 0}, "grid=0 must be a positive integer"),
        ("bev-hist", {"half_extent": -1.0}, "half_extent=-1.0 must be > 0"),
    ],
)
def test_bad_option_values(name: str, options: dict, message: str) -> None:
    with pytest.raises(EmbedderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_embedder(name, **options)


def test_embed_shape_dtype_finite_and_deterministic(embedder: Embedder) -> None:
    clouds = [scene(0), scene(1, n=50), scene(2, columns=4)]
    first = embedder.embed(clouds)
    assert first.shape == (3, embedder.dim) and first.dtype == np.float32
    assert np.isfinite(first).all()
    assert not np.allclose(first[0], first[1])  # different scenes, different vectors
    np.testing.assert_array_equal(embedder.embed(clouds), first)
    assert embedder.modality == "points"
    assert isinstance(embedder.dim, int) and embedder.dim > 0


def test_vector_does_not_depend_on_batch_position(embedder: Embedder) -> None:
    a, b, c = scene(3), scene(4), scene(5)
    together = embedder.embed([a, b, c])
    np.testing.assert_allclose(embedder.embed([b])[0], together[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embedder.embed([c, a])[1], together[0], rtol=1e-5, atol=1e-5)


def test_intensity_column_is_ignored(embedder: Embedder) -> None:
    with_intensity = scene(6, columns=4)
    np.testing.assert_array_equal(
        embedder.embed([with_intensity]), embedder.embed([with_intensity[:, :3]])
    )


def test_config_round_trip_through_json(embedder: Embedder) -> None:
    config = embedder.config()
    restored = json.loads(json.dumps(config))
    assert restored == config
    rebuilt = create_embedder(embedder.name, **restored)
    assert rebuilt.config() == config
    assert rebuilt.dim == embedder.dim
    assert rebuilt.weights_sha256() == embedder.weights_sha256()
    clouds = [scene(7), scene(8)]
    np.testing.assert_array_equal(rebuilt.embed(clouds), embedder.embed(clouds))


def test_weights_sha256_is_hex_and_follows_config(embedder: Embedder) -> None:
    sha = embedder.weights_sha256()
    assert len(sha) == 64 and int(sha, 16) >= 0
    assert embedder.weights_sha256() == sha
    if embedder.name == "bev-hist":
        other = create_embedder("bev-hist", **{**embedder.config(), "grid": 9})
        assert other.weights_sha256() != sha


def test_empty_batch_gives_empty_matrix(embedder: Embedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, embedder.dim) and out.dtype == np.float32


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 3), np.float32), "cloud 1: is empty"),
        (
            np.array([[1.0, 2.0, 0.0], [np.nan, 0.0, 0.0]], np.float32),
            "cloud 1: 1 point\\(s\\) contain NaN",
        ),
        (np.array([[1.0, 2.0, np.inf]], np.float32), "cloud 1: .*NaN or infinite"),
        (
            np.zeros((5, 6), np.float32),
            r"cloud 1: expected shape \(N, 3\), \(N, 4\) or \(N, 5\).*got shape \(5, 6\)",
        ),
        (np.zeros((5, 2), np.float32), r"cloud 1: expected shape .*got shape \(5, 2\)"),
        (np.zeros(6, np.float32), r"cloud 1: expected shape .*got shape \(6,\)"),
        (np.array([["a", "b", "c"]]), "cloud 1: expected a numeric array"),
    ],
)
def test_bad_clouds_name_their_index(embedder: Embedder, bad: np.ndarray, message: str) -> None:
    with pytest.raises(EmbedderError, match=message):
        embedder.embed([scene(9), bad, scene(10)])


def test_wrong_container_types(embedder: Embedder) -> None:
    with pytest.raises(EmbedderError, match="wrap it in a list"):
        embedder.embed(scene(11))
    with pytest.raises(EmbedderError, match="sequence"):
        embedder.embed("cloud.bin")  # type: ignore[arg-type]


def test_cloud_outside_the_crop_is_named(embedder: Embedder) -> None:
    far = scene(12) + np.array([500.0, 0.0, 0.0], np.float32)
    with pytest.raises(EmbedderError, match="cloud 1: none of its 400 points lies inside"):
        embedder.embed([scene(13), far])


def test_batch_of_equal_clouds_as_3d_array(embedder: Embedder) -> None:
    stacked = np.stack([scene(14), scene(15)])
    np.testing.assert_array_equal(embedder.embed(stacked), embedder.embed([stacked[0], stacked[1]]))


def test_devices(embedder: Embedder) -> None:
    assert embedder.to("cpu") is embedder
    assert embedder.device == "cpu"
    embedder.embed([scene(16)], device="cpu")
    with pytest.raises(EmbedderError, match="unknown device 'tpu'"):
        embedder.to("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EmbedderError, match="cuda.*is_available\\(\\) is False"):
            embedder.embed([scene(17)], device="cuda")
        assert embedder.device == "cpu"
        embedder.to("auto")
        assert embedder.device == "cpu"


def test_recon_max_batch_only_changes_chunking() -> None:
    emb = create_embedder("recon-tiny", **SMALL_OPTIONS["recon-tiny"])
    clouds = [scene(18), scene(19), scene(20)]
    whole = emb.embed(clouds)
    emb.max_batch = 2
    np.testing.assert_allclose(emb.embed(clouds), whole, rtol=1e-5, atol=1e-5)
    assert "max_batch" not in emb.config()
    emb.max_batch = 0
    with pytest.raises(EmbedderError, match="max_batch=0 must be an integer >= 1"):
        emb.embed(clouds)
