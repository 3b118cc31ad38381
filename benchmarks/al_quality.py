"""Low-budget active-learning quality on Fashion-MNIST: accuracy vs labels per selector.

Run from the repository root::

    sudo apt-get install dataset-fashion-mnist          # the data (Debian package, offline)
    .venv/bin/python benchmarks/al_quality.py            # embed (cached) + curves, 5 seeds
    .venv/bin/python benchmarks/al_quality.py --pool 10000 --seeds 3 --budgets 10,20,50

Data: Fashion-MNIST from ``/usr/share/datasets/fashion-mnist/`` (``--data``), the IDX files of
the Debian package ``dataset-fashion-mnist``; nothing is downloaded. The unlabeled pool is a
seeded random subset of ``--pool`` training images (default 10 000); accuracy is measured on a
seeded ``--test`` subset of the test set (default 5 000 images).

Embedding: the project's ImageNet EfficientNet-Lite0 (:func:`embedders.models.image.
load_efficientnet_lite0`, 1280-d pooled head features). Each 28 x 28 grey image is scaled to
``--size`` x ``--size`` (default 64; bilinear, ``torch.nn.functional.interpolate``), copied into
three channels and normalised like the TF-Lite checkpoint (``(x - 127) / 128``). Features are
cached as ``.npy`` under ``--cache`` (``/tmp/curate-bench-fmnist/``), so reruns skip the
embedding. Selectors and classifier see the L2-normalised features projected on the pool's top
``--pca`` (256) principal axes and re-normalised (the kept variance is printed); ``--pca 0``
keeps all 1280 dimensions (about 5x slower selections).

Protocol (cumulative active learning): for every seed and strategy the labeled set starts
empty; at each budget ``b`` of ``--budgets`` the selector is called with the rows chosen so far
as ``labeled=`` and asked for ``b - |labeled|`` more rows, so every selection extends the
previous one. After each round a logistic regression (sklearn ``LogisticRegression``, C = 100,
lbfgs, 1000 iterations; fixed) is fit on the L2-normalised features of the labeled rows and
scored on the test set. C = 100 (weak L2, close to the unregularised linear evaluation of the
ProbCover / TypiClust papers) was fixed from the *random* baseline, before comparing selectors:
with C = 1 and 10 unit-norm training rows the penalty dominates and the model predicts nearly one
class (random: 19.8% at 10 labels although ~6.5 classes are seen), which measures no selector.
Strategies: ``random``, curate's ``kcenter``, ``probcover`` (``delta="auto"``, the paper's purity
rule: k-means with k = 10 = the number of classes, alpha 0.95; the delta and coverage of every
round are printed) and ``typiclust``, and scikit-activeml's ``ProbCover`` and
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


def split_rows(n_train: int, n_test: int, pool: int, test: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (seed 0) sorted subsets of the training rows (the pool) and of the test rows."""
    rng = np.random.default_rng(0)
    pool_rows = np.sort(rng.choice(n_train, size=min(pool, n_train), replace=False))
    test_rows = np.sort(rng.choice(n_test, size=min(test, n_test), replace=False))
    return pool_rows, test_rows


def _cached(path: Path, rows: np.ndarray, images: np.ndarray, size: int, model_box: list,
            what: str) -> np.ndarray:
    """Features of ``images[rows]`` from ``path`` (checked against ``rows``) or embedded now."""
    from tqdm import tqdm

    from embedders.models.image import load_efficientnet_lite0

    rows_path = path.with_name(path.stem + "_rows.npy")
    if path.is_file() and rows_path.is_file() and np.array_equal(np.load(rows_path), rows):
        return np.load(path)
    if not model_box:
        model_box.append(load_efficientnet_lite0())
    t = time.perf_counter()
    with tqdm(total=rows.size, desc=f"embed {what}", unit="img") as bar:
        feats = embed_grey(model_box[0], images[rows], size, progress=bar.update)
    print(f"embedded {rows.size} {what} images in {time.perf_counter() - t:.0f} s "
          f"({rows.size / (time.perf_counter() - t):.1f} images/s, load average "
          f"{os.getloadavg()[0]:.1f})")
    np.save(path.with_suffix(".tmp.npy"), feats)
    os.replace(path.with_suffix(".tmp.npy"), path)  # a killed run leaves no half file
    np.save(rows_path, rows)
    return feats


