"""Selector benchmark: time and peak RSS of curate's selectors, side by side with scikit-activeml.

Run from the repository root::

    .venv/bin/python benchmarks/selectors.py                      # N = 10k, 50k, 100k (minutes)
    .venv/bin/python benchmarks/selectors.py --sizes 10000,50000  # choose sizes
    .venv/bin/python benchmarks/selectors.py --with-1m            # add N = 1M (long, ~1 GiB data)

Data: a Gaussian mixture (200 components) in ``--dim`` (256) dimensions, seeded. Each
(method, N) runs in its own child process so that its peak RSS (``wait4`` rusage) is its own;
the RSS includes the data itself (N*d*4 bytes, printed). Time is the ``select`` call only.

Peers (``pip install scikit-activeml``; skipped when missing): ``CoreSet`` (compared pick by pick
with curate's k-center from the same labeled first center), ``ProbCover`` (given curate's delta;
it builds an N x N float64 matrix, so it only runs where that fits: ``--peer-probcover-max``),
``TypiClust`` (``--peer-typiclust-max``). ProbCover selections are compared by their exact
coverage at the same delta (tie-breaking differs: scikit-activeml breaks ties at random).

Above 100k rows ProbCover runs on an approximate IVF graph (``--ivf-nlist`` / ``--ivf-nprobe``).
Two checks follow it: (1) the exact coverage, by brute force on a 20k-row sample, of the centers
it picked vs the coverage its graph reports; (2) the approximate-vs-exact check: on a seeded
``--check-rows`` (50k) subsample, the same greedy at the same delta once on the exact (flat)
graph and once on an IVF graph with the same nlist (capped at rows / 39) and nprobe; both
selections' coverage is measured exactly and the IVF one must be within 1% of the exact one.

``kcenter`` is the default (pruned, exact) k-center; ``kcenter-naive`` is the reference loop (one
pass over every row per pick); the table says whether their picks are identical and the speed-up.
``--data drives`` uses the drive-like pool of :func:`benchmarks.scale.drive_vectors` (clusters of
drives with runs of near-duplicates) instead of the Gaussian mixture. Results are written with
:func:`benchmarks.results_io.write_result` under ``--name`` (default ``selectors``).

``kcenter-f64`` (``--methods``) is k-center with ``dtype="float64"``: its picks equal
scikit-activeml's ``CoreSet`` (float64 distances) where the float32 default may swap near ties.

k-center is also compared with the memory-bandwidth bound ``budget * N * d * 4 bytes / BW``,
with the read bandwidth BW measured in the same run (threaded ``numpy`` sums over 1 GiB).
"""

from __future__ import annotations

import sys

# This file is named like the stdlib module ``selectors`` (used by subprocess): take its own
# folder off the import path before anything imports ``selectors``.
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("benchmarks")]

import argparse
import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.resources import peak_rss_mib  # noqa: E402


