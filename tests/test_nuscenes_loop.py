"""The active-learning loop on a synthetic nuScenes-format pool, through the CLI.

CenterPoint-tiny (nuScenes classes, ProbCenterHead, 2 sweeps) for 2 rounds on 16 samples (4
scenes of 4, 16-beam LiDAR), evaluated per round with the nuScenes metric (mAP, NDS). About two
minutes on 2 cores. Skips without the mmdet3d stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import curate
from curate.cli import main

pytest.importorskip("mmdet3d")
pytest.importorskip("nuscenes")

CLASSES = ["car", "truck", "bus", "bicycle", "pedestrian"]


def test_two_round_centerpoint_loop_on_nuscenes_pool(tmp_path: Path) -> None:
    data, ws_dir = tmp_path / "data", tmp_path / "ws"
    w = ["--workspace", str(ws_dir)]
    assert main(["synth", "--out", str(data), "--frames", "16", "--small", "--format", "nuscenes",
                 "--frames-per-drive", "4", "--seed", "1"]) == 0
    assert main(["ingest", "nuscenes", str(data), *w]) == 0
    assert main(["embed", "--model", "bev-hist", "--name", "bev", *w]) == 0
    config = {
        "name": "nus", "embedding": "bev", "strategy": "kcenter", "initial": 3, "budget": 2, "rounds": 2,
        "detector": "centerpoint-tiny-nus", "detector_options": {"epochs": 1, "score_thr": 0.01},
        "classes": CLASSES, "val_where": "split = 'synthetic_val'",
    }
    (tmp_path / "loop.json").write_text(json.dumps(config))
    assert main(["loop", "--config", str(tmp_path / "loop.json"), *w]) == 0

    ws = curate.connect(ws_dir)
    rounds = ws.runs("loop")
    assert len(rounds) == 2
    val = {f["id"] for f in ws.frames(where="split = 'synthetic_val'", columns=["id"]).to_pylist()}
    for r in rounds:
        metrics = r.info["metrics"]
        ap = metrics["ap"]
        assert ap["metric"] == "nuscenes"
        assert 0.0 <= ap["mAP"] <= 1.0 and 0.0 <= ap["NDS"] <= 1.0
        assert metrics["map_3d"] == pytest.approx(100 * ap["mAP"])
        assert set(ap["class_ap"]) >= set(CLASSES)
        assert not set(r.ids) & val
    assert rounds[1].info["labeled_frames"] == 5
    # the pool's predictions keep a per-class score vector per box (ProbCenterHead), over the
    # loop's nuScenes classes
    from curate.scores_table import read_predictions

    preds = read_predictions(ws.store, rounds[-1].info["score_run"])
    assert preds and all(tuple(p.classes) == tuple(CLASSES) for p in preds)
    boxes = sum(len(p.labels) for p in preds)
    assert boxes > 0
    for p in preds:
        assert p.probs.shape == (len(p.labels), len(CLASSES))
        # a box's score is its class's entry of the vector
        if len(p.labels):
            np.testing.assert_allclose(p.probs[np.arange(len(p.labels)), p.labels], p.scores, rtol=1e-4, atol=1e-5)
    # the validation predictions carry CenterPoint's velocity (LiDAR frame) into the nuScenes
    # metric: predicting again from the last round's checkpoint gives the stored NDS
    import dataclasses

    from curate.loop.evaluate import evaluate_predictions
    from curate.loop.mm3d import MMDet3DDetector

    last = rounds[-1]
    round_dir = next(p for p in Path(last.info["checkpoints"][0]).parents if p.name.startswith("round-"))
    det = MMDet3DDetector("centerpoint-tiny-nus", classes=CLASSES, epochs=1, score_thr=0.01)
    assert det.predicts_velocity
    val_preds = det.predict(round_dir / "val_infos.pkl", last.info["checkpoints"], seed=0)
    assert sum(len(p.labels) for p in val_preds) > 0
    for p in val_preds:
        assert p.extra["velocity"].shape == (len(p.labels), 2) and np.isfinite(p.extra["velocity"]).all()
    again = evaluate_predictions(ws, val_preds)
    assert again.nds == pytest.approx(last.info["metrics"]["ap"]["NDS"], abs=1e-9)
    still = evaluate_predictions(ws, [dataclasses.replace(p, extra={}) for p in val_preds])
    assert still.map == pytest.approx(again.map, abs=1e-9)
    if again.summary["tp_errors"]["vel_err"] < 1.0:  # boxes matched: their velocities are scored
        assert still.tp_errors["vel_err"] != pytest.approx(again.tp_errors["vel_err"], abs=1e-6)


def test_nus_config_inherits_and_overrides_every_range() -> None:
    """centerpoint-tiny-nus is written as differences from centerpoint-tiny (mmengine _base_):
    every nested use of the range and the pillar size must carry the nuScenes values, and only
    its head predicts a trained velocity (what the loop passes to the nuScenes metric)."""
    from curate.loop.mm3d.configs import config_file, detector_config
    from curate.loop.mm3d.detector import predicts_velocity

    assert "_base_" in config_file("centerpoint-tiny-nus").read_text()
    nus, kitti = detector_config("centerpoint-tiny-nus"), detector_config("centerpoint-tiny")
    found: dict[str, list] = {"point_cloud_range": [], "voxel_size": [], "pc_range": []}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in found:
                    found[key].append(list(value))
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk({"model": nus.model, "train": nus.train_pipeline, "test": nus.test_pipeline})
    rng, vox = list(nus.point_cloud_range), list(nus.voxel_size)
    assert rng != list(kitti.point_cloud_range) and vox != list(kitti.voxel_size)
    assert len(found["point_cloud_range"]) >= 6 and all(v == rng for v in found["point_cloud_range"])
    assert all(v in (vox, vox[:2]) for v in found["voxel_size"]) and len(found["voxel_size"]) >= 4
    assert found["pc_range"] and all(v == rng[:2] for v in found["pc_range"])
    grid = [int(round((rng[3] - rng[0]) / vox[0])), int(round((rng[4] - rng[1]) / vox[1]))]
    assert list(nus.model["pts_middle_encoder"]["output_shape"]) == grid
    assert nus.model["pts_voxel_encoder"]["in_channels"] == 5
    # what the base keeps: the layers and the head's branches
    assert nus.model["pts_backbone"] == kitti.model["pts_backbone"]
    assert nus.model["pts_bbox_head"]["common_heads"] == kitti.model["pts_bbox_head"]["common_heads"]
    assert predicts_velocity(nus.model.to_dict() if hasattr(nus.model, "to_dict") else dict(nus.model))
    assert not predicts_velocity(kitti.model.to_dict() if hasattr(kitti.model, "to_dict") else dict(kitti.model))
