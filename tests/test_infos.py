"""mmdet3d v2 info pkls written from a workspace."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import NotFoundError
from curate.loop.infos import KITTI_CATEGORIES, count_points_in_boxes, kitti_difficulty, read_info_pkl, write_info_pkl
from curate.sources.calib import read_calibration
from curate.sources.kitti import parse_label_file


def test_info_pkl_layout_and_content(ws, tmp_path):
    ids = [str(i) for i in ws.store.ids("samples")][:4]
    ws.label(ids[:2])
    out = write_info_pkl(ws, ids, tmp_path / "infos.pkl")
    data = read_info_pkl(out)
    assert data["metainfo"]["categories"] == KITTI_CATEGORIES
    assert [d["curate_id"] for d in data["data_list"]] == ids
    first = data["data_list"][0]
    row = ws.frames(ids=[ids[0]]).to_pylist()[0]
    assert first["lidar_points"]["lidar_path"] == row["lidar_path"]
    calib = read_calibration(row["calib_path"])
    np.testing.assert_allclose(np.array(first["images"]["CAM2"]["lidar2cam"]), calib.velo_to_rect_matrix())
    labels = parse_label_file(row["label_path"])
    assert len(first["instances"]) == len(labels)
    for inst, box in zip(first["instances"], labels):
        h, w, l = box.dimensions
        assert inst["bbox_3d"] == pytest.approx([*box.location, l, h, w, box.rotation_y], abs=1e-5)
        assert inst["bbox_label_3d"] == KITTI_CATEGORIES.get(box.type, -1)
    # visible cars near the sensor have points inside their boxes
    cars = [i for i in first["instances"] if i["bbox_label_3d"] == 2]
    assert cars and max(i["num_lidar_pts"] for i in cars) > 10
    # unlabeled frames carry no instances when labeled_only (training)
    assert all(not d["instances"] for d in data["data_list"][2:])
    val = read_info_pkl(write_info_pkl(ws, ids[2:], tmp_path / "val.pkl", labeled_only=False))
    assert any(d["instances"] for d in val["data_list"])


def test_info_pkl_unknown_id_writes_nothing(ws, tmp_path):
    with pytest.raises(NotFoundError, match="not frames"):
        write_info_pkl(ws, ["no-such-frame"], tmp_path / "x.pkl")
    assert not (tmp_path / "x.pkl").exists()


def test_difficulty_and_point_count_against_bruteforce():
    diff = kitti_difficulty([45, 30, 30, 20, 45], [0, 1, 2, 0, 0], [0.1, 0.2, 0.4, 0.0, 0.6])
    assert diff.tolist() == [0, 1, 2, -1, -1]
    rng = np.random.default_rng(0)
    pts = rng.uniform(-5, 5, (2000, 4))
    boxes = np.array([[0.5, -0.5, 0.2, 3.0, 1.5, 2.0, 0.7], [2, 2, 0, 1, 1, 1, 0.0]])
    got = count_points_in_boxes(pts, boxes)
    for k, (x, y, z, l, w, h, yaw) in enumerate(boxes):
        n = 0
        for p in pts:  # brute force: rotate each point into the box frame
            dx, dy = p[0] - x, p[1] - y
            u = dx * np.cos(-yaw) - dy * np.sin(-yaw)
            v = dx * np.sin(-yaw) + dy * np.cos(-yaw)
            n += abs(u) <= l / 2 and abs(v) <= w / 2 and abs(p[2] - z) <= h / 2
        assert got[k] == n
