"""Workspace search at scale: the exact flat index against the streamed fp16 IVF index.

Run from the repository root::

    python -m benchmarks.search_scale --n 200000 --dim 256      # a few minutes on 2 cores
    python -m benchmarks.search_scale --n 200000 --pool gaussian  # IVF's worst case

One workspace of ``--n`` drive-like clustered vectors (:func:`benchmarks.scale.drive_vectors`:
drives of 200 frames around 64 scene types, with runs of near-duplicates), written through
``Store.write_vectors`` in commits of 50 000 rows as the embedding job writes them. Each index is
measured in its own child process (so that its peak RSS is its own), through ``Workspace.search``:

* ``flat (peer)``: the exact path ``search`` takes up to ``curate.search.SEARCH_FLAT_MAX`` rows
  (flat float32 index filled chunk by chunk from ``Store.iter_vectors``);
* ``flat, whole read``: the path ``search`` took before (``Store.read_vectors`` of the whole
  table, then ``VectorIndex.build(kind="flat")``: two float32 copies while it builds), for the
  build time and memory comparison (the index is the peer's, so its queries are not timed);
* ``ivf fp16``: the path above the threshold (``SEARCH_FLAT_MAX`` set to 0 in the child):
  ``VectorIndex.build_streamed(kind="ivf", storage="fp16")``, two passes over the table,
  ``nlist = curate.search.search_nlist(N)``; queried at several ``nprobe`` (``nprobe=`` of
  ``Workspace.search``), the default included, and at ``nprobe = nlist`` (every list: what is
  left is the fp16 rounding).

Per row: first-search seconds (the index build, the table read included), milliseconds per query
for one batched call of ``--queries`` query ids and the median of 20 one-id calls, recall@10 of
the same query ids against the flat peer's neighbours (``exclude_self``: the query frame left
out), the bytes the FAISS index holds (``VectorIndex.index_bytes``), and the child's peak RSS and
its growth during the first search. Results: ``benchmarks/results/search_scale-<n>.json``
(``CURATE_RESULTS_DIR`` overrides the folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from curate.resources import peak_rss_mib  # noqa: E402

EMBEDDING = "search-scale"
COMMIT_ROWS = 50_000


def _rss_mib() -> float:
    """Current resident set (``VmRSS``) in MiB (NaN off Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def fill(ws_path: Path, n: int, dim: int, dtype: str, pool: str = "drive") -> float:
    """Write ``n`` vectors as the embedding ``EMBEDDING``; returns seconds.

    ``pool="drive"``: :func:`benchmarks.scale.drive_vectors`; ``"gaussian"``: i.i.d. standard
    normal vectors (no structure: the worst case for IVF).
    """
    import curate
    from curate import _tables as T
    from benchmarks.scale import FRAMES_PER_DRIVE, drive_vectors, frame_id

    ws = curate.connect(str(ws_path))
    table = T.embedding_table(EMBEDDING)
    meta = {"embedder": EMBEDDING, "config": json.dumps({"dim": dim}), "weights_sha256": "none"}
    t = time.perf_counter()
    mode = "overwrite"
    for start in range(0, n, COMMIT_ROWS):
        stop = min(n, start + COMMIT_ROWS)
        if pool == "gaussian":
            vecs = np.random.default_rng([7, start]).standard_normal((stop - start, dim), np.float32)
        else:
            vecs = drive_vectors(stop - start, dim, seed=0, start=start, frames_per_drive=FRAMES_PER_DRIVE)
        ws.store.write_vectors(table, [frame_id(r) for r in range(start, stop)], vecs, metadata=meta,
                               mode=mode, dtype=dtype)
        mode = "upsert"
    return time.perf_counter() - t


def query_ids(n: int, q: int) -> list[str]:
    """``q`` seeded query frame ids of a pool of ``n``."""
    from benchmarks.scale import frame_id

    rows = np.sort(np.random.default_rng(11).choice(n, size=min(q, n), replace=False))
    return [frame_id(int(r)) for r in rows]


def child(path: str, ws_path: Path, n: int, q: int, probes: list[int]) -> dict[str, Any]:
    """Build one kind of index through ``Workspace.search`` and time its queries."""
    import curate
    from curate import search as search_module

    ws = curate.connect(str(ws_path))
    queries = query_ids(n, q)
    rss0 = _rss_mib()
    out: dict[str, Any] = {"runs": []}
    if path == "flat-read":
        from curate import _tables as T
        from index.vectors import VectorIndex

        t = time.perf_counter()
        ids, vecs = ws.store.read_vectors(T.embedding_table(EMBEDDING))
        index = VectorIndex.build(vecs, ids=ids, kind="flat", device="cpu")
        del vecs
        index.search_ids(queries[:1], 10)
        out["first_s"] = time.perf_counter() - t
        out["rss_growth_mib"] = peak_rss_mib() - rss0
        # The same flat index as the peer: only the build (time, memory) differs; no query times.
        out["runs"].append({"nprobe": None, "batch_ms": None, "single_ms": None, "ids": None})
        out.update(kind="flat", storage="float32", nlist=None, index_bytes=index.index_bytes,
                   peak_mib=peak_rss_mib())
        return out
    search_module.SEARCH_FLAT_MAX = n if path == "flat" else 0
    t = time.perf_counter()
    first = ws.search(EMBEDDING, ids=queries[:1], k=10)
    out["first_s"] = time.perf_counter() - t
    out["rss_growth_mib"] = peak_rss_mib() - rss0
    (index,) = [ix for ix in search_module._cache.values() if ix is not None]
    out.update(kind=first.index_kind, storage=first.index_storage, nlist=first.nlist,
               index_bytes=index.index_bytes)
    settings: list[Optional[int]] = [None]
    if first.index_kind == "ivf":
        settings += sorted({p for p in probes if p < int(first.nlist)} | {int(first.nlist)})
    for p in settings:
        t = time.perf_counter()
        result = ws.search(EMBEDDING, ids=queries, k=10, nprobe=p)
        batch_ms = 1000 * (time.perf_counter() - t) / len(queries)
        single = []
        for qid in queries[:20]:
            t = time.perf_counter()
            ws.search(EMBEDDING, ids=[qid], k=10, nprobe=p)
            single.append(1000 * (time.perf_counter() - t))
        out["runs"].append({"nprobe": result.nprobe, "batch_ms": batch_ms,
                            "single_ms": float(np.median(single)),
                            "ids": [hit.ids for hit in result.results]})
    out["peak_mib"] = peak_rss_mib()
    return out


def run_child(argv: list[str], timeout: Optional[float]) -> dict[str, Any]:
    """Run this script as a child with ``argv``; its last stdout line is a JSON result."""
    from benchmarks._child import run_json_child

    return run_json_child("benchmarks.search_scale", argv, timeout)


def recall(got: list[list[str]], ref: list[list[str]], k: int = 10) -> float:
    """Mean share of each reference top-k found in the result's top-k."""
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / max(1, min(k, len(b))) for a, b in zip(got, ref)]))


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--probes", default="4,8,16,32", help="nprobe values besides the default and nlist")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                    help="storage type of the embedding table")
    ap.add_argument("--pool", default="drive", choices=["drive", "gaussian"],
                    help="drive-like clustered vectors, or i.i.d. Gaussian ones (IVF's worst case)")
    ap.add_argument("--name", default=None,
                    help="result name (default search_scale-<n>, search_scale-gaussian-<n>)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child", choices=["flat", "flat-read", "ivf"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ws", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    probes = [int(p) for p in args.probes.split(",") if p.strip()]
    if args.child:
        print(json.dumps(child(args.child, Path(args.ws), args.n, args.queries, probes)))
        return

    from benchmarks.results_io import write_result

    tmp = Path(tempfile.mkdtemp(prefix="search_scale-"))
    try:
        ws_path = tmp / "ws"
        fill_s = fill(ws_path, args.n, args.dim, args.dtype, args.pool)
        print(f"filled {args.n} x {args.dim} {args.pool} ({args.dtype}) in {fill_s:.1f} s", flush=True)
        common = ["--ws", str(ws_path), "--n", str(args.n), "--queries", str(args.queries),
                  "--probes", args.probes]
        results = {}
        for path in ("flat", "flat-read", "ivf"):
            results[path] = run_child(["--child", path, *common], args.timeout)
            print(path, {k: v for k, v in results[path].items() if k != "runs"}, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref = None
    if "error" not in results["flat"]:
        ref = results["flat"]["runs"][0]["ids"]
    labels = {"flat": "flat (peer)", "flat-read": "flat, whole read (before)", "ivf": "ivf fp16"}
    rows = []
    for path, res in results.items():
        if "error" in res:
            rows.append({"index": labels[path], "N": args.n, "storage": None, "nlist": None,
                         "nprobe": None, "first search s": None, "ms/query batch": None,
                         "ms/query single": None, "recall@10 vs flat": None, "index MiB": None,
                         "RSS growth MiB": None, "peak RSS MiB": None, "notes": res["error"]})
            continue
        default_probe = res["runs"][0]["nprobe"]
        for run in res["runs"]:
            notes = []
            if res["kind"] == "ivf" and run is res["runs"][0]:
                notes.append("default nprobe")
            if res["kind"] == "ivf" and run["nprobe"] == res["nlist"]:
                notes.append("every list: fp16 rounding only")
            if res["kind"] == "ivf" and run is not res["runs"][0] and run["nprobe"] == default_probe:
                continue  # the default again
            rows.append({
                "index": labels[path], "N": args.n, "storage": res["storage"], "nlist": res["nlist"],
                "nprobe": run["nprobe"], "first search s": res["first_s"],
                "ms/query batch": run["batch_ms"], "ms/query single": run["single_ms"],
                "recall@10 vs flat": (recall(run["ids"], ref) if (ref is not None and run["ids"] is not None)
                                      else None),
                "index MiB": res["index_bytes"] / 2**20, "RSS growth MiB": res["rss_growth_mib"],
                "peak RSS MiB": res["peak_mib"], "notes": ", ".join(notes),
            })
            print(rows[-1], flush=True)
    default_name = f"search_scale-{args.n}" if args.pool == "drive" else f"search_scale-{args.pool}-{args.n}"
    pool_words = "drive-like clustered" if args.pool == "drive" else "i.i.d. Gaussian"
    write_result(
        "search_scale", rows, name=args.name or default_name, args=args,
        notes=(f"{args.n} x {args.dim} {pool_words} vectors ({args.dtype} table); "
               f"{args.queries} query frame ids, k=10, the query frame left out; recall against the "
               "flat index's neighbours; 'first search s' builds the index (table read included); "
               "'RSS growth MiB' is the child's peak RSS during the first search minus its RSS "
               "before it (the Lance scan's read-ahead included); each index in its own process; "
               "FAISS threads: extra.omp_num_threads"),
        extra={"fill_s": fill_s, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    )


if __name__ == "__main__":
    main()
