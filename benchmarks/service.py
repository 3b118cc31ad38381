"""Load test of ``curate serve`` on loopback: concurrent clients, mixed reads and writes.

Run from the repository root::

    .venv/bin/python benchmarks/service.py                       # 20 clients x 200 requests
    .venv/bin/python benchmarks/service.py --clients 5 --requests 50 --frames 120

What it does:

* Builds a workspace (synthetic KITTI-format set, ``--frames`` small frames, ingested and embedded
  with ``bev-hist``) in a temporary directory, starts the server as a subprocess
  (``python -m curate.server``) on 127.0.0.1 and waits for it.
* ``--clients`` threads, each with its own :class:`curate.client.RemoteWorkspace`, send
  ``--requests`` requests each, drawn (seeded) from a fixed mix of reads and writes (see ``MIX``).
  Every request is timed; any exception counts as an error. The run is bounded and stops by
  itself. Traffic goes only to 127.0.0.1.
* Peer, measured in the same run: the same mix called in-process on a
  :class:`curate.workspace.Workspace` (one thread, ``--peer-requests`` calls) over a copy of the
  same workspace. ``ratio`` = HTTP p50 under load / in-process p50 (the price of the service:
  HTTP, JSON, auth, queueing behind the single writer and 20-way concurrency on 2 cores).
* Peak memory: the server process's ``VmHWM`` (from ``/proc``) and this process's peak RSS.

Prints one table: per operation n, p50 / p99 latency (ms) over HTTP, in-process p50, ratio; and
a total line with throughput and the error count. The table (plus throughput, errors and peak
memory in ``extra``) is written with :func:`benchmarks.results_io.write_result` to
``benchmarks/results/<--name>.json`` (default ``service``).
"""

from __future__ import annotations

import sys

# benchmarks/selectors.py is named like the stdlib module ``selectors`` (used by subprocess and
# asyncio): take this folder off the import path before anything imports it.
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("benchmarks")]

import argparse
import os
import random
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.resources import peak_rss_mib  # noqa: E402

TOKEN = "benchmark-write-token"

#: (name, weight, is_write)
MIX: list[tuple[str, int, bool]] = [
    ("search_id", 30, False),
    ("search_where", 10, False),
    ("search_vector", 10, False),
    ("count_where", 10, False),
    ("frames_ids", 10, False),
    ("runs", 5, False),
    ("run", 5, False),
    ("select", 12, True),
    ("label", 8, True),
]


