"""Low-budget active-learning quality on Fashion-MNIST: accuracy vs labels per selector.

Run from the repository root::

    sudo apt-get install dataset-fashion-mnist          # the data (Debian package, offline)
    .venv/bin/python benchmarks/al_quality.py            # embed (cached) + curves, 5 seeds
    .venv/bin/python benchmarks/al_quality.py --pool 10000 --seeds 3 --budgets 10,20,50

Data: Fashion-MNIST from ``/usr/share/datasets/fashion-mnist/`` (``--data``), the IDX files of
the Debian package ``dataset-fashion-mnist``; nothing is downloaded. The unlabeled pool is a
seeded random subset of ``--pool`` training images (default 20 000); evaluation uses the full
10 000-image test set.

Embedding: the project's ImageNet EfficientNet-Lite0 (:func:`embedders.models.image.
load_efficientnet_lite0`, 1280-d pooled head features). Each 28 x 28 grey image is scaled to
``--size`` x ``--size`` (default 64; bilinear, ``torch.nn.functional.interpolate``), copied into
three channels and normalised like the TF-Lite checkpoint (``(x - 127) / 128``). Features are
cached as ``.npy`` under ``--cache`` (``/tmp/curate-bench-fmnist/``), so reruns skip the
embedding.

Protocol (cumulative active learning): for every seed and strategy the labeled set starts
empty; at each budget ``b`` of ``--budgets`` the selector is called with the rows chosen so far
as ``labeled=`` and asked for ``b - |labeled|`` more rows, so every selection extends the
previous one. After each round a logistic regression (sklearn ``LogisticRegression``, C = 1,
lbfgs, 1000 iterations; fixed) is fit on the L2-normalised features of the labeled rows and
scored on the test set. Strategies: ``random``, curate's ``kcenter``, ``probcover``
(``delta="auto"``, the purity rule) and ``typiclust``, and scikit-activeml's ``ProbCover`` and
``TypiClust`` as peers. scikit-activeml's ProbCover builds an ``N x N`` float64 distance matrix,
so the peers run on a seeded subsample of ``--peer-pool`` rows of the pool (default 5000; said
in the table). A budget's accuracy is only defined when the labels hold at least two classes;
otherwise the majority class is predicted.

Prints mean +- std test accuracy per budget and strategy, and writes the curves to
``benchmarks/out/al_quality.png`` (matplotlib, Agg backend).
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

# This folder holds a ``selectors.py`` that shadows the stdlib module: drop it from the path.
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("benchmarks")]

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_CACHE = Path("/tmp/curate-bench-fmnist")
FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Boot"]


# ---------------------------------------------------------------------------------------- data
def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes into a uint8 array of its declared shape."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte
        raise ValueError(f"{path}: not a uint8 IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(root: Path) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST arrays; exits with install instructions when they are absent."""
    missing = [name for name in FILES.values() if not (root / name).is_file()]
    if missing:
        raise SystemExit(
            f"Fashion-MNIST not found in {root} (missing {', '.join(missing)}).\n"
            "Install the Debian package:  sudo apt-get install dataset-fashion-mnist\n"
            "or pass --data DIR with the four IDX .gz files (train/t10k images and labels)."
        )
    return {key: read_idx(root / name) for key, name in FILES.items()}


# ------------------------------------------------------------------------------------ embedding
def embed_grey(model, images: np.ndarray, size: int, batch: int = 256,
               progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """EfficientNet-Lite0 features of ``(n, 28, 28)`` uint8 grey images: ``(n, 1280)`` float32.

    Bilinear upsampling to ``size`` x ``size``, three equal channels, TF-Lite normalisation.
    """
    import torch
    import torch.nn.functional as F

    out = np.empty((images.shape[0], 1280), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, images.shape[0], batch):
            x = torch.from_numpy(images[s : s + batch].astype(np.float32))[:, None]
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            x = ((x - 127.0) / 128.0).expand(-1, 3, -1, -1).contiguous()
            out[s : s + x.shape[0]] = model(x).numpy()
            if progress is not None:
                progress(x.shape[0])
    return out


def cached_features(data: dict[str, np.ndarray], pool_rows: np.ndarray, size: int,
                    cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pool and test features, from ``cache`` when present, else embedded and saved there."""
    from tqdm import tqdm

    from embedders.models.image import load_efficientnet_lite0

    cache.mkdir(parents=True, exist_ok=True)
    tag = f"effnetlite0_s{size}"
    test_path = cache / f"test_{tag}.npy"
    train_path = cache / f"train_{tag}_n{pool_rows.size}.npy"
    rows_path = cache / f"train_{tag}_n{pool_rows.size}_rows.npy"
    model = None
    if not test_path.is_file():
        model = load_efficientnet_lite0()
        t = time.perf_counter()
        with tqdm(total=len(data["test_x"]), desc="embed test", unit="img") as bar:
            feats = embed_grey(model, data["test_x"], size, progress=bar.update)
        logger.info("test set: %.0f images/s", len(feats) / (time.perf_counter() - t))
        np.save(test_path, feats)
    cached_ok = train_path.is_file() and rows_path.is_file() and np.array_equal(
        np.load(rows_path), pool_rows)
    if not cached_ok:
        model = model or load_efficientnet_lite0()
        with tqdm(total=pool_rows.size, desc="embed pool", unit="img") as bar:
            feats = embed_grey(model, data["train_x"][pool_rows], size, progress=bar.update)
        np.save(train_path, feats)
        np.save(rows_path, pool_rows)
    return np.load(train_path), np.load(test_path)


def probe_speed(data: dict[str, np.ndarray], sizes: list[int], n: int = 256) -> None:
    """Print images/s of the embedding at each canvas size on ``n`` images."""
    import torch

    from embedders.models.image import load_efficientnet_lite0

    model = load_efficientnet_lite0()
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    for size in sizes:
        embed_grey(model, data["train_x"][:32], size)  # warm-up
        t = time.perf_counter()
        embed_grey(model, data["train_x"][:n], size)
        dt = time.perf_counter() - t
        print(f"size {size:4d}: {n / dt:7.1f} images/s  (30k images: {30000 / (n / dt) / 60:.1f} min)")


if __name__ == "__main__" and "--probe" in sys.argv:
    probe_speed(load_fashion_mnist(DEFAULT_DATA), [32, 64, 96])
    raise SystemExit(0)
