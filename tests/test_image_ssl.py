"""Self-supervised image embedder (image-ssl): SimCLR training, checkpoints, resume, embedder, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import curate
from curate.cli import cli
from curate.errors import CurateError, InvalidInputError
from embedders import CheckpointError, EmbedderError, create_embedder, list_embedders
from embedders.models.image import preprocess_images
from embedders.models.image_ssl import SmallConvNet, pool_cameras
from embedders.pretrain_image import (
    ImagePretrainConfig,
    augment,
    build_model,
    contrastive_loss,
    load_image_config,
    load_images,
    nt_xent,
    train,
)
from embedders.pretrain_image.augment import normalise

SIZE = [32, 96]
ROOT = Path(__file__).resolve().parents[1]


def _config(steps: int = 2, **train: object) -> ImagePretrainConfig:
    return load_image_config({
        "seed": 3,
        "model": {"width": 8, "proj_dim": 32},
        "data": {"image_size": SIZE},
        "train": {"steps": steps, "batch_size": 8, "lr": 0.01, "warmup_steps": 0,
                  "checkpoint_every": 2, "threads": 1, **train},
    })


@pytest.fixture(scope="module")
def camera_images(synth_root: Path) -> np.ndarray:
    """16 real camera images of the synthetic set at the test canvas."""
    paths = sorted((synth_root / "training" / "image_2").glob("*.png"))[:16]
    return load_images(paths, SIZE, progress=False)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["base_model"]


def test_registered_and_random_init_is_seeded() -> None:
    assert "image-ssl" in list_embedders()
    first = create_embedder("image-ssl", width=8, seed=1)
    again = create_embedder("image-ssl", width=8, seed=1)
    other = create_embedder("image-ssl", width=8, seed=2)
    assert first.dim == 64 and first.modality == "image"
    assert first.weights_sha256() == again.weights_sha256() != other.weights_sha256()
    with pytest.raises(EmbedderError, match="unknown option"):
        create_embedder("image-ssl", colour=True)


def test_augment_identity_and_flip_match_reference() -> None:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(3, 32, 96, 3), dtype=np.uint8))
    plain = normalise(images.permute(0, 3, 1, 2).float() / 255.0)
    still = load_image_config({"augment": {"crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0],
                                           "flip": 0.0, "brightness": 0.0, "contrast": 0.0,
                                           "saturation": 0.0}}).augment
    out = augment(images, still, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, plain, atol=1e-4, rtol=0)
    flipped = augment(images, load_image_config({"augment": {**_still(), "flip": 1.0}}).augment,
                      torch.Generator().manual_seed(0))
    torch.testing.assert_close(flipped, plain.flip(3), atol=1e-4, rtol=0)
    default = load_image_config(None).augment
    one = augment(images, default, torch.Generator().manual_seed(5))
    two = augment(images, default, torch.Generator().manual_seed(5))
    assert torch.equal(one, two) and one.shape == (3, 3, 32, 96)
    assert not torch.equal(one, augment(images, default, torch.Generator().manual_seed(6)))


def _still() -> dict:
    return {"crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0], "flip": 0.0, "brightness": 0.0,
            "contrast": 0.0, "saturation": 0.0}


def test_nt_xent_matches_brute_force_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    first, second = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
    loss, top1 = nt_xent(first, second, 0.3)
    views = F.normalize(torch.cat([first, second]), dim=1)
    terms, hits = [], 0
    for i in range(10):
        partner = (i + 5) % 10
        sims = {j: float(views[i] @ views[j]) / 0.3 for j in range(10) if j != i}
        terms.append(-sims[partner] + np.log(sum(np.exp(v) for v in sims.values())))
        hits += max(sims, key=sims.get) == partner
    assert float(loss) == pytest.approx(np.mean(terms), rel=1e-5)
    assert float(top1) == pytest.approx(hits / 10)


def test_two_steps_decrease_the_loss_on_a_tiny_set(camera_images: np.ndarray, tmp_path: Path) -> None:
    config = _config(steps=2)
    batch = torch.from_numpy(camera_images[:8])

    def fixed_loss(model: torch.nn.Module) -> float:
        model.train()
        with torch.no_grad():
            loss, _ = contrastive_loss(model, batch, config, torch.Generator().manual_seed(11))
        return float(loss)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        before = fixed_loss(build_model(config))
        result = train(config, camera_images[:8], tmp_path / "run", progress=False)
        trained = build_model(config)
        trained.load_state_dict(_weights(result.checkpoint))
    finally:
        torch.set_num_threads(threads)  # never leak a thread count into later tests
    assert result.steps == 2 and result.start_step == 0
    assert fixed_loss(trained) < before
    rows = [json.loads(line) for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2] and all(np.isfinite(row["loss"]) for row in rows)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pt")) == ["last.pt", "step-0002.pt"]


def test_training_is_seeded(camera_images: np.ndarray, tmp_path: Path) -> None:
    first = train(_config(steps=2), camera_images, tmp_path / "a", progress=False)
    second = train(_config(steps=2), camera_images, tmp_path / "b", progress=False)
    a, b = _weights(first.checkpoint), _weights(second.checkpoint)
    assert all(torch.equal(a[key], b[key]) for key in a)
    other = train(load_image_config({**_config(2).to_dict(), "seed": 4}), camera_images,
                  tmp_path / "c", progress=False)
    assert not torch.equal(_weights(other.checkpoint)["backbone.features.0.weight"],
                           a["backbone.features.0.weight"])


def test_checkpoint_round_trip_gives_the_same_vectors(camera_images: np.ndarray,
                                                       tmp_path: Path) -> None:
    result = train(_config(steps=2), camera_images, tmp_path / "run", progress=False)
    frames = [[camera_images[0]], [camera_images[1], camera_images[2]], [camera_images[3]]]
    embedder = create_embedder("image-ssl", checkpoint=result.checkpoint)
    vectors = embedder.embed(frames)
    rebuilt = create_embedder("image-ssl", **embedder.config())
    np.testing.assert_array_equal(rebuilt.embed(frames), vectors)
    assert rebuilt.weights_sha256() == embedder.weights_sha256()
    assert embedder.config()["image_size"] == SIZE and embedder.dim == 64

    # reference: the trained backbone applied by hand, cameras pooled as L2-normalised means
    model = build_model(_config())
    model.load_state_dict(_weights(result.checkpoint))
    model.eval()
    with torch.no_grad():
        raw = model.backbone(preprocess_images(list(camera_images[:4]), image_size=SIZE)).numpy()
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    expected = np.stack([unit[0], (unit[1] + unit[2]) / 2, unit[3]])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # camera order does not matter
    swapped = embedder.embed([[camera_images[2], camera_images[1]]])
    np.testing.assert_allclose(swapped[0], vectors[1], atol=1e-6)


def test_pool_cameras_errors() -> None:
    def features(images: list) -> np.ndarray:
        return np.ones((len(images), 4), np.float32)

    with pytest.raises(EmbedderError, match="frame 1: has no camera images"):
        pool_cameras([[np.zeros((4, 4, 3), np.uint8)], []], features, 4, "image-ssl")
    with pytest.raises(EmbedderError, match="frame 0, camera 0"):
        pool_cameras([[np.zeros((4, 4), np.uint8)]], features, 4, "image-ssl")
    with pytest.raises(EmbedderError, match="wrap a single image"):
        pool_cameras([np.zeros((4, 4, 3), np.uint8)], features, 4, "image-ssl")


def test_missing_and_corrupt_checkpoints_give_clear_errors(camera_images: np.ndarray,
                                                            tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        create_embedder("image-ssl", checkpoint=tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="could not be read"):
        create_embedder("image-ssl", checkpoint=garbage)
    result = train(_config(steps=2), camera_images, tmp_path / "run", progress=False)
    payload = result.checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        create_embedder("image-ssl", checkpoint=truncated)
    foreign = tmp_path / "recon.pt"
    torch.save({"base_model": {"MAE_encoder.cls_token": torch.zeros(1, 1, 8)}}, foreign)
    with pytest.raises(CheckpointError, match="not an image-ssl checkpoint"):
        create_embedder("image-ssl", checkpoint=foreign)
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    state["base_model"]["backbone.features.3.weight"] = torch.zeros(3, 3)
    edited = tmp_path / "edited.pt"
    torch.save(state, edited)
    with pytest.raises(CheckpointError, match=r"backbone.features.3.weight.*shape \[3, 3\]"):
        create_embedder("image-ssl", checkpoint=edited)
    del state["base_model"]["backbone.features.3.weight"]
    torch.save(state, edited)
    with pytest.raises(CheckpointError, match="missing backbone key 'backbone.features.3.weight'"):
        create_embedder("image-ssl", checkpoint=edited)
    with pytest.raises(CheckpointError, match="width=16"):
        create_embedder("image-ssl", checkpoint=result.checkpoint, width=16)
    # a corrupt last.pt refuses to resume (and says what to do) instead of starting over
    (tmp_path / "run" / "last.pt").write_bytes(b"junk")
    with pytest.raises(EmbedderError, match="cannot resume"):
        train(_config(steps=4), camera_images, tmp_path / "run", progress=False)


def test_resume_with_another_config_is_refused(camera_images: np.ndarray, tmp_path: Path) -> None:
    train(_config(steps=2), camera_images, tmp_path / "run", progress=False)
    changed = load_image_config({**_config(2).to_dict(), "loss": {"temperature": 0.5}})
    with pytest.raises(EmbedderError, match=r"loss.temperature: 0.2 -> 0.5"):
        train(changed, camera_images, tmp_path / "run", progress=False)


_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from embedders.pretrain_image import load_image_config, train
    config = load_image_config({config!r})
    images = np.load({images!r})
    train(config, images, {run!r}, progress=False, on_step=lambda step, row: time.sleep(0.4))
""")


