"""Embedder quality and speed on a synthetic pool (a benchmark, not a test).

Usage::

    python -m benchmarks.embedders --workspace WS                       # checkpoint-free rows
    python -m benchmarks.embedders --workspace WS --checkpoint WS/checkpoints/NAME/last.pt

Protocol (``protocol`` section, the one the README quotes): the drives are split, in id order,
into **tuning** drives (the first ``--tuning-drives``, default a third; the tokenization ablation
and any other choice of a hyper-parameter may only look at these) and **report** drives (every
figure of the table). Pretraining is self-supervised on the whole pool, as a user would run it.
Metrics on the report drives, from :mod:`curate.embedding_eval`:

* ``revisit R@10``: retrieval that is not a training positive: the frames of OTHER drives at the
  same place (same shared map, within 5 m; pools generated with ``shared_maps``);
* linear probes (closed-form ridge, strength chosen by a 2-fold drive split of the tuning drives)
  trained on the tuning drives and scored on the report drives: class presence (accuracy / AUC),
  box counts (MAE), and the drive-level attributes time of day, weather and location (accuracy
  of the arg-max of a one-hot ridge);
* ``near-dup R@10`` (same drive within +-5 frames) is kept but is the pretraining's own temporal
  positive: it favours a temporally pretrained encoder by construction;
* every row is reported, the priors included (majority / chance / training mean), and the
  shipped defaults exactly as shipped (``create_embedder(name)`` without options, plus the
  checkpoint for the pretrained row).

Results go to ``benchmarks/results/<--name>-protocol.json`` (and ``-tokenization``,
``-speed``). The sections below describe the older kNN tables, still printed.

The workspace must hold the ingested pool (``curate ingest kitti DATA``) and its labels; the
checkpoint comes from ``curate pretrain`` (its ``embed_options`` -- the tokenization and
preprocessing it was trained with -- are read from the checkpoint). Prints four tables:

1. **quality** of each embedder on every frame of the pool:

   * *cross-drive kNN accuracy* (k=10, cosine on centred vectors, majority vote) of frame
     attributes -- dominant object class, object-count bucket, time of day, weather, location --
     where the neighbours of a frame are taken only from **other drives**. Consecutive frames of
     one drive are near-duplicates that share every attribute, so allowing them would let any
     embedder that recognises its own drive look perfect (table 2 shows that leaky variant);
   * *drive* accuracy (leave-one-out, same drive allowed: can the vector tell which drive a frame
     comes from) and *near-dup R@10*: recall at 10 of the frames of the same drive within +-5
     frame indices (the query excluded);
   * rows: pretrained recon-tiny (``svm``, ``finetune`` and the layout-keeping ``svm-bev``
     features, grid ``--bev-grid``), the same architecture with
     random weights (same tokenization), ``bev-hist`` (hand-crafted bird's-eye occupancy
     histogram), EfficientNet-Lite0 on the front camera (the frozen teacher features cached by
     pretraining, if present), a fused vector (pretrained svm + bev-hist, each centred and
     L2-normalised, concatenated), and the majority-class prior;
2. the leaky leave-one-out kNN (same drive allowed) for comparison;
3. **tokenization** ablation on a subset of drives: quality and frames/s of the pretrained and
   the random-init tiny encoder at several ``(num_points, num_group)``;
4. **speed**: frames/s and peak RSS of recon tiny / small / base, each in a fresh child process
   (so peak RSS is that model's own) with 1 and 2 torch threads (``--threads``), at the
   pretraining tokenization (= the embedder default) and any other ``--tokenizations``; the
   load average is printed next to every row (the machine is shared).

kNN uses FAISS exact inner product (``IndexFlatIP``) on L2-normalised vectors: memory
O(N * (k + largest drive)), no N x N matrix; its neighbours are checked against a numpy
brute-force reference on the first rows. Numbers depend on the load of the machine; compare rows
of one run only.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds benchmarks/selectors.py, which would shadow the standard-library module
# ``selectors`` (used by subprocess and asyncio) when this file is run as a script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import collections
import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence

import faiss
import numpy as np
import torch

import curate
from benchmarks.results_io import write_result
from curate import embedding_eval as E
from curate.sources.pointcloud import read_points
from embedders import create_embedder
from embedders.base import validate_clouds
from embedders.models.recon import FEATURES, feature_dim, pool_features, random_projection

logger = logging.getLogger(__name__)

K = 10
NEAR = 5
#: project_dim of the recon embedders' default svm-bev output
PROJECT_DIM = 1024
ATTRIBUTES = ("dominant class", "count bucket", "time of day", "weather", "location")
TEACHER_TABLE = "emb_pretrain-teacher-efficientnet-lite0"
#: drive-level attributes probed linearly
PROBE_ATTRIBUTES = ("time of day", "weather", "location")
REVISIT_RADIUS_M = 5.0


# --------------------------------------------------------------------------------------------
# data


def frame_attributes(ws: curate.Workspace, ids: list[str]) -> dict[str, np.ndarray]:
    """Per-frame labels of ``ids``: attributes plus ``drive`` and ``_frame`` (frame index)."""
    table = ws.frames(columns=["id", "scene", "frame_index", "time_of_day", "weather", "location",
                               "extra"])
    rows = {r["id"]: r for r in table.to_pylist()}
    extra = {i: json.loads(rows[i]["extra"] or "{}") for i in ids}
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for box in ws.boxes(ids, labeled_only=False).to_pylist():
        if box["type"] != "DontCare":
            counts[box["frame_id"]][box["type"]] += 1
    dominant = [counts[i].most_common(1)[0][0] if counts[i] else "none" for i in ids]
    classes = sorted({c for i in ids for c in counts[i]})
    total = np.array([sum(counts[i].values()) for i in ids])
    return {
        "dominant class": np.array(dominant),
        "count bucket": np.digitize(total, [3, 6, 10]).astype(str),
        "time of day": np.array([str(rows[i]["time_of_day"]) for i in ids]),
        "weather": np.array([str(rows[i]["weather"]) for i in ids]),
        "location": np.array([str(rows[i]["location"]) for i in ids]),
        "drive": np.array([rows[i]["scene"] for i in ids]),
        "_frame": np.array([rows[i]["frame_index"] for i in ids], dtype=np.int64),
        "_map": np.array([str(extra[i].get("map", "")) for i in ids], dtype=object),
        "_map_position": np.array([float(extra[i].get("map_position_m", np.nan)) for i in ids]),
        "_counts": np.array([[counts[i][c] for c in classes] for i in ids], dtype=np.float64),
    }


def load_clouds(ws: curate.Workspace, ids: list[str]) -> list[np.ndarray]:
    """Raw ``(N, 4)`` clouds of ``ids`` (read once, reused by every embedder)."""
    table = ws.frames(columns=["id", "lidar_path"])
    path = dict(zip(table["id"].to_pylist(), table["lidar_path"].to_pylist()))
    return [read_points(path[i]) for i in ids]


# --------------------------------------------------------------------------------------------
# metrics


def _normalised(vectors: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    x = np.ascontiguousarray(x - x.mean(axis=0), dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest other rows by cosine of centred vectors, ``(N, k)``.

    FAISS exact search; the first 64 rows are checked against numpy brute force (similarities
    must agree; ties may be ordered differently). Memory O(N * k).
    """
    x = _normalised(vectors)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    scores, found = index.search(x, k + 1)
    probe = min(64, len(x))
    reference = np.sort(x[:probe] @ x.T, axis=1)[:, ::-1][:, : k + 1]
    if not np.allclose(reference, scores[:probe], atol=1e-4):
        raise RuntimeError("FAISS neighbours disagree with the numpy brute-force reference")
    # drop the query itself (normally column 0; exact duplicates may swap places)
    out = np.empty((len(x), k), dtype=np.int64)
    for row in range(len(x)):
        others = found[row][found[row] != row]
        out[row] = others[:k]
    return out


