"""Scale benchmark: a workspace of N frames x 256 dims filled and queried through curate's own API.

Run from the repository root::

    python -m benchmarks.scale --sizes 100000                  # minutes on a 2-core machine
    python -m benchmarks.scale --sizes 1000000,3000000,10000000  # the issue's sizes (hours)

Per size, in child processes (each size's build in one, each strategy's select in its own, so
that every peak RSS is that step's own ``VmHWM``):

1. **ingest**: ``Workspace.ingest`` of synthetic frame records (drives of 200 frames, with
   ``time_of_day`` / ``weather`` / ``location`` metadata; the records point at no file, ingest
   does not read point clouds) in batches of ``--ingest-batch`` frames; the time of every batch
   is recorded as the table grows.
2. **embed-commit**: the embedding job's commit, ``Store.write_vectors(table, ids, vectors,
   metadata=..., mode="upsert")`` (the call :func:`curate.jobs.embed.run_embed_job` makes every
   ``write_every`` frames), with ``--commit-rows`` vectors per commit from
   :func:`drive_vectors` (clustered drives with runs of near-duplicates). Only the model's
   forward pass is left out: the table grows exactly as an embedding job grows it.
3. **count**: ``Workspace.count(where=...)`` for a metadata filter.
4. **search**: ``Workspace.search`` of 10 neighbours for one id: first call (index built) and the
   median of 5 later calls (cached index).
5. **select**: ``Workspace.select`` of ``--budget-frac`` (1%) of the pool with k-center,
   ProbCover and TypiClust (after ``--labeled`` frames were labeled through ``Workspace.label``),
   each in its own process: wall time, time inside the selector (``select s``), the rest
   (reading vectors, id bookkeeping, storing the run: ``read+bookkeeping s``) and peak RSS.

Peer: the naive k-center (one pass per pick, ``algorithm="naive"``) is timed on the same
workspace when ``--naive-kcenter`` is given (it is the reference the pruned default must equal;
the script checks the ids are identical).

Results go to ``benchmarks/results/<--name>.json`` through
:func:`benchmarks.results_io.write_result` (``CURATE_RESULTS_DIR`` overrides the folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from curate.resources import TreePeakSampler, peak_rss_mib  # noqa: E402

FRAMES_PER_DRIVE = 200
TIMES = ("day", "night", "dusk")
WEATHERS = ("clear", "rain", "fog", "snow")
LOCATIONS = ("city", "highway", "residential", "campus")
EMBEDDING = "scale-synthetic"

# ------------------------------------------------------------------------------------- data
def drive_vectors(
    n: int,
    d: int = 256,
    *,
    seed: int = 0,
    frames_per_drive: int = 200,
    modes: int = 64,
    start: int = 0,
) -> np.ndarray:
    """Rows ``start .. start + n`` of a seeded pool of drive-like embeddings (float32).

    Drives of ``frames_per_drive`` consecutive frames. Each drive sits near one of ``modes``
    scene types (unit-variance centres, so modes are ~sqrt(2d) apart) with a per-drive offset
    (scale 0.3); along a drive the frame vector follows a random walk (step 0.02 per dimension)
    that stands still for about a third of the frames, giving runs of near-duplicates (jitter
    1e-3). Generated drive by drive from per-drive seeds, so any slice is reproducible on its own
    and a pool is built in bounded memory. O(n*d) time.
    """
    out = np.empty((n, d), dtype=np.float32)
    centres = np.random.default_rng([seed, 1]).normal(size=(modes, d)).astype(np.float32)
    first_drive = start // frames_per_drive
    last_drive = (start + n - 1) // frames_per_drive if n else first_drive - 1
    for drive in range(first_drive, last_drive + 1):
        rng = np.random.default_rng([seed, 2, drive])
        base = centres[rng.integers(modes)] + np.float32(0.3) * rng.standard_normal(d, np.float32)
        steps = np.float32(0.02) * rng.standard_normal((frames_per_drive, d), np.float32)
        steps[rng.random(frames_per_drive) < 0.35] = 0.0  # standing still: a run of duplicates
        walk = base + np.cumsum(steps, axis=0)
        walk += np.float32(1e-3) * rng.standard_normal(walk.shape, np.float32)
        lo = max(start, drive * frames_per_drive)
        hi = min(start + n, (drive + 1) * frames_per_drive)
        out[lo - start : hi - start] = walk[lo - drive * frames_per_drive : hi - drive * frames_per_drive]
    return out


def frame_id(row: int) -> str:
    """Id of pool row ``row``: drive and frame, so sorted ids follow row order."""
    return f"d{row // FRAMES_PER_DRIVE:06d}-{row % FRAMES_PER_DRIVE:04d}"


class SyntheticFrames:
    """A :class:`curate.sources.base.Source` of frame records ``start .. stop`` (no files)."""

    name = "scale-synthetic"

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = int(start), int(stop)

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[Any]:
        from curate.sources.base import FrameRecord

        for row in range(self.start, self.stop):
            drive = row // FRAMES_PER_DRIVE
            yield FrameRecord(
                id=frame_id(row),
                dataset="scale",
                split="training",
                scene=f"drive-{drive:06d}",
                frame_index=row % FRAMES_PER_DRIVE,
                timestamp=float(row % FRAMES_PER_DRIVE) * 0.1,
                lidar_path=f"/nonexistent/scale/{drive:06d}/{row % FRAMES_PER_DRIVE:04d}.bin",
                metadata={
                    "time_of_day": TIMES[drive % len(TIMES)],
                    "weather": WEATHERS[(drive // 3) % len(WEATHERS)],
                    "location": LOCATIONS[(drive // 12) % len(LOCATIONS)],
                },
            )


def deciles(rows_at: list[int], seconds: list[float]) -> list[dict[str, float]]:
    """Mean (amortised: compactions included) and median batch time per tenth of the run, with
    the table size at its end."""
    out = []
    n = len(seconds)
    for i in range(10):
        lo, hi = i * n // 10, (i + 1) * n // 10
        if hi > lo:
            out.append({"rows": rows_at[hi - 1], "seconds": float(np.mean(seconds[lo:hi])),
                        "median_seconds": float(np.median(seconds[lo:hi])),
                        "max_seconds": float(np.max(seconds[lo:hi]))})
    return out


def flatness(batches: list[dict[str, float]]) -> dict[str, float]:
    """Largest decile over the first decile (mean and median): 1.0 is perfectly flat."""
    if not batches:
        return {}
    first = batches[0]
    return {"max_over_first_mean": max(b["seconds"] for b in batches) / max(first["seconds"], 1e-9),
            "last_over_first_mean": batches[-1]["seconds"] / max(first["seconds"], 1e-9),
            "max_over_first_median": (max(b["median_seconds"] for b in batches)
                                      / max(first["median_seconds"], 1e-9))}


# ------------------------------------------------------------------------------- children
def build(n: int, dim: int, ws_path: Path, ingest_batch: int, commit_rows: int,
          labeled: int, dtype: str = "float32", search: bool = True) -> dict[str, Any]:
    """Fill a workspace of ``n`` frames and ``n`` vectors; time ingest, commits, count, search
    (``search=False`` leaves the search out; above ``curate.search.SEARCH_FLAT_MAX`` rows its
    first call builds a streamed float16 IVF index, see ``benchmarks/search_scale.py``)."""
    import curate
    from curate import _tables as T

    ws = curate.connect(str(ws_path))
    t0 = time.perf_counter()
    ing_rows, ing_s, ing_cpu = [], [], []
    for start in range(0, n, ingest_batch):
        stop = min(n, start + ingest_batch)
        t, c = time.perf_counter(), time.process_time()
        ws.ingest(SyntheticFrames(start, stop), batch_size=ingest_batch, progress=False)
        ing_s.append(time.perf_counter() - t)
        ing_cpu.append(time.process_time() - c)
        ing_rows.append(stop)
    ingest_total = time.perf_counter() - t0
    table = T.embedding_table(EMBEDDING)
    meta = {"embedder": EMBEDDING, "config": json.dumps({"dim": dim}), "weights_sha256": "none"}
    com_rows, com_s, com_cpu = [], [], []
    gen_s = 0.0
    t0 = time.perf_counter()
    mode = "overwrite"
    for start in range(0, n, commit_rows):
        stop = min(n, start + commit_rows)
        g = time.perf_counter()
        vecs = drive_vectors(stop - start, dim, seed=0, start=start,
                             frames_per_drive=FRAMES_PER_DRIVE)
        ids = [frame_id(r) for r in range(start, stop)]
        gen_s += time.perf_counter() - g
        t, c = time.perf_counter(), time.process_time()
        ws.store.write_vectors(table, ids, vecs, metadata=meta, mode=mode, dtype=dtype)
        com_s.append(time.perf_counter() - t)
        com_cpu.append(time.process_time() - c)
        com_rows.append(stop)
        mode = "upsert"
    commit_total = time.perf_counter() - t0 - gen_s
    where = "time_of_day = 'night' AND weather = 'rain'"
    t = time.perf_counter()
    count = ws.count(where=where)
    count_s = time.perf_counter() - t
    probe = frame_id(n // 2)
    search_first = search_filtered = None
    later = [float("nan")]
    if search:
        t = time.perf_counter()
        ws.search(EMBEDDING, ids=[probe], k=10)
        search_first = time.perf_counter() - t
        later = []
        for _ in range(5):
            t = time.perf_counter()
            ws.search(EMBEDDING, ids=[probe], k=10)
            later.append(time.perf_counter() - t)
        t = time.perf_counter()
        ws.search(EMBEDDING, ids=[probe], k=10, where=where)
        search_filtered = time.perf_counter() - t
    lab_rows = np.random.default_rng(3).choice(n, size=min(labeled, n), replace=False)
    t = time.perf_counter()
    if labeled:
        ws.label([frame_id(int(r)) for r in np.sort(lab_rows)])
    label_s = time.perf_counter() - t
    return {
        "ingest_total_s": ingest_total, "ingest_batches": deciles(ing_rows, ing_s),
        "commit_total_s": commit_total, "commit_batches": deciles(com_rows, com_s),
        "ingest_flatness": flatness(deciles(ing_rows, ing_s)),
        "commit_flatness": flatness(deciles(com_rows, com_s)),
        "ingest_cpu_batches": deciles(ing_rows, ing_cpu),
        "commit_cpu_batches": deciles(com_rows, com_cpu),
        "ingest_cpu_flatness": flatness(deciles(ing_rows, ing_cpu)),
        "commit_cpu_flatness": flatness(deciles(com_rows, com_cpu)),
        "ingest_curve": [[r, round(x, 4)] for r, x in zip(ing_rows, ing_s)],
        "commit_curve": [[r, round(x, 4)] for r, x in zip(com_rows, com_s)],
        "count_where": where, "count": int(count), "count_s": count_s,
        "search_first_s": search_first, "search_cached_s": float(np.median(later)),
        "search_filtered_s": search_filtered, "search": bool(search),
        "label_s": label_s, "labeled": int(labeled),
        "peak_mib": peak_rss_mib(),
    }


def make_selector(method: str, shards: int = 16, engine: str = "local",
                  measure_loss: bool = False, oversample: float = 1.0):
    """The strategy object of ``method`` (``kcenter-naive`` is the reference loop; a
    ``-sharded`` suffix wraps the strategy in :class:`curate.selectors.Sharded` with ``shards``
    partitions on ``engine``)."""
    from curate.selectors import KCenterGreedy, ProbCover, Random, Sharded, TypiClust

    if method.endswith("-sharded"):
        return Sharded(make_selector(method[: -len("-sharded")]), shards=shards, engine=engine,
                       measure_loss=measure_loss, oversample=oversample)
    if method == "kcenter":
        return KCenterGreedy()
    if method == "kcenter-naive":
        return KCenterGreedy(algorithm="naive")
    if method == "probcover":
        return ProbCover()
    if method == "typiclust":
        return TypiClust()
    if method == "random":
        return Random()
    raise SystemExit(f"unknown method {method!r}")


def select(method: str, ws_path: Path, budget: int, shards: int = 16, engine: str = "local",
           measure_loss: bool = False, oversample: float = 1.0) -> dict[str, Any]:
    """One ``Workspace.select``; time inside the selector vs the rest; peak RSS (this process,
    and the largest of its worker processes for sharded runs)."""
    import curate
    from curate.selectors.base import Selector

    inner = make_selector(method, shards, engine, measure_loss, oversample)

    class Timed(Selector):
        """Delegates to ``inner`` and records the seconds spent inside its ``select``."""

        name = inner.name
        accepts_float16 = inner.accepts_float16  # a float16 table is then read as float16
        seconds = 0.0

        def params(self) -> dict[str, Any]:
            return inner.params()

        def select(self, vectors, budget, **kw):
            t = time.perf_counter()
            try:
                return inner.select(vectors, budget, **kw)
            finally:
                Timed.seconds = time.perf_counter() - t

    ws = curate.connect(str(ws_path))
    gather = ws.store.gather_vectors
    read = {"s": 0.0}

    def timed_gather(*a, **kw):
        t0 = time.perf_counter()
        try:
            return gather(*a, **kw)
        finally:
            read["s"] += time.perf_counter() - t0

    ws.store.gather_vectors = timed_gather  # instance attribute: times the vector read only
    t = time.perf_counter()
    from curate.errors import ResourceLimitError

    try:
        with TreePeakSampler() as tree:  # this process plus its shard workers, sampled
            res = ws.select(Timed(), budget, embedding=EMBEDDING, seed=0)
    except ResourceLimitError as exc:  # refused before the work that would not fit
        total = time.perf_counter() - t
        return {"refused": str(exc), "total_s": total, "select_s": Timed.seconds,
                "read_vectors_s": read["s"], "peak_mib": peak_rss_mib()}
    total = time.perf_counter() - t
    info = dict(res.run.info or {})
    keep = {k: info[k] for k in ("algorithm", "pruning", "delta", "coverage", "approximation",
                                 "seconds", "cpu_seconds", "n_clusters", "fallbacks",
                                 "coverage_radius", "coverage_radius_sampled_rows",
                                 "coverage_radius_bound", "coverage_bound", "loss", "shards",
                                 "engine", "union", "seconds_partition", "seconds_shards",
                                 "seconds_shard_max", "seconds_merge", "worker_peak_mib",
                                 "shard_rows", "shard_budgets", "merge")
            if k in info}
    # the workers' own VmHWM (ru_maxrss of children would count this process's pages at fork)
    workers = info.get("worker_peak_mib")
    return {"total_s": total, "select_s": Timed.seconds, "rest_s": total - Timed.seconds,
            "read_vectors_s": read["s"],
            "ids": list(res.ids), "info": keep, "peak_mib": peak_rss_mib(),
            "worker_peak_mib": workers, "tree_peak_mib": tree.peak_mib,
            "tree_hwm_sum_mib": tree.hwm_sum_mib}


def run_child(argv: list[str], timeout: Optional[float]) -> dict[str, Any]:
    """Run this script as a child with ``argv``; its last stdout line is a JSON result."""
    from benchmarks._child import run_json_child

    return run_json_child("benchmarks.scale", argv, timeout)


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,3000000,10000000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--budget-frac", type=float, default=0.01)
    ap.add_argument("--ingest-batch", type=int, default=2000)
    ap.add_argument("--commit-rows", type=int, default=2000)
    ap.add_argument("--labeled", type=int, default=100, help="frames labeled before selecting")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                    help="storage type of the vectors")
    ap.add_argument("--skip-select", action="store_true", help="only fill and time the writes")
    ap.add_argument("--reuse", action="store_true",
                    help="select on the workspaces already in --workdir (no build rows)")
    ap.add_argument("--methods", default="kcenter,probcover,typiclust")
    ap.add_argument("--naive-kcenter", action="store_true",
                    help="also time the naive k-center reference and check identical ids")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per select child")
    ap.add_argument("--build-timeout", type=float, default=None,
                    help="seconds for the build child (default: no limit)")
    ap.add_argument("--workdir", default=None, help="where workspaces go (default: a temp dir)")
    ap.add_argument("--name", default=None, help="result name (default scale-<sizes>)")
    ap.add_argument("--shards", type=int, default=16, help="partitions of the -sharded methods")
    ap.add_argument("--engine", default="local", choices=("local", "ray"),
                    help="engine of the -sharded methods")
    ap.add_argument("--oversample", type=float, default=1.0,
                    help="-sharded methods: each shard picks this many times its share; the "
                         "gain-ordered merge keeps the budget")
    ap.add_argument("--measure-loss", action="store_true",
                    help="-sharded methods also run the unsharded selector and report the loss")
    ap.add_argument("--search-max-rows", type=int, default=10_000_000,
                    help="time search only up to this many rows (above 1M rows the first "
                         "search builds a float16 IVF index: minutes at 10M)")
    ap.add_argument("--child", choices=("build", "select"))
    ap.add_argument("--n", type=int)
    ap.add_argument("--ws")
    ap.add_argument("--method")
    ap.add_argument("--budget", type=int)
    args = ap.parse_args(argv)
    if args.child == "build":
        print(json.dumps(build(args.n, args.dim, Path(args.ws), args.ingest_batch,
                               args.commit_rows, args.labeled, args.dtype,
                               search=args.n <= args.search_max_rows)))
        return
    if args.child == "select":
        print(json.dumps(select(args.method, Path(args.ws), args.budget, args.shards,
                                args.engine, args.measure_loss, args.oversample)))
        return

    from benchmarks.results_io import write_result

    sizes = [int(s) for s in args.sizes.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    if args.naive_kcenter and "kcenter" in methods:
        methods.append("kcenter-naive")
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="curate-scale-"))
    common = ["--dim", str(args.dim), "--ingest-batch", str(args.ingest_batch),
              "--commit-rows", str(args.commit_rows), "--labeled", str(args.labeled),
              "--dtype", args.dtype, "--shards", str(args.shards), "--engine", args.engine,
              "--search-max-rows", str(args.search_max_rows), "--oversample", str(args.oversample),
              *(["--measure-loss"] if args.measure_loss else [])]

    def row(n: int, phase: str, what: str, seconds: Any, peak: Any = None, notes: str = "") -> None:
        rows.append({"N": n, "phase": phase, "what": what, "seconds": seconds, "peak MiB": peak,
                     "notes": notes})
        sec = "-" if seconds is None else f"{seconds:.3f}"
        pk = "" if peak is None else f"{peak:.0f}"
        print(f"{n:>9}  {phase:<13} {what:<42} {sec:>9} {pk:>8}  {notes}", flush=True)

    def report_build(n: int, b: dict[str, Any]) -> None:
        for phase, key, unit, total_note in (
            ("ingest", "ingest", "batch", f"{n // args.ingest_batch} batches of {args.ingest_batch}"),
            ("embed-commit", "commit", "commit", f"write_vectors of {args.commit_rows} rows each"),
        ):
            row(n, phase, "total", b[f"{key}_total_s"], None, total_note)
            for d in b[f"{key}_batches"]:
                row(n, phase, f"{unit} (mean) up to {d['rows']} rows", d["seconds"], None,
                    f"median {d['median_seconds']:.3f}, max {d['max_seconds']:.2f}")
            fl, fc = b[f"{key}_flatness"], b[f"{key}_cpu_flatness"]
            row(n, phase, "flatness: max decile / first decile", fl["max_over_first_mean"], None,
                f"wall, mean (amortised); medians {fl['max_over_first_median']:.2f}; CPU time: mean "
                f"{fc['max_over_first_mean']:.2f}, medians {fc['max_over_first_median']:.2f}")
        row(n, "count", "count(where)", b["count_s"], None, f"{b['count']} rows: {b['count_where']}")
        if b.get("search", True):
            row(n, "search", "first (builds the index)", b["search_first_s"])
            row(n, "search", "cached (median of 5)", b["search_cached_s"])
            row(n, "search", "with where filter", b["search_filtered_s"])
        else:
            row(n, "search", "not run", None, None,
                f"N > --search-max-rows {args.search_max_rows}")
        row(n, "label", f"label {b['labeled']} frames", b["label_s"], b["peak_mib"],
            "peak RSS of the whole build process")

    print(f"{'N':>9}  {'phase':<13} {'what':<42} {'seconds':>9} {'peakMiB':>8}  notes")
    try:
        for n in sizes:
            ws_path = base / f"ws-{n}"
            budget = max(1, int(round(args.budget_frac * n)))
            if args.reuse and ws_path.exists():
                extra[f"build-{n}"] = {"reused": str(ws_path)}
                b = None
            else:
                if ws_path.exists():
                    shutil.rmtree(ws_path)
                b = run_child(["--child", "build", "--n", str(n), "--ws", str(ws_path), *common],
                              args.build_timeout)
                extra[f"build-{n}"] = b
            if b is not None:
                if "error" in b:
                    row(n, "build", "FAILED", None, None, b["error"])
                    continue
                report_build(n, b)
            picks: dict[str, list[str]] = {}
            for method in ([] if args.skip_select else methods):
                s = run_child(["--child", "select", "--method", method, "--ws", str(ws_path),
                               "--budget", str(budget), *common], args.timeout)
                if "error" in s:
                    row(n, "select", f"{method}: FAILED", None, None, s["error"])
                    continue
                if "refused" in s:  # ResourceLimitError: the message is the result
                    extra[f"select-{n}-{method}"] = s
                    row(n, "select", f"{method}: refused", s["total_s"], s["peak_mib"],
                        s["refused"])
                    continue
                picks[method] = s.pop("ids")
                extra[f"select-{n}-{method}"] = s
                note = f"budget {budget}"
                inf = s["info"]
                if "pruning" in inf:
                    note += (f"; {inf.get('algorithm')}, touched "
                             f"{inf['pruning']['touched_fraction']:.3f} of rows per pick")
                if "approximation" in inf:
                    a = inf["approximation"]
                    note += (f"; delta {inf.get('delta', 0):.3f} coverage {inf.get('coverage', 0):.3f}"
                             f", IVF nlist {a['nlist']} nprobe {a['nprobe']} edge recall "
                             f"{a['edge_recall']:.3f}, exact-vs-graph coverage gap "
                             f"{a['coverage_gap']:.4f}")
                if "shards" in inf:
                    note += (f"; {inf['shards']} shards ({inf.get('engine')}): partition "
                             f"{inf.get('seconds_partition', 0):.0f} s, shards "
                             f"{inf.get('seconds_shards', 0):.0f} s (slowest "
                             f"{inf.get('seconds_shard_max', 0):.0f} s), merge "
                             f"{inf.get('seconds_merge', 0):.0f} s; worker peak "
                             f"{s.get('worker_peak_mib') or 0:.0f} MiB")
                    if isinstance(inf.get("loss"), dict):
                        lr = inf["loss"]["coverage_radius"]
                        note += (f"; radius sharded {lr['sharded']:.3f} vs unsharded "
                                 f"{lr['unsharded']:.3f} ({100 * lr['relative']:+.1f}%)")
                        if "ball_coverage" in inf["loss"]:
                            lc = inf["loss"]["ball_coverage"]
                            note += (f"; ball coverage {lc['sharded']:.4f} vs "
                                     f"{lc['unsharded']:.4f} ({100 * lc['relative']:.2f}% lost)")
                if isinstance(inf.get("coverage_radius"), (int, float)):
                    sampled = inf.get("coverage_radius_sampled_rows")
                    note += (f"; coverage radius {inf['coverage_radius']:.3f}"
                             + (f" (on {sampled} sampled rows: a lower bound)" if sampled else ""))
                if method == "kcenter-naive" and "kcenter" in picks:
                    same = picks["kcenter"] == picks["kcenter-naive"]
                    note += f"; identical ids to pruned kcenter: {same}"
                row(n, "select", f"{method}: total", s["total_s"], s["peak_mib"], note)
                if s.get("tree_peak_mib"):
                    row(n, "select", f"{method}: process tree peak MiB (sampled)", None,
                        s["tree_peak_mib"], "this process and its shard workers, summed every "
                        f"0.5 s; sum of their own peaks {s['tree_hwm_sum_mib']:.0f} MiB (bound)")
                row(n, "select", f"{method}: select s (inside the selector)", s["select_s"])
                row(n, "select", f"{method}: read+bookkeeping s", s["rest_s"], None,
                    f"{100 * s['rest_s'] / max(s['total_s'], 1e-9):.0f}% of total")
                row(n, "select", f"{method}: of which vector read s", s["read_vectors_s"], None,
                    f"{100 * s['read_vectors_s'] / max(s['total_s'], 1e-9):.0f}% of total")
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    name = args.name or "scale-" + "-".join(str(s) for s in sizes)
    write_result("scale", rows, name=name, args=args, extra=extra,
                 notes="ingest/commit rows: mean seconds per batch over each tenth of the fill")


if __name__ == "__main__":
    main()
