"""The high-signal loop setting's parts: the synthetic ``loop`` scan preset and the evaluation's
option to ignore ground truth the detector cannot see (outside its range, too few points)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import curate
from curate.errors import InvalidInputError
from curate.loop.evaluate import evaluate_predictions, ground_truth_annotations
from curate.loop.infos import count_points_in_boxes
from curate.scores_table import FramePrediction
from curate.sources.calib import read_calibration
from curate.sources.kitti import KittiSource
from curate.sources.pointcloud import read_points
from curate.sources.synthetic import PRESETS, generate
from curate.labels_import import boxes_by_frame
from curate.sources.base import Box3D


def test_loop_preset_is_denser_deterministic_and_leaves_defaults_alone(tmp_path: Path) -> None:
    small = generate(tmp_path / "small", 3, seed=3, small=True, progress=False)
    dense = generate(tmp_path / "dense", 3, seed=3, preset="loop", progress=False)
    again = generate(tmp_path / "again", 3, seed=3, preset="loop", progress=False)
    # same drives and labels, 5-7x the points of the small scan
    assert dense.boxes_per_class["Car"] > 0
    assert dense.points_per_frame > 4 * small.points_per_frame
    scan = PRESETS["loop"]
    assert dense.points_per_frame < scan.beams * scan.azimuth_steps
    for a, b in zip(sorted((tmp_path / "dense" / "training" / "velodyne").iterdir()),
                    sorted((tmp_path / "again" / "training" / "velodyne").iterdir())):
        assert a.read_bytes() == b.read_bytes()
    # small images, the preset recorded; the default config carries no preset key
    cfg = json.loads((tmp_path / "dense" / "synthetic_config.json").read_text())
    assert cfg["preset"] == "loop" and cfg["small"] is True
    assert "preset" not in json.loads((tmp_path / "small" / "synthetic_config.json").read_text())


def test_unknown_preset_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown synthetic preset 'dense'.*loop"):
        generate(tmp_path / "x", 2, preset="dense", progress=False)
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("signal")
    generate(root / "kitti", 12, seed=2, preset="loop", frames_per_drive=4, progress=False)
    ws = curate.connect(root / "ws")
    ws.ingest(KittiSource(root / "kitti"), progress=False)
    return ws


def _perfect(ws, ids, keep) -> list[FramePrediction]:
    """Predictions equal to the ground-truth Cars (LiDAR frame, bottom centre) that ``keep``
    accepts (``keep(lidar_box, n_points)``)."""
    boxes = boxes_by_frame(ws.boxes(ids, labeled_only=False))
    rows = {r["id"]: r for r in ws.frames(ids=ids, columns=["id", "calib_path", "lidar_path"]).to_pylist()}
    out = []
    for fid in ids:
        cars = [Box3D(type=b["type"], truncated=b["truncated"], occluded=b["occluded"], alpha=b["alpha"],
                      bbox=tuple(b["bbox"]), dimensions=tuple(b["dimensions"]), location=tuple(b["location"]),
                      rotation_y=b["rotation_y"]) for b in boxes.get(fid, []) if b["type"] == "Car"]
        lidar = read_calibration(rows[fid]["calib_path"]).boxes_to_lidar(cars)
        n = count_points_in_boxes(read_points(rows[fid]["lidar_path"]), lidar) if len(cars) else np.zeros(0)
        sel = np.array([keep(b, k) for b, k in zip(lidar, n)], dtype=bool)
        chosen = lidar[sel] if len(cars) else np.zeros((0, 7))
        chosen = chosen.copy()
        chosen[:, 2] -= chosen[:, 5] / 2  # centre -> bottom centre
        m = len(chosen)
        out.append(FramePrediction(frame_id=fid, boxes=chosen, labels=np.zeros(m, dtype=np.int64),
                                   scores=np.linspace(0.9, 0.5, m), probs=np.ones((m, 1)), classes=("Car",)))
    return out


def test_ground_truth_the_detector_cannot_see_is_ignored(pool) -> None:
    ws = pool
    ids = [str(i) for i in ws.store.ids("samples")]
    region = (0.0, -10.0, 25.0, 10.0)  # tighter than the tiny detector's, so some moderate cars fall out

    def inside(b, n):
        return region[0] <= b[0] < region[2] and region[1] <= b[1] < region[3]

    plain = ground_truth_annotations(ws, ids)
    filtered = ground_truth_annotations(ws, ids, region=region, min_points=5)
    n_plain = sum(int(((a["name"] == "Car") & (a["occluded"] < 3)).sum()) for a in plain)
    n_filtered = sum(int(((a["name"] == "Car") & (a["occluded"] < 3)).sum()) for a in filtered)
    assert 0 < n_filtered < n_plain  # some labelled cars are far or nearly pointless
    # same frames, same boxes and classes: only the occlusion of the hidden ones changes
    assert [list(a["name"]) for a in plain] == [list(a["name"]) for a in filtered]

    # a detector that finds exactly the visible cars: perfect under the filter, not without it.
    # KITTI AP40 samples recall at 40 points through the thresholds of the matched scores, so
    # with n < 41 valid boxes a perfect detector reaches (n - 1) / 40 (the official code's cap)
    preds = _perfect(ws, ids, lambda b, n: inside(b, n) and n >= 5)
    full = evaluate_predictions(ws, preds, classes=["Car"])
    seen = evaluate_predictions(ws, preds, classes=["Car"], region=region, min_points=5)
    n_seen = seen.num_gt[("Car", "moderate")]
    n_full = full.num_gt[("Car", "moderate")]
    assert 0 < n_seen < n_full
    assert seen.ap("bev", "Car", "moderate") == pytest.approx(100.0 * min(40, n_seen - 1) / 40, abs=1e-6)
    assert full.ap("bev", "Car", "moderate") < 100.0 * min(40, n_full - 1) / 40 - 1e-6
    # detections of the hidden cars do not count against the detector either
    preds_all = _perfect(ws, ids, lambda b, n: True)
    assert evaluate_predictions(ws, preds_all, classes=["Car"], region=region, min_points=5).ap(
        "bev", "Car", "moderate") == pytest.approx(seen.ap("bev", "Car", "moderate"), abs=1e-6)
    assert evaluate_predictions(ws, preds_all, classes=["Car"]).ap("bev", "Car", "moderate") == pytest.approx(
        100.0 * min(40, n_full - 1) / 40, abs=1e-6)
    with pytest.raises(InvalidInputError, match="region"):
        ground_truth_annotations(ws, ids, region=(0.0, 1.0))
