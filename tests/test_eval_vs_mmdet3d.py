"""curate's KITTI AP against mmdet3d's own ``kitti_eval`` on the same annotations.

2-D AP runs mmdet3d's CPU (numba) path in process. mmdet3d's BEV / 3-D overlaps call a
``numba.cuda`` kernel (``rotate_iou_gpu_eval``); without a GPU they run under numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, a subprocess) on a smaller set. Numbers must agree to
float precision. Needs the ``mm3d`` extra.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curate.evaluation.kitti import empty_annotation, kitti_eval

pytest.importorskip("mmdet3d", reason="the mmdet3d stack is not installed (make mm3d)")

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["Car", "Pedestrian", "Cyclist", "Van", "Person_sitting", "DontCare", "Truck"]
CLASSES = ["Car", "Pedestrian", "Cyclist"]


def random_frames(n_frames: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Ground truth of every kind (hard, truncated, Van, DontCare) and jittered detections with
    clutter, misclassifications and tied scores."""
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(n_frames):
        n = int(rng.integers(0, 7))
        names = rng.choice(NAMES, n, p=[0.4, 0.2, 0.15, 0.08, 0.05, 0.07, 0.05])
        g = empty_annotation()
        g["name"] = names.astype(object)
        g["truncated"] = rng.choice([0.0, 0.1, 0.2, 0.4, 0.7], n)
        g["occluded"] = rng.integers(0, 3, n)
        g["alpha"] = rng.uniform(-3, 3, n)
        x1 = rng.uniform(0, 1000, n)
        y1 = rng.uniform(100, 250, n)
        h = rng.choice([20, 26, 30, 45, 80], n) + rng.uniform(-1, 1, n)
        g["bbox"] = np.stack([x1, y1, x1 + rng.uniform(20, 150, n), y1 + h], 1)
        dims = np.stack([rng.uniform(0.5, 4.5, n), rng.uniform(1.4, 1.9, n), rng.uniform(0.5, 2.0, n)], 1)
        g["dimensions"] = dims
        g["location"] = np.stack([rng.uniform(-15, 15, n), rng.uniform(1.4, 1.8, n), rng.uniform(5, 50, n)], 1)
        g["rotation_y"] = rng.uniform(-np.pi, np.pi, n)
        gts.append(g)
        keep = rng.random(n) < 0.8
        m, k = int(keep.sum()), int(rng.integers(0, 4))
        dn = [x if rng.random() > 0.1 else str(rng.choice(CLASSES)) for x in names[keep]]
        dn = [x if x not in ("DontCare", "Truck") else "Car" for x in dn] + list(rng.choice(CLASSES, k))
        d = empty_annotation(True)
        d["name"] = np.array(dn, dtype=object)
        cx = rng.uniform(0, 900, (k, 1))
        cy = rng.uniform(100, 250, (k, 1))
        d["bbox"] = np.concatenate([g["bbox"][keep] + rng.normal(0, 3.0, (m, 4)),
                                    np.concatenate([cx, cy, cx + 50, cy + rng.choice([20, 30, 50], (k, 1))], 1)])
        d["dimensions"] = np.concatenate([dims[keep] + rng.normal(0, 0.1, (m, 3)), rng.uniform(0.5, 4, (k, 3))])
        d["location"] = np.concatenate([
            g["location"][keep] + rng.normal(0, 0.25, (m, 3)),
            np.stack([rng.uniform(-15, 15, k), rng.uniform(1.4, 1.8, k), rng.uniform(5, 50, k)], 1),
        ])
        d["rotation_y"] = np.concatenate([g["rotation_y"][keep] + rng.normal(0, 0.1, m), rng.uniform(-3, 3, k)])
        d["alpha"] = np.full(m + k, -10.0)  # no AOS
        d["truncated"] = np.zeros(m + k)
        d["occluded"] = np.zeros(m + k, dtype=np.int64)
        d["score"] = np.round(rng.uniform(0.05, 1, m + k), 2)  # ties on purpose
        dts.append(d)
    return gts, dts


def _for_mmdet3d(annos: list[dict]) -> list[dict]:
    out = []
    for a in annos:
        b = {k: np.asarray(v) for k, v in a.items()}
        b["name"] = np.asarray([str(x) for x in a["name"]])
        out.append(b)
    return out


def _compare(ours: dict, theirs: dict) -> int:
    common = sorted(set(theirs) & set(ours))
    assert common, "no common AP keys"
    got = np.array([ours[k] for k in common])
    want = np.array([float(theirs[k]) for k in common])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=str(common))
    return len(common)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_2d_ap_equals_mmdet3d(seed):
    from mmdet3d.evaluation.functional.kitti_utils.eval import kitti_eval as mm_kitti_eval

    gts, dts = random_frames(60, seed)
    _, theirs = mm_kitti_eval(_for_mmdet3d(gts), _for_mmdet3d(dts), CLASSES, eval_types=["bbox"])
    ours = kitti_eval(gts, dts, classes=CLASSES, metrics=["bbox"]).to_dict()
    assert _compare(ours, theirs) >= 36
    assert any(v > 0 for k, v in ours.items() if "_2D_AP40_" in k)


def test_class_without_any_detection_equals_mmdet3d():
    """Ground truth of a class no detection claims (an untrained detector): AP 0, as mmdet3d."""
    from mmdet3d.evaluation.functional.kitti_utils.eval import kitti_eval as mm_kitti_eval

    gts, dts = random_frames(30, 4)
    for d in dts:
        keep = np.array([str(n) != "Cyclist" for n in d["name"]], dtype=bool)
        for k in d:
            d[k] = d[k][keep]
    assert any("Cyclist" in list(g["name"]) for g in gts)
    _, theirs = mm_kitti_eval(_for_mmdet3d(gts), _for_mmdet3d(dts), CLASSES, eval_types=["bbox"])
    result = kitti_eval(gts, dts, classes=CLASSES, metrics=["bbox"])
    assert _compare(result.to_dict(), theirs) >= 36
    assert result.num_gt[("Cyclist", "hard")] > 0 and result.ap("bbox", "Cyclist", "hard") == 0.0
    assert result.ap("bbox", "Car", "hard", strict=False) > 0


_CUDASIM = """
import json, pickle, sys
import numpy as np
from mmdet3d.evaluation.functional.kitti_utils.eval import kitti_eval
gts, dts, classes = pickle.load(open(sys.argv[1], "rb"))
_, ret = kitti_eval(gts, dts, classes, eval_types=["bev", "3d"])
print("RESULT" + json.dumps({k: float(v) for k, v in ret.items()}))
"""


def test_bev_3d_ap_equals_mmdet3d_under_cuda_simulator(tmp_path):
    gts, dts = random_frames(14, 3)
    path = tmp_path / "annos.pkl"
    path.write_bytes(pickle.dumps((_for_mmdet3d(gts), _for_mmdet3d(dts), CLASSES)))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = subprocess.run([sys.executable, "-c", _CUDASIM, str(path)], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][-1]
    theirs = json.loads(line[len("RESULT"):])
    ours = kitti_eval(gts, dts, classes=CLASSES, metrics=["bev", "3d"]).to_dict()
    assert _compare(ours, theirs) >= 72
    assert any(v > 0 for k, v in ours.items() if "_3D_AP40_" in k)
