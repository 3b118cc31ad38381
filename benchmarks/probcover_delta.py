"""ProbCover's ``delta="auto"`` on drive-like vectors: the purity rule alone vs capped by ball size.

Run from the repository root::

    python -m benchmarks.probcover_delta              # ~3 min on 2 cores

Pools from :func:`benchmarks.scale.drive_vectors` (drives of 200 frames around 64 scene types,
runs of near-duplicates) with a 1% budget. ``max_ball`` is chosen on the tuning split (seed 11)
by the mean distance from every row to its nearest pick (how well the picks represent the pool:
lower is better) and then reported on the test split (seed 12) with every other value. Peer:
random selection (same budget, same seed) and the purity rule alone (``max_ball=None``, the
earlier default). Also reported: scene types and drives hit by a pick, ``coverage`` (fraction of
rows within delta of a pick), graph edges (memory: 4 bytes each, twice with the reverse graph).
Results: ``benchmarks/results/probcover_delta.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FRAMES_PER_DRIVE = 200
MODES = 64


def scene_types(n: int, seed: int) -> np.ndarray:
    """Scene type of every row of ``drive_vectors(n, seed=seed)`` (its first per-drive draw)."""
    drives = (n + FRAMES_PER_DRIVE - 1) // FRAMES_PER_DRIVE
    per_drive = np.array([np.random.default_rng([seed, 2, d]).integers(MODES) for d in range(drives)])
    return np.repeat(per_drive, FRAMES_PER_DRIVE)[:n]


def nearest_pick_distance(xn: np.ndarray, picks: np.ndarray, block: int = 4096) -> np.ndarray:
    """Distance from every row to its nearest pick (chunked, O(N * picks * d))."""
    c = xn[picks]
    cn = (c * c).sum(1)
    out = np.empty(len(xn), dtype=np.float64)
    for s in range(0, len(xn), block):
        q = xn[s:s + block]
        d2 = (q * q).sum(1)[:, None] - 2 * q @ c.T + cn[None, :]
        out[s:s + block] = np.sqrt(np.maximum(d2.min(1), 0))
    return out


def evaluate(x: np.ndarray, seed: int, method: str, max_ball, budget: int) -> dict:
    from curate.selectors import ProbCover
    from curate.selectors.random import Random as RandomSelector
    from curate.selectors.probcover import normalize_rows

    t = time.perf_counter()
    if method == "random":
        sel = RandomSelector().select(x, budget, seed=0)
    else:
        sel = ProbCover(max_ball=max_ball, index_kind="flat").select(x, budget, seed=0)
    seconds = time.perf_counter() - t
    xn = normalize_rows(x)
    picks = np.asarray(sel.indices)
    dist = nearest_pick_distance(xn, picks)
    types = scene_types(len(x), seed)
    info = sel.info
    return {
        "split": None, "rule": method if method == "random" else
        ("purity only" if max_ball is None else f"max_ball={max_ball}"),
        "max_ball": max_ball, "delta": info.get("delta"), "delta_purity": info.get("delta_purity"),
        "mean dist to nearest pick": float(dist.mean()), "p95 dist": float(np.quantile(dist, 0.95)),
        "scene types hit": int(np.unique(types[picks]).size),
        "scene types present": int(np.unique(types).size),
        "drives hit": int(np.unique(picks // FRAMES_PER_DRIVE).size),
        "coverage": info.get("coverage"), "fallbacks": info.get("fallbacks"),
        "graph edges": info.get("graph_edges"), "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--budget-frac", type=float, default=0.01)
    ap.add_argument("--max-balls", default="8,16,32,64,128")
    args = ap.parse_args(argv)

    from benchmarks.results_io import write_result
    from benchmarks.scale import drive_vectors

    budget = max(1, int(round(args.budget_frac * args.n)))
    values = [int(v) for v in args.max_balls.split(",")]
    rows = []
    for split, seed in (("tuning", 11), ("test", 12)):
        x = drive_vectors(args.n, args.dim, seed=seed, frames_per_drive=FRAMES_PER_DRIVE,
                          modes=MODES)
        for method, mb in [("random", None), ("probcover", None)] + [("probcover", v) for v in values]:
            r = evaluate(x, seed, method, mb, budget)
            r["split"] = split
            rows.append(r)
            print(r, flush=True)
    tuning = [r for r in rows if r["split"] == "tuning" and r["max_ball"] is not None]
    best = min(tuning, key=lambda r: r["mean dist to nearest pick"])["max_ball"]
    for r in rows:
        r["chosen on tuning"] = r["max_ball"] == best
    write_result("probcover_delta", rows, name="probcover_delta", args=args,
                 extra={"chosen_max_ball": best, "budget": budget},
                 notes="max_ball chosen on the tuning split (seed 11) by mean distance to the "
                       "nearest pick; test split seed 12")
    print("chosen max_ball on the tuning split:", best)


if __name__ == "__main__":
    main()