def test_kill9_resume_reaches_the_uninterrupted_weights(camera_images: np.ndarray,
                                                         tmp_path: Path) -> None:
    config = _config(steps=8)
    np.save(tmp_path / "images.npy", camera_images)
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(root=str(ROOT), config=config.to_dict(),
                                    images=str(tmp_path / "images.npy"), run=str(tmp_path / "killed")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "killed" / "step-0004.pt").exists():
            assert child.poll() is None, "the training child exited early"
            assert time.monotonic() < deadline, "the training child made no progress"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    resumed = train(config, camera_images, tmp_path / "killed", progress=False)
    # step-0004.pt exists, but the kill may land before last.pt is replaced: resume from 2 or 4
    assert resumed.start_step in (2, 4, 6) and resumed.steps == 8
    straight = train(config, camera_images, tmp_path / "straight", progress=False)
    a, b = _weights(resumed.checkpoint), _weights(straight.checkpoint)
    for key in b:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5, msg=key)
    steps = [json.loads(line)["step"]
             for line in (tmp_path / "killed" / "losses.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    assert not list((tmp_path / "killed").glob("*.tmp"))


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match=r"unknown key\(s\) \['widht'\]; valid: \['kind', 'width'"):
        load_image_config({"model": {"widht": 8}})
    with pytest.raises(EmbedderError, match="kind='points'"):
        load_image_config({"model": {"kind": "points"}})
    with pytest.raises(EmbedderError, match="image_size"):
        load_image_config({"data": {"image_size": [30, 96]}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 2\n")
    with pytest.raises(EmbedderError, match="not valid TOML"):
        load_image_config(bad)
    good = tmp_path / "good.toml"
    good.write_text('name = "cams"\n[model]\nkind = "image"\nwidth = 8\n[train]\nsteps = 5\n')
    config = load_image_config(good)
    assert (config.name, config.model.width, config.train.steps) == ("cams", 8, 5)
    assert load_image_config(config.to_dict()) == config


def test_workspace_pretrain_embed_fuse_and_cli(ws: curate.Workspace, tmp_path: Path) -> None:
    config = {**_config(steps=2).to_dict(), "name": "cams"}
    before = ws.embeddings()
    with pytest.raises(InvalidInputError, match="widht"):
        ws.pretrain_image({"model": {"widht": 8}})
    with pytest.raises(InvalidInputError, match="no camera images"):
        ws.pretrain_image({**config, "data": {"image_size": SIZE, "where": "id = 'none'"}})
    report = ws.pretrain_image(config, progress=False)
    assert report.model == "image-ssl" and report.steps == 2 and report.frames == ws.count()
    assert Path(report.checkpoint) == ws.path / "checkpoints" / "cams" / "last.pt"
    again = ws.pretrain_image(config, progress=False)  # finished run: resumes at the end
    assert again.start_step == 2 and again.steps == 2

    with pytest.raises(CurateError, match="does not exist"):
        ws.embed("image-ssl", name="cams", checkpoint=tmp_path / "missing.pt", progress=False)
    assert ws.embeddings() == before  # nothing written
    embedded = ws.embed("image-ssl", name="cams", checkpoint=report.checkpoint, progress=False,
                        num_workers=0)
    info = ws.embedding_info("cams")
    expected = create_embedder("image-ssl", checkpoint=report.checkpoint)
    assert info["weights_sha256"] == expected.weights_sha256() and info["modality"] == "image"
    ids, vectors = ws.vectors("cams")
    assert vectors.shape == (ws.count(), 64) and embedded.computed == ws.count()
    assert embedded.weights_sha256 == expected.weights_sha256()
    frame = ws.frames(columns=["id", "image_paths"]).to_pylist()[0]
    from embedders.pretrain_image import read_image

    direct = expected.embed([[read_image(p) for p in frame["image_paths"]]])
    np.testing.assert_allclose(ws.vectors("cams", ids=[frame["id"]])[1], direct, atol=1e-5)
    ws.fuse(["bev-hist", "cams"], name="bev-cams", progress=False)
    _, joint = ws.vectors("bev-cams")
    assert joint.shape == (ws.count(), 64 + ws.vectors("bev-hist")[1].shape[1])

    # CLI: a second run name through `curate pretrain-image --config`
    toml = tmp_path / "image.toml"
    toml.write_text('name = "cli-run"\nseed = 1\n[model]\nkind = "image"\nwidth = 8\n'
                    "[data]\nimage_size = [32, 96]\n[train]\nsteps = 1\nbatch_size = 8\nthreads = 1\n")
    exe = Path(sys.executable).parent / "curate"
    done = subprocess.run([str(exe), "pretrain-image", "--config", str(toml), "--workspace",
                           str(ws.path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(ws.path / "checkpoints" / "cli-run" / "last.pt")
    broken = tmp_path / "broken.toml"
    broken.write_text("[model]\nwidth = -1\n")
    failed = CliRunner().invoke(cli, ["pretrain-image", "--config", str(broken), "--workspace",
                                      str(ws.path)])
    assert failed.exit_code != 0 and "width=-1 must be >= 1" in str(failed.exception)


def test_load_images_cache_and_errors(synth_root: Path, tmp_path: Path) -> None:
    paths = sorted((synth_root / "training" / "image_2").glob("*.png"))[:5]
    first = load_images(paths, SIZE, cache_dir=tmp_path, progress=False)
    cached = load_images(paths, SIZE, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first, cached)
    assert len(list(tmp_path.glob("images-*/chunk-00000.npy"))) == 1
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    with pytest.raises(EmbedderError, match="broken.png.*cannot be decoded"):
        load_images([*paths, broken], SIZE, progress=False)
    with pytest.raises(EmbedderError, match="missing.png.*does not exist"):
        load_images([tmp_path / "missing.png"], SIZE, progress=False)


def test_small_conv_net_shapes() -> None:
    net = SmallConvNet(4)
    assert net(torch.zeros(2, 3, 32, 96)).shape == (2, 32)
    with pytest.raises(EmbedderError, match="width"):
        SmallConvNet(0)
