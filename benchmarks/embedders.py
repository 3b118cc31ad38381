"""Embedder quality and speed on a synthetic pool (a benchmark, not a test).

Usage::

    python benchmarks/embedders.py --workspace /tmp/curate-bench/ws \
        --checkpoint /tmp/curate-bench/ws/checkpoints/bench-tiny/last.pt

The workspace must hold the ingested pool (``curate ingest kitti DATA``); the checkpoint comes
from ``curate pretrain`` (its ``embed_options`` are read from the checkpoint). Prints:

1. quality: kNN (k=10, cosine, leave-one-out, majority vote) accuracy of frame attributes
   (dominant class, object-count bucket, drive, location, time of day) and near-duplicate
   retrieval (fraction of the 10 neighbours that are frames of the same drive within +-5 frames)
   for the pretrained tiny encoder, the same architecture with random weights, ``bev-hist`` and
   the image embedder (``effnet-lite0``) when registered; ratio against random weights;
2. speed: frames per second and peak RSS growth for recon tiny / small / base at the pretraining
   tokenization;
3. tokenization: quality and speed of the pretrained encoder at other (num_points, num_group).

kNN uses FAISS inner product on L2-normalised vectors (O(N*k) memory, no N x N matrix).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import resource
import time
from pathlib import Path

import faiss
import numpy as np
import torch

import curate
from embedders import create_embedder, list_embedders

logger = logging.getLogger(__name__)

K = 10


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def frame_attributes(ws: curate.Workspace, ids: list[str]) -> dict[str, np.ndarray]:
    """Per-frame labels: dominant class, count bucket, drive, location, time of day."""
    rows = {r["id"]: r for r in ws.frames(columns=["id", "scene", "frame_index", "location",
                                                    "time_of_day"]).to_pylist()}
    boxes = ws.boxes(ids, labeled_only=False).to_pylist()
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for box in boxes:
        if box["type"] != "DontCare":
            counts[box["frame_id"]][box["type"]] += 1
    dominant = [counts[i].most_common(1)[0][0] if counts[i] else "none" for i in ids]
    total = np.array([sum(counts[i].values()) for i in ids])
    bucket = np.digitize(total, [3, 8, 15])
    return {
        "dominant class": np.array(dominant),
        "count bucket": bucket.astype(str),
        "drive": np.array([rows[i]["scene"] for i in ids]),
        "location": np.array([rows[i]["location"] for i in ids]),
        "time of day": np.array([rows[i]["time_of_day"] for i in ids]),
        "_frame": np.array([rows[i]["frame_index"] for i in ids]),
    }


def knn_scores(vectors: np.ndarray, attrs: dict[str, np.ndarray]) -> dict[str, float]:
    """Leave-one-out kNN accuracy per attribute and near-duplicate retrieval rate."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    x = x - x.mean(axis=0)
    faiss.normalize_L2(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, neighbours = index.search(x, K + 1)
    neighbours = neighbours[:, 1:]
    out = {}
    for name, labels in attrs.items():
        if name.startswith("_"):
            continue
        votes = labels[neighbours]
        predicted = np.array([collections.Counter(row).most_common(1)[0][0] for row in votes])
        out[name] = float((predicted == labels).mean())
    drive, frame = attrs["drive"], attrs["_frame"]
    near = (drive[neighbours] == drive[:, None]) & (np.abs(frame[neighbours] - frame[:, None]) <= 5)
    out["near-dup@10"] = float(near.mean())
    return out


def embed_all(ws: curate.Workspace, name: str, model: str, **options) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    ws.embed(model, name=name, progress=False, **options)
    seconds = time.perf_counter() - start
    ids, vectors = ws.store.read_vectors(f"emb_{name}")
    return vectors, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--speed-frames", type=int, default=32)
    args = parser.parse_args()
    ws = curate.connect(args.workspace)
    state = torch.load(args.checkpoint, weights_only=True)
    options = dict(state["curate"]["embed_options"])
    ids = sorted(str(i) for i in ws.store.ids("samples"))
    attrs = frame_attributes(ws, ids)

    candidates = {
        "recon-tiny pretrained": ("recon-tiny", {"checkpoint": args.checkpoint, **options}),
        "recon-tiny random": ("recon-tiny", dict(options)),
        "bev-hist": ("bev-hist", {}),
    }
    if "effnet-lite0" in list_embedders():
        candidates["effnet-lite0 (image)"] = ("effnet-lite0", {})
    results = {}
    for label, (model, opts) in candidates.items():
        name = "bench-" + label.split(" ")[0] + ("-ssl" if "pretrained" in label else "-rand" if "random" in label else "")
        vectors, seconds = embed_all(ws, name, model, **opts)
        order = np.argsort(ws.store.read_vectors(f"emb_{name}")[0])
        results[label] = (knn_scores(vectors[order], attrs), seconds)
    metrics = list(next(iter(results.values()))[0])
    print(f"\nkNN (k={K}) quality on {len(ids)} frames (ratio vs recon-tiny random in brackets)")
    print(f"{'embedder':24s}" + "".join(f"{m:>16s}" for m in metrics) + f"{'embed s':>10s}")
    base = results["recon-tiny random"][0]
    for label, (scores, seconds) in results.items():
        cells = "".join(f"{scores[m]:7.3f} ({scores[m] / max(base[m], 1e-9):4.2f})" for m in metrics)
        print(f"{label:24s}{cells}{seconds:10.1f}")

    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4)
              for p in ws.frames(columns=["lidar_path"]).column("lidar_path").to_pylist()[: args.speed_frames]]
    print(f"\nspeed on CPU ({torch.get_num_threads()} threads), {args.speed_frames} frames, "
          f"num_points={options['num_points']}, num_group={options['num_group']}")
    print(f"{'model':12s}{'frames/s':>10s}{'peak RSS MB':>13s}{'ratio vs tiny':>15s}")
    tiny_fps = None
    for size in ("tiny", "small", "base"):
        emb = create_embedder(f"recon-{size}", **options)
        emb.embed(clouds[:2])
        start = time.perf_counter()
        emb.embed(clouds)
        fps = len(clouds) / (time.perf_counter() - start)
        tiny_fps = tiny_fps or fps
        print(f"{'recon-' + size:12s}{fps:10.2f}{_rss_mb():13.0f}{fps / tiny_fps:15.2f}")

    print("\ntokenization (pretrained tiny): quality and speed")
    print(f"{'num_points':>10s}{'num_group':>10s}{'drive':>8s}{'near-dup':>10s}{'frames/s':>10s}")
    for points, groups in ((1024, 32), (2048, 64), (4096, 128)):
        opts = {**options, "checkpoint": args.checkpoint, "num_points": points, "num_group": groups}
        vectors, seconds = embed_all(ws, f"bench-tok-{points}-{groups}", "recon-tiny", **opts)
        scores = knn_scores(vectors[np.argsort(ws.store.read_vectors(f"emb_bench-tok-{points}-{groups}")[0])], attrs)
        print(f"{points:10d}{groups:10d}{scores['drive']:8.3f}{scores['near-dup@10']:10.3f}"
              f"{len(ids) / seconds:10.2f}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
