"""FolderSource on a real folder tree of mixed point-cloud formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate.errors import InvalidInputError, NotFoundError
from curate.sources.folder import FolderSource
from curate.sources.pointcloud import (
    read_points,
    write_points_bin,
    write_points_npy,
    write_points_pcd,
    write_points_ply,
)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "lidar_dump"
    rng = np.random.default_rng(0)
    write_points_bin(root / "run_a" / "0001.bin", rng.normal(size=(11, 4)))
    write_points_bin(root / "run_a" / "0000.bin", rng.normal(size=(10, 4)))
    write_points_pcd(root / "run_a" / "0002.pcd", rng.normal(size=(12, 4)))
    write_points_ply(root / "run_b" / "deep" / "x.ply", rng.normal(size=(13, 4)))
    write_points_npy(root / "top.npy", rng.normal(size=(14, 3)))
    (root / "run_a" / "0001.png").write_bytes(b"\x89PNG")
    (root / "run_b" / "deep" / "x.jpg").write_bytes(b"\xff\xd8")
    (root / "run_a" / "notes.txt").write_text("not a cloud")
    return root


def test_folder_source_ids_scenes_and_images(tree: Path) -> None:
    src = FolderSource(tree)
    records = list(src)
    assert len(src) == 5
    assert [r.id for r in records] == ["run_a/0000", "run_a/0001", "run_a/0002", "run_b/deep/x", "top"]
    assert [r.scene for r in records] == ["run_a", "run_a", "run_a", "run_b/deep", "lidar_dump"]
    assert [r.frame_index for r in records] == [0, 1, 2, 0, 0]
    assert [r.num_points for r in records] == [10, 11, 12, 13, 14]
    assert records[1].image_paths[0].endswith("run_a/0001.png")
    assert records[3].image_paths[0].endswith("x.jpg")
    assert records[0].image_paths == [] and records[0].boxes == [] and records[0].calib_path is None
    for r in records:
        assert read_points(r.lidar_path).shape[0] == r.num_points
        assert r.dataset == "lidar_dump" and r.split == "lidar_dump"


def test_folder_source_pattern_and_prefix(tree: Path) -> None:
    src = FolderSource(tree, pattern="run_a/*.bin", prefix="dump")
    assert src.frame_ids == ["dump/run_a/0000", "dump/run_a/0001"]
    assert src.name == "dump"
    only_pcd = FolderSource(tree, pattern="**/*.pcd")
    assert only_pcd.frame_ids == ["run_a/0002"]


def test_folder_source_errors(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="missing_dir"):
        FolderSource(tmp_path / "missing_dir")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="no point-cloud files found.*\\.bin"):
        FolderSource(empty)
    write_points_npy(tree / "run_a" / "0000.npy", np.zeros((3, 3)))
    with pytest.raises(InvalidInputError, match="0000.npy.*0000.bin|0000.bin.*0000.npy"):
        FolderSource(tree)
    with pytest.raises(InvalidInputError, match="prefix"):
        FolderSource(empty, prefix="/bad/")
