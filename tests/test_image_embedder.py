"""EfficientNet-Lite0 image embedder: real packaged weights, features, pooling, errors, job."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import curate
from curate.jobs.embed import FrameReadError
from curate.sources.kitti import KittiSource
from curate.sources.synthetic import generate
from embedders import EmbedderError, create_embedder, image_features, load_efficientnet_lite0
from embedders.models.image import (
    WEIGHTS_FILE_SHA256,
    packaged_weights_path,
    preprocess_images,
)

SMALL = [64, 192]  # fast canvas for tests (the default is 224 x 672)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_efficientnet_lite0()


def _images(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [(94, 310), (120, 160), (375, 1242)]
    return [rng.integers(0, 256, size=(*shapes[i % 3], 3), dtype=np.uint8) for i in range(count)]


def test_packaged_imagenet_weights_load_offline_frozen(model: torch.nn.Module) -> None:
    path = packaged_weights_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_FILE_SHA256
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    model.train()  # a frozen teacher stays in eval mode
    assert not model.training


def test_features_shape_and_determinism(model: torch.nn.Module) -> None:
    images = _images(0, 3)
    first = image_features(model, images, image_size=SMALL)
    again = image_features(model, images, image_size=SMALL, batch_size=1)
    assert first.shape == (3, 1280) and first.dtype == np.float32
    np.testing.assert_array_equal(first, image_features(model, images, image_size=SMALL))
    np.testing.assert_allclose(again, first, rtol=1e-4, atol=1e-5)
    assert (first >= 0).all() and (first <= 6).all()  # pooled ReLU6 activations


def test_classifier_head_recognises_a_real_photo(model: torch.nn.Module) -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="needs matplotlib's sample photo")
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = np.asarray(Image.open(photo).convert("RGB"))
    pixels = preprocess_images([image], image_size=(224, 224))
    with torch.inference_mode():
        logits = model.net(pixels)
    assert int(logits.argmax()) == 652  # ImageNet "military uniform"


def test_multi_camera_frames_average_normalised_camera_features() -> None:
    emb = create_embedder("effnet-lite0", image_size=SMALL)
    assert emb.modality == "image" and emb.dim == 1280
    cams = _images(1, 3)
    single = emb.embed([[c] for c in cams])
    unit = single / np.linalg.norm(single, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(single, axis=1), 1.0, rtol=1e-5)
    frames = emb.embed([cams, cams[:2], cams[2:][::-1] + cams[:1]])
    np.testing.assert_allclose(frames[0], unit.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(frames[1], unit[:2].mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(frames[2], unit[[2, 0]].mean(axis=0), rtol=1e-4, atol=1e-6)
    rebuilt = create_embedder(emb.name, **emb.config())
    assert rebuilt.weights_sha256() == emb.weights_sha256()
    assert emb.config() == {"image_size": SMALL, "normalization": "tf-lite", "checkpoint": None}


def test_bad_image_inputs_are_named() -> None:
    emb = create_embedder("effnet-lite0", image_size=SMALL)
    good = _images(2, 1)[0]
    with pytest.raises(EmbedderError, match="frame 1: has no camera images"):
        emb.embed([[good], []])
    with pytest.raises(EmbedderError, match=r"frame 0, camera 1: expected dtype uint8"):
        emb.embed([[good, good.astype(np.float32)]])
    with pytest.raises(EmbedderError, match=r"frame 0, camera 0: expected shape \(H, W, 3\).*RGBA"):
        emb.embed([[np.zeros((8, 8, 4), np.uint8)]])
    with pytest.raises(EmbedderError, match="unknown option"):
        create_embedder("effnet-lite0", size=3)
    with pytest.raises(EmbedderError, match="multiples of 32"):
        create_embedder("effnet-lite0", image_size=[50, 100])


def test_missing_package_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import now fails
    with pytest.raises(EmbedderError, match=r"pip install curate\[image\]"):
        load_efficientnet_lite0()


def test_embedding_job_reads_camera_images(tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    generate(root, 5, seed=3, small=True, progress=False)
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(KittiSource(root), progress=False)
    frames = ws.frames(columns=["id", "image_paths"]).sort_by("id")
    victim = Path(frames["image_paths"][2].as_py()[0])
    backup = tmp_path / "backup.png"
    shutil.move(victim, backup)
    with pytest.raises(FrameReadError) as err:
        ws.embed("effnet-lite0", image_size=SMALL, batch_size=1, write_every=1, num_workers=0,
                 progress=False, on_error="fail")
    assert frames["id"][2].as_py() in str(err.value) and str(victim) in str(err.value)
    assert ws.store.count("emb_effnet-lite0") == 2  # frames before the missing image are kept
    shutil.move(backup, victim)
    report = ws.embed("effnet-lite0", image_size=SMALL, batch_size=2, num_workers=2, progress=False)
    assert report.skipped == 2 and report.computed == 3 and report.dim == 1280
    assert ws.embedding_info("effnet-lite0")["modality"] == "image"
    ids, stored = ws.vectors("effnet-lite0")
    by_id = dict(zip(frames["id"].to_pylist(), frames["image_paths"].to_pylist()))
    emb = create_embedder("effnet-lite0", image_size=SMALL)
    direct = emb.embed([[np.asarray(Image.open(p).convert("RGB")) for p in by_id[i]] for i in ids])
    np.testing.assert_allclose(stored, direct, rtol=1e-4, atol=1e-6)
