"""Temporal contrastive positives: neighbour lookup against brute force, dataset views, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedders.errors import EmbedderError
from embedders.pretrain.config import PretrainConfig, PretrainConfigError
from embedders.pretrain.data import CloudDataset, TemporalNeighbours
from embedders.pretrain.trainer import _check_resumable, train


def _brute_force(scenes: list, frames: list[int], window: int) -> list[set[int]]:
    out = []
    for i, (scene, frame) in enumerate(zip(scenes, frames)):
        if scene in (None, ""):
            out.append(set())
            continue
        out.append({
            j for j, (other, f) in enumerate(zip(scenes, frames))
            if j != i and other == scene and abs(f - frame) <= window
        })
    return out


@pytest.mark.parametrize("window", [1, 3, 7])
def test_candidates_match_brute_force(window: int) -> None:
    rng = np.random.default_rng(window)
    scenes = [str(s) for s in rng.integers(0, 6, size=150)]
    scenes[3] = None  # frames without a scene are scenes of their own
    scenes[4] = ""
    frames = [int(f) for f in rng.integers(-5, 40, size=150)]  # negatives and duplicates too
    neighbours = TemporalNeighbours(scenes, frames, window)
    expected = _brute_force(scenes, frames, window)
    for i in range(len(scenes)):
        assert set(neighbours.candidates(i).tolist()) == expected[i], i


def test_draw_returns_a_candidate_uniformly_and_reproducibly() -> None:
    scenes = ["a"] * 10 + ["b"] * 3 + ["lonely"]
    frames = list(range(10)) + [0, 1, 2] + [0]
    neighbours = TemporalNeighbours(scenes, frames, 2)
    drawn = [neighbours.draw(4, np.random.default_rng(seed)) for seed in range(400)]
    assert set(drawn) == {2, 3, 5, 6}
    counts = np.bincount(drawn, minlength=7)[[2, 3, 5, 6]]
    assert counts.min() > 60  # ~100 each: uniform over the candidates
    assert neighbours.draw(13, np.random.default_rng(0)) == 13  # no other frame: itself
    again = [neighbours.draw(4, np.random.default_rng(seed)) for seed in range(400)]
    assert drawn == again


def test_bad_neighbour_inputs_are_rejected() -> None:
    with pytest.raises(EmbedderError, match="equal length"):
        TemporalNeighbours(["a", "b"], [0], 2)
    with pytest.raises(EmbedderError, match="window"):
        TemporalNeighbours(["a"], [0], 0)


def test_second_view_comes_from_a_temporal_neighbour() -> None:
    frames = 12
    # cloud f is the constant point (f, f, f): the source frame of a view is readable from it
    clouds = np.repeat(np.arange(frames, dtype=np.float32)[:, None, None], 8, axis=1)
    clouds = np.repeat(clouds, 3, axis=2)
    scenes = ["a"] * 6 + ["b"] * 6
    neighbours = TemporalNeighbours(scenes, list(range(6)) * 2, 1)
    dataset = CloudDataset(clouds, 4, augment=None, views=2, neighbours=neighbours)
    for index in range(frames):
        for step in range(5):
            item = dataset[(index, 0, step, 0)]["points"]
            assert item.shape == (2, 4, 3)
            assert torch.all(item[0] == index)
            source = int(item[1, 0, 0])
            assert source in neighbours.candidates(index).tolist()
    with pytest.raises(EmbedderError, match="cover"):
        CloudDataset(clouds[:5], 4, views=2, neighbours=neighbours)


def test_config_validates_the_pairing() -> None:
    cfg = PretrainConfig.from_dict({"loss": {"contrast": 1.0, "contrast_pairs": "temporal",
                                             "contrast_window": 3}})
    assert cfg.loss.contrast_pairs == "temporal" and cfg.loss.contrast_window == 3
    with pytest.raises(PretrainConfigError, match="contrast_pairs='video'"):
        PretrainConfig.from_dict({"loss": {"contrast_pairs": "video"}})
    with pytest.raises(PretrainConfigError, match="contrast_window=0"):
        PretrainConfig.from_dict({"loss": {"contrast_window": 0}})


def test_runs_started_before_new_config_keys_still_resume(tmp_path) -> None:
    saved = PretrainConfig().to_dict()
    del saved["loss"]["contrast_pairs"], saved["loss"]["contrast_window"]
    _check_resumable(saved, PretrainConfig(), tmp_path / "last.pt")  # defaults: same run
    with pytest.raises(EmbedderError, match="contrast_window"):
        _check_resumable(saved, PretrainConfig.from_dict({"loss": {"contrast_window": 2}}),
                         tmp_path / "last.pt")


def test_temporal_training_needs_scenes_and_logs_the_contrast_term(tmp_path) -> None:
    rng = np.random.default_rng(0)
    clouds = rng.uniform(-0.5, 0.5, size=(16, 128, 3)).astype(np.float32)
    cfg = PretrainConfig.from_dict({
        "model": {"num_group": 8, "group_size": 8, "decoder_depth": 1},
        "data": {"num_points": 64},
        "train": {"steps": 2, "batch_size": 4, "warmup_steps": 0, "num_workers": 0},
        "loss": {"image": 0.0, "contrast": 1.0, "contrast_pairs": "temporal"},
    })
    with pytest.raises(EmbedderError, match="scene and frame index"):
        train(cfg, clouds, tmp_path / "a", progress=False)
    with pytest.raises(EmbedderError, match="one entry per cloud"):
        train(cfg, clouds, tmp_path / "b", progress=False, scenes=["s"] * 3,
              frame_indices=[0, 1, 2])
    result = train(cfg, clouds, tmp_path / "c", progress=False, scenes=["s"] * 8 + ["t"] * 8,
                   frame_indices=list(range(8)) * 2)
    assert result.steps == 2 and np.isfinite(result.final_losses["contrast"])


@pytest.mark.parametrize("contrast_on", ["patches", "cls"])
def test_contrast_gradient_reaches_the_patch_tokenizer_only_when_pooling_patches(
    contrast_on: str,
) -> None:
    from embedders.models.recon import ReconConfig
    from embedders.pretrain.model import build_pretrain_model
    from embedders.pretrain.trainer import step_generator

    model = build_pretrain_model(
        ReconConfig.for_size("tiny", num_group=8, group_size=8), seed=0, decoder_depth=1,
        decoder_num_heads=3, mask_ratio=0.5, mask_type="rand", teacher_dim=None, contrast=True,
        contrast_on=contrast_on,
    )
    head = "contrast_head.0.weight" if contrast_on == "patches" else "cls_proj.weight"
    assert head in model.state_dict()
    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.uniform(-0.5, 0.5, size=(4, 64, 3)).astype(np.float32))
    second = points + 0.01
    terms = model.losses(points, step_generator(0, 0), second_view=second)
    terms["contrast"].backward()
    tokenizer_grad = sum(
        float(p.grad.abs().sum()) for p in model.MAE_encoder.encoder.parameters()
        if p.grad is not None
    )
    # cls reads the patches through stop-gradient cross attention (ReCon): no gradient there
    assert (tokenizer_grad > 0) == (contrast_on == "patches")