def _vote(labels: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    return np.array([collections.Counter(labels[row]).most_common(1)[0][0] for row in chosen])


def quality(vectors: np.ndarray, attrs: dict[str, np.ndarray]) -> dict[str, float]:
    """Cross-drive and leaky kNN accuracy per attribute, drive accuracy, near-dup recall@10.

    Keys: ``"<attribute>"`` (cross-drive), ``"<attribute> (loo)"`` (same drive allowed),
    ``"drive"`` and ``"near-dup R@10"``.
    """
    drive, frame = attrs["drive"], attrs["_frame"]
    largest = max(collections.Counter(drive).values())
    if len(drive) <= K + largest:
        raise SystemExit(f"kNN quality needs more than k + largest drive = {K + largest} frames "
                         f"to find {K} neighbours from other drives; got {len(drive)}")
    near = neighbours(vectors, K + largest)  # guarantees >= K neighbours from other drives
    same = drive[near] == drive[:, None]
    cross = np.empty((len(near), K), dtype=np.int64)
    for row in range(len(near)):
        cross[row] = near[row][~same[row]][:K]
    loo = near[:, :K]
    out: dict[str, float] = {}
    for name in ATTRIBUTES:
        labels = attrs[name]
        out[name] = float((_vote(labels, cross) == labels).mean())
        out[name + " (loo)"] = float((_vote(labels, loo) == labels).mean())
    out["drive"] = float((_vote(drive, loo) == drive).mean())
    gap = np.abs(frame[loo] - frame[:, None])
    hits = ((drive[loo] == drive[:, None]) & (gap <= NEAR)).sum(axis=1)
    positives = np.zeros(len(drive), dtype=np.int64)
    for d in np.unique(drive):
        rows = np.flatnonzero(drive == d)
        f = frame[rows]
        positives[rows] = (np.abs(f[:, None] - f[None, :]) <= NEAR).sum(axis=1) - 1
    valid = positives > 0
    out["near-dup R@10"] = float((hits[valid] / np.minimum(positives[valid], K)).mean())
    return out


def majority(attrs: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy of always answering the most frequent value (the prior)."""
    out: dict[str, float] = {}
    for name in ATTRIBUTES:
        share = collections.Counter(attrs[name]).most_common(1)[0][1] / len(attrs[name])
        out[name] = out[name + " (loo)"] = share
    out["drive"] = collections.Counter(attrs["drive"]).most_common(1)[0][1] / len(attrs["drive"])
    out["near-dup R@10"] = float("nan")
    return out


# --------------------------------------------------------------------------------------------
# embedding


def embed(model: str, clouds: Sequence[np.ndarray], **options) -> tuple[np.ndarray, float]:
    """Vectors of ``clouds`` and seconds of the embed call (model construction excluded)."""
    embedder = create_embedder(model, **options)
    start = time.perf_counter()
    vectors = embedder.embed(list(clouds))
    return vectors, time.perf_counter() - start


def embed_all_features(
    clouds: Sequence[np.ndarray], bev_grid: int, **options
) -> tuple[dict[str, np.ndarray], float]:
    """Every pooled feature of a recon-tiny encoder from one forward pass per batch.

    Same preprocessing, batching and pooling as :meth:`ReconEmbedder.embed` with
    ``feature="svm"``, ``"finetune"``, ``"cls"`` and ``"svm-bev"`` (grid ``bev_grid``, projected
    to 1024 dims like the embedder default), computed once:
    returns ``({feature: vectors}, seconds)``.
    """
    embedder = create_embedder("recon-tiny", feature="svm", bev_grid=bev_grid, **options)
    checked = validate_clouds(list(clouds))
    num_points = embedder.preprocess_config.num_points
    width = embedder.model_config.trans_dim
    # svm-bev is projected like the embedder's default output (project_dim 1024)
    raw = feature_dim("svm-bev", width, bev_grid)
    projection = random_projection(raw, PROJECT_DIM) if raw > PROJECT_DIM else None
    out = {f: np.empty((len(checked), feature_dim(f, width, bev_grid)), np.float32)
           for f in FEATURES}
    if projection is not None:
        out["svm-bev"] = np.empty((len(checked), projection.shape[1]), np.float32)
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(checked), embedder.max_batch):
            chunk = checked[first : first + embedder.max_batch]
            points = np.empty((len(chunk), num_points, 3), dtype=np.float32)
            for offset, cloud in enumerate(chunk):
                points[offset] = embedder.preprocessor(cloud, first + offset)
            neighbourhoods, centers = embedder.model.group_divider(torch.from_numpy(points))
            tokens = embedder.model.forward_patches(neighbourhoods, centers)
            for feature, array in out.items():
                pooled = pool_features(
                    tokens, feature, centers=centers, bev_grid=bev_grid,
                    half_extent=embedder.grid_half_extent,
                ).float()
                if projection is not None and feature == "svm-bev":
                    pooled = pooled @ projection
                array[first : first + len(chunk)] = pooled.numpy()
    return out, time.perf_counter() - start


def fused(*parts: np.ndarray) -> np.ndarray:
    """Concatenation of centred, L2-normalised parts (equal weight per part)."""
    return np.concatenate([_normalised(p) for p in parts], axis=1)


def _uptime() -> str:
    """1, 5 and 15 minute load averages (the machine is shared: timings depend on them)."""
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def speed_worker(args: argparse.Namespace) -> None:
    """Child process: embed ``--speed-frames`` clouds with one model, print JSON."""
    ws = curate.connect(args.workspace)
    ids = sorted(str(i) for i in ws.store.ids("samples"))[: args.speed_frames]
    clouds = load_clouds(ws, ids)
    options = json.loads(args.worker_options)
    torch.set_num_threads(args.worker_threads)
    embedder = create_embedder(args.worker, **options)
    embedder.embed(clouds[:2])  # warm-up
    start = time.perf_counter()
    embedder.embed(clouds)
    seconds = time.perf_counter() - start
    print(json.dumps({"fps": len(clouds) / seconds, "peak_mb": _vm_hwm_mb(), "dim": embedder.dim,
                      "threads": torch.get_num_threads()}))


def run_speed(args: argparse.Namespace, model: str, options: dict, threads: int = 1) -> dict:
    """Frames/s and peak RSS of ``model`` in a fresh child process using ``threads`` threads."""
    command = [
        sys.executable, os.path.abspath(__file__), "--workspace", args.workspace,
        "--checkpoint", args.checkpoint[0], "--speed-frames", str(args.speed_frames),
        "--worker", model, "--worker-options", json.dumps(options),
        "--worker-threads", str(threads),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"speed worker {model} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# tables


def _print_quality(title: str, results: dict, keys: list[str], extra: dict[str, str]) -> None:
    print(f"\n{title}")
    header = f"{'embedder':46s}" + "".join(f"{k[:14]:>15s}" for k in keys)
    header += "".join(f"{k:>10s}" for k in next(iter(extra.values())).keys()) if extra else ""
    print(header)
    for label, scores in results.items():
        cells = "".join(f"{scores[k]:15.3f}" for k in keys)
        more = "".join(f"{v:>10s}" for v in extra.get(label, {}).values()) if extra else ""
        print(f"{label:46s}{cells}{more}")


def _print_ratios(results: dict, keys: list[str], row: str, peers: list[str]) -> None:
    for peer in peers:
        if peer not in results or row not in results:
            continue
        cells = "".join(
            f"{results[row][k] / results[peer][k]:15.2f}" if results[peer][k] > 0 else f"{'-':>15s}"
            for k in keys
        )
        print(f"{'ratio ' + row.replace('recon-tiny ', '') + ' / ' + peer:46s}{cells}")


def _parse_options(text: str) -> dict:
    """``"a=1,b=x"`` -> ``{"a": 1, "b": "x"}`` (ints, then floats, else strings)."""
    out: dict = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        for kind in (int, float):
            try:
                out[key.strip()] = kind(value)
                break
            except ValueError:
                continue
        else:
            out[key.strip()] = value.strip()
    return out


def split_tuning_report(drive: np.ndarray, tuning_drives: int) -> np.ndarray:
    """Mask of the tuning rows: the first ``tuning_drives`` drives in id order (default a third).

    The session-3 ablation chose the embedder defaults on the first 1000 of 3000 frames (the
    first 25 of 75 drives), so on that pool the default split keeps them out of the report.
    """
    drives = sorted(set(drive.tolist()))
    n = tuning_drives or max(1, len(drives) // 3)
    if not 1 <= n < len(drives):
        raise SystemExit(f"--tuning-drives must leave report drives: {n} of {len(drives)} drives")
    tuning = set(drives[:n])
    return np.array([d in tuning for d in drive.tolist()])


def protocol(args: argparse.Namespace, ws: curate.Workspace, ids: list[str], attrs: dict,
             clouds: list[np.ndarray], runs: list) -> list[dict]:
    """The honest protocol (see the module docstring): rows for the shipped defaults and priors."""
    is_tune = split_tuning_report(attrs["drive"], args.tuning_drives)
    report = ~is_tune
    rows_meta: dict[str, dict] = {}
    vectors: dict[str, np.ndarray] = {}

    def add(label: str, model: str, **options) -> None:
        v, seconds = embed(model, clouds, **options)
        vectors[label] = v
        rows_meta[label] = {"dim": v.shape[1], "frames/s": len(clouds) / seconds}
        logger.warning("%s: %d frames in %.1f s", label, len(clouds), seconds)

    for label, path, _ in runs:
        add(f"recon-tiny pretrained {label} (shipped default)", "recon-tiny", checkpoint=path)
    torch.manual_seed(0)
    add("recon-tiny random-init (shipped default)", "recon-tiny")
    add("bev-hist (shipped default)", "bev-hist")
    if ws.store.has_table(TEACHER_TABLE):
        have, teacher = ws.store.read_vectors(TEACHER_TABLE, ids=ids)
        if len(have) == len(ids):
            vectors["effnet-lite0 camera (pretraining teacher)"] = teacher
            rows_meta["effnet-lite0 camera (pretraining teacher)"] = {"dim": teacher.shape[1],
                                                                      "frames/s": None}
    first = next(iter(vectors))
    label = f"fused: {first.split(' (')[0]} + bev-hist"
    vectors[label] = fused(vectors[first], vectors["bev-hist (shipped default)"])
    rows_meta[label] = {"dim": vectors[label].shape[1], "frames/s": None}

    has_maps = bool((attrs["_map"] != "").all())
    metrics, values, notes = E.evaluate_vectors(
        {k: v[report] for k, v in vectors.items()}, attrs["drive"][report], attrs["_frame"][report],
        place=attrs["_map"][report] if has_maps else None,
        position=attrs["_map_position"][report] if has_maps else None,
        k=K, window=NEAR, revisit_radius=REVISIT_RADIUS_M)
    notes = [n for n in notes if not n.startswith("probes skipped")]  # the probes are run below
    for note in notes:
        print(f"note: {note}")
    dcode = np.unique(attrs["drive"], return_inverse=True)[1].ravel()
    out: list[dict] = []
    prior_row: dict = {"embedder": "prior (majority / chance / training mean)", "dim": None,
                       "frames/s": None}
    for label, v in vectors.items():
        x = E.unit_rows(v)
        row = {"embedder": label, **rows_meta[label]}
        if has_maps:
            row[f"revisit R@{K}"] = values[label][f"revisit R@{K}"]
            prior_row[f"revisit R@{K}"] = None
        row[f"other-drive share@{K}"] = values[label][f"other-drive share@{K}"]
        row[f"near-dup R@{K} (training positive)"] = values[label][f"near-dup R@{K}"]
        mine, base = E.probes(x, attrs["_counts"], dcode, is_tune, seed=0)
        row.update({"presence acc": mine.presence_acc, "presence AUC": mine.presence_auc,
                    "count MAE": mine.count_mae})
        prior_row.update({f"other-drive share@{K}": None, f"near-dup R@{K} (training positive)": None,
                          "presence acc": base.presence_acc, "presence AUC": 0.5,
                          "count MAE": base.count_mae})
        for name in PROBE_ATTRIBUTES + ("dominant class", "count bucket"):
            acc, prior, _ = E.class_probe(x, attrs[name], dcode, is_tune, seed=0)
            row[f"probe {name}"] = acc
            prior_row[f"probe {name}"] = prior
        out.append(row)
    out.append(prior_row)
    columns = list(out[0].keys())
    print(f"\nprotocol: {int(is_tune.sum())} tuning frames ({len(set(attrs['drive'][is_tune]))} "
          f"drives), {int(report.sum())} report frames ({len(set(attrs['drive'][report]))} drives)")
    print("  ".join(f"{c[:12]:>12s}" for c in columns[1:]) + "  embedder")
    for row in out:
        print("  ".join(f"{'-':>12s}" if row.get(c) is None else f"{row[c]:12.3f}"
                        for c in columns[1:]) + "  " + row["embedder"])
    write_result(
        "embedders", out, name=f"{args.name}-protocol", args=args, columns=columns,
        notes=(f"report drives only; probes trained on the tuning drives (first "
               f"{len(set(attrs['drive'][is_tune]))} drives in id order); revisit = other drives "
               f"on the same map within {REVISIT_RADIUS_M} m; near-dup is the pretraining's own "
               f"positive (+-{NEAR} frames)"),
        extra={"frames": len(ids), "drives": len(set(attrs["drive"])),
               "tuning_drives": sorted(set(attrs["drive"][is_tune].tolist())),
               "report_frames": int(report.sum()), "notes": notes,
               "checkpoints": [path for _, path, _ in runs]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="pretrained checkpoint; repeat to compare several runs in one table "
                        "(rows are labelled by run folder and step; the first one is the "
                        "reference for the random-init rows, the ablation and the speed table)")
    parser.add_argument("--embed-options", default="",
                        help="comma list key=value (ints/floats/strings) overriding every "
                        "checkpoint's embed_options, e.g. num_points=2048,num_group=128, to compare "
                        "runs at one tokenization")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N frames (0 = all)")
    parser.add_argument("--speed-frames", type=int, default=32)
    parser.add_argument("--ablation-drives", type=int, default=15,
                        help="drives (all their frames) used by the tokenization ablation")
    parser.add_argument("--ablation", default="1024/32,1024/64,2048/64,4096/128,8192/256",
                        help="comma list of num_points/num_group for the ablation")
    parser.add_argument("--ablation-weights", default="pretrained,random")
    parser.add_argument("--tokenizations", default="pretrain,8192/256",
                        help="speed-table tokenizations: 'pretrain' (the checkpoint's) or P/G")
    parser.add_argument("--sections", default="protocol",
                        help="comma list of sections to run: protocol (the README's table), "
                        "quality (older kNN tables), ablation (tokenization, tuning drives only), "
                        "speed; quality, ablation and speed need --checkpoint")
    parser.add_argument("--skip", default="", help="comma list of sections to skip")
    parser.add_argument("--tuning-drives", type=int, default=0,
                        help="the first N drives (id order) are tuning drives; default a third")
    parser.add_argument("--name", default="embedders",
                        help="result name prefix (benchmarks/results/NAME-protocol.json, ...)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-options", help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--bev-grid", type=int, default=8,
                        help="grid cells per side of the svm-bev feature")
    parser.add_argument("--threads", default="1,2",
                        help="comma list of torch thread counts for the speed table")
    args = parser.parse_args()
    if args.worker:
        speed_worker(args)
        return
    sections = set(filter(None, args.sections.split(","))) - set(filter(None, args.skip.split(",")))
    skip = {"quality", "ablation", "speed", "protocol"} - sections
    if not args.checkpoint and sections & {"quality", "ablation", "speed"}:
        raise SystemExit("sections quality, ablation and speed need --checkpoint")
    torch.manual_seed(0)
    ws = curate.connect(args.workspace)
    runs = []  # (label, checkpoint path, embed options)
    for path in args.checkpoint:
        state = torch.load(path, map_location="cpu", weights_only=True)
        run = Path(path).resolve().parent.name
        runs.append((f"{run}@{state.get('step')}", path,
                     {**state["curate"]["embed_options"], **_parse_options(args.embed_options)}))
    _, first_checkpoint, options = runs[0] if runs else (None, None, {})
    ids = sorted(str(i) for i in ws.store.ids("samples"))
    if args.limit:
        ids = ids[: args.limit]
    attrs = frame_attributes(ws, ids)
    start = time.perf_counter()
    clouds = load_clouds(ws, ids)
    print(f"pool: {len(ids)} frames, {len(set(attrs['drive']))} drives, "
          f"{np.mean([len(c) for c in clouds]):.0f} points/frame on average "
          f"(read in {time.perf_counter() - start:.1f} s); checkpoints "
          + ", ".join(f"{label} ({path})" for label, path, _ in runs)
          + f"; embed_options {options}; torch threads {torch.get_num_threads()}")
    if "protocol" not in skip:
        protocol(args, ws, ids, attrs, clouds, runs)
    keys_cross = list(ATTRIBUTES) + ["drive", "near-dup R@10"]
    keys_loo = [a + " (loo)" for a in ATTRIBUTES]

    if "quality" not in skip:
        results: dict[str, dict[str, float]] = {}
        extra: dict[str, dict[str, str]] = {}
        vectors: dict[str, np.ndarray] = {}
        settings = [("pretrained" if len(runs) == 1 else label,
                     {"checkpoint": path, **run_options}) for label, path, run_options in runs]
        settings.append(("random", dict(options)))
        for weights, opts in settings:
            features, seconds = embed_all_features(clouds, args.bev_grid, **opts)
            for feature, v in features.items():
                label = f"recon-tiny {weights} ({feature})"
                vectors[label] = v
                results[label] = quality(v, attrs)
                extra[label] = {"dim": str(v.shape[1]), "frames/s": f"{len(ids) / seconds:.1f}"}
            logger.warning("recon-tiny %s done in %.1f s", weights, seconds)
        v, seconds = embed("bev-hist", clouds)
        vectors["bev-hist"] = v
        results["bev-hist"] = quality(v, attrs)
        extra["bev-hist"] = {"dim": str(v.shape[1]), "frames/s": f"{len(ids) / seconds:.1f}"}
        if ws.store.has_table(TEACHER_TABLE):
            have, teacher = ws.store.read_vectors(TEACHER_TABLE, ids=ids)
            if len(have) == len(ids):
                label = "effnet-lite0 camera (96x320)"
                vectors[label] = teacher
                results[label] = quality(teacher, attrs)
                extra[label] = {"dim": str(teacher.shape[1]), "frames/s": "cached"}
        first = settings[0][0]
        label = f"fused: {first} svm + bev-hist"
        v = fused(vectors[f"recon-tiny {first} (svm)"], vectors["bev-hist"])
        results[label] = quality(v, attrs)
        extra[label] = {"dim": str(v.shape[1]), "frames/s": "-"}
        results["majority-class prior"] = majority(attrs)
        extra["majority-class prior"] = {"dim": "-", "frames/s": "-"}
        _print_quality(
            f"1. quality on {len(ids)} frames: attribute columns = kNN (k={K}) accuracy with "
            f"neighbours from OTHER drives only (leakage-free); drive = leave-one-out kNN drive "
            f"id; near-dup R@10 = recall@10 of same-drive frames within +-{NEAR} indices",
            results, keys_cross, extra,
        )
        for weights, _ in settings[:-1]:
            for feature in FEATURES:
                row = f"recon-tiny {weights} ({feature})"
                _print_ratios(results, keys_cross, row,
                              [f"recon-tiny random ({feature})", "bev-hist"])
        _print_quality(
            f"2. leaky variant: leave-one-out kNN (k={K}) accuracy, neighbours from the SAME drive "
            "allowed (near-duplicates inflate it)",
            results, keys_loo, {},
        )
        write_result("embedders", [{"embedder": label, **extra[label], **scores}
                                   for label, scores in results.items()],
                     name=f"{args.name}-knn", args=args,
                     notes="older kNN protocol on every frame (no tuning/report split): attribute "
                     "columns = cross-drive kNN vote; '(loo)' = same drive allowed")

    if "ablation" not in skip:
        # hyper-parameters are tuned on tuning drives only (see the protocol)
        is_tune = split_tuning_report(attrs["drive"], args.tuning_drives)
        drives = set(sorted(set(attrs["drive"][is_tune].tolist()))[: args.ablation_drives])
        rows = np.flatnonzero([d in drives for d in attrs["drive"].tolist()])
        ablation_rows: list[dict] = []
        sub_attrs = {k: v[rows] for k, v in attrs.items()}
        sub_clouds = [clouds[r] for r in rows]
        print(f"\n3. tokenization ablation on {len(rows)} frames ({len(drives)} drives), svm "
              f"feature; pretraining used num_points={options['num_points']}, "
              f"num_group={options['num_group']}; 'mean attr' = mean cross-drive kNN accuracy "
              f"over {len(ATTRIBUTES)} attributes")
        print(f"{'weights':12s}{'num_points':>11s}{'num_group':>10s}{'mean attr':>11s}"
              f"{'dominant':>10s}{'count':>8s}{'drive':>8s}{'near-dup':>10s}{'frames/s':>10s}")
        settings = [tuple(int(v) for v in item.split("/")) for item in args.ablation.split(",")]
        for points, groups in settings:
            for weights in args.ablation_weights.split(","):
                opts = {**options, "num_points": points, "num_group": groups}
                if weights == "pretrained":
                    opts["checkpoint"] = first_checkpoint
                v, seconds = embed("recon-tiny", sub_clouds, **opts)
                s = quality(v, sub_attrs)
                mean_attr = float(np.mean([s[a] for a in ATTRIBUTES]))
                print(f"{weights:12s}{points:11d}{groups:10d}{mean_attr:11.3f}"
                      f"{s['dominant class']:10.3f}{s['count bucket']:8.3f}{s['drive']:8.3f}"
                      f"{s['near-dup R@10']:10.3f}{len(rows) / seconds:10.1f}", flush=True)
                ablation_rows.append({"weights": weights, "num_points": points, "num_group": groups,
                                      "mean attr": mean_attr, **{a: s[a] for a in ATTRIBUTES},
                                      "drive": s["drive"], "near-dup R@10": s["near-dup R@10"],
                                      "frames/s": len(rows) / seconds})
        write_result("embedders", ablation_rows, name=f"{args.name}-tokenization", args=args,
                     notes=f"tuning drives only: {len(rows)} frames of {len(drives)} drives; kNN "
                     f"(k={K}) cross-drive attribute accuracy")

    if "speed" not in skip:
        print(f"\n4. speed on CPU, {args.speed_frames} frames after a 2-frame warm-up, each model "
              "in a fresh process; peak RSS = the child's VmHWM (includes torch, ~300 MB); "
              f"uptime before: {_uptime()}")
        print(f"{'model':12s}{'num_points':>11s}{'num_group':>10s}{'threads':>8s}{'dim':>6s}"
              f"{'frames/s':>10s}{'peak RSS MB':>13s}{'fps vs tiny':>13s}{'load avg':>10s}")
        tokenizations = [
            (options["num_points"], options["num_group"]) if item == "pretrain"
            else tuple(int(v) for v in item.split("/"))
            for item in args.tokenizations.split(",")
        ]
        thread_counts = [int(v) for v in args.threads.split(",")]
        speed_rows: list[dict] = []
        for points, groups in tokenizations:
            for threads in thread_counts:
                tiny = None
                for size in ("tiny", "small", "base"):
                    r = run_speed(args, f"recon-{size}",
                                  {**options, "num_points": points, "num_group": groups}, threads)
                    tiny = tiny or r["fps"]
                    print(f"{'recon-' + size:12s}{points:11d}{groups:10d}{threads:8d}{r['dim']:6d}"
                          f"{r['fps']:10.2f}{r['peak_mb']:13.0f}{r['fps'] / tiny:13.2f}"
                          f"{_uptime().split()[0]:>10s}", flush=True)
                    speed_rows.append({"model": f"recon-{size}", "num_points": points,
                                       "num_group": groups, "threads": threads, "dim": r["dim"],
                                       "frames/s": r["fps"], "peak RSS MB": r["peak_mb"],
                                       "load": float(_uptime().split()[0])})
        for threads in thread_counts:
            r = run_speed(args, "bev-hist", {}, threads)
            print(f"{'bev-hist':12s}{'-':>11s}{'-':>10s}{threads:8d}{r['dim']:6d}{r['fps']:10.2f}"
                  f"{r['peak_mb']:13.0f}{'-':>13s}{_uptime().split()[0]:>10s}")
            speed_rows.append({"model": "bev-hist", "num_points": None, "num_group": None,
                               "threads": threads, "dim": r["dim"], "frames/s": r["fps"],
                               "peak RSS MB": r["peak_mb"], "load": float(_uptime().split()[0])})
        write_result("embedders", speed_rows, name=f"{args.name}-speed", args=args,
                     notes=f"{args.speed_frames} frames after a 2-frame warm-up, each model in a "
                     "fresh process; peak RSS = the child's VmHWM")
        print(f"uptime after: {_uptime()}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    main()
