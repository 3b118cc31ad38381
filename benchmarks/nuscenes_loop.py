"""Wall time of a 2-round CenterPoint loop through the CLI on a synthetic nuScenes-format pool.

Stages (each a ``curate`` command in a subprocess): ``synth --format nuscenes``, ``ingest
nuscenes``, ``embed bev-hist`` with 2 sweeps, ``loop`` (``centerpoint-tiny-nus``, 2 rounds,
nuScenes mAP / NDS per round). Peer in the same run: the same pool size in KITTI format with
``centerpoint-tiny`` (KITTI AP per round).

Run: ``python -m benchmarks.nuscenes_loop --frames 48`` (writes
``benchmarks/results/nuscenes_loop.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.results_io import write_result


def _run(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "curate.cli", *args], check=True, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def one(kind: str, tmp: Path, frames: int, per_scene: int, initial: int, budget: int, epochs: int) -> dict:
    data, ws = tmp / f"{kind}-data", tmp / f"{kind}-ws"
    w = ["--workspace", str(ws)]
    times = {}
    fmt = ["--format", "nuscenes"] if kind == "nuscenes" else []
    times["synth s"] = _run("synth", "--out", str(data), "--frames", str(frames), "--small", *fmt,
                            "--frames-per-drive", str(per_scene), "--seed", "0")
    times["ingest s"] = _run("ingest", kind, str(data), *w)
    params = ["--param", "sweeps=2"] if kind == "nuscenes" else []
    times["embed s"] = _run("embed", "--model", "bev-hist", "--name", "bev", *params, *w)
    config = {"name": "bench", "embedding": "bev", "strategy": "kcenter", "initial": initial, "budget": budget,
              "rounds": 2, "detector_options": {"epochs": epochs}}
    if kind == "nuscenes":
        config.update(detector="centerpoint-tiny-nus", classes=["car", "truck", "bus", "bicycle", "pedestrian"],
                      val_where="split = 'synthetic_val'")
    else:
        config.update(detector="centerpoint-tiny")
    (tmp / f"{kind}.json").write_text(json.dumps(config))
    times["loop s"] = _run("loop", "--config", str(tmp / f"{kind}.json"), *w)
    import curate

    rounds = curate.connect(ws).runs("loop")
    last = rounds[-1].info["metrics"]
    return {"pool": kind, "frames": frames, **times, "total s": sum(times.values()),
            "mAP last round": last["map_3d"], "NDS last round": last["ap"].get("NDS")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--per-scene", type=int, default=8)
    parser.add_argument("--initial", type=int, default=8)
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="curate-nusc-loop-") as tmp:
        kinds = ["nuscenes"] + ([] if args.skip_peer else ["kitti"])
        for kind in kinds:
            row = one(kind, Path(tmp), args.frames, args.per_scene, args.initial, args.budget, args.epochs)
            print(row, flush=True)
            rows.append(row)
    path = write_result("nuscenes_loop", rows, args=args,
                        notes="2-round loop through the CLI, 16-beam synthetic scans; peer: KITTI-format pool, "
                              "centerpoint-tiny")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
