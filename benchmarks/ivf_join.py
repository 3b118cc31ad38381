"""All-rows neighbours: the IVF join in blocks against per-query IVF search and exact search.

Run from the repository root::

    python -m benchmarks.ivf_join --n 100000            # ~10 min on 2 shared cores
    python -m benchmarks.ivf_join --n 20000 --coverage  # + MaxHerding coverage vs exact kNN lists

The selectors' neighbour stage (MaxHerding's kNN lists, ProbCover's delta-ball graph) queries
every row of the pool. Three ways to do it on the same L2-normalised pool and the same IVF lists
(:func:`curate.selectors._neighbors.selector_nlist` lists, ``--nprobe`` probes):

* ``exact (peer)``: FAISS flat search (BLAS), the recall reference;
* ``ivf per-query (peer)``: a FAISS ``IndexIVFFlat`` searched row by row (the selectors' path
  before the join);
* ``ivf join``: :class:`curate.selectors._ivf_join.IVFJoin`, one GEMM per list against the rows
  of its ``nprobe`` nearest lists.

Per method: process CPU seconds per 1000 query rows for the ``--k``-NN and for the range graph
(radius: the median distance to the 32nd neighbour, ProbCover's ball-cap rule), and their recall
against brute force on ``--sample`` seeded rows (:func:`curate.selectors._ivf_join.knn_recall`,
:func:`~curate.selectors._ivf_join.range_recall`). The join and the IVF build run over every row;
the exact and per-query searches run over a seeded subset of ``--timed`` rows (their per-row cost
does not depend on which rows are queried). Pools: drive-like clustered vectors
(:func:`benchmarks.scale.drive_vectors`, the scale benchmark's pool) and 100 Gaussian clusters
(the MaxHerding speed pool of ``benchmarks/al_quality.py``). With ``--coverage``, MaxHerding
(sparse, rbf, h = 1, ``--k`` neighbours, budget ``--budget``) is run on lists from the join and from
exact search, and the generalized coverage of both pick sets is compared (exact kernel, float64).
Results: ``benchmarks/results/ivf_join-<n>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def gaussian_clusters(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """100 Gaussian clusters (scale 0.6 around unit-variance centres), float32, in blocks."""
    rng = np.random.default_rng([seed, n, dim])
    centers = rng.normal(size=(100, dim)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 65536):
        x[s : s + 65536] = rng.normal(scale=0.6, size=(min(65536, n - s), dim))
    x += centers[rng.integers(100, size=n)]
    return x


def _cpu(fn):
    c = time.process_time()
    out = fn()
    return out, time.process_time() - c


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--nprobe", type=int, default=8)
    ap.add_argument("--sample", type=int, default=500, help="rows checked against brute force")
    ap.add_argument("--timed", type=int, default=5000,
                    help="rows queried by the exact and per-query peers")
    ap.add_argument("--pools", default="drive,gaussian")
    ap.add_argument("--coverage", action="store_true")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)

    from benchmarks.results_io import write_result
    from benchmarks.scale import drive_vectors
    from curate.selectors._ivf_join import IVFJoin, knn_recall, range_recall
    from curate.selectors._neighbors import (
        IVF_TRAIN_ITER,
        IVF_TRAIN_PER_LIST,
        build_index,
        knn,
        range_graph,
        selector_nlist,
    )
    from curate.selectors.probcover import normalize_rows

    n, k = args.n, args.k
    rng = np.random.default_rng(3)
    sample = np.sort(rng.choice(n, size=min(args.sample, n), replace=False))
    timed = np.sort(rng.choice(n, size=min(args.timed, n), replace=False))
    nlist = selector_nlist(n)
    rows: list[dict] = []
    extra: dict = {}
    makers = {"drive": lambda: drive_vectors(n, args.dim, seed=5),
              "gaussian": lambda: gaussian_clusters(n, args.dim)}
    for pool in args.pools.split(","):
        xn = normalize_rows(makers[pool]())
        # the join: build (train + assign) and every row's kNN
        join, build_cpu = _cpu(lambda: IVFJoin.build(
            xn, nlist=nlist, nprobe=args.nprobe, seed=0, train_per_list=IVF_TRAIN_PER_LIST,
            niter=IVF_TRAIN_ITER))
        (jd, ji), knn_cpu = _cpu(lambda: join.knn(k))
        radius = float(np.median(jd[:, min(32, k) - 1]))
        jg, range_cpu = _cpu(lambda: join.range_graph(radius))
        sizes = np.diff(join.ptr)
        base = {"pool": pool, "N": n, "k": k, "nlist": nlist}
        rows.append({**base, "method": "ivf join", "nprobe": join.nprobe, "build cpu s": build_cpu,
                     "knn cpu s / 1k rows": 1000 * knn_cpu / n,
                     "knn recall": knn_recall(xn, ji[sample], sample),
                     "range cpu s / 1k rows": 1000 * range_cpu / n,
                     "range edge recall": range_recall(xn, jg, radius, sample),
                     "notes": f"all {n} rows; list sizes {sizes.min()}..{sizes.max()} (median "
                              f"{int(np.median(sizes))}); radius {radius:.4f}, "
                              f"{jg.n_edges / n:.1f} edges per row"})
        print(rows[-1], flush=True)
        del jg
        # per-query IVF (the previous path), same lists parameters
        index, pbuild = _cpu(lambda: build_index(xn, kind="ivf", nlist=nlist,
                                                 nprobe=args.nprobe, seed=0))
        (_, pi), pk = _cpu(lambda: knn(index, xn[timed], k))
        _, ps = knn(index, xn[sample], k)
        pg, pr = _cpu(lambda: range_graph(index, xn[timed], radius))
        sg = range_graph(index, xn[sample], radius)
        rows.append({**base, "method": "ivf per-query (peer)", "nprobe": int(index.nprobe),
                     "build cpu s": pbuild, "knn cpu s / 1k rows": 1000 * pk / timed.size,
                     "knn recall": knn_recall(xn, ps, sample),
                     "range cpu s / 1k rows": 1000 * pr / timed.size,
                     "range edge recall": range_recall(xn, sg, radius, sample,
                                                       graph_rows=sample),
                     "notes": f"{timed.size} timed rows"})
        print(rows[-1], flush=True)
        del index, pg, sg
        flat, fbuild = _cpu(lambda: build_index(xn, kind="flat"))
        (_, fi), fk = _cpu(lambda: knn(flat, xn[timed], k))
        fg, fr = _cpu(lambda: range_graph(flat, xn[timed], radius))
        rows.append({**base, "method": "exact (peer)", "nprobe": None, "build cpu s": fbuild,
                     "knn cpu s / 1k rows": 1000 * fk / timed.size,
                     "knn recall": knn_recall(xn, knn(flat, xn[sample], k)[1], sample),
                     "range cpu s / 1k rows": 1000 * fr / timed.size,
                     "range edge recall": 1.0, "notes": f"{timed.size} timed rows"})
        print(rows[-1], flush=True)
        del fg
        if args.coverage:
            extra[pool] = coverage_loss(xn, k, args.budget)
            print(pool, extra[pool], flush=True)
        del flat, join, ji, jd
    write_result("ivf_join", rows, name=args.name or f"ivf_join-{n}", args=args,
                 notes=("CPU seconds of the process (OMP_NUM_THREADS="
                        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}); recall against brute "
                        f"force on {sample.size} seeded rows; knn recall counts a listed row as "
                        "found when it is no farther than the exact k-th neighbour"),
                 extra=extra)


def coverage_loss(xn: np.ndarray, k: int, budget: int) -> dict:
    """MaxHerding (sparse, rbf h=1, ``k`` neighbours) with the join's lists vs exact lists."""
    from curate.selectors.herding import MaxHerding, generalized_coverage

    out: dict = {}
    picks = {}
    for label, kind in (("join", "ivf"), ("exact lists", "flat")):
        c = time.process_time()
        sel = MaxHerding(method="sparse", knn_k=k, index_kind=kind).select(
            xn, budget)
        out[f"{label} cpu s"] = time.process_time() - c
        out[f"{label} stages"] = sel.info.get("seconds")
        picks[label] = sel.indices
    for b in (10, 50, budget):
        cj = generalized_coverage(xn, picks["join"][:b])
        ce = generalized_coverage(xn, picks["exact lists"][:b])
        out[f"coverage@{b}"] = {"join": cj, "exact lists": ce, "loss %": 100 * (1 - cj / ce)}
    return out


if __name__ == "__main__":
    main()
