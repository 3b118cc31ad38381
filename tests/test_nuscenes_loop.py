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
