"""Self-supervised image embedder (``image-ssl``) quality: synthetic pool and Fashion-MNIST.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/image_ssl.py --workspace /tmp/curate-bench2/ws \
        --scratch /tmp/img/bench

Two parts, each printing a table (kNN accuracy, embedding time, training time, peak RSS, the
``uptime`` load) and ratio rows against named peers measured in the same run:

1. **Synthetic pool** (the ingested KITTI-format synthetic workspace, copied to ``--scratch``
   first; the source workspace is only read). ``image-ssl`` is trained with SimCLR on the pool's
   own camera images (no labels), then every frame is embedded with it, with the same
   architecture at random initialisation, and with EfficientNet-Lite0 (ImageNet) at the same
   ``64 x 192`` canvas (plus, if the workspace holds it, the pretraining teacher table computed
   at ``96 x 320``). Metrics are those of ``benchmarks/embedders.py`` (imported, so the two
   benchmarks are comparable): kNN (k=10) accuracy of time of day, dominant class, object-count
   bucket, weather and location with the neighbours of a frame taken only from **other drives**
   (leakage-free: consecutive frames of a drive are near-duplicates), leave-one-out drive
   accuracy, and near-duplicate recall@10.
2. **Fashion-MNIST** (real images, ``/usr/share/datasets/fashion-mnist``): ``image-ssl`` is
   trained on ``--fmnist-train`` training images (labels unused); kNN (k=10, cosine on centred
   vectors) classifies ``--fmnist-test`` test images from the training images' vectors. Peers:
   random-init same architecture, EfficientNet-Lite0 (ImageNet) at ``64 x 64``, raw pixels.

kNN uses FAISS exact inner product on L2-normalised vectors (memory O(N * k), no N x N
matrix), checked against a numpy brute-force reference on the first 64 queries. Timings depend
on the machine's load (printed); compare rows of one run only. Each part's table is written with
:func:`benchmarks.results_io.write_result` as ``<--name>-synthetic`` and ``<--name>-fmnist``
(default ``image_ssl-...``) under ``benchmarks/results/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds benchmarks/selectors.py, which would shadow the standard-library module
# ``selectors`` (used by subprocess and asyncio) when this file is run as a script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import collections  # noqa: E402
import gzip  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import curate  # noqa: E402
from benchmarks.results_io import write_result  # noqa: E402
from embedders import create_embedder  # noqa: E402
from embedders.models.image import image_features, load_efficientnet_lite0  # noqa: E402
from embedders.pretrain_image import load_image_config, load_images, train  # noqa: E402

logger = logging.getLogger(__name__)

K = 10
SYNTH_SIZE = (64, 192)
FMNIST_SIZE = (32, 32)
EFFNET_FMNIST_SIZE = (64, 64)
TEACHER_TABLE = "emb_pretrain-teacher-efficientnet-lite0"
SYNTH_COLUMNS = ("time of day", "dominant class", "count bucket", "weather", "location", "drive",
                 "near-dup R@10")


def _embedders_benchmark():
    """``benchmarks/embedders.py`` as a module (its metric definitions are reused)."""
    path = Path(__file__).resolve().parent / "embedders.py"
    spec = importlib.util.spec_from_file_location("bench_embedders", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _unit(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(vectors - mean, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, k: int = K) -> float:
    """Majority vote of the k most cosine-similar training rows (vectors centred on the train mean).

    FAISS exact search, checked against numpy brute force on the first 64 queries. Memory O(N k).
    """
    mean = train_x.mean(axis=0)
    bank, queries = _unit(train_x, mean), _unit(test_x, mean)
    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(bank)
    scores, found = index.search(queries, k)
    probe = min(64, len(queries))
    reference = np.sort(queries[:probe] @ bank.T, axis=1)[:, ::-1][:, :k]
    if not np.allclose(reference, scores[:probe], atol=1e-4):
        raise RuntimeError("FAISS neighbours disagree with the numpy brute-force reference")
    votes = [collections.Counter(train_y[row]).most_common(1)[0][0] for row in found]
    return float((np.asarray(votes) == test_y).mean())


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def _embed_images(embedder, images: np.ndarray) -> np.ndarray:
    return embedder.embed([[image] for image in images])


def _effnet(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    model = load_efficientnet_lite0()
    return image_features(model, list(images), image_size=size, batch_size=32)


def _print_table(title: str, columns: list[str], rows: dict[str, dict[str, float]],
                 extra: list[str]) -> None:
    print(f"\n{title}")
    head = f"{'embedder':40s}" + "".join(f"{c[:14]:>15s}" for c in columns + extra)
    print(head)
    for name, values in rows.items():
        cells = []
        for column in columns + extra:
            value = values.get(column, float("nan"))
            cells.append(f"{value:>15.3f}" if isinstance(value, float) else f"{str(value):>15s}")
        print(f"{name:40s}" + "".join(cells))


def _print_ratio(rows: dict, columns: list[str], subject: str, peer: str) -> None:
    cells = []
    for column in columns:
        a, b = rows[subject].get(column), rows[peer].get(column)
        ok = isinstance(a, float) and isinstance(b, float) and b > 0 and np.isfinite(a / b)
        cells.append(f"{a / b:>15.2f}" if ok else f"{'-':>15s}")
    print(f"{'ratio ' + subject[:14] + ' / ' + peer[:16]:40s}" + "".join(cells))


# --------------------------------------------------------------------------------------------
# part 1: synthetic pool


def _write(part: str, rows: dict[str, dict], columns: list[str], args: argparse.Namespace,
           notes: str, extra: dict) -> None:
    """One part's table as a result file (``"-"`` cells become ``None``)."""
    table = [{"embedder": name, **{c: (None if values.get(c) == "-" else values.get(c))
                                   for c in columns}} for name, values in rows.items()]
    write_result("image_ssl", table, name=f"{args.name}-{part}", args=args,
                 columns=["embedder", *columns], notes=notes, extra=extra)


