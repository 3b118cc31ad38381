"""Ingest speed of nuScenes-format pools: tables only, files stat-ed, never read.

Builds a nuScenes v1.0 table set of ``--samples`` key frames (scenes of 40 samples, 20 annotated
actors per scene, one sweep between key frames, six cameras), whose sample_data all point at the
files of a tiny ray-cast data set (``curate synth --format nuscenes``), then measures:

* ``curate NuScenesSource``: reading the tables and building every FrameRecord (boxes in the
  LiDAR frame, sweeps, cameras; files stat-ed);
* ``curate ingest``: the same plus the upsert into a workspace (LanceDB);
* peer ``devkit NuScenes + get_sample_data``: the official devkit loading the same tables and
  giving every sample's boxes in the LiDAR frame (``nusc.get_sample_data(lidar token)``).

Run: ``python -m benchmarks.nuscenes_ingest --samples 10000`` (writes
``benchmarks/results/nuscenes_ingest.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.results_io import write_result


def _token(*parts: Any) -> str:
    import hashlib

    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def build_tables(root: Path, version: str, samples: int, per_scene: int = 40, actors: int = 20) -> None:
    """Rewrite ``root/version``'s tables to ``samples`` samples reusing the existing files."""
    tdir = root / version
    base = {t: json.loads((tdir / f"{t}.json").read_text()) for t in ("sample_data", "calibrated_sensor", "sensor",
                                                                         "category", "attribute", "visibility", "map")}
    channel_of = {s["token"]: s["channel"] for s in base["sensor"]}
    cs_of_channel = {channel_of[c["sensor_token"]]: c["token"] for c in base["calibrated_sensor"]}
    key_file = {channel_of[next(c for c in base["calibrated_sensor"] if c["token"] == sd["calibrated_sensor_token"])["sensor_token"]]: sd
                for sd in base["sample_data"] if sd["is_key_frame"]}
    sweep_file = next(sd for sd in base["sample_data"] if not sd["is_key_frame"])
    car = next(c["token"] for c in base["category"] if c["name"] == "vehicle.car")
    moving = next(a["token"] for a in base["attribute"] if a["name"] == "vehicle.moving")
    tables: dict[str, list] = {t: [] for t in ("scene", "sample", "sample_data", "ego_pose", "sample_annotation",
                                                "instance", "log")}
    n_scenes = math.ceil(samples / per_scene)
    t0 = 1_600_000_000_000_000
    for s in range(n_scenes):
        n = min(per_scene, samples - s * per_scene)
        name = f"scene-{s:05d}"
        log = _token("log", s)
        tables["log"].append({"token": log, "logfile": name, "vehicle": "v", "date_captured": "2024-01-01",
                              "location": "downtown"})
        sample_tokens = [_token("sample", s, k) for k in range(n)]
        prev_lidar = ""
        inst_chain: dict[int, list] = {a: [] for a in range(actors)}
        for k, st in enumerate(sample_tokens):
            ts = t0 + (s * per_scene + k) * 100_000
            tables["sample"].append({"token": st, "timestamp": ts, "prev": sample_tokens[k - 1] if k else "",
                                     "next": sample_tokens[k + 1] if k + 1 < n else "", "scene_token": _token("scene", s)})
            x = 10.0 * k
            for kind, ch, dt in (("sweep", "LIDAR_TOP", -50_000), ("key", "LIDAR_TOP", 0)):
                sd = _token("sd", s, k, kind)
                tables["ego_pose"].append({"token": sd, "timestamp": ts + dt, "rotation": [1.0, 0.0, 0.0, 0.0],
                                           "translation": [x + dt / 1e5, 0.0, 0.0]})
                src = sweep_file if kind == "sweep" else key_file[ch]
                tables["sample_data"].append({
                    "token": sd, "sample_token": st, "ego_pose_token": sd, "calibrated_sensor_token": cs_of_channel[ch],
                    "timestamp": ts + dt, "fileformat": "pcd", "is_key_frame": kind == "key", "height": 0, "width": 0,
                    "filename": src["filename"], "prev": prev_lidar, "next": ""})
                if prev_lidar:
                    tables["sample_data"][-2]["next"] = sd
                prev_lidar = sd
            for ch in ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT"):
                sd = _token("sd", s, k, ch)
                tables["ego_pose"].append({"token": sd, "timestamp": ts, "rotation": [1.0, 0.0, 0.0, 0.0],
                                           "translation": [x, 0.0, 0.0]})
                tables["sample_data"].append({
                    "token": sd, "sample_token": st, "ego_pose_token": sd, "calibrated_sensor_token": cs_of_channel[ch],
                    "timestamp": ts, "fileformat": "jpg", "is_key_frame": True, "height": key_file[ch]["height"],
                    "width": key_file[ch]["width"], "filename": key_file[ch]["filename"], "prev": "", "next": ""})
            for a in range(actors):
                ann = _token("ann", s, k, a)
                chain = inst_chain[a]
                tables["sample_annotation"].append({
                    "token": ann, "sample_token": st, "instance_token": _token("inst", s, a), "visibility_token": "4",
                    "attribute_tokens": [moving], "translation": [x + 5.0 * a - 40.0, 3.0 * (a % 5) - 6.0, 0.8],
                    "size": [1.8, 4.2, 1.5], "rotation": [math.cos(0.1 * a), 0.0, 0.0, math.sin(0.1 * a)],
                    "prev": chain[-1] if chain else "", "next": "", "num_lidar_pts": 10, "num_radar_pts": 0})
                chain.append(ann)
        by = {r["token"]: r for r in tables["sample_annotation"][-n * actors:]}
        for a, chain in inst_chain.items():
            for p, q in zip(chain[:-1], chain[1:]):
                by[p]["next"] = q
            tables["instance"].append({"token": _token("inst", s, a), "category_token": car, "nbr_annotations": len(chain),
                                       "first_annotation_token": chain[0], "last_annotation_token": chain[-1]})
        tables["scene"].append({"token": _token("scene", s), "log_token": log, "nbr_samples": n,
                                "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                                "name": name, "description": "night, rain"})
    base["map"][0]["log_tokens"] = [r["token"] for r in tables["log"]]
    for t, rows in {**tables, "map": base["map"]}.items():
        (tdir / f"{t}.json").write_text(json.dumps(rows))
    (tdir / "splits.json").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--skip-devkit", action="store_true", help="Do not time the devkit peer.")
    args = parser.parse_args()
    import curate
    from curate.sources.nuscenes import NuScenesSource
    from curate.sources.synthetic_nuscenes import generate_nuscenes

    rows = []
    with tempfile.TemporaryDirectory(prefix="curate-nusc-bench-") as tmp:
        root = Path(tmp) / "data"
        generate_nuscenes(root, 2, small=True, frames_per_drive=2, progress=False)
        t = time.perf_counter()
        build_tables(root, "v1.0-mini", args.samples)
        print(f"tables for {args.samples} samples written in {time.perf_counter() - t:.1f} s")

        t, c = time.perf_counter(), time.process_time()
        src = NuScenesSource(root, version="v1.0-mini")
        t_tables = time.perf_counter() - t
        n_records = n_boxes = 0
        for record in src:  # streamed, as ingest and the devkit peer below consume them
            n_records += 1
            n_boxes += len(record.boxes)
        t_records = time.perf_counter() - t
        rows.append({"method": "curate NuScenesSource (tables + records)", "samples": n_records, "boxes": n_boxes,
                     "time s": t_records, "cpu s": time.process_time() - c, "tables s": t_tables})
        del src
        ws = curate.connect(Path(tmp) / "ws")
        t, c = time.perf_counter(), time.process_time()
        report = ws.ingest(NuScenesSource(root, version="v1.0-mini"), progress=False)
        rows.append({"method": "curate ingest (source + LanceDB upsert)", "samples": report.frames_seen,
                     "boxes": report.boxes_seen, "time s": time.perf_counter() - t, "cpu s": time.process_time() - c,
                     "tables s": None})
        if not args.skip_devkit:
            from nuscenes import NuScenes

            t, c = time.perf_counter(), time.process_time()
            nusc = NuScenes(version="v1.0-mini", dataroot=str(root), verbose=False)
            t_load = time.perf_counter() - t
            n = 0
            for sample in nusc.sample:
                _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
                n += len(boxes)
            rows.append({"method": "peer: devkit NuScenes + get_sample_data (boxes in LiDAR frame)",
                         "samples": len(nusc.sample), "boxes": n, "time s": time.perf_counter() - t,
                         "cpu s": time.process_time() - c, "tables s": t_load})
    for r in rows:
        print(f"{r['method']:<66} {r['samples']:>7} samples {r['boxes']:>8} boxes {r['time s']:8.1f} s "
              f"({r['cpu s']:.1f} s CPU)")
    path = write_result("nuscenes_ingest", rows, args=args,
                        notes="tables only (files stat-ed, not read); 8 sample_data per sample (key, 1 sweep, 6 cams), "
                              "20 annotations per sample; 'time s' is wall time, 'cpu s' this process's CPU time "
                              "(less sensitive to the machine's load, which load_avg records)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
