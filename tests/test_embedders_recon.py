"""ReCon encoder: names/shapes vs the official checkpoint layout, checkpoint I/O, features."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from embedders import (
    CheckpointError,
    EmbedderError,
    create_embedder,
    load_recon_checkpoint,
    save_checkpoint,
)
from embedders.checkpoint import read_checkpoint, state_dict_sha256
from embedders.models.recon import (
    ReconConfig,
    ReconEncoder,
    init_recon_weights,
    pool_features,
    random_projection,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_CANDIDATES = [
    REPO_ROOT / "tests" / "data" / "recon_state_dict_keys.txt",
    Path("/work/shared/reference/recon_state_dict_keys.txt"),
]
BASE_PARAMS = 43_107_072
BASE_ENTRIES = 306
# Options that make the recon embedders cheap on tiny clouds.
TINY_SCENE = {"num_points": 128, "num_group": 8, "group_size": 16, "voxel_size": 0.0}


def _reference_file() -> Path:
    for candidate in REFERENCE_CANDIDATES:
        if candidate.is_file():
            return candidate
    pytest.skip(f"ReCon reference key file not found at {[str(c) for c in REFERENCE_CANDIDATES]}")


def parse_reference_section_a(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) pairs of section [A], ``MAE_encoder.`` stripped, in file order."""
    entries: list[tuple[str, tuple[int, ...]]] = []
    inside = False
    for line in path.read_text().splitlines():
        if line.startswith("## ["):
            inside = line.startswith("## [A]")
            continue
        if not inside or not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")
        entries.append((key.removeprefix("MAE_encoder."), tuple(json.loads(shape))))
    return entries


@pytest.fixture(scope="module")
def base_model() -> ReconEncoder:
    return ReconEncoder(ReconConfig.for_size("base"))


def _scene_cloud(seed: int, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-20, 20, size=(n, 2))
    z = rng.uniform(-2.5, 0.5, size=(n, 1))
    return np.concatenate([xy, z], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- architecture


def test_base_state_dict_matches_reference_names_shapes_and_order(base_model: ReconEncoder) -> None:
    reference = parse_reference_section_a(_reference_file())
    assert len(reference) == BASE_ENTRIES
    ours = [(key, tuple(value.shape)) for key, value in base_model.state_dict().items()]
    assert ours == reference


def test_base_parameter_count_and_entry_count(base_model: ReconEncoder) -> None:
    assert sum(p.numel() for p in base_model.parameters()) == BASE_PARAMS
    assert len(base_model.state_dict()) == BASE_ENTRIES


@pytest.mark.parametrize(
    ("size", "dim", "heads"), [("tiny", 192, 3), ("small", 256, 4), ("base", 384, 6)]
)
def test_sizes(size: str, dim: int, heads: int) -> None:
    config = ReconConfig.for_size(size)
    assert (config.trans_dim, config.depth, config.num_heads) == (dim, 12, heads)


def test_encoder_forward_shapes_and_query_token_path() -> None:
    model = ReconEncoder(ReconConfig.for_size("tiny", num_group=8, group_size=16)).eval()
    init_recon_weights(model, 0)
    points = torch.from_numpy(
        np.random.default_rng(0).uniform(-1, 1, (2, 128, 3)).astype(np.float32)
    )
    with torch.inference_mode():
        tokens = model(points)
        assert tokens.shape == (2, 3 + 8, 192)
        # Manual walk: group -> tokenize -> cat query tokens -> blocks on x + pos -> norm.
        neighbourhoods, centers = model.group_divider(points)
        x = torch.cat([model.cls_token, model.img_token, model.text_token], 1).expand(2, -1, -1)
        pos = torch.cat([model.cls_pos, model.img_pos, model.text_pos], 1).expand(2, -1, -1)
        x = torch.cat([x, model.encoder(neighbourhoods)], 1)
        pos = torch.cat([pos, model.pos_embed(centers)], 1)
        for block in model.blocks.blocks:
            x = block(x + pos)
        torch.testing.assert_close(tokens, model.norm(x), rtol=0, atol=0)


def test_pool_features_definitions() -> None:
    tokens = torch.randn(2, 3 + 5, 4)
    svm = pool_features(tokens, "svm")
    fine = pool_features(tokens, "finetune")
    t = tokens.numpy()
    np.testing.assert_allclose(
        svm.numpy(),
        np.concatenate([t[:, :3].max(1), t[:, 3:].max(1) + t[:, 3:].mean(1)], 1),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        fine.numpy(), np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 3:].max(1)], 1)
    )
    np.testing.assert_array_equal(pool_features(tokens, "cls").numpy(), t[:, 0])
    with pytest.raises(EmbedderError, match="unknown feature"):
        pool_features(tokens, "mean")