def synthetic(args: argparse.Namespace) -> None:
    bench = _embedders_benchmark()
    source = Path(args.workspace)
    copy = Path(args.scratch) / "ws"
    if not copy.exists():
        copy.mkdir(parents=True)
        for part in ("samples.lance", "labels.lance", f"{TEACHER_TABLE}.lance"):
            if (source / part).exists():
                shutil.copytree(source / part, copy / part)
    ws = curate.connect(copy)
    ids = sorted(ws.frames(columns=["id"])["id"].to_pylist())
    if args.frames:
        ids = ids[: args.frames]
    attrs = bench.frame_attributes(ws, ids)
    table = ws.frames(columns=["id", "image_paths"]).to_pylist()
    paths_of = {row["id"]: row["image_paths"] for row in table}
    paths = [paths_of[i][0] for i in ids]
    images, decode_s = _timed(load_images, paths, SYNTH_SIZE, cache_dir=Path(args.scratch) / "cache",
                              progress=False)
    jitter = args.colour_jitter
    cfg = load_image_config({
        "name": f"synth-j{jitter:g}-c{args.crop_min:g}-s{args.steps}", "seed": 0,
        "data": {"image_size": list(SYNTH_SIZE)},
        "augment": {"brightness": jitter, "contrast": jitter, "saturation": jitter,
                    "crop_scale": [args.crop_min, 1.0]},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "threads": args.threads,
                  "checkpoint_every": 50},
    })
    print(f"# synthetic: {len(ids)} frames, {len(set(attrs['drive']))} drives, front camera "
          f"decoded to {SYNTH_SIZE} in {decode_s:.1f} s; config {cfg.to_dict()}")
    print(f"# before training: {uptime()}")
    result = train(cfg, images, Path(args.scratch) / "runs" / cfg.name, progress=args.progress)
    print(f"# trained {result.steps} steps (resumed from {result.start_step}) in "
          f"{result.seconds:.0f} s, final {result.final_losses}; {uptime()}")

    rows: dict[str, dict[str, float]] = {}
    trained = create_embedder("image-ssl", checkpoint=result.checkpoint)
    vectors, seconds = _timed(_embed_images, trained, images)
    rows["image-ssl (SimCLR on pool)"] = {**bench.quality(vectors, attrs), "dim": trained.dim,
                                          "embed img/s": len(ids) / seconds,
                                          "train s": result.seconds}
    random = create_embedder("image-ssl", width=cfg.model.width, image_size=SYNTH_SIZE, seed=0)
    vectors, seconds = _timed(_embed_images, random, images)
    rows["image-ssl random init"] = {**bench.quality(vectors, attrs), "dim": random.dim,
                                     "embed img/s": len(ids) / seconds, "train s": 0.0}
    vectors, seconds = _timed(_effnet, images, SYNTH_SIZE)
    rows[f"effnet-lite0 ImageNet {SYNTH_SIZE[0]}x{SYNTH_SIZE[1]}"] = {
        **bench.quality(vectors, attrs), "dim": 1280, "embed img/s": len(ids) / seconds, "train s": "-"}
    if f"{TEACHER_TABLE}.lance" in {p.name for p in copy.iterdir()}:
        _, cached = ws.store.read_vectors(TEACHER_TABLE, ids=ids)
        size = ws.store.table_metadata(TEACHER_TABLE).get("config", "")
        rows["effnet-lite0 ImageNet (cached teacher)"] = {**bench.quality(cached, attrs),
                                                          "dim": 1280, "embed img/s": "cached"}
        print(f"# cached teacher config: {size}")
    prior = bench.majority(attrs)
    rows["majority-class prior"] = prior
    columns = list(SYNTH_COLUMNS)
    _print_table(
        f"1. synthetic pool, {len(ids)} frames: kNN (k=10) accuracy with neighbours from OTHER "
        "drives (leakage-free); drive = leave-one-out drive accuracy; near-dup R@10 = recall of "
        "same-drive frames within +-5 indices",
        columns, rows, ["dim", "embed img/s", "train s"])
    _print_ratio(rows, columns, "image-ssl (SimCLR on pool)", "image-ssl random init")
    _print_ratio(rows, columns, "image-ssl (SimCLR on pool)",
                 f"effnet-lite0 ImageNet {SYNTH_SIZE[0]}x{SYNTH_SIZE[1]}")
    print(f"# peak RSS of this process so far: {peak_rss_mb():.0f} MB; {uptime()}")
    _write("synthetic", rows, columns + ["dim", "embed img/s", "train s"], args,
           f"{len(ids)} frames, {len(set(attrs['drive']))} drives; kNN (k={K}) with neighbours "
           "from other drives; drive = leave-one-out; near-dup R@10 within +-5 frames",
           {"config": cfg.to_dict(), "final_losses": result.final_losses,
            "peak_rss_mb": peak_rss_mb()})


