"""Detector-loop benchmark: tiny PointPillars training and pool prediction on CPU.

Prints one table: training time per iteration, prediction time per frame and peak memory of
``ProbAnchor3DHead`` (per-class scores of every NMS survivor kept) against the named peer,
mmdet3d's stock ``Anchor3DHead`` prediction (``model.test_step``) with the same weights, plus
a 2-model ensemble and 3 MC-dropout passes. Each measurement runs in a fresh child process;
``peak MiB`` is that child's ``VmHWM`` (imports included). Needs ``curate[mm3d]``.

    .venv/bin/python -m benchmarks.loop --frames 48 [--full]    (a module: benchmarks/selectors.py
    would shadow the standard library's selectors if run as a script)

Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def _vmhwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _prepare(root: Path, frames: int, full: bool) -> dict:
    import curate
    from curate.loop.infos import write_info_pkl
    from curate.loop.mm3d import MMDet3DDetector
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    generate(root / "kitti", frames, seed=0, small=not full, progress=False)
    ws = curate.connect(root / "ws")
    ws.ingest(KittiSource(root / "kitti"), progress=False)
    ids = [str(i) for i in ws.store.ids("samples")]
    n_train = max(4, frames // 3)
    ws.label(ids[:n_train])
    train = write_info_pkl(ws, ids[:n_train], root / "train.pkl")
    pool = write_info_pkl(ws, ids[n_train:], root / "pool.pkl", with_labels=False)
    det = MMDet3DDetector("pointpillars-tiny", epochs=2, batch_size=2, feat_dropout=0.2)
    start = time.perf_counter()
    a = det.train(train, root / "a", seed=1)
    train_s = time.perf_counter() - start
    b = det.train(train, root / "b", seed=2)
    return {"train": str(train), "pool": str(pool), "ckpt_a": a.checkpoint, "ckpt_b": b.checkpoint,
            "train_s": train_s, "iters": len(a.losses), "pool_frames": len(ids) - n_train}


def _child(mode: str, state: dict) -> dict:
    import torch
    from curate.loop.infos import read_info_pkl
    from curate.loop.mm3d import MMDet3DDetector

    det = MMDet3DDetector("pointpillars-tiny", feat_dropout=0.2)
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
    return {"seconds": seconds, "frames": n, "boxes": boxes, "peak_mib": _vmhwm_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--full", action="store_true", help="64-beam scans instead of the small 16-beam ones")
    parser.add_argument("--child", default=None)
    parser.add_argument("--state", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        print("RESULT" + json.dumps(_child(args.child, json.loads(Path(args.state).read_text()))))
        return
    with tempfile.TemporaryDirectory(prefix="curate-bench-loop-") as tmp:
        root = Path(tmp)
        state = _prepare(root, args.frames, args.full)
        (root / "state.json").write_text(json.dumps(state))
        rows = {}
        for mode in ("stock", "prob-head", "ensemble-2", "mc-dropout-3"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.loop", "--child", mode, "--state",
                                  str(root / "state.json")], capture_output=True, text=True, check=True,
                                 cwd=Path(__file__).resolve().parents[1])
            rows[mode] = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])
    scans = "64-beam" if args.full else "16-beam (small)"
    print(f"tiny PointPillars, {args.frames} synthetic {scans} frames, CPU")
    print(f"training: {state['iters']} iterations in {state['train_s']:.1f} s "
          f"({state['train_s'] / max(1, state['iters']):.2f} s/iter, 2 epochs)")
    base = rows["stock"]["seconds"]
    print(f"{'prediction over the pool':<28}{'frames':>7}{'boxes':>7}{'time s':>9}{'ms/frame':>10}{'peak MiB':>10}{'x stock':>9}")
    for mode, r in rows.items():
        print(f"{mode:<28}{r['frames']:>7}{r['boxes']:>7}{r['seconds']:>9.2f}"
              f"{1000 * r['seconds'] / max(1, r['frames']):>10.1f}{r['peak_mib']:>10.0f}{r['seconds'] / base:>9.2f}")


if __name__ == "__main__":
    main()