def make_ops(ws: Any, ids: list[str], vecs: np.ndarray, seed_run: str) -> dict[str, Callable[[random.Random], Any]]:
    """The operations of the mix, bound to one client (remote or in-process)."""
    return {
        "search_id": lambda r: ws.search("bev-hist", ids=[r.choice(ids)], k=10),
        "search_where": lambda r: ws.search("bev-hist", ids=[r.choice(ids)], k=10,
                                            where=f"frame_index >= {r.randrange(0, 20)}"),
        "search_vector": lambda r: ws.search("bev-hist", vectors=vecs[r.randrange(len(vecs))] * 1.01, k=10),
        "count_where": lambda r: ws.count(f"frame_index < {r.randrange(1, 40)}"),
        "frames_ids": lambda r: ws.frames(ids=r.sample(ids, 8), columns=["id", "scene", "labeled"]),
        "runs": lambda r: ws.runs(),
        "run": lambda r: ws.run(seed_run),
        "select": lambda r: ws.select("random", 2, embedding="bev-hist", seed=r.randrange(10**6),
                                      where="frame_index >= 0"),
        "label": lambda r: ws.label([r.choice(ids)]),
    }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set of process ``pid`` in MiB (NaN once it has gone)."""
    return peak_rss_mib(pid)


def build_workspace(base: Path, frames: int) -> Path:
    import curate
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    data = base / "data" / "kitti"
    generate(data, frames, seed=0, small=True, progress=False)
    path = base / "ws"
    ws = curate.connect(path)
    ws.ingest(KittiSource(data), progress=False)
    ws.embed("bev-hist", progress=False)
    ws.select("kcenter", 5, embedding="bev-hist")  # run-000001, read by the "run" op
    return path


def start_server(path: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "CURATE_TOKENS": f"{TOKEN}:write", "CURATE_LOG_LEVEL": "error"}
    proc = subprocess.Popen([sys.executable, "-m", "curate.server", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(ROOT))
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("CURATE_SERVER_URL "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--peer-requests", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="service", help="result name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    from benchmarks.results_io import write_result

    import curate

    base = Path(tempfile.mkdtemp(prefix="curate-service-bench-"))
    try:
        t0 = time.perf_counter()
        path = build_workspace(base, args.frames)
        peer_path = base / "ws-peer"
        shutil.copytree(path, peer_path)
        print(f"workspace: {args.frames} frames, bev-hist, built in {time.perf_counter() - t0:.1f} s")

        local = curate.connect(path)
        ids_arr, vecs = local.vectors("bev-hist")
        ids = [str(i) for i in ids_arr]
        names = [m[0] for m in MIX]
        weights = [m[1] for m in MIX]

        # ---- peer: the same mix in-process, one thread
        peer = curate.connect(peer_path)
        peer_ops = make_ops(peer, ids, vecs, "run-000001")
        rng = random.Random(args.seed + 999)
        peer_lat: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.peer_requests):
            name = rng.choices(names, weights)[0]
            start = time.perf_counter()
            peer_ops[name](rng)
            peer_lat[name].append(time.perf_counter() - start)

        # ---- HTTP under load
        proc, url = start_server(path)
        latencies: dict[str, list[float]] = {n: [] for n in names}
        errors: list[str] = []
        guard = threading.Lock()
        barrier = threading.Barrier(args.clients)

        def client(k: int) -> None:
            ws = curate.connect(url, token=TOKEN)
            ops = make_ops(ws, ids, vecs, "run-000001")
            r = random.Random(args.seed * 1000 + k)
            mine: list[tuple[str, float]] = []
            barrier.wait()
            for _ in range(args.requests):
                name = r.choices(names, weights)[0]
                start = time.perf_counter()
                try:
                    ops[name](r)
                except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                    with guard:
                        errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                mine.append((name, time.perf_counter() - start))
            ws.close()
            with guard:
                for name, dt in mine:
                    latencies[name].append(dt)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        wall = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
        server_mib = vm_hwm_mib(proc.pid)
        proc.terminate()
        proc.wait(timeout=60)

        total = sum(len(v) for v in latencies.values())
        print(f"\n{args.clients} clients x {args.requests} requests on 127.0.0.1 "
              f"({os.cpu_count()} CPUs); peer: in-process Workspace, 1 thread, {args.peer_requests} calls\n")
        header = f"{'operation':<14} {'kind':<5} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'in-proc p50':>12} {'ratio':>7}"
        print(header)
        print("-" * len(header))
        rows = []
        for name, _, is_write in MIX:
            lat = [x * 1000 for x in latencies[name]]
            ref = [x * 1000 for x in peer_lat[name]]
            p50, p99, r50 = percentile(lat, 50), percentile(lat, 99), percentile(ref, 50)
            rows.append({"operation": name, "kind": "write" if is_write else "read", "n": len(lat),
                         "p50 ms": p50, "p99 ms": p99, "in-process p50 ms": r50,
                         "ratio": p50 / r50 if r50 else None})
            print(f"{name:<14} {'write' if is_write else 'read':<5} {len(lat):>6} {p50:>9.1f} {p99:>9.1f} "
                  f"{r50:>12.1f} {p50 / r50 if r50 else float('nan'):>7.1f}")
        every = [x * 1000 for v in latencies.values() for x in v]
        ref_all = [x * 1000 for v in peer_lat.values() for x in v]
        print("-" * len(header))
        print(f"{'all':<14} {'mixed':<5} {total:>6} {percentile(every, 50):>9.1f} {percentile(every, 99):>9.1f} "
              f"{percentile(ref_all, 50):>12.1f} {percentile(every, 50) / percentile(ref_all, 50):>7.1f}")
        rows.append({"operation": "all", "kind": "mixed", "n": total, "p50 ms": percentile(every, 50),
                     "p99 ms": percentile(every, 99), "in-process p50 ms": percentile(ref_all, 50),
                     "ratio": percentile(every, 50) / percentile(ref_all, 50)})
        print(f"\nthroughput {total / wall:.1f} req/s over {wall:.1f} s; errors: {len(errors)}")
        print(f"peak memory: server {server_mib:.0f} MiB (VmHWM), load generator "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        for line in errors[:10]:
            print("  error:", line)
        check = curate.connect(path)
        runs = check.runs()
        print(f"store after the run: {len(runs)} runs, run ids unique: "
              f"{len({r.run_id for r in runs}) == len(runs)}, labeled frames: {len(check.labeled_ids())}")
        load_gen_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        write_result("service", rows, name=args.name, args=args,
                     notes=f"{args.clients} clients x {args.requests} requests on 127.0.0.1; peer: "
                     f"in-process Workspace, 1 thread, {args.peer_requests} calls",
                     extra={"throughput_req_s": total / wall, "wall_s": wall, "errors": len(errors),
                            "error_samples": errors[:10], "server_peak_mib": server_mib,
                            "load_generator_peak_mib": load_gen_mib, "runs": len(runs),
                            "run_ids_unique": len({r.run_id for r in runs}) == len(runs)})
        if errors:
            raise SystemExit(1)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