# --------------------------------------------------------------------------------------------
# part 2: Fashion-MNIST


def read_idx(path: Path) -> np.ndarray:
    """An idx (MNIST-format) gz file as a numpy array."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _rgb(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, 28, 28)`` grey -> ``(N, H, W, 3)`` uint8 at ``size`` (PIL bilinear, as the embedders)."""
    from embedders.models.image import _cover_and_crop

    return np.stack([_cover_and_crop(np.repeat(im[:, :, None], 3, axis=2), *size) for im in images])


def fashion(args: argparse.Namespace) -> None:
    root = Path(args.fmnist)
    rng = np.random.default_rng(0)
    train_x, train_y = read_idx(root / "train-images-idx3-ubyte.gz"), read_idx(root / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx(root / "t10k-images-idx3-ubyte.gz"), read_idx(root / "t10k-labels-idx1-ubyte.gz")
    pick = np.sort(rng.choice(len(train_x), args.fmnist_train, replace=False))
    take = np.sort(rng.choice(len(test_x), args.fmnist_test, replace=False))
    train_x, train_y, test_x, test_y = train_x[pick], train_y[pick], test_x[take], test_y[take]
    train_rgb, test_rgb = _rgb(train_x, FMNIST_SIZE), _rgb(test_x, FMNIST_SIZE)
    cfg = load_image_config({
        "name": f"fmnist-s{args.fmnist_steps}", "seed": 0, "data": {"image_size": list(FMNIST_SIZE)},
        "augment": {"crop_scale": [0.3, 1.0], "brightness": 0.4, "contrast": 0.4,
                    "saturation": 0.0},
        "train": {"steps": args.fmnist_steps, "batch_size": 256, "threads": args.threads,
                  "checkpoint_every": 100},
    })
    print(f"\n# fashion-mnist: {len(train_x)} train / {len(test_x)} test images at {FMNIST_SIZE}; "
          f"config {cfg.to_dict()}")
    print(f"# before training: {uptime()}")
    result = train(cfg, train_rgb, Path(args.scratch) / "runs" / cfg.name, progress=args.progress)
    print(f"# trained {result.steps} steps in {result.seconds:.0f} s, final {result.final_losses}; "
          f"{uptime()}")
    rows: dict[str, dict[str, float]] = {}

    def row(name: str, embed, train_seconds: float | None) -> None:
        (bank, queries), seconds = _timed(lambda: (embed(train_rgb), embed(test_rgb)))
        rows[name] = {"kNN acc": knn_accuracy(bank, train_y, queries, test_y), "dim": bank.shape[1],
                      "embed img/s": (len(bank) + len(queries)) / seconds,
                      "train s": train_seconds if train_seconds is not None else "-"}

    trained = create_embedder("image-ssl", checkpoint=result.checkpoint)
    row("image-ssl (SimCLR on train set)", lambda x: _embed_images(trained, x), result.seconds)
    random = create_embedder("image-ssl", width=cfg.model.width, image_size=FMNIST_SIZE, seed=0)
    row("image-ssl random init", lambda x: _embed_images(random, x), 0.0)
    effnet = f"effnet-lite0 ImageNet {EFFNET_FMNIST_SIZE[0]}x{EFFNET_FMNIST_SIZE[1]}"
    if not args.no_effnet:
        row(effnet, lambda x: _effnet(x, EFFNET_FMNIST_SIZE), None)
    (bank, queries), seconds = _timed(lambda: (train_x.reshape(len(train_x), -1).astype(np.float32),
                                                test_x.reshape(len(test_x), -1).astype(np.float32)))
    rows["raw pixels (784-d)"] = {"kNN acc": knn_accuracy(bank, train_y, queries, test_y),
                                  "dim": 784, "embed img/s": "-", "train s": "-"}
    rows["majority-class prior"] = {
        "kNN acc": collections.Counter(test_y.tolist()).most_common(1)[0][1] / len(test_y)}
    _print_table(f"2. Fashion-MNIST: kNN (k=10) accuracy of {len(test_x)} test images from "
                 f"{len(train_x)} training images", ["kNN acc"], rows,
                 ["dim", "embed img/s", "train s"])
    _print_ratio(rows, ["kNN acc"], "image-ssl (SimCLR on train set)", "image-ssl random init")
    _print_ratio(rows, ["kNN acc"], "image-ssl (SimCLR on train set)", "raw pixels (784-d)")
    if not args.no_effnet:
        _print_ratio(rows, ["kNN acc"], "image-ssl (SimCLR on train set)", effnet)
    print(f"# peak RSS of this process: {peak_rss_mb():.0f} MB; {uptime()}")
    _write("fmnist", rows, ["kNN acc", "dim", "embed img/s", "train s"], args,
           f"Fashion-MNIST: kNN (k={K}) of {len(test_x)} test images from {len(train_x)} "
           "training images", {"config": cfg.to_dict(), "final_losses": result.final_losses,
                               "peak_rss_mb": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", default="/tmp/curate-bench2/ws",
                        help="synthetic workspace to read (copied to --scratch; never written)")
    parser.add_argument("--scratch", default="/tmp/img/bench")
    parser.add_argument("--frames", type=int, default=0, help="first N frames only (0 = all)")
    parser.add_argument("--steps", type=int, default=300, help="SimCLR steps on the synthetic pool")
    parser.add_argument("--batch-size", type=int, default=64, help="SimCLR batch on the synthetic pool")
    parser.add_argument("--colour-jitter", type=float, default=0.0,
                        help="brightness / contrast / saturation jitter of the synthetic run")
    parser.add_argument("--crop-min", type=float, default=0.5,
                        help="smallest random-resized-crop area of the synthetic run")
    parser.add_argument("--fmnist", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--fmnist-train", type=int, default=10000)
    parser.add_argument("--fmnist-test", type=int, default=2000)
    parser.add_argument("--fmnist-steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared box)")
    parser.add_argument("--no-effnet", action="store_true",
                        help="skip the EfficientNet-Lite0 Fashion-MNIST row (slowest peer)")
    parser.add_argument("--parts", default="synthetic,fashion")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--name", default="image_ssl",
                        help="result name prefix (benchmarks/results/NAME-synthetic.json, ...)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    print(f"# image-ssl benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}, torch threads "
          f"{args.threads}; {uptime()}")
    parts = args.parts.split(",")
    if "synthetic" in parts:
        synthetic(args)
    if "fashion" in parts:
        fashion(args)


if __name__ == "__main__":
    main()