def test_feature_option_sets_dim() -> None:
    assert create_embedder("recon-tiny", feature="svm", **TINY_SCENE).dim == 384
    assert create_embedder("recon-tiny", feature="finetune", **TINY_SCENE).dim == 768
    assert create_embedder("recon-tiny", feature="cls", **TINY_SCENE).dim == 192
    assert create_embedder("recon-small", feature="svm", **TINY_SCENE).dim == 512
    # svm-bev, grid 8: (2 + 64) * 256 raw, projected to 1024 by default
    small = create_embedder("recon-small", **TINY_SCENE)
    assert small.raw_dim == (2 + 8 * 8) * 256 and small.dim == 1024
    raw = create_embedder("recon-small", project_dim=0, **TINY_SCENE)
    assert raw.dim == (2 + 8 * 8) * 256 and raw.projection() is None
    assert create_embedder("recon-tiny", bev_grid=3, project_dim=4096, **TINY_SCENE).dim == 11 * 192
    assert create_embedder("recon-tiny").preprocess_config.num_points == 2048


def test_random_projection_is_fixed_and_keeps_cosines() -> None:
    options = {**TINY_SCENE, "bev_grid": 3, "num_points": 256}
    projected = create_embedder("recon-tiny", project_dim=256, **options)
    raw = create_embedder("recon-tiny", project_dim=0, **options)
    rng = np.random.default_rng(1)
    clouds = [rng.uniform(-20, 20, size=(3000, 4)).astype(np.float32) for _ in range(6)]
    clouds = [np.concatenate([c[:, :2], c[:, 2:3] * 0.05 - 1, c[:, 3:] * 0]
                             , axis=1).astype(np.float32) for c in clouds]
    a, b = projected.embed(clouds), raw.embed(clouds)
    # brute force: the same fixed matrix applied to the raw vectors
    matrix = random_projection(raw.raw_dim, 256).numpy()
    np.testing.assert_allclose(a, b @ matrix, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(matrix, random_projection(raw.raw_dim, 256).numpy())
    assert projected.config()["project_dim"] == 256
    # Johnson-Lindenstrauss: centred cosines survive within a loose bound
    def cosines(x):
        x = x - x.mean(0)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T
    assert np.abs(cosines(a) - cosines(b)).max() < 0.25


# ----------------------------------------------------------------------------- init determinism


def test_random_init_is_seeded_and_stable_across_processes() -> None:
    a = create_embedder("recon-tiny", seed=0, **TINY_SCENE)
    b = create_embedder("recon-tiny", seed=0, **TINY_SCENE)
    c = create_embedder("recon-tiny", seed=1, **TINY_SCENE)
    assert a.weights_sha256() == b.weights_sha256() != c.weights_sha256()
    code = (
        "from embedders import create_embedder;"
        "print(create_embedder('recon-tiny', seed=0, num_points=128, num_group=8, group_size=16,"
        " voxel_size=0.0).weights_sha256())"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == a.weights_sha256()


def test_state_dict_sha256_sees_every_byte() -> None:
    state = {"a": torch.zeros(3), "b": torch.ones(2, 2)}
    reference = state_dict_sha256(state)
    assert (
        state_dict_sha256(dict(reversed(list(state.items())))) == reference
    )  # key order irrelevant
    changed = {"a": torch.zeros(3), "b": torch.ones(2, 2)}
    changed["b"][1, 1] = 1.0000001
    assert state_dict_sha256(changed) != reference
    assert (
        state_dict_sha256({"a": torch.zeros(3, dtype=torch.float64), "b": torch.ones(2, 2)})
        != reference
    )
    assert state_dict_sha256({"a": torch.zeros(1, 3), "b": torch.ones(2, 2)}) != reference


# ----------------------------------------------------------------------------- checkpoints


def _random_official_checkpoint(reference: list[tuple[str, tuple[int, ...]]]) -> dict:
    """An official-layout pretraining checkpoint with random encoder values and a few extra keys."""
    generator = torch.Generator().manual_seed(7)
    state: dict[str, torch.Tensor] = {}
    for key, shape in reference:
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(123, dtype=torch.long)
        elif key.endswith("running_var"):
            value = torch.rand(shape, generator=generator) + 0.5
        else:
            value = torch.randn(shape, generator=generator) * 0.05
        state[f"module.MAE_encoder.{key}"] = value
    state["module.mask_token"] = torch.zeros(1, 1, 384)
    state["module.MAE_decoder.blocks.0.norm1.weight"] = torch.ones(384)
    state["module.decoder_pos_embed.0.weight"] = torch.zeros(128, 3)
    state["module.img_proj.weight"] = torch.zeros(768, 384)
    return {"base_model": state, "epoch": 300, "metrics": {"acc": 0.0}}


def test_official_checkpoint_round_trip(tmp_path: Path) -> None:
    reference = parse_reference_section_a(_reference_file())
    official = _random_official_checkpoint(reference)
    official_path = tmp_path / "official.pth"
    torch.save(official, official_path)
    expected_state = {
        key.removeprefix("module.MAE_encoder."): value
        for key, value in official["base_model"].items()
        if key.startswith("module.MAE_encoder.")
    }
    del official

    first = create_embedder("recon-base", checkpoint=str(official_path), **TINY_SCENE)
    loaded = first.model.state_dict()
    assert set(loaded) == set(expected_state)
    for key, value in expected_state.items():
        assert torch.equal(loaded[key], value), key
    assert first.weights_sha256() == state_dict_sha256(expected_state)
    clouds = [_scene_cloud(0), _scene_cloud(1)]
    vectors = first.embed(clouds)

    ours_path = save_checkpoint(first.model, tmp_path / "ours" / "recon.pth", extra={"epoch": 1})
    stored = torch.load(ours_path, map_location="cpu", weights_only=True)
    assert stored["epoch"] == 1 and all(k.startswith("MAE_encoder.") for k in stored["base_model"])
    second = create_embedder("recon-base", checkpoint=str(ours_path), **TINY_SCENE)
    assert second.weights_sha256() == first.weights_sha256()
    np.testing.assert_array_equal(second.embed(clouds), vectors)
    # config() records the checkpoint and rebuilds the same embedder.
    assert second.config()["checkpoint"] == str(ours_path.resolve())
    rebuilt = create_embedder(second.name, **second.config())
    np.testing.assert_array_equal(rebuilt.embed(clouds), vectors)


def _small_state(prefix: str = "MAE_encoder.") -> tuple[ReconEncoder, dict[str, torch.Tensor]]:
    model = ReconEncoder(ReconConfig.for_size("tiny", num_group=8, group_size=16))
    init_recon_weights(model, 3)
    return model, {prefix + key: value.clone() for key, value in model.state_dict().items()}


def test_load_ignores_non_encoder_keys_and_reports_them() -> None:
    model, state = _small_state("module.MAE_encoder.")
    state["module.MAE_decoder.norm.weight"] = torch.ones(192)
    state["module.text_encoder.ln_final.weight"] = torch.ones(512)
    state["module.cls_head_finetune.0.weight"] = torch.ones(2, 2)
    target = ReconEncoder(ReconConfig.for_size("tiny", num_group=8, group_size=16))
    report = load_recon_checkpoint(target, {"base_model": state})
    assert report.loaded == len(model.state_dict())
    assert sorted(report.ignored) == [
        "module.MAE_decoder.norm.weight",
        "module.cls_head_finetune.0.weight",
        "module.text_encoder.ln_final.weight",
    ]
    assert state_dict_sha256(target.state_dict()) == state_dict_sha256(model.state_dict())


@pytest.mark.parametrize("layout", ["bare", "model"])
def test_load_bare_state_dict_or_model_entry(layout: str) -> None:
    model, state = _small_state(prefix="")
    target = ReconEncoder(ReconConfig.for_size("tiny", num_group=8, group_size=16))
    load_recon_checkpoint(target, state if layout == "bare" else {"model": state, "epoch": 1})
    assert state_dict_sha256(target.state_dict()) == state_dict_sha256(model.state_dict())


def test_wrong_shape_names_key_and_both_shapes() -> None:
    _, state = _small_state()
    state["MAE_encoder.blocks.blocks.3.attn.qkv.weight"] = torch.zeros(10, 192)
    target = ReconEncoder(ReconConfig.for_size("tiny", num_group=8, group_size=16))
    before = state_dict_sha256(target.state_dict())
    with pytest.raises(
        CheckpointError,
        match=r"'blocks\.blocks\.3\.attn\.qkv\.weight' has shape \[10, 192\] "
        r"but the model expects \[576, 192\]",
    ):
        load_recon_checkpoint(target, {"base_model": state})
    assert state_dict_sha256(target.state_dict()) == before  # unchanged on error


def test_missing_key_is_named() -> None:
    _, state = _small_state()
    del state["MAE_encoder.norm.bias"]
    target = ReconEncoder(ReconConfig.for_size("tiny", num_group=8, group_size=16))
    with pytest.raises(CheckpointError, match=r"missing encoder key 'norm\.bias'"):
        load_recon_checkpoint(target, {"base_model": state})


def test_extra_encoder_block_is_rejected() -> None:
    _, state = _small_state()
    state["MAE_encoder.blocks.blocks.12.norm1.weight"] = torch.ones(192)
    target = ReconEncoder(ReconConfig.for_size("tiny", num_group=8, group_size=16))
    with pytest.raises(
        CheckpointError, match=r"'blocks\.blocks\.12\.norm1\.weight' that this model does not have"
    ):
        load_recon_checkpoint(target, {"base_model": state})


def test_size_mismatch_via_create_embedder(tmp_path: Path) -> None:
    model, _ = _small_state()
    path = save_checkpoint(model, tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match="cls_token.*shape \\[1, 1, 192\\].*\\[1, 1, 256\\]"):
        create_embedder("recon-small", checkpoint=str(path), **TINY_SCENE)


def test_unreadable_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        read_checkpoint(garbage)
    torch.save({"optimizer": {}, "epoch": 3}, tmp_path / "no_model.pth")
    with pytest.raises(CheckpointError, match="no 'base_model' entry.*'epoch', 'optimizer'"):
        read_checkpoint(tmp_path / "no_model.pth")
    with pytest.raises(CheckpointError, match="must not contain 'base_model'"):
        save_checkpoint(
            ReconEncoder(ReconConfig.for_size("tiny")), tmp_path / "x.pth", extra={"base_model": 1}
        )
