"""Pretraining building blocks: Chamfer vs brute force, masks, config parsing and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embedders.pretrain.chamfer import chamfer_l2
from embedders.pretrain.config import PretrainConfig, PretrainConfigError, load_config
from embedders.pretrain.data import StepBatchSampler
from embedders.pretrain.masking import block_mask, random_mask
from embedders.pretrain.trainer import learning_rate


def _chamfer_bruteforce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Python loops over every pair of points: the definition, no vectorisation."""
    total = 0.0
    for a, b in zip(pred, target):
        forward = [min(float(((p - q) ** 2).sum()) for q in b) for p in a]
        backward = [min(float(((p - q) ** 2).sum()) for p in a) for q in b]
        total += sum(forward) / len(forward) + sum(backward) / len(backward)
    return torch.tensor(total / len(pred), dtype=torch.float64)


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_chamfer_matches_bruteforce(chunk_size: int | None) -> None:
    generator = torch.Generator().manual_seed(1)
    pred = torch.randn(5, 7, 3, generator=generator, dtype=torch.float64)
    target = torch.randn(5, 9, 3, generator=generator, dtype=torch.float64)
    value = chamfer_l2(pred, target, chunk_size=chunk_size)
    assert torch.allclose(value, _chamfer_bruteforce(pred, target), rtol=1e-10, atol=1e-12)


def test_chamfer_gradient_matches_dense_reference() -> None:
    generator = torch.Generator().manual_seed(2)
    pred = torch.randn(4, 6, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randn(4, 5, 3, generator=generator, dtype=torch.float64)
    chamfer_l2(pred, target, chunk_size=2).backward()
    dense_pred = pred.detach().clone().requires_grad_(True)
    distance = (dense_pred.unsqueeze(2) - target.unsqueeze(1)).pow(2).sum(-1)
    (distance.min(dim=2).values.mean() + distance.min(dim=1).values.mean()).backward()
    assert torch.allclose(pred.grad, dense_pred.grad, atol=1e-12)


def test_chamfer_is_zero_for_equal_sets_and_rejects_bad_shapes() -> None:
    points = torch.randn(3, 8, 3)
    assert float(chamfer_l2(points, points.flip(1))) == 0.0
    with pytest.raises(ValueError, match=r"\(M, n, 3\)"):
        chamfer_l2(points[..., :2], points)
    with pytest.raises(ValueError, match="same number of sets"):
        chamfer_l2(points, points[:2])


def test_random_mask_counts_and_seeding() -> None:
    first = random_mask(6, 20, 0.6, torch.Generator().manual_seed(5))
    again = random_mask(6, 20, 0.6, torch.Generator().manual_seed(5))
    other = random_mask(6, 20, 0.6, torch.Generator().manual_seed(6))
    assert first.dtype == torch.bool and first.shape == (6, 20)
    assert (first.sum(dim=1) == 12).all()
    assert torch.equal(first, again) and not torch.equal(first, other)
    with pytest.raises(ValueError, match="mask_ratio"):
        random_mask(2, 20, 1.0, torch.Generator())


def test_block_mask_is_the_nearest_centres_of_a_seed_patch() -> None:
    generator = torch.Generator().manual_seed(3)
    centers = torch.rand(4, 15, 3, generator=generator)
    mask = block_mask(centers, 0.6, torch.Generator().manual_seed(9))
    assert (mask.sum(dim=1) == 9).all()
    seeds = torch.randint(0, 15, (4,), generator=torch.Generator().manual_seed(9))
    for row in range(4):
        distance = [float(((centers[row, g] - centers[row, seeds[row]]) ** 2).sum()) for g in range(15)]
        expected = sorted(range(15), key=lambda g: (distance[g], g))[:9]
        assert sorted(np.flatnonzero(mask[row].numpy()).tolist()) == sorted(expected)


def test_step_batches_cover_each_epoch_once_and_depend_only_on_step() -> None:
    sampler = StepBatchSampler(10, 3, seed=4, start_step=0, total_steps=6)
    batches = list(sampler)
    epoch0 = [item[0] for batch in batches[:3] for item in batch]
    assert len(set(epoch0)) == 9  # 3 full batches of distinct frames; 1 frame dropped
    resumed = list(StepBatchSampler(10, 3, seed=4, start_step=4, total_steps=6))
    assert resumed == batches[4:]
    with pytest.raises(ValueError, match="batch_size=11 exceeds the 10 frames"):
        StepBatchSampler(10, 11, seed=0, start_step=0, total_steps=1)


def test_learning_rate_warmup_then_cosine() -> None:
    cfg = PretrainConfig.from_dict(
        {"train": {"steps": 100, "warmup_steps": 10, "lr": 1e-3, "min_lr": 1e-5}}
    )
    assert math.isclose(learning_rate(0, cfg), 1e-4)
    assert math.isclose(learning_rate(9, cfg), 1e-3)
    assert math.isclose(learning_rate(10, cfg), 1e-3)
    assert math.isclose(learning_rate(55, cfg), (1e-3 + 1e-5) / 2)
    values = [learning_rate(s, cfg) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert learning_rate(99, cfg) > 1e-5


def test_config_defaults_roundtrip_and_toml(tmp_path) -> None:
    default = load_config(None)
    assert default.model.mask_ratio == 0.6 and default.model.size == "tiny"
    assert PretrainConfig.from_dict(default.to_dict()) == default
    path = tmp_path / "cfg.toml"
    path.write_text(
        'name = "mine"\nseed = 3\n[model]\nnum_group = 16\n[data]\nnum_points = 256\n'
        "voxel_size = 0.3\n[train]\nsteps = 7\nlr = 1\n"
    )
    cfg = load_config(path)
    assert (cfg.name, cfg.seed, cfg.model.num_group, cfg.train.steps) == ("mine", 3, 16, 7)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.data.preprocess_config().voxel_size == 0.3
    assert cfg.data.preprocess_config().num_points == 256


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"train": {"stepz": 3}}, r"\[train\].*unknown key 'stepz'.*valid keys: \[.*'steps'"),
        ({"modle": {}}, r"unknown key 'modle'; valid top-level keys: .*'model'"),
        ({"data": {"voxel": 0.1}}, r"\[data\].*unknown key 'voxel'.*'voxel_size'"),
        ({"train": {"steps": "ten"}}, r"steps='ten' must be of type int"),
        ({"train": {"steps": 0}}, r"steps=0 must be >= 1"),
        ({"model": {"mask_ratio": 1.2}}, r"mask_ratio=1.2 must be in \(0, 1\)"),
        ({"model": {"size": "huge"}}, r"size='huge' is not one of"),
        ({"loss": {"reconstruction": 0, "image": 0, "contrast": 0}}, r"every loss weight is 0"),
        ({"data": {"crop": "round"}}, r"crop='round' is not one of"),
        ({"name": "a/b"}, r"no slashes"),
        ({"model": {"group_size": 64}, "data": {"num_points": 32}}, r"group_size=64 exceeds"),
    ],
)
def test_config_errors_name_the_key(values: dict, pattern: str) -> None:
    with pytest.raises(PretrainConfigError, match=pattern):
        PretrainConfig.from_dict(values)