def cached_features(data: dict[str, np.ndarray], pool_rows: np.ndarray, test_rows: np.ndarray,
                    size: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pool and test features, from ``cache`` when present, else embedded and saved there."""
    cache.mkdir(parents=True, exist_ok=True)
    tag = f"effnetlite0_s{size}"
    box: list = []
    train = _cached(cache / f"train_{tag}_n{pool_rows.size}.npy", pool_rows, data["train_x"],
                    size, box, "pool")
    test = _cached(cache / f"test_{tag}_n{test_rows.size}.npy", test_rows, data["test_x"], size,
                   box, "test")
    return train, test


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
        rate = n / dt
        print(f"size {size:4d}: {rate:7.1f} images/s  (30k images: {30000 / rate / 60:.1f} min)")


# ------------------------------------------------------------------------------- strategies
def l2n(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (float32)."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def curate_picker(selector) -> Callable:
    """``pick(x, y, labeled_rows, n_new, seed) -> rows`` from a curate selector.

    ``pick.infos`` collects ``(budget, info)`` of every call (ProbCover's delta and coverage).
    """

    def pick(x, y, labeled_rows, n_new, seed):
        sel = selector.select(x, n_new, labeled=labeled_rows, seed=seed)
        pick.infos.append((labeled_rows.size + n_new, sel.info))
        return sel.indices

    pick.infos = []
    return pick


def random_picker(x, y, labeled_rows, n_new, seed):
    """Seeded uniform sample of the unlabeled rows (a fresh generator per round and seed)."""
    rng = np.random.default_rng([seed, labeled_rows.size])
    free = np.setdiff1d(np.arange(len(x)), labeled_rows)
    return rng.choice(free, size=n_new, replace=False)


def skal_picker(cls, sub: np.ndarray) -> Callable:
    """scikit-activeml query strategy restricted to the pool rows ``sub`` (peer)."""

    def pick(x, y, labeled_rows, n_new, seed):
        pos = {int(r): i for i, r in enumerate(sub)}
        ys = np.full(sub.size, np.nan)
        for r in labeled_rows:
            if int(r) in pos:
                ys[pos[int(r)]] = y[int(r)]
        qs = cls(random_state=seed)
        idx = qs.query(x[sub], ys, batch_size=n_new)
        return sub[np.asarray(idx, dtype=np.int64)]

    return pick


def pca(x: np.ndarray, x_test: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Project pool and test rows on the pool's top ``dim`` principal axes (exact SVD of the
    centred pool, O(N d^2)); also the kept variance fraction."""
    mean = x.mean(axis=0, dtype=np.float64)
    xc = (x - mean).astype(np.float64)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    basis = vt[:dim].T.astype(np.float32)
    kept = float((sv[:dim] ** 2).sum() / (sv**2).sum())
    return ((x - mean) @ basis).astype(np.float32), ((x_test - mean) @ basis).astype(
        np.float32), kept


def fit_score(x_pool, y_pool, rows, x_test, y_test, c: float = 100.0) -> float:
    """Test accuracy of a fixed logistic regression trained on ``rows`` of the pool."""
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(y_pool[rows])
    if classes.size < 2:
        return float(np.mean(y_test == classes[0]))
    clf = LogisticRegression(C=c, max_iter=1000)
    clf.fit(x_pool[rows], y_pool[rows])
    return float(clf.score(x_test, y_test))


def run_curve(pick, x, y, x_test, y_test, budgets, seed,
              c: float = 100.0) -> tuple[list[float], float, list[int]]:
    """Cumulative AL: accuracies per budget, selection seconds, classes seen per budget."""
    rows = np.empty(0, dtype=np.int64)
    accs, seen, spent = [], [], 0.0
    for b in budgets:
        n_new = b - rows.size
        t = time.perf_counter()
        new = np.asarray(pick(x, y, rows, n_new, seed), dtype=np.int64)
        spent += time.perf_counter() - t
        if new.size != n_new or np.intersect1d(new, rows).size or np.unique(new).size != n_new:
            raise RuntimeError(f"strategy returned {new.size} rows for {n_new}, or repeats")
        rows = np.concatenate([rows, new])
        accs.append(fit_score(x, y, rows, x_test, y_test, c))
        seen.append(int(np.unique(y[rows]).size))
    return accs, spent, seen


def save_json(path: Path, results: dict, budgets: list[int], args: argparse.Namespace) -> None:
    """Accuracies per strategy, seed and budget (written after every strategy, atomically)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"budgets": budgets, "pool": args.pool, "test": args.test, "size": args.size,
               "pca": args.pca, "seeds": args.seeds, "accuracy": results}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def plot(results: dict, budgets: list[int], out: Path, title: str) -> None:
    """Mean +- std accuracy curves (log-x) to ``out`` (PNG, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, acc in results.items():
        a = np.asarray(acc) * 100
        ax.errorbar(budgets, a.mean(0), yerr=a.std(0), label=name, capsize=3, marker="o", ms=3)
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.set_xlabel("labels (cumulative budget)")
    ax.set_ylabel("test accuracy % (mean +- std over seeds)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--pool", type=int, default=10000, help="training images in the pool")
    ap.add_argument("--test", type=int, default=5000, help="test images for the accuracy")
    ap.add_argument("--size", type=int, default=64, help="embedding canvas (multiple of 32)")
    ap.add_argument("--budgets", default="10,20,30,50,100,200,500")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies",
                    default="random,kcenter,probcover,typiclust,skal-probcover,skal-typiclust")
    ap.add_argument("--peer-pool", type=int, default=5000,
                    help="pool subsample for the scikit-activeml peers (N x N float64 inside)")
    ap.add_argument("--purity-clusters", type=int, default=10,
                    help="ProbCover's k-means pseudo-labels (the paper: number of classes)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "al_quality.png")
    ap.add_argument("--pca", type=int, default=256,
                    help="PCA dimension of the features seen by selectors and classifier (0: off)")
    ap.add_argument("--C", type=float, default=100.0,
                    help="inverse L2 strength of the logistic regression (fixed, not tuned)")
    ap.add_argument("--probe", action="store_true", help="only print embedding images/s")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load_fashion_mnist(args.data)
    if args.probe:
        probe_speed(data, [32, 64, 96])
        return
    budgets = sorted(int(b) for b in args.budgets.split(","))
    pool_rows, test_rows = split_rows(len(data["train_x"]), len(data["test_x"]), args.pool,
                                      args.test)
    feats, test_feats = cached_features(data, pool_rows, test_rows, args.size, args.cache)
    x, x_test = l2n(feats), l2n(test_feats)
    kept = 1.0
    if args.pca and args.pca < x.shape[1]:
        x, x_test, kept = pca(x, x_test, args.pca)
        x, x_test = l2n(x), l2n(x_test)
    y, y_test = data["train_y"][pool_rows].astype(np.int64), data["test_y"][test_rows]

    from curate.selectors import KCenterGreedy, ProbCover, TypiClust

    sub = np.sort(np.random.default_rng(1).choice(len(x), min(args.peer_pool, len(x)),
                                                  replace=False))
    strategies: dict[str, Callable] = {}
    for name in args.strategies.split(","):
        if name == "random":
            strategies[name] = random_picker
        elif name == "kcenter":
            strategies[name] = curate_picker(KCenterGreedy())
        elif name == "probcover":
            strategies[name] = curate_picker(ProbCover(purity_clusters=args.purity_clusters))
        elif name == "typiclust":
            strategies[name] = curate_picker(TypiClust())
        elif name in ("skal-probcover", "skal-typiclust"):
            try:
                from skactiveml.pool import ProbCover as SkProbCover
                from skactiveml.pool import TypiClust as SkTypiClust
            except ImportError:
                print(f"{name}: scikit-activeml not installed (pip install curate[bench]); skipped")
                continue
            cls = SkProbCover if name == "skal-probcover" else SkTypiClust
            strategies[f"{name} ({sub.size} pool)"] = skal_picker(cls, sub)
        else:
            raise SystemExit(f"unknown strategy {name!r}")
    print(f"Fashion-MNIST: pool {len(x)} train images, test {len(x_test)}; EfficientNet-Lite0 "
          f"{args.size}x{args.size} features (1280-d, L2-normalised"
          + (f", PCA {x.shape[1]}-d keeping {kept * 100:.1f}% of the variance, re-normalised"
             if kept < 1 else "") + f"); logistic regression C={args.C:g}; "
          f"{args.seeds} seeds; load average {os.getloadavg()[0]:.1f}")
    results: dict[str, list[list[float]]] = {}
    for name, pick in strategies.items():
        accs, secs, seen = [], [], []
        for seed in range(args.seeds):
            a, s, c = run_curve(pick, x, y, x_test, y_test, budgets, seed, args.C)
            accs.append(a)
            secs.append(s)
            seen.append(c)
        results[name] = accs
        infos = getattr(pick, "infos", [])
        if infos and "delta" in infos[0][1]:
            by_b = {b: [i for bb, i in infos if bb == b] for b in budgets}
            print(f"  {name}: delta / coverage % per budget (mean over seeds): " + ", ".join(
                f"{b}: {np.mean([i['delta'] for i in v]):.3f} / "
                f"{100 * np.mean([i['coverage'] for i in v]):.1f}" for b, v in by_b.items() if v))
        save_json(args.out.with_suffix(".json"), results, budgets, args)  # partial results too
        print(f"  {name}: done ({np.mean(secs):.1f} s selection per seed, classes seen at "
              f"{budgets[0]} labels: {np.mean([c[0] for c in seen]):.1f}; load "
              f"{os.getloadavg()[0]:.1f})", flush=True)
    full = fit_score(x, y, np.arange(len(x)), x_test, y_test, args.C)
    width = max(len(n) for n in results) + 2
    print("\ntest accuracy %, mean +- std over seeds")
    print("budget".ljust(width) + "".join(f"{b:>13d}" for b in budgets))
    for name, acc in results.items():
        a = np.asarray(acc) * 100
        print(name.ljust(width) + "".join(f"{m:7.1f}+-{s:4.1f}" for m, s in
                                          zip(a.mean(0), a.std(0))))
    if "random" in results:
        r = np.asarray(results["random"]) * 100
        print("\ngain over random (mean accuracy points)")
        for name, acc in results.items():
            if name != "random":
                d = (np.asarray(acc) * 100).mean(0) - r.mean(0)
                print(name.ljust(width) + "".join(f"{v:+13.1f}" for v in d))
    print(f"\nall {len(x)} pool labels: {full * 100:.1f}%")
    plot(results, budgets, args.out, f"Fashion-MNIST, EfficientNet-Lite0 {args.size}px features, "
         f"logistic regression C={args.C:g}, {args.seeds} seeds (pool {len(x)})")
    print(f"curves: {args.out}")


if __name__ == "__main__":
    main()
