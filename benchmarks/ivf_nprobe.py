"""IVF search: recall@10 and query time of the default ``nprobe`` against exact search.

Run from the repository root::

    python -m benchmarks.ivf_nprobe --n 100000 --dim 64       # ~2 min on 2 cores

On two pools, drive-like clustered vectors (:func:`benchmarks.scale.drive_vectors`) and
structureless i.i.d. Gaussian vectors (the worst case for IVF), one IVF-Flat index with the default
``nlist`` is searched for 10 neighbours of 500 held-out queries at several ``nprobe`` values:
the default of :func:`index.vectors.default_nprobe`, the earlier default ``nlist / 8`` and a few
fixed ones. Peer: exact search (:func:`index._exact.exact_knn`), which gives the recall reference and
its own query time. Results: ``benchmarks/results/ivf_nprobe-<n>.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--probes", default="8,16,32,64")
    args = ap.parse_args(argv)

    from benchmarks.results_io import write_result
    from benchmarks.scale import drive_vectors
    from index._exact import exact_knn
    from index.vectors import VectorIndex, default_nlist, default_nprobe

    rows = []
    n, q = args.n, args.queries
    pools = {
        "drive-like clustered": drive_vectors(n + q, args.dim, seed=5),
        "iid gaussian": np.random.default_rng(5).standard_normal((n + q, args.dim)).astype(np.float32),
    }
    for name, data in pools.items():
        order = np.random.default_rng(6).permutation(n + q)
        base, queries = data[order[:n]], data[order[n:]]
        t = time.perf_counter()
        _, ref = exact_knn(base, queries, 10, "l2")
        exact_s = time.perf_counter() - t
        rows.append({"pool": name, "N": n, "nlist": None, "nprobe": "exact (peer)",
                     "recall@10": 1.0, "ms/query": 1000 * exact_s / q, "notes": ""})
        t = time.perf_counter()
        index = VectorIndex.build(base, kind="ivf", device="cpu", seed=0)
        build_s = time.perf_counter() - t
        nlist = index.nlist
        probes = sorted({int(p) for p in args.probes.split(",")} | {default_nprobe(nlist),
                        int(math.ceil(nlist / 8))})
        for p in probes:
            index.nprobe = min(p, nlist)
            t = time.perf_counter()
            _, got = index.search(queries, 10)
            s = time.perf_counter() - t
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), ref.tolist())]))
            note = []
            if p == default_nprobe(nlist):
                note.append("default")
            if p == int(math.ceil(nlist / 8)):
                note.append("earlier default nlist/8")
            rows.append({"pool": name, "N": n, "nlist": nlist, "nprobe": p, "recall@10": recall,
                         "ms/query": 1000 * s / q,
                         "notes": ", ".join(note) + f" (index build {build_s:.1f} s)"})
            print(rows[-1], flush=True)
    write_result("ivf_nprobe", rows, name=f"ivf_nprobe-{n}", args=args,
                 notes="recall@10 against exact search on 500 held-out queries")


if __name__ == "__main__":
    main()
