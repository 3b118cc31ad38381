"""Ray scale-out: embedding throughput per engine, sharded vs exact selection, 100M cost model.

Run from the repository root (each part writes its own result file)::

    .venv/bin/python -m benchmarks.ray_scale embed  --frames 96  --model recon-tiny
    .venv/bin/python -m benchmarks.ray_scale select --n 100000 --dim 256 --budget 1000
    .venv/bin/python -m benchmarks.ray_scale cost                   # from the two result files

``embed`` (result ``ray_scale-embed``)
    A synthetic KITTI-format set of ``--frames`` full-size frames is ingested once; then the same
    frames are embedded into a fresh table by: the single-process job (the named peer) with 1 and
    2 torch threads (frames read in the job's process, like the Ray actors do), and the Ray
    engine on a local cluster with 1 worker x 1 thread (a 1-CPU cluster), 1 worker x 2 threads
    and 2 workers x 1 thread (2-CPU clusters). Each row: seconds of the job (cluster start
    excluded, reported apart; actor start and model load included), frames/s, ratio against the
    single-process job at the same total threads, and the largest difference to the
    single-process vectors (0 = identical).

``select`` (result ``ray_scale-select``)
    A clustered Gaussian pool (``--clusters`` centres of varied spread, ``--n`` x ``--dim``,
    float32, 1% labeled) and its tuning twin (another seed). On the tuning twin: ProbCover's
    ``delta`` (median distance to the ``--ball-neighbours``-th neighbour) and ``oversample``
    (1 or 2, per selector, the one with the smaller loss of that selector's objective). On the reported pool: exact k-center and
    ProbCover against ``Sharded(..., shards=K)`` for each ``--shards`` on the local engine (2 worker processes)
    and on Ray (2-CPU local cluster): seconds, coverage radius, ball coverage and the loss.

``cost``
    Prints (and writes as ``ray_scale-cost``) hours for 100M frames on 1-64 nodes from the
    measured per-frame embedding cost, the driver's measured write cost per vector and the
    measured per-row sharded selection cost, plus rows from the largest ``benchmarks/scale.py``
    results present (``scale-<N>.json``, ``scale-<N>-select.json``): ingest and embed-commit cost
    per row, pruned exact and sharded k-center per row x pick. GPU rows are ESTIMATES (no GPU was measured: no
    device machine was lent to this task); their assumed throughput is printed with them.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("benchmarks")]

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_io import RESULTS_DIR, read_result, write_result  # noqa: E402

logger = logging.getLogger("benchmarks.ray_scale")

#: Object store of the benchmark's local Ray clusters (MiB): this machine is shared.
OBJECT_STORE_MB = 300
#: Assumed GPU throughput for the cost model (frames/s per GPU for recon-tiny, fp16) - an
#: ESTIMATE: the CPU cost per frame divided by a 40x GPU speed-up, to be replaced by a measurement.
GPU_SPEEDUP_ESTIMATE = 40.0


# ---------------------------------------------------------------------------- embedding
def _embed_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray
    import torch

    import curate
    from curate import _tables as T
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    tmp = Path(tempfile.mkdtemp(prefix="ray_scale_"))
    rows: list[dict[str, Any]] = []
    try:
        generate(tmp / "kitti", args.frames, seed=args.seed, small=args.small, progress=False)
        ws = curate.connect(tmp / "ws")
        ws.ingest(KittiSource(tmp / "kitti"), progress=False)
        table = T.embedding_table("bench")
        ref = None

        def run_local(threads: int) -> dict[str, Any]:
            torch.set_num_threads(threads)
            if ws.store.has_table(table):
                ws.store.drop_table(table)
            t = time.perf_counter()
            rep = ws.embed(args.model, name="bench", batch_size=args.batch_size, num_workers=0,
                           progress=False)
            return {"seconds": time.perf_counter() - t, "computed": rep.computed}

        def run_ray(cpus: int, workers: int) -> dict[str, Any]:
            if ws.store.has_table(table):
                ws.store.drop_table(table)
            t0 = time.perf_counter()
            ray.init(num_cpus=cpus, object_store_memory=OBJECT_STORE_MB * 2**20,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            start_s = time.perf_counter() - t0
            try:
                t = time.perf_counter()
                rep = ws.embed(args.model, name="bench", batch_size=args.batch_size,
                               engine="ray", workers=workers, progress=False)
                secs = time.perf_counter() - t
            finally:
                ray.shutdown()
            return {"seconds": secs, "computed": rep.computed, "cluster_start_s": start_s}

        configs = [("local", 1, 1, 1), ("local", 2, 1, 2), ("ray", 1, 1, 1), ("ray", 2, 1, 2),
                   ("ray", 2, 2, 1)]
        base: dict[int, float] = {}
        for engine, cpus, workers, threads in configs:
            out = run_local(threads) if engine == "local" else run_ray(cpus, workers)
            ids, vecs = ws.vectors("bench")
            if ref is None:
                ref = vecs
            fps = out["computed"] / out["seconds"]
            total_threads = workers * threads
            if engine == "local":
                base[total_threads] = fps
            row = {
                "engine": engine if engine == "local" else "ray",
                "workers": workers,
                "threads_per_worker": threads,
                "total_threads": total_threads,
                "frames": out["computed"],
                "seconds": out["seconds"],
                "frames_per_s": fps,
                "vs_single_process_same_threads": fps / base[total_threads] if total_threads in base else None,
                "cluster_start_s": out.get("cluster_start_s"),
                "max_abs_diff_vs_single_process": float(np.abs(vecs - ref).max()),
            }
            print(row, flush=True)
            rows.append(row)
        # the driver's write cost per vector (the single writer of both engines)
        ids, vecs = ws.vectors("bench")
        reps = max(1, args.write_rows // len(ids))
        big_ids = [f"w{r}-{i}" for r in range(reps) for i in ids]
        big = np.tile(vecs, (reps, 1))
        t = time.perf_counter()
        for begin in range(0, len(big_ids), 256):
            ws.store.write_vectors("emb_write_probe", big_ids[begin:begin + 256], big[begin:begin + 256],
                                   metadata={"probe": "1"}, mode="upsert" if begin else "overwrite")
        write_s = (time.perf_counter() - t) / len(big_ids)
        rows.append({"engine": "driver-write (256 per commit)", "workers": 1, "threads_per_worker": 1,
                     "total_threads": 1, "frames": len(big_ids), "seconds": write_s * len(big_ids),
                     "frames_per_s": 1.0 / write_s, "vs_single_process_same_threads": None,
                     "cluster_start_s": None, "max_abs_diff_vs_single_process": None})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ---------------------------------------------------------------------------- selection
def _pool(n: int, d: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=1.0, size=(clusters, d)).astype(np.float32)
    spread = rng.uniform(0.05, 0.3, size=clusters).astype(np.float32)
    which = rng.integers(clusters, size=n)
    x = np.empty((n, d), dtype=np.float32)
    for begin in range(0, n, 65536):
        w = which[begin:begin + 65536]
        x[begin:begin + 65536] = centers[w] + spread[w, None] * rng.standard_normal(
            (w.size, d), dtype=np.float32)
    return x


def _delta_from_neighbours(x: np.ndarray, k: int, seed: int) -> float:
    """Median distance to the k-th neighbour on L2-normalised rows (2000 sampled queries).

    A ball of this radius holds about ``k`` rows, so ProbCover's graph has O(k N) edges.
    """
    import faiss

    from curate.selectors.probcover import normalize_rows

    xn = normalize_rows(x)
    rng = np.random.default_rng(seed)
    queries = xn[rng.choice(xn.shape[0], size=min(2000, xn.shape[0]), replace=False)]
    index = faiss.IndexFlatL2(xn.shape[1])
    index.add(xn)
    dist, _ = index.search(queries, k + 1)
    return float(np.median(np.sqrt(np.maximum(dist[:, k], 0.0))))


def _select_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from curate.selectors import KCenterGreedy, ProbCover, Sharded
    from curate.selectors.sharded import ball_coverage, coverage_radius

    n, d, b = args.n, args.dim, args.budget
    labeled = np.arange(0, n, 100)  # 1% labeled
    tune = _pool(n, d, args.clusters, seed=args.seed + 1000)
    # tuning split: delta by the purity rule, oversample by the smaller k-center loss
    t = time.perf_counter()
    delta = _delta_from_neighbours(tune, args.ball_neighbours, seed=args.seed)
    # oversample per selector, by its own loss (k-center: radius, ProbCover: ball coverage)
    oversample: dict[str, float] = {}
    losses: dict[str, dict[float, float]] = {}
    for name, inner, metric in (("kcenter", KCenterGreedy(), "coverage_radius"),
                                ("probcover", ProbCover(delta=delta), "ball_coverage")):
        losses[name] = {}
        for ov in (1.0, 2.0):
            sel = Sharded(inner, shards=args.shards[0], oversample=ov, workers=1,
                          measure_loss=True).select(tune, b, labeled=labeled, seed=0)
            losses[name][ov] = sel.info["loss"][metric]["relative"]
        oversample[name] = min(losses[name], key=lambda k: (losses[name][k], k))
    tuning = {"delta": delta, "oversample": oversample, "loss_by_oversample": losses,
              "seconds": time.perf_counter() - t}
    print("tuning:", tuning, flush=True)
    del tune
    x = _pool(n, d, args.clusters, seed=args.seed)
    known = labeled
    rows: list[dict[str, Any]] = []
    exact: dict[str, dict[str, float]] = {}
    for name, inner in (("kcenter", KCenterGreedy()), ("probcover", ProbCover(delta=delta))):
        t = time.perf_counter()
        full = inner.select(x, b, labeled=labeled, seed=0)
        secs = time.perf_counter() - t
        cent = x[np.concatenate([full.indices, known])]
        exact[name] = {"radius": coverage_radius(x, cent), "coverage": ball_coverage(x, cent, delta)}
        rows.append({"selector": name, "engine": "exact", "shards": 1, "oversample": None,
                     "seconds": secs,
                     "coverage_radius": exact[name]["radius"], "ball_coverage": exact[name]["coverage"],
                     "radius_loss": 0.0, "coverage_loss": 0.0})
        print(rows[-1], flush=True)
        for engine in args.engines:
            for k in args.shards:
                sel = Sharded(inner, shards=k, engine=engine, oversample=oversample[name], workers=2,
                              measure_loss=False)
                if engine == "ray":
                    import ray

                    ray.init(num_cpus=2, object_store_memory=OBJECT_STORE_MB * 2**20,
                             include_dashboard=False, log_to_driver=False,
                             logging_level=logging.WARNING)
                try:
                    t = time.perf_counter()
                    out = sel.select(x, b, labeled=labeled, seed=0)
                    secs = time.perf_counter() - t
                finally:
                    if engine == "ray":
                        ray.shutdown()
                cent = x[np.concatenate([out.indices, known])]
                r, c = coverage_radius(x, cent), ball_coverage(x, cent, delta)
                rows.append({
                    "selector": name, "engine": engine, "shards": k, "oversample": oversample[name],
                    "seconds": secs,
                    "coverage_radius": r, "ball_coverage": c,
                    "radius_loss": r / exact[name]["radius"] - 1.0,
                    "coverage_loss": (exact[name]["coverage"] - c) / exact[name]["coverage"],
                })
                print(rows[-1], flush=True)
    return rows, tuning


# ---------------------------------------------------------------------------- cost model
def _largest_scale(results_dir: Path, suffix: str = "") -> dict[str, Any] | None:
    """The ``scale-<N><suffix>.json`` result with the largest N in ``results_dir`` (or None)."""
    found = []
    for path in results_dir.glob(f"scale-*{suffix}.json"):
        head = path.stem[len("scale-"):]
        size = head[: len(head) - len(suffix)] if suffix else head
        if size.isdigit():
            found.append((int(size), path))
    return read_result(max(found)[1]) if found else None


def _scale_rows(results_dir: Path, total: int) -> list[dict[str, Any]]:
    """Cost-model rows from the single-machine scale runs (benchmarks/scale.py result files):
    the driver's ingest and embed-commit cost per row at the largest measured N, and the
    measured k-center selections (pruned exact and sharded) scaled to ``total`` rows."""
    rows: list[dict[str, Any]] = []
    build = _largest_scale(results_dir)
    if build is not None:
        n = int(build["args"]["sizes"].split(",")[-1])
        b = build["extra"].get(f"build-{n}", {})
        if "ingest_total_s" in b:
            for stage, key in (("ingest (driver)", "ingest_total_s"),
                               ("embed-commit (driver)", "commit_total_s")):
                per_row = b[key] / n
                rows.append({
                    "stage": stage, "node": "1 writer", "nodes": 1,
                    "hours": per_row * total / 3600, "driver_write_hours": per_row * total / 3600,
                    "hours_bound": per_row * total / 3600,
                    "basis": (f"measured {per_row * 1e6:.1f} us per row over a fill to {n} rows "
                              f"({build['name']}), wall time on the shared machine; x N"),
                })
    budget = total // 100
    # per method, the run at the largest N among every scale result file that has one
    best: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {}
    for path in sorted(results_dir.glob("scale-*.json")):
        res = read_result(path)
        if res.get("benchmark") != "scale":
            continue
        for key, sel in res.get("extra", {}).items():
            if key.startswith("select-"):
                n_s, method = key[len("select-"):].split("-", 1)
                if n_s.isdigit() and int(n_s) > best.get(method, (0, {}, {}))[0]:
                    best[method] = (int(n_s), res, sel)
    for method, (n, res, sel) in sorted(best.items()):
        b_n = max(1, int(round(res["args"]["budget_frac"] * n)))
        if method == "kcenter":
            per_unit = sel["select_s"] / (n * b_n)
            rows.append({
                "stage": "kcenter-select (pruned exact)", "node": "1 core", "nodes": 1,
                "hours": per_unit * total * budget / 3600, "driver_write_hours": None,
                "hours_bound": per_unit * total * budget / 3600,
                "basis": (f"measured {per_unit:.3g} s per row x pick at {n} x {b_n} picks "
                          f"({res['name']}); linear in N x picks (the share of rows a "
                          "pick touches was measured at that N only)"),
            })
        elif method == "kcenter-sharded":
            inf = sel["info"]
            shards = int(inf["shards"])
            # shards pick ``union`` rows in all (budget x oversample): price those picks
            over = max(1.0, float(inf.get("union", b_n)) / b_n)
            shard_unit = inf["seconds_shard_max"] / ((n / shards) * (over * b_n / shards))
            # the gain-ordered merge (oversample 1) only sorts the picks: per pick, not pick^2
            ordered = isinstance(inf.get("merge"), dict) and "order" in inf["merge"]
            merge_unit = inf["seconds_merge"] / (b_n if ordered else b_n * b_n)
            merge_what = "per pick (k-way merge by gain)" if ordered else "per pick^2 (k-center rerun)"
            for cores in (64, 256, 1024):
                shard_h = shard_unit * (total / cores) * (over * budget / cores) / 3600
                merge_h = merge_unit * (budget if ordered else budget * budget) / 3600
                rows.append({
                    "stage": "kcenter-select (sharded)", "node": f"{cores} cores",
                    "nodes": cores, "hours": shard_h + merge_h, "driver_write_hours": None,
                    "hours_bound": shard_h + merge_h,
                    "basis": (f"measured at {n} x {b_n} picks, {shards} shards, oversample "
                              f"{over:g} ({res['name']}):"
                              f" {shard_unit:.3g} s per row x pick in a shard, merge "
                              f"{merge_unit:.3g} s {merge_what} (merge {merge_h:.2f} h of "
                              "it, one core)"),
                })
    return rows


def _cost(results_dir: Path) -> list[dict[str, Any]]:
    emb = read_result(results_dir / "ray_scale-embed.json")
    sel = read_result(results_dir / "ray_scale-select.json")
    by = {(r["engine"], r["workers"], r["threads_per_worker"]): r for r in emb["rows"]}
    one = by[("ray", 1, 1)]
    cpu_s_per_frame = 1.0 / one["frames_per_s"]  # one core, one Ray worker
    write_s = 1.0 / next(r for r in emb["rows"] if r["engine"].startswith("driver-write"))["frames_per_s"]
    exact_k = next(r for r in sel["rows"] if r["selector"] == "kcenter" and r["engine"] == "exact")
    sharded = [r for r in sel["rows"] if r["selector"] == "kcenter" and r["engine"] != "exact"]
    best = min(sharded, key=lambda r: r["seconds"])
    n_sel, b_sel = sel["args"]["n"], sel["args"]["budget"]
    total = 100_000_000
    rows = []
    gpu_fps = GPU_SPEEDUP_ESTIMATE / cpu_s_per_frame
    for nodes in (1, 8, 32, 64):
        for kind, per_node_fps, note in (
            ("cpu-32core", 32.0 / cpu_s_per_frame, "measured per-core cost x 32 cores"),
            ("gpu-8x", 8 * gpu_fps, f"ESTIMATE: {GPU_SPEEDUP_ESTIMATE:.0f}x one core per GPU, 8 GPUs"),
        ):
            embed_h = total / (nodes * per_node_fps) / 3600
            rows.append({
                "stage": "embed", "node": kind, "nodes": nodes, "hours": embed_h,
                "driver_write_hours": total * write_s / 3600,
                "hours_bound": max(embed_h, total * write_s / 3600), "basis": note,
            })
    # k-center selection at 100M x 256 with a 1% budget: O(N * budget * d) exact; sharded over
    # S shards on S cores costs 1/S^2 of it per shard (N/S rows, budget/S picks), S in parallel.
    per_unit = exact_k["seconds"] / (n_sel * b_sel)
    budget = total // 100
    exact_h = per_unit * total * budget / 3600
    for shards in (64, 256, 1024):
        rows.append({
            "stage": "kcenter-select", "node": f"{shards} cores", "nodes": shards,
            "hours": per_unit * (total / shards) * (budget / shards) / 3600,
            "driver_write_hours": None, "hours_bound": exact_h,
            "basis": (f"measured {per_unit:.3g} s per row x pick (exact, {n_sel} x {b_sel}); "
                      f"hours_bound = exact on one core; sharded best measured loss "
                      f"{best['radius_loss']:+.3f} at {best['shards']} shards"),
        })
    rows += _scale_rows(results_dir, total)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    pe = sub.add_parser("embed")
    pe.add_argument("--frames", type=int, default=96)
    pe.add_argument("--model", default="recon-tiny")
    pe.add_argument("--batch-size", type=int, default=8)
    pe.add_argument("--small", action="store_true", help="small frames (tests)")
    pe.add_argument("--seed", type=int, default=0)
    pe.add_argument("--write-rows", type=int, default=20_000)
    pe.add_argument("--name", default="ray_scale-embed")
    ps = sub.add_parser("select")
    ps.add_argument("--n", type=int, default=100_000)
    ps.add_argument("--dim", type=int, default=256)
    ps.add_argument("--budget", type=int, default=1000)
    ps.add_argument("--clusters", type=int, default=200)
    ps.add_argument("--ball-neighbours", type=int, default=10,
                    help="ProbCover delta: median distance to this neighbour on the tuning twin")
    ps.add_argument("--shards", type=int, nargs="+", default=[4, 8])
    ps.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--name", default="ray_scale-select")
    pc = sub.add_parser("cost")
    pc.add_argument("--name", default="ray_scale-cost")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.part == "embed":
        rows = _embed_rows(args)
        write_result("ray_scale", rows, name=args.name, args=args,
                     notes="frames/s of the whole job (actor start and model load included, "
                           "cluster start excluded); shared 2-core machine, see load_avg")
    elif args.part == "select":
        rows, tuning = _select_rows(args)
        write_result("ray_scale", rows, name=args.name, args=args, extra={"tuning": tuning},
                     notes="tuning split (another seed) chose delta and oversample; "
                           "losses are relative to the exact greedy on the same pool")
    else:
        results_dir = Path(os.environ.get("CURATE_RESULTS_DIR") or RESULTS_DIR)
        rows = _cost(results_dir)
        for r in rows:
            print(f"{r['stage']:15s} {r['node']:12s} x{r['nodes']:<5d} {r['hours']:10.2f} h"
                  f"  (bound {r['hours_bound']:.2f} h)  {r['basis']}")
        write_result("ray_scale", rows, name=args.name, args=args,
                     notes="GPU rows are estimates (no GPU measured); CPU rows from measured costs")


if __name__ == "__main__":
    main()
