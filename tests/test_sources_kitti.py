"""KITTI calibration, labels and the KittiSource reader on hand-built dataset folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from curate.errors import CorruptDataError, NotFoundError
from curate.sources.base import Box3D
from curate.sources.calib import Calibration, format_calibration, read_calibration, write_calibration
from curate.sources.kitti import (
    KittiSource,
    format_label_line,
    parse_label_file,
    parse_label_line,
    write_label_file,
)
from curate.sources.pointcloud import write_points_bin

# the calibration of KITTI object frame 000000 (2011_09_26)
CALIB_TEXT = """P0: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 0.000000000000e+00 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 0.000000000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 0.000000000000e+00
P1: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 -3.875744000000e+02 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 0.000000000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 0.000000000000e+00
P2: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 4.485728000000e+01 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 2.163791000000e-01 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 2.745884000000e-03
P3: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 -3.395242000000e+02 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 2.199936000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 2.729905000000e-03
R0_rect: 9.999239000000e-01 9.837760000000e-03 -7.445048000000e-03 -9.869795000000e-03 9.999421000000e-01 -4.278459000000e-03 7.402527000000e-03 4.351614000000e-03 9.999631000000e-01
Tr_velo_to_cam: 7.533745000000e-03 -9.999714000000e-01 -6.166020000000e-04 -4.069766000000e-03 1.480249000000e-02 7.280733000000e-04 -9.998902000000e-01 -7.631618000000e-02 9.998621000000e-01 7.523790000000e-03 1.480755000000e-02 -2.717806000000e-01
Tr_imu_to_velo: 9.999976000000e-01 7.553071000000e-04 -2.035826000000e-03 -8.086759000000e-01 -7.854027000000e-04 9.998898000000e-01 -1.482298000000e-02 3.195559000000e-01 2.024406000000e-03 1.482454000000e-02 9.998881000000e-01 -7.997231000000e-01
"""

LABEL_TEXT = """Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01
Car 0.88 3 -0.69 0.00 192.37 402.31 374.00 1.60 1.57 3.23 -2.70 1.74 3.68 -1.29
DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10
"""


@pytest.fixture()
def calib_file(tmp_path: Path) -> Path:
    path = tmp_path / "000000.txt"
    path.write_text(CALIB_TEXT)
    return path


# ---------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------


def test_calibration_parse_and_format_round_trip(calib_file: Path, tmp_path: Path) -> None:
    calib = read_calibration(calib_file)
    assert calib.P2[0, 3] == pytest.approx(44.85728)
    assert calib.R0_rect.shape == (3, 3) and calib.Tr_imu_to_velo is not None
    assert format_calibration(calib) == CALIB_TEXT
    again = read_calibration(write_calibration(tmp_path / "copy" / "c.txt", calib))
    for name in ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"):
        np.testing.assert_array_equal(getattr(again, name), getattr(calib, name))


def test_calibration_transforms_against_brute_force(calib_file: Path) -> None:
    calib = Calibration.from_file(calib_file)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-30, 30, size=(50, 3))
    pts[:, 0] = np.abs(pts[:, 0]) + 5.0  # in front of the car
    cam = calib.lidar_to_camera(pts)
    uv, depth = calib.project_to_image(cam, return_depth=True)
    for p, c, pix, z in zip(pts, cam, uv, depth):
        velo_h = np.append(p, 1.0)
        ref_cam = calib.R0_rect @ (calib.Tr_velo_to_cam @ velo_h)
        np.testing.assert_allclose(c, ref_cam, atol=1e-9)
        hom = calib.P2 @ np.append(ref_cam, 1.0)
        np.testing.assert_allclose(pix, hom[:2] / hom[2], atol=1e-6)
        assert z == pytest.approx(ref_cam[2])
    np.testing.assert_allclose(calib.camera_to_lidar(cam), pts, atol=1e-9)
    behind = calib.project_to_image(np.array([[0.0, 0.0, -5.0]]))
    assert np.isnan(behind).all()


def test_boxes_to_lidar_inverts_label_construction(calib_file: Path) -> None:
    calib = read_calibration(calib_file)
    rng = np.random.default_rng(3)
    for _ in range(20):
        centre = np.array([rng.uniform(5, 40), rng.uniform(-10, 10), rng.uniform(-1.2, -0.5)])
        l, w, h = rng.uniform(3, 5), rng.uniform(1.5, 2), rng.uniform(1.3, 1.8)
        yaw = float(rng.uniform(-math.pi, math.pi))
        centre_cam = calib.lidar_to_camera(centre[None])[0]
        ry = float(calib.lidar_heading_to_rotation_y(np.array(yaw)))
        box = Box3D("Car", 0.0, 0, 0.0, (0, 0, 1, 1), (h, w, l), (centre_cam[0], centre_cam[1] + h / 2, centre_cam[2]), ry)
        out = calib.boxes_to_lidar([box])[0]
        np.testing.assert_allclose(out[:3], centre, atol=1e-9)
        np.testing.assert_allclose(out[3:6], [l, w, h])
        # rotation_y keeps only the heading's projection on the camera x-z plane; the calibration's
        # ~1 deg tilt makes the round trip exact only to second order (~1e-4 rad)
        assert abs(math.remainder(out[6] - yaw, 2 * math.pi)) < 1e-3
        # the usual shortcut agrees up to the small calibration rotation
        assert abs(math.remainder(-ry - math.pi / 2 - yaw, 2 * math.pi)) < 0.02


def test_calibration_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(CALIB_TEXT.replace("R0_rect: 9.999239000000e-01 ", "R0_rect: "))
    with pytest.raises(CorruptDataError, match=r"bad.txt:5: R0_rect has 8 values, expected 9"):
        read_calibration(bad)
    nan = tmp_path / "word.txt"
    nan.write_text("P2: 1 2 x 4 5 6 7 8 9 10 11 12\n")
    with pytest.raises(CorruptDataError, match=r"word.txt:1: P2 holds a non-numeric"):
        read_calibration(nan)
    missing = tmp_path / "missing.txt"
    missing.write_text("\n".join(line for line in CALIB_TEXT.splitlines() if not line.startswith("P2")))
    with pytest.raises(CorruptDataError, match="missing.txt: calibration is missing P2"):
        read_calibration(missing)
    with pytest.raises(NotFoundError, match="nothere.txt"):
        read_calibration(tmp_path / "nothere.txt")


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------


def test_label_parse_values(tmp_path: Path) -> None:
    path = tmp_path / "000000.txt"
    path.write_text(LABEL_TEXT)
    boxes = parse_label_file(path)
    assert [b.type for b in boxes] == ["Pedestrian", "Car", "DontCare"]
    ped = boxes[0]
    assert ped.truncated == 0.0 and ped.occluded == 0 and ped.alpha == -0.2
    assert ped.bbox == (712.40, 143.00, 810.73, 307.92)
    assert ped.dimensions == (1.89, 0.48, 1.20) and ped.location == (1.84, 1.47, 8.41)
    assert ped.rotation_y == 0.01 and ped.score is None
    assert boxes[1].occluded == 3 and boxes[2].occluded == -1


def test_label_format_round_trip(tmp_path: Path) -> None:
    lines = LABEL_TEXT.splitlines()
    for line in lines[:2]:
        assert format_label_line(parse_label_line(line)) == line
    box = Box3D("Cyclist", 0.123, 1, 1.234567, (1.111, 2.222, 3.333, 4.444), (1.7, 0.6, 1.8),
                (3.14159, 1.5, 20.0), -3.0, score=0.98765)
    text = format_label_line(box)
    assert text.split()[-1] == "0.9877" and len(text.split()) == 16
    parsed = parse_label_line(text)
    assert format_label_line(parsed) == text
    assert parsed.location[0] == pytest.approx(3.14) and parsed.score == pytest.approx(0.9877)
    written = write_label_file(tmp_path / "l" / "x.txt", [box, parse_label_line(lines[2])])
    assert [format_label_line(b) for b in parse_label_file(written)] == text.splitlines() + [
        format_label_line(parse_label_line(lines[2]))
    ]


def test_label_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "000007.txt"
    path.write_text(LABEL_TEXT.splitlines()[0] + "\nCar 0.00 0 1.0 1 2 3\n")
    with pytest.raises(CorruptDataError, match=r"000007.txt:2: a KITTI label line has 15 fields"):
        parse_label_file(path)
    path.write_text("Car 0.00 zero -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n")
    with pytest.raises(CorruptDataError, match=r"000007.txt:1: non-numeric"):
        parse_label_file(path)
    path.write_text("Car 0.00 5 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n")
    with pytest.raises(CorruptDataError, match=r"000007.txt:1: occluded"):
        parse_label_file(path)


# ---------------------------------------------------------------------------------------------
# KittiSource
# ---------------------------------------------------------------------------------------------


def _make_dataset(root: Path, n: int = 4, labels: bool = True) -> None:
    rng = np.random.default_rng(1)
    split = root / "training"
    for i in range(n):
        fid = f"{i:06d}"
        write_points_bin(split / "velodyne" / f"{fid}.bin", rng.normal(size=(10 + i, 4)))
        (split / "calib").mkdir(parents=True, exist_ok=True)
        (split / "calib" / f"{fid}.txt").write_text(CALIB_TEXT)
        (split / "image_2").mkdir(parents=True, exist_ok=True)
        (split / "image_2" / f"{fid}.png").write_bytes(b"\x89PNG")
        if labels:
            (split / "label_2").mkdir(parents=True, exist_ok=True)
            (split / "label_2" / f"{fid}.txt").write_text(LABEL_TEXT if i % 2 == 0 else "")
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "train.txt").write_text("000000\n000001\n")
    (root / "ImageSets" / "val.txt").write_text("000002\n000003\n")
    (root / "ImageSets" / "trainval.txt").write_text("000000\n000001\n000002\n000003\n")


def test_kitti_source_without_metadata(tmp_path: Path) -> None:
    _make_dataset(tmp_path)
    src = KittiSource(tmp_path)
    assert len(src) == 4 and src.frame_ids == ["000000", "000001", "000002", "000003"]
    assert src.image_sets["val"] == ["000002", "000003"] and "test" not in src.image_sets
    records = list(src)
    r0, r1 = records[0], records[1]
    assert r0.id == "000000" and r0.scene == "unknown" and r1.frame_index == 1
    assert r0.num_points == 10 and records[3].num_points == 13
    assert r0.lidar_path.endswith("training/velodyne/000000.bin")
    assert r0.image_paths[0].endswith("image_2/000000.png")
    assert r0.calib_path.endswith("calib/000000.txt") and r0.label_path.endswith("label_2/000000.txt")
    assert [b.type for b in r0.boxes] == ["Pedestrian", "Car", "DontCare"] and r1.boxes == []
    assert r0.metadata["image_sets"] == ["train", "trainval"]
    assert r0.metadata["time_of_day"] is None and r0.split == "training"
    assert src.calibration("000002").P2[0, 0] == pytest.approx(721.5377)


def test_kitti_source_prefix_metadata_and_missing_labels(tmp_path: Path) -> None:
    _make_dataset(tmp_path, labels=False)
    with open(tmp_path / "metadata.jsonl", "w") as fh:
        for i in range(4):
            fh.write(json.dumps({"id": f"{i:06d}", "scene": f"drive_{i // 2}", "frame_index": i % 2,
                                 "timestamp": 100.0 + i, "time_of_day": "night", "weather": "fog",
                                 "location": "downtown", "ego_speed": 3.5}) + "\n")
    src = KittiSource(tmp_path, prefix="kitti")
    records = list(src)
    assert [r.id for r in records] == ["kitti/000000", "kitti/000001", "kitti/000002", "kitti/000003"]
    assert [r.scene for r in records] == ["drive_0", "drive_0", "drive_1", "drive_1"]
    assert [r.frame_index for r in records] == [0, 1, 0, 1]
    assert records[2].timestamp == 102.0 and records[2].label_path is None and records[2].boxes == []
    meta = records[0].metadata
    assert (meta["time_of_day"], meta["weather"], meta["location"], meta["ego_speed"]) == ("night", "fog", "downtown", 3.5)
    assert meta["kitti_frame_id"] == "000000" and src.name == "kitti" and records[0].dataset == "kitti"


def test_kitti_source_raw_mapping(tmp_path: Path) -> None:
    _make_dataset(tmp_path, n=3)
    mapping = tmp_path / "devkit" / "mapping"
    mapping.mkdir(parents=True)
    (mapping / "train_mapping.txt").write_text(
        "2011_09_26 2011_09_26_drive_0001_sync 0000000000\n"
        "2011_09_26 2011_09_26_drive_0001_sync 0000000007\n"
        "2011_09_28 2011_09_28_drive_0034_sync 0000000042\n"
    )
    (mapping / "train_rand.txt").write_text("3,1,2\n")
    records = list(KittiSource(tmp_path))
    assert [r.scene for r in records] == [
        "2011_09_28_drive_0034_sync", "2011_09_26_drive_0001_sync", "2011_09_26_drive_0001_sync"
    ]
    assert [r.frame_index for r in records] == [42, 0, 7]
    assert records[0].metadata["date"] == "2011_09_28"


def test_kitti_source_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="KITTI root does not exist"):
        KittiSource(tmp_path / "absent")
    (tmp_path / "training").mkdir()
    with pytest.raises(NotFoundError, match="testing: split folder does not exist.*training"):
        KittiSource(tmp_path, split="testing")
    with pytest.raises(NotFoundError, match="velodyne"):
        KittiSource(tmp_path)
    _make_dataset(tmp_path, n=2)
    bad = tmp_path / "training" / "velodyne" / "000012.bin"
    bad.write_bytes(b"\0" * 1000)
    src = KittiSource(tmp_path)
    with pytest.raises(CorruptDataError, match="000012.bin: 1000 bytes is not a multiple of 16"):
        list(src)
    bad.write_bytes(b"")
    with pytest.raises(CorruptDataError, match="000012.bin.*empty"):
        src.record("000012")
    bad.unlink()
    (tmp_path / "training" / "label_2" / "000001.txt").write_text("Car 1 2\n")
    with pytest.raises(CorruptDataError, match=r"000001.txt:1"):
        list(KittiSource(tmp_path))
    (tmp_path / "metadata.jsonl").write_text('{"id": "000000"}\nnot json\n')
    with pytest.raises(CorruptDataError, match=r"metadata.jsonl:2: invalid JSON"):
        KittiSource(tmp_path)