# --------------------------------------------------------------------------------------- data
def make_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Gaussian mixture: 200 unit-variance centers scaled by 1, noise 0.6 (float32, blocks)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(200, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x[s : s + m] = centers[rng.integers(200, size=m)]
        x[s : s + m] += rng.normal(scale=0.6, size=(m, d)).astype(np.float32)
    return x


def read_bandwidth(gib: float = 1.0, threads: int = 2) -> float:
    """Best-of-3 read bandwidth (bytes/s) of threaded numpy sums over ``gib`` GiB of float32."""
    a = np.ones(int(gib * (1 << 30) // 4), dtype=np.float32)
    parts = np.array_split(a, threads)
    best = np.inf
    kernels = (np.add.reduce, lambda p: np.dot(p, p))  # the faster one is the bound
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(3):
            for kernel in kernels:
                t = time.perf_counter()
                list(pool.map(kernel, parts))
                best = min(best, time.perf_counter() - t)
    return a.nbytes / best


# ------------------------------------------------------------------------------------- child
def load_data(kind: str, n: int, d: int) -> np.ndarray:
    """The benchmark pool: ``mixture`` (:func:`make_data`) or ``drives`` (drive-like runs)."""
    if kind == "drives":
        from benchmarks.scale import drive_vectors

        return drive_vectors(n, d, seed=0)
    return make_data(n, d)


def child(method: str, data: str, budget: int, out: str, extra: str) -> None:
    x = np.load(data)
    opts = json.loads(extra)
    labeled = np.zeros(len(x), dtype=bool)
    labeled[0] = True  # the same first center for curate and the peers
    info: dict = {}
    y = np.full(len(x), np.nan)
    y[0] = 0
    if method in ("kcenter", "kcenter-f64", "kcenter-naive"):
        from curate.selectors import KCenterGreedy

        t = time.perf_counter()
        dtype = "float64" if method == "kcenter-f64" else "float32"
        algorithm = "naive" if method == "kcenter-naive" else "auto"
        sel = KCenterGreedy(dtype=dtype, algorithm=algorithm).select(x, budget, labeled=labeled)
        idx = sel.indices
        info = {"radius": sel.info["coverage_radius"], "algorithm": sel.info["algorithm"],
                "pruning": sel.info.get("pruning")}
    elif method in ("probcover", "probcover-ivf", "probcover-flat"):
        from curate.selectors import ProbCover

        if method != "probcover":  # force the index kind (selector IVF defaults when "ivf")
            opts = {**opts, "index_kind": method.split("-")[1]}
        t = time.perf_counter()
        sel = ProbCover(**opts).select(x, budget, labeled=labeled)
        idx = sel.indices
        info = {k: sel.info[k] for k in ("delta", "coverage", "graph_edges", "fallbacks",
                                         "seconds", "approximation") if k in sel.info}
    elif method == "probcover-sub":
        # the approximate-vs-exact check: a seeded subsample, the 1M run's delta, the same
        # greedy; exact flat graph vs IVF graph with the 1M run's index parameters
        from curate.selectors import ProbCover
        from curate.selectors.probcover import normalize_rows

        rows = np.sort(np.random.default_rng(7).choice(len(x), opts["rows"], replace=False))
        xs = np.ascontiguousarray(x[rows])
        lab = np.zeros(len(xs), dtype=bool)
        lab[0] = True
        xn = normalize_rows(xs)
        t = time.perf_counter()
        for kind in ("flat", "ivf"):
            from curate.selectors._neighbors import SELECTOR_NPROBE, selector_nlist

            nlist = opts.get("nlist") or selector_nlist(len(x))
            kw = {} if kind == "flat" else {"nlist": min(nlist, len(xs) // 39),
                                           "nprobe": opts.get("nprobe") or SELECTOR_NPROBE}
            t0 = time.perf_counter()
            sel = ProbCover(delta=opts["delta"], index_kind=kind, **kw).select(xs, budget,
                                                                              labeled=lab)
            info[kind] = {
                "graph_coverage": sel.info["coverage"],
                "exact_coverage": exact_coverage(xn, np.append(sel.indices, 0), opts["delta"],
                                                 np.arange(len(xs))),
                "seconds": time.perf_counter() - t0,
                "edges": sel.info["graph_edges"],
                **kw,
            }
        idx = np.empty(0, dtype=np.int64)
    elif method == "typiclust":
        from curate.selectors import TypiClust

        t = time.perf_counter()
        sel = TypiClust().select(x, budget, labeled=labeled)
        idx = sel.indices
        info = {"clusters": sel.info["n_clusters"]}
    elif method == "skal-coreset":
        from skactiveml.pool import CoreSet

        t = time.perf_counter()
        idx = CoreSet(random_state=0).query(x, y, batch_size=budget)
    elif method == "skal-probcover":
        from skactiveml.pool import ProbCover as SkProbCover

        from curate.selectors.probcover import normalize_rows

        xn = normalize_rows(x)
        t = time.perf_counter()  # normalisation is not part of the peer's cost
        idx = SkProbCover(deltas=[opts["delta"]], random_state=0).query(xn, y, batch_size=budget)
    elif method == "skal-typiclust":
        from skactiveml.pool import TypiClust as SkTypiClust

        t = time.perf_counter()
        idx = SkTypiClust(random_state=0).query(x, y, batch_size=budget)
    else:
        raise SystemExit(f"unknown method {method}")
    elapsed = time.perf_counter() - t
    np.save(out, np.asarray(idx, dtype=np.int64))
    hwm = peak_rss_mib()  # VmHWM: this process's own peak (ru_maxrss survives exec)
    print(json.dumps({"time": elapsed, "info": info, "rss_mib": hwm}))


def run_child(method: str, data: Path, budget: int, workdir: Path, extra: dict) -> dict:
    out = workdir / f"{method}-{data.stem}.npy"
    cmd = [sys.executable, __file__, "--child", method, "--data", str(data), "--budget",
           str(budget), "--out", str(out), "--extra", json.dumps(extra)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    status = os.waitstatus_to_exitcode(status)
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    if status != 0:
        return {"error": (stderr.strip().splitlines() or ["failed"])[-1][:120]}
    res = json.loads(stdout.strip().splitlines()[-1])
    res["load"] = os.getloadavg()[0]  # 1-minute load average when the child ended
    # CPU seconds of the whole child (data loading included): on a loaded machine this, not the
    # wall time, says what the run costs
    res["cpu"] = usage.ru_utime + usage.ru_stime
    res["indices"] = np.load(out)
    return res


# ------------------------------------------------------------------------------------ checks
def exact_coverage(xn: np.ndarray, centers: np.ndarray, delta: float, rows: np.ndarray) -> float:
    """Fraction of ``rows`` within ``delta`` (strict) of a center, by brute force in blocks."""
    c = xn[centers].astype(np.float32)
    cn = (c.astype(np.float64) ** 2).sum(1)
    hit = 0
    for s in range(0, rows.size, 8192):
        q = xn[rows[s : s + 8192]]
        d2 = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * (q @ c.T) + cn[None, :]
        hit += int((d2 < delta * delta).any(axis=1).sum())
    return hit / rows.size


def has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def fmt_row(cols: list, widths: list) -> str:
    return "  ".join(str(c).rjust(w) for c, w in zip(cols, widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,50000,100000")
    ap.add_argument("--with-1m", action="store_true", help="add N = 1,000,000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--methods", default="kcenter,probcover,typiclust")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--naive-budget", type=int, default=None,
                    help="run kcenter-naive for only this many picks and extrapolate its time to "
                         "--budget (it costs one pass over the data per pick); its picks are "
                         "compared with the first picks of kcenter")
    ap.add_argument("--data-kind", choices=("mixture", "drives"), default="mixture")
    ap.add_argument("--name", default="selectors", help="result file name (benchmarks/results/)")
    ap.add_argument("--ivf-nlist", type=int, default=None,
                    help="ProbCover's IVF lists above 100k rows (default: the selector's 2 sqrt(N))")
    ap.add_argument("--ivf-nprobe", type=int, default=None,
                    help="ProbCover's IVF nprobe above 100k rows (default: the selector's fixed 8; "
                         "the index is exact below)")
    ap.add_argument("--check-rows", type=int, default=50_000,
                    help="subsample for the exact-vs-IVF ProbCover coverage check above 100k rows")
    ap.add_argument("--peer-coreset-max", type=int, default=100_000)
    ap.add_argument("--peer-probcover-max", type=int, default=12_000)
    ap.add_argument("--peer-typiclust-max", type=int, default=10_000)
    ap.add_argument("--child")
    ap.add_argument("--data")
    ap.add_argument("--out")
    ap.add_argument("--extra", default="{}")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.budget, args.out, args.extra)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.with_1m and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    methods = args.methods.split(",")
    peers = not args.no_peers and has("skactiveml")
    if not args.no_peers and not peers:
        print("scikit-activeml not installed: peers skipped (pip install scikit-activeml)")
    bw = read_bandwidth()
    print(f"machine: {os.cpu_count()} CPUs, read bandwidth {bw / 1e9:.1f} GB/s (threaded numpy sum)")
    print(f"d = {args.dim}, budget = {args.budget}, one labeled row (row 0) as the first center\n")
    widths = [9, 16, 9, 9, 5, 50]
    print("load = 1-minute load average when the run ended (2 cores: above 2 the timings are "
          "inflated by other processes)")
    print(fmt_row(["N", "method", "time s", "peak MiB", "load", "notes"], widths))
    table: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp:
        workdir = Path(tmp)
        for n in sizes:
            x = load_data(args.data_kind, n, args.dim)
            data = workdir / f"x{n}.npy"
            np.save(data, x)
            data_mib = x.nbytes / (1 << 20)
            del x
            results: dict[str, dict] = {}
            pc_opts = {k: v for k, v in (("nprobe", args.ivf_nprobe), ("nlist", args.ivf_nlist))
                       if v is not None} if n > 100_000 else {}
            plan: list[tuple[str, dict]] = [(m, pc_opts if m == "probcover" else {}) for m in methods]
            if peers:
                if "kcenter" in methods and n <= args.peer_coreset_max:
                    plan.append(("skal-coreset", {}))
                if "typiclust" in methods and n <= args.peer_typiclust_max:
                    plan.append(("skal-typiclust", {}))
            for method, extra in plan:
                budget = args.budget
                if method == "kcenter-naive" and args.naive_budget:
                    budget = min(args.naive_budget, args.budget)
                res = run_child(method, data, budget, workdir, extra)
                if "time" in res:
                    res["picks"] = budget
                results[method] = res
                notes = ""
                row = {"N": n, "method": method, "time s": res.get("time"),
                       "peak MiB": res.get("rss_mib"), "load": res.get("load"),
                       "cpu s": res.get("cpu"), "identical to reference": None,
                       "speedup vs reference": None, "info": res.get("info"),
                       "error": res.get("error")}
                table.append(row)
                if "error" in res:
                    notes = "FAILED: " + res["error"]
                elif method == "kcenter-f64":
                    notes = f"radius {res['info']['radius']:.3f}; float64 distances"
                elif method == "kcenter-naive" and "kcenter" in results and "error" not in results["kcenter"]:
                    ours = results["kcenter"]
                    m = res["picks"]
                    same = np.array_equal(ours["indices"][:m], res["indices"])
                    # one pass per pick: time for the full budget, extrapolated when m < budget
                    naive_full = res["time"] * args.budget / m
                    row["naive picks run"] = m
                    row["naive time for budget s"] = naive_full
                    row["naive time extrapolated"] = m < args.budget
                    row["identical to reference"] = same
                    for r in table:
                        if r["N"] == n and r["method"] == "kcenter":
                            r["identical to reference"] = same
                            r["speedup vs reference"] = naive_full / ours["time"]
                    notes = (f"reference loop ({m} picks{', extrapolated to the budget' if m < args.budget else ''}:"
                             f" {naive_full:.0f} s); kcenter ({ours['info']['algorithm']}) "
                             f"identical over those picks: {same}, "
                             f"{naive_full / ours['time']:.1f}x faster")
                elif method == "kcenter":
                    bound = args.budget * n * args.dim * 4 / bw
                    notes = (f"radius {res['info']['radius']:.3f}; bandwidth bound {bound:.2f}s, "
                             f"ratio {res['time'] / bound:.2f}")
                elif method == "probcover":
                    inf = res["info"]
                    stages = " ".join(f"{k} {v:.1f}" for k, v in inf["seconds"].items())
                    notes = (f"delta {inf['delta']:.3f} cov {inf['coverage']:.3f} "
                             f"edges {inf['graph_edges']} fallback {inf['fallbacks']}; "
                             f"stage s: {stages}")
                elif method == "probcover-ivf" and "probcover-flat" in results and "error" not in results["probcover-flat"]:
                    # the approximation's loss where exact runs: both selections' exact coverage
                    # (all rows, brute force) at the exact run's delta
                    from curate.selectors.probcover import normalize_rows

                    ref = results["probcover-flat"]
                    xn = normalize_rows(np.load(data))
                    delta = ref["info"]["delta"]
                    allrows = np.arange(n)
                    cov_flat = exact_coverage(xn, np.append(ref["indices"], 0), delta, allrows)
                    cov_ivf = exact_coverage(xn, np.append(res["indices"], 0), delta, allrows)
                    a = res["info"].get("approximation", {})
                    row["identical to reference"] = bool(np.array_equal(ref["indices"], res["indices"]))
                    row["speedup vs reference"] = ref["time"] / res["time"]
                    row["coverage exact (flat) at flat delta"] = cov_flat
                    row["coverage exact (ivf) at flat delta"] = cov_ivf
                    row["coverage loss"] = cov_flat - cov_ivf
                    notes = (f"IVF nlist {a.get('nlist')} nprobe {a.get('nprobe')}: delta "
                             f"{res['info']['delta']:.4f} vs exact {delta:.4f}; exact coverage at "
                             f"the exact delta {cov_ivf:.4f} vs {cov_flat:.4f} (loss "
                             f"{(cov_flat - cov_ivf) * 100:.2f} points); edge recall "
                             f"{a.get('edge_recall', float('nan')):.3f}; "
                             f"{ref['time'] / res['time']:.1f}x faster than exact")
                elif method == "typiclust":
                    notes = f"{res['info']['clusters']} clusters"
                elif method == "skal-coreset" and "kcenter" in results:
                    ours = results["kcenter"]
                    same = np.array_equal(ours["indices"], res["indices"])
                    agree = int(np.argmin(np.append(ours["indices"] == res["indices"], False)))
                    notes = (f"identical selection: {same} (first {agree} picks agree); "
                             f"curate {res['time'] / ours['time']:.1f}x faster")
                    if "kcenter-f64" in results and "error" not in results["kcenter-f64"]:
                        f64 = results["kcenter-f64"]
                        notes += (f"; kcenter-f64 identical: "
                                  f"{np.array_equal(f64['indices'], res['indices'])} "
                                  f"({res['time'] / f64['time']:.1f}x faster)")
                elif method == "skal-typiclust" and "typiclust" in results:
                    notes = f"curate {res['time'] / results['typiclust']['time']:.1f}x faster"
                if "cpu" in res:
                    notes = f"[child cpu {res['cpu']:.0f} s] " + notes
                t = f"{res.get('time', float('nan')):.2f}"
                rss = f"{res.get('rss_mib', float('nan')):.0f}"
                load = f"{res.get('load', float('nan')):.1f}"
                print(fmt_row([n, method, t, rss, load, notes], widths), flush=True)
                if method == "probcover" and "error" not in res:
                    pc_peer = peers and n <= args.peer_probcover_max
                    xn = None
                    if pc_peer or n > 100_000:
                        from curate.selectors.probcover import normalize_rows

                        xn = normalize_rows(np.load(data))
                    delta = res["info"]["delta"]
                    centers = np.append(res["indices"], 0)
                    if n > 100_000:
                        # approximate (IVF) graph: check coverage exactly on a subsample
                        rows = np.random.default_rng(1).choice(n, 20_000, replace=False)
                        exact = exact_coverage(xn, centers, delta, rows)
                        print(fmt_row(["", "  exact check", "", "", "", (
                            f"exact coverage on 20k subsample {exact:.4f} vs graph "
                            f"{res['info']['coverage']:.4f} (diff "
                            f"{abs(exact - res['info']['coverage']) * 100:.2f}%)")], widths))
                        sub = run_child("probcover-sub", data, args.budget, workdir, {
                            "rows": args.check_rows, "delta": delta, "nlist": args.ivf_nlist,
                            "nprobe": args.ivf_nprobe})
                        if "error" in sub:
                            note = "FAILED: " + sub["error"]
                        else:
                            f, v = sub["info"]["flat"], sub["info"]["ivf"]
                            rel = (f["exact_coverage"] - v["exact_coverage"]) / f["exact_coverage"]
                            note = (f"{args.check_rows} rows, delta {delta:.3f}: exact graph "
                                    f"coverage {f['exact_coverage']:.4f} ({f['seconds']:.0f} s) vs "
                                    f"IVF nlist {v['nlist']} nprobe {v['nprobe']} "
                                    f"{v['exact_coverage']:.4f} ({v['seconds']:.0f} s; its graph "
                                    f"says {v['graph_coverage']:.4f}); IVF loses "
                                    f"{rel * 100:.2f}% (target < 1%): "
                                    f"{'OK' if rel < 0.01 else 'NOT MET'}")
                        print(fmt_row(["", "  IVF vs exact", f"{sub.get('time', float('nan')):.0f}",
                                       f"{sub.get('rss_mib', float('nan')):.0f}",
                                       f"{sub.get('load', float('nan')):.1f}", note], widths),
                              flush=True)
                    if pc_peer:
                        peer = run_child("skal-probcover", data, args.budget, workdir, {"delta": delta})
                        if "error" in peer:
                            note = "FAILED: " + peer["error"]
                        else:
                            allrows = np.arange(n)
                            cov_peer = exact_coverage(xn, np.append(peer["indices"], 0), delta, allrows)
                            cov_ours = exact_coverage(xn, centers, delta, allrows)
                            note = (f"coverage {cov_peer:.4f} vs curate {cov_ours:.4f}; curate "
                                    f"{peer['time'] / res['time']:.1f}x faster")
                        print(fmt_row([n, "skal-probcover", f"{peer.get('time', float('nan')):.2f}",
                                       f"{peer.get('rss_mib', float('nan')):.0f}",
                                       f"{peer.get('load', float('nan')):.1f}", note], widths),
                              flush=True)
                    elif peers:
                        print(fmt_row([n, "skal-probcover", "-", "-", "",
                                       f"skipped: N x N float64 = {n * n * 8 / 2**30:.0f} GiB"], widths))
            if peers and "typiclust" in methods and n > args.peer_typiclust_max:
                print(fmt_row([n, "skal-typiclust", "-", "-", "", "skipped (--peer-typiclust-max)"], widths))
            if peers and "kcenter" in methods and n > args.peer_coreset_max:
                print(fmt_row([n, "skal-coreset", "-", "-", "",
                               f"skipped: utilities budget x N float64 = {args.budget * n * 8 / 2**30:.1f} GiB"], widths))
            print(f"{'':>9}  (data {data_mib:.0f} MiB included in peak RSS)", flush=True)
    from benchmarks.results_io import write_result

    write_result("selectors", table, name=args.name, args=args,
                 notes=f"read bandwidth {bw / 1e9:.1f} GB/s; data {args.data_kind}",
                 extra={"read_bandwidth_gbs": bw / 1e9})


if __name__ == "__main__":
    main()
