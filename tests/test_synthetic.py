"""The synthetic KITTI generator, read back with KittiSource, and its ray caster."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.errors import InvalidInputError
from curate.sources._raycast import GroundModel, LidarPattern, Shapes, cast_rays, cast_rays_reference
from curate.sources.calib import read_calibration
from curate.sources.kitti import KITTI_CLASSES, KittiSource
from curate.sources.pointcloud import read_points
from curate.sources.synthetic import generate

FRAMES, PER_DRIVE = 12, 4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synthetic") / "kitti"
    summary = generate(root, FRAMES, seed=0, small=True, frames_per_drive=PER_DRIVE, progress=False)
    return root, summary


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _inside(points: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    x, y, z, l, w, h, yaw = box
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = points[:, 0] - x, points[:, 1] - y
    lx, ly = c * dx + s * dy, -s * dx + c * dy
    return (np.abs(lx) <= l / 2 + margin) & (np.abs(ly) <= w / 2 + margin) & (np.abs(points[:, 2] - z) <= h / 2 + margin)


def test_read_back_frames_ids_and_drives(dataset) -> None:
    root, summary = dataset
    src = KittiSource(root)
    records = list(src)
    assert len(src) == FRAMES == summary.frames
    assert [r.id for r in records] == [f"{i:06d}" for i in range(FRAMES)]
    assert summary.drives == 3 and len({r.scene for r in records}) == 3
    for i, r in enumerate(records):
        assert r.scene == f"drive_{i // PER_DRIVE:04d}" and r.frame_index == i % PER_DRIVE
        assert r.num_points == r.metadata["num_points"] > 1000
        assert r.metadata["time_of_day"] in {"day", "dusk", "night"}
        assert r.metadata["weather"] in {"clear", "rain", "fog"}
        assert r.metadata["location"] in {"downtown", "old_town", "suburbs", "campus", "autobahn"}
        assert len(r.image_paths) == 1 and r.calib_path and r.label_path
        with Image.open(r.image_paths[0]) as im:
            assert im.size == (310, 94) and im.mode == "RGB"
        assert np.asarray(Image.open(r.image_paths[0])).std() > 5  # not a blank picture
    for a, b in zip(records, records[1:]):
        if a.scene == b.scene:
            assert b.timestamp == pytest.approx(a.timestamp + 0.1)
    assert sum(summary.boxes_per_class.values()) > 0
    meta = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    assert [m["id"] for m in meta] == [r.id for r in records]


def test_labels_have_valid_fields(dataset) -> None:
    root, _ = dataset
    n_boxes = 0
    for r in KittiSource(root):
        counts = {c: 0 for c in r.metadata["object_counts"]}
        for b in r.boxes:
            assert b.type in KITTI_CLASSES
            left, top, right, bottom = b.bbox
            assert 0 <= left < right <= 309 and 0 <= top < bottom <= 93
            if b.type == "DontCare":
                assert b.location == (-1000.0, -1000.0, -1000.0)
                continue
            n_boxes += 1
            counts[b.type] += 1
            assert 0.0 <= b.truncated <= 1.0 and b.occluded in (0, 1, 2)
            assert all(d > 0 for d in b.dimensions) and b.location[2] > 0
            assert -math.pi <= b.rotation_y <= math.pi and -math.pi <= b.alpha <= math.pi
        assert counts == r.metadata["object_counts"]
    assert n_boxes >= 10


def test_image_sets_are_split_by_drive(dataset) -> None:
    root, summary = dataset
    src = KittiSource(root)
    scene_of = {r.id: r.scene for r in src}
    train, val = set(src.image_sets["train"]), set(src.image_sets["val"])
    assert train and val and not train & val
    assert sorted(train | val) == src.image_sets["trainval"] == sorted(scene_of)
    assert not {scene_of[i] for i in train} & {scene_of[i] for i in val}
    assert summary.split_frames == {"train": len(train), "val": len(val)}


def test_same_seed_same_bytes_with_workers_and_other_seed_differs(dataset, tmp_path: Path) -> None:
    root, _ = dataset
    again = tmp_path / "again"
    generate(again, FRAMES, seed=0, small=True, frames_per_drive=PER_DRIVE, progress=False, workers=2)
    first, second = _files(root), _files(again)
    assert first.keys() == second.keys() and len(first) == 4 * FRAMES + 5
    assert first == second
    other = tmp_path / "other"
    generate(other, FRAMES, seed=1, small=True, frames_per_drive=PER_DRIVE, progress=False)
    third = _files(other)
    assert third["training/velodyne/000000.bin"] != first["training/velodyne/000000.bin"]
    assert third["training/image_2/000000.png"] != first["training/image_2/000000.png"]


def _occupancy(points: np.ndarray, cell: float = 1.0, extent: float = 40.0) -> set[tuple[int, int]]:
    near = (np.abs(points[:, 0]) < extent) & (np.abs(points[:, 1]) < extent)
    ij = np.floor((points[near, :2] + extent) / cell).astype(np.int64)
    return set(map(tuple, ij.tolist()))


def test_consecutive_frames_are_redundant(dataset) -> None:
    root, _ = dataset
    records = list(KittiSource(root))
    grids = [_occupancy(read_points(r.lidar_path)) for r in records]

    def distance(a: set, b: set) -> float:
        return 1.0 - len(a & b) / len(a | b)

    within = [distance(grids[i], grids[i + 1]) for i in range(len(records) - 1)
              if records[i].scene == records[i + 1].scene]
    across = [distance(grids[i], grids[j]) for i in range(len(records)) for j in range(i + 1, len(records))
              if records[i].scene != records[j].scene]
    assert len(within) == FRAMES - 3
    assert max(within) < min(across)
    assert np.mean(within) < 0.5 * np.mean(across)


def test_occlusion_is_labelled(dataset) -> None:
    root, _ = dataset
    levels = [b.occluded for r in KittiSource(root) for b in r.boxes if b.type != "DontCare"]
    assert any(level > 0 for level in levels) and any(level == 0 for level in levels)


def test_points_fall_inside_labelled_boxes(dataset) -> None:
    """Checks calibration + label + scan consistency through KittiSource and the calib file."""
    root, _ = dataset
    inside_true = shell = inside_shifted = 0
    checked = 0
    for r in KittiSource(root):
        points = read_points(r.lidar_path)
        calib = read_calibration(r.calib_path)
        boxes = [b for b in r.boxes if b.type != "DontCare"]
        for box in calib.boxes_to_lidar(boxes):
            in_box = _inside(points, box, 0.1)
            assert in_box.sum() >= 1  # DontCare is used for boxes without points
            above_ground = points[:, 2] > box[2] - box[5] / 2 + 0.25
            inside_true += int((in_box & above_ground).sum())
            shell += int((_inside(points, box, 0.3) & above_ground).sum())
            moved = box.copy()
            moved[1] += 1.5
            inside_shifted += int((_inside(points, moved, 0.1) & above_ground).sum())
            checked += 1
    assert checked >= 10
    assert inside_true / shell > 0.95  # almost nothing just outside the boxes
    assert inside_shifted < 0.5 * inside_true  # a misregistered box would lose its points


def test_full_size_frame_is_dense(tmp_path: Path) -> None:
    summary = generate(tmp_path / "full", 1, seed=3, progress=False)
    record = next(iter(KittiSource(tmp_path / "full")))
    assert 80_000 < record.num_points < 130_000
    with Image.open(record.image_paths[0]) as im:
        assert im.size == (1242, 375)
    pts = read_points(record.lidar_path)
    assert np.hypot(pts[:, 0], pts[:, 1]).max() <= 121.0 and 0.0 <= pts[:, 3].min() and pts[:, 3].max() < 1.0
    assert summary.points == record.num_points


def test_bad_arguments(tmp_path: Path, dataset) -> None:
    root, _ = dataset
    with pytest.raises(InvalidInputError, match="frames must be a positive integer"):
        generate(tmp_path / "a", 0, small=True, progress=False)
    with pytest.raises(InvalidInputError, match="frames_per_drive"):
        generate(tmp_path / "b", 4, small=True, frames_per_drive=(5, 2), progress=False)
    with pytest.raises(InvalidInputError, match="already holds a dataset"):
        generate(root, 2, small=True, progress=False)


def test_fast_ray_cast_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    pattern = LidarPattern(np.radians(np.linspace(-24.8, 2.0, 10)), 64, max_range=50.0)
    ground = GroundModel(slope=0.01, lateral_offset=-1.5, yaw=0.05, road_half=5.0, curb_height=0.15)
    centers = np.column_stack([rng.uniform(-35, 35, 30), rng.uniform(-25, 25, 30), rng.uniform(-1.7, 0.5, 30)])
    centers = centers[np.hypot(centers[:, 0], centers[:, 1]) > 4.0]
    owners, offsets, halves = [], [], []
    for s in range(len(centers)):
        for _ in range(int(rng.integers(1, 4))):
            owners.append(s)
            offsets.append(rng.uniform(-1.0, 1.0, 3))
            halves.append(rng.uniform(0.2, 2.5, 3))
    shapes = Shapes(centers, rng.uniform(-math.pi, math.pi, len(centers)), owners, offsets, halves)
    fast = cast_rays(pattern, ground, shapes)
    ref = cast_rays_reference(pattern, ground, shapes)
    np.testing.assert_array_equal(np.isfinite(fast.t), np.isfinite(ref.t))
    hit = np.isfinite(ref.t)
    np.testing.assert_allclose(fast.t[hit], ref.t[hit], rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(fast.surface, ref.surface)
    np.testing.assert_array_equal(fast.shape_id, ref.shape_id)
    np.testing.assert_array_equal(fast.part_id, ref.part_id)
    np.testing.assert_array_equal(fast.shape_rays, ref.shape_rays)
    np.testing.assert_allclose(fast.cos_incidence, ref.cos_incidence, atol=1e-9)
    assert (fast.shape_id >= 0).sum() > 20 and set(np.unique(fast.surface)) >= {1, 2, 4}