def test_config_file_errors(tmp_path) -> None:
    with pytest.raises(PretrainConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1\n")
    with pytest.raises(PretrainConfigError, match="not valid TOML"):
        load_config(bad)


def test_chunked_clouds_read_like_the_concatenated_array(tmp_path) -> None:
    import pickle

    from embedders.errors import EmbedderError
    from embedders.pretrain.data import ChunkedClouds, CloudDataset

    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 16, 3)).astype(np.float32) for n in (5, 1, 7)]
    paths = []
    for number, part in enumerate(parts):
        paths.append(tmp_path / f"chunk-{number}.npy")
        np.save(paths[-1], part)
    whole = np.concatenate(parts)
    clouds = ChunkedClouds(paths)
    assert clouds.shape == whole.shape and len(clouds) == 13 and clouds.ndim == 3
    for index in range(len(whole)):
        np.testing.assert_array_equal(clouds[index], whole[index])
    copy = pickle.loads(pickle.dumps(clouds))
    assert len(pickle.dumps(clouds)) < 2000  # the file list, not the clouds
    np.testing.assert_array_equal(copy[12], whole[12])
    with pytest.raises(IndexError):
        clouds[13]
    # the dataset gives the same items from either
    a = CloudDataset(clouds, 8, views=2)[(6, 0, 3, 1)]["points"]
    b = CloudDataset(whole, 8, views=2)[(6, 0, 3, 1)]["points"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.save(tmp_path / "bad.npy", np.zeros((2, 16, 4), np.float32))
    with pytest.raises(EmbedderError, match="bad.npy"):
        ChunkedClouds([paths[0], tmp_path / "bad.npy"])
    np.save(tmp_path / "narrow.npy", np.zeros((2, 8, 3), np.float32))
    with pytest.raises(EmbedderError, match="8 points, not 16"):
        ChunkedClouds([paths[0], tmp_path / "narrow.npy"])
